//! Command line and environment: every flag has an `HHS_*` (or `DATABASE_URL`) variable and a sensible default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hhs_core::{Millis, Policy, TtlBounds};

#[derive(Debug, Parser)]
#[command(name = "hhs-origin", version, about = "HHS origin: exclusive, expiring holds on hospital resources")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format: human-readable `text` or one JSON object per line.
    #[arg(long, env = "HHS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

// Parsed once at start: a large `serve` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (applies migrations first, runs the reaper unless --no-reaper).
    Serve(ServeArgs),
    /// Apply database migrations and exit (run it as the schema's owner).
    Migrate(MigrateArgs),
    /// Run only the reaper (several may run against one database at once).
    Reaper(ReaperArgs),
    /// Manage API keys. `create` prints only the key on stdout.
    Keys(KeysArgs),
    /// GET /healthz once; exit 0 on a 200, 1 otherwise (the image's HEALTHCHECK: it has no curl).
    Healthcheck(HealthcheckArgs),
}

impl Command {
    /// The database flags of the commands that open the database.
    pub fn db_mut(&mut self) -> Option<&mut DbArgs> {
        match self {
            Command::Serve(a) => Some(&mut a.db),
            Command::Migrate(a) => Some(&mut a.db),
            Command::Reaper(a) => Some(&mut a.db),
            Command::Keys(a) => Some(&mut a.db),
            Command::Healthcheck(_) => None,
        }
    }
}

#[derive(Clone, Debug, Args)]
pub struct HealthcheckArgs {
    /// The URL to GET (plain http://). Without it: /healthz on --bind, a wildcard address asked on loopback.
    #[arg(long)]
    pub url: Option<String>,
    /// The address `serve` listens on (the same flag and variable as serve's, so the image's check follows it).
    #[arg(long, env = "HHS_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Mint a key; prints the key (shown only now) on stdout, details on stderr.
    Create {
        #[arg(long)]
        principal: String,
        /// viewer, client, integration (the HL7 feed: sets resources' status) or admin.
        #[arg(long)]
        role: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by its id; it stops working within 2 seconds everywhere (the key cache's lifetime).
    Revoke { key_id: String },
}

// `global`: `hhs-origin keys create --sqlite-path F` reads as well as `keys --sqlite-path F create`.
#[derive(Clone, Debug, Args)]
pub struct DbArgs {
    /// PostgreSQL URL. Without it the origin uses the embedded SQLite file at --sqlite-path.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// A file whose content is the PostgreSQL URL (systemd's LoadCredential, a mounted secret), read at start:
    /// the password stays out of the environment and `ps`. Not together with DATABASE_URL.
    #[arg(long, env = "DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
    /// The embedded database file, used when no DATABASE_URL is given.
    #[arg(long, env = "HHS_SQLITE_PATH", default_value = "hhs.db", global = true)]
    pub sqlite_path: PathBuf,
    #[arg(long, env = "HHS_DB_POOL_MIN", default_value_t = 2, global = true)]
    pub pool_min: u32,
    #[arg(long, env = "HHS_DB_POOL_MAX", default_value_t = 10, global = true)]
    pub pool_max: u32,
}

impl DbArgs {
    /// Reads --database-url-file into `database_url` (once, before the database opens).
    pub fn read_url_file(&mut self) -> Result<(), String> {
        let Some(path) = &self.database_url_file else { return Ok(()) };
        if self.database_url.is_some() {
            return Err("give DATABASE_URL or DATABASE_URL_FILE, not both".into());
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("DATABASE_URL_FILE {}: {e}", path.display()))?;
        // Editors and `echo` end the file with a newline; a URL never ends in whitespace.
        let url = text.trim();
        if url.is_empty() {
            return Err(format!("DATABASE_URL_FILE {} is empty", path.display()));
        }
        self.database_url = Some(url.to_owned());
        Ok(())
    }
}

#[derive(Clone, Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// PostgreSQL: also grant this (existing) role what `serve` and `reaper` need and no more — on `events` only
    /// SELECT and INSERT — so the service cannot rewrite the audit trail or drop its triggers. Run `serve` as it.
    #[arg(long, value_name = "ROLE")]
    pub grant_to: Option<String>,
}

/// Seeds for resource types' policy rows: a type made by a resource of a new type, or left unset by the
/// migration that brought types, starts with these. A row once set is the policy, whatever these say (change it
/// with `PUT /api/types/{name}`); a replica whose flags differ says so at start-up.
#[derive(Clone, Debug, Args)]
pub struct PolicyArgs {
    /// Shortest TTL a client may ask for, in seconds.
    #[arg(long, env = "HHS_MIN_TTL", default_value_t = 5)]
    pub min_ttl: u32,
    /// Longest TTL a client may ask for, in seconds.
    #[arg(long, env = "HHS_MAX_TTL", default_value_t = 86_400)]
    pub max_ttl: u32,
    /// The TTL of an acquire without ttl_seconds while the TTL model has too little history, in seconds.
    #[arg(long, env = "HHS_DEFAULT_TTL", default_value_t = 300)]
    pub default_ttl: u32,
    /// Lock-delay per resource type after an expiry or force-release, as TYPE=SECONDS (repeat, or comma-separate
    /// in HHS_LOCK_DELAYS). Types not listed have none.
    #[arg(long = "lock-delay", env = "HHS_LOCK_DELAYS", value_delimiter = ',', value_parser = parse_lock_delay)]
    pub lock_delays: Vec<(String, u32)>,
}

fn parse_lock_delay(s: &str) -> Result<(String, u32), String> {
    let (ty, secs) = s.split_once('=').ok_or_else(|| format!("expected TYPE=SECONDS, got {s:?}"))?;
    let ty = hhs_core::ResourceType::parse(ty.trim()).map_err(|e| e.message)?;
    let secs = secs.trim().parse().map_err(|_| format!("lock-delay seconds must be a whole number, got {secs:?}"))?;
    Ok((ty.as_str().to_owned(), secs))
}

impl PolicyArgs {
    pub fn policy(&self) -> Result<Policy, String> {
        if self.min_ttl == 0 || self.min_ttl > self.max_ttl {
            return Err(format!(
                "--min-ttl ({}) must be at least 1 and at most --max-ttl ({})",
                self.min_ttl, self.max_ttl
            ));
        }
        if !(self.min_ttl..=self.max_ttl).contains(&self.default_ttl) {
            return Err(format!("--default-ttl ({}) must lie within --min-ttl and --max-ttl", self.default_ttl));
        }
        Ok(Policy {
            ttl_bounds: TtlBounds { min_seconds: self.min_ttl, max_seconds: self.max_ttl },
            default_ttl_seconds: self.default_ttl,
            lock_delays: self.lock_delays.iter().map(|(t, s)| (t.clone(), Millis::from_secs(i64::from(*s)))).collect(),
        })
    }
}

#[derive(Clone, Debug, Args)]
pub struct ReaperTiming {
    /// Seconds between reaper passes (fractions allowed).
    #[arg(long = "reaper-interval", env = "HHS_REAPER_INTERVAL", default_value_t = 5.0, value_parser = parse_interval)]
    pub interval_secs: f64,
    /// Candidates the reaper reads per page (each is decided in its own transaction).
    #[arg(long = "reaper-batch", env = "HHS_REAPER_BATCH", default_value_t = 500)]
    pub batch: u32,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.01..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!("expected seconds between 0.01 and 3600, got {s:?}")),
    }
}

impl ReaperTiming {
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.interval_secs)
    }
}

#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HHS_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub reaper: ReaperTiming,
    /// Do not run the in-process reaper (when `hhs-origin reaper` runs separately).
    #[arg(long, env = "HHS_NO_REAPER")]
    pub no_reaper: bool,
    /// Local demos only: check no API keys (every caller is an admin). Refuses a non-loopback --bind.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Browser origins allowed to call the API cross-origin (repeat, or comma-separate in HHS_CORS_ORIGINS).
    #[arg(long = "cors-origin", env = "HHS_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// The dashboard build served at /dashboard/ (if it holds an index.html).
    #[arg(long, env = "HHS_DASHBOARD_DIR", default_value = "ui/dist")]
    pub dashboard_dir: std::path::PathBuf,
    /// Also take HL7 v2 messages over MLLP on this address (e.g. 127.0.0.1:2575). Off loopback it requires TLS
    /// with client certificates (--mllp-tls-cert, --mllp-tls-key, --mllp-client-ca, --mllp-client).
    #[arg(long, env = "HHS_MLLP")]
    pub mllp: Option<SocketAddr>,
    /// The MLLP listener's TLS certificate chain (PEM).
    #[arg(long, env = "HHS_MLLP_TLS_CERT")]
    pub mllp_tls_cert: Option<PathBuf>,
    /// The MLLP listener's TLS private key (PEM).
    #[arg(long, env = "HHS_MLLP_TLS_KEY")]
    pub mllp_tls_key: Option<PathBuf>,
    /// The CAs whose client certificates the MLLP listener trusts (PEM bundle); a client without one is refused.
    #[arg(long, env = "HHS_MLLP_CLIENT_CA")]
    pub mllp_client_ca: Option<PathBuf>,
    /// A client certificate's principal, as NAME=PRINCIPAL: NAME its subject CN or a DNS/URI subject alternative
    /// name (repeat, or comma-separate in HHS_MLLP_CLIENTS). A certificate mapped to none is refused.
    #[arg(long = "mllp-client", env = "HHS_MLLP_CLIENTS", value_delimiter = ',')]
    pub mllp_clients: Vec<String>,
    /// The principal plain (loopback, no TLS) MLLP connections' messages are attributed to.
    #[arg(long, env = "HHS_MLLP_PLAIN_PRINCIPAL", default_value = hhs_core::mllp::DEFAULT_PLAIN_PRINCIPAL)]
    pub mllp_plain_principal: String,
    /// Most MLLP connections served at once.
    #[arg(long, env = "HHS_MLLP_MAX_CONNECTIONS", default_value_t = 32)]
    pub mllp_max_connections: usize,
    /// Seconds an MLLP connection may stay silent (or take for its TLS handshake) before it is closed.
    #[arg(long, env = "HHS_MLLP_IDLE_TIMEOUT", default_value_t = 300)]
    pub mllp_idle_timeout: u64,
    /// Seconds an HL7 message applied is remembered, so its repeat gets the same ACK and is not applied again.
    #[arg(long, env = "HHS_HL7_REPEAT_WINDOW", default_value_t = 604_800, value_parser = clap::value_parser!(u32).range(1..))]
    pub hl7_repeat_window: u32,
    /// The resource type of beds that HL7 messages name.
    #[arg(long, env = "HHS_HL7_BED_TYPE", default_value = "bed")]
    pub hl7_bed_type: String,
    /// How a bed's identifier is made of its HL7 location (`{1}` point of care, `{2}` room, `{3}` bed), e.g.
    /// `{1}-{2}-{3}`; without it, the components as sent joined by `^` (`4W^401^A`).
    #[arg(long, env = "HHS_HL7_BED_IDENTIFIER")]
    pub hl7_bed_identifier: Option<String>,
}

#[derive(Clone, Debug, Args)]
pub struct ReaperArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub reaper: ReaperTiming,
    /// One pass, then exit.
    #[arg(long)]
    pub once: bool,
}

impl ServeArgs {
    /// The MLLP listener's flags.
    pub fn mllp_args(&self) -> crate::hl7::MllpArgs {
        crate::hl7::MllpArgs {
            cert: self.mllp_tls_cert.clone(),
            key: self.mllp_tls_key.clone(),
            client_ca: self.mllp_client_ca.clone(),
            clients: self.mllp_clients.clone(),
            plain_principal: Some(self.mllp_plain_principal.clone()),
            max_connections: self.mllp_max_connections,
            idle: Duration::from_secs(self.mllp_idle_timeout.max(1)),
        }
    }
}
