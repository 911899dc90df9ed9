//! `list`: the generations, newest last, the live one marked. Takes no
//! lock (every published file is immutable).

use serde::Serialize;

use super::{Output, table};
use crate::config::Config;
use crate::error::Result;
use crate::state::State;
use crate::state::generation;

#[derive(Debug, Serialize)]
struct ListRow {
    generation: u64,
    live: bool,
    created: String,
    parent: Option<u64>,
    services: usize,
}

pub(crate) fn list(cfg: &Config) -> Result<Output> {
    let Some(state) = State::open_current(cfg)? else {
        return Ok(Output::new(
            &Vec::<ListRow>::new(),
            "no generations yet\n".into(),
        ));
    };
    let live = state.live()?;
    let mut rows = Vec::new();
    for n in generation::list(&state)? {
        let m = generation::load(&state, n)?;
        rows.push(ListRow {
            generation: n,
            live: Some(n) == live,
            created: m.created,
            parent: m.parent,
            services: m.services.len(),
        });
    }
    let mut cells = vec![vec![
        String::new(),
        "GEN".into(),
        "CREATED".into(),
        "PARENT".into(),
        "SERVICES".into(),
    ]];
    for r in &rows {
        cells.push(vec![
            if r.live { "*".into() } else { String::new() },
            r.generation.to_string(),
            r.created.clone(),
            r.parent.map_or_else(|| "-".into(), |p| p.to_string()),
            r.services.to_string(),
        ]);
    }
    let human = if rows.is_empty() {
        "no generations yet\n".to_string()
    } else {
        table(&cells)
    };
    Ok(Output::new(&rows, human))
}
