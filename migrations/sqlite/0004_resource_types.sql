-- Resource types as data (see migrations/postgres/0005_resource_types.sql for the argument). SQLite cannot add
-- a foreign key to an existing table; the store creates a resource's type row in the same transaction as the
-- resource.
CREATE TABLE resource_types (
    name                 TEXT PRIMARY KEY,
    lock_delay_ms        INTEGER NOT NULL DEFAULT 0,
    min_ttl_seconds      INTEGER NOT NULL DEFAULT 5,
    max_ttl_seconds      INTEGER NOT NULL DEFAULT 86400,
    default_ttl_seconds  INTEGER NOT NULL DEFAULT 300,
    booking_max_seconds  INTEGER,
    updated_at_ms        INTEGER NOT NULL DEFAULT 0,
    CHECK (lock_delay_ms BETWEEN 0 AND 86400000
        AND 1 <= min_ttl_seconds AND min_ttl_seconds <= default_ttl_seconds
        AND default_ttl_seconds <= max_ttl_seconds AND max_ttl_seconds <= 604800)
);
INSERT INTO resource_types (name) SELECT DISTINCT type FROM resources;
