//! `status NAME` and `services`: one service seen from every side — its
//! live object and since which generation, what the supervisor says (pid,
//! up for, wanted state, ready), who holds its update lock, which programs
//! pin its objects, and whether it is held back or a commit is pending
//! (docs/cli.md#status-name-services). Takes no lock and writes nothing.
//! Times are said as a person would ("3 min ago"), never in clock ticks.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{Output, table};
use crate::config::{Config, Supervisor};
use crate::error::{Error, Result};
use crate::format::manifest::GenerationManifest;
use crate::locks::holders::{self, LockHolder};
use crate::locks::{pin, update};
use crate::model::names::split_object_name;
use crate::model::shown::shown;
use crate::state::{State, generation, held_back, pending};
use crate::stock::held_back::HeldBack;
use crate::supervisor::{self, Adapter, ServiceStatus};

/// What the supervisor says about the live instance (docs/json.md#status-name).
#[derive(Debug, Serialize)]
struct Supervised {
    supervised: bool,
    up: bool,
    /// The supervisor wants it up (not down on purpose).
    want_up: bool,
    /// Readiness, only for a service that notifies it (`notification-fd`).
    ready: Option<bool>,
    pid: Option<u32>,
    /// Seconds since the last up/down change.
    for_secs: u64,
    /// The supervisor's own words (or why it could not be asked).
    text: String,
}

/// One service, as `status NAME` shows it and `services` lists it.
#[derive(Debug, Serialize)]
struct ServiceView {
    service: String,
    /// Its store object in the live generation (none: not live).
    object: Option<String>,
    /// The oldest generation of the unbroken run up to live with this object.
    since_generation: Option<u64>,
    /// When that generation was created (RFC 3339).
    since: Option<String>,
    /// Null with `supervisor: none` or when the service is not live.
    supervisor: Option<Supervised>,
    update_lock_holders: Vec<LockHolder>,
    /// Programs started with `exec` that pin one of its objects.
    pins: Vec<pin::PinStatus>,
    held_back: Option<HeldBack>,
    /// A deferred commit, the marker's text (it is for every service).
    pending: Option<String>,
}

#[derive(Debug, Serialize)]
struct ServicesReport {
    live: Option<u64>,
    services: Vec<ServiceView>,
}

/// Everything read once for all services.
struct Context {
    live: Option<u64>,
    live_manifest: Option<GenerationManifest>,
    /// Service name → (since generation, its `created`).
    since: BTreeMap<String, (u64, String)>,
    locks: Vec<update::LockStatus>,
    pins: Vec<pin::PinStatus>,
    held_back: Vec<HeldBack>,
    pending: Option<String>,
}

/// `status NAME`.
pub(crate) fn service_status(cfg: &Config, name: &str) -> Result<Output> {
    let (state, ctx) = read_context(cfg)?;
    let live_has = ctx
        .live_manifest
        .as_ref()
        .is_some_and(|m| m.services.contains_key(name));
    if !live_has && !ctx.held_back.iter().any(|h| h.service == name) {
        return Err(match ctx.live {
            Some(generation) => Error::NoSuchService {
                generation,
                service: name.to_string(),
            },
            None => Error::NoLiveGeneration {
                state: cfg.state.clone(),
            },
        });
    }
    let sup = supervisor::for_config(cfg);
    let view = view_of(cfg, &state, &ctx, &*sup, name);
    let human = render_one(&view, SystemTime::now());
    Ok(Output::new(&view, human))
}

/// `services`: every live service, then those held back that are not live.
pub(crate) fn services(cfg: &Config) -> Result<Output> {
    let (state, ctx) = read_context(cfg)?;
    let sup = supervisor::for_config(cfg);
    let mut names: Vec<String> = ctx
        .live_manifest
        .as_ref()
        .map(|m| m.services.keys().cloned().collect())
        .unwrap_or_default();
    for h in &ctx.held_back {
        if !names.contains(&h.service) {
            names.push(h.service.clone());
        }
    }
    let views: Vec<ServiceView> = names
        .iter()
        .map(|n| view_of(cfg, &state, &ctx, &*sup, n))
        .collect();
    let human = render_table(ctx.live, &views, cfg.supervisor != Supervisor::None);
    let report = ServicesReport {
        live: ctx.live,
        services: views,
    };
    Ok(Output::new(&report, human))
}

fn read_context(cfg: &Config) -> Result<(State, Context)> {
    let Some(state) = State::open_current(cfg)? else {
        return Err(Error::NoGenerations {
            state: cfg.state.clone(),
        });
    };
    let live = state.live()?;
    let live_manifest = live.map(|n| generation::load(&state, n)).transpose()?;
    let since = match (&live_manifest, live) {
        (Some(m), Some(n)) => since_generations(&state, n, m)?,
        _ => BTreeMap::new(),
    };
    let ctx = Context {
        live,
        live_manifest,
        since,
        locks: update::held(cfg)?,
        pins: pin::held(cfg)?,
        held_back: held_back::load(&state.dir),
        pending: pending::read(&state.dir)?
            .map(|b| String::from_utf8_lossy(&b).trim_end().to_string()),
    };
    Ok((state, ctx))
}

/// For every live service, the oldest generation of the unbroken run of
/// generations up to `live` in which it has its live object, and when that
/// generation was made. One read of each generation manifest, newest first,
/// stopping once every service's run is broken.
fn since_generations(
    state: &State,
    live: u64,
    live_manifest: &GenerationManifest,
) -> Result<BTreeMap<String, (u64, String)>> {
    let mut since: BTreeMap<String, (u64, String)> = live_manifest
        .services
        .keys()
        .map(|s| (s.clone(), (live, live_manifest.created.clone())))
        .collect();
    let mut running: Vec<&String> = live_manifest.services.keys().collect();
    let older: Vec<u64> = generation::list(state)?
        .into_iter()
        .rev()
        .filter(|&n| n < live)
        .collect();
    for n in older {
        if running.is_empty() {
            break;
        }
        // A generation that cannot be read breaks every run here.
        let Ok(m) = generation::load(state, n) else {
            break;
        };
        running.retain(|s| m.services.get(*s) == live_manifest.services.get(*s));
        for s in &running {
            since.insert((*s).clone(), (n, m.created.clone()));
        }
    }
    Ok(since)
}

fn view_of(
    cfg: &Config,
    state: &State,
    ctx: &Context,
    sup: &dyn Adapter,
    name: &str,
) -> ServiceView {
    let object = ctx
        .live_manifest
        .as_ref()
        .and_then(|m| m.services.get(name))
        .cloned();
    let supervisor = match (&object, cfg.supervisor) {
        (Some(o), s) if s != Supervisor::None => {
            let dir = state.object_path(o);
            let ready = dir.join("notification-fd").is_file();
            Some(supervised(sup.status(&dir), ready))
        }
        _ => None,
    };
    let since = ctx.since.get(name);
    ServiceView {
        service: name.to_string(),
        object,
        since_generation: since.map(|s| s.0),
        since: since.map(|s| s.1.clone()),
        supervisor,
        update_lock_holders: ctx
            .locks
            .iter()
            .filter(|l| l.service == name)
            .flat_map(|l| l.holders.clone())
            .collect(),
        pins: ctx
            .pins
            .iter()
            .filter(|p| split_object_name(&p.object).is_some_and(|(s, _)| s == name))
            .cloned()
            .collect(),
        held_back: ctx.held_back.iter().find(|h| h.service == name).cloned(),
        pending: ctx.pending.clone(),
    }
}

/// The supervisor's answer, or why there is none (a query that fails is
/// said, not fatal: the rest of the view still helps).
fn supervised(status: Result<ServiceStatus>, notifies: bool) -> Supervised {
    match status {
        Ok(s) => Supervised {
            supervised: s.supervised,
            up: s.up,
            want_up: s.want_up,
            ready: (notifies && s.supervised).then_some(s.ready),
            pid: s.pid,
            for_secs: s.for_secs,
            text: s.text,
        },
        Err(e) => Supervised {
            supervised: false,
            up: false,
            want_up: false,
            ready: None,
            pid: None,
            for_secs: 0,
            text: format!("cannot ask the supervisor: {}", e.chain()),
        },
    }
}

/// A duration as a person says it: "12 s", "3 min", "2 h 5 min", "4 days".
pub(crate) fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => match (s / 60) % 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        _ => match s / 86_400 {
            1 => "1 day".to_string(),
            d => format!("{d} days"),
        },
    }
}

/// How long ago an RFC 3339 time was, as a person says it ("3 min ago");
/// the time itself when it cannot be read or lies in the future.
fn ago(created: &str, now: SystemTime) -> String {
    match humantime::parse_rfc3339_weak(created)
        .ok()
        .and_then(|t| now.duration_since(t).ok())
    {
        Some(d) if d.as_secs() < 10 => "just now".to_string(),
        Some(d) => format!("{} ago", human_duration(d)),
        None => shown(created).to_string(),
    }
}

/// The supervisor's view in words: "up 3 min, pid 812, wanted up, ready".
fn supervisor_words(s: &Supervised) -> String {
    if !s.supervised {
        return shown(&s.text).to_string();
    }
    let for_ = human_duration(Duration::from_secs(s.for_secs));
    let mut words = match (s.up, s.pid) {
        (true, Some(pid)) => format!("up for {for_}, pid {pid}"),
        (true, None) => format!("up for {for_}"),
        (false, _) => format!("down for {for_}"),
    };
    words.push_str(if s.want_up {
        ", wanted up"
    } else {
        ", wanted down"
    });
    match s.ready {
        Some(true) => words.push_str(", ready"),
        Some(false) => words.push_str(", not ready"),
        None => {}
    }
    words
}

fn render_one(v: &ServiceView, now: SystemTime) -> String {
    let mut h = format!("service:      {}\n", shown(&v.service));
    match (&v.object, v.since_generation, &v.since) {
        (Some(o), Some(g), Some(when)) => h.push_str(&format!(
            "live:         {} (since generation {g}, made {})\n",
            shown(o),
            ago(when, now)
        )),
        (Some(o), _, _) => h.push_str(&format!("live:         {}\n", shown(o))),
        (None, _, _) => h.push_str("live:         not live\n"),
    }
    match &v.supervisor {
        Some(s) => h.push_str(&format!("supervisor:   {}\n", supervisor_words(s))),
        None if v.object.is_some() => h.push_str("supervisor:   none configured\n"),
        None => {}
    }
    if v.update_lock_holders.is_empty() {
        h.push_str("update lock:  free\n");
    } else {
        h.push_str(&format!(
            "update lock:  held by {}\n",
            holders::describe(&v.update_lock_holders)
        ));
    }
    if v.pins.is_empty() {
        h.push_str("pinned by:    nothing\n");
    }
    for p in &v.pins {
        h.push_str(&format!(
            "pinned by:    {} ({})\n",
            holders::describe(&p.holders),
            shown(&p.object)
        ));
    }
    match &v.held_back {
        Some(hb) => h.push_str(&format!("held back:    {}\n", hb.describe())),
        None => h.push_str("held back:    no\n"),
    }
    match &v.pending {
        Some(p) => h.push_str(&format!(
            "pending:      a deferred commit: {}; run `svcdir-update commit`\n",
            shown(p.lines().nth(1).unwrap_or(p))
        )),
        None => h.push_str("pending:      none\n"),
    }
    h
}

/// `services`: one row each — name, since, the supervisor's view, notes.
fn render_table(live: Option<u64>, views: &[ServiceView], with_supervisor: bool) -> String {
    let now = SystemTime::now();
    let mut rows = vec![vec!["SERVICE".to_string(), "SINCE".to_string()]];
    if with_supervisor {
        rows[0].push("SUPERVISOR".to_string());
    }
    rows[0].push("NOTES".to_string());
    for v in views {
        let since = match (v.since_generation, &v.since) {
            (Some(g), Some(when)) => format!("gen {g}, {}", ago(when, now)),
            _ => "not live".to_string(),
        };
        let mut notes = Vec::new();
        if !v.update_lock_holders.is_empty() {
            notes.push("update lock held".to_string());
        }
        if !v.pins.is_empty() {
            notes.push(format!("pinned by {}", v.pins.len()));
        }
        if v.held_back.is_some() {
            notes.push("held back".to_string());
        }
        let mut row = vec![shown(&v.service).to_string(), since];
        if with_supervisor {
            row.push(
                v.supervisor
                    .as_ref()
                    .map(supervisor_words)
                    .unwrap_or_default(),
            );
        }
        row.push(notes.join(", "));
        rows.push(row);
    }
    let live_services = views.iter().filter(|v| v.object.is_some()).count();
    let head = match live {
        Some(n) => format!("live generation {n}: {live_services} services\n"),
        None => "no live generation\n".to_string(),
    };
    head + &table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_said_as_a_person_would() {
        let d = |s| human_duration(Duration::from_secs(s));
        assert_eq!(d(0), "0 s");
        assert_eq!(d(59), "59 s");
        assert_eq!(d(180), "3 min");
        assert_eq!(d(3600), "1 h");
        assert_eq!(d(7500), "2 h 5 min");
        assert_eq!(d(86_400), "1 day");
        assert_eq!(d(4 * 86_400 + 5), "4 days");
    }

    #[test]
    fn ago_reads_rfc3339_and_shows_a_bad_time_escaped() {
        let now = humantime::parse_rfc3339("2026-12-02T10:00:00Z").expect("time");
        assert_eq!(ago("2026-12-02T09:57:00Z", now), "3 min ago");
        assert_eq!(ago("2026-12-02T09:59:55Z", now), "just now");
        assert_eq!(ago("not\na time", now), "not\\na time");
    }
}
