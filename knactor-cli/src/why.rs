//! `knactor why STORE NAME [FIELD]`: where a field's value came from, as a tree.

use clap::Args;
use serde_json::Value;

use crate::client::Client;

#[derive(Debug, Args)]
pub(super) struct WhyArgs {
    /// The object's store (<knactor>/<store>).
    store: String,
    /// The object.
    name: String,
    /// The field (a dotted path); every field of the object when omitted.
    field: Option<String>,
    /// Output format: tree or json.
    #[arg(short, long, default_value = "tree", value_parser = ["tree", "json"])]
    output: String,
}

pub(super) async fn why(client: &Client, args: WhyArgs) -> anyhow::Result<()> {
    let answer = client.why(&args.store, &args.name, args.field.as_deref()).await?;
    if args.output == "json" {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let mut out = String::new();
    for trail in answer["fields"].as_array().into_iter().flatten() {
        render_trail(&mut out, trail, "", None);
    }
    print!("{}", printable(&out));
    Ok(())
}

/// `text` with its control characters but line ends escaped: field names, writers and
/// expressions are anyone's data, and must not drive the terminal.
fn printable(text: &str) -> String {
    let escaped = |c: char| match c {
        '\n' => "\n".to_owned(),
        c if c.is_control() => c.escape_default().to_string(),
        c => c.to_string(),
    };
    text.chars().map(escaped).collect()
}

/// Appends `trail` as a tree: its field and value, then who wrote it, from what. `branch` is
/// the connector its line takes under a parent (`None` at the root).
fn render_trail(out: &mut String, trail: &Value, indent: &str, branch: Option<bool>) {
    let (connector, inner) = connectors(indent, branch);
    let s = |key: &str| trail[key].as_str().unwrap_or_default();
    let value = serde_json::to_string(&trail["value"]).unwrap_or_default();
    out.push_str(&format!("{connector}{}/{}.{} = {value}\n", s("store"), s("name"), s("field")));
    let written = &trail["written"];
    let mut lines: Vec<Line> = Vec::new();
    if let Some(note) = trail["note"].as_str() {
        lines.push(Line::Text(note.to_owned()));
    }
    if written.is_object() {
        let by = format!(
            "written by {} at version {}",
            written["writer"].as_str().unwrap_or("?"),
            written["version"]
        );
        let edge = &written["edge"];
        if edge.is_object() {
            let set: Vec<String> = edge["set"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|pair| {
                    format!(
                        "{} = {}",
                        pair[0].as_str().unwrap_or(""),
                        pair[1].as_str().unwrap_or("")
                    )
                })
                .collect();
            lines.push(Line::Text(format!(
                "{by}, edge {} of spec {} (version {}): {}",
                edge["edge"].as_str().unwrap_or("?"),
                edge["spec"].as_str().unwrap_or("?"),
                edge["specVersion"],
                set.join(", ")
            )));
            lines.extend(edge["sources"].as_array().into_iter().flatten().map(Line::Source));
        } else {
            lines.push(Line::Text(format!("{by}: where it starts")));
        }
    }
    let count = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let last = i + 1 == count;
        match line {
            Line::Text(text) => {
                let (connector, _) = connectors(&inner, Some(last));
                out.push_str(&format!("{connector}{text}\n"));
            }
            Line::Source(source) => render_source(out, source, &inner, last),
        }
    }
}

/// A line under a field: a sentence, or an object the edge read.
enum Line<'a> {
    Text(String),
    Source(&'a Value),
}

/// Appends an object an edge read, and the trails of the fields it read there.
fn render_source(out: &mut String, source: &Value, indent: &str, last: bool) {
    let (connector, inner) = connectors(indent, Some(last));
    let s = |key: &str| source[key].as_str().unwrap_or_default();
    let (alias, store) = (s("alias"), s("store"));
    let note = source["note"].as_str().map(|n| format!(" ({n})")).unwrap_or_default();
    let read = match source["name"].as_str() {
        Some(name) => format!("{store}/{name} at version {}", source["version"]),
        None => store.to_owned(), // Hidden from this principal.
    };
    out.push_str(&format!("{connector}read {alias}: {read}{note}\n"));
    let fields = source["fields"].as_array().map(Vec::as_slice).unwrap_or_default();
    for (i, trail) in fields.iter().enumerate() {
        render_trail(out, trail, &inner, Some(i + 1 == fields.len()));
    }
}

/// The connector of a line at `indent` (`branch`: whether it is its parent's last child;
/// `None` at the root), and the indent of its children.
fn connectors(indent: &str, branch: Option<bool>) -> (String, String) {
    match branch {
        None => (String::new(), String::new()),
        Some(true) => (format!("{indent}└─ "), format!("{indent}   ")),
        Some(false) => (format!("{indent}├─ "), format!("{indent}│  ")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_trail_is_drawn_as_a_tree_down_to_the_knactor_that_wrote() {
        let trail = json!({
            "store": "checkout/orders", "name": "o1", "field": "shippingCost", "value": 8.99,
            "written": {"version": 11, "writer": "integrator:checkout", "edge": {
                "spec": "checkout", "specVersion": 2, "edge": "report-shipment",
                "set": [["shippingCost", "shipment.cost"]],
                "sources": [
                    {"alias": "shipment", "store": "shipping/shipments", "name": "o1",
                     "version": 9, "fields": [
                        {"store": "shipping/shipments", "name": "o1", "field": "cost",
                         "value": 8.99, "written": {"version": 9, "writer": "knactor:shipping"}}
                     ]},
                    {"alias": "order", "store": "checkout/orders", "name": "o1", "version": 10,
                     "fields": []}
                ]}}
        });
        let mut out = String::new();
        render_trail(&mut out, &trail, "", None);
        let want = "\
checkout/orders/o1.shippingCost = 8.99
├─ written by integrator:checkout at version 11, edge report-shipment of spec checkout (version 2): shippingCost = shipment.cost
├─ read shipment: shipping/shipments/o1 at version 9
│  └─ shipping/shipments/o1.cost = 8.99
│     └─ written by knactor:shipping at version 9: where it starts
└─ read order: checkout/orders/o1 at version 10
";
        assert_eq!(out, want);
    }

    #[test]
    fn hidden_sources_name_their_store_only_and_control_characters_are_escaped() {
        let source = json!({"alias": "order", "store": "checkout/orders", "fields": [],
                            "note": "hidden: knactor:payment may not read checkout/orders"});
        let mut out = String::new();
        render_source(&mut out, &source, "", true);
        let want = "└─ read order: checkout/orders (hidden: knactor:payment may not read checkout/orders)\n";
        assert_eq!(out, want);
        assert_eq!(printable("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\n");
    }
}
