-- Fault fixes, SQLite dialect of migrations/postgres/0004. One writer at a time (BEGIN IMMEDIATE) means ids
-- are already in commit order here; txid stays 0, so the shared "(txid, id)" ordering is plain id order.
ALTER TABLE events ADD COLUMN txid INTEGER NOT NULL DEFAULT 0;
CREATE INDEX events_by_commit ON events (txid, id);

-- 12. `INSERT OR REPLACE INTO events` would delete the old row without firing the DELETE trigger (REPLACE's
--     delete fires none unless recursive_triggers is on): refuse any insert that names an existing id.
CREATE TRIGGER events_no_replace BEFORE INSERT ON events
WHEN NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM events WHERE id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'hhs events are append-only (REPLACE refused)');
END;

CREATE TABLE token_floors (
    type        TEXT NOT NULL,
    identifier  TEXT NOT NULL,
    last_token  INTEGER NOT NULL,
    PRIMARY KEY (type, identifier)
);

ALTER TABLE leases ADD COLUMN late_reported INTEGER NOT NULL DEFAULT 0;
