-- Clinical holds: see migrations/postgres/0007_clinical_holds.sql.

CREATE TABLE sessions (
    id                 BLOB PRIMARY KEY,
    principal          TEXT NOT NULL,
    owner_id           TEXT NOT NULL,
    ttl_ms             INTEGER NOT NULL,
    opened_at_ms       INTEGER NOT NULL,
    last_keepalive_ms  INTEGER NOT NULL,
    state              TEXT NOT NULL DEFAULT 'OPEN' CHECK (state IN ('OPEN', 'CLOSED', 'LAPSED')),
    ended_at_ms        INTEGER
);
CREATE INDEX sessions_open_by_expiry ON sessions (last_keepalive_ms + ttl_ms) WHERE state = 'OPEN';

ALTER TABLE leases ADD COLUMN session_id BLOB;
ALTER TABLE leases ADD COLUMN group_id BLOB;
ALTER TABLE leases ADD COLUMN booked_until_ms INTEGER;
CREATE INDEX leases_by_session ON leases (session_id) WHERE session_id IS NOT NULL;
CREATE INDEX leases_by_group ON leases (group_id) WHERE group_id IS NOT NULL;
DROP INDEX leases_held_by_expiry;
CREATE INDEX leases_held_by_expiry ON leases (COALESCE(booked_until_ms, last_heartbeat_ms + ttl_ms)) WHERE state = 'HELD';
