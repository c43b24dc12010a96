//! A small block-style YAML writer for the documents the engine generates.
//!
//! The cloud-init documents are built as `serde_json::Value`s and written
//! here, rather than pulling in a YAML serializer: every string is written
//! double-quoted with JSON escapes, which YAML 1.1 (cloud-init's PyYAML) and
//! 1.2 read identically, so no value can turn into a boolean (`no`, `on`),
//! a number or a comment, whatever the user put in a hostname or key. Block
//! style keeps the seed readable when someone mounts it to debug a boot.

use serde_json::Value;

/// `value` as a block-style YAML document, ending in a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => emit_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => emit_seq(&mut out, items, 0),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

fn emit_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (key, value) in map {
        push_indent(out, indent);
        out.push_str(&key_text(key));
        out.push(':');
        emit_value_after_key(out, value, indent + 2);
    }
}

fn emit_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        // A block item is written at the deeper indent and its first
        // indent is then replaced by "- ", which keeps the first key of a
        // mapping on the dash line as people write it.
        let mut inner = String::new();
        match item {
            Value::Object(map) if !map.is_empty() => emit_map(&mut inner, map, indent + 2),
            Value::Array(items) if !items.is_empty() => emit_seq(&mut inner, items, indent + 2),
            scalar => {
                push_indent(&mut inner, indent + 2);
                inner.push_str(&inline(scalar));
                inner.push('\n');
            }
        }
        push_indent(out, indent);
        out.push_str("- ");
        out.push_str(&inner[indent + 2..]);
    }
}

fn emit_value_after_key(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            emit_map(out, map, indent);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            emit_seq(out, items, indent);
        }
        scalar => {
            out.push(' ');
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A scalar or an empty collection on one line.
fn inline(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

/// Keys like `ssh_keys` or `set-name` stay plain; anything else is quoted.
fn key_text(key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain { key.to_owned() } else { quote(key) }
}

fn quote(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar with the same
    // meaning; serializing a `str` cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::yaml::load;
    use serde_json::json;

    fn round_trip(value: &Value) -> Value {
        let text = to_yaml(value);
        let loaded = load(&text, &Default::default());
        assert!(
            loaded.diagnostics.is_empty(),
            "{text}\n{:?}",
            loaded.diagnostics
        );
        loaded.document.expect("document").value
    }

    #[test]
    fn nested_documents_read_back_identically() {
        let value = json!({
            "version": 2,
            "users": [
                {"name": "bench", "lock_passwd": true, "keys": ["ssh-ed25519 AAAA c"]},
                "default",
            ],
            "empty_list": [],
            "empty_map": {},
            "nested": [[1, 2], [{"a": null}]],
            "set-name": "eth0",
            "tricky": {"no": "yes", "1.0": "on", "# not a comment": "a: b # c", "multi": "l1\nl2\n"},
        });
        assert_eq!(round_trip(&value), value);
    }

    #[test]
    fn layout_is_plain_block_style() {
        let text = to_yaml(&json!({"users": [{"name": "u", "shell": "/bin/bash"}], "n": 1}));
        assert_eq!(
            text,
            "users:\n  - name: \"u\"\n    shell: \"/bin/bash\"\nn: 1\n"
        );
    }
}
