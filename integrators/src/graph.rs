//! Drawing a composition: stores as nodes (Object stores as boxes, Log stores as cylinders)
//! and what moves between them as labelled arrows — Cast edges solid, the stores an edge only
//! reads dashed, Sync flows thick — as Graphviz DOT or a Mermaid flowchart.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use data_exchange::StoreRef;

/// What kind of store a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// An Object store.
    Object,
    /// A Log store.
    Log,
}

/// How an arrow is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// A Cast edge, from a store that triggers it.
    Solid,
    /// A store a Cast edge reads without being triggered by it.
    Dashed,
    /// A Sync flow.
    Thick,
}

/// One arrow: its label's lines.
#[derive(Clone, Debug)]
pub struct Arrow {
    /// The store it leaves.
    pub from: StoreRef,
    /// The store it reaches.
    pub to: StoreRef,
    /// The label, one entry per line.
    pub label: Vec<String>,
    /// How it is drawn.
    pub line: Line,
}

/// How much a label says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Detail {
    /// Every condition, expression and operator.
    #[default]
    Full,
    /// The edge's or flow's name and the fields it moves or the operators it applies.
    Brief,
}

/// The stores and arrows of one or more specs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// How labels are written.
    pub detail: Detail,
    nodes: BTreeMap<StoreRef, Node>,
    arrows: Vec<Arrow>,
}

/// Joins an expression written over several lines onto one.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Graph {
    /// An empty graph whose labels say as much as `detail`.
    pub fn new(detail: Detail) -> Self {
        Graph { detail, ..Graph::default() }
    }

    /// Adds a store, once however many specs name it.
    pub fn node(&mut self, store: &StoreRef, kind: Node) {
        self.nodes.insert(store.clone(), kind);
    }

    /// Adds an arrow (its stores must have been added).
    pub fn arrow(&mut self, arrow: Arrow) {
        self.arrows.push(arrow);
    }

    /// The graph in Graphviz DOT.
    pub fn to_dot(&self) -> String {
        let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut dot =
            String::from("digraph knactor {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
        for (store, kind) in &self.nodes {
            let shape = if *kind == Node::Log { " [shape=cylinder, style=solid]" } else { "" };
            let _ = writeln!(dot, "  \"{store}\"{shape};");
        }
        for Arrow { from, to, label, line } in &self.arrows {
            let text = label.iter().map(|l| escape(l)).collect::<Vec<_>>().join("\\l");
            let style = match line {
                Line::Solid => "",
                Line::Dashed => "style=dashed, ",
                Line::Thick => "penwidth=2, ",
            };
            let _ = writeln!(dot, "  \"{from}\" -> \"{to}\" [{style}label=\"{text}\\l\"];");
        }
        dot.push_str("}\n");
        dot
    }

    /// The graph as a Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        let id = |store: &StoreRef| store.to_string().replace(['/', '-', '.'], "_");
        let escape = |s: &str| s.replace('"', "#quot;");
        let mut out = String::from("flowchart LR\n");
        for (store, kind) in &self.nodes {
            let (open, close) = if *kind == Node::Log { ("[(", ")]") } else { ("[", "]") };
            let _ = writeln!(out, "  {}{open}\"{store}\"{close}", id(store));
        }
        for Arrow { from, to, label, line } in &self.arrows {
            let text = label.iter().map(|l| escape(l)).collect::<Vec<_>>().join("<br/>");
            let arrow = match line {
                Line::Solid => "-->",
                Line::Dashed => "-.->",
                Line::Thick => "==>",
            };
            let _ = writeln!(out, "  {} {arrow}|\"{text}\"| {}", id(from), id(to));
        }
        out
    }
}
