-- HHS schema on PostgreSQL. Times are BIGINT milliseconds since the Unix epoch, read from the database's own
-- clock, so every origin replica and the lease rules in hhs-core work on the same numbers.

CREATE TABLE resources (
    id             UUID PRIMARY KEY,          -- UUIDv7: ordered by creation, the pagination cursor
    type           TEXT NOT NULL,
    identifier     TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    UNIQUE (type, identifier)
);

-- One row per resource, created with it: acquires serialize on this row (SELECT … FOR UPDATE), so even the very
-- first acquire of a resource cannot race into a duplicate key. It holds the current (or last) hold.
CREATE TABLE leases (
    resource_id        UUID PRIMARY KEY REFERENCES resources (id) ON DELETE CASCADE,
    last_token         BIGINT NOT NULL DEFAULT 0,   -- highest fencing token ever issued for this resource
    hold_id            UUID,
    owner_id           TEXT,
    ttl_ms             BIGINT,
    token              BIGINT,
    acquired_at_ms     BIGINT,
    last_heartbeat_ms  BIGINT,
    state              TEXT NOT NULL DEFAULT 'FREE'
                       CHECK (state IN ('FREE', 'HELD', 'RELEASED', 'EXPIRED', 'FORCE_RELEASED')),
    ended_at_ms        BIGINT,
    heartbeats         BIGINT NOT NULL DEFAULT 0,
    max_gap_ms         BIGINT NOT NULL DEFAULT 0,
    delay_until_ms     BIGINT
);

-- The reaper's scan: held leases by expiry instant.
CREATE INDEX leases_held_by_expiry ON leases ((last_heartbeat_ms + ttl_ms)) WHERE state = 'HELD';
CREATE INDEX leases_owner ON leases (owner_id);

-- The history: every state change, appended in the same transaction as the change. Append-only.
CREATE TABLE events (
    id             BIGSERIAL PRIMARY KEY,
    at_ms          BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    resource_id    UUID,
    hold_id        UUID,
    owner_id       TEXT,
    fencing_token  BIGINT,
    detail         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_resource ON events (resource_id, id);

CREATE FUNCTION hhs_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hhs events are append-only (% refused)', TG_OP;
END
$$;
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION hhs_events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION hhs_events_append_only();
