//! What `cargo xtask bench` leaves in `target/bench/`: `summary.json` (each figure with its
//! value, target, runs and unit), `report.md` (the same as a table, with how it was
//! measured) and `event-rtt.svg` (the round-trip distribution the report shows).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::figures::Figure;

/// How the figures were taken.
#[derive(Serialize, Debug, Clone)]
pub struct Setting {
    /// True for the smoke test (`bench --quick`, one run): the figures are not judged.
    pub quick: bool,
    /// `release` or `debug`: the Xen build that ran.
    pub xen_build: &'static str,
    pub runs: u32,
}

#[derive(Serialize)]
struct Summary<'a> {
    setting: &'a Setting,
    figures: BTreeMap<&'static str, &'a Figure>,
}

pub fn summary_json(setting: &Setting, figures: &[Figure]) -> serde_json::Result<String> {
    let summary = Summary {
        setting,
        figures: figures.iter().map(|figure| (figure.name, figure)).collect(),
    };
    Ok(serde_json::to_string_pretty(&summary)? + "\n")
}

fn verdict(figure: &Figure) -> &'static str {
    match figure.met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "",
    }
}

fn target(figure: &Figure) -> String {
    figure
        .target
        .map_or_else(|| "none".into(), |target| target.describe())
}

fn number(value: f64) -> String {
    if value == value.trunc() && value.abs() < 1e9 {
        format!("{value:.0}")
    } else if value.abs() >= 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// The figures as aligned text, one per line, for the console.
pub fn table(figures: &[Figure]) -> String {
    let mut text = String::new();
    for figure in figures {
        let _ = writeln!(
            text,
            "{:<34} {:>9} {:<7} (min {}, max {}, {} run(s)) target {} {}",
            figure.name,
            number(figure.value),
            figure.unit,
            number(figure.min),
            number(figure.max),
            figure.runs.len(),
            target(figure),
            verdict(figure)
        );
    }
    text
}

/// `report.md`.
pub fn markdown(setting: &Setting, figures: &[Figure], rtt_note: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# PV mem_access benchmark\n");
    let _ = writeln!(
        md,
        "One nested boot (Xen {} build under QEMU TCG), {} run(s), each figure the median of \
         its runs with the minimum and maximum; every ratio compares configurations measured \
         in the same boot, interleaved (each run measures each configuration once, in a new \
         guest).{}\n",
        setting.xen_build,
        setting.runs,
        if setting.quick {
            " **Smoke test (`--quick`): one run, debug Xen; no figure is judged.**"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "| figure | value | min | max | runs | target | |\n|---|---|---|---|---|---|---|"
    );
    for figure in figures {
        let _ = writeln!(
            md,
            "| `{}` | {} {} | {} | {} | {} | {} | {} |",
            figure.name,
            number(figure.value),
            figure.unit,
            number(figure.min),
            number(figure.max),
            figure.runs.len(),
            target(figure),
            verdict(figure)
        );
    }
    let _ = writeln!(md, "\n## What each figure is\n");
    for figure in figures {
        let _ = writeln!(md, "- `{}`: {}.", figure.name, figure.what);
    }
    let _ = writeln!(
        md,
        "\n## Event round trips\n\n{rtt_note}\n\n![event round trips](event-rtt.svg)"
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::figures::Target;

    fn figure(met: Option<bool>) -> Figure {
        Figure {
            name: "event_rtt_ratio",
            value: 2.5,
            min: 2.0,
            max: 3.0,
            target: met.map(|_| Target::AtMost(1.5)),
            met,
            runs: vec![2.0, 2.5, 3.0],
            unit: "ratio",
            what: "events / ping-pong",
        }
    }

    #[test]
    fn the_summary_has_value_target_runs_and_unit_per_figure() {
        let setting = Setting {
            quick: false,
            xen_build: "release",
            runs: 3,
        };
        let json: serde_json::Value =
            serde_json::from_str(&summary_json(&setting, &[figure(Some(false))]).unwrap()).unwrap();
        let figure = &json["figures"]["event_rtt_ratio"];
        assert_eq!(figure["value"], 2.5);
        assert_eq!(figure["target"]["at_most"], 1.5);
        assert_eq!(figure["runs"].as_array().unwrap().len(), 3);
        assert_eq!(figure["unit"], "ratio");
        assert_eq!(figure["met"], false);
        assert_eq!(json["setting"]["quick"], false);
    }

    #[test]
    fn missed_targets_stand_out() {
        assert!(table(&[figure(Some(false))]).contains("MISSED"));
        assert!(table(&[figure(Some(true))]).contains(" met"));
        let md = markdown(
            &Setting {
                quick: true,
                xen_build: "debug",
                runs: 1,
            },
            &[figure(None)],
            "note",
        );
        assert!(md.contains("| `event_rtt_ratio` | 2.500 ratio | 2 | 3 | 3 | none |  |"));
        assert!(md.contains("no figure is judged"));
        assert!(md.contains("event-rtt.svg"));
    }
}
