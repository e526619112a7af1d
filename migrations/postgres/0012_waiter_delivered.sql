-- A hand-over is delivered once the waiting request has been answered with its hold (DELIVERED); one still
-- GRANTED past the pickup window (hhs_core::queue::PICKUP_TIMEOUT) was never taken, and the reaper gives the
-- bed back instead of leaving it held for a TTL.
ALTER TABLE waiters DROP CONSTRAINT waiters_state_check;
ALTER TABLE waiters ADD CONSTRAINT waiters_state_check
    CHECK (state IN ('WAITING', 'GRANTED', 'DELIVERED', 'TIMED_OUT', 'GONE'));
-- The reaper's candidates: hand-overs not yet delivered, oldest grant first.
CREATE INDEX waiters_undelivered ON waiters (ended_at_ms) WHERE state = 'GRANTED';
