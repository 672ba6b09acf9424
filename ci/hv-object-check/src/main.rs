//! `hv-object-check OBJECT`: prints each rule the object breaks (see the library) and exits
//! 1 if it breaks any; `cargo xtask check-hv-object` and the e2e's Xen build run it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: hv-object-check OBJECT");
        return ExitCode::from(2);
    };
    let shown = std::path::Path::new(&path).display().to_string();
    let problems = std::fs::read(&path)
        .map_err(anyhow::Error::from)
        .and_then(|bytes| hv_object_check::check(&bytes));
    match problems {
        Ok(problems) if problems.is_empty() => {
            println!("{shown}: passes every rule");
            ExitCode::SUCCESS
        }
        Ok(problems) => {
            for problem in &problems {
                println!("{shown}: {problem}");
            }
            eprintln!("{shown} breaks {} rule(s)", problems.len());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{shown}: {error:#}");
            ExitCode::FAILURE
        }
    }
}
