//! The health gate of `commit --check-up SECS` (docs/design.md#commit,
//! step 10): after a switch, wait until every started or restarted service
//! is up.
//!
//! This module only asks the supervisor; it never changes anything. The
//! caller decides what a failure means (commit rolls back automatically).

use std::time::Duration;

use crate::config::Config;
use crate::error::Result;
use crate::model::plan::{Action, Plan};
use crate::output::report;
use crate::state::State;
use crate::supervisor::{self, Deadline};

/// A service that did not come up, and the supervisor's last word on it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct NotUp {
    pub name: String,
    pub why: String,
}

/// Waits, all services sharing one deadline of `timeout`, until every
/// service the plan starts or restarts runs from its new store object
/// (except those shipped with a `down` file: they are not meant to start).
/// Returns the first that did not.
pub(crate) fn check_up(
    cfg: &Config,
    state: &State,
    plan: &Plan,
    timeout: Duration,
) -> Result<Option<NotUp>> {
    let sup = supervisor::for_config(cfg);
    let deadline = Deadline::after(timeout);
    for s in &plan.services {
        if !matches!(s.action, Action::Start | Action::Restart) {
            continue;
        }
        let Some(object) = &s.to else { continue };
        let dir = state.object_path(object);
        if dir.join("down").exists() {
            report::debug(&format!(
                "{}: has a `down` file, not expected up; not checked",
                s.name
            ));
            continue;
        }
        report::debug(&format!("waiting for {} to come up", s.name));
        if let Err(why) = sup.wait_up(&s.name, &dir, deadline.left())? {
            return Ok(Some(NotUp {
                name: s.name.clone(),
                why,
            }));
        }
    }
    Ok(None)
}
