-- The alternative: one statement that restates the rule in SQL and grants only when free or expired.
\set rid random(1, 100)
\set owner random(1, 1000)
WITH now AS (SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms),
granted AS (
    INSERT INTO bench_leases AS l (resource_id, last_token, owner_id, token, state, acquired_at_ms, last_heartbeat_ms, ttl_ms)
    SELECT :rid, 1, 'o' || :owner, 1, 'HELD', ms, ms, 50 FROM now
    ON CONFLICT (resource_id) DO UPDATE SET last_token = l.last_token + 1, owner_id = EXCLUDED.owner_id,
        token = l.last_token + 1, state = 'HELD', acquired_at_ms = EXCLUDED.acquired_at_ms,
        last_heartbeat_ms = EXCLUDED.last_heartbeat_ms, ttl_ms = EXCLUDED.ttl_ms
    WHERE l.state <> 'HELD' OR l.last_heartbeat_ms + l.ttl_ms < EXCLUDED.acquired_at_ms
    RETURNING l.resource_id, l.owner_id, l.token, l.acquired_at_ms
)
INSERT INTO bench_events (at_ms, kind, resource_id, owner_id, fencing_token)
SELECT acquired_at_ms, 'acquired', resource_id, owner_id, token FROM granted;
