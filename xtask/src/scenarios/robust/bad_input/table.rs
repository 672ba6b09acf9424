//! One line per wrong call in `calls.txt`, written in dom0 and judged on the host:
//!
//! ```text
//!  7 dom0: vm_event enable, no such domain: expected=3 got=3 unchanged=yes
//! ```
//!
//! `expected` is the errno Xen must give (0: success), or `A|B` when the answer is `A` today
//! and becomes `B` with a change announced for Xen (each such row says so in a FIXME where
//! it is made); `unchanged` says whether the state read back from dom0 after the call was
//! the state before it.

use anyhow::{bail, Context, Result};

/// One call and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `dom0: ...` or `guest: ...`: who called, and what.
    pub name: String,
    /// The answers accepted, today's first.
    pub expected: Vec<i32>,
    /// The errno Xen gave (0: success).
    pub got: i32,
    /// Whether nothing changed.
    pub unchanged: bool,
}

impl Row {
    /// Whether Xen answered as expected and nothing changed.
    pub fn passes(&self) -> bool {
        self.expected.contains(&self.got) && self.unchanged
    }

    /// Whether the answer is a later one than today's (the announced change is in).
    pub fn answers_the_later_way(&self) -> bool {
        self.expected.len() > 1 && self.got != self.expected[0] && self.passes()
    }

    /// The line, numbered `number`.
    pub fn line(&self, number: usize) -> String {
        let expected: Vec<String> = self.expected.iter().map(i32::to_string).collect();
        format!(
            "{number:3} {}: expected={} got={} unchanged={}",
            self.name,
            expected.join("|"),
            self.got,
            if self.unchanged { "yes" } else { "no" }
        )
    }

    /// Reads a line back.
    pub fn parse(line: &str) -> Result<Row> {
        let line = line.trim();
        let (head, fields) = line
            .rsplit_once(": expected=")
            .with_context(|| format!("no expected= in {line:?}"))?;
        let name = head
            .split_once(' ')
            .map(|(_, name)| name)
            .with_context(|| format!("no number in {line:?}"))?;
        let mut words = fields.split(' ');
        let expected = words
            .next()
            .unwrap_or_default()
            .split('|')
            .map(str::parse)
            .collect::<Result<Vec<i32>, _>>()
            .with_context(|| format!("bad expected= in {line:?}"))?;
        let mut got = None;
        let mut unchanged = None;
        for word in words {
            if let Some(value) = word.strip_prefix("got=") {
                got = value.parse().ok();
            } else if let Some(value) = word.strip_prefix("unchanged=") {
                unchanged = match value {
                    "yes" => Some(true),
                    "no" => Some(false),
                    _ => None,
                };
            }
        }
        let (Some(got), Some(unchanged)) = (got, unchanged) else {
            bail!("no got= or unchanged= in {line:?}");
        };
        if expected.is_empty() {
            bail!("empty expected= in {line:?}");
        }
        Ok(Row {
            name: name.to_string(),
            expected,
            got,
            unchanged,
        })
    }
}

/// The rows of one caller, in order.
#[derive(Default)]
pub struct Table {
    pub rows: Vec<Row>,
}

impl Table {
    pub fn push(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// `calls.txt`'s text.
    pub fn text(&self) -> String {
        self.rows
            .iter()
            .enumerate()
            .map(|(index, row)| row.line(index + 1) + "\n")
            .collect()
    }
}

/// The rows of a `calls.txt`.
pub fn parse_all(text: &str) -> Result<Vec<Row>> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(Row::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(expected: &[i32], got: i32, unchanged: bool) -> Row {
        Row {
            name: "dom0: set access: frame beyond RAM".into(),
            expected: expected.to_vec(),
            got,
            unchanged,
        }
    }

    #[test]
    fn lines_read_back_as_written() {
        let mut table = Table::default();
        table.push(row(&[22], 22, true));
        table.push(row(&[19, 0], 0, false));
        let text = table.text();
        assert_eq!(
            text.lines().next().unwrap(),
            "  1 dom0: set access: frame beyond RAM: expected=22 got=22 unchanged=yes"
        );
        assert_eq!(parse_all(&text).unwrap(), table.rows);
    }

    #[test]
    fn a_row_passes_with_an_accepted_answer_and_nothing_changed() {
        assert!(row(&[22], 22, true).passes());
        assert!(!row(&[22], 1, true).passes());
        assert!(!row(&[22], 22, false).passes());
        assert!(row(&[19, 0], 19, true).passes());
        assert!(!row(&[19, 0], 19, true).answers_the_later_way());
        assert!(row(&[19, 0], 0, true).answers_the_later_way());
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(Row::parse("1 x: expected=a got=1 unchanged=yes").is_err());
        assert!(Row::parse("1 x: expected=1 got=1").is_err());
        assert!(Row::parse("1 x: expected=1 got=1 unchanged=maybe").is_err());
        assert!(Row::parse("nothing here").is_err());
    }
}
