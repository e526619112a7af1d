-- The lease row of migrations/postgres, trimmed to what an acquire touches, with 100 resources.
CREATE TABLE bench_leases (
    resource_id        INT PRIMARY KEY,
    last_token         BIGINT NOT NULL DEFAULT 0,
    owner_id           TEXT,
    token              BIGINT,
    state              TEXT NOT NULL DEFAULT 'FREE',
    acquired_at_ms     BIGINT,
    last_heartbeat_ms  BIGINT,
    ttl_ms             BIGINT
);
CREATE TABLE bench_events (
    id             BIGSERIAL PRIMARY KEY,
    at_ms          BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    resource_id    INT,
    owner_id       TEXT,
    fencing_token  BIGINT
);
INSERT INTO bench_leases (resource_id) SELECT generate_series(1, 100);
