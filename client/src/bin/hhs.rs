//! `hhs`: HHS from the shell. `hhs resources ls|add|rm`, `hhs locks ls`, `hhs keys ls|create|revoke` (tables, or
//! `--json`), `hhs watch` (the live event stream, a line per event), `hhs race --n 50 <resource>` (the seed's
//! concurrency test: N parallel acquires, a table of the answers), and:
//!
//! `hhs lock <resource-id> [--ttl 30s] [--wait 10s] -- <command…>` holds the resource while the command runs
//! (as `consul lock` does): the command gets `HHS_FENCING_TOKEN` and `HHS_RESOURCE_ID` in its environment; if the
//! hold is lost it gets SIGTERM, then SIGKILL after `--grace`; when it exits the hold is released and `hhs` exits
//! with its status. `HHS_URL` (the edge or an origin) and `HHS_KEY` say where and as whom; without `HHS_KEY`,
//! `.hhs/dev.env` (written by `cargo xtask dev`) is read, and its admin key used.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hhs_client::{Client, ClientError, Lease, Lost};

#[derive(Parser)]
#[command(name = "hhs", version, about = "HHS, the Hospital Hold System, from the shell")]
struct Cli {
    /// HHS's address: the edge (https://…) or an origin; default: `.hhs/dev.env`'s edge when its key is used,
    /// else http://127.0.0.1:8787.
    #[arg(long, env = "HHS_URL")]
    url: Option<String>,
    /// An API key (`hhs_<id>_<secret>`); default: `.hhs/dev.env`'s admin key.
    #[arg(long, env = "HHS_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Resources: list, add, remove.
    #[command(subcommand)]
    Resources(Resources),
    /// Locks: list every resource's lock.
    #[command(subcommand)]
    Locks(Locks),
    /// API keys (admin): list, create, revoke.
    #[command(subcommand)]
    Keys(Keys),
    /// Follows the live event stream, one line per event, until interrupted.
    Watch,
    /// N parallel acquires of one resource by N owners: exactly one should win.
    Race {
        resource: String,
        #[arg(long, default_value_t = 50)]
        n: usize,
    },
    /// Runs a command while holding a resource; releases when it exits, stops it if the hold is lost.
    Lock {
        /// The resource's id.
        resource: String,
        /// The hold's TTL (`30s`, `2m`, `500ms`, or seconds).
        #[arg(long, default_value = "30s", value_parser = duration)]
        ttl: Duration,
        /// How long to wait in the resource's queue while it is held (0: fail at once); served in arrival order.
        #[arg(long, default_value = "0s", value_parser = duration)]
        wait: Duration,
        /// How long the command has between SIGTERM and SIGKILL once the hold is lost.
        #[arg(long, default_value = "10s", value_parser = duration)]
        grace: Duration,
        /// The owner id (default: this host and process).
        #[arg(long)]
        owner: Option<String>,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Subcommand)]
enum Resources {
    Ls {
        #[arg(long = "type")]
        resource_type: Option<String>,
    },
    Add {
        #[arg(value_name = "TYPE")]
        resource_type: String,
        identifier: String,
    },
    Rm {
        id: String,
    },
    /// Sets a resource's operational status (HL7 table 0116: C closed, H housekeeping, I isolated,
    /// K contaminated, O occupied, U unoccupied — only U can be held). Admin or integration keys.
    Status {
        id: String,
        #[arg(value_name = "C|H|I|K|O|U")]
        status: String,
    },
}

#[derive(Subcommand)]
enum Locks {
    Ls,
}

#[derive(Subcommand)]
enum Keys {
    Ls,
    Create {
        #[arg(long)]
        principal: String,
        #[arg(long, default_value = "client")]
        role: String,
    },
    Revoke {
        id: String,
    },
}

/// `KEY=VALUE` lines of `.hhs/dev.env`, if there is one here.
fn dev_env(name: &str) -> Option<String> {
    let text = std::fs::read_to_string(".hhs/dev.env").ok()?;
    text.lines().find_map(|l| {
        l.trim().trim_start_matches("export ").strip_prefix(&format!("{name}=")).map(|v| v.trim_matches('"').to_owned())
    })
}

fn duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.trim().parse().map_err(|_| format!("{s:?} is not a duration (30s, 2m, 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit in {s:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // dev.env's address goes only with dev.env's key: a key of one's own is never sent to an address some folder's
    // file names.
    let (key, url) = match cli.key.clone() {
        Some(key) => (Some(key), cli.url.clone()),
        None => (dev_env("HHS_ADMIN_KEY"), cli.url.clone().or_else(|| dev_env("HHS_URL"))),
    };
    let Some(key) = key else {
        eprintln!("hhs: no key: set HHS_KEY (or run `cargo xtask dev`, which writes .hhs/dev.env)");
        return ExitCode::from(2);
    };
    let url = url.unwrap_or_else(|| "http://127.0.0.1:8787".to_owned());
    let client = Client::new(&url, &key);
    let result = match cli.command {
        Command::Lock { resource, ttl, wait, grace, owner, command } => {
            let owner = owner.unwrap_or_else(|| format!("hhs-cli-{}", std::process::id()));
            return lock(&client, &resource, &owner, ttl, wait, grace, &command).await;
        }
        Command::Resources(r) => commands::resources(&client, r, cli.json).await,
        Command::Locks(Locks::Ls) => commands::locks(&client, cli.json).await,
        Command::Keys(k) => commands::keys(&client, k, cli.json).await,
        Command::Watch => commands::watch(&client).await,
        Command::Race { resource, n } => commands::race(&client, &resource, n).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hhs: {e}");
            ExitCode::from(1)
        }
    }
}

#[path = "hhs/commands.rs"]
mod commands;

async fn lock(
    client: &Client,
    resource: &str,
    owner: &str,
    ttl: Duration,
    wait: Duration,
    grace: Duration,
    command: &[String],
) -> ExitCode {
    let guard = match Lease::acquire_waiting(client, resource, owner, ttl, wait).await {
        Ok(g) => g,
        Err(ClientError::Api { error, .. }) => {
            eprintln!("hhs: could not hold {resource}: {error}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("hhs: {e}");
            return ExitCode::from(2);
        }
    };
    let token = guard.fencing_token();
    eprintln!("hhs: holding {resource} (fencing token {token})");
    let mut child = match tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .env("HHS_FENCING_TOKEN", token.to_string())
        .env("HHS_RESOURCE_ID", resource)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hhs: could not start {}: {e}", command[0]);
            let _ = guard.release().await;
            return ExitCode::from(127);
        }
    };
    let status = tokio::select! {
        status = child.wait() => status,
        lost = guard.until_lost() => {
            match &lost {
                Lost::Refused(e) => eprintln!("hhs: the hold on {resource} is lost ({e}); stopping the command"),
                Lost::Unconfirmed => eprintln!("hhs: the hold on {resource} could not be renewed within its TTL; stopping the command"),
            }
            if let Some(pid) = child.id() {
                let _ = tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            }
            match tokio::time::timeout(grace, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            }
        }
    };
    if let Err(e) = guard.release().await {
        if e.code().is_none() {
            eprintln!("hhs: could not release {resource} ({e}); it expires by its TTL");
        }
    }
    match status {
        Ok(s) => match s.code() {
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => {
                use std::os::unix::process::ExitStatusExt;
                ExitCode::from(128u8.saturating_add(u8::try_from(s.signal().unwrap_or(1)).unwrap_or(1)))
            }
        },
        Err(e) => {
            eprintln!("hhs: {e}");
            ExitCode::from(1)
        }
    }
}
