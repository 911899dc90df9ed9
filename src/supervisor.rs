//! Supervisor adapters: how a transaction stops old instances, tells the
//! scanner to rescan, and asks whether a service is up.
//!
//! One adapter per family (`none`, `s6`, `runit`), all with the same shape.
//! An old instance is always addressed by its *store object path*, never
//! through `live`, so stopping it cannot touch the new one. Commands are run
//! with an argv (never a shell string) and a failure names the command and
//! its stderr.

use std::path::Path;
use std::time::Duration;

use crate::config::{Config, Supervisor};
use crate::error::Result;

pub trait Adapter {
    /// Stops the instance running from `object` (a store object directory)
    /// and waits, up to the stop timeout, until it is down. A service that
    /// is not supervised is already down.
    fn stop(&self, name: &str, object: &Path) -> Result<()>;
    /// Starts again an instance that [`Adapter::stop`] stopped (undo).
    fn restart(&self, name: &str, object: &Path) -> Result<()>;
    /// Tells the scanner that `scandir` changed (links or their targets).
    fn notify(&self, scandir: &Path) -> Result<()>;
    /// Waits up to `timeout` until the service at `dir` is up.
    fn wait_up(&self, name: &str, dir: &Path, timeout: Duration) -> Result<()>;
}

/// No supervisor: files only.
pub struct NoSupervisor;

impl Adapter for NoSupervisor {
    fn stop(&self, _: &str, _: &Path) -> Result<()> {
        Ok(())
    }
    fn restart(&self, _: &str, _: &Path) -> Result<()> {
        Ok(())
    }
    fn notify(&self, _: &Path) -> Result<()> {
        Ok(())
    }
    fn wait_up(&self, _: &str, _: &Path, _: Duration) -> Result<()> {
        Ok(())
    }
}

/// The adapter the configuration selects.
pub fn for_config(cfg: &Config) -> Box<dyn Adapter> {
    match cfg.supervisor {
        Supervisor::None | Supervisor::S6 | Supervisor::Runit => Box::new(NoSupervisor),
    }
}
