//! Validated identifiers. Each constructor is the only way in, so a value of these types is always valid.

use alloc::string::{String, ToString};
use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};

/// A resource (bed, room, scanner…): a UUID assigned by the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct ResourceId(pub Uuid);

/// One grant of a lease. A renewal by the same owner keeps the id; every new grant gets a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct HoldId(pub Uuid);

/// A session: one keepalive renews every hold taken under it ([`crate::session`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct SessionId(pub Uuid);

/// A group of holds granted all together or not at all ([`crate::group`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct GroupId(pub Uuid);

/// A request waiting in a resource's queue ([`crate::queue`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct WaiterId(pub Uuid);

macro_rules! uuid_display {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}
uuid_display!(ResourceId);
uuid_display!(HoldId);
uuid_display!(SessionId);
uuid_display!(GroupId);
uuid_display!(WaiterId);

impl ResourceId {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Uuid::try_parse(s.trim()).map(ResourceId).map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidResourceId,
                "resource_id must be a UUID such as 0190a0c4-7a52-7000-8000-000000000001",
            )
        })
    }
}

impl SessionId {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Uuid::try_parse(s.trim()).map(SessionId).map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidSessionId,
                "session_id must be a UUID such as 0190a0c4-7a52-7000-8000-000000000001",
            )
        })
    }
}

impl GroupId {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Uuid::try_parse(s.trim())
            .map(GroupId)
            .map_err(|_| ApiError::new(ErrorCode::ValidationFailed, "group_id must be a UUID"))
    }
}

impl FromStr for ResourceId {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, ApiError> {
        ResourceId::parse(s)
    }
}

/// Who holds: one workstation, process or person, chosen by the client.
///
/// 1–128 characters of `[A-Za-z0-9._:@-]`: readable in logs and dashboards, safe in URLs, no whitespace to
/// confuse "ward-3" with "ward-3 ".
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct OwnerId(
    #[cfg_attr(feature = "openapi", schemars(pattern(r"^[A-Za-z0-9._:@-]{1,128}$"), length(min = 1, max = OwnerId::MAX_LEN)))]
     String,
);

/// 1–`max` characters of `[A-Za-z0-9._:@-]`: the charset of owner ids and principals.
fn is_plain_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

impl OwnerId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Result<Self, ApiError> {
        if is_plain_name(s, Self::MAX_LEN) {
            Ok(OwnerId(s.to_string()))
        } else {
            Err(ApiError::new(
                ErrorCode::InvalidOwnerId,
                "owner_id must be 1-128 characters of A-Z a-z 0-9 . _ : @ - (no spaces)",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for OwnerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        OwnerId::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a request comes from: the principal an API key was issued to (a clinic, a service). Holds are scoped to
/// it: another principal cannot heartbeat or release them, whatever `owner_id` it names. 1–64 characters of
/// `[A-Za-z0-9._:@-]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct Principal(
    #[cfg_attr(feature = "openapi", schemars(pattern(r"^[A-Za-z0-9._:@-]{1,64}$"), length(min = 1, max = Principal::MAX_LEN)))]
     String,
);

impl Principal {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, ApiError> {
        if is_plain_name(s, Self::MAX_LEN) {
            Ok(Principal(s.to_string()))
        } else {
            Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "principal must be 1-64 characters of A-Z a-z 0-9 . _ : @ -",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A principal a new key may carry: valid, and not reserved.
    pub fn for_key(s: &str) -> Result<Self, ApiError> {
        let p = Principal::parse(s)?;
        if p.is_reserved() {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "principal names starting with hhs: and the name anonymous are reserved",
            ));
        }
        Ok(p)
    }

    /// Names HHS uses for itself in the audit trail (`hhs:reaper`, `hhs:cli`, …) and for failed authentications
    /// (`anonymous`): no key may carry them, or its actions could pass for the system's.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with("hhs:") || self.0 == "anonymous"
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind of a resource (`bed`, `or-room`, `mri`): 1–64 characters of `[a-z0-9_-]`, so it can key policies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct ResourceType(
    #[cfg_attr(feature = "openapi", schemars(pattern(r"^[a-z0-9_-]{1,64}$"), length(min = 1, max = ResourceType::MAX_LEN)))]
     String,
);

impl ResourceType {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(ResourceType(s.to_string()))
        } else {
            Err(ApiError::new(ErrorCode::InvalidResourceType, "type must be 1-64 characters of a-z 0-9 - _"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The human name of a resource within its type ("Ward 3, bed 12"): 1–256 characters, no control characters,
/// no leading or trailing whitespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct Identifier(
    #[cfg_attr(feature = "openapi", schemars(pattern(IDENTIFIER_PATTERN), length(min = 1, max = Identifier::MAX_LEN)))]
    String,
);

/// What [`Identifier::parse`] accepts, as a JSON Schema (ECMA-262) pattern, lengths apart: no control character
/// (Unicode `Cc`, as `char::is_control`), and neither first nor last a white space character (Unicode
/// `White_Space`, as `str::trim`). The classes are spelled out rather than `\s`, whose meaning differs between
/// regex engines.
pub const IDENTIFIER_PATTERN: &str = concat!(
    r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"([^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$",
);

impl Identifier {
    /// In characters.
    pub const MAX_LEN: usize = 256;

    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let ok =
            !s.is_empty() && s.chars().count() <= Self::MAX_LEN && s.trim() == s && !s.chars().any(char::is_control);
        if ok {
            Ok(Identifier(s.to_string()))
        } else {
            Err(ApiError::new(
                ErrorCode::InvalidIdentifier,
                "identifier must be 1-256 characters without control characters or surrounding spaces",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A fencing token: strictly increasing per resource, one per grant, never reused.
///
/// Hand it to whatever the hold protects (the bed-management system, the OR schedule) and have that system
/// reject writes carrying a token lower than the highest it has seen; that is what makes a paused client whose
/// hold expired harmless.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct FencingToken(#[cfg_attr(feature = "openapi", schemars(range(max = i64::MAX)))] pub u64);

impl FencingToken {
    /// The token of the next grant. Saturates rather than wraps: 2^64 grants will not happen, and wrapping
    /// would break "strictly increasing".
    pub const fn next(self) -> FencingToken {
        FencingToken(self.0.saturating_add(1))
    }

    /// Tokens are stored as signed 64-bit integers in SQL; anything outside that range is not a token we issued.
    pub fn from_i64(v: i64) -> Option<FencingToken> {
        u64::try_from(v).ok().map(FencingToken)
    }

    pub fn to_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

/// Stored text read back into the validated types (a database row through sqlx's `try_from`): what fails
/// `parse` there is a corrupt row, not a request error.
macro_rules! try_from_string {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = ApiError;
            fn try_from(s: String) -> Result<$t, ApiError> {
                <$t>::parse(&s)
            }
        }
    )*};
}
try_from_string!(OwnerId, Principal, ResourceType, Identifier);

impl From<Uuid> for ResourceId {
    fn from(u: Uuid) -> ResourceId {
        ResourceId(u)
    }
}
