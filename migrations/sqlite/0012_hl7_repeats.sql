-- HL7 repeats by principal, sender, control id and content: see migrations/postgres/0013_hl7_repeats.sql.
-- SQLite cannot change a primary key: the table is rebuilt with the same rows.
CREATE TABLE hl7_messages_new (
    principal       TEXT NOT NULL DEFAULT '',
    sender          TEXT NOT NULL,
    control_id      TEXT NOT NULL,
    digest          TEXT NOT NULL DEFAULT '',
    received_at_ms  INTEGER NOT NULL,
    message_type    TEXT NOT NULL,
    ack_code        TEXT NOT NULL,
    ack_text        TEXT NOT NULL,
    ack             TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (principal, sender, control_id)
);
INSERT INTO hl7_messages_new (sender, control_id, received_at_ms, message_type, ack_code, ack_text)
    SELECT sender, control_id, received_at_ms, message_type, ack_code, ack_text FROM hl7_messages;
DROP TABLE hl7_messages;
ALTER TABLE hl7_messages_new RENAME TO hl7_messages;
CREATE INDEX hl7_messages_received ON hl7_messages (received_at_ms);
