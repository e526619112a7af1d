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
/// without this check `[null, null]` would pass for a `PUT /api/types/{name}` that changes nothing (found by
/// `cargo xtask fuzz-api`).
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::new(ErrorCode::ValidationFailed, "the request body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::new(ErrorCode::ValidationFailed, format!("request body has the wrong shape: {e}")))
}

/// Whether a `Content-Type` header value means JSON (`application/json`, any parameters).
pub fn is_json_content_type(value: &str) -> bool {
    let mime = value.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
}

fn parse_token(raw: Option<i64>) -> Result<Option<FencingToken>, ApiError> {
    raw.map(|v| {
        FencingToken::from_i64(v)
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidFencingToken, "fencing_token must be a non-negative integer"))
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
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
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
}

/// A validated acquire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidAcquire {
    pub resource_id: ResourceId,
    pub owner: OwnerId,
    /// `None`: ask the TTL model.
    pub ttl: Option<Ttl>,
}

impl AcquireRequest {
    pub fn validate(&self, bounds: &TtlBounds) -> Result<ValidAcquire, ApiError> {
        Ok(ValidAcquire {
            resource_id: ResourceId::parse(&self.resource_id)?,
            owner: OwnerId::parse(&self.owner_id)?,
            ttl: self.ttl_seconds.map(|t| Ttl::from_seconds_f64(t, bounds)).transpose()?,
        })
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
            return Err(ApiError::new(ErrorCode::ValidationFailed, "reason must be 1-500 characters without control characters"));
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
        let role = Role::parse(&self.role)
            .ok_or_else(|| ApiError::new(ErrorCode::ValidationFailed, "role must be viewer, client or admin"))?;
        Ok((Principal::for_key(&self.principal)?, role))
    }
}
