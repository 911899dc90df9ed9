//! Opening the configured stock trees and choosing, for every service name,
//! the tree it comes from: a later tree overrides the same name in an
//! earlier one, and `disabled:` drops names — both before any top-level
//! entry is judged, so an overridden or disabled bad entry is no problem.
//! A bad top-level entry (bad name, file, symlink) is held back as that
//! name alone; a symlink to a service directory of the same tree is an
//! alias, supervised once under its target's name (docs/faq.md#aliases).
//! Lists and stats only; the services themselves are walked by
//! `src/stock/walker.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::config::{Config, StockTree};
use crate::error::{Error, Problem, Problems, Result};
use crate::model::names::name_problem;
use crate::model::shown::shown;
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
    /// Top-level entries that cannot be a service, by name: held back.
    pub refused: BTreeMap<String, Problem>,
}

/// What a top-level entry of a stock tree is.
enum TopLevel {
    Service,
    /// A symlink to the service directory of this name in the same tree.
    Alias(String),
    /// Not a service: (what, fix).
    Refused(String, &'static str),
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
        Some(file) => format!("create it, or fix `stock:` in {}", shown(&file)),
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
        for (name, entry) in top_level_entries(&dir, &tree.path, &mut stock.notices)? {
            // The tree an earlier entry of this name came from.
            let earlier_refused = chosen.refused.remove(&name);
            let earlier_service = chosen.services.remove(&name);
            let overridden = earlier_service
                .map(|(_, tree)| tree)
                .or_else(|| earlier_refused.and_then(|p| p.path.parent().map(Path::to_path_buf)));
            match entry {
                Ok(()) => {
                    chosen
                        .services
                        .insert(name.clone(), (index, tree.path.clone()));
                }
                Err(problem) => {
                    chosen.refused.insert(name.clone(), problem);
                }
            }
            if let Some(prev) = overridden {
                stock.notes.push(format!(
                    "{}: {} overrides {}",
                    shown(&name),
                    shown(&tree.path),
                    shown(&prev)
                ));
            }
        }
        chosen.tree_dirs.push(dir);
    }
    drop_disabled(cfg, &mut chosen, &mut stock.notes);
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

/// The top-level entries of a tree, in listing order: a service name, or
/// the problem that keeps the entry from being one. An alias is no entry:
/// it is said in `notices`.
fn top_level_entries(
    dir: &Dir,
    tree: &Path,
    notices: &mut Vec<String>,
) -> Result<Vec<(String, std::result::Result<(), Problem>)>> {
    let mut entries = Vec::new();
    for name in dir.names()? {
        let path = tree.join(&name);
        let label = name.to_string_lossy().into_owned();
        match classify(dir, &name, &path)? {
            TopLevel::Service => entries.push((label, Ok(()))),
            TopLevel::Alias(target) => notices.push(format!(
                "{}: an alias of {target} (a symlink in the same stock tree): {target} is \
                 supervised once; the alias is not added",
                shown(&path)
            )),
            TopLevel::Refused(what, fix) => entries.push((
                label,
                Err(Problem {
                    path,
                    what,
                    fix: fix.into(),
                    transient: false,
                }),
            )),
        }
    }
    Ok(entries)
}

/// What the entry `name` of a stock tree is.
fn classify(dir: &Dir, name: &OsStr, path: &Path) -> Result<TopLevel> {
    if let Some(why) = name_problem(name.as_encoded_bytes()) {
        return Ok(TopLevel::Refused(why, "rename the service directory"));
    }
    let st = dir.stat(name).map_err(|e| raced(e, path))?;
    Ok(match Kind::of(&st) {
        Kind::Dir => TopLevel::Service,
        Kind::Symlink => match alias_target(dir, name, path)? {
            Some(target) => TopLevel::Alias(target),
            None => TopLevel::Refused(
                "is a symlink, and not to a service directory of the same stock tree; a \
                 stock service must be a real directory"
                    .into(),
                "replace the link with a copy of the directory",
            ),
        },
        _ => TopLevel::Refused(
            "is not a directory; a stock tree holds only service directories".into(),
            "move the file out of the stock tree",
        ),
    })
}

/// The service a top-level symlink names when it is an alias: its target
/// is a plain name (`seatd` or `./seatd`) of a real directory, with a valid
/// service name, in the same tree.
fn alias_target(dir: &Dir, name: &OsStr, path: &Path) -> Result<Option<String>> {
    let target = dir.read_link(name).map_err(|e| raced(e, path))?;
    let Some(target) = target.to_str() else {
        return Ok(None);
    };
    let target = target.strip_prefix("./").unwrap_or(target);
    if target.contains('/') || name_problem(target.as_bytes()).is_some() {
        return Ok(None);
    }
    let is_dir = dir
        .try_stat(target)?
        .is_some_and(|st| Kind::of(&st) == Kind::Dir);
    Ok(is_dir.then(|| target.to_string()))
}

fn drop_disabled(cfg: &Config, chosen: &mut ChosenServices, notes: &mut Vec<String>) {
    for name in &cfg.disabled {
        let refused = chosen.refused.remove(name).is_some();
        if chosen.services.remove(name).is_some() || refused {
            notes.push(format!("{}: disabled by config", shown(name)));
        } else {
            notes.push(format!(
                "{}: listed in `disabled:` but in no stock tree",
                shown(name)
            ));
        }
    }
}

/// [`choose_services`] for the services `names` only (`commit --changed`,
/// docs/performance.md#hints): each name is looked up in every tree
/// instead of listing the trees, so the cost is per name, not per service.
/// A later tree overrides an earlier one, an alias is no entry of its own
/// (its target is read in its place) and `disabled:` drops names, as in a
/// full scan. Returns the names read: `names` and the alias targets.
pub(super) fn choose_named(
    cfg: &Config,
    stock: &mut Stock,
    problems: &mut Vec<Problem>,
    names: &BTreeSet<String>,
) -> Result<(ChosenServices, BTreeSet<String>)> {
    let mut chosen = ChosenServices::default();
    let mut trees = Vec::new();
    for tree in &cfg.stock {
        if let Some(dir) = open_tree(cfg, tree, problems)? {
            stock.trees.push(tree.path.clone());
            trees.push((dir, tree.path.clone()));
        }
    }
    // Every name and what it is in each tree; an alias adds its target.
    let mut named = names.clone();
    let mut found: Vec<(String, usize, TopLevel)> = Vec::new();
    let mut queue: Vec<String> = names.iter().cloned().collect();
    while let Some(name) = queue.pop() {
        for (index, (dir, tree)) in trees.iter().enumerate() {
            if dir.try_stat(&name)?.is_none() {
                continue;
            }
            let top = classify(dir, OsStr::new(&name), &tree.join(&name))?;
            if let TopLevel::Alias(target) = &top {
                if named.insert(target.clone()) {
                    queue.push(target.clone());
                }
            }
            found.push((name.clone(), index, top));
        }
    }
    // In tree order, so that a later tree overrides an earlier one.
    found.sort_by_key(|(_, index, _)| *index);
    for (name, index, top) in found {
        let tree = &trees[index].1;
        let path = tree.join(&name);
        match top {
            TopLevel::Service => {
                chosen.refused.remove(&name);
                chosen.services.insert(name, (index, tree.clone()));
            }
            TopLevel::Alias(target) => stock.notices.push(format!(
                "{}: an alias of {target} (a symlink in the same stock tree): {target} is \
                 supervised once; the alias is not added",
                shown(&path)
            )),
            TopLevel::Refused(what, fix) => {
                chosen.services.remove(&name);
                let problem = Problem {
                    path,
                    what,
                    fix: fix.into(),
                    transient: false,
                };
                chosen.refused.insert(name, problem);
            }
        }
    }
    chosen.tree_dirs = trees.into_iter().map(|(dir, _)| dir).collect();
    for name in &cfg.disabled {
        chosen.refused.remove(name);
        if chosen.services.remove(name).is_some() {
            stock
                .notes
                .push(format!("{}: disabled by config", shown(name)));
        }
    }
    Ok((chosen, named))
}
