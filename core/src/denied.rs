//! Why a transition or an admission check was refused, and how the API says so. A refusal changes nothing:
//! the lease, the queue and the log stay as they were.

use alloc::format;
use alloc::string::ToString;

use crate::error::{ApiError, ErrorCode};
use crate::ids::OwnerId;
use crate::status::{self, Status};
use crate::time::Millis;

/// Why a transition was refused. The state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// Someone else holds it until `expires_at` (unless they heartbeat; a booking ends then whatever happens).
    LockHeld { holder: OwnerId, expires_at: Millis, booked: bool },
    /// The resource is in lock-delay after an involuntary loss.
    LockDelay { until: Millis },
    /// The caller is not the holder (never was, or released, or was force-released).
    NotHolder,
    /// The hold belongs to another principal.
    NotYourHold,
    /// The caller's hold lapsed.
    LockExpired,
    /// The fencing token given is not the current grant's.
    StaleToken,
    /// Nothing to force-release.
    NotHeld,
    /// The TTL asked for is outside the resource type's bounds.
    TtlOutOfBounds { min_seconds: u32, max_seconds: u32 },
    /// A booking's end is not after now, or past the latest the resource type allows.
    BookingOutOfBounds { latest: Millis },
    /// The hold is renewed by its session ([`crate::session`]): a heartbeat or a plain re-acquire of it would
    /// part it from the session's expiry.
    InSession,
    /// The session was closed or has lapsed.
    SessionEnded,
    /// An acquire under a session names another owner than the session's.
    NotSessionOwner,
    /// Others wait for the resource ([`crate::queue`]): only the first of them may be granted it now.
    Queued { waiting: u32 },
    /// The resource's operational status does not allow a grant ([`crate::status`]).
    Unavailable { status: Status },
    /// The caller's hold is booked until `until` ([`crate::booking`]): a renewal would promise it for a TTL
    /// from now, yet it ends at its booking's end.
    Booked { until: Millis },
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> ApiError {
        match d {
            Denied::LockHeld { holder, expires_at, booked } => {
                let until = expires_at.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let message = if booked {
                    format!("the resource is booked by {holder} until {until}")
                } else {
                    format!("the resource is held by {holder} until {until} unless they renew")
                };
                let mut e = ApiError::new(ErrorCode::LockHeld, message);
                e.holder = Some(holder.as_str().to_string());
                e.expires_at = Some(expires_at.to_utc());
                e
            }
            Denied::LockDelay { until } => {
                let mut e = ApiError::new(
                    ErrorCode::LockDelay,
                    "the last hold ended involuntarily; the resource cannot be granted until its lock-delay has passed",
                );
                e.retry_at = Some(until.to_utc());
                e
            }
            Denied::NotHolder => ApiError::new(ErrorCode::NotHolder, "this owner does not hold the resource"),
            Denied::NotYourHold => {
                ApiError::new(ErrorCode::NotYourHold, "the resource is held under another principal's key")
            }
            Denied::LockExpired => ApiError::new(
                ErrorCode::LockExpired,
                "this owner's hold expired; acquire again (and treat any work done under the old token as unprotected)",
            ),
            Denied::StaleToken => ApiError::new(
                ErrorCode::StaleToken,
                "the fencing token does not match the current grant of this resource",
            ),
            Denied::NotHeld => ApiError::new(ErrorCode::LockNotHeld, "the resource is not held"),
            Denied::InSession => ApiError::new(
                ErrorCode::RenewedBySession,
                "this hold is renewed by its session: keep the session alive instead",
            ),
            Denied::Booked { until } => {
                let mut e = ApiError::new(
                    ErrorCode::HoldBooked,
                    "this hold is booked until its end: it needs no renewals, and a renewal could not keep it longer",
                );
                e.expires_at = Some(until.to_utc());
                e
            }
            Denied::SessionEnded => {
                ApiError::new(ErrorCode::SessionEnded, "the session was closed or has lapsed; open a new one")
            }
            Denied::NotSessionOwner => {
                ApiError::new(ErrorCode::ValidationFailed, "owner_id must be the session's owner")
            }
            Denied::Unavailable { status } => {
                ApiError::new(ErrorCode::ResourceUnavailable, status::unavailable_message(status))
            }
            Denied::Queued { waiting } => ApiError::new(
                ErrorCode::LockHeld,
                format!("{waiting} request(s) already wait for this resource; join the queue with wait_seconds"),
            ),
            Denied::TtlOutOfBounds { min_seconds, max_seconds } => ApiError::new(
                ErrorCode::InvalidTtl,
                format!("ttl_seconds must be between {min_seconds} and {max_seconds} for this resource type"),
            ),
            Denied::BookingOutOfBounds { latest } => ApiError::new(
                ErrorCode::ValidationFailed,
                format!(
                    "until must be after now and no later than {}",
                    latest.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ),
            ),
        }
    }
}
