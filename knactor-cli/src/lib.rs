//! The `knactor` command line (DESIGN §9): the binary's commands, the HTTP [`client`] they
//! talk to a running app with, the example apps' [`demo`]s and the [`bench`]marks.
//!
//! Start with [`main`], which parses the command line and dispatches to one module per group
//! of commands. Reconcilers and the runtime live in the `knactor` crate: this crate only
//! drives them, so an app author who depends on `knactor` builds none of it.
//!
//! Layout:
//! - `up`: `knactor up`, an app in this process.
//! - `deploy`: `knactor deploy`, the manifests that run an app on Kubernetes.
//! - `objects`, `logs`, `specs`: `get`/`put`/`patch`/`delete`, `log`/`query`, and
//!   `check`/`apply`/`graph`/`integrate`; `output` prints objects as tables, YAML or JSON.
//! - [`client`]: the HTTP API's client; [`credentials`]: how it finds its token.
//! - [`demo`]: `knactor demo`, the example apps driven by simulated users or devices.
//! - [`bench`]: `knactor bench`, the figures of docs/BENCHMARKS.md.

pub mod bench;
pub mod client;
pub mod credentials;
pub mod demo;
mod deploy;
mod logs;
mod objects;
mod output;
mod specs;
mod tap;
mod top;
mod traces;
mod up;
mod why;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use knactor::Registry;

use crate::demo::{DemoOptions, Demos};

/// Runs a data-centric app, inspects and changes its stores, and applies integrator specs.
#[derive(Debug, Parser)]
#[command(
    name = "knactor",
    version,
    after_help = "The commands that talk to a running app (get, put, patch, delete, log, query, tap, top, why, apply, diff, promote, version) take --server URL (or KNACTOR_SERVER; default http://127.0.0.1:7700) after the command. See docs/cli.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How a command reaches the running app's API (only the commands that talk to it take these).
#[derive(Debug, clap::Args)]
struct Server {
    /// The API of the running app (`knactor up`).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "KNACTOR_SERVER",
        default_value = "http://127.0.0.1:7700"
    )]
    server: String,
    /// A file holding the token to send (else $KNACTOR_TOKEN, else the operator token of the
    /// app `knactor up` serves at --server, found by itself).
    #[arg(long, global = true, value_name = "FILE", env = "KNACTOR_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    /// For an https:// server: trust the certificate authorities in this PEM file (e.g. the
    /// server's self-signed certificate) instead of the system's.
    #[arg(long, global = true, value_name = "FILE", env = "KNACTOR_CA_CERT")]
    ca_cert: Option<std::path::PathBuf>,
}

impl Server {
    /// A client of the server, with the token found for it.
    fn client(&self) -> anyhow::Result<client::Client> {
        anyhow::ensure!(
            self.server.contains("://"),
            "--server `{0}` names no scheme: write http://{0} (or https://)",
            self.server
        );
        let token = credentials::find_token(&self.server, self.token_file.as_deref())?;
        let client = client::Client::new(&self.server).with_token(token);
        let Some(path) = &self.ca_cert else { return Ok(client) };
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read --ca-cert {}: {e}", path.display()))?;
        client.trusting(&pem).map_err(|e| anyhow::anyhow!("--ca-cert {}: {e}", path.display()))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs an app: its knactors on its exchange, and the HTTP API.
    Up(up::UpArgs),
    /// Prints the app's stores, a store's objects, or some of them.
    Get {
        #[command(flatten)]
        args: objects::GetArgs,
        #[command(flatten)]
        server: Server,
    },
    /// Creates or replaces an object from a YAML or JSON file.
    Put {
        #[command(flatten)]
        args: objects::PutArgs,
        #[command(flatten)]
        server: Server,
    },
    /// Merge-patches an object's data.
    Patch {
        #[command(flatten)]
        args: objects::PatchArgs,
        #[command(flatten)]
        server: Server,
    },
    /// Deletes an object, or stops a running spec (`delete spec NAME`).
    Delete {
        #[command(flatten)]
        args: objects::DeleteArgs,
        #[command(flatten)]
        server: Server,
    },
    /// Appends to and tails Log stores.
    Log {
        #[command(subcommand)]
        command: logs::LogCommand,
        #[command(flatten)]
        server: Server,
    },
    /// Runs SQL over the Log stores.
    Query {
        #[command(flatten)]
        args: logs::QueryArgs,
        #[command(flatten)]
        server: Server,
    },
    /// Checks integrator specs, reporting every problem with file:line:column.
    Check(specs::CheckArgs),
    /// Applies integrator specs, or a knactor's manifest with the specs that fit it, to the
    /// running app, without restarting anything.
    Apply {
        #[command(flatten)]
        args: specs::ApplyArgs,
        #[command(flatten)]
        server: Server,
    },
    /// A live view of the app's edges, flows and reconcilers: rates, errors, lag; `q` quits.
    Top {
        #[command(flatten)]
        args: top::TopArgs,
        #[command(flatten)]
        server: Server,
    },
    /// Streams what passes through a store, an edge or a flow, from now on.
    Tap {
        #[command(flatten)]
        args: tap::TapArgs,
        #[command(flatten)]
        server: Server,
    },
    /// Shows where a field's value came from: the edge and spec version that last wrote it,
    /// its expression, and the objects it read, back to the knactor or operator that started it.
    Why {
        #[command(flatten)]
        args: why::WhyArgs,
        #[command(flatten)]
        server: Server,
    },
    /// Shows where the shadow of a spec (`apply --shadow`) wrote otherwise than the live spec.
    Diff {
        #[command(flatten)]
        args: specs::DiffArgs,
        #[command(flatten)]
        server: Server,
    },
    /// Makes the shadow of a spec its live version, at an event boundary.
    Promote {
        #[command(flatten)]
        args: specs::PromoteArgs,
        #[command(flatten)]
        server: Server,
    },
    /// Draws Cast and Sync specs as one data exchange graph.
    Graph(specs::GraphArgs),
    /// Runs integrator specs on their own, against an app's shared exchange (an app split
    /// across processes).
    Integrate(specs::IntegrateArgs),
    /// Writes the manifests that run an app on Kubernetes, and applies them with --apply.
    Deploy(deploy::DeployArgs),
    /// Runs an example app, drives it, and prints what flowed.
    Demo(DemoArgs),
    /// Measures: state propagation against gRPC, throughput of the retail app, Sync flows, scale.
    Bench(crate::bench::BenchArgs),
    /// Prints the version of this client and of the server at --server.
    Version {
        #[command(flatten)]
        server: Server,
    },
    /// Prints a completion script for a shell: `source <(knactor completion bash)`.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// The demo: `smart-home` (or `retail`).
    name: String,
    /// The app directory (default: `apps/NAME`).
    #[arg(long)]
    app: Option<std::path::PathBuf>,
    /// Runs on this exchange instead of the embedded one: redis://HOST:PORT[/DB], or
    /// kube[://?context=C&namespace=NS] for the Object stores.
    #[arg(long)]
    exchange: Option<String>,
    /// Drives the app already running on --exchange (e.g. split across `knactor up --only`
    /// processes and `knactor integrate`) instead of running it here.
    #[arg(long, requires = "exchange")]
    attach: bool,
    /// Simulated minutes (smart-home).
    #[arg(long, default_value_t = 1440)]
    minutes: u64,
    /// Orders to place (retail).
    #[arg(long, default_value_t = 1000)]
    orders: u64,
    /// Seeds the simulation: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Pushes the Cast edges Redis can run down into it (see docs/cast.md).
    #[arg(long, requires = "exchange", conflicts_with = "attach")]
    pushdown: bool,
}

async fn demo(args: DemoArgs, registry: &Registry, demos: &Demos) -> anyhow::Result<()> {
    let Some(demo) = demos.get(&args.name) else {
        let known: Vec<&str> = demos.names().collect();
        anyhow::bail!("no demo `{}` (demos: {})", args.name, known.join(", "));
    };
    let DemoArgs { app, exchange, attach, minutes, orders, seed, pushdown, .. } = args;
    let options =
        DemoOptions { app, exchange, attach, minutes, orders, seed, pushdown, keep: false };
    demo.run(options, registry).await
}

/// `knactor version`: this client's, then the server's (an error when it cannot be reached).
async fn version(client: impl FnOnce() -> anyhow::Result<client::Client>) -> anyhow::Result<()> {
    println!("client: {}", env!("CARGO_PKG_VERSION"));
    println!("server: {}", client()?.server_version().await?);
    Ok(())
}

/// Parses the command line and runs it, with `registry` providing the reconcilers that
/// manifests name and `demos` the apps' demos. Errors are printed to stderr and turn into a
/// non-zero exit.
pub fn main(registry: Registry, demos: Demos) -> ExitCode {
    let cli = Cli::parse();
    let long_running = matches!(cli.command, Command::Up(_) | Command::Integrate(_));
    let default_level = if long_running { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => up::run(args, registry).await,
            Command::Get { args, server } => objects::get(&server.client()?, args).await,
            Command::Put { args, server } => objects::put(&server.client()?, args).await,
            Command::Patch { args, server } => objects::patch(&server.client()?, args).await,
            Command::Delete { args, server } => objects::delete(&server.client()?, args).await,
            Command::Log { command, server } => logs::log(&server.client()?, command).await,
            Command::Query { args, server } => logs::query(&server.client()?, args).await,
            Command::Check(args) => specs::check(args).await,
            Command::Apply { args, server } => specs::apply(&server.client()?, args).await,
            Command::Tap { args, server } => tap::tap(&server.client()?, args).await,
            Command::Top { args, server } => top::top(&server.client()?, args).await,
            Command::Why { args, server } => why::why(&server.client()?, args).await,
            Command::Diff { args, server } => specs::diff(&server.client()?, args).await,
            Command::Promote { args, server } => specs::promote(&server.client()?, args).await,
            Command::Graph(args) => specs::graph(args).await,
            Command::Integrate(args) => specs::integrate(args).await,
            Command::Deploy(args) => deploy::run(args).await,
            Command::Demo(args) => demo(args, &registry, &demos).await,
            Command::Bench(args) => crate::bench::run(args, &registry).await,
            Command::Version { server } => version(|| server.client()).await,
            Command::Completion { shell } => {
                let mut command = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut command, "knactor", &mut std::io::stdout());
                Ok(())
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints `error` to stderr: spec diagnostics (`file:line:col: error: ...`) one per line,
/// anything else as `error: ...`.
fn fail(error: &anyhow::Error) -> ExitCode {
    use integrators::source::{Diagnostic, Diagnostics};
    if error.downcast_ref::<specs::HasErrors>().is_some() {
        // `check` printed every problem already.
    } else if let Some(d) = error.downcast_ref::<Diagnostic>() {
        eprintln!("{d}");
    } else if let Some(d) = error.downcast_ref::<Diagnostics>() {
        eprintln!("{d}");
    } else if let Some(knactor::app::AppError::Spec(d)) = error.downcast_ref() {
        eprintln!("{d}");
    } else if let Some(crate::client::ClientError::Api { reason, message, .. }) =
        error.downcast_ref()
        && reason == "Invalid"
        && message.contains(": error: ")
    {
        // A rejected spec: its diagnostics, one per line, as `check` prints them.
        eprintln!("{message}");
    } else {
        eprintln!("error: {error:#}");
    }
    ExitCode::FAILURE
}
