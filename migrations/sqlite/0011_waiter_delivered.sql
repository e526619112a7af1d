-- See migrations/postgres/0012_waiter_delivered.sql. SQLite cannot change a CHECK constraint: the table is
-- rebuilt with the new state, its rows and their arrival order (seq) kept.
CREATE TABLE waiters_new (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              BLOB NOT NULL UNIQUE,
    resource_id     BLOB NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    principal       TEXT NOT NULL,
    owner_id        TEXT NOT NULL,
    ttl_ms          INTEGER NOT NULL,
    enqueued_at_ms  INTEGER NOT NULL,
    alive_until_ms  INTEGER NOT NULL,
    deadline_ms     INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'WAITING' CHECK (state IN ('WAITING', 'GRANTED', 'DELIVERED', 'TIMED_OUT', 'GONE')),
    hold_id         BLOB,
    ended_at_ms     INTEGER
);
INSERT INTO waiters_new (seq, id, resource_id, principal, owner_id, ttl_ms, enqueued_at_ms, alive_until_ms, deadline_ms, state, hold_id, ended_at_ms)
    SELECT seq, id, resource_id, principal, owner_id, ttl_ms, enqueued_at_ms, alive_until_ms, deadline_ms, state, hold_id, ended_at_ms FROM waiters;
DROP TABLE waiters;
ALTER TABLE waiters_new RENAME TO waiters;
CREATE INDEX waiters_queue ON waiters (resource_id, seq) WHERE state = 'WAITING';
CREATE INDEX waiters_ended ON waiters (ended_at_ms) WHERE state <> 'WAITING';
CREATE INDEX waiters_undelivered ON waiters (ended_at_ms) WHERE state = 'GRANTED';
