//! `knactor up APP_DIR`.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

use knactor::app::{App, AppConfig, AppOptions};
use knactor::reconciler::Registry;

#[derive(Debug, Args)]
pub(super) struct UpArgs {
    /// The app directory (holding app.yaml).
    app_dir: PathBuf,
    /// The exchange for the app's stores, overriding the manifest: `embedded`,
    /// redis://HOST:PORT[/DB], or kube[://?context=C&namespace=NS] for the Object stores.
    #[arg(long)]
    exchange: Option<String>,
    /// Where the HTTP API listens.
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: String,
    /// Runs only these knactors' reconcilers (comma-separated); all stores are still served.
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
    /// Runs none of the app's integrator specs (run them elsewhere with `knactor integrate`).
    #[arg(long)]
    no_integrators: bool,
    /// Pushes the Cast edges Redis can run down into it, to run inside the writes of their
    /// source (see docs/cli.md).
    #[arg(long)]
    pushdown: bool,
}

pub(super) async fn run(args: UpArgs, registry: Registry) -> anyhow::Result<()> {
    let config = AppConfig::load_for(&args.app_dir, args.exchange.as_deref())?;
    let options = AppOptions {
        exchange: args.exchange,
        only: args.only,
        no_integrators: args.no_integrators,
        pushdown: args.pushdown,
    };
    let app = App::open(config, options, &registry).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let address = listener.local_addr()?;
    let knactors = app.config().knactors.len();
    println!(
        "knactor: app `{}` ({knactors} knactors) serving on http://{address}",
        app.config().name()
    );
    std::io::stdout().flush()?;
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        on_signal.cancel();
    });
    app.run(listener, shutdown).await?;
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM.
pub(super) async fn wait_for_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
