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

use super::propagation::Stamps;
use super::{WallClock, wall_ns};

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

/// A connection to the echo, with the message it sends.
pub(super) struct Client {
    socket: TcpStream,
    /// The payload's length and the payload.
    message: Vec<u8>,
    /// The payload and the echo's two stamps.
    back: Vec<u8>,
}

impl Client {
    pub(super) async fn connect(address: SocketAddr, payload: Vec<u8>) -> anyhow::Result<Self> {
        let socket = TcpStream::connect(address).await?;
        socket.set_nodelay(true)?;
        let back = vec![0; payload.len() + 16];
        let mut message = (payload.len() as u32).to_le_bytes().to_vec();
        message.extend_from_slice(&payload);
        Ok(Client { socket, message, back })
    }

    /// One round trip: C-I until the echo has the payload, I its turnaround, I-S the way back.
    pub(super) async fn round_trip(&mut self) -> anyhow::Result<Stamps> {
        let clock = WallClock::now();
        self.socket.write_all(&self.message).await?;
        self.socket.read_exact(&mut self.back).await?;
        let arrived = Instant::now();
        let stamp = |at: usize| {
            let bytes = self.back[at..at + 8].try_into().expect("8 bytes");
            clock.at(u64::from_le_bytes(bytes))
        };
        let len = self.back.len() - 16;
        let (seen, computed) = (stamp(len)?, stamp(len + 8)?);
        Ok(Stamps::rpc(clock.instant, seen, computed, arrived))
    }
}
