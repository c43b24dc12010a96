//! Reading a v1 topology into the output model, value by value, reporting
//! what has no place in this format.

use serde_json::{Map, Value};

use super::conditions::{self, kind};
use super::emit::{Lab, Network, Node};
use super::{Source, docker_args, names, templated};
use crate::topology::net::{CidrError, Ipv4Net};
use crate::topology::spans::escape_segment;

/// The subnet written when the v1 one cannot be used: the one the
/// format's own examples use, so the output validates and the choice is
/// easy to spot.
pub const DEFAULT_SUBNET: &str = "10.210.0.0/24";
/// The network's name when the v1 file gives none.
const DEFAULT_NETWORK: &str = "lan";

fn at(parent: &str, key: &str) -> String {
    format!("{parent}/{}", escape_segment(key))
}

/// Reads the whole file. `root` is a map with `metadata` or a `nodes` list.
pub fn read(src: &mut Source<'_>, root: &Map<String, Value>) -> Lab {
    let mut lab = Lab {
        source: std::path::Path::new(src.file()).file_name().map_or_else(
            || src.file().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        ..Lab::default()
    };
    let mut name = None;
    for (key, value) in root {
        let ptr = at("", key);
        match key.as_str() {
            "metadata" => name = metadata(src, &ptr, value, &mut lab),
            "network" => lab.network = network(src, &ptr, value, &mut lab.trailing),
            "nodes" => {}
            _ => {
                let why = if key == "validation" {
                    "this format checks a lab with `tests`, which work differently".to_string()
                } else {
                    format!("`{key}` is not a v1 key this format has a place for")
                };
                lab.trailing
                    .push(src.left_out_entry(&ptr, key, value, &why));
            }
        }
    }
    lab.name = lab_name(src, name);
    match root.get("nodes") {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let ptr = format!("/nodes/{i}");
                let taken: Vec<String> = lab.nodes.iter().map(|n| n.name.clone()).collect();
                match node(src, &ptr, item, &taken, lab.network.as_ref()) {
                    Ok(n) => lab.nodes.push(n),
                    Err(comment) => lab.node_comments.push(comment),
                }
            }
        }
        Some(other) => {
            let c = src.left_out_entry("/nodes", "nodes", other, "v1 nodes are a list");
            lab.node_comments.push(c);
        }
        None => {}
    }
    lab
}

/// The metadata block; returns the v1 name, with its place.
fn metadata(
    src: &mut Source<'_>,
    ptr: &str,
    value: &Value,
    lab: &mut Lab,
) -> Option<(String, String)> {
    let Value::Object(map) = value else {
        lab.header
            .push(src.left_out_entry(ptr, "metadata", value, "metadata is a map"));
        return None;
    };
    let mut name = None;
    let mut kept = Vec::new();
    for (key, v) in map {
        let p = at(ptr, key);
        match (key.as_str(), v) {
            ("name", Value::String(s)) if !templated(s) => name = Some((s.clone(), p)),
            ("description", Value::String(s)) if !templated(s) => lab.description = Some(s.clone()),
            // No key of this format holds them; a comment keeps them.
            ("version" | "tags", Value::String(_) | Value::Number(_) | Value::Array(_)) => {
                kept.push(format!("{key}: {}", super::show(v)));
            }
            ("name" | "description", Value::String(_)) => {
                let c =
                    src.left_out_entry(&p, key, v, "it is a template another tool was to fill in");
                lab.header.push(c);
            }
            ("name" | "description", _) => {
                let c = src.left_out_entry(
                    &p,
                    key,
                    v,
                    &format!("`{key}` is text, and this is {}", kind(v)),
                );
                lab.header.push(c);
            }
            _ => {
                let c = src.left_out_entry(
                    &p,
                    key,
                    v,
                    &format!("`metadata.{key}` has no place in this format"),
                );
                lab.header.push(c);
            }
        }
    }
    if !kept.is_empty() {
        lab.header.insert(
            0,
            format!(
                "v1 metadata with no key in this format: {}",
                kept.join("; ")
            ),
        );
    }
    name
}

/// The lab's name: the v1 name made valid, else the file's name.
fn lab_name(src: &mut Source<'_>, name: Option<(String, String)>) -> String {
    match name {
        Some((given, ptr)) => {
            let fixed = names::fix(&given, "lab");
            if fixed != given {
                src.note(&ptr, format!("lab name `{given}` became `{fixed}`, a valid name (^[a-z][a-z0-9-]{{0,62}}$)"));
            }
            fixed
        }
        None => {
            let stem = std::path::Path::new(src.file())
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let fixed = names::fix(&stem, "lab");
            src.note(
                "",
                format!("no usable `metadata.name`: the lab is named `{fixed}` after the file"),
            );
            fixed
        }
    }
}

/// The one v1 network.
fn network(
    src: &mut Source<'_>,
    ptr: &str,
    value: &Value,
    trailing: &mut Vec<String>,
) -> Option<Network> {
    let Value::Object(map) = value else {
        trailing.push(src.left_out_entry(ptr, "network", value, "a v1 network is a map"));
        return None;
    };
    let mut net = Network::default();
    let mut name = None;
    let mut subnet = None;
    for (key, v) in map {
        let p = at(ptr, key);
        match (key.as_str(), v) {
            ("name", Value::String(s)) if !templated(s) => name = Some((s.clone(), p)),
            ("subnet", _) => subnet = Some((v.clone(), p)),
            ("conditions" | "preset", _) => {}
            _ => {
                let why = if matches!(v, Value::String(s) if templated(s)) {
                    "it is a template another tool was to fill in".to_string()
                } else {
                    format!("`network.{key}` has no place in this format")
                };
                net.comments.push(src.left_out_entry(&p, key, v, &why));
            }
        }
    }
    net.name = match name {
        Some((given, p)) => {
            let fixed = names::fix(&given, "net");
            if fixed != given {
                src.note(&p, format!("network name `{given}` became `{fixed}`"));
            }
            fixed
        }
        None => {
            src.note(
                ptr,
                format!("the network has no usable `name`: it is named `{DEFAULT_NETWORK}`"),
            );
            DEFAULT_NETWORK.to_string()
        }
    };
    net.subnet = self::subnet(src, ptr, subnet, &mut net.comments);
    // `preset` next to `conditions` is their base, as in this format.
    let mut combined = match map.get("conditions") {
        Some(Value::Object(c)) => c.clone(),
        Some(other) if !other.is_null() => {
            net.comments.push(src.left_out(
                &at(ptr, "conditions"),
                other,
                "v1 conditions are a map",
            ));
            Map::new()
        }
        _ => Map::new(),
    };
    if let Some(p) = map.get("preset") {
        combined.insert("preset".into(), p.clone());
    }
    let cptr = if map.contains_key("conditions") {
        at(ptr, "conditions")
    } else {
        ptr.to_string()
    };
    if !combined.is_empty() {
        net.conditions =
            conditions::convert(src, &cptr, &Value::Object(combined), &mut net.comments)
                // Nothing added is the same as no conditions on a network.
                .filter(|c| *c != conditions::Conditions::Preset("localhost".into()));
    }
    Some(net)
}

/// The v1 subnet if it is an IPv4 CIDR; else [`DEFAULT_SUBNET`], reported.
fn subnet(
    src: &mut Source<'_>,
    net_ptr: &str,
    given: Option<(Value, String)>,
    comments: &mut Vec<String>,
) -> String {
    let (value, ptr) = match given {
        Some(g) => g,
        None => {
            src.note(
                net_ptr,
                format!("the network has no `subnet`: it gets {DEFAULT_SUBNET}"),
            );
            comments.push(format!(
                "subnet: {DEFAULT_SUBNET} chosen by convert (the v1 network had none)"
            ));
            return DEFAULT_SUBNET.to_string();
        }
    };
    let why = match &value {
        Value::String(s) if templated(s) => {
            "it is a template another tool was to fill in".to_string()
        }
        Value::String(s) => match s.trim().parse::<Ipv4Net>() {
            Ok(net) => return net.to_string(),
            Err(CidrError::HostBits { network, .. }) => {
                src.note(
                    &ptr,
                    format!("subnet `{s}` has host bits set: it became {network}"),
                );
                return network.to_string();
            }
            Err(e) => e.to_string(),
        },
        other => format!(
            "a subnet is text such as 10.0.0.0/24, and this is {}",
            kind(other)
        ),
    };
    let c = src.left_out_entry(
        &ptr,
        "subnet",
        &value,
        &format!("{why}; {DEFAULT_SUBNET} is used instead"),
    );
    comments.push(c);
    DEFAULT_SUBNET.to_string()
}

/// One v1 node; `Err` holds the comment that keeps a node left out.
fn node(
    src: &mut Source<'_>,
    ptr: &str,
    value: &Value,
    taken: &[String],
    network: Option<&Network>,
) -> Result<Node, String> {
    let Value::Object(map) = value else {
        return Err(src.left_out_entry(
            ptr,
            "",
            value,
            "a v1 node is a map with `name` and `image`",
        ));
    };
    let image = match map.get("image") {
        Some(Value::String(s)) if !s.trim().is_empty() && !templated(s) => s.clone(),
        Some(Value::String(s)) if templated(s) => {
            return Err(src.left_out_entry(
                ptr,
                "",
                value,
                "its image is a template another tool was to fill in, and a container needs one",
            ));
        }
        _ => {
            return Err(src.left_out_entry(
                ptr,
                "",
                value,
                "it has no image, and a container needs one",
            ));
        }
    };
    let mut node = Node {
        image,
        attached: network.is_some(),
        ..Node::default()
    };
    node.name = node_name(src, ptr, map, taken);
    for (key, v) in map {
        let p = at(ptr, key);
        match key.as_str() {
            "name" | "image" => {}
            "env" => env(src, &p, v, &mut node),
            "network_conditions" if network.is_some() => {
                node.conditions = conditions::convert(src, &p, v, &mut node.comments);
            }
            "network_conditions" => {
                let c =
                    src.left_out_entry(&p, key, v, "the v1 file has no network to apply them on");
                node.comments.push(c);
            }
            "metadata" => node_metadata(src, &p, v, &mut node),
            _ => {
                let c = src.left_out_entry(
                    &p,
                    key,
                    v,
                    &format!("`{key}` is not a v1 node key this format has a place for"),
                );
                node.comments.push(c);
            }
        }
    }
    Ok(node)
}

fn node_name(
    src: &mut Source<'_>,
    ptr: &str,
    map: &Map<String, Value>,
    taken: &[String],
) -> String {
    let p = at(ptr, "name");
    let given = match map.get("name") {
        Some(Value::String(s)) if !templated(s) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let fixed = names::unique(
        names::fix(given.as_deref().unwrap_or_default(), "node"),
        taken,
    );
    match given {
        Some(g) if g != fixed => src.note(&p, format!("node name `{g}` became `{fixed}`")),
        Some(_) => {}
        None => src.note(
            &p,
            format!("a node without a usable `name` is named `{fixed}`"),
        ),
    }
    fixed
}

fn env(src: &mut Source<'_>, ptr: &str, value: &Value, node: &mut Node) {
    let Value::Object(map) = value else {
        if !value.is_null() {
            node.comments.push(src.left_out_entry(
                ptr,
                "env",
                value,
                "env is a map of names to values",
            ));
        }
        return;
    };
    for (key, v) in map {
        let p = at(ptr, key);
        let text = match v {
            Value::String(s) if templated(s) => {
                let c =
                    src.left_out_entry(&p, key, v, "it is a template another tool was to fill in");
                node.comments.push(c);
                continue;
            }
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                let c = src.left_out_entry(
                    &p,
                    key,
                    other,
                    &format!("an environment value is text, and this is {}", kind(other)),
                );
                node.comments.push(c);
                continue;
            }
        };
        node.env.push((key.clone(), text));
    }
}

fn node_metadata(src: &mut Source<'_>, ptr: &str, value: &Value, node: &mut Node) {
    let Value::Object(map) = value else {
        node.comments
            .push(src.left_out_entry(ptr, "metadata", value, "node metadata is a map"));
        return;
    };
    for (key, v) in map {
        let p = at(ptr, key);
        match (key.as_str(), v) {
            ("docker_args", Value::Array(items)) => {
                // Non-text items and templates are reported here; the rest
                // are read as flags, keeping their index for the report.
                let mut texts = Vec::new();
                let mut index = Vec::new();
                let mut left = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let ip = format!("{p}/{i}");
                    match item {
                        Value::String(s) if !templated(s) => {
                            texts.push(s.clone());
                            index.push(i);
                        }
                        Value::String(_) => left.push((
                            i,
                            "it is a template another tool was to fill in".to_string(),
                            ip,
                        )),
                        other => left.push((
                            i,
                            format!("a docker argument is text, and this is {}", kind(other)),
                            ip,
                        )),
                    }
                }
                let (limits, skipped) = docker_args::parse(&texts);
                for s in skipped {
                    let i = index.get(s.index).copied().unwrap_or(0);
                    left.push((i, s.reason, format!("{p}/{i}")));
                }
                // In the order of the list, as the user reads it.
                left.sort_by_key(|(i, _, _)| *i);
                for (i, why, ip) in left {
                    let item = items.get(i).unwrap_or(&Value::Null);
                    node.comments.push(src.left_out_entry(&ip, "", item, &why));
                }
                node.limits = limits;
            }
            ("docker_args", other) => {
                let c = src.left_out_entry(&p, key, other, "docker_args is a list of flags");
                node.comments.push(c);
            }
            _ => {
                let c = src.left_out_entry(
                    &p,
                    key,
                    v,
                    &format!("`metadata.{key}` of a node has no place in this format"),
                );
                node.comments.push(c);
            }
        }
    }
}
