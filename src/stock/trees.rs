//! Opening the configured stock trees and choosing, for every service name,
//! the tree it comes from: a later tree overrides the same name in an
//! earlier one, and `disabled:` drops names. Lists and stats only; the
//! services themselves are walked by `src/stock/walker.rs`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::config::{Config, StockTree};
use crate::error::{Error, Problem, Problems, Result};
use crate::model::names::name_problem;
use crate::stock::Stock;
use crate::stock::race::raced;
use crate::sys::fs::{Dir, Kind};

/// The services to walk and the open trees they are in.
#[derive(Default)]
pub(super) struct ChosenServices {
    /// The open stock trees, in config order (those that exist).
    pub tree_dirs: Vec<Dir>,
    /// Service name → (index into `tree_dirs`, tree path).
    pub services: BTreeMap<String, (usize, PathBuf)>,
}

/// Checks that every required stock tree exists, without reading further.
/// Used before anything is created, so a mistyped path changes nothing.
pub(crate) fn check_trees_exist(cfg: &Config) -> Result<()> {
    let problems: Vec<Problem> = cfg
        .stock
        .iter()
        .filter(|t| !t.optional && !t.path.is_dir())
        .map(|t| missing_tree_problem(cfg, &t.path))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Stock {
            problems: Problems(problems),
        })
    }
}

fn missing_tree_problem(cfg: &Config, path: &Path) -> Problem {
    let fix = match &cfg.source {
        Some(file) => format!("create it, or fix `stock:` in {}", file.display()),
        None => "create it, or name the stock trees with --config or --root".into(),
    };
    Problem {
        path: path.to_path_buf(),
        what: "the stock directory does not exist or is not a directory".into(),
        fix,
        transient: false,
    }
}

/// Opens every stock tree, lists its services and merges them: records the
/// trees read and the override and disabled notes in `stock`, and the
/// problems of trees and names in `problems`.
pub(super) fn choose_services(
    cfg: &Config,
    stock: &mut Stock,
    problems: &mut Vec<Problem>,
) -> Result<ChosenServices> {
    let mut chosen = ChosenServices::default();
    for tree in &cfg.stock {
        let Some(dir) = open_tree(cfg, tree, problems)? else {
            continue;
        };
        stock.trees.push(tree.path.clone());
        let index = chosen.tree_dirs.len();
        for name in service_names(&dir, &tree.path, problems)? {
            let overridden = chosen
                .services
                .insert(name.clone(), (index, tree.path.clone()));
            if let Some((_, prev)) = overridden {
                stock.notes.push(format!(
                    "{name}: {} overrides {}",
                    tree.path.display(),
                    prev.display()
                ));
            }
        }
        chosen.tree_dirs.push(dir);
    }
    drop_disabled(cfg, &mut chosen.services, &mut stock.notes);
    Ok(chosen)
}

/// Opens a stock tree and checks that only trusted users can write it.
/// `None` for an optional tree that does not exist, or a missing tree
/// (then a problem is recorded).
fn open_tree(cfg: &Config, tree: &StockTree, problems: &mut Vec<Problem>) -> Result<Option<Dir>> {
    let dir = match Dir::open_following(&tree.path) {
        Ok(d) => d,
        Err(_) if tree.optional && !tree.path.exists() => return Ok(None),
        Err(_) if !tree.path.is_dir() => {
            problems.push(missing_tree_problem(cfg, &tree.path));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let st = dir.self_stat()?;
    crate::config::check_trusted(&tree.path, (&st).into(), "stock tree")?;
    Ok(Some(dir))
}

/// The names of the service directories in a tree, in listing order; a bad
/// name, a symlink or a file is a problem, not a service.
fn service_names(dir: &Dir, tree: &Path, problems: &mut Vec<Problem>) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for name in dir.names()? {
        let path = tree.join(&name);
        match service_dir_problem(dir, &name, &path)? {
            Some((what, fix)) => problems.push(Problem {
                path,
                what,
                fix: fix.into(),
                transient: false,
            }),
            None => names.push(name.to_string_lossy().into_owned()),
        }
    }
    Ok(names)
}

/// Why the entry `name` of a stock tree cannot be a service: (what, fix).
fn service_dir_problem(
    dir: &Dir,
    name: &OsStr,
    path: &Path,
) -> Result<Option<(String, &'static str)>> {
    if let Some(why) = name_problem(name.as_encoded_bytes()) {
        return Ok(Some((why, "rename the service directory")));
    }
    let st = dir.stat(name).map_err(|e| raced(e, path))?;
    Ok(match Kind::of(&st) {
        Kind::Dir => None,
        Kind::Symlink => Some((
            "is a symlink; a stock service must be a real directory".into(),
            "replace the link with a copy of the directory",
        )),
        _ => Some((
            "is not a directory; a stock tree holds only service directories".into(),
            "move the file out of the stock tree",
        )),
    })
}

fn drop_disabled(
    cfg: &Config,
    services: &mut BTreeMap<String, (usize, PathBuf)>,
    notes: &mut Vec<String>,
) {
    for name in &cfg.disabled {
        if services.remove(name).is_some() {
            notes.push(format!("{name}: disabled by config"));
        } else {
            notes.push(format!(
                "{name}: listed in `disabled:` but in no stock tree"
            ));
        }
    }
}
