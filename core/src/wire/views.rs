//! Response bodies: what the API answers.

use alloc::string::String;
use alloc::vec::Vec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::error::{ApiError, ErrorCode};
use crate::ids::ResourceId;
use crate::time::Millis;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SuggestResponse {
    pub suggested_ttl: u32,
    /// How unusual the resource's current hold is, in [0, 1]; 0 when it is free.
    pub anomaly_score: f64,
    pub basis: SuggestionBasis,
}

/// One entry of `GET /api/ml/anomalies`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
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

/// `PATCH /api/resources/{id}`: rename a resource (admin), set its operational status (admin or integration),
/// or both. At least one of the two.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateResourceRequest {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::Identifier>"))]
    pub identifier: Option<String>,
    /// HL7 table 0116: C, H, I, K, O or U (only U can be held).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::status::Status>"))]
    pub status: Option<String>,
}

impl UpdateResourceRequest {
    pub fn validate(&self) -> Result<(Option<crate::ids::Identifier>, Option<crate::status::Status>), ApiError> {
        let identifier = self.identifier.as_deref().map(crate::ids::Identifier::parse).transpose()?;
        let status = self.status.as_deref().map(crate::status::Status::parse).transpose()?;
        if identifier.is_none() && status.is_none() {
            return Err(ApiError::new(ErrorCode::ValidationFailed, "give identifier, status or both"));
        }
        Ok((identifier, status))
    }
}

/// A key as listed: never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct KeyView {
    pub id: String,
    pub principal: String,
    pub role: Role,
    #[serde(with = "crate::time::Rfc3339Millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time::OptionalRfc3339Millis")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The answer to a key creation: the only time the full key is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ResourceView {
    pub id: ResourceId,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub identifier: String,
    #[serde(with = "crate::time::Rfc3339Millis")]
    pub created_at: DateTime<Utc>,
    /// Its operational status (HL7 table 0116; only U can be held).
    #[serde(default)]
    pub status: crate::status::Status,
}

/// Every list of the API has this shape: the items of one page, and what to pass as `?after=` for the next one
/// (`null` on the last page). `GET /api/locks` adds the server time and the event to stream from ([`LockList`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "openapi", schemars(rename = "{T}Page"))]
pub struct Page<T, After = ResourceId> {
    pub items: Vec<T>,
    /// Absent reads as `null` (serde's rule for an `Option`; a `default` attribute would ask `After: Default`).
    pub next_after: Option<After>,
}

/// `GET /api/resources`, by resource id.
pub type ResourcePage = Page<ResourceView>;
/// `GET /api/ml/anomalies`: one page of live holds (by resource id, at most `limit` ≤ 1,000 holds examined),
/// those scoring at least `min_score`, most unusual first within the page. Read every page for the overall top.
pub type AnomalyList = Page<AnomalyView>;
/// `GET /api/types`, by name (one page: every type).
pub type TypePage = Page<TypeView, String>;
/// `GET /api/keys` (one page: every key).
pub type KeyPage = Page<KeyView, String>;

/// A session (`/api/sessions`): its owner, TTL and expiry, how it stands at the time of the read (`OPEN`,
/// `CLOSED`, `LAPSED`: an open session past its expiry reads `LAPSED` before the reaper records it) and how many
/// live holds it renews.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SessionView {
    pub id: crate::ids::SessionId,
    pub principal: String,
    pub owner_id: String,
    pub ttl_seconds: u32,
    pub status: String,
    #[serde(with = "crate::time::Rfc3339Millis")]
    pub opened_at: DateTime<Utc>,
    #[serde(with = "crate::time::Rfc3339Millis")]
    pub last_keepalive: DateTime<Utc>,
    #[serde(with = "crate::time::Rfc3339Millis")]
    pub expires_at: DateTime<Utc>,
    #[serde(with = "crate::time::OptionalRfc3339Millis")]
    pub ended_at: Option<DateTime<Utc>>,
    pub holds: u64,
    /// On the answer that opened it: `"requested"`, or `"suggested"` (no `ttl_seconds` given: the TTL model's
    /// suggestion from the owner's past renewal gaps, else the default TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_source: Option<String>,
}

impl SessionView {
    pub fn of(s: &crate::session::Session, holds: u64, now: Millis) -> SessionView {
        use crate::session::SessionState;
        let (status, ended) = match s.state {
            SessionState::Open if s.is_live(now) => ("OPEN", None),
            SessionState::Open => ("LAPSED", Some(s.expires_at())),
            SessionState::Closed { at } => ("CLOSED", Some(at)),
            SessionState::Lapsed { at } => ("LAPSED", Some(at)),
        };
        SessionView {
            id: s.id,
            principal: s.principal.as_str().into(),
            owner_id: s.owner.as_str().into(),
            ttl_seconds: s.ttl.seconds(),
            status: status.into(),
            opened_at: s.opened_at.to_utc(),
            last_keepalive: s.last_keepalive.to_utc(),
            expires_at: s.expires_at().to_utc(),
            ended_at: ended.map(Millis::to_utc),
            holds: if status == "OPEN" { holds } else { 0 },
            ttl_source: None,
        }
    }
}

impl SessionView {
    /// How long the session (and every hold under it) has left at `now`; zero once it has lapsed.
    pub fn remaining_at(&self, now: Millis) -> Millis {
        Millis(Millis::from_utc(self.expires_at).since(now).0.max(0))
    }
}

/// `POST /api/sessions/{session_id}/keepalive`'s answer: the session as renewed, and exactly the holds the
/// keepalive renewed. A hold taken under the session and absent here is no longer renewed by it (released,
/// force-released, lapsed or booked): its holder must stop relying on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct KeepAliveView {
    #[serde(flatten)]
    pub session: SessionView,
    /// Every hold renewed, by resource id (ascending) with its fencing token.
    pub renewed: Vec<SessionHold>,
}

/// One hold a keepalive renewed: its resource and the fencing token of its grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SessionHold {
    pub resource_id: ResourceId,
    pub fencing_token: u64,
}

/// `GET /api/sessions`: the open sessions (one page).
pub type SessionPage = Page<SessionView, String>;

/// A resource type and its policy (`GET /api/types/{name}`): what every replica, the reaper and the dashboard
/// decide with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TypeView {
    pub name: String,
    /// After an expiry or force-release, no grant for this long (0: none; a clean release never has one).
    pub lock_delay_seconds: u32,
    pub min_ttl_seconds: u32,
    pub max_ttl_seconds: u32,
    /// What an acquire without `ttl_seconds` gets while the TTL model has too little history.
    pub default_ttl_seconds: u32,
    /// How far ahead a hold of this type may be booked (`POST /api/locks/book`).
    pub booking_max_seconds: u32,
    /// The operational status its new resources start in.
    #[serde(default)]
    pub default_status: crate::status::Status,
}

impl TypeView {
    pub fn of(name: &str, p: &crate::policy::TypePolicy) -> TypeView {
        let b = p.ttl_bounds();
        let delay = u32::try_from(p.lock_delay().0 / 1000).unwrap_or(u32::MAX);
        let booking_max_seconds = u32::try_from(p.booking_max().0 / 1000).unwrap_or(u32::MAX);
        TypeView {
            name: name.into(),
            lock_delay_seconds: delay,
            min_ttl_seconds: b.min_seconds,
            max_ttl_seconds: b.max_seconds,
            default_ttl_seconds: p.default_ttl_seconds(),
            booking_max_seconds,
            default_status: p.default_status,
        }
    }
}

/// `GET /api/whoami`: whose key this is and what it may do, so a dashboard offers only the allowed actions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct WhoAmIView {
    pub principal: String,
    pub role: Role,
    pub key_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Health {
    pub status: String,
    pub database: String,
    pub version: String,
    /// PostgreSQL only: the server written to and whether it waits for a standby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<Replication>,
}

/// How the PostgreSQL server the origin writes to replicates: an acknowledged commit survives the loss of the
/// server only if it waits for a standby (`synchronous`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Replication {
    /// `host:port` of the primary.
    pub server: Option<String>,
    pub synchronous_commit: String,
    pub synchronous_standby_names: String,
    /// Standbys streaming synchronously now; `None` where the role may not see them (grant it `pg_monitor`).
    pub sync_standbys: Option<i64>,
    /// Commits wait for at least one standby ([`Replication::waits_for_standby`]).
    pub synchronous: bool,
    /// How long the last database outage this process lived through lasted, in ms.
    pub last_outage_ms: Option<i64>,
}

impl Replication {
    /// Whether a commit is acknowledged only once a standby has it: some standby is named as synchronous and
    /// `synchronous_commit` waits for it (`on`, `remote_write`, `remote_apply`; not `local` or `off`).
    pub fn waits_for_standby(synchronous_commit: &str, synchronous_standby_names: &str) -> bool {
        !synchronous_standby_names.trim().is_empty()
            && matches!(synchronous_commit, "on" | "remote_write" | "remote_apply")
    }
}
