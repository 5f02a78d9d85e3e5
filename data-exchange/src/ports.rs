//! Free loopback ports for the servers that benchmarks and tests start.

use std::net::TcpListener;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where ports are chosen: below Linux's ephemeral range (32768–60999 by default), so that no
/// outgoing connection takes a port between its choice and the server's bind, nor while a
/// server restarted on the same port is down (its clients reconnecting use ephemeral ports).
const PORTS: Range<u32> = 20000..32768;

/// How many ports this process has tried.
static TRIED: AtomicU32 = AtomicU32::new(0);

/// A loopback port nobody listens on right now (never Redis's default 6379). Each process
/// starts at a place of its own in the range and goes on from there, so two test processes
/// running at once rarely try the same port.
pub fn free_port() -> u16 {
    let span = PORTS.end - PORTS.start;
    let start = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let tried = TRIED.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(PORTS.start + (start + tried) % span).expect("ports fit u16");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {PORTS:?}");
}
