//! The six checks of a chaos run, as pure functions of what the run recorded: the clients' calls, the fenced
//! register's writes, the event log read back after recovery, the stream subscriber's ids and the windows in
//! which the database was down. Each returns a [`Check`] with its counts; `ok == false` is a violation.

use std::collections::{BTreeMap, HashMap, HashSet};

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
}

fn check(name: &'static str, violations: &[String], counts: String) -> Check {
    let detail = match violations.first() {
        None => counts,
        Some(first) => format!("{counts}; {} violation(s), first: {first}", violations.len()),
    };
    Check { name, ok: violations.is_empty(), detail }
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
                violations.push(format!("resource {r}: hold {next} granted at {next_start} while {prev} was valid until {prev_end}"));
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
    let acked: Vec<&Call> = calls.iter().filter(|c| matches!(c.op, "acquire" | "acquire-in" | "group-member") && c.status == Some(200) && c.fresh).collect();
    for c in &acked {
        let hold = c.hold_id.as_deref().unwrap_or("?");
        match logged.get(hold) {
            None => violations.push(format!("client {} was granted hold {hold} (token {:?}) which the log does not have", c.client, c.token)),
            Some(t) if *t != c.token => violations.push(format!("hold {hold}: acknowledged token {:?}, logged {t:?}", c.token)),
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
        format!("{} writes, {frozen} by frozen clients, {} of them after a re-grant (all must be refused)", writes.len(), stale.len()),
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
                    violations.push(format!("503 to client {} ({} on {}) at {}–{} ms with the database up", c.client, c.op, c.resource, c.start, c.end));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64, kind: &str, r: &str, h: &str, token: i64, at: i64, held: Option<i64>) -> LogEvent {
        LogEvent { id, kind: kind.into(), resource_id: Some(r.into()), hold_id: Some(h.into()), token: Some(token), at, held_ms: held }
    }

    #[test]
    fn overlapping_holds_are_found_and_back_to_back_ones_are_not() {
        let fine = [ev(1, "acquired", "r", "a", 1, 0, None), ev(2, "released", "r", "a", 1, 500, Some(500)), ev(3, "acquired", "r", "b", 2, 500, None)];
        assert!(no_overlap(&fine).ok);
        let expired_then_granted = [ev(1, "acquired", "r", "a", 1, 0, None), ev(2, "expired", "r", "a", 1, 9_000, Some(5_000)), ev(3, "acquired", "r", "b", 2, 4_000, None)];
        assert!(!no_overlap(&expired_then_granted).ok, "b granted while a was valid until 5,000");
        let never_ended = [ev(1, "acquired", "r", "a", 1, 0, None), ev(3, "acquired", "r", "b", 2, 4_000, None)];
        assert!(!no_overlap(&never_ended).ok);
        // A booking runs to its end (`completed`, held_ms to `until`): granting before that is an overlap.
        let booked = |next_at| [ev(1, "acquired", "r", "a", 1, 0, None), ev(2, "completed", "r", "a", 1, 3_100, Some(3_000)), ev(3, "acquired", "r", "b", 2, next_at, None)];
        assert!(no_overlap(&booked(3_000)).ok);
        assert!(!no_overlap(&booked(2_999)).ok, "b granted during a's booking");
    }

    #[test]
    fn tokens_must_rise_per_resource() {
        let ok = [ev(1, "acquired", "r", "a", 1, 0, None), ev(2, "acquired", "s", "b", 1, 1, None), ev(3, "acquired", "r", "c", 2, 2, None)];
        assert!(tokens_rise(&ok).ok);
        let reused = [ev(1, "acquired", "r", "a", 2, 0, None), ev(3, "acquired", "r", "c", 2, 2, None)];
        assert!(!tokens_rise(&reused).ok);
    }

    fn grant(hold: &str, token: i64) -> Call {
        Call { client: 0, op: "acquire", resource: "r".into(), start: 0, end: 1, status: Some(200), token: Some(token), hold_id: Some(hold.into()), fresh: true }
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
        let w = |token, seen, accepted, frozen| Write { client: 1, resource: "r".into(), token, seen, accepted, frozen };
        assert!(register_fenced(&[w(1, 0, true, false), w(2, 1, true, false), w(1, 2, false, true)]).ok);
        assert!(!register_fenced(&[w(2, 0, true, false), w(1, 2, true, true)]).ok);
    }

    #[test]
    fn the_stream_must_have_every_id_once() {
        let log = [ev(1, "acquired", "r", "a", 1, 0, None), ev(2, "released", "r", "a", 1, 1, Some(1)), ev(3, "acquired", "r", "b", 2, 2, None)];
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
}
