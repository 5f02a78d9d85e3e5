//! Drawing a Cast plan: stores as nodes, edges labelled with the fields they move and their
//! conditions, as Graphviz DOT or Mermaid.

use std::fmt::Write as _;

use super::expr::ValueExpr;
use super::plan::{CastPlan, EdgePlan};

/// The label of one edge: its name, `when`, and `target <- value` per field.
fn label(edge: &EdgePlan) -> Vec<String> {
    let mut lines = vec![edge.spec.name.clone()];
    if let Some(when) = &edge.when {
        lines.push(format!("when {}", when.source()));
    }
    for (path, value) in &edge.set {
        let source = match value {
            ValueExpr::Path(path) => path.clone(),
            ValueExpr::Cel(cel) => cel.source().to_owned(),
        };
        lines.push(format!("{} ← {source}", path.join(".")));
    }
    lines
}

/// The stores and data flows of `plans` in Graphviz DOT.
pub fn to_dot(plans: &[&CastPlan]) -> String {
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut dot =
        String::from("digraph knactor {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
    for plan in plans {
        for input in plan.inputs.values() {
            let _ = writeln!(dot, "  \"{}\";", input.store);
        }
        for edge in &plan.edges {
            let to = &plan.inputs[&edge.spec.to].store;
            let text = label(edge).iter().map(|l| escape(l)).collect::<Vec<_>>().join("\\l");
            for from in &edge.spec.from {
                let from = &plan.inputs[from].store;
                let _ = writeln!(dot, "  \"{from}\" -> \"{to}\" [label=\"{text}\\l\"];");
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
    for plan in plans {
        for input in plan.inputs.values() {
            let store = input.store.to_string();
            let _ = writeln!(out, "  {}[\"{store}\"]", id(&store));
        }
        for edge in &plan.edges {
            let to = id(&plan.inputs[&edge.spec.to].store.to_string());
            let text = label(edge).iter().map(|l| escape(l)).collect::<Vec<_>>().join("<br/>");
            for from in &edge.spec.from {
                let from = id(&plan.inputs[from].store.to_string());
                let _ = writeln!(out, "  {from} -->|\"{text}\"| {to}");
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
}
