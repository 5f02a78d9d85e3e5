//! Loops in a flow graph: fields that flow back into themselves through edges, stores that
//! feed themselves through flows, within one spec or across a composition's specs.

use std::collections::BTreeMap;

use petgraph::graph::DiGraph;

/// A loop: the nodes it goes through (sorted), and the labels of the arcs between them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loop<N, L> {
    /// The nodes, sorted.
    pub nodes: Vec<N>,
    /// The labels of the arcs from one of its nodes to another, in the order given.
    pub arcs: Vec<L>,
}

impl<N: std::fmt::Display, L> Loop<N, L> {
    /// `a → b → a`.
    pub fn describe(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(ToString::to_string).collect();
        format!("{} → {}", nodes.join(" → "), nodes[0])
    }
}

/// The loops of the graph of `arcs` (from, to, label): each strongly connected set of nodes
/// with an arc inside it (a node into itself counts).
pub fn loops<N: Ord + Clone, L: Clone>(
    arcs: impl IntoIterator<Item = (N, N, L)>,
) -> Vec<Loop<N, L>> {
    let mut graph = DiGraph::<N, L>::new();
    let mut nodes = BTreeMap::new();
    for (from, to, label) in arcs {
        let mut node = |n: N| *nodes.entry(n.clone()).or_insert_with(|| graph.add_node(n));
        let (from, to) = (node(from), node(to));
        graph.add_edge(from, to, label);
    }
    let mut found = Vec::new();
    for component in petgraph::algo::tarjan_scc(&graph) {
        let inside = |e: &petgraph::graph::EdgeIndex| {
            let (a, b) = graph.edge_endpoints(*e).expect("edge exists");
            component.contains(&a) && component.contains(&b)
        };
        let arcs: Vec<L> = graph.edge_indices().filter(inside).map(|e| graph[e].clone()).collect();
        if arcs.is_empty() {
            continue;
        }
        let mut nodes: Vec<N> = component.iter().map(|n| graph[*n].clone()).collect();
        nodes.sort();
        found.push(Loop { nodes, arcs });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_are_strongly_connected_nodes_with_their_arcs() {
        let found = loops([("a", "b", 1), ("b", "a", 2), ("b", "c", 3), ("d", "d", 4)]);
        let described: Vec<(String, Vec<i32>)> =
            found.iter().map(|l| (l.describe(), l.arcs.clone())).collect();
        assert_eq!(described.len(), 2);
        assert!(described.contains(&("a → b → a".to_owned(), vec![1, 2])), "{described:?}");
        assert!(described.contains(&("d → d".to_owned(), vec![4])), "{described:?}");
    }
}
