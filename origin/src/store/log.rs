//! The event log, read in commit order up to the commit horizon (`Dialect::HORIZON`), so a reader that goes on
//! after the last event it saw never skips one whose transaction committed late.

use async_trait::async_trait;
use hhs_core::wire::{Detail, EventView, LogKind};
use hhs_core::{FencingToken, HoldId, Millis, ResourceId};
use uuid::Uuid;

use super::dialect::Dialect;
use super::rows::{Arg, Filter};
use super::sql_store::SqlStore;
use super::{Change, EventFilter, StoreError};

/// The event log.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Events in commit order; with `after_id`, a cursor that never skips a late committer ([`events_query`]).
    async fn events(&self, filter: &EventFilter) -> Result<Vec<Logged>, StoreError>;

    /// The newest event every later reader will see after nothing it has not seen yet: the last one below the
    /// commit horizon.
    async fn newest_event(&self) -> Result<Option<LogPos>, StoreError>;

    /// Where event `id` stands in commit order (`None`: no such event).
    async fn log_position(&self, id: i64) -> Result<Option<LogPos>, StoreError>;

    /// Resolves when events may have been committed since the last call (by anyone, where the database can
    /// tell), or with a hold renewed without an event. Callers also poll on a timer, so a wake-up that never
    /// comes costs latency, not correctness (a lost renewal leaves a dashboard's countdown short until the next).
    async fn changed(&self) -> Change;

    /// Finished holds (`released`, `late_release` events) after event id `after`, oldest first: the TTL model's food.
    async fn finished_holds(&self, after: i64, limit: u32) -> Result<Vec<FinishedHold>, StoreError>;

    /// Appends one event on its own (failed authentications). Its `at_ms` is replaced by the database clock.
    async fn append_event(&self, event: EventView) -> Result<(), StoreError>;
}

#[async_trait]
impl<D: Dialect> LogStore for SqlStore<D> {
    async fn events(&self, filter: &EventFilter) -> Result<Vec<Logged>, StoreError> {
        let (statement, args) = events_query(filter, D::HORIZON);
        let recs: Vec<EventRecord> = self.read(&statement, args).await?;
        Ok(recs.into_iter().map(Logged::from).collect())
    }

    async fn newest_event(&self) -> Result<Option<LogPos>, StoreError> {
        self.position(&newest_event_query(D::HORIZON), vec![]).await
    }

    async fn log_position(&self, id: i64) -> Result<Option<LogPos>, StoreError> {
        self.position(LOG_POSITION, vec![Arg::Int(Some(id))]).await
    }

    async fn changed(&self) -> Change {
        let mut rx = self.changes_rx.lock().await;
        tokio::select! {
            _ = self.written.notified() => Change::Events,
            r = rx.recv() => r.unwrap_or(Change::Events),
        }
    }

    async fn finished_holds(&self, after: i64, limit: u32) -> Result<Vec<FinishedHold>, StoreError> {
        let args = vec![Arg::Int(Some(after)), Arg::Int(Some(i64::from(limit)))];
        self.read(&finished_holds_query(D::HORIZON), args).await
    }

    async fn append_event(&self, mut event: EventView) -> Result<(), StoreError> {
        let (mut tx, now) = self.begin().await?;
        event.at = now.to_utc();
        Self::insert_event(&mut tx, event).await?;
        self.commit(tx, vec![]).await
    }
}

impl<D: Dialect> SqlStore<D> {
    pub(super) async fn position(&self, statement: &str, args: Vec<Arg>) -> Result<Option<LogPos>, StoreError> {
        Ok(self.read(statement, args).await?.pop())
    }
}

pub const EVENT_COLUMNS: &str =
    "txid, id, at_ms, kind, resource_id, hold_id, owner_id, fencing_token, detail, principal, key_id, request_id, outcome";

pub const LOG_POSITION: &str = "SELECT txid, id FROM events WHERE id = $1";

/// Events after the event `{}` (an id) in commit order: by the writing transaction, then by id. An id that is
/// not in the log counts as if its transaction were 0, which on SQLite is exactly "id greater than".
const AFTER_EVENT: &str = "(txid, id) > (COALESCE((SELECT p.txid FROM events p WHERE p.id = {}), 0), {})";

/// The event log, in commit order (`txid`, then `id`), read only up to `horizon` (the dialect's commit horizon)
/// — every read, the first page too: any page may be followed by a next one (`after_id`, a stream resuming
/// with `Last-Event-ID`, the TTL model's next refresh), and an event whose transaction commits later must sort
/// after everything a read returned, so that the next read gets it exactly once.
pub fn events_query(f: &EventFilter, horizon: &str) -> (String, Vec<Arg>) {
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
pub fn newest_event_query(horizon: &str) -> String {
    format!("SELECT txid, id FROM events WHERE txid < {horizon} ORDER BY txid DESC, id DESC LIMIT 1")
}

/// What the TTL model learns from (holds that ended with their client still there to say so, and heartbeats
/// that came after their hold had lapsed), after the event `$1` in commit order, up to the horizon.
pub fn finished_holds_query(horizon: &str) -> String {
    format!(
        "SELECT e.id, e.kind, r.type AS resource_type, e.owner_id, e.detail FROM events e \
         JOIN resources r ON r.id = e.resource_id WHERE e.kind IN ('released', 'late_release', 'late_heartbeat') \
         AND (e.txid, e.id) > (COALESCE((SELECT p.txid FROM events p WHERE p.id = $1), 0), $1) AND e.txid < {horizon} \
         ORDER BY e.txid, e.id LIMIT $2"
    )
}

/// Where an event stands in the log's commit order: by the transaction that wrote it, then by id (see
/// `events_query`). PostgreSQL fills `txid` with the writing transaction's id; SQLite, whose writers take
/// turns, leaves it 0, so there the order is the id's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct LogPos {
    pub txid: i64,
    pub id: i64,
}

/// An event read from the log, with its place in commit order.
#[derive(Clone, Debug)]
pub struct Logged {
    pub pos: LogPos,
    pub event: EventView,
}

#[derive(sqlx::FromRow)]
pub struct EventRecord {
    txid: i64,
    id: i64,
    at_ms: i64,
    kind: String,
    resource_id: Option<Uuid>,
    hold_id: Option<Uuid>,
    owner_id: Option<String>,
    fencing_token: Option<i64>,
    detail: String,
    principal: Option<String>,
    key_id: Option<String>,
    request_id: Option<String>,
    outcome: String,
}

impl From<EventRecord> for Logged {
    fn from(r: EventRecord) -> Logged {
        let event = EventView {
            id: r.id,
            at: Millis(r.at_ms).to_utc(),
            kind: LogKind::parse(&r.kind),
            resource_id: r.resource_id.map(ResourceId),
            hold_id: r.hold_id.map(HoldId),
            owner_id: r.owner_id,
            fencing_token: r.fencing_token.and_then(FencingToken::from_i64).map(|t| t.0),
            detail: serde_json::from_str(&r.detail).unwrap_or(Detail::Other(serde_json::Value::Null)),
            principal: r.principal,
            key_id: r.key_id,
            request_id: r.request_id,
            outcome: r.outcome,
            lock: None,
        };
        Logged { pos: LogPos { txid: r.txid, id: r.id }, event }
    }
}

/// What the TTL model learns from: a `released`, `late_release` or `late_heartbeat` event with its resource type.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FinishedHold {
    pub id: i64,
    pub kind: String,
    pub resource_type: String,
    pub owner_id: Option<String>,
    pub detail: String,
}
