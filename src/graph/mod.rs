//! The lab as a dependency graph of networks, nodes and provisioning steps:
//! the one dependency structure. Resolving refuses its cycles
//! ([`cycles::find`]), `benchscale graph` draws it, and the executor's node
//! jobs wait along its edges ([`LabGraph::waits_of`]).
//!
//! Edges point from what must happen first to what waits for it.
//!
//! Architecture Invariant: no I/O here; DOT and Mermaid are rendered from
//! the same graph.

pub mod cycles;
mod render;

use std::collections::HashMap;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

pub use render::{to_dot, to_mermaid};

use crate::topology::model::{Condition, Topology};

/// A vertex of the lab graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vertex {
    Network(String),
    Node(String),
    Step {
        node: String,
        index: usize,
        name: String,
    },
}

/// Why one vertex waits for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// A node is attached to a network, which must exist first.
    Attached,
    /// A node's steps run after it is healthy, one after another.
    Then,
    /// `depends_on`, or a `${{ ... }}` reference when `implicit`.
    Waits {
        condition: Condition,
        implicit: bool,
    },
}

/// The graph and an index of its vertices by name.
#[derive(Debug, Clone)]
pub struct LabGraph {
    pub graph: DiGraph<Vertex, Edge>,
    networks: HashMap<String, NodeIndex>,
    nodes: HashMap<String, NodeIndex>,
}

impl LabGraph {
    /// The vertex of a network.
    pub fn network(&self, name: &str) -> Option<NodeIndex> {
        self.networks.get(name).copied()
    }

    /// The vertex of a node.
    pub fn node(&self, name: &str) -> Option<NodeIndex> {
        self.nodes.get(name).copied()
    }

    /// The node names, in the order of the file.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.graph
            .node_indices()
            .filter_map(|i| match &self.graph[i] {
                Vertex::Node(name) => Some(name.as_str()),
                _ => None,
            })
    }

    /// What a node waits for before it is created: each node it depends
    /// on (explicitly or through a reference) with the condition, once.
    pub fn waits_of(&self, name: &str) -> Vec<(String, Condition)> {
        let Some(v) = self.node(name) else {
            return Vec::new();
        };
        let mut waits: Vec<(String, Condition)> = self
            .graph
            .edges_directed(v, petgraph::Direction::Incoming)
            .filter_map(|e| match (e.weight(), &self.graph[e.source()]) {
                (Edge::Waits { condition, .. }, Vertex::Node(dep))
                | (Edge::Waits { condition, .. }, Vertex::Step { node: dep, .. }) => {
                    Some((dep.clone(), *condition))
                }
                _ => None,
            })
            .collect();
        // petgraph lists incoming edges newest first: back to file order.
        waits.reverse();
        waits
    }
}

/// Builds the graph of a resolved topology.
pub fn build(topology: &Topology) -> LabGraph {
    let mut graph = DiGraph::new();
    let mut networks = HashMap::new();
    let mut nodes = HashMap::new();
    let mut last_step = HashMap::new();
    for name in topology.networks.keys() {
        networks.insert(name.clone(), graph.add_node(Vertex::Network(name.clone())));
    }
    for (name, node) in &topology.nodes {
        let v = graph.add_node(Vertex::Node(name.clone()));
        nodes.insert(name.clone(), v);
        let mut previous = v;
        for (index, step) in node.provision.iter().enumerate() {
            let s = graph.add_node(Vertex::Step {
                node: name.clone(),
                index,
                name: step.name.clone(),
            });
            graph.add_edge(previous, s, Edge::Then);
            previous = s;
        }
        last_step.insert(name.clone(), previous);
    }
    for (name, node) in &topology.nodes {
        let v = nodes[name];
        for attachment in &node.networks {
            if let Some(n) = networks.get(&attachment.network) {
                graph.add_edge(*n, v, Edge::Attached);
            }
        }
        for dep in &node.depends_on {
            let from = match dep.condition {
                Condition::Provisioned => last_step.get(&dep.node),
                _ => nodes.get(&dep.node),
            };
            if let Some(from) = from {
                graph.add_edge(
                    *from,
                    v,
                    Edge::Waits {
                        condition: dep.condition,
                        implicit: dep.implicit,
                    },
                );
            }
        }
    }
    LabGraph {
        graph,
        networks,
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{AnyFile, load_str};
    use std::path::Path;

    #[test]
    fn provisioned_dependencies_start_at_the_last_step() {
        let text = "name: g\nnetworks:\n  lan: {subnet: 10.9.0.0/24}\nnodes:\n  a:\n    kind: container\n    image: i\n    networks: [lan]\n    provision:\n      - run: x\n        capture: id\n  b:\n    kind: container\n    image: i\n    env: {ID: '${{ nodes.a.outputs.id }}'}\n";
        let topology = load_str(Path::new("g.yaml"), text, &AnyFile).unwrap();
        let lab = build(&topology);
        let b = lab.node("b").unwrap();
        let from: Vec<&Vertex> = lab
            .graph
            .neighbors_directed(b, petgraph::Direction::Incoming)
            .map(|n| &lab.graph[n])
            .collect();
        assert_eq!(
            from,
            [&Vertex::Step {
                node: "a".into(),
                index: 0,
                name: "step-1".into()
            }]
        );
        assert!(petgraph::algo::toposort(&lab.graph, None).is_ok());
        assert!(lab.network("lan").is_some());
    }
}
