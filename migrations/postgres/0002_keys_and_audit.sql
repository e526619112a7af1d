-- Security: API keys (only the SHA-256 of each secret is stored), the principal on every hold, and the audit
-- columns on every event.

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,            -- the visible key id (12 hex), not secret
    principal      TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'client', 'admin')),
    secret_sha256  BYTEA NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    revoked_at_ms  BIGINT
);

ALTER TABLE leases ADD COLUMN principal TEXT;

ALTER TABLE events ADD COLUMN principal TEXT;   -- who did it (a key's principal, or hhs:reaper)
ALTER TABLE events ADD COLUMN key_id TEXT;      -- with which key
ALTER TABLE events ADD COLUMN request_id TEXT;
ALTER TABLE events ADD COLUMN outcome TEXT NOT NULL DEFAULT 'ok';
CREATE INDEX events_by_time ON events (at_ms, id);
