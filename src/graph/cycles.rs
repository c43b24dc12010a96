//! Dependency cycles among nodes, each named by its members, found on the
//! lab graph: the same edges `benchscale graph` draws and the executor
//! walks.

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::LabGraph;

/// Every cycle of the node dependency graph, as the names of its members in
/// dependency order (each depends on the next, the last on the first). The
/// first member is the one written first in the file.
pub fn find(lab: &LabGraph) -> Vec<Vec<String>> {
    // Nodes only, in file order; a wait on a step is a wait on its node.
    let names: Vec<&str> = lab.node_names().collect();
    let mut graph: DiGraph<usize, ()> = DiGraph::new();
    let index: Vec<NodeIndex> = (0..names.len()).map(|i| graph.add_node(i)).collect();
    let position: std::collections::HashMap<&str, usize> =
        names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    for (i, name) in names.iter().enumerate() {
        for (dep, _) in lab.waits_of(name) {
            if let Some(&j) = position.get(dep.as_str()) {
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
                .map(|n| names.get(graph[n]).map_or(String::new(), |s| s.to_string()))
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
