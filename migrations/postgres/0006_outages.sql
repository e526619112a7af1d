-- Database outages the origins lived through (a failover, a crash): when the database was last seen working,
-- when the first origin back gave live holds the time back (hhs_core::lease::resume), and how many. One row per
-- outage: an origin that comes back later and finds a row resumed after its own loss does nothing.
CREATE TABLE outages (
    id             BIGSERIAL PRIMARY KEY,
    lost_at_ms     BIGINT NOT NULL,
    resumed_at_ms  BIGINT NOT NULL,
    holds_extended BIGINT NOT NULL
);
