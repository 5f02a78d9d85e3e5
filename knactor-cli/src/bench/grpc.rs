//! The API-centric baseline of `knactor bench propagation`: Checkout calls Shipping with a
//! gRPC unary call (tonic, loopback), and Shipping does the hop's work — picks the method by
//! the order's total and keeps the shipment — before it answers. Shipping runs in a process of
//! its own (see [`baseline`](super::baseline)), as a service does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

use super::propagation::Stamps;
use super::{WallClock, wall_ns};

/// The client and server tonic generates from `build.rs`.
#[allow(unreachable_pub, missing_debug_implementations, clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/knactor.bench.Shipping.rs"));
}
use generated::{shipping_client, shipping_server};

/// An order line.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Item {
    /// The product.
    #[prost(string, tag = "1")]
    pub(crate) sku: String,
    /// How many.
    #[prost(uint32, tag = "2")]
    pub qty: u32,
    /// The unit price.
    #[prost(double, tag = "3")]
    pub price: f64,
}

/// Where an order goes.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Address {
    /// Street and number.
    #[prost(string, tag = "1")]
    pub street: String,
    /// City.
    #[prost(string, tag = "2")]
    pub city: String,
    /// ISO country code.
    #[prost(string, tag = "3")]
    pub country: String,
}

/// A paid order, as Checkout sends it.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ShipRequest {
    /// The order's name.
    #[prost(string, tag = "1")]
    pub order: String,
    /// Its lines.
    #[prost(message, repeated, tag = "2")]
    pub items: Vec<Item>,
    /// Its destination.
    #[prost(message, optional, tag = "3")]
    pub address: Option<Address>,
    /// Its total.
    #[prost(double, tag = "4")]
    pub total: f64,
}

/// Shipping's answer, with when it saw the request and when it had done the work.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ShipReply {
    /// The shipping method picked.
    #[prost(string, tag = "1")]
    pub method: String,
    /// When the handler started, in [`wall_ns`].
    #[prost(uint64, tag = "2")]
    pub seen_ns: u64,
    /// When the shipment was kept, in [`wall_ns`].
    #[prost(uint64, tag = "3")]
    pub computed_ns: u64,
}

/// Shipping as an API-centric service: its shipments in memory, by order.
#[derive(Debug, Default)]
struct ShippingService {
    shipments: Mutex<HashMap<String, (ShipRequest, &'static str)>>,
}

#[tonic::async_trait]
impl shipping_server::Shipping for ShippingService {
    async fn ship(
        &self,
        request: tonic::Request<ShipRequest>,
    ) -> Result<tonic::Response<ShipReply>, tonic::Status> {
        let seen = wall_ns();
        let order = request.into_inner();
        let method = if order.total > 100.0 { "air" } else { "ground" };
        let name = order.order.clone();
        self.shipments.lock().expect("shipments poisoned").insert(name, (order, method));
        let reply = ShipReply { method: method.to_owned(), seen_ns: seen, computed_ns: wall_ns() };
        Ok(tonic::Response::new(reply))
    }
}

/// The request for order `n` (the same order the Knactor setups write).
fn request(n: usize) -> ShipRequest {
    let item = |sku: &str, qty, price| Item { sku: sku.into(), qty, price };
    ShipRequest {
        order: format!("order-{n:06}"),
        items: vec![item("OLJCESPC7Z", 2, 19.99), item("6E92ZMYYFZ", 1, 8.99)],
        address: Some(Address {
            street: "1 rue de Rivoli".into(),
            city: "Paris".into(),
            country: "FR".into(),
        }),
        total: super::propagation::total(n),
    }
}

/// Serves Shipping on `listener` until `stop` is cancelled.
pub(super) async fn serve(listener: TcpListener, stop: CancellationToken) -> anyhow::Result<()> {
    tonic::transport::Server::builder()
        .add_service(shipping_server::ShippingServer::new(ShippingService::default()))
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(listener).map(|accepted| {
                // As a tuned RPC stack would: no Nagle delay on small replies.
                accepted.and_then(|stream| stream.set_nodelay(true).map(|()| stream))
            }),
            stop.cancelled_owned(),
        )
        .await?;
    Ok(())
}

/// Checkout's side: a client of Shipping.
pub(super) struct Client(shipping_client::ShippingClient<tonic::transport::Channel>);

impl Client {
    pub(super) async fn connect(address: SocketAddr) -> anyhow::Result<Self> {
        Ok(Client(shipping_client::ShippingClient::connect(format!("http://{address}")).await?))
    }

    /// Calls `Ship` for order `n`, with the handler's stamps placed on this process's timeline.
    pub(super) async fn ship(&mut self, n: usize) -> anyhow::Result<Stamps> {
        let request = request(n);
        let clock = WallClock::now();
        let reply = self.0.ship(request).await?.into_inner();
        let arrived = Instant::now();
        let (seen, computed) = (clock.at(reply.seen_ns)?, clock.at(reply.computed_ns)?);
        Ok(Stamps::rpc(clock.instant, seen, computed, arrived))
    }
}
