//! Wiring: open the store, migrate, start the reaper and the HTTP server, stop both gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use hhs_core::Policy;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{DbArgs, ServeArgs};
use crate::http::auth::Authenticator;
use crate::http::metrics::Metrics;
use crate::http::{router, AppState};
use crate::reaper;
use crate::store::{Actor, DynStore, StoreError};
use crate::store::{PgStore, SqliteStore};
use crate::stream::EventHub;
use crate::ttl_model::ModelCache;

/// PostgreSQL when a URL is given, else the embedded SQLite file. The URL is never logged (it may hold a password).
pub async fn open_store(db: &DbArgs) -> Result<DynStore, StoreError> {
    let store: DynStore = match &db.database_url {
        Some(url) => Arc::new(PgStore::connect(url, db.pool_min, db.pool_max).await?),
        None => Arc::new(SqliteStore::open(&db.sqlite_path, db.pool_max).await?),
    };
    tracing::info!(store = store.kind(), "database connected");
    // Whether an acknowledged commit survives the loss of this server: said once at start, and on /healthz.
    match store.replication().await {
        Ok(Some(r)) if r.synchronous => tracing::info!(
            server = r.server.as_deref().unwrap_or(""), synchronous_standby_names = %r.synchronous_standby_names, synchronous_commit = %r.synchronous_commit,
            sync_standbys = ?r.sync_standbys, "PostgreSQL commits wait for a synchronous standby"),
        Ok(Some(r)) => tracing::warn!(
            server = r.server.as_deref().unwrap_or(""), synchronous_commit = %r.synchronous_commit,
            "PostgreSQL runs without a synchronous standby: a grant acknowledged just before this server is lost may be lost with it (docs/operations.md, \"Running HHS in production\")"),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the database's replication settings"),
    }
    Ok(store)
}

/// Everything `serve` runs, with the knobs tests turn.
#[derive(Clone)]
pub struct Settings {
    pub policy: Policy,
    pub cors_origins: Vec<String>,
    /// `None`: no in-process reaper.
    pub reaper: Option<(std::time::Duration, u32)>,
    /// `--insecure-no-auth`: no keys; every caller is an admin (loopback only).
    pub insecure_no_auth: bool,
    /// How often the TTL model reads new finished holds from the event log.
    pub model_refresh: std::time::Duration,
    /// The event stream's fallback poll, for changes no notification announced.
    pub event_poll: std::time::Duration,
    /// A dashboard build (`index.html` and its files) to serve at `/dashboard/`.
    pub dashboard_dir: Option<std::path::PathBuf>,
    /// How often an open event stream re-checks its key; a revoked key's stream ends.
    pub stream_key_check: std::time::Duration,
    /// Which resources HL7 messages' beds are.
    pub hl7: hhs_core::hl7::BedMapping,
    /// How long an HL7 message applied is remembered for its repeats.
    pub hl7_repeat_window: hhs_core::Millis,
}

impl Settings {
    /// What HL7 messages are read with.
    pub fn hl7_config(&self) -> crate::hl7::Hl7Config {
        crate::hl7::Hl7Config { mapping: self.hl7.clone(), window: self.hl7_repeat_window }
    }
}

/// The dashboard directory if it holds a build; says so either way.
fn dashboard_dir(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    if dir.join("index.html").is_file() {
        tracing::info!(dir = %dir.display(), "serving the dashboard at /dashboard/");
        Some(dir.to_path_buf())
    } else {
        tracing::info!(dir = %dir.display(), "no dashboard build there (cargo xtask dev builds one); /dashboard/ is not served");
        None
    }
}

/// A running origin.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, stops the reaper.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Starts the API (and the reaper) on `listener`; runs until `shutdown` is cancelled.
pub fn spawn(
    listener: TcpListener,
    store: DynStore,
    settings: Settings,
    shutdown: CancellationToken,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let auth = Arc::new(Authenticator::new(store.clone(), settings.insecure_no_auth));
    let model = Arc::new(ModelCache::default());
    let metrics = Arc::new(Metrics::default());
    let hub = Arc::new(EventHub::new(metrics.clone()));
    let state = AppState {
        store: store.clone(),
        policy: Arc::new(settings.policy.clone()),
        auth,
        metrics,
        model: model.clone(),
        hub: hub.clone(),
        shutdown: shutdown.clone(),
        stream_key_check: settings.stream_key_check,
        hl7: Arc::new(settings.hl7_config()),
    };
    let app = router(state, &settings.cors_origins, settings.dashboard_dir.as_deref());
    let reaper = settings
        .reaper
        .map(|(interval, batch)| tokio::spawn(reaper::run(store.clone(), interval, batch, shutdown.clone())));
    let learner = {
        let (store, shutdown, interval) = (store.clone(), shutdown.clone(), settings.model_refresh);
        tokio::spawn(async move { model.run(store, interval, shutdown).await })
    };
    let pump = {
        let (store, shutdown, poll) = (store.clone(), shutdown.clone(), settings.event_poll);
        tokio::spawn(async move { hub.run(store, poll, shutdown).await })
    };
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "http server failed");
        }
        if let Some(r) = reaper {
            let _ = r.await;
        }
        let _ = learner.await;
        let _ = pump.await;
    });
    Ok(Running { addr, shutdown, task })
}

/// Fills resource types nobody has set from this process's flags (the first start after an upgrade keeps the
/// deployment's behaviour), and says where a stored type's policy differs from the flags: the row applies.
pub async fn seed_types(store: &DynStore, policy: &Policy) -> Result<(), StoreError> {
    for row in store.seed_types(policy, &Actor::system("seed")).await? {
        tracing::info!(resource_type = row.name.as_str(), "resource type seeded from this process's flags");
    }
    for row in store.types().await? {
        if policy.lock_delays.contains_key(row.name.as_str()) && row.policy != policy.for_type(row.name.as_str()) {
            tracing::warn!(
                resource_type = row.name.as_str(),
                "the stored policy of this type differs from this process's flags; the stored one applies (PUT /api/types/{{name}} changes it)"
            );
        }
    }
    Ok(())
}

/// `hhs-origin serve`.
pub async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let policy = args.policy.policy()?;
    // Before anything opens: a listener that may not start stops the process with how to fix it.
    let mllp = match args.mllp {
        Some(addr) => Some((addr, Arc::new(crate::hl7::MllpConfig::new(addr, &args.mllp_args())?))),
        None => None,
    };
    if args.insecure_no_auth {
        if !args.bind.ip().is_loopback() {
            return Err(format!(
                "--insecure-no-auth refuses to listen on {}: bind a loopback address (127.0.0.1)",
                args.bind
            )
            .into());
        }
        tracing::warn!(
            "!!! --insecure-no-auth: NO API KEYS ARE CHECKED; every caller is an admin. For local demos only. !!!"
        );
    }
    let store = open_store(&args.db).await?;
    store.migrate().await?;
    seed_types(&store, &policy).await?;
    let listener = TcpListener::bind(args.bind).await?;
    let settings = Settings {
        policy,
        cors_origins: args.cors_origins.clone(),
        reaper: (!args.no_reaper).then(|| (args.reaper.interval(), args.reaper.batch)),
        insecure_no_auth: args.insecure_no_auth,
        model_refresh: std::time::Duration::from_secs(10),
        event_poll: std::time::Duration::from_millis(250),
        dashboard_dir: dashboard_dir(&args.dashboard_dir),
        stream_key_check: std::time::Duration::from_secs(10),
        hl7: hhs_core::hl7::BedMapping {
            resource_type: args.hl7_bed_type.clone(),
            template: args.hl7_bed_identifier.clone(),
        },
        hl7_repeat_window: hhs_core::Millis::from_secs(i64::from(args.hl7_repeat_window)),
    };
    let shutdown = CancellationToken::new();
    // Heard from before anything serves: a supervisor may signal as soon as a port answers or the "listening"
    // line is logged, and a failure to register leaves nothing started to cut short.
    let stop = shutdown_signal()?;
    if let Some((addr, config)) = mllp {
        let listener = TcpListener::bind(addr).await?;
        let tls = matches!(config.transport, crate::hl7::MllpTransport::Tls { .. });
        tracing::info!(addr = %addr, tls, "taking HL7 v2 over MLLP");
        tokio::spawn(crate::hl7::serve_mllp(
            listener,
            store.clone(),
            Arc::new(settings.hl7_config()),
            config,
            shutdown.clone(),
        ));
    }
    let running = spawn(listener, store, settings, shutdown.clone())?;
    tracing::info!(url = %format!("http://{}", running.addr), "hhs-origin listening");
    stop.await;
    tracing::info!("shutting down: finishing in-flight requests");
    running.stop().await;
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM, both registered by the time this returns (a signal sent before then would end the
/// process at once instead of gracefully).
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut int, mut term) = (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?);
    Ok(async move {
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
