-- Operational status (hhs_core::status): HL7 table 0116 for every resource; only U can be held. And the HL7 v2
-- messages received, by sender and control id, so a repeat is answered the same and applied once.
ALTER TABLE resources ADD COLUMN status TEXT NOT NULL DEFAULT 'U' CHECK (status IN ('C', 'H', 'I', 'K', 'O', 'U'));
CREATE TABLE hl7_messages (
    sender          TEXT NOT NULL,
    control_id      TEXT NOT NULL,
    received_at_ms  BIGINT NOT NULL,
    message_type    TEXT NOT NULL,
    ack_code        TEXT NOT NULL,
    ack_text        TEXT NOT NULL,
    PRIMARY KEY (sender, control_id)
);
-- The integration role: a hospital system's feed that may only set statuses.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check CHECK (role IN ('viewer', 'client', 'admin', 'integration'));
