//! A resource's operational status, apart from who holds it: can it be held at all? "Why can I hold a bed that
//! housekeeping is still cleaning?" Beds report it in HL7 v2 (`ADT^A20`, `NPU-2`, table 0116), and every
//! resource uses the same six codes: C closed, H housekeeping, I isolated, K contaminated, O occupied, U
//! unoccupied — only U may be granted. A new resource is U.
//!
//! The rule ([`crate::admission::available`]): an acquire (plain, under a session, in a group, or a queue's hand-over) of a resource
//! that is not available is refused, naming the status. A status change never ends a live hold by itself —
//! the hold is shown next to the new status, and whoever holds it decides; the next grant follows the status.

use alloc::format;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};

/// HL7 v2 table 0116, bed status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub enum Status {
    #[serde(rename = "C")]
    Closed,
    #[serde(rename = "H")]
    Housekeeping,
    #[serde(rename = "I")]
    Isolated,
    #[serde(rename = "K")]
    Contaminated,
    #[serde(rename = "O")]
    Occupied,
    #[serde(rename = "U")]
    #[default]
    Unoccupied,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Closed,
        Status::Housekeeping,
        Status::Isolated,
        Status::Contaminated,
        Status::Occupied,
        Status::Unoccupied,
    ];

    /// Its table 0116 code, as stored and sent.
    pub const fn code(self) -> &'static str {
        match self {
            Status::Closed => "C",
            Status::Housekeeping => "H",
            Status::Isolated => "I",
            Status::Contaminated => "K",
            Status::Occupied => "O",
            Status::Unoccupied => "U",
        }
    }

    /// Its meaning in words, for people.
    pub const fn word(self) -> &'static str {
        match self {
            Status::Closed => "closed",
            Status::Housekeeping => "housekeeping",
            Status::Isolated => "isolated",
            Status::Contaminated => "contaminated",
            Status::Occupied => "occupied",
            Status::Unoccupied => "unoccupied",
        }
    }

    /// The status a code stands for (exactly one of `C H I K O U`).
    pub fn parse(code: &str) -> Result<Status, ApiError> {
        Status::ALL.into_iter().find(|s| s.code() == code).ok_or_else(|| {
            ApiError::new(ErrorCode::ValidationFailed, "status must be one of C, H, I, K, O, U (HL7 table 0116)")
        })
    }

    /// Whether a resource in this status may be granted.
    pub const fn available(self) -> bool {
        matches!(self, Status::Unoccupied)
    }
}

/// The refusal's message.
pub fn unavailable_message(status: Status) -> alloc::string::String {
    format!("the resource is {} ({}); only an unoccupied (U) resource can be held", status.word(), status.code())
}

impl TryFrom<alloc::string::String> for Status {
    type Error = ApiError;
    fn try_from(code: alloc::string::String) -> Result<Status, ApiError> {
        Status::parse(&code)
    }
}
