//! Free loopback ports for the servers that benchmarks and tests start.

use std::net::TcpListener;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where ports are chosen: outside the system's ephemeral range (Linux's
/// `ip_local_port_range`, 32768–60999 by default), so that no outgoing connection takes a port
/// between its choice and the server's bind, nor while a server restarted on the same port is
/// down (its clients reconnecting use ephemeral ports). Below the range when it leaves room
/// there, else above it.
fn ports() -> Range<u32> {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(|b| b.parse::<u32>().ok());
            Some((bounds.next()??, bounds.next()??))
        })
        .unwrap_or((32768, 60999));
    match ephemeral {
        (low, _) if low >= 10_000 => low - 8_000..low,
        (_, high) if high < 60_000 => high + 1..65536,
        // Ephemeral ports everywhere: no range avoids them.
        _ => 20_000..30_000,
    }
}

/// How many ports this process has tried.
static TRIED: AtomicU32 = AtomicU32::new(0);

/// A loopback port nobody listens on right now (never Redis's default 6379). Each process
/// starts at a place of its own in the range and goes on from there, so two test processes
/// running at once rarely try the same port.
pub fn free_port() -> u16 {
    let ports = ports();
    let span = ports.end - ports.start;
    let start = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let tried = TRIED.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(ports.start + (start + tried) % span).expect("ports fit u16");
        if port != 6379 && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {ports:?}");
}
