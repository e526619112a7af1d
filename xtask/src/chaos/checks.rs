//! The eight checks of a chaos run, as pure functions of what the run recorded: the clients' calls, the fenced
//! register's writes, the event log read back after recovery, the stream subscriber's ids, the windows in
//! which the database was down, the spans in which each client believed it held, and the writes of the admin
//! steward (statuses, deletes, type policies) that the reference model (`hhs_core::reference`) decides by.
//! Each returns a [`Check`] with its counts; `ok == false` is a violation.

use std::collections::{BTreeMap, HashMap, HashSet};

use hhs_core::reference::{self, AcquireKind, Known, Logged, Verdict};
use hhs_core::status::Status;

/// One call a client made, as it saw it.
#[derive(Clone, Debug)]
pub struct Call {
    pub client: usize,
    pub op: &'static str,
    pub resource: String,
    /// Milliseconds since the run started, at invocation and at completion.
    pub start: u64,
    pub end: u64,
    /// The HTTP status, or `None` when the outcome is unknown (no answer).
    pub status: Option<u16>,
    /// For a 200 acquire: the grant's token and hold id, and whether it was a new grant (not a renewal). A group's
    /// grant is recorded once per member (op `group-member`, the group call's times and status).
    pub token: Option<i64>,
    pub hold_id: Option<String>,
    pub fresh: bool,
    /// The same instants in µs since the run started (one monotonic clock for every thread), for the model and
    /// the client views; `answered_us` is `None` with no answer.
    pub sent_us: u64,
    pub answered_us: Option<u64>,
    /// The error code of a refusal (`error.code`), or an HL7 ACK's `MSA-1`.
    pub code: Option<String>,
    /// What the model needs of the request: the TTL asked (an acquire's, a session's for one under it, a
    /// group's), the holds it acts on (a heartbeat's, booking's or release's; a group's members; a session's
    /// holds at a keepalive) and, for a keepalive that says so, the holds it renewed.
    pub ttl: Option<u32>,
    pub holds: Vec<String>,
    pub renewed: Option<Vec<String>>,
    /// An acquire that asked to wait in the queue (`wait_seconds` > 0).
    pub waited: bool,
}

impl Call {
    /// A call as recorded before its answer is read.
    pub fn new(
        client: usize,
        op: &'static str,
        resource: &str,
        (start, end): (u64, u64),
        (sent_us, answered_us): (u64, Option<u64>),
        status: Option<u16>,
    ) -> Call {
        Call {
            client,
            op,
            resource: resource.to_owned(),
            start,
            end,
            status,
            token: None,
            hold_id: None,
            fresh: false,
            sent_us,
            answered_us,
            code: None,
            ttl: None,
            holds: vec![],
            renewed: None,
            waited: false,
        }
    }
}

/// One write to the fenced register.
#[derive(Clone, Debug)]
pub struct Write {
    pub client: usize,
    pub resource: String,
    pub token: i64,
    /// The highest token the register had accepted for the resource before this write.
    pub seen: i64,
    pub accepted: bool,
    /// Written by a client that had been frozen past its TTL, with the token of the hold it had before.
    pub frozen: bool,
}

/// An event of the log, as the checks need it.
#[derive(Clone, Debug)]
pub struct LogEvent {
    pub id: i64,
    pub kind: String,
    pub resource_id: Option<String>,
    pub hold_id: Option<String>,
    pub token: Option<i64>,
    /// Database time of the event, ms since the epoch.
    pub at: i64,
    /// For an ending event: how long the hold was held (acquired + held = the end of its validity).
    pub held_ms: Option<i64>,
    /// For `status_changed`: the status set.
    pub status_to: Option<Status>,
}

/// A time window (ms since the run started), e.g. the database being down.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub start: u64,
    pub end: u64,
}

#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    /// Every violation found (the detail names the first), written to `target/chaos/violations.txt`.
    pub violations: Vec<String>,
}

fn check(name: &'static str, violations: &[String], counts: String) -> Check {
    let detail = match violations.first() {
        None => counts,
        Some(first) => format!("{counts}; {} violation(s), first: {first}", violations.len()),
    };
    Check { name, ok: violations.is_empty(), detail, violations: violations.to_vec() }
}

/// (1) No two grants on one resource overlap in database time: each hold runs from its `acquired` event to the
/// end of its validity (`acquired + held_ms` of the event that ended it: release, expiry — a session's lapse
/// too —, force-release, a booking's completion, or a delete that recorded its expiry), or on to the end of the
/// run if nothing ended it.
pub fn no_overlap(log: &[LogEvent]) -> Check {
    let mut start: HashMap<&str, (&str, i64)> = HashMap::new(); // hold -> (resource, acquired at)
    let mut end: HashMap<&str, i64> = HashMap::new();
    for e in log {
        let (Some(r), Some(h)) = (e.resource_id.as_deref(), e.hold_id.as_deref()) else { continue };
        match e.kind.as_str() {
            "acquired" => {
                start.insert(h, (r, e.at));
            }
            "released" | "expired" | "force_released" | "completed" => {
                if let (Some((_, at)), Some(held)) = (start.get(h), e.held_ms) {
                    end.insert(h, at + held);
                }
            }
            _ => {}
        }
    }
    let mut by_resource: BTreeMap<&str, Vec<(i64, i64, &str)>> = BTreeMap::new();
    for (hold, (r, at)) in &start {
        by_resource.entry(r).or_default().push((*at, end.get(hold).copied().unwrap_or(i64::MAX), hold));
    }
    let mut violations = vec![];
    for (r, holds) in &mut by_resource {
        holds.sort();
        for pair in holds.windows(2) {
            let ((_, prev_end, prev), (next_start, _, next)) = (pair[0], pair[1]);
            if next_start < prev_end {
                violations.push(format!(
                    "resource {r}: hold {next} granted at {next_start} while {prev} was valid until {prev_end}"
                ));
            }
        }
    }
    check("no overlapping grants", &violations, format!("{} grants on {} resources", start.len(), by_resource.len()))
}

/// (2) Fencing tokens strictly increase per resource, in the log's order and in grant-time order alike.
pub fn tokens_rise(log: &[LogEvent]) -> Check {
    let mut last: HashMap<&str, (i64, i64)> = HashMap::new(); // resource -> (token, at)
    let mut violations = vec![];
    let mut grants = 0;
    for e in log.iter().filter(|e| e.kind == "acquired") {
        let (Some(r), Some(t)) = (e.resource_id.as_deref(), e.token) else { continue };
        grants += 1;
        if let Some((prev, prev_at)) = last.get(r) {
            if t <= *prev || e.at < *prev_at {
                violations.push(format!("resource {r}: token {t} (at {}) after token {prev} (at {prev_at})", e.at));
            }
        }
        last.insert(r, (t, e.at));
    }
    check("tokens strictly rise", &violations, format!("{grants} grants"))
}

/// (3) Every grant acknowledged to a client (200, a new hold) is in the log after recovery, with its token.
pub fn acknowledged_are_logged(calls: &[Call], log: &[LogEvent]) -> Check {
    let logged: HashMap<&str, Option<i64>> =
        log.iter().filter(|e| e.kind == "acquired").filter_map(|e| Some((e.hold_id.as_deref()?, e.token))).collect();
    let mut violations = vec![];
    let acked: Vec<&Call> = calls
        .iter()
        .filter(|c| matches!(c.op, "acquire" | "acquire-in" | "group-member") && c.status == Some(200) && c.fresh)
        .collect();
    for c in &acked {
        let hold = c.hold_id.as_deref().unwrap_or("?");
        match logged.get(hold) {
            None => violations.push(format!(
                "client {} was granted hold {hold} (token {:?}) which the log does not have",
                c.client, c.token
            )),
            Some(t) if *t != c.token => {
                violations.push(format!("hold {hold}: acknowledged token {:?}, logged {t:?}", c.token))
            }
            Some(_) => {}
        }
    }
    check("acknowledged grants logged", &violations, format!("{} acknowledged, {} lost", acked.len(), violations.len()))
}

/// (4) The fenced register never accepted a token below one it had seen, and refused every write by a frozen
/// client once a later grant had written to it.
pub fn register_fenced(writes: &[Write]) -> Check {
    let mut violations = vec![];
    let mut highest: HashMap<&str, i64> = HashMap::new();
    for w in writes {
        let top = highest.entry(&w.resource).or_insert(0);
        if w.accepted && w.token < *top {
            violations.push(format!("resource {}: accepted token {} after {}", w.resource, w.token, top));
        }
        if w.accepted {
            *top = (*top).max(w.token);
        }
    }
    let stale: Vec<&Write> = writes.iter().filter(|w| w.frozen && w.seen > w.token).collect();
    for w in &stale {
        if w.accepted {
            violations.push(format!("frozen client {} wrote token {} over {}", w.client, w.token, w.seen));
        }
    }
    let frozen = writes.iter().filter(|w| w.frozen).count();
    check(
        "fenced register",
        &violations,
        format!(
            "{} writes, {frozen} by frozen clients, {} of them after a re-grant (all must be refused)",
            writes.len(),
            stale.len()
        ),
    )
}

/// (5) The stream subscriber received every event id of the log after its start, none twice.
pub fn stream_complete(log: &[LogEvent], after: i64, received: &[i64]) -> Check {
    let expected: HashSet<i64> = log.iter().map(|e| e.id).filter(|id| *id > after).collect();
    let mut seen = HashSet::new();
    let twice: Vec<i64> = received.iter().copied().filter(|id| !seen.insert(*id)).collect();
    let mut missing: Vec<i64> = expected.difference(&seen).copied().collect();
    missing.sort();
    let mut violations: Vec<String> = missing.iter().take(5).map(|id| format!("event {id} never arrived")).collect();
    violations.extend(twice.iter().take(5).map(|id| format!("event {id} arrived twice")));
    if missing.len() > 5 || twice.len() > 5 {
        violations.push(format!("{} missing and {} duplicated in all", missing.len(), twice.len()));
    }
    check("stream complete", &violations, format!("{} events, {} received", expected.len(), received.len()))
}

/// (6) No 500 at all; 503 only while the database was down (or within `grace` ms after it came back, while
/// pools reconnect).
pub fn server_errors(calls: &[Call], down: &[Window], grace: u64) -> Check {
    let mut violations = vec![];
    let (mut e500, mut e503) = (0, 0);
    for c in calls {
        match c.status {
            Some(503) => {
                e503 += 1;
                if !down.iter().any(|w| c.end >= w.start && c.start <= w.end + grace) {
                    violations.push(format!(
                        "503 to client {} ({} on {}) at {}–{} ms with the database up",
                        c.client, c.op, c.resource, c.start, c.end
                    ));
                }
            }
            Some(s) if s >= 500 && s != 502 && s != 504 => {
                e500 += 1;
                violations.push(format!("{s} to client {} ({} at {} ms)", c.client, c.op, c.start));
            }
            _ => {}
        }
    }
    check("server errors", &violations, format!("{e500} × 5xx, {e503} × 503 over {} database outages", down.len()))
}

/// One thing a client saw of one of its holds (`reference::Seen`), for the client views.
#[derive(Clone, Debug)]
pub struct Sighting {
    pub client: usize,
    pub resource: String,
    pub hold: String,
    pub seen: reference::Seen,
}

/// A span `[from, to)` (µs since the run started) in which `client` may have believed it held `hold`.
#[derive(Clone, Debug)]
pub struct View {
    pub client: usize,
    pub resource: String,
    pub hold: String,
    pub from: u64,
    pub to: u64,
    /// What the span's end rests on (the last promise the client saw before it ends, and any force-release),
    /// for reading a violation.
    pub why: String,
}

impl PartialEq for View {
    fn eq(&self, o: &View) -> bool {
        (self.client, &self.resource, &self.hold, self.from, self.to) == (o.client, &o.resource, &o.hold, o.from, o.to)
    }
}

/// Every client's views of its holds (`reference::belief`): what each client saw (and its acquires that may
/// have renewed a hold of its own without saying so), cut by the admin's
/// force-releases — by the answer that named the hold, or, for one the log records without such an answer,
/// from the earliest force-release of its resource that may have done it (its effect's time unknown).
pub fn views(sightings: &[Sighting], calls: &[Call], log: &[LogEvent]) -> Vec<View> {
    let forced: Vec<&Call> = calls.iter().filter(|c| c.op == "force-release").collect();
    let mut cuts: HashMap<&str, Vec<reference::Seen>> = HashMap::new();
    for c in forced.iter().filter(|c| c.status == Some(200)) {
        if let Some(h) = c.hold_id.as_deref() {
            cuts.entry(h)
                .or_default()
                .push(reference::Seen::ForceReleased { sent: c.sent_us, answered: c.answered_us });
        }
    }
    for e in log.iter().filter(|e| e.kind == "force_released") {
        let (Some(h), Some(r)) = (e.hold_id.as_deref(), e.resource_id.as_deref()) else { continue };
        if cuts.contains_key(h) {
            continue;
        }
        let undecided =
            forced.iter().filter(|c| c.resource == r && !c.status.is_some_and(|s| s == 200 || (400..500).contains(&s)));
        let sent = undecided.map(|c| c.sent_us).min().unwrap_or(0);
        cuts.entry(h).or_default().push(reference::Seen::ForceReleased { sent, answered: None });
    }
    let mut seen: BTreeMap<(usize, &str, &str), Vec<reference::Seen>> = BTreeMap::new();
    for s in sightings {
        seen.entry((s.client, s.resource.as_str(), s.hold.as_str())).or_default().push(s.seen);
    }
    // An acquire of a resource the client already holds renews that hold with the acquire's TTL; one whose
    // answer does not say may have, and may have shortened it.
    for c in calls.iter().filter(|c| c.status.is_none_or(|s| s >= 500)) {
        let resources: Vec<&str> = match c.op {
            "acquire" | "acquire-in" => vec![c.resource.as_str()],
            "acquire-group" => c.resource.split(',').collect(),
            _ => continue,
        };
        // Under a session the hold takes the session's renewal, which may be long past: certain only to its send.
        let until =
            if c.op == "acquire-in" { c.sent_us } else { c.sent_us + u64::from(c.ttl.unwrap_or(0)) * 1_000_000 };
        for ((client, resource, _), list) in seen.iter_mut() {
            if *client == c.client && resources.contains(resource) {
                list.push(reference::Seen::Renewing { sent: c.sent_us, until });
            }
        }
    }
    let mut out = vec![];
    for ((client, resource, hold), mut list) in seen {
        list.extend(cuts.get(hold).into_iter().flatten().copied());
        for (from, to) in reference::belief(&list) {
            let promise = list.iter().filter(|s| matches!(s, reference::Seen::Ack { answered, .. } | reference::Seen::Booked { answered, .. } if *answered < to)).max_by_key(|s| match s {
                reference::Seen::Ack { answered, .. } | reference::Seen::Booked { answered, .. } => *answered,
                _ => 0,
            });
            let forced = list.iter().find(|s| matches!(s, reference::Seen::ForceReleased { .. }));
            let why = match forced {
                Some(f) => format!("last promise {promise:?}, after {f:?}"),
                None => format!("last promise {promise:?}"),
            };
            out.push(View { client, resource: resource.to_owned(), hold: hold.to_owned(), from, to, why });
        }
    }
    out
}

/// (7) In real time, from the clients' side: no two clients' views of one resource overlap (`[from, to)`, so
/// one ending exactly when the next begins is fine) — the promise `LeaseGuard` rests on, whatever the log says.
pub fn client_views(views: &[View]) -> Check {
    let mut by_resource: BTreeMap<&str, Vec<&View>> = BTreeMap::new();
    for v in views {
        by_resource.entry(&v.resource).or_default().push(v);
    }
    let ms = |us: u64| format!("{}.{:03} ms", us / 1_000, us % 1_000);
    let mut violations = vec![];
    for (r, list) in &mut by_resource {
        list.sort_by_key(|v| (v.from, v.to));
        let mut widest: Option<&View> = None;
        for v in list.iter() {
            if let Some(w) = widest {
                if v.from < w.to && (w.client, &w.hold) != (v.client, &v.hold) {
                    violations.push(format!(
                        "resource {r}: client {} believed it held hold {} from {} ({}) while client {} believed it held hold {} until {} ({})",
                        v.client,
                        v.hold,
                        ms(v.from),
                        v.why,
                        w.client,
                        w.hold,
                        ms(w.to),
                        w.why
                    ));
                }
            }
            if widest.is_none_or(|w| v.to > w.to) {
                widest = Some(v);
            }
        }
    }
    let holds: HashSet<(usize, &str)> = views.iter().map(|v| (v.client, v.hold.as_str())).collect();
    check(
        "client views disjoint",
        &violations,
        format!("{} holds believed in {} spans on {} resources", holds.len(), views.len(), by_resource.len()),
    )
}

/// What the admin steward wrote, for the reference model: per resource its status writes and deletes, per type
/// its TTL bounds (with the bounds each type started with), and each resource's type.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub status: HashMap<String, Vec<reference::Write<Status>>>,
    pub exists: HashMap<String, Vec<reference::Write<bool>>>,
    pub bounds: HashMap<String, Vec<reference::Write<(u32, u32)>>>,
    pub initial_bounds: HashMap<String, (u32, u32)>,
    pub type_of: HashMap<String, String>,
}

impl Facts {
    /// What is known of `resource` at a call over `[sent, answered]` (every resource starts U and existing).
    pub fn known(&self, resource: &str, sent: u64, answered: u64) -> Known {
        fn of<'a, V>(m: &'a HashMap<String, Vec<reference::Write<V>>>, k: &str) -> &'a [reference::Write<V>] {
            m.get(k).map_or(&[][..], |v| v.as_slice())
        }
        let exists = reference::known(&true, of(&self.exists, resource), sent, answered);
        let status = reference::known(&Status::Unoccupied, of(&self.status, resource), sent, answered);
        let bounds = self
            .type_of
            .get(resource)
            .and_then(|t| reference::known(self.initial_bounds.get(t)?, of(&self.bounds, t), sent, answered));
        Known { exists, status, bounds }
    }
}

/// (8) Every answer the reference model decides is the one it allows: an acquire (plain, waiting, under a
/// session, a group) of a resource that is gone, in a status other than U, or for a TTL outside its type's
/// bounds — each known for certain from the steward's answered writes — is refused with the right code (one
/// that waits: refused); a heartbeat or booking (a group's too) acting on a hold an admin force-released before
/// it was sent is refused; a keepalive does not say it renewed such a hold; and in the log's commit order no grant follows
/// a status other than U or a delete of its resource.
pub fn model_outcomes(calls: &[Call], facts: &Facts, log: &[LogEvent]) -> Check {
    let mut forced: HashMap<&str, Vec<reference::Write<()>>> = HashMap::new();
    for c in calls.iter().filter(|c| c.op == "force-release" && c.status == Some(200)) {
        if let Some(h) = c.hold_id.as_deref() {
            forced.entry(h).or_default().push(reference::Write {
                sent: c.sent_us,
                answered: c.answered_us,
                effect: reference::Effect::Applied,
                value: (),
            });
        }
    }
    let ended = |hold: &str, sent: u64| forced.get(hold).is_some_and(|w| reference::certainly_before(w, sent));
    let mut violations = vec![];
    let mut decided: BTreeMap<&str, usize> = BTreeMap::new();
    for c in calls {
        let (Some(status), Some(answered)) = (c.status, c.answered_us) else { continue };
        let ttl = c.ttl.unwrap_or(0);
        let verdict = match c.op {
            "acquire" => {
                let kind = if c.waited { AcquireKind::Waiting } else { AcquireKind::Plain };
                reference::acquire(&facts.known(&c.resource, c.sent_us, answered), ttl, kind)
            }
            "acquire-in" => {
                reference::acquire(&facts.known(&c.resource, c.sent_us, answered), ttl, AcquireKind::Session)
            }
            "acquire-group" => {
                let members: Vec<Known> = c.resource.split(',').map(|r| facts.known(r, c.sent_us, answered)).collect();
                reference::acquire_group(&members, ttl)
            }
            "heartbeat" | "book" | "heartbeat-group" => {
                reference::holder_op(&c.holds.iter().map(|h| ended(h, c.sent_us)).collect::<Vec<_>>())
            }
            "keepalive" => {
                if let Some(h) = c.renewed.iter().flatten().find(|h| ended(h, c.sent_us)) {
                    violations.push(format!("client {}'s keepalive of session {} (sent at {} µs) says it renewed hold {h}, force-released before", c.client, c.resource, c.sent_us));
                }
                Verdict::Any
            }
            _ => Verdict::Any,
        };
        if verdict == Verdict::Any {
            continue;
        }
        *decided.entry(c.op).or_default() += 1;
        if !verdict.allows(status, c.code.as_deref()) {
            violations.push(format!(
                "client {}'s {} on {} (sent at {} µs, answered at {answered} µs) got {status} {}, the model requires {verdict:?}",
                c.client,
                c.op,
                c.resource,
                c.sent_us,
                c.code.as_deref().unwrap_or("")
            ));
        }
    }
    let logged: Vec<Logged> = log
        .iter()
        .filter_map(|e| {
            let resource = e.resource_id.as_deref()?;
            match e.kind.as_str() {
                "status_changed" => Some(Logged::StatusChanged { resource, to: e.status_to? }),
                "acquired" => Some(Logged::Acquired { resource, hold: e.hold_id.as_deref().unwrap_or("?") }),
                "resource_deleted" => Some(Logged::Deleted { resource }),
                _ => None,
            }
        })
        .collect();
    let stale = reference::grants_follow_status(&logged, Status::Unoccupied);
    violations.extend(stale.iter().map(|(_, why)| format!("in commit order: {why}")));
    let counts = decided.iter().map(|(op, n)| format!("{n} {op}")).collect::<Vec<_>>().join(", ");
    let statuses = logged.iter().filter(|l| matches!(l, Logged::StatusChanged { .. })).count();
    check(
        "outcomes the model decides",
        &violations,
        format!(
            "decided: {}; {statuses} status changes in the log",
            if counts.is_empty() { "none".into() } else { counts }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64, kind: &str, r: &str, h: &str, token: i64, at: i64, held: Option<i64>) -> LogEvent {
        LogEvent {
            id,
            kind: kind.into(),
            resource_id: Some(r.into()),
            hold_id: Some(h.into()),
            token: Some(token),
            at,
            held_ms: held,
            status_to: None,
        }
    }

    #[test]
    fn overlapping_holds_are_found_and_back_to_back_ones_are_not() {
        let fine = [
            ev(1, "acquired", "r", "a", 1, 0, None),
            ev(2, "released", "r", "a", 1, 500, Some(500)),
            ev(3, "acquired", "r", "b", 2, 500, None),
        ];
        assert!(no_overlap(&fine).ok);
        let expired_then_granted = [
            ev(1, "acquired", "r", "a", 1, 0, None),
            ev(2, "expired", "r", "a", 1, 9_000, Some(5_000)),
            ev(3, "acquired", "r", "b", 2, 4_000, None),
        ];
        assert!(!no_overlap(&expired_then_granted).ok, "b granted while a was valid until 5,000");
        let never_ended = [ev(1, "acquired", "r", "a", 1, 0, None), ev(3, "acquired", "r", "b", 2, 4_000, None)];
        assert!(!no_overlap(&never_ended).ok);
        // A booking runs to its end (`completed`, held_ms to `until`): granting before that is an overlap.
        let booked = |next_at| {
            [
                ev(1, "acquired", "r", "a", 1, 0, None),
                ev(2, "completed", "r", "a", 1, 3_100, Some(3_000)),
                ev(3, "acquired", "r", "b", 2, next_at, None),
            ]
        };
        assert!(no_overlap(&booked(3_000)).ok);
        assert!(!no_overlap(&booked(2_999)).ok, "b granted during a's booking");
    }

    #[test]
    fn tokens_must_rise_per_resource() {
        let ok = [
            ev(1, "acquired", "r", "a", 1, 0, None),
            ev(2, "acquired", "s", "b", 1, 1, None),
            ev(3, "acquired", "r", "c", 2, 2, None),
        ];
        assert!(tokens_rise(&ok).ok);
        let reused = [ev(1, "acquired", "r", "a", 2, 0, None), ev(3, "acquired", "r", "c", 2, 2, None)];
        assert!(!tokens_rise(&reused).ok);
    }

    fn grant(hold: &str, token: i64) -> Call {
        Call {
            token: Some(token),
            hold_id: Some(hold.into()),
            fresh: true,
            ..Call::new(0, "acquire", "r", (0, 1), (0, Some(1)), Some(200))
        }
    }

    #[test]
    fn a_lost_acknowledged_grant_is_a_violation() {
        let log = [ev(1, "acquired", "r", "a", 1, 0, None)];
        assert!(acknowledged_are_logged(&[grant("a", 1)], &log).ok);
        assert!(!acknowledged_are_logged(&[grant("a", 1), grant("b", 2)], &log).ok);
        assert!(!acknowledged_are_logged(&[grant("a", 3)], &log).ok, "token mismatch");
    }

    #[test]
    fn a_frozen_clients_stale_write_must_be_refused() {
        let w =
            |token, seen, accepted, frozen| Write { client: 1, resource: "r".into(), token, seen, accepted, frozen };
        assert!(register_fenced(&[w(1, 0, true, false), w(2, 1, true, false), w(1, 2, false, true)]).ok);
        assert!(!register_fenced(&[w(2, 0, true, false), w(1, 2, true, true)]).ok);
    }

    #[test]
    fn the_stream_must_have_every_id_once() {
        let log = [
            ev(1, "acquired", "r", "a", 1, 0, None),
            ev(2, "released", "r", "a", 1, 1, Some(1)),
            ev(3, "acquired", "r", "b", 2, 2, None),
        ];
        assert!(stream_complete(&log, 1, &[3, 2]).ok, "order is commit order, not id order");
        assert!(!stream_complete(&log, 0, &[2, 3]).ok, "1 missing");
        assert!(!stream_complete(&log, 1, &[2, 3, 3]).ok, "3 twice");
    }

    #[test]
    fn a_503_with_the_database_up_or_any_500_is_a_violation() {
        let c = |status, start| Call { status: Some(status), start, end: start + 5, ..grant("a", 1) };
        let down = [Window { start: 1_000, end: 2_000 }];
        assert!(server_errors(&[c(503, 1_500), c(503, 2_100)], &down, 500).ok);
        assert!(!server_errors(&[c(503, 5_000)], &down, 500).ok);
        assert!(!server_errors(&[c(500, 1_500)], &down, 500).ok);
    }

    fn view(client: usize, hold: &str, from: u64, to: u64) -> View {
        View { client, resource: "r".into(), hold: hold.into(), from, to, why: String::new() }
    }

    #[test]
    fn overlapping_client_views_are_found_and_touching_ones_are_not() {
        assert!(
            client_views(&[view(1, "a", 0, 100), view(2, "b", 100, 200)]).ok,
            "one ends exactly when the next begins"
        );
        assert!(!client_views(&[view(1, "a", 0, 100), view(2, "b", 99, 200)]).ok, "one µs of overlap");
        assert!(
            !client_views(&[view(1, "a", 0, 500), view(2, "b", 100, 200), view(3, "c", 300, 400)]).ok,
            "inside a long one"
        );
        assert!(!client_views(&[view(1, "a", 0, 100), view(2, "a", 50, 60)]).ok, "two clients answered with one hold");
        let other_resource = View { resource: "s".into(), ..view(2, "b", 50, 60) };
        assert!(client_views(&[view(1, "a", 0, 100), other_resource]).ok);
    }

    #[test]
    fn views_are_cut_by_a_force_release_and_resumed_only_by_a_later_acknowledgement() {
        let sight = |client, hold: &str, seen| Sighting { client, resource: "r".into(), hold: hold.into(), seen };
        let ack = |sent, answered, until| reference::Seen::Ack { sent, answered, until };
        let force = Call {
            hold_id: Some("a".into()),
            ..Call::new(99, "force-release", "r", (0, 0), (50, Some(60)), Some(200))
        };
        let seen = [sight(1, "a", ack(0, 10, 1_000)), sight(2, "b", ack(70, 80, 1_000))];
        let v = views(&seen, std::slice::from_ref(&force), &[]);
        assert_eq!(v, vec![view(1, "a", 10, 50), view(2, "b", 80, 1_000)]);
        assert!(client_views(&v).ok);
        // A heartbeat the server (wrongly) acknowledged after the force-release: the client believes again.
        let seen =
            [sight(1, "a", ack(0, 10, 1_000)), sight(2, "b", ack(70, 80, 1_000)), sight(1, "a", ack(65, 90, 1_065))];
        assert!(!client_views(&views(&seen, &[force], &[])).ok);
        // Unanswered, the force-release is found in the log and cuts from its send.
        let lost = Call::new(99, "force-release", "r", (0, 0), (50, None), None);
        let log = [LogEvent { kind: "force_released".into(), ..ev(1, "acquired", "r", "a", 1, 0, None) }];
        assert_eq!(views(&[sight(1, "a", ack(0, 10, 1_000))], &[lost], &log), vec![view(1, "a", 10, 50)]);
    }

    #[test]
    fn the_model_flags_a_grant_it_knows_must_be_refused() {
        let mut facts = Facts::default();
        let set = |sent, answered, value| reference::Write {
            sent,
            answered: Some(answered),
            effect: reference::Effect::Applied,
            value,
        };
        facts.status.insert("r".into(), vec![set(0, 10, Status::Contaminated)]);
        facts.type_of.insert("r".into(), "bed".into());
        facts.initial_bounds.insert("bed".into(), (1, 3600));
        let acq = |status, code: Option<&str>, sent| Call {
            ttl: Some(5),
            code: code.map(Into::into),
            ..Call::new(0, "acquire", "r", (0, 0), (sent, Some(sent + 5)), Some(status))
        };
        assert!(!model_outcomes(&[acq(200, None, 20)], &facts, &[]).ok, "granted on a bed known to be K");
        assert!(model_outcomes(&[acq(409, Some("resource_unavailable"), 20)], &facts, &[]).ok);
        assert!(!model_outcomes(&[acq(409, Some("lock_held"), 20)], &facts, &[]).ok, "the status comes first");
        assert!(model_outcomes(&[acq(200, None, 5)], &facts, &[]).ok, "sent while the change was in flight: undecided");
        // A heartbeat after a force-release was answered must be refused.
        let force =
            Call { hold_id: Some("a".into()), ..Call::new(9, "force-release", "r", (0, 0), (0, Some(10)), Some(200)) };
        let hb = |status| Call {
            holds: vec!["a".into()],
            ..Call::new(0, "heartbeat-group", "g", (0, 0), (20, Some(25)), Some(status))
        };
        assert!(!model_outcomes(&[force.clone(), hb(200)], &Facts::default(), &[]).ok);
        assert!(model_outcomes(&[force, hb(409)], &Facts::default(), &[]).ok);
        // In commit order: a grant after a status change to K.
        let changed = LogEvent {
            kind: "status_changed".into(),
            status_to: Some(Status::Contaminated),
            ..ev(1, "x", "r", "-", 0, 0, None)
        };
        assert!(!model_outcomes(&[], &Facts::default(), &[changed, ev(2, "acquired", "r", "a", 1, 0, None)]).ok);
    }
}
