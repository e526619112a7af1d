-- Operational status and HL7 messages: see migrations/postgres/0009_status_and_hl7.sql.
ALTER TABLE resources ADD COLUMN status TEXT NOT NULL DEFAULT 'U' CHECK (status IN ('C', 'H', 'I', 'K', 'O', 'U'));
CREATE TABLE hl7_messages (
    sender          TEXT NOT NULL,
    control_id      TEXT NOT NULL,
    received_at_ms  INTEGER NOT NULL,
    message_type    TEXT NOT NULL,
    ack_code        TEXT NOT NULL,
    ack_text        TEXT NOT NULL,
    PRIMARY KEY (sender, control_id)
);
-- The integration role. SQLite cannot change a CHECK: the table is rebuilt with the same rows.
CREATE TABLE api_keys_new (
    id             TEXT PRIMARY KEY,
    principal      TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'client', 'admin', 'integration')),
    secret_sha256  BLOB NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    revoked_at_ms  INTEGER
);
INSERT INTO api_keys_new SELECT id, principal, role, secret_sha256, created_at_ms, revoked_at_ms FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;
