-- The wait queue: see migrations/postgres/0008_wait_queue.sql.
CREATE TABLE waiters (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              BLOB NOT NULL UNIQUE,
    resource_id     BLOB NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    principal       TEXT NOT NULL,
    owner_id        TEXT NOT NULL,
    ttl_ms          INTEGER NOT NULL,
    enqueued_at_ms  INTEGER NOT NULL,
    alive_until_ms  INTEGER NOT NULL,
    deadline_ms     INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'WAITING' CHECK (state IN ('WAITING', 'GRANTED', 'TIMED_OUT', 'GONE')),
    hold_id         BLOB,
    ended_at_ms     INTEGER
);
CREATE INDEX waiters_queue ON waiters (resource_id, seq) WHERE state = 'WAITING';
CREATE INDEX waiters_ended ON waiters (ended_at_ms) WHERE state <> 'WAITING';
ALTER TABLE leases ADD COLUMN waiters INTEGER NOT NULL DEFAULT 0 CHECK (waiters >= 0);
