//! Time as plain numbers: milliseconds since the Unix epoch, as read from the database's clock by the caller.

use alloc::string::String;
use chrono::SecondsFormat;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time (or, where documented, a duration) in milliseconds since the Unix epoch.
///
/// The lease rules only ever compare and subtract these, so integer milliseconds keep every decision exact and
/// identical on every tier (no float rounding, no time zones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct Millis(pub i64);

impl From<i64> for Millis {
    fn from(ms: i64) -> Millis {
        Millis(ms)
    }
}

impl Millis {
    pub const ZERO: Millis = Millis(0);

    pub const fn from_secs(secs: i64) -> Self {
        Millis(secs.saturating_mul(1000))
    }

    /// `self + d`, saturating instead of overflowing on absurd inputs.
    pub const fn plus(self, d: Millis) -> Millis {
        Millis(self.0.saturating_add(d.0))
    }

    /// `self - earlier`, saturating.
    pub const fn since(self, earlier: Millis) -> Millis {
        Millis(self.0.saturating_sub(earlier.0))
    }

    /// The instant as a UTC timestamp; out-of-range values clamp to the epoch rather than panic.
    pub fn to_utc(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }

    pub fn from_utc(t: DateTime<Utc>) -> Self {
        Millis(t.timestamp_millis())
    }
}

/// Serde for API timestamps (`#[serde(with = "crate::time::Rfc3339Millis")]`): always RFC 3339 UTC with exactly
/// three fractional digits (`2026-01-31T08:00:00.000Z`), so every timestamp has one width and sorts as text. A
/// type rather than a module so the OpenAPI description reads the field's schema from it too.
pub struct Rfc3339Millis;

impl Rfc3339Millis {
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }
}

/// The same for `Option<DateTime<Utc>>` (`null` when absent).
pub struct OptionalRfc3339Millis;

impl OptionalRfc3339Millis {
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => Rfc3339Millis::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(feature = "openapi")]
mod timestamp_schemas {
    use alloc::borrow::Cow;
    use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

    impl JsonSchema for super::Rfc3339Millis {
        fn schema_name() -> Cow<'static, str> {
            "Timestamp".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": "string", "format": "date-time", "examples": ["2026-01-31T08:00:00.000Z"]})
        }
    }

    impl JsonSchema for super::OptionalRfc3339Millis {
        fn inline_schema() -> bool {
            true
        }
        fn schema_name() -> Cow<'static, str> {
            "OptionalTimestamp".into()
        }
        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({"type": ["string", "null"], "format": "date-time"})
        }
    }
}
