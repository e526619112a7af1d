-- The status a new resource of the type starts in (hhs_core::status; U unless set with PUT /api/types/{name}).
ALTER TABLE resource_types ADD COLUMN default_status TEXT NOT NULL DEFAULT 'U' CHECK (default_status IN ('C', 'H', 'I', 'K', 'O', 'U'));
