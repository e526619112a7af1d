//! Policy: what TTLs a resource type accepts, its default TTL, and how long it stays blocked after an
//! involuntary loss. Each type's policy is a row (`resource_types`) that every replica, the reaper and the
//! dashboard read; a process's flags only seed rows nobody has set yet ([`Policy::for_type`]).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use serde::{Deserialize, Serialize};

use crate::denied::Denied;
use crate::error::{ApiError, ErrorCode};
use crate::time::Millis;
use crate::ttl::{Ttl, TtlBounds};

/// The longest lock-delay a type may have: one day.
pub const MAX_LOCK_DELAY_SECONDS: u32 = 86_400;
/// The longest booking a type gets unless it sets its own: 30 days.
pub const DEFAULT_BOOKING_MAX_SECONDS: u32 = 30 * 86_400;
/// What a type's booking maximum may be: one minute to 366 days (a year's operating-room plan).
pub const BOOKING_MAX_RANGE: core::ops::RangeInclusive<u32> = 60..=366 * 86_400;

/// A process's policy flags (`--min-ttl`, `--max-ttl`, `--default-ttl`, `--lock-delay TYPE=SECONDS`): the values a
/// resource type gets when its row is first made — by a resource of a new type, or by the first start after the
/// migration that brought types. They never change a row that has been set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub ttl_bounds: TtlBounds,
    /// The TTL an acquire without `ttl_seconds` gets while the TTL model has too little history (seconds).
    pub default_ttl_seconds: u32,
    /// Lock-delay per resource type. After a hold on such a resource expires or is force-released, nobody can be
    /// granted it until the delay has passed, so a client that paused (GC, network partition) and still believes
    /// it holds cannot overlap with the next holder during that window. A clean release never has one.
    pub lock_delays: BTreeMap<String, Millis>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { ttl_bounds: TtlBounds::default(), default_ttl_seconds: 300, lock_delays: BTreeMap::new() }
    }
}

impl Policy {
    /// The policy a new row for `resource_type` starts with.
    pub fn for_type(&self, resource_type: &str) -> TypePolicy {
        let b = self.ttl_bounds;
        TypePolicy {
            lock_delay_ms: self.lock_delays.get(resource_type).copied().unwrap_or(Millis::ZERO).0,
            min_ttl_seconds: i64::from(b.min_seconds),
            max_ttl_seconds: i64::from(b.max_seconds),
            default_ttl_seconds: i64::from(self.default_ttl_seconds.clamp(b.min_seconds, b.max_seconds)),
            booking_max_seconds: None,
            default_status: crate::status::Status::default(),
        }
    }
}

/// One resource type's policy, as stored: what acquire, expiry, force-release and deletion decide with, read
/// in the same transaction as the lease. Plain values, as in the row; [`TypePolicy::validate`] is the rule
/// for what a row may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct TypePolicy {
    pub lock_delay_ms: i64,
    pub min_ttl_seconds: i64,
    pub max_ttl_seconds: i64,
    pub default_ttl_seconds: i64,
    /// How far ahead a hold of this type may be booked (`booking::book`); `None`: [`DEFAULT_BOOKING_MAX_SECONDS`].
    pub booking_max_seconds: Option<i64>,
    /// The operational status a new resource of this type starts in ([`crate::status`]).
    #[serde(default)]
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "String"))]
    pub default_status: crate::status::Status,
}

/// A change to a type's policy (`PUT /api/types/{name}`): each field optional, the rest unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TypeChange {
    #[serde(default)]
    pub lock_delay_seconds: Option<u32>,
    #[serde(default)]
    pub min_ttl_seconds: Option<u32>,
    #[serde(default)]
    pub max_ttl_seconds: Option<u32>,
    #[serde(default)]
    pub default_ttl_seconds: Option<u32>,
    #[serde(default)]
    pub booking_max_seconds: Option<u32>,
    /// HL7 table 0116: the status new resources of the type start in.
    #[serde(default)]
    pub default_status: Option<crate::status::Status>,
}

impl TypeChange {
    /// Each given value on its own, against the hard limits (what the edge can check without the stored row;
    /// how the values fit together is checked with it, by [`TypePolicy::apply`]).
    pub fn check(&self) -> Result<(), ApiError> {
        let hard = TtlBounds::HARD;
        let ttls = [self.min_ttl_seconds, self.max_ttl_seconds, self.default_ttl_seconds];
        if ttls.into_iter().flatten().any(|s| !(hard.min_seconds..=hard.max_seconds).contains(&s)) {
            let m = format!("TTLs must be between {} and {} seconds", hard.min_seconds, hard.max_seconds);
            return Err(ApiError::new(ErrorCode::ValidationFailed, m));
        }
        if self.lock_delay_seconds.is_some_and(|d| d > MAX_LOCK_DELAY_SECONDS) {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                format!("lock_delay_seconds must be at most {MAX_LOCK_DELAY_SECONDS}"),
            ));
        }
        if self.booking_max_seconds.is_some_and(|b| !BOOKING_MAX_RANGE.contains(&b)) {
            return Err(booking_max_invalid());
        }
        Ok(())
    }
}

impl TypePolicy {
    pub fn lock_delay(&self) -> Millis {
        Millis(self.lock_delay_ms.max(0))
    }

    pub fn ttl_bounds(&self) -> TtlBounds {
        let secs = |s: i64| u32::try_from(s.max(1)).unwrap_or(u32::MAX);
        TtlBounds { min_seconds: secs(self.min_ttl_seconds), max_seconds: secs(self.max_ttl_seconds) }
    }

    /// The longest booking of this type, from its booking's start.
    pub fn booking_max(&self) -> Millis {
        Millis(self.booking_max_seconds.unwrap_or(i64::from(DEFAULT_BOOKING_MAX_SECONDS)).max(0).saturating_mul(1000))
    }

    pub fn default_ttl_seconds(&self) -> u32 {
        u32::try_from(self.default_ttl_seconds.max(1)).unwrap_or(u32::MAX)
    }

    /// Whether an acquire may ask for `ttl` on this type (checked inside the acquire's transaction, so a grant
    /// follows the policy current when it is decided).
    pub fn admit(&self, ttl: Ttl) -> Result<(), Denied> {
        let b = self.ttl_bounds();
        if (b.min_seconds..=b.max_seconds).contains(&ttl.seconds()) {
            Ok(())
        } else {
            Err(Denied::TtlOutOfBounds { min_seconds: b.min_seconds, max_seconds: b.max_seconds })
        }
    }

    /// What a row may hold: 1 ≤ min ≤ default ≤ max ≤ the hard limit; a lock-delay of 0 to one day.
    pub fn validate(&self) -> Result<(), ApiError> {
        let hard = TtlBounds::HARD.max_seconds;
        let invalid = |m: String| Err(ApiError::new(ErrorCode::ValidationFailed, m));
        if !(1 <= self.min_ttl_seconds
            && self.min_ttl_seconds <= self.default_ttl_seconds
            && self.default_ttl_seconds <= self.max_ttl_seconds)
            || self.max_ttl_seconds > i64::from(hard)
        {
            return invalid(format!(
                "the TTLs must satisfy 1 <= min_ttl_seconds <= default_ttl_seconds <= max_ttl_seconds <= {hard}"
            ));
        }
        if !(0..=i64::from(MAX_LOCK_DELAY_SECONDS) * 1000).contains(&self.lock_delay_ms) {
            return invalid(format!("lock_delay_seconds must be between 0 and {MAX_LOCK_DELAY_SECONDS}"));
        }
        let range = i64::from(*BOOKING_MAX_RANGE.start())..=i64::from(*BOOKING_MAX_RANGE.end());
        if self.booking_max_seconds.is_some_and(|b| !range.contains(&b)) {
            return Err(booking_max_invalid());
        }
        Ok(())
    }

    /// This policy with `change` applied, if the result is valid.
    pub fn apply(&self, change: &TypeChange) -> Result<TypePolicy, ApiError> {
        let next = TypePolicy {
            lock_delay_ms: change.lock_delay_seconds.map_or(self.lock_delay_ms, |s| i64::from(s) * 1000),
            min_ttl_seconds: change.min_ttl_seconds.map_or(self.min_ttl_seconds, i64::from),
            max_ttl_seconds: change.max_ttl_seconds.map_or(self.max_ttl_seconds, i64::from),
            default_ttl_seconds: change.default_ttl_seconds.map_or(self.default_ttl_seconds, i64::from),
            booking_max_seconds: change.booking_max_seconds.map(i64::from).or(self.booking_max_seconds),
            default_status: change.default_status.unwrap_or(self.default_status),
        };
        next.validate()?;
        Ok(next)
    }
}

fn booking_max_invalid() -> ApiError {
    let (lo, hi) = (BOOKING_MAX_RANGE.start(), BOOKING_MAX_RANGE.end());
    ApiError::new(ErrorCode::ValidationFailed, format!("booking_max_seconds must be between {lo} and {hi}"))
}
