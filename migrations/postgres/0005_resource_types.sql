-- Resource types as data: one policy per type, read by every replica and the reaper inside the transactions
-- that decide (acquire, expiry, force-release, deletion), changed through PUT /api/types/{name} with an audit
-- event. Existing types get rows with the built-in defaults and updated_at_ms 0 ("never set"): the first origin
-- to start after this migration fills them from its flags (--min-ttl, --max-ttl, --default-ttl, --lock-delay),
-- so an upgraded deployment keeps its behaviour; rows that have been set are never changed by flags.
CREATE TABLE resource_types (
    name                 TEXT PRIMARY KEY,
    lock_delay_ms        BIGINT NOT NULL DEFAULT 0,
    min_ttl_seconds      BIGINT NOT NULL DEFAULT 5,
    max_ttl_seconds      BIGINT NOT NULL DEFAULT 86400,
    default_ttl_seconds  BIGINT NOT NULL DEFAULT 300,
    -- Room for the clinical issues: the longest booking of this type (bookings), its statuses (HL7 bed status).
    booking_max_seconds  BIGINT,
    updated_at_ms        BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT resource_types_policy CHECK (
        lock_delay_ms BETWEEN 0 AND 86400000
        AND 1 <= min_ttl_seconds AND min_ttl_seconds <= default_ttl_seconds
        AND default_ttl_seconds <= max_ttl_seconds AND max_ttl_seconds <= 604800)
);
INSERT INTO resource_types (name) SELECT DISTINCT type FROM resources;
-- Every resource has its type's row: the lease queries join it.
ALTER TABLE resources ADD CONSTRAINT resources_type_fkey FOREIGN KEY (type) REFERENCES resource_types (name);
