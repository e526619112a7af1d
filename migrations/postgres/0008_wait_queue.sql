-- The wait queue (hhs_core::queue): an acquire with wait_seconds that finds the resource held waits here, and
-- whoever frees the resource grants it to the first live waiter in the same transaction. `seq` is the arrival
-- order: a waiter is inserted while its lease row is locked, so one resource's waiters are numbered in the order
-- they arrived. A row stays after its wait ends (state and hold_id tell the waiting request what happened) until
-- the reaper deletes it a minute later.
CREATE TABLE waiters (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              UUID NOT NULL UNIQUE,
    resource_id     UUID NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    principal       TEXT NOT NULL,
    owner_id        TEXT NOT NULL,
    ttl_ms          BIGINT NOT NULL,
    enqueued_at_ms  BIGINT NOT NULL,
    alive_until_ms  BIGINT NOT NULL,
    deadline_ms     BIGINT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'WAITING' CHECK (state IN ('WAITING', 'GRANTED', 'TIMED_OUT', 'GONE')),
    hold_id         UUID,
    ended_at_ms     BIGINT
);
CREATE INDEX waiters_queue ON waiters (resource_id, seq) WHERE state = 'WAITING';
CREATE INDEX waiters_ended ON waiters (ended_at_ms) WHERE state <> 'WAITING';
-- How many wait, on the lease row: changed with the queue under the row's lock, so the one-statement grant and
-- release can refuse to run past a queue (`waiters = 0`) and a listing shows the queue's length without a join.
ALTER TABLE leases ADD COLUMN waiters BIGINT NOT NULL DEFAULT 0 CHECK (waiters >= 0);
