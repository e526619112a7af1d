//! `cargo xtask <command>`: HHS's build, run and test orchestration, in Rust rather than shell
//! (rust-analyzer's pattern). Only `std`, so it builds in seconds on a clean machine.
//!
//! * `dev`  — build and start the origin on the embedded store and the edge Worker in `wrangler dev`; print
//!   the edge URL (the one clinics use) and the dev keys.
//! * `build` — the Worker (`edge/build`) and the dashboard (`ui/dist`) in release, for deploying.
//! * `image` — the origin's container image (`deploy/Containerfile`, `FROM scratch` on a root filesystem made
//!   here); `--check` runs the image's binary from its exported filesystem and asks its `/healthz`.
//! * `test` — every test: hhs-core for wasm32 without std, the edge Worker, then the workspace's tests against
//!   a throwaway PostgreSQL cluster (or `DATABASE_URL`) and a `wrangler dev` running the Worker; a full run
//!   also checks the image and bundles the Worker with `wrangler deploy --dry-run`.
//! * `pgbench` — measures the two transactional-acquire strategies on a throwaway cluster.
//! * `eval-ttl` — evaluates the TTL model against fixed TTLs on simulated months of traffic.
//! * `bench edge` — latency of acquire+release direct and through `wrangler dev`, and the Worker's size.
//! * `bench ui` — the dashboard's wasm size and its first render of 1,000 resources in headless Chromium.
//! * `bench cycle` — the origin's acquire → heartbeat → release throughput on durable PostgreSQL.
//! * `bench failover` — the unavailability window when the formation's primary is killed (5 kills), and
//!   throughput with synchronous replication beside a single server.
//! * `bench contention` — acquire latency when 50 clients race for one resource at once.
//! * `bench heartbeats` — 1,000 holds kept alive by one session's keepalives vs a heartbeat each, PostgreSQL and
//!   SQLite.
//! * `bench handover` — the wait queue's hand-over, release to the next waiter's 200 (p50/p99), PostgreSQL and
//!   SQLite.
//! * `bench keys` — a valid key's latency idle and during a flood of 50,000 unknown key ids.
//! * `fuzz-api` — schemathesis against the origin and the edge from the OpenAPI description, a key of each
//!   role; no refused request may change state.
//! * `cli-e2e` — the `hhs` CLI against `xtask dev` on free ports in a scratch directory.
//! * `quickstart` — README's tour and `docs/quickstart.md` run as written against `xtask dev`, each answer checked.
//! * `tidy` — fmt and clippy gates; the paths the documents name exist; no import cycles in any crate.
//! * `ha` — a PostgreSQL formation with pg_auto_failover (monitor, primary, two standbys) on this machine:
//!   `up` prints its multi-host `DATABASE_URL`; `switchover`, `kill-primary`, `kill-standby`, `revive`, `down`.
//! * `chaos` — the fault harness: replicas killed, PostgreSQL crashed, clients frozen; eight checks of the
//!   promises (no overlap, rising tokens, nothing acknowledged lost, fencing, a complete stream, no 500, client
//!   views disjoint in real time, the answers the reference model decides).

mod bench;
mod chaos;
mod cli_e2e;
mod dev;
mod edge;
mod eval_ttl;
mod fuzz_api;
mod ha;
mod image;
mod postgres;
mod quickstart;
mod run;
mod test;
mod tidy;
mod ui;
mod wasm;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("dev") => dev::run(&args[1..]),
        Some("test") => test::run(&args[1..]),
        Some("pgbench") => bench::pgbench::run(&args[1..]),
        Some("eval-ttl") => eval_ttl::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("chaos") => chaos::run(&args[1..]),
        Some("fuzz-api") => fuzz_api::run(&args[1..]),
        Some("cli-e2e") => cli_e2e::run(),
        Some("quickstart") => quickstart::run(),
        Some("tidy") => tidy::run(),
        Some("ha") => ha::run(&args[1..]),
        Some("image") => image::run(&args[1..]),
        Some("build") => edge::build(true)
            .and_then(|_| ui::build(true))
            .map(|dist| eprintln!("\nbuilt edge/build and {}", dist.display())),
        Some("help") | Some("--help") | Some("-h") | None => {
            eprintln!("usage: cargo xtask <dev|test|build|image|pgbench|eval-ttl|bench|chaos|fuzz-api|cli-e2e|quickstart|tidy|ha> [args]\n\n  dev      start HHS locally (embedded SQLite) and print its URL\n  build    the Worker and the dashboard in release, for deploying\n  image [--check] [--debug] [--tag NAME]  the origin's container image (podman); --check runs its binary from the exported image\n  test     run every test (starts a throwaway PostgreSQL unless DATABASE_URL is set)\n  pgbench  compare the acquire strategies with pgbench\n  eval-ttl evaluate the TTL model on simulated traffic [--seed N] [--days N]\n  bench edge [PAIRS]  latency direct vs through wrangler dev, Worker size\n  bench ui [LOADS]    dashboard wasm size and first render of 1,000 resources\n  bench cycle [SECONDS] acquire/heartbeat/release throughput on durable PostgreSQL (HHS_ORIGIN_BIN: another build)\n  bench keys [UNKNOWN]  a valid key's latency idle and during a flood of unknown key ids\n  bench heartbeats [SECONDS]  1,000 holds renewed by one session vs by heartbeats, PostgreSQL and SQLite\n  bench handover [ROUNDS]  the wait queue's hand-over, release to the next waiter's 200 (p50/p99), PostgreSQL and SQLite\n  fuzz-api [--examples N]  schemathesis against origin and edge, each role, from /api/openapi.json\n  cli-e2e  the hhs CLI against a cargo xtask dev setup of its own\n  quickstart  README's tour and docs/quickstart.md run against cargo xtask dev, each answer checked\n  tidy     fmt, clippy, the paths the documents name exist, no import cycles in any crate, file sizes\n  chaos [--duration S] [--seed N] [--sqlite] [--edge] [--clients N] [--release]\n           the fault harness: kills, crashes and pauses under load, then eight checks");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}; try `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
