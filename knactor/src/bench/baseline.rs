//! The API-centric side of `knactor bench propagation` in a process of its own, as services
//! run: `knactor bench baseline` serves Shipping over gRPC and the TCP echo on loopback, prints
//! their addresses on one line, and stops when its stdin closes.

use std::net::SocketAddr;
use std::process::Stdio;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::{grpc, loopback};

/// The baseline process's side.
pub(super) async fn serve() -> anyhow::Result<()> {
    let shipping = TcpListener::bind("127.0.0.1:0").await?;
    let echo = TcpListener::bind("127.0.0.1:0").await?;
    println!("{} {}", shipping.local_addr()?, echo.local_addr()?);
    let stop = CancellationToken::new();
    let serving = tokio::spawn(grpc::serve(shipping, stop.clone()));
    let echoing = tokio::spawn(loopback::echo(echo));
    // The bench holds the other end of stdin: when it ends, so do we.
    tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
        .await??;
    stop.cancel();
    echoing.abort();
    serving.await?
}

/// The baseline process, started from this binary and killed when dropped.
#[derive(Debug)]
pub(super) struct Baseline {
    _process: Child,
    /// Where Shipping answers gRPC.
    pub(super) shipping: SocketAddr,
    /// Where the echo answers.
    pub(super) echo: SocketAddr,
}

impl Baseline {
    pub(super) async fn start() -> anyhow::Result<Self> {
        let mut process = Command::new(std::env::current_exe()?)
            .args(["bench", "baseline"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the baseline process")?;
        let stdout = process.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).await?;
        let addresses = line.split_whitespace().map(str::parse).collect::<Result<Vec<_>, _>>();
        match addresses.ok().as_deref() {
            Some(&[shipping, echo]) => Ok(Baseline { _process: process, shipping, echo }),
            _ => anyhow::bail!("the baseline process answered `{}`", line.trim()),
        }
    }
}
