//! After a database outage: live holds (and open sessions) are given back the time it took, once per outage
//! whichever replica comes first (`hhs_core::lease::resume`, `hhs_core::session::resume`).

use hhs_core::lease::resume;
use hhs_core::session;
use hhs_core::Millis;
use sqlx::Pool;

use super::dialect::Dialect;
use super::rows::{from_leases, lease_columns, Arg, LeaseRecord};
use super::sessions::{session_update_args, SessionRecord, UPDATE_SESSION};
use super::sql_store::SqlStore;
use super::{Actor, StoreError};

impl<D: Dialect> SqlStore<D> {
    /// Applies [`resume`] to every hold live when the outage began, once per outage whichever replica
    /// comes first: the `outages` table, locked, says whether one resumed after `lost_at` already.
    pub(super) async fn resume_holds(&self, pool: &Pool<D>, lost_at: Millis) -> Result<(Millis, u64), StoreError> {
        let mut tx = pool.begin_with(D::BEGIN_WRITE).await?;
        Self::exec(&mut tx, D::LOCK_OUTAGES, vec![]).await?;
        let now = Self::db_now(&mut tx).await?;
        let (last,): (i64,) = Self::fetch(&mut *tx, LAST_RESUME, vec![]).await?.pop().unwrap_or((0,));
        let mut extended = 0;
        if last < lost_at.0 {
            let actor = Actor::system("failover");
            // Sessions first (the lock order is session → leases), then every hold, its session's too.
            let sessions = format!("{SELECT_RESUMABLE_SESSIONS}{}", D::lock("sessions"));
            let taken: Vec<SessionRecord> = Self::fetch(&mut *tx, &sessions, vec![Arg::Int(Some(lost_at.0))]).await?;
            for rec in taken {
                if let Some(resumed) = session::resume(&rec.into_session()?, lost_at, now) {
                    Self::exec(&mut tx, UPDATE_SESSION, session_update_args(&resumed)).await?;
                }
            }
            let held = format!("{SELECT_RESUMABLE}{}", D::lock("l"));
            let recs: Vec<LeaseRecord> = Self::fetch(&mut *tx, &held, vec![Arg::Int(Some(lost_at.0))]).await?;
            for rec in recs {
                let (_, lease) = rec.into_parts()?;
                if let Some(outcome) = resume(&lease, lost_at, now) {
                    Self::write(&mut tx, &lease, &outcome, &actor).await?;
                    extended += 1;
                }
            }
            Self::exec(
                &mut tx,
                INSERT_OUTAGE,
                vec![Arg::Int(Some(lost_at.0)), Arg::Int(Some(now.0)), Arg::Int(Some(extended as i64))],
            )
            .await?;
            tracing::warn!(
                outage_ms = now.since(lost_at).0,
                holds_extended = extended,
                "database outage: live holds given back its time"
            );
        }
        self.commit(tx, vec![]).await?;
        Ok((now, extended))
    }
}

/// Holds a database outage may have taken time from: held, not renewed since the outage began at `$1`, and
/// live then; not bookings (they need no renewals). Each is still decided by `hhs_core::lease::resume`.
pub const SELECT_RESUMABLE: &str = concat!(
    "SELECT ",
    lease_columns!(),
    from_leases!(),
    " WHERE l.state = 'HELD' AND l.booked_until_ms IS NULL \
     AND l.last_heartbeat_ms < $1 AND l.last_heartbeat_ms + l.ttl_ms >= $1"
);

/// When live holds were last resumed after an outage (0: never).
pub const LAST_RESUME: &str = "SELECT COALESCE(MAX(resumed_at_ms), 0) FROM outages";

pub const INSERT_OUTAGE: &str = "INSERT INTO outages (lost_at_ms, resumed_at_ms, holds_extended) VALUES ($1, $2, $3)";

/// Sessions an outage beginning at `$1` may have taken time from (`hhs_core::session::resume` decides); the
/// dialect appends its row lock.
pub const SELECT_RESUMABLE_SESSIONS: &str = "SELECT id, principal, owner_id, ttl_ms, opened_at_ms, last_keepalive_ms, state, \
     ended_at_ms FROM sessions WHERE state = 'OPEN' AND last_keepalive_ms < $1 AND last_keepalive_ms + ttl_ms >= $1 ORDER BY id";
