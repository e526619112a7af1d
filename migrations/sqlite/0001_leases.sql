-- HHS schema on the embedded SQLite store: the same tables as migrations/postgres, in SQLite's dialect.
-- UUIDs are 16-byte BLOBs (sqlx's encoding), which sort like PostgreSQL's uuid.

CREATE TABLE resources (
    id             BLOB PRIMARY KEY,
    type           TEXT NOT NULL,
    identifier     TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    UNIQUE (type, identifier)
);

CREATE TABLE leases (
    resource_id        BLOB PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    last_token         INTEGER NOT NULL DEFAULT 0,
    hold_id            BLOB,
    owner_id           TEXT,
    ttl_ms             INTEGER,
    token              INTEGER,
    acquired_at_ms     INTEGER,
    last_heartbeat_ms  INTEGER,
    state              TEXT NOT NULL DEFAULT 'FREE'
                       CHECK (state IN ('FREE', 'HELD', 'RELEASED', 'EXPIRED', 'FORCE_RELEASED')),
    ended_at_ms        INTEGER,
    heartbeats         INTEGER NOT NULL DEFAULT 0,
    max_gap_ms         INTEGER NOT NULL DEFAULT 0,
    delay_until_ms     INTEGER
);
CREATE INDEX leases_held_by_expiry ON leases (last_heartbeat_ms + ttl_ms) WHERE state = 'HELD';
CREATE INDEX leases_owner ON leases (owner_id);

CREATE TABLE events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms          INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    resource_id    BLOB,
    hold_id        BLOB,
    owner_id       TEXT,
    fencing_token  INTEGER,
    detail         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_resource ON events (resource_id, id);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'hhs events are append-only (UPDATE refused)');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'hhs events are append-only (DELETE refused)');
END;
