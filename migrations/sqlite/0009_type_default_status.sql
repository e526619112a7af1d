-- See migrations/postgres/0010_type_default_status.sql.
ALTER TABLE resource_types ADD COLUMN default_status TEXT NOT NULL DEFAULT 'U' CHECK (default_status IN ('C', 'H', 'I', 'K', 'O', 'U'));
