//! A `redis-server` of its own on a free loopback port, for benchmarks and tests.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// A real `redis-server` on a free loopback port (never 6379), with append-only persistence in
/// a private directory unless started [in memory](RedisServer::start_in_memory). Killed and
/// cleaned up on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    append_only: bool,
}

impl RedisServer {
    /// Starts a server that logs every write to its append-only file, so that a restart keeps
    /// them; panics with a hint when `redis-server` is not installed.
    pub fn start() -> Self {
        Self::start_with(true)
    }

    /// Starts a server that keeps its data in memory only, as Redis does by default.
    pub fn start_in_memory() -> Self {
        Self::start_with(false)
    }

    fn start_with(append_only: bool) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("knactor-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create redis data dir");
        let mut server = RedisServer { child: None, port, dir, append_only };
        server.spawn();
        server
    }

    /// The URL to connect to, `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--appendonly", if self.append_only { "yes" } else { "no" }])
            .args(["--save", "", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it with scripts/setup")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
