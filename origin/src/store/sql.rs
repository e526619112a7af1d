//! Every statement of the store, written once with `$n` placeholders (SQLite runs them through
//! [`super::dialect::Dialect::sql`]), and the filtered list queries built with their arguments. What differs
//! between the databases is not here but in the dialect's few constants.

use super::rows::Arg;
use super::{EventFilter, LockFilter, ResourceFilter};

/// Every lease query selects the `leases` row joined with its resource: the columns of `rows::LeaseRecord`.
macro_rules! lease_columns {
    () => {
        "r.id, r.type, r.identifier, r.created_at_ms, r.status, l.last_token, l.hold_id, l.principal, \
         l.owner_id, l.ttl_ms, l.token, l.acquired_at_ms, l.last_heartbeat_ms, l.state, l.ended_at_ms, l.heartbeats, \
         l.max_gap_ms, l.delay_until_ms, l.late_reported, l.session_id, l.group_id, l.booked_until_ms, l.waiters, l.pickup_by_ms, \
         t.lock_delay_ms, \
         t.min_ttl_seconds, t.max_ttl_seconds, t.default_ttl_seconds, t.booking_max_seconds, t.default_status"
    };
}

/// Leases, their resources and the resources' types (every lease read carries the policy it is decided with).
macro_rules! from_leases {
    () => {
        " FROM leases l JOIN resources r ON r.id = l.resource_id JOIN resource_types t ON t.name = r.type"
    };
}
pub const SELECT_LEASES: &str = concat!("SELECT ", lease_columns!(), from_leases!());

/// One lease; the dialect appends its row lock (`FOR UPDATE OF l` on PostgreSQL) when a transition follows.
pub const SELECT_LEASE: &str = concat!("SELECT ", lease_columns!(), from_leases!(), " WHERE l.resource_id = $1");

/// A held lease's expiry instant (`hhs_core::Hold::expires_at`): a booking's end, else the last renewal plus
/// the TTL, or the pickup deadline of a handed-over hold if that comes first (NULL compares false). The index
/// `leases_held_by_expiry` is on exactly this expression.
macro_rules! expiry {
    () => {
        "COALESCE(l.booked_until_ms, CASE WHEN l.pickup_by_ms < l.last_heartbeat_ms + l.ttl_ms \
         THEN l.pickup_by_ms ELSE l.last_heartbeat_ms + l.ttl_ms END)"
    };
}

/// The reaper's candidates: held leases whose expiry instant is before `$1` (the clock when its pass began),
/// in expiry order after the cursor `($3, $4)` (expiry instant, resource id), at most `$2`. This restates the
/// rule `now > expires_at` of `hhs_core::lease::Hold::is_expired` so an index can find them; each candidate is
/// then locked on its own (`SELECT_LEASE` with the dialect's `SKIP LOCKED`, so replicas' reapers share the work
/// without waiting), the clock read after that lock, and decided by `hhs_core::lease::expire` — a lapse stays a
/// lapse as time passes. A differential test checks the SQL and hhs-core agree.
pub const SELECT_EXPIRED: &str = concat!(
    "SELECT l.resource_id AS id, ",
    expiry!(),
    " AS expires_at_ms FROM leases l WHERE l.state = 'HELD' AND ",
    expiry!(),
    " < $1 \
     AND (",
    expiry!(),
    " > $3 OR (",
    expiry!(),
    " = $3 AND l.resource_id > $4)) ORDER BY ",
    expiry!(),
    ", l.resource_id LIMIT $2"
);

pub const UPDATE_LEASE: &str = "UPDATE leases SET last_token = $2, hold_id = $3, owner_id = $4, ttl_ms = $5, token = $6, \
     acquired_at_ms = $7, last_heartbeat_ms = $8, state = $9, ended_at_ms = $10, heartbeats = $11, max_gap_ms = $12, \
     delay_until_ms = $13, principal = $14, late_reported = $15, session_id = $16, group_id = $17, booked_until_ms = $18, \
     waiters = $19, pickup_by_ms = $20 WHERE resource_id = $1";

pub const EVENT_COLUMNS: &str =
    "txid, id, at_ms, kind, resource_id, hold_id, owner_id, fencing_token, detail, principal, key_id, request_id, outcome";
pub const INSERT_EVENT: &str =
    "INSERT INTO events (at_ms, kind, resource_id, hold_id, owner_id, fencing_token, detail, \
     principal, key_id, request_id, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Resources with their types' policy.
const SELECT_RESOURCES: &str = "SELECT r.id, r.type, r.identifier, r.created_at_ms, r.status, t.lock_delay_ms, t.min_ttl_seconds, \
     t.max_ttl_seconds, t.default_ttl_seconds, t.booking_max_seconds, t.default_status FROM resources r JOIN resource_types t ON t.name = r.type";
pub const INSERT_RESOURCE: &str =
    "INSERT INTO resources (id, type, identifier, created_at_ms, status) VALUES ($1, $2, $3, $4, $5)";
pub const INSERT_LEASE: &str = "INSERT INTO leases (resource_id) VALUES ($1)";
pub const UPDATE_IDENTIFIER: &str = "UPDATE resources SET identifier = $2 WHERE id = $1";
pub const UPDATE_STATUS: &str = "UPDATE resources SET status = $2 WHERE id = $1";
/// Claims an HL7 message's record by its key (principal, sender `MSH-3^MSH-4`, control id): a new row, or one past
/// the window (`$9`: `hl7::expired_before`) taken over; 0 rows when a live record holds the key (on PostgreSQL a
/// concurrent claim of the key waits for its transaction).
pub const CLAIM_HL7: &str = "INSERT INTO hl7_messages (principal, sender, control_id, digest, received_at_ms, message_type, ack_code, ack_text, ack) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '') ON CONFLICT (principal, sender, control_id) DO UPDATE SET digest = excluded.digest, \
     received_at_ms = excluded.received_at_ms, message_type = excluded.message_type, ack_code = excluded.ack_code, \
     ack_text = excluded.ack_text, ack = excluded.ack WHERE hl7_messages.received_at_ms < $9";
/// The record under a key: digest, stored ACK, its code, when.
pub const SELECT_HL7: &str = "SELECT digest, ack, ack_code, received_at_ms FROM hl7_messages WHERE principal = $1 AND sender = $2 AND control_id = $3";
/// A claimed record completed with its answer.
pub const RECORD_HL7: &str = "UPDATE hl7_messages SET ack_code = $4, ack_text = $5, ack = $6 WHERE principal = $1 AND sender = $2 AND control_id = $3";
/// A claim given up (the message was not applied: nothing to remember).
pub const UNCLAIM_HL7: &str = "DELETE FROM hl7_messages WHERE principal = $1 AND sender = $2 AND control_id = $3";
/// Records past the window.
pub const EXPIRE_HL7: &str = "DELETE FROM hl7_messages WHERE received_at_ms < $1";
pub const DELETE_RESOURCE: &str = "DELETE FROM resources WHERE id = $1";

pub const INSERT_KEY: &str =
    "INSERT INTO api_keys (id, principal, role, secret_sha256, created_at_ms) VALUES ($1, $2, $3, $4, $5)";
pub const SELECT_KEYS: &str = "SELECT id, principal, role, secret_sha256, created_at_ms, revoked_at_ms FROM api_keys";
pub const SELECT_KEY: &str =
    "SELECT id, principal, role, secret_sha256, created_at_ms, revoked_at_ms FROM api_keys WHERE id = $1";
pub const REVOKE_KEY: &str = "UPDATE api_keys SET revoked_at_ms = $2 WHERE id = $1 AND revoked_at_ms IS NULL";

/// Fencing-token floors of names given up (see `hhs_core::lease::token_floor`): raised, never lowered.
pub const RAISE_FLOOR: &str = "INSERT INTO token_floors (type, identifier, last_token) VALUES ($1, $2, $3) \
     ON CONFLICT (type, identifier) DO UPDATE SET last_token = \
     CASE WHEN excluded.last_token > token_floors.last_token THEN excluded.last_token ELSE token_floors.last_token END";
pub const SELECT_FLOOR: &str = "SELECT last_token FROM token_floors WHERE type = $1 AND identifier = $2";
pub const SET_LAST_TOKEN: &str = "UPDATE leases SET last_token = $2 WHERE resource_id = $1";

pub const LOG_POSITION: &str = "SELECT txid, id FROM events WHERE id = $1";

/// Events after the event `{}` (an id) in commit order: by the writing transaction, then by id. An id that is
/// not in the log counts as if its transaction were 0, which on SQLite is exactly "id greater than".
const AFTER_EVENT: &str = "(txid, id) > (COALESCE((SELECT p.txid FROM events p WHERE p.id = {}), 0), {})";

/// The grant rule for a lease that is not held: not in lock-delay at the clock's `ms`. Restates the part of
/// `hhs_core::lease::acquire` that applies when the stored state is not `HELD`; the differential test
/// (`tests/it/fast_grant.rs`) checks both decide every generated case alike.
macro_rules! grantable {
    () => {
        "l.state <> 'HELD' AND (l.delay_until_ms IS NULL OR l.delay_until_ms <= clock.ms)"
    };
}

/// The predicate alone, over `leases l` and a `clock` with the time in `ms`: what the differential test runs.
pub const GRANTABLE: &str = grantable!();

/// PostgreSQL's one-statement acquire for a resource that is free, released, expired-and-recorded or
/// force-released and not in lock-delay: grant the next token, append the `acquired` event, return the lease.
/// No row means "not that simple" (held, lapsed but unrecorded, in lock-delay, unknown resource), and the caller
/// falls back to the row-lock path that asks `hhs_core::lease::acquire`. `xtask pgbench` measured this shape
/// faster than lock-then-decide for the common case. `$1` resource, `$2` hold id, `$3` owner, `$4` TTL in ms,
/// `$5` the event detail, `$6` principal, `$7` key, `$8` request.
///
/// `locked` takes the lease row, and shares the resource's and its type's rows, only if nobody holds a
/// conflicting lock on any of them (`SKIP LOCKED`): this statement never waits, and falls back to the row-lock
/// path (`lock_lease`, which reads after its lock) instead. One statement has one snapshot: PostgreSQL re-reads
/// a row after the snapshot only when the statement locks it and it has changed since. So the status and TTL
/// bounds the grant is decided by are `locked`'s columns — the resource and type rows locked too, read as
/// committed when locked — never a join read from the snapshot, which could predate a status change or a type
/// change that committed before the lock was taken (and the grant would follow it in the log). `clock` reads
/// `clock_timestamp()` from `locked`'s row, so only once the locks are taken. `locked` takes only a row that is
/// not `HELD`: a held row cannot be granted here anyway.
pub const ONE_STATEMENT_ACQUIRE: &str = concat!(
    "WITH locked AS MATERIALIZED (SELECT l.resource_id, r.status, t.min_ttl_seconds, t.max_ttl_seconds FROM leases l \
        JOIN resources r ON r.id = l.resource_id JOIN resource_types t ON t.name = r.type \
        WHERE l.resource_id = $1 AND l.state <> 'HELD' FOR UPDATE OF l SKIP LOCKED FOR SHARE OF r, t SKIP LOCKED), \
     clock AS MATERIALIZED (SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms FROM locked), \
     granted AS (UPDATE leases l SET last_token = l.last_token + 1, hold_id = $2, owner_id = $3, ttl_ms = $4, \
        token = l.last_token + 1, acquired_at_ms = clock.ms, last_heartbeat_ms = clock.ms, state = 'HELD', \
        ended_at_ms = NULL, heartbeats = 0, max_gap_ms = 0, delay_until_ms = NULL, principal = $6, late_reported = FALSE, \
        session_id = NULL, group_id = NULL, booked_until_ms = NULL, pickup_by_ms = NULL \
        FROM clock, locked k WHERE l.resource_id = k.resource_id \
        AND k.status = 'U' AND $4 BETWEEN k.min_ttl_seconds * 1000 AND k.max_ttl_seconds * 1000 AND ",
    grantable!(),
    // Nobody waits: a queue is served first, by the row-lock path (`hhs_core::queue::admit`).
    " AND l.waiters = 0 RETURNING l.*), \
     logged AS (INSERT INTO events (at_ms, kind, resource_id, hold_id, owner_id, fencing_token, detail, principal, \
        key_id, request_id, outcome) \
        SELECT acquired_at_ms, 'acquired', resource_id, hold_id, owner_id, token, $5, $6, $7, $8, 'ok' FROM granted) \
     SELECT ",
    lease_columns!(),
    " FROM granted l JOIN resources r ON r.id = l.resource_id JOIN resource_types t ON t.name = r.type"
);

/// Holds a database outage may have taken time from: held, not renewed since the outage began at `$1`, and
/// live then; not bookings (they need no renewals). Each is still decided by `hhs_core::lease::resume`.
pub const SELECT_RESUMABLE: &str = concat!(
    "SELECT ",
    lease_columns!(),
    from_leases!(),
    " WHERE l.state = 'HELD' AND l.booked_until_ms IS NULL \
     AND l.last_heartbeat_ms < $1 AND l.last_heartbeat_ms + l.ttl_ms >= $1"
);
/// When live holds were last resumed after an outage (0: never).
pub const LAST_RESUME: &str = "SELECT COALESCE(MAX(resumed_at_ms), 0) FROM outages";
pub const INSERT_OUTAGE: &str = "INSERT INTO outages (lost_at_ms, resumed_at_ms, holds_extended) VALUES ($1, $2, $3)";

/// The caller's live hold, over `leases l` and a `clock` with the time in `ms`: `$2` principal, `$3` owner, `$4`
/// token or NULL; held and not lapsed; a plain hold (a session's or a booking falls back to hhs-core). Restates the success case of `hhs_core::lease::heartbeat` and `release`
/// (`check_holder`, then `Hold::is_expired`); anything else falls back to the row-lock path, where hhs-core
/// decides and names the refusal. `tests/it/fast_paths.rs` checks SQL and hhs-core agree on every generated
/// case, outcome and values.
macro_rules! live_hold_of_caller {
    () => {
        "l.resource_id = $1 AND l.state = 'HELD' AND l.principal = $2 AND l.owner_id = $3 \
         AND ($4::bigint IS NULL OR l.token = $4) AND clock.ms - l.last_heartbeat_ms <= l.ttl_ms \
         AND (l.pickup_by_ms IS NULL OR clock.ms <= l.pickup_by_ms) \
         AND l.session_id IS NULL AND l.booked_until_ms IS NULL"
    };
}

/// The renewal (`Hold::record_heartbeat`: the clock never moves back, the longest gap kept).
macro_rules! renew {
    () => {
        concat!(
            "UPDATE leases l SET heartbeats = LEAST(l.heartbeats + 1, 4294967295), \
                max_gap_ms = GREATEST(l.max_gap_ms, GREATEST(clock.ms, l.last_heartbeat_ms) - l.last_heartbeat_ms), \
                last_heartbeat_ms = GREATEST(clock.ms, l.last_heartbeat_ms), pickup_by_ms = NULL FROM clock WHERE ",
            live_hold_of_caller!(),
            " RETURNING l.*"
        )
    };
}

/// The release (`hhs_core::lease::release`: ended at the later of the clock and the last heartbeat; no
/// lock-delay) and its `released` event, whose detail is `HoldDetail` written in SQL (`$5` actor principal, `$6`
/// key id, `$7` request id).
macro_rules! release_and_log {
    () => {
        concat!(
            "released AS (UPDATE leases l SET state = 'RELEASED', ended_at_ms = GREATEST(clock.ms, l.last_heartbeat_ms) \
                FROM clock WHERE ",
            live_hold_of_caller!(),
            // Nobody waits: a release with a queue hands over in its transaction (the row-lock path).
            " AND l.waiters = 0 RETURNING l.*, clock.ms AS now_ms), \
             logged AS (INSERT INTO events (at_ms, kind, resource_id, hold_id, owner_id, fencing_token, detail, principal, \
                key_id, request_id, outcome) \
                SELECT now_ms, 'released', resource_id, hold_id, owner_id, token, json_build_object('ttl_seconds', ttl_ms / 1000, \
                'heartbeats', heartbeats, 'max_heartbeat_gap_ms', max_gap_ms, 'held_ms', ended_at_ms - acquired_at_ms, \
                'hold_principal', principal, 'ended_at', \
                to_char(TIMESTAMP 'epoch' + ended_at_ms * INTERVAL '1 millisecond', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))::text, \
                $5, $6, $7, 'ok' FROM released RETURNING detail)"
        )
    };
}

/// The statements' first two steps: lock the row, then read the clock — only once the lock is granted (as the
/// fast grant does: a clock read before a lock wait would decide with a time from before it).
macro_rules! locked_clock {
    () => {
        "WITH locked AS MATERIALIZED (SELECT resource_id FROM leases WHERE resource_id = $1 FOR UPDATE), \
         clock AS MATERIALIZED (SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms FROM locked), "
    };
}

/// The renewal alone, with the clock given as `$5`: what the differential test runs.
pub const RENEW_AT: &str =
    concat!("WITH clock AS (SELECT $5::bigint AS ms), renewed AS (", renew!(), ") SELECT * FROM renewed");

/// The release alone, with the clock given as `$8`; returns the row and the event's detail.
pub const RELEASE_AT: &str = concat!(
    "WITH clock AS (SELECT $8::bigint AS ms), ",
    release_and_log!(),
    " SELECT released.*, logged.detail FROM released, logged"
);

/// PostgreSQL's one-statement heartbeat: lock, clock, renew, and notify the renewal (`hhs_renewals`, the written
/// row as JSON: `StoredLease::parse_row`) — one round trip instead of six (begin, lock, clock, update, notify,
/// commit). No row: not that simple (another's hold, lapsed, released, a stale token, unknown resource), and the
/// caller falls back to the row-lock path.
pub const ONE_STATEMENT_HEARTBEAT: &str = concat!(
    locked_clock!(),
    "renewed AS (",
    renew!(),
    "), notified AS (SELECT pg_notify('hhs_renewals', row_to_json(renewed)::text) FROM renewed) SELECT ",
    lease_columns!(),
    " FROM renewed l JOIN notified ON TRUE JOIN resources r ON r.id = l.resource_id JOIN resource_types t ON t.name = r.type"
);

/// PostgreSQL's one-statement release of the caller's live hold, with its `released` event. No row: not that
/// simple (an idempotent repeat, a stale token, lapsed, another's hold), and the caller falls back.
pub const ONE_STATEMENT_RELEASE: &str = concat!(
    locked_clock!(),
    release_and_log!(),
    " SELECT ",
    lease_columns!(),
    " FROM released l JOIN resources r ON r.id = l.resource_id JOIN resource_types t ON t.name = r.type"
);

/// Sessions (`hhs_core::session`).
pub const SESSION_COLUMNS: &str =
    "id, principal, owner_id, ttl_ms, opened_at_ms, last_keepalive_ms, state, ended_at_ms";
pub const INSERT_SESSION: &str =
    "INSERT INTO sessions (id, principal, owner_id, ttl_ms, opened_at_ms, last_keepalive_ms, state, \
     ended_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub const UPDATE_SESSION: &str =
    "UPDATE sessions SET last_keepalive_ms = $2, state = $3, ended_at_ms = $4 WHERE id = $1";
/// The reaper's candidate sessions: open past their last valid instant `$1`, after the cursor `$3` (id), at most
/// `$2`. Each is then locked on its own (`LOCK_SESSION_SKIP` with the dialect's lock) and decided by
/// `hhs_core::session::lapse` with the clock read after that lock.
pub const SELECT_LAPSED_SESSIONS: &str =
    "SELECT id FROM sessions WHERE state = 'OPEN' AND last_keepalive_ms + ttl_ms < $1 AND id > $3 ORDER BY id LIMIT $2";
/// One session for the reaper; the dialect appends `FOR UPDATE SKIP LOCKED` on PostgreSQL.
pub const LOCK_SESSION_SKIP: &str = "SELECT id, principal, owner_id, ttl_ms, opened_at_ms, last_keepalive_ms, state, \
     ended_at_ms FROM sessions WHERE id = $1 AND state = 'OPEN'";
/// Sessions an outage beginning at `$1` may have taken time from (`hhs_core::session::resume` decides); the
/// dialect appends its row lock.
pub const SELECT_RESUMABLE_SESSIONS: &str = "SELECT id, principal, owner_id, ttl_ms, opened_at_ms, last_keepalive_ms, state, \
     ended_at_ms FROM sessions WHERE state = 'OPEN' AND last_keepalive_ms < $1 AND last_keepalive_ms + ttl_ms >= $1 ORDER BY id";
/// How many live holds each session has (a hold lapses with its session, so "held" is enough while it is open);
/// the caller narrows it to one session or not, then appends `GROUP BY session_id`.
pub const COUNT_SESSION_HOLDS: &str =
    "SELECT session_id, COUNT(*) FROM leases WHERE state = 'HELD' AND session_id IS NOT NULL";
/// The leases of session `$1`'s held holds (to release them when it closes), read once `LOCK_SESSION_LEASES` holds them.
/// In resource-id order, the order every multi-row lock takes (`hhs_core::group::lock_order`).
pub const SELECT_SESSION_LEASES: &str = concat!(
    "SELECT ",
    lease_columns!(),
    from_leases!(),
    " WHERE l.session_id = $1 AND l.state = 'HELD' ORDER BY l.resource_id"
);
/// The same rows' locks alone, taken before a keepalive's renewal: an `UPDATE` over many rows would lock them in
/// whatever order it finds them, and the clock is read only once they are held. The dialect appends its row lock.
pub const LOCK_SESSION_LEASES: &str =
    "SELECT l.resource_id FROM leases l WHERE l.session_id = $1 AND l.state = 'HELD' ORDER BY l.resource_id";

/// The wait queue (`hhs_core::queue`): a resource's waiting requests in arrival order (`seq`), read with its
/// lease row held. `state` is `hhs_core::queue::WaiterState`'s stored form.
pub const SELECT_QUEUE: &str =
    "SELECT id, resource_id, principal, owner_id, ttl_ms, enqueued_at_ms, alive_until_ms, deadline_ms, \
     state, hold_id, ended_at_ms FROM waiters WHERE resource_id = $1 AND state = 'WAITING' ORDER BY seq";
/// One waiter, whatever its state: what its request polls.
pub const SELECT_WAITER: &str =
    "SELECT id, resource_id, principal, owner_id, ttl_ms, enqueued_at_ms, alive_until_ms, deadline_ms, \
     state, hold_id, ended_at_ms FROM waiters WHERE id = $1";
pub const INSERT_WAITER: &str =
    "INSERT INTO waiters (id, resource_id, principal, owner_id, ttl_ms, enqueued_at_ms, alive_until_ms, \
     deadline_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
/// A wait's end: `$2` the state (`GRANTED` with the hold `$3`, `TIMED_OUT`, `GONE`), at `$4`.
pub const END_WAITER: &str =
    "UPDATE waiters SET state = $2, hold_id = $3, ended_at_ms = $4 WHERE id = $1 AND state = 'WAITING'";
/// A hand-over's request was answered with its hold.
pub const DELIVER_WAITER: &str = "UPDATE waiters SET state = 'DELIVERED' WHERE id = $1 AND state = 'GRANTED'";
/// A hand-over that will never be delivered (its request went away, or never took it, or its hold ended first).
pub const ABANDON_WAITER: &str = "UPDATE waiters SET state = 'GONE' WHERE id = $1 AND state = 'GRANTED'";
/// A waiting request proved it is there: live until `$2`.
pub const SEEN_WAITER: &str = "UPDATE waiters SET alive_until_ms = $2 WHERE id = $1 AND state = 'WAITING'";
/// For the reaper: leases with a queue that may be served now (no hold and no lock-delay at `$1`) or that has a
/// waiter that is gone (`hhs_core::queue::Waiter::is_gone`: not seen, or its wait over for longer than `$3`, the
/// presence timeout), after resource `$4`, at most `$2`. Each is then locked on its own and served with the
/// clock read after that lock.
pub const SELECT_SERVABLE: &str = "SELECT l.resource_id AS id FROM leases l WHERE l.waiters > 0 AND l.resource_id > $4 \
     AND ((l.state <> 'HELD' AND (l.delay_until_ms IS NULL OR l.delay_until_ms <= $1)) OR EXISTS (SELECT 1 FROM waiters w \
     WHERE w.resource_id = l.resource_id AND w.state = 'WAITING' AND (w.alive_until_ms < $1 OR w.deadline_ms + $3 < $1))) \
     ORDER BY l.resource_id LIMIT $2";
/// For the reaper: hand-overs not delivered, granted before `$1` (the pass's clock less the pickup window:
/// `hhs_core::queue::abandoned` restated for the index), after the cursor `($3, $4)` (grant time, waiter id), at
/// most `$2`. Each is decided by `hhs_core::queue::reclaim` under its lease's lock, with the clock read after it.
pub const SELECT_UNDELIVERED: &str =
    "SELECT id, resource_id, ended_at_ms FROM waiters WHERE state = 'GRANTED' AND ended_at_ms < $1 \
     AND (ended_at_ms > $3 OR (ended_at_ms = $3 AND id > $4)) ORDER BY ended_at_ms, id LIMIT $2";
/// Ended waits a minute old (`$1`): nobody polls them any more.
pub const DELETE_ENDED_WAITERS: &str = "DELETE FROM waiters WHERE state <> 'WAITING' AND ended_at_ms < $1";

/// Group `$1`'s members, as recorded when it was granted (whatever their leases hold now); the store locks their
/// leases in `hhs_core::group::lock_order`.
pub const SELECT_GROUP_MEMBERS: &str = "SELECT resource_id FROM group_members WHERE group_id = $1";
pub const INSERT_GROUP_MEMBER: &str = "INSERT INTO group_members (group_id, resource_id) VALUES ($1, $2)";

/// A keepalive's renewal of every live hold of session `$1`, in one statement: each takes the session's renewal
/// (`$2` its new `last_keepalive`, `$3` its TTL in ms), live at `$4` (now), not booked. Plain SQL both databases
/// read (`CASE`, no `LEAST`/`GREATEST`, no alias). Restates
/// `hhs_core::session::renew_hold`; `tests/it/sessions.rs` checks the two agree on generated leases.
macro_rules! renew_session_holds {
    () => {
        "UPDATE leases SET heartbeats = CASE WHEN heartbeats < 4294967295 THEN heartbeats + 1 ELSE heartbeats END, \
            max_gap_ms = CASE WHEN $2 - last_heartbeat_ms > max_gap_ms THEN $2 - last_heartbeat_ms ELSE max_gap_ms END, \
            last_heartbeat_ms = $2, ttl_ms = $3 \
         WHERE session_id = $1 AND state = 'HELD' AND booked_until_ms IS NULL AND $4 - last_heartbeat_ms <= ttl_ms \
         RETURNING *"
    };
}
/// SQLite: the renewed rows come back, and this process streams each renewal.
pub const RENEW_SESSION_HOLDS: &str = renew_session_holds!();
/// PostgreSQL: the same statement also notifies each renewed row (`hhs_renewals`, as a heartbeat does), so every
/// replica's stream carries the new expiries; it returns each renewed hold's resource and token.
pub const RENEW_SESSION_HOLDS_NOTIFIED: &str = concat!(
    "WITH renewed AS (",
    renew_session_holds!(),
    "), notified AS (SELECT resource_id, token, pg_notify('hhs_renewals', row_to_json(renewed)::text) FROM renewed) \
     SELECT resource_id, token FROM notified ORDER BY resource_id"
);

pub const SELECT_TYPES: &str = "SELECT name, lock_delay_ms, min_ttl_seconds, max_ttl_seconds, default_ttl_seconds, booking_max_seconds, default_status, updated_at_ms \
     FROM resource_types";
/// A type's row, made with `$2`…`$8` if it is missing; an existing row is left as it is.
pub const ENSURE_TYPE: &str = "INSERT INTO resource_types (name, lock_delay_ms, min_ttl_seconds, max_ttl_seconds, \
     default_ttl_seconds, updated_at_ms, booking_max_seconds, default_status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING";
/// A row nobody has set yet (`updated_at_ms` 0) takes the seed `$2`…`$8`; a set row is left as it is.
pub const SEED_TYPE: &str = "UPDATE resource_types SET lock_delay_ms = $2, min_ttl_seconds = $3, max_ttl_seconds = $4, \
     default_ttl_seconds = $5, updated_at_ms = $6, booking_max_seconds = $7, default_status = $8 WHERE name = $1 AND updated_at_ms = 0";
pub const PUT_TYPE: &str = "INSERT INTO resource_types (name, lock_delay_ms, min_ttl_seconds, max_ttl_seconds, \
     default_ttl_seconds, updated_at_ms, booking_max_seconds, default_status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO UPDATE SET \
     lock_delay_ms = excluded.lock_delay_ms, min_ttl_seconds = excluded.min_ttl_seconds, \
     max_ttl_seconds = excluded.max_ttl_seconds, default_ttl_seconds = excluded.default_ttl_seconds, \
     updated_at_ms = excluded.updated_at_ms, booking_max_seconds = excluded.booking_max_seconds, \
     default_status = excluded.default_status";

/// Collects `WHERE` conditions and their arguments, numbering placeholders as it goes.
#[derive(Default)]
struct Filter {
    conditions: Vec<String>,
    args: Vec<Arg>,
}

impl Filter {
    fn push(&mut self, condition: &str, arg: Arg) {
        let placeholder = self.arg(arg);
        self.conditions.push(condition.replace("{}", &placeholder));
    }

    /// Adds an argument; its placeholder.
    fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    fn finish(mut self, select: &str, order: &str, limit: Option<u32>) -> (String, Vec<Arg>) {
        let mut sql = String::from(select);
        if !self.conditions.is_empty() {
            sql = format!("{sql} WHERE {}", self.conditions.join(" AND "));
        }
        sql = format!("{sql} {order}");
        if let Some(limit) = limit {
            self.args.push(Arg::Int(Some(i64::from(limit))));
            sql = format!("{sql} LIMIT ${}", self.args.len());
        }
        (sql, self.args)
    }
}

pub fn resources(f: &ResourceFilter) -> (String, Vec<Arg>) {
    let mut q = Filter::default();
    if let Some(t) = &f.resource_type {
        q.push("r.type = {}", Arg::text(t.as_str()));
    }
    if let Some(i) = &f.identifier {
        q.push("r.identifier = {}", Arg::text(i.as_str()));
    }
    if let Some(after) = f.after {
        q.push("r.id > {}", Arg::Uuid(Some(after.0)));
    }
    q.finish(SELECT_RESOURCES, "ORDER BY r.id", Some(f.limit))
}

pub fn leases(f: &LockFilter) -> (String, Vec<Arg>) {
    let mut q = Filter::default();
    if let Some(o) = &f.owner_id {
        q.push("l.owner_id = {}", Arg::text(o.as_str()));
    }
    if let Some(t) = &f.resource_type {
        q.push("r.type = {}", Arg::text(t.as_str()));
    }
    if f.held_only {
        q.conditions.push("l.state = 'HELD'".to_owned());
    }
    if let Some(after) = f.after {
        q.push("l.resource_id > {}", Arg::Uuid(Some(after.0)));
    }
    if let Some(ids) = &f.resources {
        let placeholders: Vec<String> = ids.iter().map(|id| q.arg(Arg::Uuid(Some(id.0)))).collect();
        // `IN ()` is not SQL; no resources match nothing.
        q.conditions.push(if ids.is_empty() {
            "1 = 0".to_owned()
        } else {
            format!("l.resource_id IN ({})", placeholders.join(", "))
        });
    }
    q.finish(SELECT_LEASES, "ORDER BY l.resource_id", f.limit)
}

/// The event log, in commit order (`txid`, then `id`), read only up to `horizon` (the dialect's commit horizon)
/// — every read, the first page too: any page may be followed by a next one (`after_id`, a stream resuming
/// with `Last-Event-ID`, the TTL model's next refresh), and an event whose transaction commits later must sort
/// after everything a read returned, so that the next read gets it exactly once.
pub fn events(f: &EventFilter, horizon: &str) -> (String, Vec<Arg>) {
    let mut q = Filter::default();
    q.conditions.push(format!("txid < {horizon}"));
    if let Some(r) = f.resource_id {
        q.push("resource_id = {}", Arg::Uuid(Some(r.0)));
    }
    if let Some(after) = f.after_id {
        q.push(AFTER_EVENT, Arg::Int(Some(after)));
    }
    if let Some(since) = f.since {
        q.push("at_ms >= {}", Arg::Int(Some(since.0)));
    }
    if let Some(until) = f.until {
        q.push("at_ms < {}", Arg::Int(Some(until.0)));
    }
    q.finish(&format!("SELECT {EVENT_COLUMNS} FROM events"), "ORDER BY txid, id", Some(f.limit))
}

/// The newest event below the horizon: a snapshot read after it reflects it and everything before it, and
/// every event after it (in commit order) is still to come on the stream.
pub fn newest_event(horizon: &str) -> String {
    format!("SELECT txid, id FROM events WHERE txid < {horizon} ORDER BY txid DESC, id DESC LIMIT 1")
}

/// What the TTL model learns from (holds that ended with their client still there to say so, and heartbeats
/// that came after their hold had lapsed), after the event `$1` in commit order, up to the horizon.
pub fn finished_holds(horizon: &str) -> String {
    format!(
        "SELECT e.id, e.kind, r.type AS resource_type, e.owner_id, e.detail FROM events e \
         JOIN resources r ON r.id = e.resource_id WHERE e.kind IN ('released', 'late_release', 'late_heartbeat') \
         AND (e.txid, e.id) > (COALESCE((SELECT p.txid FROM events p WHERE p.id = $1), 0), $1) AND e.txid < {horizon} \
         ORDER BY e.txid, e.id LIMIT $2"
    )
}
