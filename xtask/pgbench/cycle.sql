-- `cargo xtask bench cycle`'s floor: the same cycle as the origin's load (acquire → one heartbeat → release, on a
-- random one of the 1,000 resources, owner per client), as three transactions straight at PostgreSQL on HHS's own
-- schema, with the statements HHS's rules need (grant with the next token + its event; renew the holder's
-- hold; release + its event). No HTTP, auth, JSON or decision in Rust: what a service built on this schema
-- cannot beat. A contended pick (another client holds it) skips the rest of its cycle, as a 409 would.
\set r random(1, 1000)
BEGIN;
WITH clock AS (SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms),
g AS (UPDATE leases l SET last_token = l.last_token + 1, token = l.last_token + 1, hold_id = gen_random_uuid(),
        owner_id = 'w' || :client_id, principal = 'bench', ttl_ms = 30000, acquired_at_ms = clock.ms,
        last_heartbeat_ms = clock.ms, state = 'HELD', ended_at_ms = NULL, heartbeats = 0, max_gap_ms = 0,
        delay_until_ms = NULL, late_reported = FALSE
      FROM clock WHERE l.resource_id = (SELECT id FROM bench_ids WHERE n = :r) AND l.state <> 'HELD' RETURNING l.resource_id, l.hold_id, l.token, clock.ms),
e AS (INSERT INTO events (at_ms, kind, resource_id, hold_id, owner_id, fencing_token, detail, principal, outcome)
      SELECT ms, 'acquired', resource_id, hold_id, 'w' || :client_id, token, '{}', 'bench', 'ok' FROM g)
SELECT count(*) AS granted FROM g \gset
COMMIT;
\if :granted
BEGIN;
UPDATE leases SET last_heartbeat_ms = floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint, heartbeats = heartbeats + 1
  WHERE resource_id = (SELECT id FROM bench_ids WHERE n = :r) AND owner_id = 'w' || :client_id AND state = 'HELD';
COMMIT;
BEGIN;
WITH clock AS (SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms),
r AS (UPDATE leases l SET state = 'RELEASED', ended_at_ms = clock.ms FROM clock
      WHERE l.resource_id = (SELECT id FROM bench_ids WHERE n = :r) AND l.owner_id = 'w' || :client_id AND l.state = 'HELD' RETURNING l.resource_id, l.hold_id, l.token, clock.ms)
INSERT INTO events (at_ms, kind, resource_id, hold_id, owner_id, fencing_token, detail, principal, outcome)
  SELECT ms, 'released', resource_id, hold_id, 'w' || :client_id, token, '{}', 'bench', 'ok' FROM r;
COMMIT;
\endif
