//! Roles and the API key format, shared by the origin (which verifies keys) and the edge (which rejects
//! malformed ones before they travel).

use alloc::format;
use alloc::string::String;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};

/// What a key may do. Viewer, client and admin each include the ones before them; `integration` stands apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every GET, the event stream, TTL suggestions.
    Viewer,
    /// Also acquire, heartbeat, release, suggest.
    Client,
    /// Also create/update/delete resources, force-release, manage keys, export the audit.
    Admin,
    /// A hospital system's feed: sets resources' operational status (`PATCH /api/resources/{id}` with `status`,
    /// `POST /api/hl7/v2`) and nothing else — not even reads. Admins may do what it may.
    Integration,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "client" => Some(Role::Client),
            "admin" => Some(Role::Admin),
            "integration" => Some(Role::Integration),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Client => "client",
            Role::Admin => "admin",
            Role::Integration => "integration",
        }
    }

    /// Whether a key with this role may do what `needed` may: the chain viewer < client < admin, and
    /// integration for itself (and admins).
    pub fn allows(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Integration, needed) => needed == Role::Integration,
            (_, Role::Integration) => self == Role::Admin,
            (role, needed) => role >= needed,
        }
    }
}

/// Keys look like `hhs_<key id: 12 hex>_<secret: 64 hex>`. The id is not secret (it names the key in logs, lists
/// and audit); the secret is 256 random bits, stored only as its SHA-256.
pub const KEY_PREFIX: &str = "hhs_";
pub const KEY_ID_LEN: usize = 12;
pub const SECRET_LEN: usize = 64;

/// The two halves of a well-formed key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyParts<'a> {
    pub key_id: &'a str,
    pub secret: &'a str,
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn parse_key(key: &str) -> Option<KeyParts<'_>> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (key_id, secret) = rest.split_once('_')?;
    (is_lower_hex(key_id, KEY_ID_LEN) && is_lower_hex(secret, SECRET_LEN)).then_some(KeyParts { key_id, secret })
}

pub fn format_key(key_id: &str, secret: &str) -> String {
    format!("{KEY_PREFIX}{key_id}_{secret}")
}

/// Parses an `Authorization` header value: `Bearer <key>` with a well-formed key, else `unauthenticated`.
/// The error never repeats what was sent.
pub fn parse_bearer(header: Option<&str>) -> Result<KeyParts<'_>, ApiError> {
    let value =
        header.ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "send Authorization: Bearer <api key>"))?;
    let key = bearer_token(value).ok_or_else(|| {
        ApiError::new(ErrorCode::Unauthenticated, "the Authorization header must be: Bearer <api key>")
    })?;
    parse_key(key).ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "the API key is malformed"))
}

/// The credentials of an `Authorization: Bearer …` value, trimmed. The scheme is case-insensitive (RFC 9110
/// §11.1), so `bearer`, `Bearer` and `BEARER` are one scheme to the edge and the origin alike.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

impl TryFrom<String> for Role {
    type Error = ApiError;
    fn try_from(s: String) -> Result<Role, ApiError> {
        Role::parse(&s)
            .ok_or_else(|| ApiError::new(ErrorCode::ValidationFailed, "role must be viewer, client or admin"))
    }
}
