//! `knactor tap TARGET`: what passes through a store, an edge or a flow, from now on.

use std::io::Write as _;

use anyhow::bail;
use clap::Args;
use futures::StreamExt;
use serde_json::Value;

use crate::client::Client;
use crate::output::Output;

#[derive(Debug, Args)]
pub(super) struct TapArgs {
    /// A store (<knactor>/<store>): its changes; an edge (cast/SPEC/EDGE): each change it
    /// handles, how it went and what it set; a flow (sync/SPEC/FLOW): what it appends.
    target: String,
    /// Stop after this many events.
    #[arg(long)]
    limit: Option<u64>,
    /// Output format: table or json (one event a line).
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

pub(super) async fn tap(client: &Client, args: TapArgs) -> anyhow::Result<()> {
    let parts: Vec<&str> = args.target.split('/').collect();
    let (mut events, kind) = match parts[..] {
        ["cast", spec, edge] => (client.tap(spec, "edges", edge).await?, Tapped::Edge),
        ["sync", spec, flow] => (client.tap(spec, "flows", flow).await?, Tapped::Flow),
        [_, _] => {
            let version = client.list(&args.target).await?["version"].as_u64().unwrap_or(0);
            (client.watch_from(&args.target, version).await?, Tapped::Store)
        }
        _ => bail!(
            "tap a store (<knactor>/<store>), an edge (cast/SPEC/EDGE) or a flow (sync/SPEC/FLOW), not `{}`",
            args.target
        ),
    };
    let json = args.output == "json";
    let mut stdout = std::io::stdout();
    if !json {
        let header = match kind {
            Tapped::Store => Output::Table.event_header().unwrap_or_default(),
            Tapped::Edge => format!("{:<10} {:<36} {:<36} SET\n", "OUTCOME", "SOURCE", "TARGET"),
            Tapped::Flow => format!("{:>8} {:<28} RECORDS\n", "COUNT", "TO"),
        };
        stdout.write_all(header.as_bytes())?;
    }
    let mut seen = 0;
    while args.limit.is_none_or(|limit| seen < limit) {
        let Some(event) = events.next().await else { break };
        let event = event?;
        if event["type"] == "Stopped" {
            eprintln!("{}: the spec stopped (deleted)", args.target);
            break;
        }
        let line = match (json, kind) {
            (true, _) => format!("{event}\n"),
            (false, Tapped::Store) => Output::Table.render_event(&event),
            (false, Tapped::Edge | Tapped::Flow) if event["type"] == "Lagged" => {
                format!("(missed {} events: the tap fell behind)\n", event["missed"])
            }
            (false, Tapped::Edge) => edge_row(&event),
            (false, Tapped::Flow) => flow_row(&event),
        };
        stdout.write_all(line.as_bytes())?;
        stdout.flush()?;
        seen += 1;
    }
    Ok(())
}

/// What a tap listens to.
#[derive(Clone, Copy)]
enum Tapped {
    Store,
    Edge,
    Flow,
}

/// A flow event on one line: how many records it appended where, and the first of them.
fn flow_row(event: &Value) -> String {
    let (count, to) = (&event["count"], event["to"].as_str().unwrap_or_default());
    let records = event["records"].as_array().map(Vec::as_slice).unwrap_or_default();
    let shown: Vec<String> = records.iter().map(Value::to_string).collect();
    format!("{:>8} {to:<28} {}\n", count.to_string(), shown.join(" "))
}

/// An edge event on one line: how it went, the change it handled, what it set where.
fn edge_row(event: &Value) -> String {
    let at = |place: &Value| match place["name"].as_str() {
        Some(name) => {
            let version = place.get("version").map(|v| format!("@{v}")).unwrap_or_default();
            format!("{}/{name}{version}", place["store"].as_str().unwrap_or_default())
        }
        None => "-".to_owned(),
    };
    let outcome = event["outcome"].as_str().unwrap_or_default();
    let set = match &event["set"] {
        Value::Null if event["target"].is_null() => "-".to_owned(),
        Value::Null => "(deleted)".to_owned(),
        set => set.to_string(),
    };
    format!("{outcome:<10} {:<36} {:<36} {set}\n", at(&event["source"]), at(&event["target"]))
}
