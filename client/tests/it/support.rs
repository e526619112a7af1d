//! A real origin for the client's tests: `hhs_origin::server::spawn` on a fresh SQLite file, with 1-second
//! minimum TTLs, and keys of each role.

use std::sync::Arc;
use std::time::Duration;

use hhs_core::{Millis, Policy, Principal, Role, TtlBounds};
use hhs_origin::server::{spawn, Running, Settings};
use hhs_origin::store::{Actor, DynStore, SqliteStore};
use serde_json::{json, Value};

pub struct Origin {
    pub url: String,
    pub admin: String,
    pub client: String,
    _dir: tempfile::TempDir,
    running: Running,
}

impl Origin {
    pub async fn start() -> Origin {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(SqliteStore::open(&dir.path().join("hhs.db"), 4).await.unwrap());
        store.migrate().await.unwrap();
        let mint = |p: &str, role| {
            let store = store.clone();
            let p = Principal::parse(p).unwrap();
            async move { hhs_origin::keys::create(&store, &p, role, &Actor::system("test")).await.unwrap().0 }
        };
        let (admin, client) = (mint("hq", Role::Admin).await, mint("clinic-north", Role::Client).await);
        let settings = Settings {
            policy: Policy {
                ttl_bounds: TtlBounds { min_seconds: 1, max_seconds: 3_600 },
                default_ttl_seconds: 30,
                lock_delays: Default::default(),
            },
            cors_origins: vec![],
            reaper: Some((Duration::from_millis(200), 100)),
            insecure_no_auth: false,
            model_refresh: Duration::from_secs(60),
            event_poll: Duration::from_millis(200),
            dashboard_dir: None,
            stream_key_check: Duration::from_secs(10),
            hl7: Default::default(),
            hl7_repeat_window: hhs_core::hl7::DEFAULT_REPEAT_WINDOW,
        };
        hhs_origin::server::seed_types(&store, &settings.policy).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = spawn(listener, store, settings, tokio_util::sync::CancellationToken::new()).unwrap();
        let _ = Millis::ZERO;
        Origin { url: format!("http://{}", running.addr), admin, client, _dir: dir, running }
    }

    /// Creates a bed; its id.
    pub async fn bed(&self, name: &str) -> String {
        let body =
            self.send("POST", "/api/resources", &self.admin, Some(json!({"type": "bed", "identifier": name}))).await;
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn send(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Value {
        let req =
            reqwest::Client::new().request(method.parse().unwrap(), format!("{}{path}", self.url)).bearer_auth(key);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        req.send().await.unwrap().json().await.unwrap()
    }

    pub async fn lock(&self, id: &str) -> Value {
        self.send("GET", &format!("/api/locks/{id}"), &self.admin, None).await
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }
}
