//! The commands of the CLI, one module each, over the library's parts.
//!
//! A command returns an [`Output`]: the same result as short human text and
//! as one JSON document; `lib::run` prints the one asked for. Commands never
//! print results themselves (progress goes to stderr through `report`).

use serde::Serialize;

pub(crate) mod check;
pub(crate) mod commit;
pub(crate) mod exec;
pub(crate) mod gc;
pub(crate) mod inspect;
pub(crate) mod lock;
pub(crate) mod recover;
pub(crate) mod rollback;
pub(crate) mod sync;
pub(crate) mod verify;

/// A command's result, rendered both ways; `main` prints the one asked for.
#[derive(Debug)]
pub struct Output {
    /// The result as text for a person.
    pub human: String,
    /// The result as one JSON document (`Null` unless `--json`).
    pub json: serde_json::Value,
    /// The exit code (0 unless the command says otherwise).
    pub code: u8,
}

impl Output {
    pub(crate) fn new<T: Serialize>(value: &T, human: String) -> Output {
        Output {
            human,
            json: if crate::output::report::json() {
                serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
            } else {
                serde_json::Value::Null
            },
            code: crate::error::exit::OK,
        }
    }

    pub(crate) fn with_code(mut self, code: u8) -> Output {
        self.code = code;
        self
    }
}

/// What a command that changes an existing generation set starts from: the
/// opened state, the manager lock held, any interrupted transaction
/// finished, and the live generation.
pub(crate) struct Locked {
    pub state: crate::state::State,
    pub live: u64,
    pub lock: crate::locks::manager::ManagerLock,
}

/// Opens the state, takes the manager lock, recovers, and requires a live
/// generation — or says what to run first (exit 65).
pub(crate) fn lock_live(
    cfg: &crate::config::Config,
    wait: std::time::Duration,
) -> crate::error::Result<Locked> {
    use crate::error::Error;
    let Some(state) = crate::state::State::open(cfg)? else {
        return Err(Error::bad_input(format!(
            "{} holds no generations yet; run `svcdir-update commit` first",
            cfg.state.display()
        )));
    };
    let lock = crate::locks::manager::ManagerLock::acquire(&state.dir, wait)?;
    // Refuse an unsafe runtime directory now, not after a switch.
    crate::locks::update::locks_dir(cfg)?;
    recover::finish_interrupted(cfg, &state)?;
    let Some(live) = state.live()? else {
        return Err(Error::bad_input(
            "no generation is live yet; run `svcdir-update commit` first",
        ));
    };
    Ok(Locked { state, live, lock })
}

/// Pads rows into aligned columns (two spaces between columns).
pub(crate) fn table(rows: &[Vec<String>]) -> String {
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
