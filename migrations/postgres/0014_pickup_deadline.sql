-- A hold handed over from the queue lapses at pickup_by_ms unless renewed first (hhs_core::queue::pickup_deadline):
-- an answer written to a connection that died unnoticed must not keep the bed for a whole TTL. NULL: none.
-- The reaper's expiry index follows the expiry expression (store `expiry!`), which now reads it.
ALTER TABLE leases ADD COLUMN pickup_by_ms BIGINT;
DROP INDEX leases_held_by_expiry;
CREATE INDEX leases_held_by_expiry ON leases ((COALESCE(booked_until_ms, CASE WHEN pickup_by_ms < last_heartbeat_ms + ttl_ms
    THEN pickup_by_ms ELSE last_heartbeat_ms + ttl_ms END))) WHERE state = 'HELD';
