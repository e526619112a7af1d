//! The time-to-live of a hold, bounded by policy.

use alloc::format;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};
use crate::time::Millis;

/// The TTL bounds a deployment accepts. Defaults: 5 s … 86,400 s (one day).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TtlBounds {
    pub min_seconds: u32,
    pub max_seconds: u32,
}

impl TtlBounds {
    /// What any TTL must be, whatever a type's policy says: a whole number of seconds, 1 s to 7 days. The edge
    /// checks this (it needs no policy); each type's own bounds lie within it and are checked by the origin.
    pub const HARD: TtlBounds = TtlBounds { min_seconds: 1, max_seconds: 604_800 };
}

impl Default for TtlBounds {
    fn default() -> Self {
        TtlBounds { min_seconds: 5, max_seconds: 86_400 }
    }
}

/// A validated TTL in whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct Ttl(u32);

impl Ttl {
    /// Accepts a JSON number; it must be a whole number of seconds within `bounds`.
    pub fn from_seconds_f64(secs: f64, bounds: &TtlBounds) -> Result<Ttl, ApiError> {
        // NaN fails both comparisons, so it lands here too.
        if !(secs >= f64::from(bounds.min_seconds) && secs <= f64::from(bounds.max_seconds)) {
            return Err(ApiError::new(
                ErrorCode::InvalidTtl,
                format!("ttl_seconds must be between {} and {}", bounds.min_seconds, bounds.max_seconds),
            ));
        }
        if f64::from(secs as u32) != secs {
            return Err(ApiError::new(ErrorCode::InvalidTtl, "ttl_seconds must be a whole number of seconds"));
        }
        // In range of u32 by the bound check above.
        Ok(Ttl(secs as u32))
    }

    pub fn from_seconds(secs: u32, bounds: &TtlBounds) -> Result<Ttl, ApiError> {
        Ttl::from_seconds_f64(f64::from(secs), bounds)
    }

    /// Rebuilds a TTL that was validated when it was stored. Stored values are trusted; they were checked on the
    /// way in, possibly under other bounds.
    pub const fn from_stored_millis(ms: i64) -> Ttl {
        let secs = ms / 1000;
        Ttl(if secs < 0 {
            0
        } else if secs > u32::MAX as i64 {
            u32::MAX
        } else {
            secs as u32
        })
    }

    pub const fn seconds(self) -> u32 {
        self.0
    }

    pub const fn as_millis(self) -> Millis {
        Millis(self.0 as i64 * 1000)
    }
}
