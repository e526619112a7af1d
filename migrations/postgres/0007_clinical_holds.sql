-- Clinical holds: sessions (one keepalive renews every hold taken under it), all-or-nothing groups, bookings.
-- See hhs_core::session, hhs_core::group and hhs_core::booking for the rules these rows store.

CREATE TABLE sessions (
    id                 UUID PRIMARY KEY,
    principal          TEXT NOT NULL,
    owner_id           TEXT NOT NULL,
    ttl_ms             BIGINT NOT NULL,
    opened_at_ms       BIGINT NOT NULL,
    last_keepalive_ms  BIGINT NOT NULL,
    state              TEXT NOT NULL DEFAULT 'OPEN' CHECK (state IN ('OPEN', 'CLOSED', 'LAPSED')),
    ended_at_ms        BIGINT
);
-- The reaper's scan of sessions past their last valid instant.
CREATE INDEX sessions_open_by_expiry ON sessions ((last_keepalive_ms + ttl_ms)) WHERE state = 'OPEN';

-- A hold's session, group and booking end (NULL: none).
ALTER TABLE leases ADD COLUMN session_id UUID, ADD COLUMN group_id UUID, ADD COLUMN booked_until_ms BIGINT;
-- A keepalive renews its session's holds in one statement; a group is released by its id.
CREATE INDEX leases_by_session ON leases (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX leases_by_group ON leases (group_id) WHERE group_id IS NOT NULL;
-- A hold's expiry instant is now a booking's end where there is one (hhs_core::Hold::expires_at).
DROP INDEX leases_held_by_expiry;
CREATE INDEX leases_held_by_expiry ON leases ((COALESCE(booked_until_ms, last_heartbeat_ms + ttl_ms))) WHERE state = 'HELD';
