//! A lease as every store keeps it: one flat record of plain values (the columns of `leases`), and the two
//! conversions. A round trip is the identity (property-tested); a record that does not make a lease is named.

use alloc::format;
use alloc::string::{String, ToString};
use uuid::Uuid;

use crate::ids::{FencingToken, GroupId, HoldId, OwnerId, Principal, ResourceId, SessionId};
use crate::lease::{Hold, HoldState, Lease};
use crate::time::Millis;
use crate::ttl::Ttl;

/// Also the payload of PostgreSQL's renewal notification (`row_to_json` of the row a one-statement heartbeat
/// wrote, with `resource_id`): hence `Deserialize`, with the column names as field names.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct StoredLease {
    pub last_token: i64,
    pub hold_id: Option<Uuid>,
    pub principal: Option<String>,
    pub owner_id: Option<String>,
    pub ttl_ms: Option<i64>,
    pub token: Option<i64>,
    pub acquired_at_ms: Option<i64>,
    pub last_heartbeat_ms: Option<i64>,
    /// `FREE`, `HELD`, `RELEASED`, `EXPIRED` or `FORCE_RELEASED` (a completed booking: `EXPIRED` with its
    /// `booked_until_ms`).
    pub state: String,
    pub ended_at_ms: Option<i64>,
    pub heartbeats: i64,
    pub max_gap_ms: i64,
    pub delay_until_ms: Option<i64>,
    pub late_reported: bool,
    /// The session, group and booking end of the hold (`NULL`: none; and absent from stores that do not keep
    /// them yet, hence the defaults).
    #[cfg_attr(feature = "sqlx", sqlx(default))]
    #[serde(default)]
    pub session_id: Option<Uuid>,
    #[cfg_attr(feature = "sqlx", sqlx(default))]
    #[serde(default)]
    pub group_id: Option<Uuid>,
    #[cfg_attr(feature = "sqlx", sqlx(default))]
    #[serde(default)]
    pub booked_until_ms: Option<i64>,
    /// How many requests wait in the resource's queue.
    #[cfg_attr(feature = "sqlx", sqlx(default))]
    #[serde(default)]
    pub waiters: i64,
    /// A handed-over hold's pickup deadline (`Hold::pickup_by`).
    #[cfg_attr(feature = "sqlx", sqlx(default))]
    #[serde(default)]
    pub pickup_by_ms: Option<i64>,
}

impl StoredLease {
    pub fn of(l: &Lease) -> StoredLease {
        let h = l.hold.as_ref();
        let (state, ended) = match h.map(|h| h.state) {
            None => ("FREE", None),
            Some(HoldState::Held) => ("HELD", None),
            Some(HoldState::Released { at }) => ("RELEASED", Some(at.0)),
            Some(HoldState::Expired { at }) => ("EXPIRED", Some(at.0)),
            Some(HoldState::ForceReleased { at }) => ("FORCE_RELEASED", Some(at.0)),
        };
        StoredLease {
            last_token: l.last_token.to_i64(),
            hold_id: h.map(|h| h.id.0),
            principal: h.map(|h| h.principal.as_str().to_string()),
            owner_id: h.map(|h| h.owner.as_str().to_string()),
            ttl_ms: h.map(|h| h.ttl.as_millis().0),
            token: h.map(|h| h.token.to_i64()),
            acquired_at_ms: h.map(|h| h.acquired_at.0),
            last_heartbeat_ms: h.map(|h| h.last_heartbeat.0),
            state: state.to_string(),
            ended_at_ms: ended,
            heartbeats: h.map_or(0, |h| i64::from(h.heartbeats)),
            max_gap_ms: h.map_or(0, |h| h.max_gap.0),
            delay_until_ms: l.delay_until.map(|m| m.0),
            late_reported: h.is_some_and(|h| h.late_reported),
            session_id: h.and_then(|h| h.session).map(|s| s.0),
            group_id: h.and_then(|h| h.group).map(|g| g.0),
            booked_until_ms: h.and_then(|h| h.booked_until).map(|m| m.0),
            waiters: i64::from(l.waiting),
            // Only a held hold has a deadline: an ended row never carries one into the next grant.
            pickup_by_ms: h.filter(|h| h.state == HoldState::Held).and_then(|h| h.pickup_by).map(|m| m.0),
        }
    }

    /// A renewal notification's payload (a `leases` row as JSON, with its `resource_id`) as the lease it stores.
    pub fn parse_row(json: &str) -> Result<Lease, String> {
        #[derive(serde::Deserialize)]
        struct Row {
            resource_id: Uuid,
            #[serde(flatten)]
            lease: StoredLease,
        }
        let row: Row = serde_json::from_str(json).map_err(|e| e.to_string())?;
        row.lease.into_lease(ResourceId(row.resource_id))
    }

    /// The lease of resource `id` this record holds, or what is wrong with it.
    pub fn into_lease(self, id: ResourceId) -> Result<Lease, String> {
        let last_token = FencingToken::from_i64(self.last_token).ok_or("negative last_token")?;
        let ended = || self.ended_at_ms.map(Millis).ok_or("an ended hold without ended_at_ms");
        let state = match self.state.as_str() {
            "FREE" => None,
            "HELD" => Some(HoldState::Held),
            "RELEASED" => Some(HoldState::Released { at: ended()? }),
            "EXPIRED" => Some(HoldState::Expired { at: ended()? }),
            "FORCE_RELEASED" => Some(HoldState::ForceReleased { at: ended()? }),
            other => return Err(format!("unknown state {other}")),
        };
        let missing = |c: &str| format!("a hold without a valid {c}");
        let hold = match state {
            None => None,
            Some(state) => Some(Hold {
                id: HoldId(self.hold_id.ok_or_else(|| missing("hold_id"))?),
                principal: self
                    .principal
                    .and_then(|p| Principal::parse(&p).ok())
                    .ok_or_else(|| missing("principal"))?,
                owner: self.owner_id.and_then(|o| OwnerId::parse(&o).ok()).ok_or_else(|| missing("owner_id"))?,
                ttl: Ttl::from_stored_millis(self.ttl_ms.ok_or_else(|| missing("ttl_ms"))?),
                token: self.token.and_then(FencingToken::from_i64).ok_or_else(|| missing("token"))?,
                acquired_at: Millis(self.acquired_at_ms.ok_or_else(|| missing("acquired_at_ms"))?),
                last_heartbeat: Millis(self.last_heartbeat_ms.ok_or_else(|| missing("last_heartbeat_ms"))?),
                state,
                heartbeats: u32::try_from(self.heartbeats).unwrap_or(u32::MAX),
                max_gap: Millis(self.max_gap_ms),
                late_reported: self.late_reported,
                session: self.session_id.map(SessionId),
                group: self.group_id.map(GroupId),
                booked_until: self.booked_until_ms.map(Millis),
                pickup_by: self.pickup_by_ms.map(Millis),
            }),
        };
        let waiting = u32::try_from(self.waiters).map_err(|_| "a negative waiters count")?;
        Ok(Lease { resource_id: id, last_token, hold, delay_until: self.delay_until_ms.map(Millis), waiting })
    }
}
