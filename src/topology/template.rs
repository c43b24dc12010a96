//! `${{ ... }}` references inside strings.
//!
//! References are found and checked here; the executor substitutes them.

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `${{ nodes.X.outputs.Y }}`
    Output { node: String, output: String },
    /// `${{ nodes.X.ip.NET }}`
    Ip { node: String, network: String },
    /// `${{ lab.name }}`
    LabName,
    /// `${{ tests.outputs.NAME }}`: a value an earlier step of the same
    /// test captured (test steps only).
    TestOutput { name: String },
}

/// One piece of a template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Ref(Reference),
}

/// Splits a string into text and references. The error names the bad
/// expression and says what is accepted.
pub fn parse(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 3..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("`{}` has no closing `}}}}`", &rest[start..]))?;
        parts.push(Part::Ref(parse_expression(after[..end].trim())?));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

/// The references in a string, without the text around them.
pub fn references(text: &str) -> Result<Vec<Reference>, String> {
    if !text.contains("${{") {
        return Ok(Vec::new());
    }
    Ok(parse(text)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Text(_) => None,
        })
        .collect())
}

fn parse_expression(expr: &str) -> Result<Reference, String> {
    let segments: Vec<&str> = expr.split('.').collect();
    match segments.as_slice() {
        ["lab", "name"] => Ok(Reference::LabName),
        ["nodes", node, "outputs", output] if !node.is_empty() && !output.is_empty() => {
            Ok(Reference::Output {
                node: node.to_string(),
                output: output.to_string(),
            })
        }
        ["nodes", node, "ip", network] if !node.is_empty() && !network.is_empty() => {
            Ok(Reference::Ip {
                node: node.to_string(),
                network: network.to_string(),
            })
        }
        ["tests", "outputs", name] if !name.is_empty() => Ok(Reference::TestOutput {
            name: name.to_string(),
        }),
        _ => Err(format!(
            "`${{{{ {expr} }}}}` is not a known reference; use nodes.NODE.outputs.NAME, nodes.NODE.ip.NETWORK, lab.name or (in tests) tests.outputs.NAME"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_text_and_references() {
        let parts = parse("id=${{ nodes.a.outputs.id }} at ${{nodes.b.ip.lan}}!").unwrap();
        assert_eq!(
            parts,
            vec![
                Part::Text("id=".into()),
                Part::Ref(Reference::Output {
                    node: "a".into(),
                    output: "id".into()
                }),
                Part::Text(" at ".into()),
                Part::Ref(Reference::Ip {
                    node: "b".into(),
                    network: "lan".into()
                }),
                Part::Text("!".into()),
            ]
        );
        assert_eq!(
            references("${{ lab.name }}").unwrap(),
            vec![Reference::LabName]
        );
        assert!(references("plain $HOME {{x}}").unwrap().is_empty());
    }

    #[test]
    fn refuses_bad_expressions() {
        assert!(parse("${{ nodes.a }}").is_err());
        assert!(parse("${{ nodes.a.outputs.id").is_err());
        assert!(parse("${{ env.HOME }}").is_err());
        assert!(parse("${{ nodes..outputs.x }}").is_err());
    }
}
