//! The board's state and how everything that happens folds into it: a `Reducible` store driven by one
//! [`Action`] enum. Pure — no browser calls — so the folding is unit-tested natively (tests/board_state.rs).
//!
//! The board starts from a snapshot (`GET /api/locks`) and then folds the live stream: event-log entries
//! (`acquired`, `released`, …) and transient renewals (heartbeats). Events at or below the snapshot's
//! `last_event_id` were already in it and are skipped; the few after it that the snapshot may also reflect fold
//! again without harm (every fold is idempotent).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use chrono::{DateTime, Utc};
use hhs_core::api::{EventView, LockList, LockView, RenewalView};
use hhs_core::{Lease, LockStatus, Millis, ResourceId};
use yew::Reducible;

use crate::api::UiError;

/// One resource on the board. `Eq`, so comparing two `Rc<Row>` of one allocation is a pointer check: an unchanged
/// row's component is skipped without looking inside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub id: ResourceId,
    pub resource_type: String,
    pub identifier: String,
    pub lock: LockView,
}

/// What the board shows for a resource at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shown {
    Free,
    Held,
    /// The last hold lapsed (its holder stopped heartbeating); grantable unless in lock-delay.
    Expired,
    /// No grant possible until the lock-delay ends.
    LockDelay,
}

impl Shown {
    pub const ALL: [Shown; 4] = [Shown::Free, Shown::Held, Shown::Expired, Shown::LockDelay];

    pub fn label(self) -> &'static str {
        match self {
            Shown::Free => "free",
            Shown::Held => "held",
            Shown::Expired => "expired",
            Shown::LockDelay => "lock-delay",
        }
    }

    pub fn parse(s: &str) -> Option<Shown> {
        Shown::ALL.into_iter().find(|x| x.label() == s)
    }
}

impl Row {
    /// Whether the row's look depends on the time (so it must re-render as the clock ticks).
    pub fn ticks(&self) -> bool {
        self.lock.status == LockStatus::Held || self.lock.lock_delay_until.is_some()
    }

    /// The state at `now` (server time), by hhs-core's expiry rule.
    pub fn shown(&self, now: Millis) -> Shown {
        match self.lock.status_at(now) {
            LockStatus::Held => Shown::Held,
            _ if self.lock.in_lock_delay(now) => Shown::LockDelay,
            LockStatus::Expired => Shown::Expired,
            LockStatus::Free | LockStatus::Released | LockStatus::ForceReleased => Shown::Free,
        }
    }

    fn free(id: ResourceId, resource_type: String, identifier: String) -> Row {
        // A lease never held: the same view the API gives for it.
        let lock = LockView::of(&Lease::new(id), Millis::ZERO);
        Row { id, resource_type, identifier, lock }
    }
}

/// The live feed's connection, for the status line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Link {
    #[default]
    Connecting,
    Live,
    /// Lost; trying again (the reason, for the status line).
    Reconnecting(String),
}

/// The board's filters; empty strings match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    pub resource_type: String,
    pub state: Option<Shown>,
    /// Matches owner id or principal (substring, any case).
    pub owner: String,
    /// Matches the identifier (substring, any case).
    pub search: String,
}

impl Filters {
    pub fn matches(&self, row: &Row, now: Millis) -> bool {
        let contains = |hay: Option<&str>, needle: &str| hay.is_some_and(|h| h.to_lowercase().contains(&needle.to_lowercase()));
        (self.resource_type.is_empty() || row.resource_type == self.resource_type)
            && self.state.is_none_or(|s| row.shown(now) == s)
            && (self.owner.is_empty()
                || contains(row.lock.owner_id.as_deref(), &self.owner)
                || contains(row.lock.principal.as_deref(), &self.owner))
            && (self.search.is_empty() || contains(Some(&row.identifier), &self.search))
    }
}

/// A message for the person at the board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    Error(String),
    Info(String),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Board {
    pub rows: BTreeMap<ResourceId, Rc<Row>>,
    /// The newest event folded in (or covered by the snapshot).
    pub last_event_id: i64,
    /// Server clock minus this browser's clock, measured at the last snapshot.
    pub offset_ms: i64,
    /// A snapshot has arrived.
    pub loaded: bool,
    pub link: Link,
    pub filters: Filters,
    /// Resources with an action in flight: their buttons are disabled (no double submit).
    pub busy: BTreeSet<ResourceId>,
    pub notice: Option<Notice>,
    /// The stream mentioned a resource the board does not know: the next reconnect reloads the snapshot.
    pub stale: bool,
}

pub enum Action {
    /// A fresh `GET /api/locks` and the clock offset measured with it: replaces the board.
    Snapshot { list: LockList, offset_ms: i64 },
    Event(EventView),
    Renewal(RenewalView),
    Link(Link),
    Filters(Filters),
    /// An action on a resource was sent.
    Busy(ResourceId),
    /// Its answer: the lock as the server now has it, or the error to show.
    Done(ResourceId, Result<LockView, UiError>),
    /// A resource was created through the dashboard (the stream brings it too; whichever is first wins).
    Created { id: ResourceId, resource_type: String, identifier: String },
    Notify(Notice),
    Dismiss,
}

impl Reducible for Board {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = (*self).clone();
        next.apply(action);
        Rc::new(next)
    }
}

fn parse_time(v: &serde_json::Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

fn plus_seconds(t: DateTime<Utc>, secs: u32) -> DateTime<Utc> {
    t + chrono::Duration::seconds(i64::from(secs))
}

impl Board {
    /// The server's time for a reading of this browser's clock.
    pub fn server_now(&self, local_ms: i64) -> Millis {
        Millis(local_ms.saturating_add(self.offset_ms))
    }

    /// The resource types on the board, sorted.
    pub fn types(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.rows.values().map(|r| r.resource_type.as_str()).collect();
        set.into_iter().map(str::to_owned).collect()
    }

    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Snapshot { list, offset_ms } => {
                self.rows = list
                    .items
                    .into_iter()
                    .map(|lock| {
                        let ty = lock.resource_type.clone().unwrap_or_default();
                        let ident = lock.identifier.clone().unwrap_or_default();
                        (lock.resource_id, Rc::new(Row { id: lock.resource_id, resource_type: ty, identifier: ident, lock }))
                    })
                    .collect();
                self.last_event_id = list.last_event_id;
                self.offset_ms = offset_ms;
                self.loaded = true;
                self.stale = false;
            }
            Action::Event(e) => self.fold_event(&e),
            Action::Renewal(r) => self.fold_renewal(&r),
            Action::Link(link) => self.link = link,
            Action::Filters(f) => self.filters = f,
            Action::Busy(id) => {
                self.busy.insert(id);
            }
            Action::Done(id, result) => {
                self.busy.remove(&id);
                match result {
                    Ok(lock) => self.fold_answer(lock),
                    Err(e) => self.notice = Some(Notice::Error(e.to_string())),
                }
            }
            Action::Created { id, resource_type, identifier } => {
                self.rows.entry(id).or_insert_with(|| Rc::new(Row::free(id, resource_type, identifier)));
            }
            Action::Notify(n) => self.notice = Some(n),
            Action::Dismiss => self.notice = None,
        }
    }

    /// An action's answer is the server's word on that lock: take it unless the stream already brought newer.
    fn fold_answer(&mut self, lock: LockView) {
        let Some(row) = self.rows.get_mut(&lock.resource_id) else { return };
        let newer_hold = row.lock.fencing_token > lock.fencing_token;
        if !newer_hold {
            let r = Rc::make_mut(row);
            r.lock = LockView { resource_type: None, identifier: None, ttl_source: None, ..lock };
        }
    }

    fn fold_event(&mut self, e: &EventView) {
        if e.id <= self.last_event_id {
            return;
        }
        self.last_event_id = e.id;
        let Some(id) = e.resource_id else { return };
        let d = &e.detail;
        match e.kind.as_str() {
            "resource_created" => {
                let ty = d["type"].as_str().unwrap_or_default().to_owned();
                let ident = d["identifier"].as_str().unwrap_or_default().to_owned();
                self.rows.entry(id).or_insert_with(|| Rc::new(Row::free(id, ty, ident)));
            }
            "resource_updated" => {
                if let (Some(row), Some(ident)) = (self.rows.get_mut(&id), d["identifier"].as_str()) {
                    Rc::make_mut(row).identifier = ident.to_owned();
                }
            }
            "resource_deleted" => {
                self.rows.remove(&id);
            }
            "acquired" | "released" | "expired" | "force_released" => {
                let Some(row) = self.rows.get_mut(&id) else {
                    self.stale = true;
                    return;
                };
                let lock = &mut Rc::make_mut(row).lock;
                let same_hold = lock.id.is_some() && lock.id == e.hold_id;
                match e.kind.as_str() {
                    "acquired" => {
                        // Folding an acquire the snapshot already showed must not move its heartbeat back.
                        if same_hold && lock.status == LockStatus::Held {
                            return;
                        }
                        let ttl = d["ttl_seconds"].as_u64().and_then(|t| u32::try_from(t).ok()).unwrap_or(0);
                        lock.id = e.hold_id;
                        lock.owner_id = e.owner_id.clone();
                        lock.principal = d["hold_principal"].as_str().map(str::to_owned).or_else(|| e.principal.clone());
                        lock.status = LockStatus::Held;
                        lock.ttl_seconds = Some(ttl);
                        lock.fencing_token = e.fencing_token;
                        lock.created_at = Some(e.at);
                        lock.last_heartbeat = Some(e.at);
                        lock.expires_at = Some(plus_seconds(e.at, ttl));
                        lock.ended_at = None;
                        lock.lock_delay_until = None;
                    }
                    // An ending for a hold the board does not show (an older one) changes nothing.
                    _ if !same_hold => {}
                    "released" => {
                        lock.status = LockStatus::Released;
                        lock.ended_at = Some(e.at);
                    }
                    "expired" => {
                        lock.status = LockStatus::Expired;
                        lock.ended_at = lock.expires_at.or(Some(e.at));
                        lock.lock_delay_until = parse_time(&d["lock_delay_until"]);
                    }
                    _ => {
                        lock.status = LockStatus::ForceReleased;
                        lock.ended_at = Some(e.at);
                        lock.lock_delay_until = parse_time(&d["lock_delay_until"]);
                    }
                }
            }
            // late_release, late_heartbeat: the hold had already lapsed; key and auth events: not on the board.
            _ => {}
        }
    }

    fn fold_renewal(&mut self, r: &RenewalView) {
        let Some(row) = self.rows.get_mut(&r.resource_id) else {
            self.stale = true;
            return;
        };
        let lock = &mut Rc::make_mut(row).lock;
        // A renewal older than what the board shows (a newer grant is already folded) is dropped.
        if lock.fencing_token.is_some_and(|t| t > r.fencing_token) {
            return;
        }
        if lock.id != Some(r.hold_id) {
            lock.created_at = None;
        }
        if lock.id == Some(r.hold_id) && lock.last_heartbeat.is_some_and(|h| h > r.last_heartbeat) {
            return;
        }
        lock.id = Some(r.hold_id);
        lock.owner_id = Some(r.owner_id.clone());
        lock.principal = Some(r.principal.clone());
        lock.status = LockStatus::Held;
        lock.ttl_seconds = Some(r.ttl_seconds);
        lock.fencing_token = Some(r.fencing_token);
        lock.last_heartbeat = Some(r.last_heartbeat);
        lock.expires_at = Some(r.expires_at);
        lock.ended_at = None;
        lock.lock_delay_until = None;
    }
}
