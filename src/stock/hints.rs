//! Hints for a commit below the floor (docs/performance.md#hints): which
//! services the changed paths a package manager names belong to. A path
//! under a stock tree names the service of its first component (the
//! service directory, anything in it, or a top-level entry that came or
//! went); a path under a `restart_on` path names the services that watch
//! it; every other path names nothing and is only counted. Relative paths
//! are taken from `/`, as pacman's `NeedsTargets` gives them. Pure path
//! arithmetic: this module reads no file, so a wrong hint can only leave a
//! service out, which `verify --stock` reports.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::config::Config;

/// The services the hinted paths name.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Hinted {
    /// Service names (stock top-level names and `restart_on` watchers).
    pub services: BTreeSet<String>,
    /// Paths that name no service: outside every stock tree and
    /// `restart_on` path, a stock tree itself, or a name that is not UTF-8.
    pub ignored: usize,
    /// Relative paths that name no service from `/` but would from the
    /// working directory: an operator's `--changed sv/web/run` typed in
    /// `/etc`, worth a warning (docs/cli.md#commit---changed-path).
    pub relative_to_cwd: Vec<PathBuf>,
}

/// `path` made absolute from `/` and lexically normal: `.` dropped, `..`
/// taken back, no trailing slash. Nothing is resolved on disk.
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The stock trees as paths a hint may start with: as configured and, when
/// it resolves elsewhere (a symlinked `/etc/sv`), resolved.
fn tree_roots(cfg: &Config) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for tree in &cfg.stock {
        roots.push(normal(&tree.path));
        if let Ok(real) = std::fs::canonicalize(&tree.path) {
            if !roots.contains(&real) {
                roots.push(real);
            }
        }
    }
    roots
}

/// The services `paths` name (see the module header).
pub(crate) fn services_of(cfg: &Config, paths: &[PathBuf]) -> Hinted {
    let roots = tree_roots(cfg);
    let watched: Vec<(&String, PathBuf)> = cfg
        .restart_on
        .iter()
        .flat_map(|(name, paths)| paths.iter().map(move |p| (name, normal(p))))
        .collect();
    let mut hinted = Hinted::default();
    for path in paths {
        let path = normal(path);
        let stock = stock_services(&roots, &path);
        let mut named = !stock.is_empty();
        hinted.services.extend(stock);
        for (name, watched) in &watched {
            if path.starts_with(watched) {
                hinted.services.insert((*name).clone());
                named = true;
            }
        }
        if !named {
            hinted.ignored += 1;
        }
    }
    hinted.relative_to_cwd = misread_relative(cfg, paths, &hinted);
    hinted
}

/// The relative paths among `paths` that named nothing from `/` but name a
/// service taken from the working directory.
fn misread_relative(cfg: &Config, paths: &[PathBuf], hinted: &Hinted) -> Vec<PathBuf> {
    let Ok(cwd) = std::env::current_dir() else {
        return Vec::new();
    };
    if hinted.ignored == 0 || cwd == Path::new("/") {
        return Vec::new();
    }
    let roots = tree_roots(cfg);
    paths
        .iter()
        .filter(|p| p.is_relative())
        .filter(|p| {
            stock_services(&roots, &normal(p)).is_empty()
                && !stock_services(&roots, &normal(&cwd.join(p))).is_empty()
        })
        .cloned()
        .collect()
}

/// The stock services normal path `path` names: the first component
/// beneath each stock tree it is under.
fn stock_services(roots: &[PathBuf], path: &Path) -> Vec<String> {
    roots
        .iter()
        .filter_map(
            |root| match path.strip_prefix(root).ok()?.components().next() {
                Some(Component::Normal(name)) => name.to_str().map(str::to_string),
                _ => None,
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let yaml = "stock:\n  - {path: /nonexistent-hints/usr/sv, optional: true}\n  \
            - {path: /nonexistent-hints/etc/sv/, optional: true}\n\
            restart_on: {sshd: [/usr/bin/sshd]}\n";
        Config::from_bytes(
            yaml.as_bytes(),
            Path::new("/etc/svcdir-update/config.yaml"),
            None,
        )
        .unwrap()
    }

    fn names(paths: &[&str]) -> (Vec<String>, usize) {
        let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        let h = services_of(&config(), &paths);
        (h.services.into_iter().collect(), h.ignored)
    }

    #[test]
    fn paths_name_the_service_of_their_first_component() {
        assert_eq!(
            names(&[
                "/nonexistent-hints/usr/sv/a/run",
                "nonexistent-hints/etc/sv/b/",
                "/nonexistent-hints/etc/sv/c",
                "/nonexistent-hints/usr/sv/./d/log/../run",
            ]),
            (vec!["a".into(), "b".into(), "c".into(), "d".into()], 0)
        );
    }

    #[test]
    fn paths_outside_the_stock_and_the_trees_themselves_are_counted() {
        assert_eq!(
            names(&[
                "usr/bin/ls",
                "/nonexistent-hints/usr/sv/",
                "/nonexistent-hints/usr"
            ]),
            (vec![], 3)
        );
    }

    #[test]
    fn a_path_under_restart_on_names_its_watcher() {
        assert_eq!(
            names(&["usr/bin/sshd", "/usr/bin/sshd-keygen"]),
            (vec!["sshd".into()], 1)
        );
    }
}
