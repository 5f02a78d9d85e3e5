//! `knactor tap TARGET`: what passes through a store or an edge, from now on.

use std::io::Write as _;

use anyhow::bail;
use clap::Args;
use futures::StreamExt;
use serde_json::Value;

use crate::client::Client;
use crate::output::Output;

#[derive(Debug, Args)]
pub(super) struct TapArgs {
    /// A store (<knactor>/<store>): its changes; or an edge (cast/SPEC/EDGE): each change it
    /// handles, how it went and what it set.
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
    let (mut events, edge) = match parts[..] {
        ["cast", spec, edge] => (client.tap_edge(spec, edge).await?, true),
        [_, _] => {
            let version = client.list(&args.target).await?["version"].as_u64().unwrap_or(0);
            (client.watch_from(&args.target, version).await?, false)
        }
        _ => bail!(
            "tap a store (<knactor>/<store>) or an edge (cast/SPEC/EDGE), not `{}`",
            args.target
        ),
    };
    let json = args.output == "json";
    let mut stdout = std::io::stdout();
    if !json {
        let header =
            if edge { edge_header() } else { Output::Table.event_header().unwrap_or_default() };
        stdout.write_all(header.as_bytes())?;
    }
    let mut seen = 0;
    while args.limit.is_none_or(|limit| seen < limit) {
        let Some(event) = events.next().await else { break };
        let event = event?;
        let line = match (json, edge) {
            (true, _) => format!("{event}\n"),
            (false, true) => edge_row(&event),
            (false, false) => Output::Table.render_event(&event),
        };
        stdout.write_all(line.as_bytes())?;
        stdout.flush()?;
        seen += 1;
    }
    Ok(())
}

fn edge_header() -> String {
    format!("{:<10} {:<36} {:<36} SET\n", "OUTCOME", "SOURCE", "TARGET")
}

/// An edge event on one line: how it went, the change it handled, what it set where.
fn edge_row(event: &Value) -> String {
    if event["type"] == "Lagged" {
        return format!("(missed {} events: the tap fell behind)\n", event["missed"]);
    }
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
