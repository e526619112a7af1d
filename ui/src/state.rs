//! The board's state and how everything that happens folds into it: a `Reducible` store driven by one
//! [`Action`] enum. Pure — no browser calls — so the folding is unit-tested natively (tests/board_state.rs).
//!
//! The board starts from a snapshot (`GET /api/locks`) and then folds the live stream. It derives nothing: every
//! stream message carries the origin's view of the lock (an event's `lock`, read after the event; a heartbeat's
//! view), and the reducer replaces a row with it unless the row already shows a newer one
//! (`LockView::is_older_than`: by fencing token, then a hold's end, then its last renewal). So folding is
//! idempotent and order-tolerant: a message the snapshot already reflected, or one overtaken by a newer one,
//! changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use hhs_core::wire::{EventView, LockList, LockView, LogKind};
use hhs_core::{GroupId, Lease, LockStatus, Millis, ResourceId};
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
        matches!(self.lock.status, LockStatus::Held | LockStatus::Booked) || self.lock.lock_delay_until.is_some()
    }

    /// The state at `now` (server time), by hhs-core's expiry rule.
    pub fn shown(&self, now: Millis) -> Shown {
        match self.lock.status_at(now) {
            // A booking shows as held until the dashboard learns bookings (the clinical-holds issue).
            LockStatus::Held | LockStatus::Booked => Shown::Held,
            _ if self.lock.in_lock_delay(now) => Shown::LockDelay,
            LockStatus::Expired => Shown::Expired,
            LockStatus::Free | LockStatus::Released | LockStatus::ForceReleased | LockStatus::Completed => Shown::Free,
        }
    }

    /// A row from a view that names its resource (list items and stream events do); the row keeps the lock
    /// without the names.
    fn named(lock: LockView) -> Option<Row> {
        let (resource_type, identifier) = (lock.resource_type.clone()?, lock.identifier.clone()?);
        let lock = LockView { resource_type: None, identifier: None, ttl_source: None, ..lock };
        Some(Row { id: lock.resource_id, resource_type, identifier, lock })
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
        let contains =
            |hay: Option<&str>, needle: &str| hay.is_some_and(|h| h.to_lowercase().contains(&needle.to_lowercase()));
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

/// What folds into the board. Dispatched one at a time and dropped once folded, never buffered: not boxed.
#[allow(clippy::large_enum_variant)]
pub enum Action {
    /// A fresh `GET /api/locks` and the clock offset measured with it: replaces the board.
    Snapshot {
        list: LockList,
        offset_ms: i64,
    },
    Event(EventView),
    Renewal(LockView),
    Link(Link),
    Filters(Filters),
    /// An action on a resource was sent.
    Busy(ResourceId),
    /// Its answer: the lock as the server now has it, or the error to show.
    Done(ResourceId, Result<LockView, UiError>),
    /// A resource was created through the dashboard (the stream brings it too; whichever is first wins).
    Created {
        id: ResourceId,
        resource_type: String,
        identifier: String,
    },
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

impl Board {
    /// The server's time for a reading of this browser's clock.
    pub fn server_now(&self, local_ms: i64) -> Millis {
        Millis(local_ms.saturating_add(self.offset_ms))
    }

    /// The all-or-nothing groups with a live member at `now`, each with its live members (by identifier), in
    /// group id order (the ids start with their grant time). Grouping only: whether a member is live is
    /// [`Row::shown`], the core rule.
    pub fn groups(&self, now: Millis) -> Vec<(GroupId, Vec<Rc<Row>>)> {
        let mut groups: BTreeMap<GroupId, Vec<Rc<Row>>> = BTreeMap::new();
        for row in self.rows.values().filter(|r| r.shown(now) == Shown::Held) {
            if let Some(g) = row.lock.group_id {
                groups.entry(g).or_default().push(row.clone());
            }
        }
        for members in groups.values_mut() {
            members.sort_by(|a, b| a.identifier.cmp(&b.identifier));
        }
        groups.into_iter().collect()
    }

    /// The resource types on the board, sorted.
    pub fn types(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.rows.values().map(|r| r.resource_type.as_str()).collect();
        set.into_iter().map(str::to_owned).collect()
    }

    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Snapshot { list, offset_ms } => {
                self.rows = list.items.into_iter().filter_map(Row::named).map(|row| (row.id, Rc::new(row))).collect();
                self.last_event_id = list.last_event_id;
                self.offset_ms = offset_ms;
                self.loaded = true;
                self.stale = false;
            }
            Action::Event(e) => self.fold_event(&e),
            Action::Renewal(lock) => self.fold_lock(lock),
            Action::Link(link) => self.link = link,
            Action::Filters(f) => self.filters = f,
            Action::Busy(id) => {
                self.busy.insert(id);
            }
            Action::Done(id, result) => {
                self.busy.remove(&id);
                match result {
                    Ok(lock) => self.fold_lock(lock),
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

    /// A stream event: a deleted resource leaves the board; otherwise the event's lock view folds in.
    fn fold_event(&mut self, e: &EventView) {
        self.last_event_id = e.id;
        match (e.kind, e.resource_id, &e.lock) {
            (LogKind::ResourceDeleted, Some(id), _) => {
                self.rows.remove(&id);
            }
            (_, _, Some(lock)) => self.fold_lock(lock.clone()),
            _ => {}
        }
    }

    /// Replaces a row's lock with `lock` (and its type and identifier, when the view names them: stream events
    /// do, action answers and heartbeats do not) unless the row shows a newer one. A row that would not change
    /// keeps its allocation, so its component does not re-render. A nameless view of an unknown resource marks
    /// the board stale (the next reconnect reloads it).
    fn fold_lock(&mut self, lock: LockView) {
        let Some(row) = self.rows.get_mut(&lock.resource_id) else {
            match Row::named(lock) {
                Some(row) => {
                    self.rows.insert(row.id, Rc::new(row));
                }
                None => self.stale = true,
            }
            return;
        };
        if lock.is_older_than(&row.lock) {
            return;
        }
        let next = Row {
            id: row.id,
            resource_type: lock.resource_type.clone().unwrap_or_else(|| row.resource_type.clone()),
            identifier: lock.identifier.clone().unwrap_or_else(|| row.identifier.clone()),
            lock: LockView { resource_type: None, identifier: None, ttl_source: None, ..lock },
        };
        if **row != next {
            *row = Rc::new(next);
        }
    }
}
