//! The JSON of the HTTP API: request bodies (with their validation) and response bodies.
//!
//! Request structs are the raw wire shape (`deny_unknown_fields`, plain strings and numbers); `validate` turns
//! one into domain types or the precise error code. Parsing is two-step on purpose: malformed JSON is a 400
//! `invalid_json`, a wrong shape a 422 `validation_failed`, a bad field its own 422 code.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};
use crate::auth::Role;
use crate::ids::{FencingToken, HoldId, Identifier, OwnerId, Principal, ResourceId, ResourceType};
use crate::lease::{Denied, Lease, LockStatus};
use crate::time::Millis;
use crate::ttl::{Ttl, TtlBounds};

/// Largest request body any tier accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Parses a request body: syntax errors are `invalid_json` (400), shape errors `validation_failed` (422).
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("request body is not valid JSON: {e}")))?;
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
#[serde(deny_unknown_fields)]
pub struct CreateResourceRequest {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub identifier: String,
}

impl CreateResourceRequest {
    pub fn validate(&self) -> Result<(ResourceType, Identifier), ApiError> {
        Ok((ResourceType::parse(&self.resource_type)?, Identifier::parse(&self.identifier)?))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquireRequest {
    pub resource_id: String,
    pub owner_id: String,
    /// Omitted: the TTL model's suggestion for this owner and resource type.
    #[serde(default)]
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
#[serde(deny_unknown_fields)]
pub struct HolderRequest {
    pub resource_id: String,
    pub owner_id: String,
    #[serde(default)]
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
#[serde(deny_unknown_fields)]
pub struct ForceReleaseRequest {
    pub resource_id: String,
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
#[serde(deny_unknown_fields)]
pub struct SuggestRequest {
    pub resource_id: String,
    pub owner_id: String,
}

impl SuggestRequest {
    pub fn validate(&self) -> Result<(ResourceId, OwnerId), ApiError> {
        Ok((ResourceId::parse(&self.resource_id)?, OwnerId::parse(&self.owner_id)?))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuggestionBasis {
    /// `owner`, `type` or `default`.
    pub scope: crate::ttl_model::Scope,
    /// `heartbeat_gaps`, `hold_durations` or `policy_default`.
    pub learned_from: crate::ttl_model::Basis,
    pub samples: u32,
    /// The learned 99.5th percentile (before the safety margin and the policy bounds), in seconds.
    pub quantile_seconds: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuggestResponse {
    pub suggested_ttl: u32,
    /// How unusual the resource's current hold is, in [0, 1]; 0 when it is free.
    pub anomaly_score: f64,
    pub basis: SuggestionBasis,
}

/// One entry of `GET /api/ml/anomalies`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyView {
    pub resource_id: ResourceId,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub identifier: String,
    pub owner_id: String,
    pub principal: String,
    pub anomaly_score: f64,
    pub held_seconds: f64,
    pub heartbeat_gap_seconds: f64,
    pub fencing_token: u64,
}

/// `PATCH /api/resources/{id}` (admin): rename a resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateResourceRequest {
    pub identifier: String,
}

/// `POST /api/keys` (admin).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub principal: String,
    pub role: String,
}

impl CreateKeyRequest {
    pub fn validate(&self) -> Result<(Principal, Role), ApiError> {
        let role = Role::parse(&self.role)
            .ok_or_else(|| ApiError::new(ErrorCode::ValidationFailed, "role must be viewer, client or admin"))?;
        Ok((Principal::for_key(&self.principal)?, role))
    }
}

/// A key as listed: never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub id: String,
    pub principal: String,
    pub role: Role,
    #[serde(with = "crate::time::rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339_millis::option")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The answer to a key creation: the only time the full key is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceView {
    pub id: ResourceId,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub identifier: String,
    #[serde(with = "crate::time::rfc3339_millis")]
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourcePage {
    pub items: Vec<ResourceView>,
    /// Pass as `?after=` to get the next page; `null` on the last page.
    pub next_after: Option<ResourceId>,
}

/// The state of one resource's lease, as `GET /api/locks/{id}` and every lock operation return it.
///
/// `id` is the hold's id; hold fields are `null` while the resource has never been held (`status: "FREE"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockView {
    pub id: Option<HoldId>,
    pub resource_id: ResourceId,
    pub owner_id: Option<String>,
    /// The principal whose key acquired the hold.
    pub principal: Option<String>,
    pub status: LockStatus,
    pub ttl_seconds: Option<u32>,
    pub fencing_token: Option<u64>,
    #[serde(with = "crate::time::rfc3339_millis::option")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::rfc3339_millis::option")]
    pub last_heartbeat: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::rfc3339_millis::option")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::rfc3339_millis::option")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Set while the resource is in lock-delay: no grant before this time.
    #[serde(with = "crate::time::rfc3339_millis::option")]
    pub lock_delay_until: Option<DateTime<Utc>>,
    /// On acquire answers: `"requested"` or `"suggested"` (the TTL model chose it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_source: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
}

impl LockView {
    pub fn of(lease: &Lease, now: Millis) -> LockView {
        let hold = lease.hold.as_ref();
        LockView {
            id: hold.map(|h| h.id),
            resource_id: lease.resource_id,
            owner_id: hold.map(|h| h.owner.as_str().to_string()),
            principal: hold.map(|h| h.principal.as_str().to_string()),
            status: lease.status(now),
            ttl_seconds: hold.map(|h| h.ttl.seconds()),
            fencing_token: hold.map(|h| h.token.0),
            created_at: hold.map(|h| h.acquired_at.to_utc()),
            last_heartbeat: hold.map(|h| h.last_heartbeat.to_utc()),
            expires_at: hold.map(|h| h.expires_at().to_utc()),
            ended_at: hold.and_then(|h| h.ended_at(now)).map(Millis::to_utc),
            lock_delay_until: lease.delay_until.filter(|u| *u > now).map(Millis::to_utc),
            ttl_source: None,
            resource_type: None,
            identifier: None,
        }
    }

    /// Adds the resource's type and identifier (lists show them; single-lock answers keep the seed's shape).
    pub fn with_resource(mut self, resource_type: &str, identifier: &str) -> LockView {
        self.resource_type = Some(resource_type.to_string());
        self.identifier = Some(identifier.to_string());
        self
    }

    /// The status at `now` by the expiry rule: a view read as `HELD` reads `EXPIRED` once `now` is past its
    /// `expires_at` (the last valid instant), exactly as [`crate::Hold::status`] decides on the server.
    pub fn status_at(&self, now: Millis) -> LockStatus {
        match (self.status, self.expires_at) {
            (LockStatus::Held, Some(exp)) if now > Millis::from_utc(exp) => LockStatus::Expired,
            (status, _) => status,
        }
    }

    /// How long a live hold has left at `now` (zero once it has lapsed); `None` when not held.
    pub fn remaining_at(&self, now: Millis) -> Option<Millis> {
        let exp = Millis::from_utc(self.expires_at?);
        (self.status == LockStatus::Held).then(|| Millis(exp.since(now).0.max(0)))
    }

    /// Whether no grant is possible at `now` because of a lock-delay.
    pub fn in_lock_delay(&self, now: Millis) -> bool {
        self.lock_delay_until.is_some_and(|u| now < Millis::from_utc(u))
    }
}

/// `GET /api/locks`: one page of leases (by resource id, at most `limit` ≤ 1,000), with the database time it was
/// read at and the newest event id before the read, so a dashboard can measure its clock offset and stream the
/// changes from there without a gap. A client reading several pages streams from the *first* page's
/// `last_event_id`: every page read after it is at least as new.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockList {
    pub items: Vec<LockView>,
    #[serde(with = "crate::time::rfc3339_millis")]
    pub server_time: DateTime<Utc>,
    /// Events after this id may or may not be reflected in `items`; folding them again changes nothing.
    pub last_event_id: i64,
    /// Pass as `?after=` for the next page; `null` on the last page. (A `status` filter applies within a page, so
    /// a page may hold fewer items than `limit` and still have a next one.)
    #[serde(default)]
    pub next_after: Option<ResourceId>,
}

/// `GET /api/ml/anomalies`: one page of live holds (by resource id, at most `limit` ≤ 1,000 holds examined),
/// those scoring at least `min_score`, most unusual first within the page. Read every page for the overall top.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyList {
    pub items: Vec<AnomalyView>,
    /// Pass as `?after=` for the next page; `null` on the last page.
    #[serde(default)]
    pub next_after: Option<ResourceId>,
}

/// A hold renewed without a change of state (a heartbeat, or a repeated acquire by its holder). Streamed to
/// dashboards as a transient `heartbeat` message so countdowns follow renewals; never stored in the event log
/// (the hold's heartbeat summary is).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalView {
    pub resource_id: ResourceId,
    pub hold_id: HoldId,
    pub owner_id: String,
    pub principal: String,
    pub fencing_token: u64,
    pub ttl_seconds: u32,
    #[serde(with = "crate::time::rfc3339_millis")]
    pub last_heartbeat: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339_millis")]
    pub expires_at: DateTime<Utc>,
}

impl RenewalView {
    /// The renewal a lease's current hold represents; `None` unless it is stored as held.
    pub fn of(lease: &Lease) -> Option<RenewalView> {
        let h = lease.hold.as_ref().filter(|h| h.state == crate::HoldState::Held)?;
        Some(RenewalView {
            resource_id: lease.resource_id,
            hold_id: h.id,
            owner_id: h.owner.as_str().to_string(),
            principal: h.principal.as_str().to_string(),
            fencing_token: h.token.0,
            ttl_seconds: h.ttl.seconds(),
            last_heartbeat: h.last_heartbeat.to_utc(),
            expires_at: h.expires_at().to_utc(),
        })
    }
}

/// `GET /api/whoami`: whose key this is and what it may do, so a dashboard offers only the allowed actions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub principal: String,
    pub role: Role,
    pub key_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub database: String,
    pub version: String,
}

/// One entry of the event log as the API returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub id: i64,
    #[serde(with = "crate::time::rfc3339_millis")]
    pub at: DateTime<Utc>,
    pub kind: String,
    pub resource_id: Option<ResourceId>,
    pub hold_id: Option<HoldId>,
    pub owner_id: Option<String>,
    pub fencing_token: Option<u64>,
    pub detail: serde_json::Value,
    /// Who did it: the principal of the key used, or `hhs:reaper`.
    pub principal: Option<String>,
    pub key_id: Option<String>,
    pub request_id: Option<String>,
    /// `ok` for changes; `unauthenticated` for recorded authentication failures.
    pub outcome: String,
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> ApiError {
        match d {
            Denied::LockHeld { holder, expires_at } => {
                let mut e = ApiError::new(
                    ErrorCode::LockHeld,
                    format!("the resource is held by {holder} until {} unless they renew", expires_at.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                );
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
            Denied::NotYourHold => ApiError::new(ErrorCode::NotYourHold, "the resource is held under another principal's key"),
            Denied::LockExpired => ApiError::new(
                ErrorCode::LockExpired,
                "this owner's hold expired; acquire again (and treat any work done under the old token as unprotected)",
            ),
            Denied::StaleToken => {
                ApiError::new(ErrorCode::StaleToken, "the fencing token does not match the current grant of this resource")
            }
            Denied::NotHeld => ApiError::new(ErrorCode::LockNotHeld, "the resource is not held"),
        }
    }
}
