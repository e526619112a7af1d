//! Request bodies, with their validation. Each struct is the raw wire shape (`deny_unknown_fields`, plain
//! strings and numbers); `validate` turns one into domain types or the precise error code. Parsing is two-step on
//! purpose: malformed JSON is a 400 `invalid_json`, a wrong shape a 422 `validation_failed`, a bad field its own
//! 422 code.

use alloc::format;
use alloc::string::{String, ToString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{FencingToken, Identifier, OwnerId, Principal, ResourceId, ResourceType};
use crate::ttl::{Ttl, TtlBounds};

/// Largest request body any tier accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Parses a request body: syntax errors are `invalid_json` (400), shape errors `validation_failed` (422).
///
/// Every body is a JSON object. Serde's derived structs also read a JSON array as their fields in order, so
/// without this check `[null, null]` would pass for a `PUT /api/types/{name}` that changes nothing (a body
/// `cargo xtask fuzz-api` sends).
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::new(ErrorCode::ValidationFailed, "the request body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            ErrorCode::ValidationFailed,
            format!("request body has the wrong shape: {}", plain_types(&e.to_string())),
        )
    })
}

/// Serde's message with Rust's type names said as JSON's: `"60"` given where `ttl_seconds` wants a number reads
/// "expected a number", not "expected f64".
fn plain_types(message: &str) -> String {
    const NAMES: [(&str, &str); 10] = [
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected u16", "expected a whole number"),
        ("expected u8", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected a boolean", "expected true or false"),
        ("expected usize", "expected a whole number"),
    ];
    let mut out = message.to_string();
    for (rust, json) in NAMES {
        out = out.replace(rust, json);
    }
    out
}

/// Whether a `Content-Type` header value means JSON (`application/json`, any parameters).
pub fn is_json_content_type(value: &str) -> bool {
    let mime = value.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
}

/// The rules between fields that `validate` checks, in the bodies' schemas, so that what a schema allows is
/// what validation accepts. A field given as `null` is absent (serde reads both as `None`).
#[cfg(feature = "openapi")]
mod rules {
    use alloc::string::ToString;
    use schemars::Schema;
    use serde_json::{json, Map, Value};

    /// Each of `fields` present and not null.
    fn given(fields: &[&str]) -> Value {
        let not_null: Map<_, _> = fields.iter().map(|f| (f.to_string(), json!({"not": {"type": "null"}}))).collect();
        json!({"required": fields, "properties": not_null})
    }

    /// `field` absent or null.
    fn absent(field: &str) -> Value {
        json!({"properties": {field: {"type": "null"}}})
    }

    /// A hold with a TTL of its own or under a session, not both; a session's hold does not queue.
    pub fn acquire(schema: &mut Schema) {
        schema.insert(
            "not".into(),
            json!({"anyOf": [given(&["ttl_seconds", "session_id"]), given(&["wait_seconds", "session_id"])]}),
        );
    }

    /// A TTL or a session: exactly one.
    pub fn group(schema: &mut Schema) {
        schema.insert("oneOf".into(), json!([given(&["ttl_seconds"]), given(&["session_id"])]));
    }

    /// A resource (with its token, if given) or a group (whose members have a token each): exactly one.
    pub fn book(schema: &mut Schema) {
        schema.insert(
            "oneOf".into(),
            json!([
                {"allOf": [given(&["resource_id"]), absent("group_id")]},
                {"allOf": [given(&["group_id"]), absent("resource_id"), absent("fencing_token")]},
            ]),
        );
    }
}

fn parse_token(raw: Option<i64>) -> Result<Option<FencingToken>, ApiError> {
    raw.map(|v| {
        FencingToken::from_i64(v).ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidFencingToken, "fencing_token must be a non-negative integer")
        })
    })
    .transpose()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateResourceRequest {
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::ResourceType"))]
    pub resource_type: String,
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::Identifier"))]
    pub identifier: String,
}

impl CreateResourceRequest {
    pub fn validate(&self) -> Result<(ResourceType, Identifier), ApiError> {
        Ok((ResourceType::parse(&self.resource_type)?, Identifier::parse(&self.identifier)?))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema), schemars(transform = rules::acquire))]
#[serde(deny_unknown_fields)]
pub struct AcquireRequest {
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::ResourceId"))]
    pub resource_id: String,
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::OwnerId"))]
    pub owner_id: String,
    /// Omitted: the TTL model's suggestion for this owner and resource type.
    #[serde(default)]
    /// Whole seconds (a JSON number, so `30.0` too), within the resource type's bounds.
    #[cfg_attr(feature = "openapi", schemars(with = "Option<u32>", range(min = TtlBounds::HARD.min_seconds, max = TtlBounds::HARD.max_seconds)))]
    pub ttl_seconds: Option<f64>,
    /// Hold under this session instead of a TTL of its own: the session's keepalives renew it, and it lapses
    /// with the session. `owner_id` must be the session's owner.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::SessionId>"))]
    pub session_id: Option<String>,
    /// If the resource is held, wait up to this many seconds (0–30) in its queue, first come first served,
    /// instead of an immediate 409 (`hhs_core::queue`). 0 or omitted: no wait.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schemars(range(max = crate::queue::MAX_WAIT_SECONDS)))]
    pub wait_seconds: Option<u32>,
}

/// A validated acquire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidAcquire {
    pub resource_id: ResourceId,
    pub owner: OwnerId,
    /// `None`: ask the TTL model (or the session's).
    pub ttl: Option<Ttl>,
    pub session: Option<crate::ids::SessionId>,
    /// How long to wait in the queue (`None`: not at all).
    pub wait: Option<crate::time::Millis>,
}

impl AcquireRequest {
    pub fn validate(&self, bounds: &TtlBounds) -> Result<ValidAcquire, ApiError> {
        let session = self.session_id.as_deref().map(crate::ids::SessionId::parse).transpose()?;
        if session.is_some() && self.ttl_seconds.is_some() {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "give ttl_seconds or session_id, not both: a session's hold has the session's TTL",
            ));
        }
        let max = crate::queue::MAX_WAIT_SECONDS;
        let wait = match self.wait_seconds {
            Some(w) if w > max => {
                return Err(ApiError::new(
                    ErrorCode::ValidationFailed,
                    format!("wait_seconds must be between 0 and {max}"),
                ))
            }
            Some(_) if session.is_some() => {
                return Err(ApiError::new(
                    ErrorCode::ValidationFailed,
                    "wait_seconds goes with a hold of its own; a session's holds do not queue",
                ))
            }
            Some(0) | None => None,
            Some(w) => Some(crate::time::Millis(i64::from(w) * 1000)),
        };
        Ok(ValidAcquire {
            resource_id: ResourceId::parse(&self.resource_id)?,
            owner: OwnerId::parse(&self.owner_id)?,
            ttl: self.ttl_seconds.map(|t| Ttl::from_seconds_f64(t, bounds)).transpose()?,
            session,
            wait,
        })
    }
}

/// `POST /api/sessions`: a session for `owner_id`, renewed by keepalives, with its own TTL (omitted: the
/// process's default TTL).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OpenSessionRequest {
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::OwnerId"))]
    pub owner_id: String,
    /// Whole seconds, within the hard bounds (1 s to 7 days).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<u32>", range(min = TtlBounds::HARD.min_seconds, max = TtlBounds::HARD.max_seconds)))]
    pub ttl_seconds: Option<f64>,
}

impl OpenSessionRequest {
    pub fn validate(&self, bounds: &TtlBounds) -> Result<(OwnerId, Option<Ttl>), ApiError> {
        Ok((OwnerId::parse(&self.owner_id)?, self.ttl_seconds.map(|t| Ttl::from_seconds_f64(t, bounds)).transpose()?))
    }
}

/// Body of heartbeat and release.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct HolderRequest {
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::ResourceId"))]
    pub resource_id: String,
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::OwnerId"))]
    pub owner_id: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::FencingToken>"))]
    pub fencing_token: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidHolder {
    pub resource_id: ResourceId,
    pub owner: OwnerId,
    pub token: Option<FencingToken>,
}

impl HolderRequest {
    pub fn validate(&self) -> Result<ValidHolder, ApiError> {
        Ok(ValidHolder {
            resource_id: ResourceId::parse(&self.resource_id)?,
            owner: OwnerId::parse(&self.owner_id)?,
            token: parse_token(self.fencing_token)?,
        })
    }
}

/// `POST /api/locks/book`: the caller's live hold on `resource_id` — or every live member of group `group_id`,
/// all or none — becomes a booking that needs no heartbeats and ends at `until` (no later than the type's
/// booking maximum), with the same fencing token(s). Exactly one of `resource_id` and `group_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema), schemars(transform = rules::book))]
#[serde(deny_unknown_fields)]
pub struct BookRequest {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::ResourceId>"))]
    pub resource_id: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::GroupId>"))]
    pub group_id: Option<String>,
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::OwnerId"))]
    pub owner_id: String,
    /// RFC 3339.
    #[cfg_attr(feature = "openapi", schemars(with = "crate::time::Rfc3339Millis"))]
    pub until: String,
    /// With `resource_id` only (a group's members have a token each).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::FencingToken>"))]
    pub fencing_token: Option<i64>,
}

/// What a booking request books.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BookTarget {
    Resource(ValidHolder),
    Group(crate::ids::GroupId, OwnerId),
}

impl BookRequest {
    /// What to book, by whom, and the booking's end.
    pub fn validate(&self) -> Result<(BookTarget, crate::time::Millis), ApiError> {
        let invalid = |m: &str| Err(ApiError::new(ErrorCode::ValidationFailed, m));
        let target = match (&self.resource_id, &self.group_id) {
            (Some(resource_id), None) => BookTarget::Resource(
                HolderRequest {
                    resource_id: resource_id.clone(),
                    owner_id: self.owner_id.clone(),
                    fencing_token: self.fencing_token,
                }
                .validate()?,
            ),
            (None, Some(group_id)) if self.fencing_token.is_none() => {
                let (group, owner) =
                    GroupHolderRequest { group_id: group_id.clone(), owner_id: self.owner_id.clone() }.validate()?;
                BookTarget::Group(group, owner)
            }
            (None, Some(_)) => {
                return invalid("fencing_token goes with resource_id: a group's members have a token each")
            }
            _ => return invalid("give exactly one of resource_id and group_id"),
        };
        Ok((target, parse_until(&self.until)?))
    }
}

/// One member of a group request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupMemberRef {
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::ResourceId"))]
    pub resource_id: String,
}

/// `POST /api/locks/acquire-group`: 2–32 resources for one owner, all or none, with a TTL or under a session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema), schemars(transform = rules::group))]
#[serde(deny_unknown_fields)]
pub struct AcquireGroupRequest {
    /// Each resource once.
    #[cfg_attr(feature = "openapi", schemars(length(min = crate::group::MIN_MEMBERS, max = crate::group::MAX_MEMBERS), extend("uniqueItems" = true)))]
    pub resources: alloc::vec::Vec<GroupMemberRef>,
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::OwnerId"))]
    pub owner_id: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<u32>", range(min = TtlBounds::HARD.min_seconds, max = TtlBounds::HARD.max_seconds)))]
    pub ttl_seconds: Option<f64>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::SessionId>"))]
    pub session_id: Option<String>,
}

/// A validated group acquire: the members in lock order, and a TTL or a session (exactly one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidGroup {
    pub resources: alloc::vec::Vec<ResourceId>,
    pub owner: OwnerId,
    pub ttl: Option<Ttl>,
    pub session: Option<crate::ids::SessionId>,
}

impl AcquireGroupRequest {
    pub fn validate(&self, bounds: &TtlBounds) -> Result<ValidGroup, ApiError> {
        let ids = self
            .resources
            .iter()
            .map(|m| ResourceId::parse(&m.resource_id))
            .collect::<Result<alloc::vec::Vec<_>, _>>()?;
        let resources = crate::group::lock_order(&ids)?;
        let session = self.session_id.as_deref().map(crate::ids::SessionId::parse).transpose()?;
        let ttl = self.ttl_seconds.map(|t| Ttl::from_seconds_f64(t, bounds)).transpose()?;
        if session.is_some() == ttl.is_some() {
            return Err(ApiError::new(ErrorCode::ValidationFailed, "give ttl_seconds or session_id (one of them)"));
        }
        Ok(ValidGroup { resources, owner: OwnerId::parse(&self.owner_id)?, ttl, session })
    }
}

/// `POST /api/locks/heartbeat-group`, `/api/locks/release-group`: every member of a group, by its holder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupHolderRequest {
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::GroupId"))]
    pub group_id: String,
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::OwnerId"))]
    pub owner_id: String,
}

impl GroupHolderRequest {
    pub fn validate(&self) -> Result<(crate::ids::GroupId, OwnerId), ApiError> {
        Ok((crate::ids::GroupId::parse(&self.group_id)?, OwnerId::parse(&self.owner_id)?))
    }
}

/// A booking's end, RFC 3339.
fn parse_until(until: &str) -> Result<crate::time::Millis, ApiError> {
    chrono::DateTime::parse_from_rfc3339(until)
        .map(|t| crate::time::Millis::from_utc(t.with_timezone(&chrono::Utc)))
        .map_err(|_| {
            ApiError::new(ErrorCode::ValidationFailed, "until must be an RFC 3339 time such as 2026-01-31T18:00:00Z")
        })
}

/// `POST /api/locks/force-release` (admin).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ForceReleaseRequest {
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::ResourceId"))]
    pub resource_id: String,
    #[cfg_attr(feature = "openapi", schemars(length(min = 1, max = 500)))]
    pub reason: String,
}

impl ForceReleaseRequest {
    /// The resource and the reason (1–500 characters, recorded in the audit trail).
    pub fn validate(&self) -> Result<(ResourceId, String), ApiError> {
        let reason = self.reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "reason must be 1-500 characters without control characters",
            ));
        }
        Ok((ResourceId::parse(&self.resource_id)?, reason.to_string()))
    }
}

/// `POST /api/ml/suggest`: the TTL the model suggests for this owner on this resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SuggestRequest {
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::ResourceId"))]
    pub resource_id: String,
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::OwnerId"))]
    pub owner_id: String,
}

impl SuggestRequest {
    pub fn validate(&self) -> Result<(ResourceId, OwnerId), ApiError> {
        Ok((ResourceId::parse(&self.resource_id)?, OwnerId::parse(&self.owner_id)?))
    }
}

/// `POST /api/keys` (admin).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    #[cfg_attr(feature = "openapi", schemars(with = "crate::ids::Principal"))]
    pub principal: String,
    #[cfg_attr(feature = "openapi", schemars(with = "crate::auth::Role"))]
    pub role: String,
}

impl CreateKeyRequest {
    pub fn validate(&self) -> Result<(Principal, Role), ApiError> {
        let role = Role::parse(&self.role).ok_or_else(|| {
            ApiError::new(ErrorCode::ValidationFailed, "role must be viewer, client, admin or integration")
        })?;
        Ok((Principal::for_key(&self.principal)?, role))
    }
}
