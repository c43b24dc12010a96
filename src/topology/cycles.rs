//! Dependency cycles among nodes, each named by its members.

use indexmap::IndexMap;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::model::Node;

/// Every cycle of the node dependency graph, as the names of its members in
/// dependency order (each depends on the next, the last on the first). The
/// first member is the one written first in the file.
pub fn find(nodes: &IndexMap<String, Node>) -> Vec<Vec<String>> {
    let mut graph: DiGraph<usize, ()> = DiGraph::new();
    let index: Vec<NodeIndex> = (0..nodes.len()).map(|i| graph.add_node(i)).collect();
    for (i, node) in nodes.values().enumerate() {
        for dep in &node.depends_on {
            if let Some(j) = nodes.get_index_of(&dep.node) {
                graph.add_edge(index[i], index[j], ());
            }
        }
    }
    let mut cycles = Vec::new();
    for scc in tarjan_scc(&graph) {
        let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
        if scc.len() < 2 && !self_loop {
            continue;
        }
        let start = scc
            .iter()
            .copied()
            .min_by_key(|n| graph[*n])
            .unwrap_or(scc[0]);
        let path = cycle_through(&graph, &scc, start);
        cycles.push(
            path.into_iter()
                .map(|n| {
                    nodes
                        .get_index(graph[n])
                        .map(|(k, _)| k.clone())
                        .unwrap_or_default()
                })
                .collect(),
        );
    }
    cycles.sort();
    cycles
}

/// A shortest cycle through `start` inside one strongly connected component,
/// found by breadth-first search, so the message names a real loop rather
/// than the whole component.
fn cycle_through(
    graph: &DiGraph<usize, ()>,
    scc: &[NodeIndex],
    start: NodeIndex,
) -> Vec<NodeIndex> {
    use std::collections::{HashMap, HashSet, VecDeque};
    let members: HashSet<NodeIndex> = scc.iter().copied().collect();
    let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph.neighbors(n).filter(|m| members.contains(m)).collect();
        next.sort_by_key(|m| graph[*m]);
        for m in next {
            if m == start {
                let mut path = vec![n];
                let mut cur = n;
                while cur != start {
                    cur = parent[&cur];
                    path.push(cur);
                }
                path.reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(m) {
                e.insert(n);
                queue.push_back(m);
            }
        }
    }
    vec![start]
}
