//! DOT and Mermaid renderings of the lab graph.

use std::fmt::Write;

use petgraph::visit::EdgeRef;

use super::{Edge, LabGraph, Vertex};

fn dot_id(v: &Vertex) -> String {
    match v {
        Vertex::Network(n) => format!("\"network:{n}\""),
        Vertex::Node(n) => format!("\"node:{n}\""),
        Vertex::Step { node, index, .. } => format!("\"step:{node}:{index}\""),
    }
}

fn mermaid_id(v: &Vertex) -> String {
    // Names hold only [a-z0-9-]; mapping `-` to `_` keeps IDs distinct and
    // valid in Mermaid, where `-` can start an arrow.
    match v {
        Vertex::Network(n) => format!("net_{}", n.replace('-', "_")),
        Vertex::Node(n) => format!("node_{}", n.replace('-', "_")),
        Vertex::Step { node, index, .. } => format!("step_{}_{index}", node.replace('-', "_")),
    }
}

fn label(v: &Vertex) -> String {
    let raw = match v {
        Vertex::Network(n) => format!("network {n}"),
        Vertex::Node(n) => n.clone(),
        Vertex::Step { node, name, .. } => format!("{node}: {name}"),
    };
    raw.replace('\\', "\\\\").replace('"', "'")
}

fn edge_label(e: &Edge) -> Option<String> {
    match e {
        Edge::Attached | Edge::Then => None,
        Edge::Waits {
            condition,
            implicit,
        } => Some(if *implicit {
            format!("{} (reference)", condition.as_str())
        } else {
            condition.as_str().to_string()
        }),
    }
}

/// Graphviz DOT.
pub fn to_dot(lab: &LabGraph) -> String {
    let mut out = String::from("digraph lab {\n  rankdir=LR;\n");
    for i in lab.graph.node_indices() {
        let v = &lab.graph[i];
        let shape = match v {
            Vertex::Network(_) => "ellipse",
            Vertex::Node(_) => "box",
            Vertex::Step { .. } => "note",
        };
        let _ = writeln!(
            out,
            "  {} [label=\"{}\", shape={shape}];",
            dot_id(v),
            label(v)
        );
    }
    for e in lab.graph.edge_references() {
        let (a, b) = (&lab.graph[e.source()], &lab.graph[e.target()]);
        let style = match e.weight() {
            Edge::Attached => " [style=dashed]".to_string(),
            Edge::Then => String::new(),
            w => format!(" [label=\"{}\"]", edge_label(w).unwrap_or_default()),
        };
        let _ = writeln!(out, "  {} -> {}{style};", dot_id(a), dot_id(b));
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart.
pub fn to_mermaid(lab: &LabGraph) -> String {
    let mut out = String::from("flowchart LR\n");
    for i in lab.graph.node_indices() {
        let v = &lab.graph[i];
        let (open, close) = match v {
            Vertex::Network(_) => ("((", "))"),
            Vertex::Node(_) => ("[", "]"),
            Vertex::Step { .. } => ("[/", "/]"),
        };
        let _ = writeln!(out, "  {}{open}\"{}\"{close}", mermaid_id(v), label(v));
    }
    for e in lab.graph.edge_references() {
        let (a, b) = (
            mermaid_id(&lab.graph[e.source()]),
            mermaid_id(&lab.graph[e.target()]),
        );
        let arrow = match e.weight() {
            Edge::Attached => " -.-> ".to_string(),
            Edge::Then => " --> ".to_string(),
            w => format!(" -->|{}| ", edge_label(w).unwrap_or_default()),
        };
        let _ = writeln!(out, "  {a}{arrow}{b}");
    }
    out
}
