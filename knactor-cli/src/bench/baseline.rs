//! The processes of `knactor bench propagation` other than its own, started from this binary as
//! services run, each apart: `knactor bench baseline` serves the API-centric Shipping over gRPC
//! and the TCP echo on loopback and prints their addresses on one line; `knactor bench
//! shipping` is Shipping watching its Redis store (see [`shipping`](super::shipping)). Each
//! stops when its stdin closes.

use std::net::SocketAddr;
use std::os::fd::AsFd as _;
use std::process::Stdio;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt as _, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStdout, Command};
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
    stdin_closed().await?;
    stop.cancel();
    echoing.abort();
    serving.await?
}

/// Resolves when stdin, a pipe whose other end the benchmark holds, closes. It reads without
/// a blocking thread, which would keep the process from exiting when it is done otherwise.
pub(super) async fn stdin_closed() -> anyhow::Result<()> {
    let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
    let mut pipe = pipe::Receiver::from_owned_fd(stdin).context("stdin is not a pipe")?;
    let mut discarded = [0; 64];
    while pipe.read(&mut discarded).await? > 0 {}
    Ok(())
}

/// A process started as `knactor bench ARGS...`, killed when dropped, with the lines it prints.
#[derive(Debug)]
pub(super) struct Helper {
    _process: Child,
    /// Its stdout, line by line.
    pub(super) lines: Lines<BufReader<ChildStdout>>,
}

impl Helper {
    /// Starts it and waits for its first line.
    pub(super) async fn start(args: &[&str]) -> anyhow::Result<(Self, String)> {
        let mut process = Command::new(std::env::current_exe()?)
            .arg("bench")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start `knactor bench {}`", args.join(" ")))?;
        let stdout = process.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next_line().await?.unwrap_or_default();
        Ok((Helper { _process: process, lines }, first))
    }
}

/// The baseline process, killed when dropped.
#[derive(Debug)]
pub(super) struct Baseline {
    _process: Helper,
    /// Where Shipping answers gRPC.
    pub(super) shipping: SocketAddr,
    /// Where the echo answers.
    pub(super) echo: SocketAddr,
}

impl Baseline {
    pub(super) async fn start() -> anyhow::Result<Self> {
        let (process, line) = Helper::start(&["baseline"]).await?;
        let addresses = line.split_whitespace().map(str::parse).collect::<Result<Vec<_>, _>>();
        match addresses.ok().as_deref() {
            Some(&[shipping, echo]) => Ok(Baseline { _process: process, shipping, echo }),
            _ => anyhow::bail!("the baseline process answered `{}`", line.trim()),
        }
    }
}
