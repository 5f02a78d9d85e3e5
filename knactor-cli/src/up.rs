//! `knactor up APP_DIR`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;

use knactor::api::{self, Access};
use knactor::app::{App, AppConfig, AppOptions, Schemas};
use knactor::reconciler::Registry;
use knactor::specs::counted;

use crate::credentials::ServerRecords;
use crate::traces::TraceArgs;

#[derive(Debug, Args)]
pub(super) struct UpArgs {
    /// The app directory (holding app.yaml).
    app_dir: PathBuf,
    /// The exchange for the app's stores, overriding the manifest: `embedded`,
    /// redis://HOST:PORT[/DB], or kube[://?context=C&namespace=NS] for the Object stores.
    #[arg(long)]
    exchange: Option<String>,
    /// Where the HTTP API listens. An address other than loopback needs --tls-cert and
    /// --tls-key, or --insecure.
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: String,
    /// Also answers requests naming this host (`Host` header), besides localhost and the
    /// listen address (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    allowed_host: Vec<String>,
    /// The server's TLS certificate chain (PEM): serves HTTPS.
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Serves plain HTTP on an address other than loopback: tokens and data then cross the
    /// network in clear.
    #[arg(long, conflicts_with = "tls_cert")]
    insecure: bool,
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
    /// Makes the exchange hold the manifest's schemas where it holds others (once every
    /// stored object fits them), instead of refusing to start.
    #[arg(long)]
    evolve_schemas: bool,
    /// Keeps every object and record: the stores' retention policies are off (to debug, or
    /// to compare with).
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    traces: TraceArgs,
}

pub(super) async fn run(args: UpArgs, registry: Registry) -> anyhow::Result<()> {
    let config = AppConfig::load_for(&args.app_dir, args.exchange.as_deref())?;
    let traces = args.traces.export()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(api::server_config(cert, key)?),
        _ => None,
    };
    // Refuse a plain-HTTP address other than loopback before anything is opened or created.
    let cannot_listen =
        |e: std::io::Error| anyhow::anyhow!("cannot listen on {}: {e}", args.listen);
    let addresses: Vec<_> =
        tokio::net::lookup_host(&args.listen).await.map_err(cannot_listen)?.collect();
    if tls.is_none() && addresses.iter().any(|a| !a.ip().is_loopback()) {
        if !args.insecure {
            anyhow::bail!(
                "refusing to serve the API on {} over plain HTTP: an address other than loopback reaches the network; pass --tls-cert FILE --tls-key FILE, or --insecure to serve plain HTTP anyway",
                args.listen
            );
        }
        eprintln!(
            "warning: serving the API on {} over plain HTTP (--insecure): tokens and data cross the network in clear",
            args.listen
        );
    }
    let tokens = config.tokens()?;
    let token_dir = config.token_dir();
    let options = AppOptions {
        exchange: args.exchange,
        only: args.only,
        no_integrators: args.no_integrators,
        pushdown: args.pushdown,
        schemas: if args.evolve_schemas { Schemas::Evolve } else { Schemas::Held },
        keep: args.keep,
    };
    let app = App::open(config, options, &registry).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await.map_err(cannot_listen)?;
    let address = listener.local_addr()?;
    tracing::info!(dir = %token_dir.display(), "API tokens (0600): operator, viewer, knactor-NAME, integrator-SPEC (and Redis passwords in redis/)");
    let mut access = Access::new(tokens, address).allow_hosts(args.allowed_host);
    if let Some(tls) = tls {
        access = access.with_tls(tls);
    }
    let url = format!("{}://{address}", access.scheme());
    record_operator_token(&url, address, access.scheme(), &token_dir.join("operator"));
    let knactors = counted(app.config().knactors.len(), "knactor");
    println!("knactor: app `{}` ({knactors}) serving on {url}", app.config().name());
    std::io::stdout().flush()?;
    tracing::info!("web console at {url}/ui (sign in with a token of {})", token_dir.display());
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        on_signal.cancel();
    });
    let ran = app.run(listener, access, shutdown).await;
    if let Some(traces) = traces {
        traces.finish().await;
    }
    Ok(ran?)
}

/// Records, for the CLI of this user, that the server at `url` (and at the loopback names of
/// `address`) takes the operator token in `token_file`. A failure is only a warning: the CLI
/// then needs KNACTOR_TOKEN or --token-file.
fn record_operator_token(
    url: &str,
    address: std::net::SocketAddr,
    scheme: &str,
    token_file: &std::path::Path,
) {
    let Some(records) = ServerRecords::for_user() else {
        tracing::warn!(
            "neither XDG_CONFIG_HOME nor HOME is set: the CLI will not find the operator token by itself"
        );
        return;
    };
    let mut urls = vec![url.to_owned()];
    if address.ip().is_loopback() || address.ip().is_unspecified() {
        let port = address.port();
        urls.extend([
            format!("{scheme}://127.0.0.1:{port}"),
            format!("{scheme}://localhost:{port}"),
        ]);
        urls.dedup();
    }
    for url in urls {
        if let Err(e) = records
            .record(&url, token_file)
            .context("the CLI will not find the operator token by itself")
        {
            tracing::warn!("{e:#}");
        }
    }
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
