//! The floor under the networked setups of `knactor bench propagation`: one round trip of a
//! paid order's bytes over loopback TCP to an echo in another process, which does no work.
//! Every hop through a socket to another process pays at least this: gRPC one round trip,
//! Redis one per write.
//!
//! A message is its length (4 bytes, little-endian) and its bytes; the echo answers with the
//! bytes and two stamps in [`wall_ns`] (8 bytes each): when it had them, when it sent them.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Breakdown, Progress, WallClock, wall_ns};

/// Echoes every connection `listener` accepts.
pub(super) async fn echo(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        tokio::spawn(echo_one(socket));
    }
}

async fn echo_one(mut socket: TcpStream) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    loop {
        let len = socket.read_u32_le().await? as usize;
        buffer.resize(len, 0);
        socket.read_exact(&mut buffer).await?;
        let seen = wall_ns();
        buffer.extend_from_slice(&seen.to_le_bytes());
        buffer.extend_from_slice(&wall_ns().to_le_bytes());
        socket.write_all(&buffer).await?;
    }
}

/// Sends `payload` to the echo at `address` `progress.total()` times, one in flight, and
/// measures each round trip: C-I until the echo has it, I its turnaround, I-S the way back.
pub(super) async fn measure(
    address: SocketAddr,
    payload: &[u8],
    progress: &Progress,
) -> anyhow::Result<Breakdown> {
    let mut socket = TcpStream::connect(address).await?;
    socket.set_nodelay(true)?;
    let mut message = (payload.len() as u32).to_le_bytes().to_vec();
    message.extend_from_slice(payload);
    let mut back = vec![0; payload.len() + 16];
    let mut breakdown = Breakdown::default();
    for n in 0..progress.total() {
        let clock = WallClock::now();
        socket.write_all(&message).await?;
        socket.read_exact(&mut back).await?;
        let arrived = Instant::now();
        let stamp = |at: usize| {
            let bytes = back[at..at + 8].try_into().expect("8 bytes");
            clock.at(u64::from_le_bytes(bytes))
        };
        let (seen, sent_back) = (stamp(payload.len()), stamp(payload.len() + 8));
        progress.record(&mut breakdown, n, clock.instant, seen, sent_back, arrived)?;
    }
    Ok(breakdown)
}
