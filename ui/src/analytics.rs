//! The analytics page's numbers, computed from the event log and the board. Pure, so they are unit-tested.

use std::collections::BTreeMap;

use hhs_core::wire::{EventView, LogKind};
use hhs_core::{Millis, ResourceId};

use crate::state::{Board, Shown};

/// Hold-duration buckets: upper bounds in seconds (the last is open).
pub const DURATION_BUCKETS: [(&str, i64); 6] = [
    ("< 1 min", 60),
    ("1–5 min", 300),
    ("5–15 min", 900),
    ("15–60 min", 3_600),
    ("1–4 h", 14_400),
    ("≥ 4 h", i64::MAX),
];

/// How many holds of each type ended in each duration bucket.
pub fn duration_histogram(events: &[EventView], types: &BTreeMap<ResourceId, String>) -> BTreeMap<String, [u32; 6]> {
    let mut out: BTreeMap<String, [u32; 6]> = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind.ends_hold()) {
        let (Some(id), Some(held_ms)) = (e.resource_id, e.detail.hold().and_then(|d| d.held_ms)) else { continue };
        let Some(ty) = types.get(&id) else { continue };
        let secs = held_ms / 1000;
        let bucket = DURATION_BUCKETS.iter().position(|(_, upper)| secs < *upper).unwrap_or(DURATION_BUCKETS.len() - 1);
        out.entry(ty.clone()).or_default()[bucket] += 1;
    }
    out
}

/// Endings per hour: how many holds were released, expired and force-released.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endings {
    pub released: u32,
    pub expired: u32,
    pub force_released: u32,
}

const HOUR: i64 = 3_600_000;

/// The start of the clock hour (UTC) that `t` falls in.
pub fn hour_start(t: Millis) -> Millis {
    Millis(t.0.div_euclid(HOUR) * HOUR)
}

/// The endings in each of the last `hours` clock hours (UTC), oldest first; the last is the current hour, which
/// began at `hour_start(now)`.
pub fn endings_per_hour(events: &[EventView], now: Millis, hours: usize) -> Vec<Endings> {
    let mut out = vec![Endings::default(); hours];
    let current = hour_start(now).0 / HOUR;
    for e in events {
        // An event a moment "after" now (the page's clock ticks once a second) belongs to the current hour.
        let back = (current - Millis::from_utc(e.at).0.div_euclid(HOUR)).max(0);
        let Some(slot) = usize::try_from(back).ok().filter(|b| *b < hours).map(|b| &mut out[hours - 1 - b]) else {
            continue;
        };
        match e.kind {
            LogKind::Released => slot.released += 1,
            LogKind::Expired => slot.expired += 1,
            LogKind::ForceReleased => slot.force_released += 1,
            _ => {}
        }
    }
    out
}

/// Per type: resources held now and in all.
pub fn utilisation(board: &Board, now: Millis) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for row in board.rows.values() {
        let e = out.entry(row.resource_type.clone()).or_default();
        e.1 += 1;
        if row.shown(now) == Shown::Held {
            e.0 += 1;
        }
    }
    out
}
