//! Reading and validating stock trees: the service directories that package
//! managers and administrators write.
//!
//! [`scan`] opens each configured tree, merges them (a later tree overrides
//! the same service name in an earlier one), drops disabled services, and
//! walks every service fd-relative without following symlinks, producing the
//! canonical [`Entry`] list and digest of each (a symlink to a file beneath a
//! stock tree is resolved there and recorded as that file). Every problem found is
//! collected, so `check` can report them all at once; a service with
//! problems is held back (`held_back`) and the rest stay usable, unless the
//! caller asks for all or nothing ([`Stock::all_or_nothing`]). This module only
//! reads; it never writes to a stock tree or anywhere else.
//!
//! The steps live in one module each: `trees` (open the trees, choose a tree
//! per service), `walker` (walk one service, per-entry checks), `required`
//! (`run` and `log/run`), `links` (where a shipped symlink leads), `s6rc`
//! (s6-rc source is refused), `budget` (the entry limit shared by all walks)
//! and `race` (the stock changed while reading).

mod budget;
pub(crate) mod capture;
pub(crate) mod exec_format;
pub(crate) mod held_back;
pub(crate) mod hints;
mod links;
pub(crate) mod packed;
mod race;
mod required;
pub(crate) mod restart_on;
mod s6rc;
pub(crate) mod stat_cache;
mod trees;
mod walker;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::PoisonError;

use rayon::prelude::*;

use crate::config::Config;
use crate::error::{Problem, Result};
use crate::model::identity::Identity;
use crate::model::owners::{Owners, StoreOwner};
use crate::model::tree::Entry;
use crate::output::progress::Counter;
use crate::stock::stat_cache::{Fingerprint, StatCache};
use packed::PackedEntries;

use budget::EntryBudget;
use held_back::{HeldBack, ProblemsByService};
pub(crate) use race::{changed_while_reading, raced, recheck, stale_hashes};
use trees::ChosenServices;
pub(crate) use trees::check_trees_exist;
use walker::{WalkContext, WalkedService};

/// One service as found in the stock.
#[derive(Debug, Clone)]
pub(crate) struct StockService {
    pub name: String,
    /// The stock tree it comes from (after overrides).
    pub tree: PathBuf,
    /// Canonical, sorted entries; `entries[0]` is the directory itself.
    pub entries: Vec<Entry>,
    /// `fingerprints[i]` is what `lstat` said of `entries[i]` when scanned.
    pub fingerprints: Vec<Fingerprint>,
    /// How many entries the walk found: `entries.len()`, also once they
    /// are let go.
    pub entry_count: usize,
    /// The walk found this service's object live and let go of its
    /// `entries` and `fingerprints` (both empty now): nothing will be
    /// copied or explained for it, and at 100,000 services keeping them
    /// would hold most of the scan's memory
    /// (docs/performance.md#100000-services-memory-after-this-change).
    /// Only a full read ([`ScanOptions::unchanged`] `None`) keeps them all.
    pub entries_dropped: bool,
    /// The digest of `entries` alone.
    pub digest: String,
    /// What else the object's identity covers: `restart_on` digests and a
    /// `commit --restart` marker, filled in by the engine when it plans.
    pub identity: Identity,
    /// Paths whose set-id bits were stripped.
    pub stripped_setid: Vec<String>,
    /// The entries that the stock ships as symlinks to files beneath a
    /// stock tree, and where those files are; the copy reads them there.
    pub linked: Vec<LinkedFile>,
    /// `entries` and `fingerprints`, packed (both empty then): a service a
    /// commit copies (new to the store, or changed: every service with
    /// [`ScanOptions::unchanged`] whose entries were not let go) keeps
    /// them only for the plan and staging, which take them back with
    /// [`StockService::unpacked`]
    /// (docs/performance.md#first-commit-memory-at-100000-services).
    pub packed: Option<PackedEntries>,
}

/// A file entry whose content comes from the file a symlink leads to.
#[derive(Debug, Clone)]
pub(crate) struct LinkedFile {
    /// The entry's path in the service.
    pub entry: String,
    /// The stock tree that holds the file.
    pub tree: PathBuf,
    /// The file, relative to `tree`; opened beneath it, never following a link.
    pub rel: PathBuf,
}

impl StockService {
    pub(crate) fn dir(&self) -> PathBuf {
        self.tree.join(&self.name)
    }

    /// The store object's digest (docs/design.md#identity).
    pub(crate) fn object_digest(&self) -> String {
        self.identity.object_digest(&self.digest)
    }

    pub(crate) fn object_name(&self) -> String {
        crate::model::names::object_name(&self.name, &self.object_digest())
    }

    /// Packs `entries` and `fingerprints` ([`StockService::packed`]).
    fn pack(&mut self) {
        self.packed = Some(PackedEntries::pack(&self.entries, &self.fingerprints));
        self.entries = Vec::new();
        self.fingerprints = Vec::new();
    }

    /// This service with its `entries` and `fingerprints` at hand: itself,
    /// or a copy with them unpacked when they were packed.
    pub(crate) fn unpacked(&self) -> Result<Cow<'_, StockService>> {
        let Some(packed) = &self.packed else {
            return Ok(Cow::Borrowed(self));
        };
        let Some((entries, fingerprints)) = packed.unpack() else {
            return Err(crate::error::Error::io(
                "cannot unpack what the scan recorded of",
                self.dir(),
                std::io::Error::new(std::io::ErrorKind::InvalidData, "packed entries"),
            ));
        };
        Ok(Cow::Owned(StockService {
            name: self.name.clone(),
            tree: self.tree.clone(),
            entries,
            fingerprints,
            entry_count: self.entry_count,
            entries_dropped: self.entries_dropped,
            digest: self.digest.clone(),
            identity: self.identity.clone(),
            stripped_setid: self.stripped_setid.clone(),
            linked: self.linked.clone(),
            packed: None,
        }))
    }
}

/// Which walked services may let go of their entries as soon as they are
/// walked: those whose store object is the live one, i.e. whose digest
/// matches live (docs/performance.md#100000-services-memory-after-this-change).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ScanOptions<'a> {
    /// The live generation's objects by service name; `None` keeps every
    /// service's entries (`verify --repair`, a first commit; `check` keeps
    /// its programs', [`ScanOptions::report_only`]).
    pub unchanged: Option<&'a BTreeMap<String, String>>,
    /// Services whose entries stay whatever live holds: `commit --restart`
    /// gives them a new object, which is copied from their entries.
    pub keep: &'a [String],
    /// The scan feeds a report, not a commit (`check`): as each service is
    /// walked it lets go of its fingerprints, its new hashes (nothing is
    /// saved) and every entry but its programs (`run`, `finish`, `log/run`,
    /// `log/finish`), which the exec-format warnings read, so that memory
    /// does not grow with every file of the stock
    /// (docs/performance.md#status-and-check-at-100000-services). Nothing
    /// may be planned or copied from such a stock: its
    /// `entries_dropped` says nothing of what was let go.
    pub report_only: bool,
}

/// All services of all stock trees, merged.
#[derive(Debug, Default)]
pub(crate) struct Stock {
    pub services: BTreeMap<String, StockService>,
    /// The trees that were read, in order.
    pub trees: Vec<PathBuf>,
    /// Informational lines: overrides, disabled services.
    pub notes: Vec<String>,
    /// Lines the operator should see on every commit: links left out of or
    /// kept as links in a copy (see docs/design.md#links).
    pub notices: Vec<String>,
    /// The stat cache after this scan (new hashes added, vanished files dropped).
    pub cache: StatCache,
    /// The services left out because of their problems, in name order;
    /// none of them is in `services`.
    pub held_back: Vec<HeldBack>,
    /// The problems behind `held_back`, for [`Stock::all_or_nothing`].
    problems: ProblemsByService,
    /// The services copied while they were read ([`scan_capturing`]),
    /// whose copies wait in the staging directory.
    pub captured: std::collections::BTreeSet<String>,
}

impl Stock {
    /// Holds back the service `name` for `problems` found after the scan
    /// (its `restart_on` paths): it leaves `services` for `held_back`.
    pub(crate) fn hold_back(&mut self, name: &str, problems: Vec<Problem>) {
        self.services.remove(name);
        self.problems
            .services
            .entry(name.to_string())
            .or_default()
            .extend(problems);
        self.held_back = self.problems.held_back();
    }

    /// The stock only when no service is held back; else the error with
    /// every problem (`check`, `--strict`, `strict: true`).
    pub(crate) fn all_or_nothing(mut self) -> Result<Stock> {
        match std::mem::take(&mut self.problems).into_error() {
            Some(err) => Err(err),
            None => Ok(self),
        }
    }
}

/// Reads and validates all stock trees. A service with problems is held
/// back; a problem that names no service (a missing tree, the entry
/// budget) fails the scan with every problem found.
pub(crate) fn scan(cfg: &Config, cache: StatCache, opts: ScanOptions<'_>) -> Result<Stock> {
    scan_capturing(cfg, cache, opts, None)
}

/// [`scan`], copying every service `capture` wants into its staging
/// directory while hashing it (docs/performance.md#reading-each-byte-once).
pub(crate) fn scan_capturing(
    cfg: &Config,
    cache: StatCache,
    opts: ScanOptions<'_>,
    capture: Option<&capture::Capture<'_>>,
) -> Result<Stock> {
    let mut problems = ProblemsByService::default();
    let mut stock = Stock::default();
    let chosen = trees::choose_services(cfg, &mut stock, &mut problems.global)?;
    scan_chosen(cfg, cache, stock, problems, &chosen, opts, capture)
}

/// [`scan`] of only the services `names` (`commit --changed`,
/// docs/performance.md#hints): each is looked up in every tree, with the
/// same overrides, aliases and `disabled:` as a full scan, and walked; no
/// other service is listed or read. The names actually read (an alias's
/// target added) come back with the stock.
pub(crate) fn scan_named(
    cfg: &Config,
    cache: StatCache,
    names: &std::collections::BTreeSet<String>,
) -> Result<(Stock, std::collections::BTreeSet<String>)> {
    let mut problems = ProblemsByService::default();
    let mut stock = Stock::default();
    let (chosen, named) = trees::choose_named(cfg, &mut stock, &mut problems.global, names)?;
    let opts = ScanOptions::default();
    Ok((
        scan_chosen(cfg, cache, stock, problems, &chosen, opts, None)?,
        named,
    ))
}

/// Walks the chosen services; a service with problems is held back.
fn scan_chosen(
    cfg: &Config,
    cache: StatCache,
    mut stock: Stock,
    mut problems: ProblemsByService,
    chosen: &ChosenServices,
    opts: ScanOptions<'_>,
    capture: Option<&capture::Capture<'_>>,
) -> Result<Stock> {
    for (name, problem) in &chosen.refused {
        problems
            .services
            .insert(name.clone(), vec![problem.clone()]);
    }
    let budget = EntryBudget::new(cfg.limits.max_entries);
    let learnt = std::sync::Mutex::new(Vec::new());
    let context = WalkContext {
        cfg,
        cache: &cache,
        budget: &budget,
        roots: &chosen.tree_dirs,
        opts,
        capture,
        learnt: &learnt,
        scan_start: now_seconds(),
    };
    crate::sys::failpoint::hit("stock.after-choose")?;
    let walked = walk_services(&context, chosen);
    let mut cache = cache;
    cache.learn(learnt.into_inner().unwrap_or_else(PoisonError::into_inner));
    // Each step below reuses the buffer of the one before (`Vec`'s
    // in-place collect): a second list of 100,000 services beside the
    // first was ≈ 30 MiB at the peak
    // (docs/performance.md#first-commit-memory-at-100000-services).
    let walked: Vec<WalkedService> = walked.into_iter().collect::<Result<_>>()?;
    let services = walked.into_iter().filter_map(|walked| {
        let WalkedService {
            service,
            problems: service_problems,
            notices: mut service_notices,
            captured,
        } = walked;
        stock.notices.append(&mut service_notices);
        if service_problems.is_empty() {
            if captured {
                stock.captured.insert(service.name.clone());
            }
            Some((service.name.clone(), service))
        } else {
            problems.services.insert(service.name, service_problems);
            None
        }
    });
    // Built from the sorted list at once, the map's nodes are full; inserted
    // one by one in order, each would stay half empty (≈ 25 MiB more at
    // 100,000 services).
    stock.services = services.collect();
    problems.global.extend(budget.exceeded_problem(cfg));
    stock.cache = cache;
    verdict(stock, problems)
}

/// Who publishes the store: the effective user and group of this process
/// (the state directory's owner, [`crate::sys::trust::Trust::OWN_DIR`]).
pub(crate) fn store_owner() -> StoreOwner {
    let me = StoreOwner {
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
    };
    match STATE_OWNER.get() {
        Some(owner) if owner.uid != me.uid => *owner,
        _ => me,
    }
}

/// The owner of the open state directory. A user who only reads another
/// user's state (`plan`, `verify`, docs/cli.md#non-root) computes object
/// identities and checks owners as the state owner would; the state owner
/// itself stores what it creates with its own uid and gid.
static STATE_OWNER: std::sync::OnceLock<StoreOwner> = std::sync::OnceLock::new();

/// Records the owner of the state directory just opened (the first one a
/// process opens; a process works on one state).
pub(crate) fn set_state_owner(uid: u32, gid: u32) {
    let _ = STATE_OWNER.set(StoreOwner { uid, gid });
}

/// Sets whose owners `service`'s object carries, with a notice when the
/// stock's owners are not kept, or are kept on request
/// (docs/security.md#published-objects-belong-to-the-state-owner).
fn decide_owners(cfg: &Config, service: &mut StockService, notices: &mut Vec<String>) {
    let me = store_owner();
    let listed = cfg.foreign_owners.iter().any(|s| s == &service.name);
    service.identity.owners = me.owners_for(&service.entries, listed);
    let others = service
        .entries
        .iter()
        .filter(|e| !me.already_stored(e))
        .count();
    match service.identity.owners {
        None => {}
        Some(Owners::Store) => notices.push(format!(
            "{}: {others} entries owned or writable by others in the stock are stored owned by \
             uid {} and not writable by others (list it in `foreign_owners` if it must write them)",
            service.dir().display(),
            me.uid
        )),
        Some(Owners::Stock) => notices.push(format!(
            "{}: keeps the stock's owners (`foreign_owners`): {others} of its live entries can be \
             changed by users other than uid {}",
            service.dir().display(),
            me.uid
        )),
    }
}

/// Walks every chosen service in parallel; the results keep name order.
/// A long read (thousands of services) counts them on a terminal
/// (docs/cli.md#progress).
fn walk_services(context: &WalkContext<'_>, chosen: &ChosenServices) -> Vec<Result<WalkedService>> {
    let counter = Counter::new("reading the stock", chosen.services.len(), "services");
    chosen
        .services
        .par_iter()
        .map(|(name, (index, tree))| {
            let service_dir = chosen.tree_dirs[*index]
                .open_dir(name)
                .map_err(|e| raced(e, &tree.join(name)))?;
            let walked = walker::walk_service(context, &service_dir, name, tree)
                .map(|walked| settle(context, walked));
            counter.tick();
            walked
        })
        .collect()
}

/// Decides the owners of a walked service without problems and, when its
/// object is then the live one, lets go of its entries: done here, inside
/// the parallel walk, so that the entries of unchanged services are never
/// all held at once (docs/performance.md#100000-services-memory-after-this-change).
fn settle(context: &WalkContext<'_>, mut walked: WalkedService) -> WalkedService {
    if !walked.problems.is_empty() {
        return walked;
    }
    let service = &mut walked.service;
    decide_owners(context.cfg, service, &mut walked.notices);
    if context.opts.report_only {
        service
            .entries
            .retain(|e| exec_format::PROGRAMS.contains(&e.path.as_str()));
        service.entries.shrink_to_fit();
        service.fingerprints = Vec::new();
        return walked;
    }
    if let (Some(live), false) = (context.opts.unchanged, walked.captured) {
        // Their identity is settled only after the walk (`restart_on`
        // digests, a `--restart` marker): their entries stay.
        let later = context.cfg.restart_on.contains_key(&service.name)
            || context.opts.keep.contains(&service.name);
        if !later && live.get(&service.name) == Some(&service.object_name()) {
            service.entries = Vec::new();
            service.fingerprints = Vec::new();
            service.entries_dropped = true;
            return walked;
        }
    }
    // What a commit copies (new to the store, or changed) is held until
    // staging, packed meanwhile; a read that keeps every service (`check`,
    // `verify --repair`) leaves them as they are.
    if walked.captured || context.opts.unchanged.is_some() {
        service.pack();
    }
    walked
}

/// The stock with its held-back services; every problem as one error when
/// one of them names no single service.
fn verdict(mut stock: Stock, problems: ProblemsByService) -> Result<Stock> {
    if problems.global.is_empty() {
        stock.held_back = problems.held_back();
        stock.problems = problems;
        return Ok(stock);
    }
    match problems.into_error() {
        Some(err) => Err(err),
        None => Ok(stock),
    }
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
