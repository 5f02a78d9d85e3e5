//! Free loopback ports for the servers that benchmarks and tests start.

use std::net::TcpListener;

/// A loopback port nobody listens on right now, never Redis's default 6379.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local addr").port();
        if port != 6379 {
            return port;
        }
    }
}
