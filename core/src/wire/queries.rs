//! Query parameters of the list endpoints, and what each validates into: the filter a store reads with. Raw
//! structs are the wire shape (`deny_unknown_fields`, plain strings and numbers); `validate` gives the typed
//! filter or the precise 422.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};
use crate::ids::{OwnerId, ResourceId, ResourceType};
use crate::lease::LockStatus;
use crate::time::Millis;

/// A query type with its own rule: what the origin validates after parsing it, so the edge can refuse the same
/// query before forwarding it (`endpoints::check_query`).
pub trait Query: serde::de::DeserializeOwned {
    fn check(&self) -> Result<(), ApiError>;
}

/// Parses a query string into a query type. Core has no URL-encoded deserializer (`serde_urlencoded` needs
/// std): the edge passes one built on the same crate axum's `Query` uses, so both tiers read a query alike.
pub trait QueryParser {
    /// The query, or a 422 `validation_failed` (unknown parameter, wrong type).
    fn parse<T: serde::de::DeserializeOwned>(&self, query: &str) -> Result<T, ApiError>;
}

macro_rules! checked_by_validate {
    ($($t:ty),*) => {$(
        impl Query for $t {
            fn check(&self) -> Result<(), ApiError> {
                self.validate().map(drop)
            }
        }
    )*};
}

checked_by_validate!(ResourceQuery, LockQuery, AnomalyQuery, EventQuery, ExportQuery);

impl Query for StreamQuery {
    fn check(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// The largest page any list gives.
pub const MAX_PAGE: u32 = 1_000;

fn limit(given: Option<u32>, default: u32) -> Result<u32, ApiError> {
    let limit = given.unwrap_or(default);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::new(ErrorCode::ValidationFailed, format!("limit must be between 1 and {MAX_PAGE}")))
    }
}

fn time(name: &str, value: Option<&str>) -> Result<Option<Millis>, ApiError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v).map(|t| Millis::from_utc(t.with_timezone(&chrono::Utc))).map_err(
                |_| {
                    ApiError::new(
                        ErrorCode::ValidationFailed,
                        format!("{name} must be an RFC 3339 time such as 2026-01-31T08:00:00Z"),
                    )
                },
            )
        })
        .transpose()
}

/// Resources, by id.
#[derive(Clone, Debug, Default)]
pub struct ResourceFilter {
    pub resource_type: Option<ResourceType>,
    /// Exactly this identifier (with a type: at most one resource).
    pub identifier: Option<crate::ids::Identifier>,
    /// Keyset pagination: resources with an id greater than this (ids are UUIDv7, so: created later).
    pub after: Option<ResourceId>,
    pub limit: u32,
}

/// Leases with their resources, by resource id.
#[derive(Clone, Debug, Default)]
pub struct LockFilter {
    pub owner_id: Option<OwnerId>,
    pub resource_type: Option<ResourceType>,
    /// Only leases stored as held (live or lapsed-unrecorded): what the anomaly list examines.
    pub held_only: bool,
    /// Keyset pagination by resource id.
    pub after: Option<ResourceId>,
    /// At most this many (`None`: all, for internal callers that need every lease).
    pub limit: Option<u32>,
    /// Only these resources (the event stream's lock views).
    pub resources: Option<Vec<ResourceId>>,
}

/// The event log in commit order.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub resource_id: Option<ResourceId>,
    /// Events after this one, in commit order (a cursor that never skips a late committer).
    pub after_id: Option<i64>,
    /// Events at or after this time.
    pub since: Option<Millis>,
    /// Events before this time.
    pub until: Option<Millis>,
    pub limit: u32,
}

/// `GET /api/resources?type=&after=&limit=` (default 100).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ResourceQuery {
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::ResourceType>"))]
    pub resource_type: Option<String>,
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::ResourceId>"))]
    pub after: Option<String>,
    #[cfg_attr(feature = "openapi", schemars(range(min = 1, max = MAX_PAGE)))]
    pub limit: Option<u32>,
}

impl ResourceQuery {
    pub fn validate(&self) -> Result<ResourceFilter, ApiError> {
        Ok(ResourceFilter {
            resource_type: self.resource_type.as_deref().map(ResourceType::parse).transpose()?,
            identifier: None,
            after: self.after.as_deref().map(ResourceId::parse).transpose()?,
            limit: limit(self.limit, 100)?,
        })
    }
}

/// `GET /api/locks?status=&owner_id=&type=&after=&limit=` (default 1,000).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LockQuery {
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::lease::LockStatus>"))]
    pub status: Option<String>,
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::OwnerId>"))]
    pub owner_id: Option<String>,
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::ResourceType>"))]
    pub resource_type: Option<String>,
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::ResourceId>"))]
    pub after: Option<String>,
    #[cfg_attr(feature = "openapi", schemars(range(min = 1, max = MAX_PAGE)))]
    pub limit: Option<u32>,
}

impl LockQuery {
    /// The filter, and the status to keep (it depends on the time of the read, so it is applied after it).
    pub fn validate(&self) -> Result<(LockFilter, Option<LockStatus>), ApiError> {
        let status = self.status.as_deref().map(|s| {
            LockStatus::parse(s).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::ValidationFailed,
                    "status must be one of FREE, HELD, RELEASED, EXPIRED, FORCE_RELEASED, BOOKED, COMPLETED",
                )
            })
        });
        let filter = LockFilter {
            owner_id: self.owner_id.as_deref().map(OwnerId::parse).transpose()?,
            resource_type: self.resource_type.as_deref().map(ResourceType::parse).transpose()?,
            after: self.after.as_deref().map(ResourceId::parse).transpose()?,
            limit: Some(limit(self.limit, MAX_PAGE)?),
            ..LockFilter::default()
        };
        Ok((filter, status.transpose()?))
    }
}

/// `GET /api/ml/anomalies?min_score=&after=&limit=`: live holds scoring at least `min_score` (default 0.8).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AnomalyQuery {
    #[cfg_attr(feature = "openapi", schemars(range(min = 0.0, max = 1.0)))]
    pub min_score: Option<f64>,
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::ResourceId>"))]
    pub after: Option<String>,
    #[cfg_attr(feature = "openapi", schemars(range(min = 1, max = MAX_PAGE)))]
    pub limit: Option<u32>,
}

impl AnomalyQuery {
    pub fn validate(&self) -> Result<(LockFilter, f64), ApiError> {
        let min = self.min_score.unwrap_or(0.8);
        if !(0.0..=1.0).contains(&min) {
            return Err(ApiError::new(ErrorCode::ValidationFailed, "min_score must be between 0 and 1"));
        }
        let after = self.after.as_deref().map(ResourceId::parse).transpose()?;
        Ok((
            LockFilter { held_only: true, after, limit: Some(limit(self.limit, MAX_PAGE)?), ..LockFilter::default() },
            min,
        ))
    }
}

/// `GET /api/events?resource_id=&after=&since=&limit=` (default 100).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    #[cfg_attr(feature = "openapi", schemars(with = "Option<crate::ids::ResourceId>"))]
    pub resource_id: Option<String>,
    /// Only events after this one in commit order (resume where the last page ended).
    pub after: Option<i64>,
    /// Only events at or after this time (RFC 3339).
    #[cfg_attr(feature = "openapi", schemars(with = "crate::time::OptionalRfc3339Millis"))]
    pub since: Option<String>,
    #[cfg_attr(feature = "openapi", schemars(range(min = 1, max = MAX_PAGE)))]
    pub limit: Option<u32>,
}

impl EventQuery {
    pub fn validate(&self) -> Result<EventFilter, ApiError> {
        Ok(EventFilter {
            resource_id: self.resource_id.as_deref().map(ResourceId::parse).transpose()?,
            after_id: self.after,
            since: time("since", self.since.as_deref())?,
            until: None,
            limit: limit(self.limit, 100)?,
        })
    }
}

/// `GET /api/audit/export?since=&until=` (RFC 3339): the whole log in that window, from the start of commit
/// order, so no page skips a late committer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    #[cfg_attr(feature = "openapi", schemars(with = "crate::time::OptionalRfc3339Millis"))]
    pub since: Option<String>,
    #[cfg_attr(feature = "openapi", schemars(with = "crate::time::OptionalRfc3339Millis"))]
    pub until: Option<String>,
}

impl ExportQuery {
    pub fn validate(&self) -> Result<EventFilter, ApiError> {
        let (since, until) = (time("since", self.since.as_deref())?, time("until", self.until.as_deref())?);
        Ok(EventFilter { after_id: Some(0), since, until, limit: MAX_PAGE, ..EventFilter::default() })
    }
}

/// `GET /api/events/stream?after=`: replay events after this one first (`Last-Event-ID` does the same).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    pub after: Option<i64>,
}
