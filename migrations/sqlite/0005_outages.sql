-- Database outages the origins lived through: see migrations/postgres/0006_outages.sql. SQLite has no failover,
-- but the store is one body for both databases, and an origin that lost its file for a moment resumes the same way.
CREATE TABLE outages (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    lost_at_ms     INTEGER NOT NULL,
    resumed_at_ms  INTEGER NOT NULL,
    holds_extended INTEGER NOT NULL
);
