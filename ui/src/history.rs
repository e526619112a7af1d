//! A resource's hold timeline from its events: who held it, from when to when, and how each hold ended.

use chrono::{DateTime, Utc};
use hhs_core::wire::{EventView, LogKind};
use hhs_core::HoldId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub hold_id: HoldId,
    pub owner_id: String,
    pub principal: String,
    pub fencing_token: u64,
    pub from: DateTime<Utc>,
    /// `None` while the hold goes on (as far as these events tell).
    pub to: Option<DateTime<Utc>>,
    /// `held`, `released`, `expired` or `force-released` (with the reason, if any).
    pub ended: String,
}

/// The holds in `events` (one resource's, oldest first), newest first.
pub fn holds(events: &[EventView]) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    for e in events {
        let (Some(hold_id), Some(detail)) = (e.hold_id, e.detail.hold()) else { continue };
        match e.kind {
            LogKind::Acquired => spans.push(Span {
                hold_id,
                owner_id: e.owner_id.clone().unwrap_or_default(),
                principal: detail.hold_principal.clone(),
                fencing_token: e.fencing_token.unwrap_or(0),
                from: e.at,
                to: None,
                ended: "held".into(),
            }),
            kind if kind.ends_hold() => {
                if let Some(span) = spans.iter_mut().rev().find(|s| s.hold_id == hold_id) {
                    // An expiry is recorded after the fact; the detail says when the hold ended (its last valid
                    // instant). Entries from before the detail had `ended_at` fall back to the event's time.
                    span.to = Some(detail.ended_at.unwrap_or(e.at));
                    span.ended = match (kind, &detail.reason) {
                        (LogKind::ForceReleased, Some(reason)) => format!("force-released: {reason}"),
                        (LogKind::ForceReleased, None) => "force-released".into(),
                        (kind, _) => kind.as_str().to_owned(),
                    };
                }
            }
            _ => {}
        }
    }
    spans.reverse();
    spans
}
