-- Fault fixes (see ARCHITECTURE.md, "Reading the log in commit order").
--
-- 1. Events are read in commit order. An event id comes from a sequence at INSERT, not at COMMIT, so a reader
--    that follows "id > X" skips an event whose transaction commits after one with a higher id. Each event now
--    records the id of the transaction that wrote it; readers that follow the log take only events of
--    transactions older than the oldest one still running (pg_snapshot_xmin of their snapshot: every such
--    transaction has finished) and order them by (txid, id). Whatever commits later has a txid at or above that
--    horizon, so it sorts after everything already read. Rows from before this migration get txid 0: committed
--    long ago, they sort first, in id order.
ALTER TABLE events ADD COLUMN txid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ALTER COLUMN txid SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX events_by_commit ON events (txid, id);

-- The per-insert NOTIFY is gone: readers poll the horizon (cheap, indexed) and wake at once on their own
-- replica's commits. NOTIFY took a cluster-wide lock at every committing transaction that wrote an event.
DROP TRIGGER events_notify ON events;
DROP FUNCTION hhs_events_notify();

-- 4. Fencing tokens rise per name for ever. When a resource is deleted or renamed, the highest token issued
--    under its old (type, identifier) is kept here; a resource that takes that name again continues above it.
CREATE TABLE token_floors (
    type        TEXT NOT NULL,
    identifier  TEXT NOT NULL,
    last_token  BIGINT NOT NULL,
    PRIMARY KEY (type, identifier)
);

-- 5. At most one late heartbeat/release is recorded per hold.
ALTER TABLE leases ADD COLUMN late_reported BOOLEAN NOT NULL DEFAULT FALSE;
