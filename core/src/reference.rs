//! The reference model the fault harness (`cargo xtask chaos`) judges outcomes by: what a client may believe and
//! what an answer must be, decided from what was observed — never from the server's own state.
//!
//! Times are a client-side monotonic clock (any unit, the harness uses µs since the run started). A call is
//! known by when it was sent and when its answer arrived (`None`: no answer, so it may have taken effect at
//! any instant after it was sent, or never). Under concurrency most outcomes cannot be decided; the model says
//! so ([`Verdict::Any`]) rather than guess, and decides only where every order of effects consistent with the
//! observed times gives the same answer.
//!
//! * [`possible`] / [`known`]: the value of a register (a resource's status, whether it exists, a type's TTL
//!   bounds) as an operation over `[sent, answered]` may have seen it, given every write and its times.
//! * [`acquire`], [`holder_op`]: what an acquire, or a holder's heartbeat or booking, must be answered
//!   with, given what is known.
//! * [`belief`]: the spans of time in which a client may believe it holds one hold — from its acquire's answer
//!   to the send time of its last acknowledged renewal plus the TTL, cut at its release's send — which is what
//!   `LeaseGuard` rests on. No two holds' beliefs on one resource may overlap (the harness checks it).
//! * [`grants_follow_status`]: in the log's commit order, no grant of a resource after it was set to a status
//!   other than U (and before it was set back) or after it was deleted.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::ErrorCode;
use crate::status::Status;

/// Whether a write took effect, as its answer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Answered with success: it took effect between its send and its answer.
    Applied,
    /// Answered with a refusal: it took no effect.
    Refused,
    /// No answer, or one that does not say (a 503 after the commit may have been sent): it may have taken
    /// effect, at any instant between its send and its answer (or after its send, with no answer).
    Unknown,
}

/// One write of a register's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write<V> {
    pub sent: u64,
    pub answered: Option<u64>,
    pub effect: Effect,
    pub value: V,
}

/// Every value an operation sent at `sent` and answered at `answered` may have read: the register starts at
/// `initial` and `writes` (in any order) set it. A write may be the last one before the operation's effect
/// unless it may not have applied before the operation's answer, or some applied write lies certainly between
/// the two: sent after it was answered and answered before the operation was sent.
pub fn possible<V: Clone + PartialEq>(initial: &V, writes: &[Write<V>], sent: u64, answered: u64) -> Vec<V> {
    let applied_before = |w: &Write<V>| w.effect == Effect::Applied && w.answered.is_some_and(|a| a < sent);
    let mut values: Vec<V> = Vec::new();
    let mut add = |v: &V| {
        if !values.contains(v) {
            values.push(v.clone());
        }
    };
    if !writes.iter().any(applied_before) {
        add(initial);
    }
    for w in writes.iter().filter(|w| w.effect != Effect::Refused && w.sent < answered) {
        let superseded = match w.answered {
            Some(a) if a < sent => writes.iter().any(|later| applied_before(later) && later.sent > a),
            _ => false,
        };
        if !superseded {
            add(&w.value);
        }
    }
    values
}

/// The value an operation over `[sent, answered]` read, if every order consistent with the times gives the same.
pub fn known<V: Clone + PartialEq>(initial: &V, writes: &[Write<V>], sent: u64, answered: u64) -> Option<V> {
    let mut values = possible(initial, writes, sent, answered);
    if values.len() == 1 {
        values.pop()
    } else {
        None
    }
}

/// Whether an event written by one of `ends` certainly happened before `sent` (e.g. a force-release of a hold
/// answered with success before a heartbeat by its holder was sent).
pub fn certainly_before(ends: &[Write<()>], sent: u64) -> bool {
    ends.iter().any(|w| w.effect == Effect::Applied && w.answered.is_some_and(|a| a < sent))
}

/// What an answer must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not decidable from what was observed.
    Any,
    /// A refusal with exactly this code (a 503, or no answer, is always allowed: the database may be down).
    Refused(ErrorCode),
    /// A refusal, with whichever code.
    NotGranted,
}

impl Verdict {
    /// Whether an answer with `status` (and `code`, for an error) is allowed.
    pub fn allows(self, status: u16, code: Option<&str>) -> bool {
        if status == 503 {
            return true;
        }
        match self {
            Verdict::Any => true,
            Verdict::NotGranted => !(200..300).contains(&status),
            Verdict::Refused(c) => status == c.http_status() && code == Some(c.as_str()),
        }
    }
}

/// What is known about one resource at an acquire, each `None` when not decidable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Known {
    pub exists: Option<bool>,
    pub status: Option<Status>,
    /// Its type's TTL bounds (min, max), seconds.
    pub bounds: Option<(u32, u32)>,
}

/// How the acquire was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcquireKind {
    /// Plain: the requested TTL meets the type's bounds, then the status.
    Plain,
    /// Waiting in the queue (`wait_seconds`): the TTL as a plain one's; a status other than U is waited out,
    /// and a wait that ends without a grant names what it last met — so only "not granted" is certain.
    Waiting,
    /// Under a session (its TTL is the session's; whether the type's bounds apply to it is not modelled).
    Session,
}

/// An acquire of one resource for `ttl` seconds: a resource that is gone is not found; then a TTL outside its
/// type's bounds is refused; then a status other than U is refused as unavailable, whoever holds it
/// (`admission::Gate::before`). Anything else depends on holders and waiters, which race: not decided.
pub fn acquire(k: &Known, ttl: u32, kind: AcquireKind) -> Verdict {
    match k.exists {
        Some(false) => return Verdict::Refused(ErrorCode::ResourceNotFound),
        None => return Verdict::Any,
        Some(true) => {}
    }
    let Some((min, max)) = k.bounds else { return Verdict::Any };
    if !(min..=max).contains(&ttl) {
        return match kind {
            AcquireKind::Plain | AcquireKind::Waiting => Verdict::Refused(ErrorCode::InvalidTtl),
            AcquireKind::Session => Verdict::Any,
        };
    }
    match (k.status, kind) {
        (Some(s), AcquireKind::Waiting) if !s.available() => Verdict::NotGranted,
        (Some(s), _) if !s.available() => Verdict::Refused(ErrorCode::ResourceUnavailable),
        _ => Verdict::Any,
    }
}

/// A group's acquire, all or none: refused if any member's own acquire would certainly be.
pub fn acquire_group(members: &[Known], ttl: u32) -> Verdict {
    if members.iter().any(|k| acquire(k, ttl, AcquireKind::Plain) != Verdict::Any) {
        Verdict::NotGranted
    } else {
        Verdict::Any
    }
}

/// A heartbeat or booking by a holder (or a group's heartbeat or booking by its id, for each member): if any of
/// the holds it acts on certainly ended by someone else's hand before it was sent (an admin's force-release), it
/// must be refused — all or none for a group. (Not a release: one naming an older token than the current grant's
/// is answered as the retry of a release that took effect, by design.)
pub fn holder_op(ended_by_another: &[bool]) -> Verdict {
    if ended_by_another.iter().any(|e| *e) {
        Verdict::NotGranted
    } else {
        Verdict::Any
    }
}

/// One thing a client saw of one hold, for [`belief`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// An acknowledged grant or renewal (acquire, heartbeat, a group's heartbeat, a session's keepalive or the
    /// session's basis at an acquire under it): sent at `sent`, its answer arrived at `answered`, and the hold
    /// is good until `until` — the send time of the renewal (for a session hold, of the session's last
    /// acknowledged keepalive) plus the TTL.
    Ack { sent: u64, answered: u64, until: u64 },
    /// A renewal that may have taken effect though its answer did not say (none came, or a 5xx): sent at
    /// `sent`, and good until `until` if it did. A renewal may shorten a hold (an acquire adopts its TTL).
    Renewing { sent: u64, until: u64 },
    /// An acknowledged booking, answered at `answered`, until its end `until`.
    Booked { sent: u64, answered: u64, until: u64 },
    /// The client let go (a release, a group's release or a session's close) at `sent`, whatever the answer.
    Released { sent: u64 },
    /// An admin's force-release of this hold, sent at `sent` and answered at `answered` (`None`: no answer, or
    /// none that names the hold, so it may have ended it at any instant after `sent`).
    ForceReleased { sent: u64, answered: Option<u64> },
}

/// The spans `[from, to)` in which a client may believe it holds one hold, from everything it saw of it.
///
/// Each acknowledgement gives `[answered, until)`. It is cut at the client's release; at a later renewal's send
/// it gives way to that renewal's `until` (or the send, if later), answered or not, since a renewal may shorten; a renewal sent before an
/// acknowledged booking is cut at the booking's end (a booking may end a hold sooner than its TTL); and an
/// admin's force-release cuts every acknowledgement not sent after the force-release's answer at the
/// force-release's send — the admin took the hold, and only a renewal that the server acknowledged afterwards
/// (wrongly, if it did) makes the client believe again.
pub fn belief(seen: &[Seen]) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        let (sent, from, mut to, booking) = match *s {
            Seen::Ack { sent, answered, until } => (sent, answered, until, false),
            Seen::Booked { sent, answered, until } => (sent, answered, until, true),
            _ => continue,
        };
        for (j, cut) in seen.iter().enumerate() {
            match *cut {
                Seen::Released { sent: at } => to = to.min(at),
                // A later renewal sets the hold's expiry anew (an acquire adopts its own TTL, shorter perhaps):
                // from its send on, only at least its own `until` is certain.
                Seen::Ack { sent: at, until: end, .. } | Seen::Renewing { sent: at, until: end }
                    if j != i && at > sent =>
                {
                    to = to.min(at.max(end))
                }
                Seen::Booked { sent: at, until: end, .. } if !booking && j != i && at >= sent => to = to.min(end),
                Seen::ForceReleased { sent: at, answered } if answered.is_none_or(|a| sent <= a) => to = to.min(at),
                _ => {}
            }
        }
        if from < to {
            spans.push((from, to));
        }
    }
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (from, to) in spans {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    merged
}

/// One event of the log, in commit order, as [`grants_follow_status`] needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Logged<'a> {
    StatusChanged { resource: &'a str, to: Status },
    Acquired { resource: &'a str, hold: &'a str },
    Deleted { resource: &'a str },
}

/// Every grant the log's commit order forbids, as (index in `log`, why): a resource's status changes and its
/// grants are serialised by its lease row (a status change locks it), so a grant that commits after the
/// resource was set to a status other than U (and before it was set back), or after the resource was deleted,
/// was decided on a stale read. A resource starts as `initial` (its type's default status).
pub fn grants_follow_status(log: &[Logged<'_>], initial: Status) -> Vec<(usize, String)> {
    let mut status: alloc::collections::BTreeMap<&str, Status> = alloc::collections::BTreeMap::new();
    let mut deleted: alloc::collections::BTreeSet<&str> = alloc::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (i, e) in log.iter().enumerate() {
        match e {
            Logged::StatusChanged { resource, to } => {
                status.insert(resource, *to);
            }
            Logged::Deleted { resource } => {
                deleted.insert(resource);
            }
            Logged::Acquired { resource, hold } => {
                if deleted.contains(resource) {
                    out.push((i, alloc::format!("hold {hold} granted on resource {resource} after it was deleted")));
                } else if let Some(s) = status.get(resource).copied().filter(|s| !s.available()) {
                    out.push((
                        i,
                        alloc::format!(
                            "hold {hold} granted on resource {resource} while it was {} ({})",
                            s.code(),
                            s.word()
                        ),
                    ));
                } else if !initial.available() && !status.contains_key(resource) {
                    out.push((
                        i,
                        alloc::format!(
                            "hold {hold} granted on resource {resource} in its initial status {}",
                            initial.code()
                        ),
                    ));
                }
            }
        }
    }
    out
}
