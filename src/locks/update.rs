//! Per-service update locks (design §5): `<runtime>/locks/<name>.lock`.
//!
//! A service in a critical section holds its lock with `flock(LOCK_SH)`; a
//! transaction that will stop or restart services takes `LOCK_EX|LOCK_NB` on
//! each of their locks in sorted order, all or none, and holds them until
//! the old instances are stopped and `live` is switched. The files are made
//! by the tool (root-owned 0644 in a root-owned 0755 directory) and are never
//! written and never unlinked: unlinking a flock file would let two holders
//! coexist. A configured legacy, existence-style lock path counts as held
//! while it exists; the tool never creates or deletes it.
//!
//! This module never stops, starts or switches anything; it only decides
//! whether a transaction may go ahead.

use std::fmt;
use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::sys::fs::{self, Dir};
use crate::locks::holders::{self, LockHolder};
use crate::state::layout;
use crate::locks::manager::POLL;
use crate::output::report;
use crate::state::check_safe_dir;

/// Mode of the locks directory and of the lock files.
const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

/// The lock file name of a service.
pub(crate) fn file_name(service: &str) -> String {
    format!("{service}{}", layout::LOCK_SUFFIX)
}

/// `<runtime>/locks/<name>.lock`.
pub(crate) fn path(cfg: &Config, service: &str) -> PathBuf {
    cfg.runtime.join(layout::LOCKS).join(file_name(service))
}

/// Opens `<runtime>/locks`, creating it (and `<runtime>`) root-owned 0755;
/// refuses one that others could write (exit 77).
pub(crate) fn locks_dir(cfg: &Config) -> Result<Dir> {
    let runtime = Dir::open_or_create(&cfg.runtime, DIR_MODE)?;
    check_safe_dir(&runtime)?;
    let dir = runtime.ensure_dir(layout::LOCKS, DIR_MODE)?;
    check_safe_dir(&dir)?;
    Ok(dir)
}

/// `<runtime>/locks` if it exists (read-only commands never create it).
pub(crate) fn try_locks_dir(cfg: &Config) -> Result<Option<Dir>> {
    let Ok(runtime) = Dir::open(&cfg.runtime) else {
        return Ok(None);
    };
    runtime.try_open_dir(layout::LOCKS)
}

/// Makes sure every named service has its lock file, so services can take
/// it from their first start. Existing files are left exactly as they are.
pub(crate) fn ensure_files<'a>(cfg: &Config, services: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let dir = locks_dir(cfg)?;
    for service in services {
        dir.open_lock_file(file_name(service), FILE_MODE, false)?;
    }
    Ok(())
}

/// One service's update lock, held exclusively by a transaction.
#[derive(Debug)]
pub(crate) struct UpdateLock {
    file: File,
}

impl UpdateLock {
    /// Opens (creating if needed) the service's lock and tries `LOCK_EX|LOCK_NB`.
    /// `Ok(None)` when another process holds it.
    pub(crate) fn try_exclusive(dir: &Dir, service: &str) -> Result<Option<UpdateLock>> {
        let name = file_name(service);
        let file = dir.open_lock_file(&name, FILE_MODE, false)?;
        let got = fs::try_lock_exclusive(&file)
            .map_err(|e| Error::io("cannot lock", dir.join(&name), e))?;
        Ok(got.then_some(UpdateLock { file }))
    }
}

/// Why a service's update lock could not be taken.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum Blocker {
    /// Processes hold the flock.
    Flock {
        service: String,
        path: PathBuf,
        holders: Vec<LockHolder>,
    },
    /// A configured existence-style lock path exists.
    Legacy { service: String, path: PathBuf },
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::Flock {
                service,
                path,
                holders,
            } => write!(
                f,
                "{service}: {} is held by {}",
                path.display(),
                holders::describe(holders)
            ),
            Blocker::Legacy { service, path } => {
                write!(f, "{service}: the legacy lock {} exists", path.display())
            }
        }
    }
}

/// How a transaction treats held update locks.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LockPolicy {
    /// How long to poll held locks before giving up.
    pub wait: Duration,
    /// `--force`: go ahead despite holders, naming each one.
    pub force: bool,
}

/// The update locks a transaction holds; released in reverse order of
/// taking when dropped.
#[derive(Debug, Default)]
pub(crate) struct UpdateLocks {
    held: Vec<UpdateLock>,
    /// What `--force` (or `override_update_locks`) went past.
    pub overridden: Vec<Blocker>,
}

impl Drop for UpdateLocks {
    fn drop(&mut self) {
        while let Some(lock) = self.held.pop() {
            // Closing the fd releases the flock; unlock first so the order
            // is explicit even if the fd were shared.
            let _ = fs::unlock(&lock.file);
        }
    }
}

/// One attempt at every lock: the locks taken and what blocked the others.
/// Holders are looked up in `/proc` only when `name_holders` (a full scan
/// of `/proc`: not on every poll).
fn try_all(
    cfg: &Config,
    dir: &Dir,
    services: &[String],
    name_holders: bool,
) -> Result<(Vec<UpdateLock>, Vec<Blocker>)> {
    let mut held = Vec::new();
    let mut blocked = Vec::new();
    for service in services {
        match UpdateLock::try_exclusive(dir, service)? {
            Some(lock) => {
                // Legacy interop: checked after the flock, so a service that
                // creates its legacy file under our flock is seen.
                if let Some(legacy) = cfg.legacy_lock(service) {
                    if legacy.symlink_metadata().is_ok() {
                        blocked.push(Blocker::Legacy {
                            service: service.clone(),
                            path: legacy.to_path_buf(),
                        });
                        continue; // dropping `lock` releases its flock
                    }
                }
                held.push(lock);
            }
            None => {
                let holders = if name_holders {
                    let file = dir.open_lock_file(file_name(service), FILE_MODE, false)?;
                    fs::file_identity(&file)
                        .map(holders::holders_of)
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                blocked.push(Blocker::Flock {
                    service: service.clone(),
                    path: dir.join(file_name(service)),
                    holders,
                });
            }
        }
    }
    Ok((held, blocked))
}

/// Takes the update locks of `services` (sorted, deduplicated here): all
/// or none. Polls held locks up to `policy.wait`, saying who holds them,
/// then fails with exit 75 (`deferred` is appended to the message: what
/// the caller leaves behind). With `force` (or `override_update_locks`),
/// takes what it can and warns about every holder it goes past.
pub(crate) fn acquire_all(
    cfg: &Config,
    services: &[String],
    policy: LockPolicy,
    deferred: &str,
) -> Result<UpdateLocks> {
    let mut services = services.to_vec();
    services.sort();
    services.dedup();
    if services.is_empty() {
        return Ok(UpdateLocks::default());
    }
    let dir = locks_dir(cfg)?;
    let force = policy.force || cfg.override_update_locks;
    let deadline = Instant::now() + policy.wait;
    let mut told = false;
    loop {
        // Decided before the attempt, so the last attempt names the holders.
        let last = Instant::now() >= deadline;
        let (held, blocked) = try_all(cfg, &dir, &services, force || last || !told)?;
        if blocked.is_empty() {
            return Ok(UpdateLocks {
                held,
                overridden: Vec::new(),
            });
        }
        if force {
            let why = if policy.force {
                "--force"
            } else {
                "override_update_locks: true"
            };
            for b in &blocked {
                report::warn(&format!("{why}: overriding the update lock of {b}"));
            }
            return Ok(UpdateLocks {
                held,
                overridden: blocked,
            });
        }
        // All or none: let go of what we got before waiting or failing.
        drop(UpdateLocks {
            held,
            overridden: Vec::new(),
        });
        let list = blocked
            .iter()
            .map(Blocker::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if last {
            return Err(Error::busy(format!(
                "update locks are held: {list}. Nothing was stopped or switched{deferred}. \
                 Retry when they are released, wait longer with --wait SECS, or override with --force"
            )));
        }
        if !told {
            report::info(&format!(
                "waiting up to {:.1}s for update locks: {list}",
                policy.wait.as_secs_f64()
            ));
            told = true;
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// A service's update lock as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LockStatus {
    pub service: String,
    pub path: PathBuf,
    pub holders: Vec<LockHolder>,
}

/// Every held update lock under `<runtime>/locks`, with its holders.
pub(crate) fn held(cfg: &Config) -> Result<Vec<LockStatus>> {
    let Some(dir) = try_locks_dir(cfg)? else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    for name in dir.names()? {
        let Some(name) = name.to_str() else { continue };
        let Some(service) = name.strip_suffix(layout::LOCK_SUFFIX) else {
            continue;
        };
        let Some(file) = dir.try_open_lock_file(name)? else {
            continue;
        };
        if let Ok(id) = fs::file_identity(&file) {
            files.push((service.to_string(), dir.join(name), id));
        }
    }
    let ids = files.iter().map(|(_, _, id)| *id).collect();
    let mut holders = holders::holders_of_many(&ids);
    Ok(files
        .into_iter()
        .filter_map(|(service, path, id)| {
            holders.remove(&id).map(|holders| LockStatus {
                service,
                path,
                holders,
            })
        })
        .collect())
}
