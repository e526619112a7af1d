//! Test harness: each test gets its own database (a fresh PostgreSQL database, or a fresh SQLite file) and its own
//! origin on a random port, and talks to it over HTTP like a client (zero2prod's pattern).
//!
//! PostgreSQL comes from `HHS_TEST_PG_URL` (an admin URL; `cargo xtask test` starts a throwaway cluster and sets
//! it). Without it a PostgreSQL test is skipped with a message — except under `CI`, where it fails.

pub mod browser;
pub mod edge;

use std::time::Duration;

use futures::StreamExt;
use hhs_core::{Millis, Policy, Principal, Role, TtlBounds};
use hhs_origin::keys;
use hhs_origin::server::{spawn, Running, Settings};
use hhs_origin::store::Actor;
use hhs_origin::store::DynStore;
use hhs_origin::store::{PgStore, SqliteStore};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Runs one async test body against both stores: `both_stores!(name)` makes `postgres::name` and `sqlite::name`.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name($crate::support::Backend::Postgres).await })*
        }
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name($crate::support::Backend::Sqlite).await })*
        }
    };
}

/// One test's database.
pub struct TestDb {
    pub backend: Backend,
    pg_url: Option<String>,
    sqlite: Option<(tempfile::TempDir, std::path::PathBuf)>,
    /// SQLite: how long a writer waits for the database lock (the store's default unless set).
    pub sqlite_busy_timeout: Option<Duration>,
    _horizon: Option<Horizon>,
}

/// The PostgreSQL tests share one cluster, and a transaction left open anywhere in it holds back the commit
/// horizon that event-log cursors stop at (that is the rule, see docs/design/commit-order.md). The few tests that hold a
/// transaction open on purpose ([`TestDb::holding_the_horizon`]) run alone; every other PostgreSQL test holds
/// a shared guard for its database's life.
static HORIZON: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

enum Horizon {
    #[allow(dead_code)] // held, not read
    Shared(tokio::sync::RwLockReadGuard<'static, ()>),
    #[allow(dead_code)]
    Alone(tokio::sync::RwLockWriteGuard<'static, ()>),
}

fn pg_admin_url() -> Option<String> {
    match std::env::var("HHS_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but HHS_TEST_PG_URL is not: PostgreSQL tests must run in CI (use `cargo xtask test`)")
        }
        _ => None,
    }
}

/// Creates database `name` on the writable server among `admin`'s hosts (a formation's multi-host URL names
/// standbys too, which refuse).
async fn create_database(admin: &str, name: &str) {
    let mut last = None;
    for host in hhs_origin::primary::targets(admin).expect("test database URL") {
        match PgConnection::connect(&host).await {
            Ok(mut conn) => {
                let created = conn.execute(format!("CREATE DATABASE {name}").as_str()).await;
                conn.close().await.ok();
                match created {
                    Ok(_) => return,
                    Err(e) => last = Some(e.to_string()),
                }
            }
            Err(e) => last = Some(e.to_string()),
        }
    }
    panic!("could not create a test database on any host: {last:?}");
}

/// `url` with its database name replaced.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let (prefix, _) = base.rsplit_once('/').expect("database URL has a path");
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

impl TestDb {
    /// A fresh database, or `None` when PostgreSQL is not available outside CI (the test then returns early).
    pub async fn new(backend: Backend) -> Option<TestDb> {
        Self::create(backend, false).await
    }

    /// A fresh PostgreSQL database for a test that holds transactions open: no other PostgreSQL test runs
    /// meanwhile.
    pub async fn holding_the_horizon() -> Option<TestDb> {
        Self::create(Backend::Postgres, true).await
    }

    async fn create(backend: Backend, alone: bool) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("hhs.db");
                Some(TestDb {
                    backend,
                    pg_url: None,
                    sqlite: Some((dir, path)),
                    sqlite_busy_timeout: None,
                    _horizon: None,
                })
            }
            Backend::Postgres => {
                let Some(admin) = pg_admin_url() else {
                    eprintln!("skipped: PostgreSQL test without HHS_TEST_PG_URL (run `cargo xtask test`)");
                    return None;
                };
                let horizon =
                    if alone { Horizon::Alone(HORIZON.write().await) } else { Horizon::Shared(HORIZON.read().await) };
                let name = format!("hhs_test_{}", uuid::Uuid::new_v4().simple());
                create_database(&admin, &name).await;
                let pg_url = Some(with_database(&admin, &name));
                Some(TestDb { backend, pg_url, sqlite: None, sqlite_busy_timeout: None, _horizon: Some(horizon) })
            }
        }
    }

    /// A new connection pool to this database, migrated.
    pub async fn store(&self) -> DynStore {
        let store: DynStore = match self.backend {
            Backend::Postgres => {
                Arc::new(PgStore::connect(self.pg_url.as_deref().expect("pg url"), 1, 20).await.expect("pg store"))
            }
            Backend::Sqlite => {
                let path = &self.sqlite.as_ref().expect("sqlite path").1;
                let busy = self.sqlite_busy_timeout.unwrap_or(hhs_origin::store::sqlite::BUSY_TIMEOUT);
                Arc::new(SqliteStore::open_with(path, 8, busy).await.expect("sqlite store"))
            }
        };
        store.migrate().await.expect("migrate");
        store
    }

    pub fn pg_url(&self) -> Option<&str> {
        self.pg_url.as_deref()
    }

    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        self.sqlite.as_ref().map(|(_, p)| p.as_path())
    }
}

/// The policy tests run under: TTLs from 1 s so expiry tests are quick; `or-room` has a 2 s lock-delay.
pub fn test_policy() -> Policy {
    Policy {
        ttl_bounds: TtlBounds { min_seconds: 1, max_seconds: 86_400 },
        default_ttl_seconds: 300,
        lock_delays: [("or-room".to_owned(), Millis(2_000))].into_iter().collect(),
    }
}

/// The settings test origins run with: the test policy, quick reaper, model and stream.
pub fn test_settings() -> Settings {
    Settings {
        policy: test_policy(),
        cors_origins: vec![],
        reaper: Some((Duration::from_millis(200), 100)),
        insecure_no_auth: false,
        model_refresh: Duration::from_millis(200),
        event_poll: Duration::from_millis(200),
        dashboard_dir: None,
        stream_key_check: Duration::from_millis(500),
        hl7: hhs_core::hl7::BedMapping::default(),
        hl7_repeat_window: hhs_core::hl7::DEFAULT_REPEAT_WINDOW,
    }
}

fn reads_the_log(path: &str) -> bool {
    ["/api/events", "/api/audit/export"]
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|q| q.starts_with('?')))
}

/// Keys minted for each test app: an admin (principal `hq`), a client (`clinic-north`), a viewer (`observer`).
pub struct Keys {
    pub admin: String,
    pub client: String,
    pub viewer: String,
}

pub struct TestApp {
    pub url: String,
    /// Sends the admin key unless a request sets its own `Authorization`.
    pub client: reqwest::Client,
    pub store: DynStore,
    pub keys: Keys,
    running: Running,
    pg_url: Option<String>,
}

/// Mints a key straight in the store, as `hhs-origin keys create` does.
pub async fn mint(store: &DynStore, principal: &str, role: Role) -> String {
    let principal = Principal::parse(principal).expect("principal");
    keys::create(store, &principal, role, &Actor::system("test")).await.expect("mint key").0
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// The stable error code of an error reply.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no error code>")
    }
}

/// The fencing token of a lock reply.
pub fn fencing_token(r: &Reply) -> i64 {
    r.body["fencing_token"].as_i64().unwrap_or_else(|| panic!("no fencing token in {}", r.body))
}

/// A fresh database on `backend` and an origin with a reaper in front of it; `None` where that database is
/// not configured.
pub async fn fresh(backend: Backend) -> Option<(TestDb, TestApp)> {
    let db = TestDb::new(backend).await?;
    let app = TestApp::spawn(&db).await;
    Some((db, app))
}

impl TestApp {
    pub async fn spawn(db: &TestDb) -> TestApp {
        Self::spawn_with(db, Some(Duration::from_millis(200))).await
    }

    /// `reaper`: the in-process reaper's interval, or `None` for no reaper.
    pub async fn spawn_with(db: &TestDb, reaper: Option<Duration>) -> TestApp {
        Self::spawn_at(db, reaper, 0).await
    }

    /// On a given port (0: any), as the edge tests need: the Worker was told where the origin will be.
    pub async fn spawn_at(db: &TestDb, reaper: Option<Duration>, port: u16) -> TestApp {
        Self::spawn_custom(db, port, |s| s.reaper = reaper.map(|i| (i, 100))).await
    }

    /// With the test settings adjusted by `adjust`.
    pub async fn spawn_custom(db: &TestDb, port: u16, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let store = db.store().await;
        let keys = Keys {
            admin: mint(&store, "hq", Role::Admin).await,
            client: mint(&store, "clinic-north", Role::Client).await,
            viewer: mint(&store, "observer", Role::Viewer).await,
        };
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let mut settings = test_settings();
        adjust(&mut settings);
        let running = spawn(listener, store.clone(), settings, CancellationToken::new()).expect("spawn origin");
        let url = format!("http://{}", running.addr);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", keys.admin).parse().expect("header"));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .default_headers(headers)
            .build()
            .expect("client");
        TestApp { url, client, store, keys, running, pg_url: db.pg_url().map(str::to_owned) }
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }

    /// The origin's `hhs_http_api_requests_total`.
    pub async fn api_requests_seen(&self) -> u64 {
        let text =
            self.client.get(format!("{}/metrics", self.url)).send().await.expect("metrics").text().await.expect("body");
        text.lines()
            .find_map(|l| l.strip_prefix("hhs_http_api_requests_total "))
            .and_then(|v| v.trim().parse().ok())
            .expect("hhs_http_api_requests_total in /metrics")
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request reaches the origin");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        // Error bodies must be JSON (`code()` fails loudly otherwise); NDJSON and the like come back as a string.
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Reply { status, body, headers }
    }

    pub async fn get(&self, path: &str) -> Reply {
        if reads_the_log(path) {
            self.settle_log().await;
        }
        self.send(self.client.get(format!("{}{path}", self.url))).await
    }

    /// Before a read of the event log (`GET /api/events`, the audit export): on PostgreSQL, waits until the commit
    /// horizon has passed every event committed so far. Every read of the log stops at the horizon, and other
    /// tests' transactions in the shared cluster hold it back a moment, so a test reading its own events at once
    /// could miss them (delayed, never lost).
    pub async fn settle_log(&self) {
        let Some(url) = &self.pg_url else { return };
        // A formation's multi-host URL: its primary is the one that is not in recovery.
        let mut conn = None;
        for one in hhs_origin::primary::targets(url).expect("a PostgreSQL URL") {
            if let Ok(mut c) = sqlx::PgConnection::connect(&one).await {
                if !sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()").fetch_one(&mut c).await.unwrap_or(true)
                {
                    conn = Some(c);
                    break;
                }
            }
        }
        let mut conn = conn.expect("connect to the primary to settle the log");
        let passed = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint > COALESCE((SELECT max(txid) FROM events), 0)";
        for _ in 0..500 {
            if sqlx::query_scalar::<_, bool>(passed).fetch_one(&mut conn).await.expect("horizon") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the commit horizon did not pass the log's newest event within 10 s");
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.post(format!("{}{path}", self.url)).json(&body)).await
    }

    /// A request with `key` instead of the admin key (`None`: no Authorization header at all).
    pub fn request_as(&self, method: reqwest::Method, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        // A fresh client: the shared one would add the admin key.
        let bare = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        let req = bare.request(method, format!("{}{path}", self.url));
        match key {
            Some(k) => req.header("authorization", format!("Bearer {k}")),
            None => req,
        }
    }

    pub async fn get_as(&self, key: &str, path: &str) -> Reply {
        if reads_the_log(path) {
            self.settle_log().await;
        }
        self.send(self.request_as(reqwest::Method::GET, path, Some(key))).await
    }

    pub async fn post_as(&self, key: &str, path: &str, body: Value) -> Reply {
        self.send(self.request_as(reqwest::Method::POST, path, Some(key)).json(&body)).await
    }

    pub async fn create_resource(&self, ty: &str, identifier: &str) -> String {
        let r = self.post("/api/resources", json!({"type": ty, "identifier": identifier})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().expect("id").to_owned()
    }

    pub async fn acquire(&self, resource_id: &str, owner: &str, ttl: u32) -> Reply {
        self.post("/api/locks/acquire", json!({"resource_id": resource_id, "owner_id": owner, "ttl_seconds": ttl}))
            .await
    }

    pub async fn heartbeat(&self, resource_id: &str, owner: &str) -> Reply {
        self.post("/api/locks/heartbeat", json!({"resource_id": resource_id, "owner_id": owner})).await
    }

    pub async fn release(&self, resource_id: &str, owner: &str) -> Reply {
        self.post("/api/locks/release", json!({"resource_id": resource_id, "owner_id": owner})).await
    }

    /// The event kinds recorded for a resource, oldest first.
    pub async fn event_kinds(&self, resource_id: &str) -> Vec<String> {
        let r = self.get(&format!("/api/events?resource_id={resource_id}&limit=1000")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["items"]
            .as_array()
            .expect("a page of events")
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

/// An open SSE stream, read event by event.
pub struct Sse {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Sse {
    /// Opens `req` (a GET of an event stream, with its key) as a stream.
    pub async fn open(req: reqwest::RequestBuilder, last_event_id: Option<i64>) -> Sse {
        let mut req = req.timeout(Duration::from_secs(3600));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.expect("stream");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        Sse { body: Box::pin(resp.bytes_stream()), buf: String::new() }
    }

    /// The next event (kind, data), or None after `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned());
                match (field("event:"), field("data:")) {
                    (Some(kind), Some(data)) => {
                        return Some((kind, serde_json::from_str(&data).unwrap_or(Value::Null)))
                    }
                    _ => continue, // keep-alive comments
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await.ok()??.ok()?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Whether the server ends the stream within `wait` (events meanwhile are skipped).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Skips events until one of `kind` for `resource` arrives.
    pub async fn until(&mut self, kind: &str, resource: &str, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (k, data) = self.next(left).await?;
            if k == kind && data["resource_id"] == resource {
                return Some(data);
            }
        }
    }
}

/// Writes `cases` as the leases of their resources, then runs the keepalive's one-statement renewal
/// (`sessions::RENEW_SESSION_HOLDS`) for session `s` at `now`, in this database's dialect; how many it renewed.
pub async fn renew_session_holds(
    db: &TestDb,
    cases: &[(uuid::Uuid, hhs_core::stored::StoredLease)],
    s: &hhs_core::session::Session,
    now: Millis,
) -> u64 {
    use hhs_origin::store::dialect::Dialect;
    use hhs_origin::store::rows::{arguments, lease_args, Arg};
    use hhs_origin::store::{sessions, sql_store};
    macro_rules! run {
        ($pool:expr, $db:ty) => {{
            let pool = $pool;
            for (rid, rec) in cases {
                let lease = rec.clone().into_lease(hhs_core::ResourceId(*rid)).expect("a valid case");
                let st = <$db as Dialect>::sql(sql_store::UPDATE_LEASE);
                sqlx::query_with(&st, arguments::<$db>(lease_args(&lease)).unwrap())
                    .execute(&pool)
                    .await
                    .expect("store a case");
            }
            let st = <$db as Dialect>::sql(sessions::RENEW_SESSION_HOLDS);
            let args = vec![
                Arg::Uuid(Some(s.id.0)),
                Arg::Int(Some(s.last_keepalive.0)),
                Arg::Int(Some(s.ttl.as_millis().0)),
                Arg::Int(Some(now.0)),
            ];
            sqlx::query_with(&st, arguments::<$db>(args).unwrap()).execute(&pool).await.expect("renew").rows_affected()
        }};
    }
    match db.backend {
        Backend::Postgres => run!(sqlx::PgPool::connect(db.pg_url().unwrap()).await.unwrap(), sqlx::Postgres),
        Backend::Sqlite => run!(
            sqlx::SqlitePool::connect(&format!("sqlite://{}", db.sqlite_path().unwrap().display())).await.unwrap(),
            sqlx::Sqlite
        ),
    }
}

/// A resource's lease as stored, read back through the store.
pub async fn stored_lease(db: &TestDb, rid: uuid::Uuid) -> hhs_core::stored::StoredLease {
    let (_, lease, _) = db.store().await.lease(hhs_core::ResourceId(rid)).await.expect("lease");
    hhs_core::stored::StoredLease::of(&lease)
}
