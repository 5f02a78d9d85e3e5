//! Shipping's side of `knactor bench propagation` on Redis, in a process of its own as the gRPC
//! Shipping is: `knactor bench shipping --redis URL --store STORE --schema JSON` watches the
//! store from its current version, prints `ready`, then a line per new shipment: its name and
//! when the watch had it, in [`wall_ns`]; then answers it with a tracking number. It stops when
//! its stdin closes.

use std::io::Write as _;

use data_exchange::{StoreRef, WatchEvent};
use futures::StreamExt;

use super::baseline::stdin_closed;
use super::wall_ns;

#[derive(Debug, clap::Args)]
pub(super) struct ShippingArgs {
    /// The Redis server.
    #[arg(long)]
    redis: String,
    /// The store to watch.
    #[arg(long)]
    store: StoreRef,
    /// Its JSON Schema.
    #[arg(long)]
    schema: String,
}

pub(super) async fn serve(args: ShippingArgs) -> anyhow::Result<()> {
    let exchange = data_exchange::connect(&args.redis, None).await?;
    exchange.register(&args.store, &serde_json::from_str(&args.schema)?).await?;
    let from = exchange.version(&args.store).await?;
    let mut watch = exchange.watch(&args.store, from).await?;
    // A line is a few bytes into a pipe the benchmark keeps reading: writing it blocks no one.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    let stamping = async {
        while let Some(event) = watch.next().await {
            let at = wall_ns();
            let WatchEvent::Added(shipment) = event? else { continue };
            writeln!(stdout, "{} {at}", shipment.name)?;
            stdout.flush()?;
            exchange.write(&args.store, super::propagation::shipped(&shipment.name)).await?;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        stamped = stamping => stamped,
        closed = stdin_closed() => closed,
    }
}
