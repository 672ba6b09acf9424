//! Progress lines for long steps, so a person watching sees what is happening and how long
//! each phase took.

use std::time::Instant;

/// A named phase of a run; prints a line when it starts and when it ends.
pub struct Phase {
    name: &'static str,
    start: Instant,
}

impl Phase {
    pub fn start(name: &'static str, what: &str) -> Phase {
        println!("==> [{name}] {what}");
        Phase {
            name,
            start: Instant::now(),
        }
    }

    /// Ends the phase and returns its duration in seconds.
    pub fn finish(self) -> f64 {
        let seconds = self.start.elapsed().as_secs_f64();
        println!("==> [{}] done in {seconds:.1}s", self.name);
        seconds
    }
}

/// A line of detail within the current phase.
pub fn step(message: &str) {
    println!("    {message}");
}

/// Runs a command without showing its output unless it fails; then the error carries its
/// last lines.
pub fn quietly(command: xshell::Cmd<'_>) -> anyhow::Result<()> {
    let shown = command.to_string();
    let output = command.quiet().ignore_status().output()?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    anyhow::bail!("`{shown}` failed ({}):\n{tail}", output.status)
}
