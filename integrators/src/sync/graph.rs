//! A Sync spec's part of a [`Graph`]: its Log stores, and a thick arrow per flow from each
//! source to its destination, labelled with its operators. Drawn from the spec as written, so
//! no store schemas are needed.

use data_exchange::StoreRef;

use super::spec::{FlowSpec, OpSpec, SyncSpec};
use crate::graph::{Arrow, Detail, Graph, Line, Node, one_line};

/// One operator on one line: `filter triggered AND ...`, `rename triggered → motion`...
fn describe(op: &OpSpec) -> String {
    let pairs = |pairs: &indexmap::IndexMap<String, String>, sep: &str| {
        let each = pairs.iter().map(|(a, b)| format!("{a}{sep}{}", one_line(b)));
        each.collect::<Vec<_>>().join(", ")
    };
    let per =
        |window: &Option<String>| window.as_ref().map(|w| format!(" per {w}")).unwrap_or_default();
    match op {
        OpSpec::Filter(sql) => format!("filter {}", one_line(sql)),
        OpSpec::Rename(names) => format!("rename {}", pairs(names, " → ")),
        OpSpec::Select(columns) => format!("select {}", columns.join(", ")),
        OpSpec::Drop(columns) => format!("drop {}", columns.join(", ")),
        OpSpec::Derive(columns) => format!("derive {}", pairs(columns, " = ")),
        OpSpec::Sort(sort) => {
            let order = if sort.descending { " descending" } else { "" };
            format!("sort by {}{order}", sort.by.join(", "))
        }
        OpSpec::Aggregate(aggregate) => {
            let by = match aggregate.by.is_empty() {
                true => String::new(),
                false => format!(" by {}", aggregate.by.join(", ")),
            };
            format!("aggregate {}{by}{}", pairs(&aggregate.values, " = "), per(&aggregate.window))
        }
        OpSpec::Dedupe(dedupe) => {
            format!("dedupe by {}{}", dedupe.by.join(", "), per(&dedupe.window))
        }
        OpSpec::Limit(n) => format!("limit {n}"),
    }
}

/// The label of one flow: its name and an operator per line; or, brief, its name and its
/// operators' kinds.
fn label(flow: &FlowSpec, detail: Detail) -> Vec<String> {
    let name = flow.name.clone();
    if detail == Detail::Brief {
        let kinds: Vec<&str> = flow.ops.iter().map(OpSpec::kind).collect();
        return vec![format!("{name}: {}", kinds.join(", "))];
    }
    std::iter::once(name).chain(flow.ops.iter().map(describe)).collect()
}

impl Graph {
    /// Adds `spec`'s stores and flows (store refs that do not parse, which a check rejects,
    /// are left out).
    pub fn add_sync(&mut self, spec: &SyncSpec) {
        for flow in &spec.flows {
            let Ok(to) = flow.to.parse::<StoreRef>() else { continue };
            self.node(&to, Node::Log);
            let text = label(flow, self.detail);
            for source in flow.from.refs() {
                let Ok(from) = source.parse::<StoreRef>() else { continue };
                self.node(&from, Node::Log);
                self.arrow(Arrow { from, to: to.clone(), label: text.clone(), line: Line::Thick });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{SpecFile, parse_manifest};
    use std::path::Path;

    const READINGS: &str = "apiVersion: knactor.dev/v1\nkind: Sync\nmetadata: {name: r}\nspec:\n  flows:\n    - name: energy\n      from: [lamp/energy, plug/energy]\n      to: house/energy\n      ops:\n        - derive: { wh: \"kwh * 1000\" }\n        - aggregate: { window: 1m, by: [room], values: { wh: \"sum(wh)\" } }\n        - sort: { by: [room], descending: true }\n";

    fn graph(detail: Detail) -> Graph {
        let file = SpecFile::from_text(Path::new("r.yaml"), READINGS);
        let manifest = parse_manifest::<SyncSpec>(&file, "Sync").unwrap_or_else(|e| panic!("{e}"));
        let mut graph = Graph::new(detail);
        graph.add_sync(&manifest.spec);
        graph
    }

    #[test]
    fn flows_are_thick_arrows_from_each_source_between_log_stores() {
        let mermaid = graph(Detail::Full).to_mermaid();
        assert!(mermaid.contains("  lamp_energy[(\"lamp/energy\")]\n"), "{mermaid}");
        let label = "energy<br/>derive wh = kwh * 1000<br/>aggregate wh = sum(wh) by room per 1m<br/>sort by room descending";
        for source in ["lamp_energy", "plug_energy"] {
            assert!(
                mermaid.contains(&format!("  {source} ==>|\"{label}\"| house_energy\n")),
                "{mermaid}"
            );
        }
        let dot = graph(Detail::Brief).to_dot();
        assert!(dot.contains("\"house/energy\" [shape=cylinder, style=solid];"), "{dot}");
        assert!(dot.contains("\"lamp/energy\" -> \"house/energy\" [penwidth=2, label=\"energy: derive, aggregate, sort\\l\"];"), "{dot}");
    }
}
