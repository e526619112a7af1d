//! `hhs-origin migrate --grant-to ROLE`: least privilege for the service's PostgreSQL role.

use sqlx::postgres::PgPoolOptions;

use crate::store::StoreError;

/// Gives `role` what the service needs and no more (SQL `GRANT`s): it reads and writes resources, leases, keys, token floors,
/// sessions, the wait queue, HL7 repeat records and resource types (never deleting a type or a session), but may only SELECT and INSERT events — it cannot rewrite the
/// audit trail, and, not owning the table, cannot drop or disable the triggers that refuse UPDATE, DELETE and
/// TRUNCATE. It may read the server's statistics (`pg_monitor`: which standbys are synchronous). Run as the
/// schema's owner (the role that ran the migrations).
pub async fn limit_privileges(url: &str, role: &str) -> Result<(), StoreError> {
    let valid = !role.is_empty() && role.len() <= 63 && role.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(StoreError::Corrupt("the role name must be 1-63 characters of A-Z a-z 0-9 _".into()));
    }
    let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
    for statement in [
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON resources, leases, api_keys, token_floors TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE ON resource_types TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON hl7_messages TO {role}"),
        // Sessions are ended, never deleted; ended waits are deleted a minute after they end.
        format!("GRANT SELECT, INSERT, UPDATE ON sessions TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON waiters TO {role}"),
        format!("GRANT SELECT, INSERT ON events, outages TO {role}"),
        // Resumptions after an outage serialise on `LOCK TABLE outages IN SHARE ROW EXCLUSIVE MODE`, which
        // PostgreSQL allows only with UPDATE (or DELETE, TRUNCATE) on the table; the service never updates a row.
        format!("GRANT UPDATE ON outages TO {role}"),
        // A group's membership is written once, when it is granted.
        format!("GRANT SELECT, INSERT ON group_members TO {role}"),
        format!("GRANT USAGE ON SEQUENCE events_id_seq, outages_id_seq, waiters_seq_seq TO {role}"),
        // Reads replication statistics, so /healthz can count the synchronous standbys.
        format!("GRANT pg_monitor TO {role}"),
        format!("GRANT SELECT ON _sqlx_migrations TO {role}"),
    ] {
        sqlx::query(&statement).execute(&pool).await?;
    }
    pool.close().await;
    Ok(())
}
