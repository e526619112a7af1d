use clap::Parser;
use hhs_origin::config::{Cli, Command, KeysArgs, KeysCommand};
use hhs_origin::store::Actor;
use hhs_origin::{healthcheck, keys, reaper, server, telemetry};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    if let Err(e) = run(cli.command).await {
        tracing::error!(error = %e, "hhs-origin failed");
        eprintln!("hhs-origin: {e}");
        std::process::exit(1);
    }
}

async fn run(mut command: Command) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(db) = command.db_mut() {
        db.read_url_file()?;
    }
    match command {
        Command::Healthcheck(args) => {
            let url = args.url.unwrap_or_else(|| healthcheck::url_for_bind(args.bind));
            let status = healthcheck::check(&url, std::time::Duration::from_secs(args.timeout.max(1)))?;
            println!("{url}: {status}");
            Ok(())
        }
        Command::Serve(args) => server::serve(args).await,
        Command::Migrate(args) => {
            let store = server::open_store(&args.db).await?;
            store.migrate().await?;
            tracing::info!(store = store.kind(), "migrations applied");
            if let Some(role) = &args.grant_to {
                let url = args.db.database_url.as_deref().ok_or("--grant-to needs PostgreSQL (DATABASE_URL)")?;
                hhs_origin::service_role::limit_privileges(url, role).await?;
                tracing::info!(role = %role, "service role granted");
            }
            Ok(())
        }
        Command::Keys(args) => keys_command(args).await,
        Command::Reaper(args) => {
            let store = server::open_store(&args.db).await?;
            store.migrate().await?;
            if args.once {
                let n = reaper::reap_all(&store, args.reaper.batch).await?;
                tracing::info!(expired = n, "reaper pass done");
                return Ok(());
            }
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(reaper::run(store, args.reaper.interval(), args.reaper.batch, shutdown.clone()));
            tracing::info!("reaper running");
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            task.await?;
            Ok(())
        }
    }
}

/// `hhs-origin keys …`: stdout carries only what a script captures (the new key, or the list); the rest is stderr.
async fn keys_command(args: KeysArgs) -> Result<(), Box<dyn std::error::Error>> {
    // A key minted into a new file of its own would be one the running server has never heard of.
    if args.db.database_url.is_none() && !args.db.sqlite_path.exists() {
        return Err(format!(
            "no database at {}: give the file `serve` uses with --sqlite-path (or HHS_SQLITE_PATH), or DATABASE_URL; \
             `hhs-origin migrate` makes a new one",
            args.db.sqlite_path.display()
        )
        .into());
    }
    let store = server::open_store(&args.db).await?;
    store.migrate().await?;
    let actor = Actor::system("cli");
    match args.command {
        KeysCommand::Create { principal, role } => {
            let principal = hhs_core::Principal::for_key(&principal).map_err(|e| e.message)?;
            let role = hhs_core::Role::parse(&role).ok_or("role must be viewer, client, admin or integration")?;
            let (key, record) = keys::create(&store, &principal, role, &actor).await?;
            eprintln!(
                "created key {} for principal {} with role {} (shown once; store it now)",
                record.id,
                record.principal,
                record.role.as_str()
            );
            println!("{key}");
        }
        KeysCommand::List => {
            println!("{:<14} {:<24} {:<8} {:<26} revoked", "id", "principal", "role", "created");
            for k in store.keys().await? {
                let at = |ms: i64| hhs_core::Millis(ms).to_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                println!(
                    "{:<14} {:<24} {:<8} {:<26} {}",
                    k.id,
                    k.principal,
                    k.role.as_str(),
                    at(k.created_at_ms),
                    k.revoked_at_ms.map(at).unwrap_or_else(|| "-".into())
                );
            }
        }
        KeysCommand::Revoke { key_id } => {
            let k = store.revoke_key(&key_id, &actor).await.map_err(|e| match e {
                hhs_origin::store::StoreError::NotFound => format!("no key with id {key_id}"),
                e => e.to_string(),
            })?;
            eprintln!("revoked key {} of principal {}", k.id, k.principal);
        }
    }
    Ok(())
}
