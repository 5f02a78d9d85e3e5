//! A Cast plan's part of a [`Graph`]: its stores, an arrow per edge from each store that
//! triggers it, labelled with its condition and the fields it moves, and a dashed arrow from
//! each store it only reads.

use std::collections::BTreeSet;

use data_exchange::StoreRef;

use super::expr::ValueExpr;
use super::plan::{CastPlan, EdgePlan};
use crate::graph::{Arrow, Detail, Graph, Line, Node, one_line};

/// The label of one edge: its name, `when`, and `target ← value` per field, each on one line;
/// or, brief, its name and the fields it sets.
fn label(edge: &EdgePlan, detail: Detail) -> Vec<String> {
    let name = edge.spec.name.clone();
    if detail == Detail::Brief {
        let fields: Vec<String> = edge.set.iter().map(|(path, _)| path.join(".")).collect();
        return vec![format!("{name}: {}", fields.join(", "))];
    }
    let mut lines = vec![name];
    if let Some(when) = &edge.when {
        lines.push(format!("when {}", one_line(when.source())));
    }
    for (path, value) in &edge.set {
        let source = match value {
            ValueExpr::Path(path) => path.source().to_owned(),
            ValueExpr::Cel(cel) => cel.source().to_owned(),
        };
        lines.push(format!("{} ← {}", path.join("."), one_line(&source)));
    }
    lines
}

/// The stores an edge reads without being triggered by them (e.g. `collect` inputs), except
/// its target.
fn also_read<'a>(
    plan: &'a CastPlan,
    edge: &'a EdgePlan,
    triggers: &BTreeSet<&'a StoreRef>,
) -> BTreeSet<&'a StoreRef> {
    let to = &plan.inputs[&edge.spec.to].store;
    let read = edge.reads.iter().filter_map(|a| plan.inputs.get(a)).map(|i| &i.store);
    read.filter(|s| !triggers.contains(s) && *s != to).collect()
}

impl Graph {
    /// Adds `plan`'s stores and edges.
    pub fn add_cast(&mut self, plan: &CastPlan) {
        for input in plan.inputs.values() {
            self.node(&input.store, Node::Object);
        }
        for edge in &plan.edges {
            let to = &plan.inputs[&edge.spec.to].store;
            let text = label(edge, self.detail);
            let triggers: BTreeSet<&StoreRef> =
                edge.spec.from.iter().map(|a| &plan.inputs[a].store).collect();
            for from in triggers.iter().filter(|from| **from != to) {
                let (from, to) = ((*from).clone(), to.clone());
                self.arrow(Arrow { from, to, label: text.clone(), line: Line::Solid });
            }
            for read in also_read(plan, edge, &triggers) {
                let label = vec![format!("{} reads", edge.spec.name)];
                self.arrow(Arrow { from: read.clone(), to: to.clone(), label, line: Line::Dashed });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SpecFile;
    use std::path::Path;

    fn graph(text: &str, detail: Detail) -> Graph {
        let (plan, _) =
            CastPlan::load(&SpecFile::from_text(Path::new("c.yaml"), text), None).unwrap();
        let mut graph = Graph::new(detail);
        graph.add_cast(&plan);
        graph
    }

    const SHIP: &str = "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {name: c}\nspec:\n  inputs: {order: checkout/orders, shipment: shipping/shipments}\n  edges:\n    - name: ship\n      from: [order]\n      to: shipment\n      when: order.status == \"placed\"\n      set: {items: $.order.items, method: '\"air\"'}\n";

    #[test]
    fn edges_are_labelled_with_fields_and_conditions() {
        let dot = graph(SHIP, Detail::Full).to_dot();
        assert!(dot.contains(r#""checkout/orders" -> "shipping/shipments" [label="ship\lwhen order.status == \"placed\"\litems ← $.order.items\lmethod ← \"air\"\l"];"#), "{dot}");
        let mermaid = graph(SHIP, Detail::Full).to_mermaid();
        assert!(mermaid.contains("checkout_orders -->|\"ship<br/>when order.status == #quot;placed#quot;<br/>items ← $.order.items<br/>method ← #quot;air#quot;\"| shipping_shipments"), "{mermaid}");
        let brief = graph(SHIP, Detail::Brief).to_mermaid();
        assert!(
            brief.contains("checkout_orders -->|\"ship: items, method\"| shipping_shipments"),
            "{brief}"
        );
    }

    #[test]
    fn stores_are_drawn_once_and_collected_reads_dashed() {
        let text = "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {name: c}\nspec:\n  inputs:\n    s: house/settings\n    all: {store: house/settings, collect: true}\n    o: motion/occupancy\n    l: lamp/lamps\n  edges:\n    - name: light\n      from: [o]\n      to: l\n      set:\n        brightness: >-\n          o.occupied\n            ? all[0].level : 0\n";
        let mermaid = graph(text, Detail::Full).to_mermaid();
        assert_eq!(mermaid.matches("house_settings[").count(), 1, "{mermaid}");
        assert!(mermaid.contains("house_settings -.->|\"light reads\"| lamp_lamps"), "{mermaid}");
        assert!(mermaid.contains("brightness ← o.occupied ? all[0].level : 0\"|"), "{mermaid}");
        let dot = graph(text, Detail::Full).to_dot();
        assert!(dot.contains("\"house/settings\" -> \"lamp/lamps\" [style=dashed"), "{dot}");
    }

    #[test]
    fn an_edge_that_also_reads_its_target_draws_no_loop() {
        let text = "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {name: c}\nspec:\n  inputs: {cart: cart/carts, session: frontend/sessions}\n  edges:\n    - name: show-cart\n      from: [cart, session]\n      to: session\n      set: {totalUsd: cart.totalUsd}\n";
        let mermaid = graph(text, Detail::Brief).to_mermaid();
        assert!(!mermaid.contains("frontend_sessions -->"), "{mermaid}");
        assert!(mermaid.contains("cart_carts -->|\"show-cart: totalUsd\"| frontend_sessions"));
    }
}
