//! Configuration: the YAML file, the `--root` shortcut, and the resolved
//! [`Config`] every command works from.
//!
//! Parsing is strict: unknown keys and wrong types are errors naming the key
//! and the file. Relative paths are taken relative to the directory holding
//! the config file (or to `--root`). This module reads one file and nothing
//! else; it never creates anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::limits::MAX_PATH;
use crate::model::limits::MAX_WAIT_SECS;
use crate::model::names::name_problem;
use crate::sys::trust::{Found, Trust};

/// A config file is a few lines; anything much larger is not one.
const MAX_CONFIG_BYTES: usize = 1 << 20;

pub(crate) const DEFAULT_CONFIG: &str = "/etc/svcdir-update/config.yaml";
pub(crate) const DEFAULT_STATE: &str = "/var/lib/svcdir-update";
pub(crate) const DEFAULT_RUNTIME: &str = "/run/svcdir-update";
pub(crate) const DEFAULT_SCANDIR: &str = "/run/service";
pub(crate) const DEFAULT_STOCK: [&str; 2] =
    ["/usr/share/svcdir-update/stock", "/etc/svcdir-update/stock"];
pub(crate) const DEFAULT_RUNTIME_ENTRIES: [&str; 4] =
    ["supervise", "event", "log/supervise", "log/event"];

/// Which supervisor family drives the services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Supervisor {
    S6,
    Runit,
    Daemontools,
    #[default]
    None,
}

impl Supervisor {
    /// The config's spelling: `s6`, `runit`, `daemontools`, `none`.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Supervisor::S6 => "s6",
            Supervisor::Runit => "runit",
            Supervisor::Daemontools => "daemontools",
            Supervisor::None => "none",
        }
    }
}

/// One stock tree: a path, optionally allowed to be missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StockTree {
    pub path: PathBuf,
    pub optional: bool,
}

/// Size limits that keep a hostile or broken stock tree from exhausting memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Limits {
    /// Entries (files, directories, links) in all stock trees together.
    pub max_entries: u64,
    /// Bytes of one file.
    pub max_file_size: u64,
    /// Directory depth below a service directory.
    pub max_depth: usize,
    /// Bytes one commit may copy into the store: the logical sizes of the
    /// files of every new store object (docs/security.md#sparse-files).
    pub max_stage_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 2_000_000,
            max_file_size: 1 << 30,
            max_depth: 32,
            max_stage_bytes: 4 << 30,
        }
    }
}

/// Per-service legacy lock paths (optional interop; see
/// `docs/update-locks.md#legacy-existence-style-locks`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLegacyLock {
    service: String,
    path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawStock {
    Path(PathBuf),
    Tree {
        path: PathBuf,
        #[serde(default)]
        optional: bool,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    stock: Option<Vec<RawStock>>,
    state: Option<PathBuf>,
    runtime: Option<PathBuf>,
    scandir: Option<PathBuf>,
    supervisor: Option<Supervisor>,
    disabled: Option<Vec<String>>,
    keep_generations: Option<usize>,
    lock_wait: Option<f64>,
    update_lock_wait: Option<f64>,
    stop_timeout: Option<f64>,
    max_parallel_stops: Option<usize>,
    runtime_entries: Option<Vec<String>>,
    override_update_locks: Option<bool>,
    allow_setid: Option<Vec<String>>,
    foreign_owners: Option<Vec<String>>,
    legacy_locks: Option<Vec<RawLegacyLock>>,
    limits: Option<Limits>,
    restart_on: Option<BTreeMap<String, Vec<PathBuf>>>,
    strict: Option<bool>,
    update_lock_group: Option<BTreeMap<String, String>>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Where it came from, for messages (`None`: built-in defaults).
    pub source: Option<PathBuf>,
    pub stock: Vec<StockTree>,
    pub state: PathBuf,
    pub runtime: PathBuf,
    pub scandir: PathBuf,
    pub supervisor: Supervisor,
    pub disabled: Vec<String>,
    pub keep_generations: usize,
    pub lock_wait: Duration,
    pub update_lock_wait: Duration,
    pub stop_timeout: Duration,
    /// How many old instances a transaction stops at once
    /// (docs/supervisors.md#no-overlap).
    pub max_parallel_stops: usize,
    pub runtime_entries: Vec<String>,
    pub override_update_locks: bool,
    pub allow_setid: Vec<String>,
    /// Services whose store objects keep the stock's owners and modes, so
    /// those owners can change them (weaker; docs/security.md#published-objects-belong-to-the-state-owner).
    pub foreign_owners: Vec<String>,
    pub legacy_locks: Vec<(String, PathBuf)>,
    pub limits: Limits,
    /// Service → the paths whose content is part of its identity: a change
    /// there restarts it (docs/design.md#identity).
    pub restart_on: BTreeMap<String, Vec<PathBuf>>,
    /// All or nothing: a stock problem in any service stops the whole
    /// commit (`--strict`); else that service is held back
    /// (docs/design.md#held-back).
    pub strict: bool,
    /// Read every file instead of trusting the stat cache (`commit
    /// --rehash`, `plan --rehash`); not a config-file key
    /// (docs/security.md#a-stale-stat-cache).
    pub rehash: bool,
    /// Service → the group its update lock is restricted to: the file is
    /// 0640, owned by that group (docs/update-locks.md#restricting-a-lock-to-a-group).
    pub update_lock_group: BTreeMap<String, LockGroup>,
}

/// A group named by `update_lock_group`, resolved when the config is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LockGroup {
    /// The name as configured.
    pub name: String,
    pub gid: u32,
}

/// How the command line chose the configuration.
#[derive(Debug, Clone, Default)]
pub(crate) enum ConfigSource {
    /// `/etc/svcdir-update/config.yaml` if it exists, else built-in defaults.
    #[default]
    Default,
    File(PathBuf),
    Root(PathBuf),
}

impl Config {
    pub(crate) fn load(source: &ConfigSource) -> Result<Config> {
        match source {
            ConfigSource::Default => {
                let path = Path::new(DEFAULT_CONFIG);
                if path.exists() {
                    Config::from_file(path, None)
                } else {
                    Config::resolve(RawConfig::default(), None, None)
                }
            }
            ConfigSource::File(path) => Config::from_file(path, None),
            ConfigSource::Root(root) => {
                let root = absolute(root)?;
                let path = root.join("config.yaml");
                if path.exists() {
                    Config::from_file(&path, Some(&root))
                } else {
                    Config::resolve(RawConfig::default(), None, Some(&root))
                }
            }
        }
    }

    fn from_file(path: &Path, root: Option<&Path>) -> Result<Config> {
        use std::io::Read;
        let cannot = |e: std::io::Error| Error::Config {
            path: path.to_path_buf(),
            msg: format!("cannot read the config file: {e}"),
        };
        // One open: the checked file is the file read.
        let mut file = fs_err::File::open(path).map_err(cannot)?;
        let md = file.metadata().map_err(cannot)?;
        check_trusted(path, (&md).into(), "config file")?;
        let mut bytes = Vec::new();
        file.by_ref()
            .take(MAX_CONFIG_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(cannot)?;
        Config::from_bytes(&bytes, path, root)
    }

    /// Parses and resolves the bytes of a config file named `path` (which
    /// is only used for messages and relative paths). Anything that is not
    /// a valid config — not UTF-8, not YAML, unknown keys, wrong types,
    /// bad values — is an [`Error::Config`] naming the file (exit 65).
    pub(crate) fn from_bytes(bytes: &[u8], path: &Path, root: Option<&Path>) -> Result<Config> {
        let bad = |msg: String| Error::Config {
            path: path.to_path_buf(),
            msg,
        };
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(bad(format!(
                "the config file is larger than {MAX_CONFIG_BYTES} bytes"
            )));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| bad(format!("the config file is not UTF-8 text: {e}")))?;
        if let Some(why) = crate::format::yaml_guard::yaml_nesting_problem(bytes) {
            return Err(bad(format!("the config file is not valid: {why}")));
        }
        let raw = parse(text).map_err(bad)?;
        Config::resolve(raw, Some(path), root)
    }

    /// Applies the defaults and checks the values of a parsed config file
    /// (`file`), or of none; every error names the file.
    fn resolve(raw: RawConfig, file: Option<&Path>, root: Option<&Path>) -> Result<Config> {
        let resolver = ConfigResolver::new(file, root)?;
        let stock = resolver.stock_trees(raw.stock)?;
        let runtime_entries = resolver.runtime_entries(raw.runtime_entries)?;
        let keep_generations = resolver.keep_generations(raw.keep_generations)?;
        Ok(Config {
            source: file.map(Path::to_path_buf),
            stock,
            state: resolver.path_or(raw.state, "state", DEFAULT_STATE),
            runtime: resolver.path_or(raw.runtime, "run", DEFAULT_RUNTIME),
            scandir: resolver.path_or(raw.scandir, "service", DEFAULT_SCANDIR),
            supervisor: raw.supervisor.unwrap_or_default(),
            disabled: raw.disabled.unwrap_or_default(),
            keep_generations,
            lock_wait: resolver.seconds("lock_wait", raw.lock_wait, 60.0)?,
            update_lock_wait: resolver.seconds("update_lock_wait", raw.update_lock_wait, 0.0)?,
            stop_timeout: resolver.seconds("stop_timeout", raw.stop_timeout, 10.0)?,
            max_parallel_stops: resolver.max_parallel_stops(raw.max_parallel_stops)?,
            runtime_entries,
            override_update_locks: raw.override_update_locks.unwrap_or(false),
            allow_setid: raw.allow_setid.unwrap_or_default(),
            foreign_owners: resolver.service_names("foreign_owners", raw.foreign_owners)?,
            legacy_locks: raw
                .legacy_locks
                .unwrap_or_default()
                .into_iter()
                .map(|l| (l.service, resolver.rel(l.path)))
                .collect(),
            limits: raw.limits.unwrap_or_default(),
            restart_on: resolver.restart_on(raw.restart_on)?,
            strict: raw.strict.unwrap_or(false),
            rehash: false,
            update_lock_group: resolver.update_lock_group(raw.update_lock_group)?,
        })
    }

    /// The configured legacy lock path of a service, if any.
    pub(crate) fn legacy_lock(&self, service: &str) -> Option<&Path> {
        self.legacy_locks
            .iter()
            .find(|(s, _)| s == service)
            .map(|(_, p)| p.as_path())
    }
}

/// What resolving a config needs besides the parsed values: where relative
/// paths start, where `--root` puts the defaults, and the file to name in
/// errors.
struct ConfigResolver<'a> {
    file: Option<&'a Path>,
    root: Option<&'a Path>,
    /// `--root`, else the directory of the config file.
    base: Option<PathBuf>,
}

impl<'a> ConfigResolver<'a> {
    fn new(file: Option<&'a Path>, root: Option<&'a Path>) -> Result<ConfigResolver<'a>> {
        let base = match (root, file) {
            (Some(root), _) => Some(root.to_path_buf()),
            (None, Some(file)) => Some(absolute(file.parent().unwrap_or(Path::new("/")))?),
            (None, None) => None,
        };
        Ok(ConfigResolver { file, root, base })
    }

    fn bad(&self, msg: String) -> Error {
        Error::Config {
            path: self
                .file
                .map_or_else(|| PathBuf::from("<defaults>"), Path::to_path_buf),
            msg,
        }
    }

    /// A configured path, relative ones taken from the base, normalized.
    fn rel(&self, p: PathBuf) -> PathBuf {
        match &self.base {
            Some(b) if p.is_relative() => normalize(&b.join(p)),
            _ => normalize(&p),
        }
    }

    /// A configured path, else `name` under `--root`, else `default`.
    fn path_or(&self, configured: Option<PathBuf>, name: &str, default: &str) -> PathBuf {
        match (configured, self.root) {
            (Some(p), _) => self.rel(p),
            (None, Some(r)) => r.join(name),
            (None, None) => PathBuf::from(default),
        }
    }

    fn stock_trees(&self, raw: Option<Vec<RawStock>>) -> Result<Vec<StockTree>> {
        let stock: Vec<StockTree> = match raw {
            Some(list) => list
                .into_iter()
                .map(|s| match s {
                    RawStock::Path(p) => StockTree {
                        path: self.rel(p),
                        optional: false,
                    },
                    RawStock::Tree { path, optional } => StockTree {
                        path: self.rel(path),
                        optional,
                    },
                })
                .collect(),
            None => self.default_stock_trees(),
        };
        if stock.is_empty() {
            return Err(
                self.bad("`stock:` lists no tree; name at least one stock directory".into())
            );
        }
        Ok(stock)
    }

    /// `<root>/stock` under `--root`; else the packaged and the local tree,
    /// both optional.
    fn default_stock_trees(&self) -> Vec<StockTree> {
        match self.root {
            Some(r) => vec![StockTree {
                path: r.join("stock"),
                optional: false,
            }],
            None => DEFAULT_STOCK
                .iter()
                .map(|p| StockTree {
                    path: PathBuf::from(p),
                    optional: true,
                })
                .collect(),
        }
    }

    fn seconds(&self, key: &str, v: Option<f64>, default: f64) -> Result<Duration> {
        let v = v.unwrap_or(default);
        if !(0.0..=MAX_WAIT_SECS).contains(&v) {
            // NaN and the infinities fail here too.
            return Err(self.bad(format!(
                "`{key}: {v}` must be a number of seconds from 0 to {MAX_WAIT_SECS} (a week)"
            )));
        }
        Duration::try_from_secs_f64(v)
            .map_err(|_| self.bad(format!("`{key}: {v}` must be a number of seconds ≥ 0")))
    }

    fn runtime_entries(&self, raw: Option<Vec<String>>) -> Result<Vec<String>> {
        let runtime_entries = raw.unwrap_or_else(|| {
            DEFAULT_RUNTIME_ENTRIES
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        for e in &runtime_entries {
            if e.is_empty()
                || e.starts_with('/')
                || e.split('/').any(|c| c == ".." || c == "." || c.is_empty())
            {
                return Err(self.bad(format!(
                    "`runtime_entries` item {e:?} must be a relative path inside a service, like `supervise` or `log/event`"
                )));
            }
        }
        Ok(runtime_entries)
    }

    /// `restart_on:`: valid service names, each with a bounded list of
    /// absolute, plain paths (no `.` or `..`: the path is also what `plan`
    /// names).
    fn restart_on(
        &self,
        raw: Option<BTreeMap<String, Vec<PathBuf>>>,
    ) -> Result<BTreeMap<String, Vec<PathBuf>>> {
        let restart_on = raw.unwrap_or_default();
        for (service, paths) in &restart_on {
            if let Some(why) = name_problem(service.as_bytes()) {
                return Err(self.bad(format!("`restart_on`: {why}")));
            }
            if paths.len() > MAX_RESTART_ON_PATHS {
                return Err(self.bad(format!(
                    "`restart_on` of {service} lists {} paths; the limit is {MAX_RESTART_ON_PATHS} (name a directory instead)",
                    paths.len()
                )));
            }
            for path in paths {
                if let Some(why) = restart_on_path_problem(path) {
                    return Err(self.bad(format!(
                        "`restart_on` of {service}: {:?} {why}",
                        path.display().to_string()
                    )));
                }
            }
        }
        Ok(restart_on)
    }

    /// A list of service names (`key`), each a valid name.
    fn service_names(&self, key: &str, raw: Option<Vec<String>>) -> Result<Vec<String>> {
        let names = raw.unwrap_or_default();
        for name in &names {
            if let Some(why) = name_problem(name.as_bytes()) {
                return Err(self.bad(format!("`{key}` item {name:?}: {why}")));
            }
        }
        Ok(names)
    }

    /// `update_lock_group:`: valid service names, each with a group that
    /// exists (looked up through NSS, like `chgrp`).
    fn update_lock_group(
        &self,
        raw: Option<BTreeMap<String, String>>,
    ) -> Result<BTreeMap<String, LockGroup>> {
        let mut groups = BTreeMap::new();
        for (service, name) in raw.unwrap_or_default() {
            if let Some(why) = name_problem(service.as_bytes()) {
                return Err(self.bad(format!("`update_lock_group`: {why}")));
            }
            let found = nix::unistd::Group::from_name(&name).map_err(|e| {
                self.bad(format!(
                    "`update_lock_group` of {service}: cannot look up group \"{}\": {e}",
                    crate::model::shown::shown(&name)
                ))
            })?;
            let Some(group) = found else {
                return Err(self.bad(format!(
                    "`update_lock_group` of {service}: there is no group \"{}\"; create it \
                     (`groupadd`) or name an existing one",
                    crate::model::shown::shown(&name)
                )));
            };
            let gid = group.gid.as_raw();
            groups.insert(service, LockGroup { name, gid });
        }
        Ok(groups)
    }

    fn keep_generations(&self, raw: Option<usize>) -> Result<usize> {
        let keep_generations = raw.unwrap_or(5);
        if keep_generations == 0 {
            return Err(self.bad("`keep_generations: 0` would delete the current generation's history; use 1 or more".into()));
        }
        Ok(keep_generations)
    }

    fn max_parallel_stops(&self, raw: Option<usize>) -> Result<usize> {
        let stops = raw.unwrap_or(DEFAULT_PARALLEL_STOPS);
        if !(1..=MAX_PARALLEL_STOPS).contains(&stops) {
            return Err(self.bad(format!(
                "`max_parallel_stops: {stops}` is out of range; use 1 to {MAX_PARALLEL_STOPS} \
                 (1 stops one service at a time)"
            )));
        }
        Ok(stops)
    }
}

/// How many old instances are stopped at once by default. A stop is a
/// thread that mostly sleeps (docs/supervisors.md#no-overlap), so a commit
/// restarting 50 services stops them all in one round.
pub(crate) const DEFAULT_PARALLEL_STOPS: usize = 64;

/// The most `max_parallel_stops` may be: a thread each.
const MAX_PARALLEL_STOPS: usize = 1024;

/// The most `restart_on` paths one service may list.
const MAX_RESTART_ON_PATHS: usize = 64;

/// Why `path` cannot be a `restart_on` path, or `None`.
fn restart_on_path_problem(path: &Path) -> Option<&'static str> {
    use std::path::Component;
    let bytes = path.as_os_str().len();
    if !path.is_absolute() {
        return Some("must be an absolute path");
    }
    if bytes > MAX_PATH || path.components().count() < 2 {
        return Some("must name a file or directory below `/`, at most 4096 bytes");
    }
    if path
        .components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
        || path
            .to_str()
            .is_none_or(|p| p.chars().any(char::is_control))
    {
        return Some("must be a plain path without `.`, `..` or control characters");
    }
    None
}

/// Refuses (exit 77) a config file or stock tree that a user other than
/// root or the one running the tool could change: whoever can write it
/// chooses what root copies into the store and supervisors run.
pub(crate) fn check_trusted(path: &Path, found: Found, what: &'static str) -> Result<()> {
    Trust::input(what).check(path, found)
}

/// Parses config text; the error names the key and position.
fn parse(text: &str) -> std::result::Result<RawConfig, String> {
    if text.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    serde_yaml::from_str::<RawConfig>(text).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("untagged enum RawStock") {
            return "stock: each item must be a path or {path: ..., optional: true}; \
                    see docs/cli.md#configuration"
                .into();
        }
        let plain = crate::format::config_words::plain_yaml_error(text, &msg);
        // A suggestion or a tab says what to do; the rest points to the keys.
        if plain.contains("docs/cli.md") || plain.ends_with('?') || plain.contains("tabs cannot") {
            plain
        } else {
            format!("{plain}; see docs/cli.md#configuration for the keys")
        }
    })
}

/// Makes a path absolute and drops `.` and `..` components lexically, so
/// that links and messages show clean paths.
fn absolute(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| Error::io("cannot resolve", p, e))?;
    Ok(normalize(&abs))
}

fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Writes a new config file at `path` holding `supervisor` (with
/// `comment` after it, saying why) and nothing else, so every other key
/// keeps its default; false when a file is already there (it is never
/// replaced). Durable: written to a temporary, fsynced, and published with
/// a rename that does not replace.
pub(crate) fn write_new_config(path: &Path, supervisor: Supervisor, comment: &str) -> Result<bool> {
    use std::io::Write;
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(false);
    };
    let dir = crate::sys::fs::Dir::open_or_create(parent, 0o755)?;
    if dir.try_stat(name)?.is_some() {
        return Ok(false);
    }
    let key = supervisor.key();
    let text = format!(
        "# Written by `svcdir-update init`; every other key has its default\n\
         # (docs/cli.md#configuration).\n\
         supervisor: {key}  # {comment}\n"
    );
    let tmp = format!(".tmp-{}", name.to_string_lossy());
    dir.remove_if_exists(&tmp)?;
    let mut file = dir.create_file(&tmp, 0o644)?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::create("write", dir.join(&tmp), e))?;
    crate::sys::fs::sync_file(&file, &dir.join(&tmp))?;
    let written = dir.rename_noreplace(&tmp, &dir, name)?;
    if !written {
        dir.remove_if_exists(&tmp)?;
    }
    dir.sync()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let err = parse("stock: [/a]\nsupervizor: s6\n").unwrap_err();
        assert!(err.contains("supervizor"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = parse("keep_generations: many\n").unwrap_err();
        assert!(err.contains("keep_generations"), "{err}");
    }

    const SAMPLE: &str = "stock:\n  - /usr/share/x\n  - {path: /etc/x, optional: true}\n\
        state: /var/lib/x\nruntime: /run/x\nscandir: /run/service\nsupervisor: s6\n\
        disabled: [a, b]\nkeep_generations: 3\nlock_wait: 2.5\nupdate_lock_wait: 1\n\
        stop_timeout: 4\nruntime_entries: [supervise, log/supervise]\n\
        override_update_locks: false\nallow_setid: [web]\nforeign_owners: [db]\n\
        legacy_locks: [{service: web, path: /run/web.busy}]\n\
        limits: {max_entries: 10, max_file_size: 100, max_depth: 4}\n\
        restart_on: {web: [/usr/sbin/web, /etc/web]}\n";

    fn from(bytes: &[u8]) -> Result<Config> {
        Config::from_bytes(bytes, Path::new("/etc/svcdir-update/config.yaml"), None)
    }

    #[test]
    fn the_sample_that_the_damage_starts_from_is_valid() {
        let cfg = from(SAMPLE.as_bytes()).unwrap();
        assert_eq!(cfg.limits.max_depth, 4);
        assert_eq!(cfg.legacy_locks.len(), 1);
        assert_eq!(cfg.restart_on["web"].len(), 2);
    }

    #[test]
    fn restart_on_refuses_bad_names_and_paths() {
        let many = format!(
            "restart_on: {{web: [{}]}}\n",
            (0..65)
                .map(|i| format!("/p{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (bad, named) in [
            ("restart_on: {web: [usr/sbin/web]}\n", "absolute"),
            ("restart_on: {web: [/]}\n", "below `/`"),
            ("restart_on: {web: [/usr/../etc]}\n", "`..`"),
            ("restart_on: {../web: [/etc]}\n", "service name"),
            ("restart_on: {web: /etc}\n", "restart_on"),
            (many.as_str(), "the limit is 64"),
        ] {
            let err = from(bad.as_bytes()).unwrap_err();
            assert_eq!(err.exit_code(), 65, "{bad}: {err}");
            assert!(err.to_string().contains(named), "{bad}: {err}");
        }
    }

    #[test]
    fn update_lock_group_names_an_existing_group_or_is_a_clear_error() {
        let cfg = from(b"update_lock_group: {web: root}\n").unwrap();
        assert_eq!(
            cfg.update_lock_group["web"],
            LockGroup {
                name: "root".into(),
                gid: 0
            }
        );
        for (bad, named) in [
            (
                "update_lock_group: {web: no-such-group-here}\n",
                "`update_lock_group` of web: there is no group \"no-such-group-here\"",
            ),
            ("update_lock_group: {../web: root}\n", "`update_lock_group`"),
            ("update_lock_group: {web: [root]}\n", "update_lock_group"),
        ] {
            let err = from(bad.as_bytes()).unwrap_err();
            assert_eq!(err.exit_code(), 65, "{bad}: {err}");
            assert!(err.to_string().contains(named), "{bad}: {err}");
        }
    }

    proptest::proptest! {
        #![proptest_config(crate::test_support::mutate::config())]
        /// Damaged and random config files never panic: each is either a
        /// config or an error naming the file, exit 65.
        #[test]
        fn damaged_config_is_a_config_or_a_clear_error(
            bytes in crate::test_support::mutate::damaged(vec![SAMPLE.into(), b"stock: [/a]\n".to_vec()])
        ) {
            if let Err(e) = from(&bytes) {
                proptest::prop_assert_eq!(e.exit_code(), 65, "{}", e);
                proptest::prop_assert!(e.to_string().contains("/etc/svcdir-update/config.yaml"));
            }
        }
    }

    #[test]
    fn alias_bombs_deep_nesting_and_non_utf8_are_errors() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = if i == 1 {
                "a".to_string()
            } else {
                format!("a{}", i - 1)
            };
            bomb.push_str(&format!(
                "a{i}: &a{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let deep = format!("disabled: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        for bad in [
            bomb.as_bytes(),
            deep.as_bytes(),
            b"stock: [/\xff]\n",
            &[0u8; 64][..],
        ] {
            let err = from(bad).unwrap_err();
            assert_eq!(err.exit_code(), 65, "{err}");
        }
    }

    #[test]
    fn relative_paths_are_taken_from_the_root() {
        let raw = parse("stock: [a, {path: /b, optional: true}]\nsupervisor: s6\n").unwrap();
        let cfg = Config::resolve(raw, None, Some(Path::new("/r"))).unwrap();
        assert_eq!(cfg.stock[0].path, Path::new("/r/a"));
        assert!(cfg.stock[1].optional);
        assert_eq!(cfg.state, Path::new("/r/state"));
        assert_eq!(cfg.scandir, Path::new("/r/service"));
        assert_eq!(cfg.supervisor, Supervisor::S6);
    }

    #[test]
    fn max_parallel_stops_has_a_default_and_a_range() {
        assert_eq!(from(b"stock: [/a]\n").unwrap().max_parallel_stops, 64);
        let cfg = from(b"stock: [/a]\nmax_parallel_stops: 1\n").unwrap();
        assert_eq!(cfg.max_parallel_stops, 1);
        for bad in ["0", "1025", "-1", "many"] {
            let text = format!("stock: [/a]\nmax_parallel_stops: {bad}\n");
            let err = from(text.as_bytes()).unwrap_err();
            assert_eq!(err.exit_code(), 65, "{err}");
            assert!(err.to_string().contains("max_parallel_stops"), "{err}");
        }
    }
}
