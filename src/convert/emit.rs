//! The converted lab as YAML text: a fixed key order, block style, and
//! every string either plain (when YAML reads it back as the same string)
//! or double-quoted with JSON escapes, so no value can turn into a number,
//! a boolean or a comment.

use std::fmt::Write;

use super::conditions::Conditions;
use super::docker_args::Limits;
use crate::topology::yaml::resolve_plain;

/// The header every topology file of the project starts with, so that
/// editors find the schema.
pub const HEADER: &str = "# yaml-language-server: $schema=../schemas/topology.schema.json";

/// What is written: one network at most, container nodes on it.
#[derive(Debug, Clone, Default)]
pub struct Lab {
    /// The v1 file's name, for the header comment.
    pub source: String,
    /// Comments after the header: metadata that has no key here.
    pub header: Vec<String>,
    pub name: String,
    pub description: Option<String>,
    pub network: Option<Network>,
    /// Comments at the top of `nodes`: nodes left out as a whole.
    pub node_comments: Vec<String>,
    pub nodes: Vec<Node>,
    /// Comments at the end: top-level keys left out.
    pub trailing: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Network {
    pub name: String,
    pub comments: Vec<String>,
    pub subnet: String,
    pub conditions: Option<Conditions>,
}

#[derive(Debug, Clone, Default)]
pub struct Node {
    pub name: String,
    pub comments: Vec<String>,
    pub image: String,
    pub env: Vec<(String, String)>,
    pub limits: Limits,
    /// Attached to the lab's network, with these conditions if any.
    pub attached: bool,
    pub conditions: Option<Conditions>,
}

/// The lab as a YAML document, ending in a newline.
pub fn emit(lab: &Lab) -> String {
    let mut out = String::new();
    line(&mut out, 0, HEADER);
    line(&mut out, 0, "#");
    comment(
        &mut out,
        0,
        &format!(
            "Converted by `benchscale convert` from the benchScale v1 topology {}.",
            lab.source
        ),
    );
    for c in &lab.header {
        comment(&mut out, 0, c);
    }
    line(&mut out, 0, &format!("name: {}", scalar(&lab.name)));
    if let Some(d) = &lab.description {
        line(&mut out, 0, &format!("description: {}", scalar(d)));
    }
    if let Some(net) = &lab.network {
        out.push('\n');
        line(&mut out, 0, "networks:");
        line(&mut out, 2, &format!("{}:", scalar(&net.name)));
        for c in &net.comments {
            comment(&mut out, 4, c);
        }
        line(&mut out, 4, &format!("subnet: {}", scalar(&net.subnet)));
        if let Some(c) = &net.conditions {
            conditions(&mut out, 4, c);
        }
    }
    out.push('\n');
    if lab.nodes.is_empty() && lab.node_comments.is_empty() {
        line(&mut out, 0, "nodes: {}");
    } else if lab.nodes.is_empty() {
        line(&mut out, 0, "nodes:");
        for c in &lab.node_comments {
            comment(&mut out, 2, c);
        }
        // A mapping with only comments in it is null; say it is empty.
        line(&mut out, 2, "{}");
    } else {
        line(&mut out, 0, "nodes:");
        for c in &lab.node_comments {
            comment(&mut out, 2, c);
        }
        for node in &lab.nodes {
            self::node(&mut out, node, lab.network.as_ref());
        }
    }
    if !lab.trailing.is_empty() {
        out.push('\n');
        for c in &lab.trailing {
            comment(&mut out, 0, c);
        }
    }
    out
}

fn node(out: &mut String, node: &Node, network: Option<&Network>) {
    line(out, 2, &format!("{}:", scalar(&node.name)));
    for c in &node.comments {
        comment(out, 4, c);
    }
    line(out, 4, "kind: container");
    line(out, 4, &format!("image: {}", scalar(&node.image)));
    if !node.env.is_empty() {
        line(out, 4, "env:");
        for (k, v) in &node.env {
            line(out, 6, &format!("{}: {}", scalar(k), scalar(v)));
        }
    }
    let l = &node.limits;
    if let Some(m) = l.memory_mib {
        line(out, 4, &format!("memory_mib: {m}"));
    }
    if let Some(c) = l.cpus {
        line(out, 4, &format!("cpus: {c}"));
    }
    if let Some(r) = l.read_only {
        line(out, 4, &format!("read_only: {r}"));
    }
    list(out, 4, "tmpfs", &l.tmpfs);
    list(out, 4, "cap_add", &l.cap_add);
    if let Some(p) = l.privileged {
        line(out, 4, &format!("privileged: {p}"));
    }
    if let Some(net) = network.filter(|_| node.attached) {
        match &node.conditions {
            None => line(out, 4, &format!("networks: [{}]", scalar(&net.name))),
            Some(c) => {
                line(out, 4, "networks:");
                line(out, 6, &format!("{}:", scalar(&net.name)));
                conditions(out, 8, c);
            }
        }
    }
}

fn conditions(out: &mut String, indent: usize, c: &Conditions) {
    match c {
        Conditions::Preset(name) => line(out, indent, &format!("conditions: {}", scalar(name))),
        Conditions::Set { preset, values } => {
            line(out, indent, "conditions:");
            if let Some(p) = preset {
                line(out, indent + 2, &format!("preset: {}", scalar(p)));
            }
            for (k, v) in values {
                line(out, indent + 2, &format!("{k}: {}", scalar(v)));
            }
        }
    }
}

fn list(out: &mut String, indent: usize, key: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    line(out, indent, &format!("{key}:"));
    for item in items {
        line(out, indent + 2, &format!("- {}", scalar(item)));
    }
}

fn line(out: &mut String, indent: usize, text: &str) {
    let _ = writeln!(out, "{:indent$}{text}", "");
}

/// A comment on one line, whatever the text holds.
fn comment(out: &mut String, indent: usize, text: &str) {
    let flat = text.replace(['\n', '\r'], " ");
    line(out, indent, &format!("# {flat}"));
}

/// A string as a YAML scalar: plain when that reads back as the same
/// string, double-quoted otherwise.
pub fn scalar(text: &str) -> String {
    let plain_chars = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " _./@+=:%-".contains(c));
    let plain = !text.is_empty()
        && plain_chars
        && text.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '/' || c == '_')
        && !text.ends_with([' ', ':'])
        && !text.contains(": ")
        && !text.contains(" #")
        && resolve_plain(text) == serde_json::Value::String(text.to_string());
    if plain {
        text.to_string()
    } else {
        serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_that_would_change_meaning_are_quoted() {
        assert_eq!(scalar("nginx:1.25"), "nginx:1.25");
        assert_eq!(scalar("10.210.0.0/24"), "10.210.0.0/24");
        assert_eq!(scalar("hello world"), "hello world");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("42"), "\"42\"");
        assert_eq!(scalar("0.5"), "\"0.5\"");
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar("x #y"), "\"x #y\"");
        assert_eq!(scalar("-rf"), "\"-rf\"");
        assert_eq!(scalar("line\nbreak"), "\"line\\nbreak\"");
        assert_eq!(scalar("*alias"), "\"*alias\"");
    }
}
