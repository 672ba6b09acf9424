//! Listener transcripts: a scenario's dom0 half runs `listener` commands against one guest and
//! keeps each command with its answer; the host half reads the transcript back line by line.

use anyhow::{ensure, Context, Result};

use super::Dom0;

/// The dom0 side: runs listener commands for one domain and records them.
pub struct Transcript<'a> {
    dom0: &'a Dom0,
    domain: String,
    text: String,
    /// Words replaced in what is recorded (machine frame numbers differ between runs).
    names: Vec<(String, String)>,
}

impl<'a> Transcript<'a> {
    pub fn new(dom0: &'a Dom0, domain: &str) -> Transcript<'a> {
        Transcript {
            dom0,
            domain: domain.to_string(),
            text: String::new(),
            names: Vec::new(),
        }
    }

    /// Records the whole word `word` (e.g. `0x1a2b`) as `name` from now on.
    pub fn name(&mut self, word: &str, name: &str) {
        self.names.push((word.to_string(), name.to_string()));
    }

    fn record(&mut self, text: &str) {
        for line in text.lines() {
            let words: Vec<&str> = line
                .split(' ')
                .map(|word| {
                    self.names
                        .iter()
                        .find(|(from, _)| from == word)
                        .map_or(word, |(_, to)| to.as_str())
                })
                .collect();
            self.text.push_str(&words.join(" "));
            self.text.push('\n');
        }
    }

    /// `listener ARGS --domain DOMAIN`: its output, or its error (both recorded).
    pub fn listener(&mut self, args: &[&str]) -> Result<String> {
        let mut full = args.to_vec();
        full.extend(["--domain", &self.domain]);
        let output = self.dom0.run("listener", &full);
        self.record(&format!("$ listener {}", args.join(" ")));
        match &output {
            Ok(text) => self.record(text),
            Err(error) => self.record(&format!("error: {error:#}")),
        }
        output
    }

    /// Keeps the transcript among the scenario's results, as `transcript.txt`.
    pub fn save(&self) -> Result<()> {
        self.dom0.save("transcript.txt", &self.text)
    }
}

/// The host side: the transcript line by line, with the `domain N: ` prefix dropped.
pub struct Lines<'a>(std::str::Lines<'a>);

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Lines<'a> {
        Lines(text.lines())
    }

    pub fn next(&mut self) -> Result<&'a str> {
        let line = self.0.next().context("the transcript ends early")?;
        Ok(line
            .split_once(": ")
            .filter(|(head, _)| head.starts_with("domain "))
            .map_or(line, |(_, rest)| rest))
    }

    /// The next lines are exactly these.
    pub fn expect(&mut self, wanted: &[&str]) -> Result<()> {
        for wanted in wanted {
            let line = self.next()?;
            ensure!(
                line == *wanted,
                "expected `{wanted}`, the transcript says `{line}`"
            );
        }
        Ok(())
    }

    pub fn at_end(&mut self) -> bool {
        self.0.next().is_none()
    }
}
