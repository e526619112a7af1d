//! A resource's hold timeline from its events: who held it, from when to when, and how each hold ended.

use chrono::{DateTime, Utc};
use hhs_core::api::EventView;
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
        let Some(hold_id) = e.hold_id else { continue };
        match e.kind.as_str() {
            "acquired" => spans.push(Span {
                hold_id,
                owner_id: e.owner_id.clone().unwrap_or_default(),
                principal: e.detail["hold_principal"].as_str().or(e.principal.as_deref()).unwrap_or_default().to_owned(),
                fencing_token: e.fencing_token.unwrap_or(0),
                from: e.at,
                to: None,
                ended: "held".into(),
            }),
            "released" | "expired" | "force_released" => {
                if let Some(span) = spans.iter_mut().rev().find(|s| s.hold_id == hold_id) {
                    span.to = Some(match (e.kind.as_str(), e.detail["held_ms"].as_i64()) {
                        // An expiry is recorded after the fact; the hold ended at its last valid instant.
                        ("expired", Some(ms)) => span.from + chrono::Duration::milliseconds(ms),
                        _ => e.at,
                    });
                    span.ended = match (e.kind.as_str(), e.detail["reason"].as_str()) {
                        ("force_released", Some(reason)) => format!("force-released: {reason}"),
                        ("force_released", None) => "force-released".into(),
                        (kind, _) => kind.to_owned(),
                    };
                }
            }
            _ => {}
        }
    }
    spans.reverse();
    spans
}
