//! The commands of the CLI, one module each, over the library's parts.
//!
//! A command returns an [`Output`]: the same result as short human text and
//! as one JSON document; `lib::run` prints the one asked for. Commands never
//! print results themselves (progress goes to stderr through `report`).

use serde::Serialize;

pub mod check;
pub mod commit;
pub mod exec;
pub mod gc;
pub mod inspect;
pub mod lock;
pub mod recover;
pub mod rollback;
pub mod sync;
pub mod verify;

/// A command's result.
#[derive(Debug)]
pub struct Output {
    pub human: String,
    pub json: serde_json::Value,
    pub code: u8,
}

impl Output {
    pub fn new<T: Serialize>(value: &T, human: String) -> Output {
        Output {
            human,
            json: if crate::report::json() {
                serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
            } else {
                serde_json::Value::Null
            },
            code: crate::error::exit::OK,
        }
    }

    pub fn with_code(mut self, code: u8) -> Output {
        self.code = code;
        self
    }
}

/// Pads rows into aligned columns (two spaces between columns).
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::from("  ");
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
