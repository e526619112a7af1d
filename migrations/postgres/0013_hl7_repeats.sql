-- HL7 repeats are recognised by the integration principal that sent them (not only the sender named inside the
-- message), their sender and control id, and their content (`digest`: SHA-256 of hhs_core::hl7::canonical); a
-- repeat gets the stored ACK (`ack`) again. Records expire after the repeat window (indexed by received_at_ms).
-- Rows from before this migration have no principal or digest: they match nothing and expire with the window.
ALTER TABLE hl7_messages ADD COLUMN principal TEXT NOT NULL DEFAULT '';
ALTER TABLE hl7_messages ADD COLUMN digest TEXT NOT NULL DEFAULT '';
ALTER TABLE hl7_messages ADD COLUMN ack TEXT NOT NULL DEFAULT '';
ALTER TABLE hl7_messages DROP CONSTRAINT hl7_messages_pkey;
ALTER TABLE hl7_messages ADD PRIMARY KEY (principal, sender, control_id);
CREATE INDEX hl7_messages_received ON hl7_messages (received_at_ms);
