//! Drawing a Cast plan: stores as nodes, edges labelled with the fields they move and their
//! conditions, as Graphviz DOT or Mermaid.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use data_exchange::StoreRef;

use super::expr::ValueExpr;
use super::plan::{CastPlan, EdgePlan};

/// The label of one edge: its name, `when`, and `target <- value` per field, each on one line
/// (expressions written over several lines are joined).
fn label(edge: &EdgePlan) -> Vec<String> {
    let one_line = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut lines = vec![edge.spec.name.clone()];
    if let Some(when) = &edge.when {
        lines.push(format!("when {}", one_line(when.source())));
    }
    for (path, value) in &edge.set {
        let source = match value {
            ValueExpr::Path(path) => path.clone(),
            ValueExpr::Cel(cel) => cel.source().to_owned(),
        };
        lines.push(format!("{} ← {}", path.join("."), one_line(&source)));
    }
    lines
}

/// The stores an edge reads without being triggered by them (e.g. `collect` inputs), except
/// its target.
fn also_read<'a>(plan: &'a CastPlan, edge: &'a EdgePlan) -> impl Iterator<Item = &'a StoreRef> {
    let triggers: BTreeSet<&StoreRef> =
        edge.spec.from.iter().map(|a| &plan.inputs[a].store).collect();
    let to = &plan.inputs[&edge.spec.to].store;
    let read: BTreeSet<&StoreRef> =
        edge.reads.iter().filter_map(|a| plan.inputs.get(a)).map(|i| &i.store).collect();
    read.into_iter().filter(move |s| !triggers.contains(s) && *s != to)
}

/// Every store the plans name, once (several aliases may name one store).
fn stores(plans: &[&CastPlan]) -> BTreeSet<StoreRef> {
    plans.iter().flat_map(|plan| plan.inputs.values().map(|i| i.store.clone())).collect()
}

/// The stores and data flows of `plans` in Graphviz DOT.
pub fn to_dot(plans: &[&CastPlan]) -> String {
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut dot =
        String::from("digraph knactor {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
    for store in stores(plans) {
        let _ = writeln!(dot, "  \"{store}\";");
    }
    for plan in plans {
        for edge in &plan.edges {
            let to = &plan.inputs[&edge.spec.to].store;
            let text = label(edge).iter().map(|l| escape(l)).collect::<Vec<_>>().join("\\l");
            for from in &edge.spec.from {
                let from = &plan.inputs[from].store;
                let _ = writeln!(dot, "  \"{from}\" -> \"{to}\" [label=\"{text}\\l\"];");
            }
            for read in also_read(plan, edge) {
                let name = escape(&edge.spec.name);
                let _ = writeln!(
                    dot,
                    "  \"{read}\" -> \"{to}\" [style=dashed, label=\"{name} reads\"];"
                );
            }
        }
    }
    dot.push_str("}\n");
    dot
}

/// The stores and data flows of `plans` as a Mermaid flowchart.
pub fn to_mermaid(plans: &[&CastPlan]) -> String {
    let id = |store: &str| store.replace(['/', '-', '.'], "_");
    let escape = |s: &str| s.replace('"', "#quot;");
    let mut out = String::from("flowchart LR\n");
    for store in stores(plans) {
        let store = store.to_string();
        let _ = writeln!(out, "  {}[\"{store}\"]", id(&store));
    }
    for plan in plans {
        for edge in &plan.edges {
            let to = id(&plan.inputs[&edge.spec.to].store.to_string());
            let text = label(edge).iter().map(|l| escape(l)).collect::<Vec<_>>().join("<br/>");
            for from in &edge.spec.from {
                let from = id(&plan.inputs[from].store.to_string());
                let _ = writeln!(out, "  {from} -->|\"{text}\"| {to}");
            }
            for read in also_read(plan, edge) {
                let (read, name) = (id(&read.to_string()), escape(&edge.spec.name));
                let _ = writeln!(out, "  {read} -.->|\"{name} reads\"| {to}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SpecFile;
    use std::path::Path;

    #[test]
    fn edges_are_labelled_with_fields_and_conditions() {
        let text = "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {name: c}\nspec:\n  inputs: {order: checkout/orders, shipment: shipping/shipments}\n  edges:\n    - name: ship\n      from: [order]\n      to: shipment\n      when: order.status == \"placed\"\n      set: {items: $.order.items}\n";
        let (plan, _) =
            CastPlan::load(&SpecFile::from_text(Path::new("c.yaml"), text), None).unwrap();
        let dot = to_dot(&[&plan]);
        assert!(dot.contains(r#""checkout/orders" -> "shipping/shipments" [label="ship\lwhen order.status == \"placed\"\litems ← $.order.items\l"];"#), "{dot}");
        let mermaid = to_mermaid(&[&plan]);
        assert!(mermaid.contains("checkout_orders -->|\"ship<br/>when order.status == #quot;placed#quot;<br/>items ← $.order.items\"| shipping_shipments"), "{mermaid}");
    }

    #[test]
    fn stores_are_drawn_once_and_collected_reads_dashed() {
        let text = "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {name: c}\nspec:\n  inputs:\n    s: house/settings\n    all: {store: house/settings, collect: true}\n    o: motion/occupancy\n    l: lamp/lamps\n  edges:\n    - name: light\n      from: [o]\n      to: l\n      set:\n        brightness: >-\n          o.occupied\n            ? all[0].level : 0\n";
        let (plan, _) =
            CastPlan::load(&SpecFile::from_text(Path::new("c.yaml"), text), None).unwrap();
        let mermaid = to_mermaid(&[&plan]);
        assert_eq!(mermaid.matches("house_settings[").count(), 1, "{mermaid}");
        assert!(mermaid.contains("house_settings -.->|\"light reads\"| lamp_lamps"), "{mermaid}");
        assert!(mermaid.contains("brightness ← o.occupied ? all[0].level : 0\"|"), "{mermaid}");
        assert!(to_dot(&[&plan]).contains("\"house/settings\" -> \"lamp/lamps\" [style=dashed"));
    }
}
