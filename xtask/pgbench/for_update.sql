-- What HHS ships: lock the row, read the clock, decide, write row and event. Holds last 50 ms so they churn.
\set rid random(1, 100)
\set owner random(1, 1000)
BEGIN;
SELECT last_token, (state = 'HELD')::int AS held, coalesce(last_heartbeat_ms + ttl_ms, 0) AS expires_ms FROM bench_leases WHERE resource_id = :rid FOR UPDATE \gset
SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms \gset
\if NOT (:held = 1 AND :expires_ms >= :now_ms)
UPDATE bench_leases SET last_token = :last_token + 1, owner_id = 'o' || :owner, token = :last_token + 1, state = 'HELD',
    acquired_at_ms = :now_ms, last_heartbeat_ms = :now_ms, ttl_ms = 50 WHERE resource_id = :rid;
INSERT INTO bench_events (at_ms, kind, resource_id, owner_id, fencing_token) VALUES (:now_ms, 'acquired', :rid, 'o' || :owner, :last_token + 1);
\endif
COMMIT;
