use clap::Parser;
use hhs_origin::config::{Cli, Command};
use hhs_origin::{reaper, server, telemetry};
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

async fn run(command: Command) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Serve(args) => server::serve(args).await,
        Command::Migrate(db) => {
            let store = server::open_store(&db).await?;
            store.migrate().await?;
            tracing::info!(store = store.kind(), "migrations applied");
            Ok(())
        }
        Command::Reaper(args) => {
            let policy = args.policy.policy()?;
            let store = server::open_store(&args.db).await?;
            store.migrate().await?;
            if args.once {
                let n = reaper::reap_all(&store, &policy, args.reaper.batch).await?;
                tracing::info!(expired = n, "reaper pass done");
                return Ok(());
            }
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(reaper::run(store, policy, args.reaper.interval(), args.reaper.batch, shutdown.clone()));
            tracing::info!("reaper running");
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            task.await?;
            Ok(())
        }
    }
}
