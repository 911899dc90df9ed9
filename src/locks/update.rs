//! Per-service update locks: `<runtime>/locks/<name>.lock`, taken by a
//! commit before it stops anything (docs/design.md#commit).
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
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::locks::holders::{self, LockHolder, LockMode};
use crate::locks::lock_dir::{LockDir, LockKind};
use crate::locks::wait::{self, Attempt, NameHolders};
use crate::model::shown::shown;
use crate::output::report;
use crate::sys::fs;

/// `<runtime>/locks/<name>.lock`.
pub(crate) fn path(cfg: &Config, service: &str) -> PathBuf {
    LockKind::Update.path(cfg, service)
}

/// Opens `<runtime>/locks`, creating it (and `<runtime>`) root-owned 0755;
/// refuses one that others could write (exit 77).
pub(crate) fn locks_dir(cfg: &Config) -> Result<LockDir> {
    LockDir::create(cfg, LockKind::Update)
}

/// `<runtime>/locks` if it exists (read-only commands never create it).
pub(crate) fn try_locks_dir(cfg: &Config) -> Result<Option<LockDir>> {
    LockDir::open_existing(cfg, LockKind::Update)
}

/// Makes sure every named service has its lock file, so services can take
/// it from their first start. Existing files are left exactly as they are.
/// Side by side: a no-op commit opens one per live service
/// (docs/performance.md#100000-services-memory-after-this-change).
pub(crate) fn ensure_files<'a>(
    cfg: &Config,
    services: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    use rayon::prelude::*;
    let dir = locks_dir(cfg)?;
    let services: Vec<&str> = services.into_iter().collect();
    services
        .par_iter()
        .try_for_each(|service| dir.open(service, false).map(drop))
}

/// Gives every existing lock file of a service in `update_lock_group` its
/// mode and group (docs/update-locks.md#restricting-a-lock-to-a-group):
/// a commit that does not touch the service still applies a new config.
pub(crate) fn apply_groups(cfg: &Config) -> Result<()> {
    if cfg.update_lock_group.is_empty() {
        return Ok(());
    }
    let dir = locks_dir(cfg)?;
    for service in cfg.update_lock_group.keys() {
        if dir.exists(service)? {
            dir.open(service, false)?;
        }
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
    pub(crate) fn try_exclusive(dir: &LockDir, service: &str) -> Result<Option<UpdateLock>> {
        let file = dir.try_lock(service, LockMode::Exclusive, false)?;
        Ok(file.map(|file| UpdateLock { file }))
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

impl Blocker {
    /// The service whose lock blocks.
    fn service(&self) -> &str {
        match self {
            Blocker::Flock { service, .. } | Blocker::Legacy { service, .. } => service,
        }
    }
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
                shown(&path),
                holders::describe(holders)
            ),
            Blocker::Legacy { service, path } => {
                write!(f, "{service}: the legacy lock {} exists", shown(&path))
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
    dir: &LockDir,
    services: &[String],
    name_holders: NameHolders,
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
            None => blocked.push(Blocker::Flock {
                service: service.clone(),
                path: dir.path(service),
                holders: if name_holders.0 {
                    dir.holders(service)?
                } else {
                    Vec::new()
                },
            }),
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
    let try_once = |name_holders: NameHolders| {
        let (held, blocked) = try_all(cfg, &dir, &services, NameHolders(force || name_holders.0))?;
        if blocked.is_empty() {
            return Ok(Attempt::Taken(UpdateLocks {
                held,
                overridden: Vec::new(),
            }));
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
            return Ok(Attempt::Taken(UpdateLocks {
                held,
                overridden: blocked,
            }));
        }
        // All or none: let go of what we got before waiting or failing.
        drop(UpdateLocks {
            held,
            overridden: Vec::new(),
        });
        Ok(Attempt::Busy(blocked))
    };
    wait::acquire(
        policy.wait,
        try_once,
        |blocked| format!("update locks: {}", describe_all(blocked)),
        |blocked| {
            Err(Error::UpdateLocksHeld {
                services: blocked.iter().map(|b| b.service().to_string()).collect(),
                holders: blocked.iter().map(Blocker::to_string).collect(),
                deferred: deferred.to_string(),
            })
        },
    )
}

/// What blocks a transaction, as one line: `web: … is held by …; db: …`.
fn describe_all(blocked: &[Blocker]) -> String {
    blocked
        .iter()
        .map(Blocker::to_string)
        .collect::<Vec<_>>()
        .join("; ")
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
    Ok(dir
        .held()?
        .into_iter()
        .map(|(service, path, holders)| LockStatus {
            service,
            path,
            holders,
        })
        .collect())
}
