//! The JSON Schema: generated from the raw types, and used to validate.
//!
//! Validation errors are turned into diagnostics with the span of the value
//! or key they are about, a stable code and a help line. Unknown fields get a
//! "did you mean" suggestion from the properties the schema allows there.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::raw::{NAME_PATTERN, OUTPUT_PATTERN, RawTopology};
use super::spans::{SpanMap, escape_segment};
use crate::diagnostics::Diagnostic;

/// The schema as a JSON value, generated from [`RawTopology`].
pub fn schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<RawTopology>();
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

/// The schema as checked in at `schemas/topology.schema.json`.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    text.push('\n');
    text
}

fn compiled() -> &'static (Value, Option<Validator>) {
    static COMPILED: OnceLock<(Value, Option<Validator>)> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let schema = schema();
        let validator = jsonschema::draft202012::new(&schema).ok();
        (schema, validator)
    })
}

/// Validates a loaded document. Returns diagnostics and the pointers of
/// unknown fields, which the caller may prune to check the rest.
pub fn validate(value: &Value, spans: &SpanMap) -> (Vec<Diagnostic>, Vec<String>) {
    let (schema, validator) = compiled();
    let Some(validator) = validator else {
        let d = Diagnostic::new(
            "benchscale::internal",
            "the built-in schema does not compile; this is a bug in benchscale",
        );
        return (vec![d], Vec::new());
    };
    let mut out = Mapper {
        schema,
        spans,
        diagnostics: Vec::new(),
        unknown: Vec::new(),
    };
    for error in validator.iter_errors(value) {
        out.map(&error);
    }
    (out.diagnostics, out.unknown)
}

struct Mapper<'a> {
    schema: &'a Value,
    spans: &'a SpanMap,
    diagnostics: Vec<Diagnostic>,
    unknown: Vec<String>,
}

/// Whether `pointer` is `/networks/NAME/router`.
fn is_network_router(pointer: &str) -> bool {
    let parts: Vec<&str> = pointer.split('/').collect();
    matches!(parts.as_slice(), ["", "networks", _, "router"])
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal number",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn json_type_name(name: &str) -> &'static str {
    match name {
        "null" => "nothing",
        "boolean" => "a boolean (true or false)",
        "integer" => "a whole number",
        "number" => "a number",
        "string" => "a string",
        "array" => "a list",
        "object" => "a map",
        _ => "another type",
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

impl Mapper<'_> {
    /// The schema object that holds the keyword at `schema_path`.
    fn schema_at(&self, schema_path: &str) -> Option<&Value> {
        let parent = &schema_path[..schema_path.rfind('/')?];
        self.schema.pointer(parent)
    }

    fn map(&mut self, error: &ValidationError<'_>) {
        let pointer = error.instance_path().as_str().to_string();
        let instance = error.instance();
        let value_span = self.spans.value(&pointer);
        let d = match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let allowed: Vec<String> = self
                    .schema_at(error.schema_path().as_str())
                    .and_then(|s| s.get("properties"))
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default();
                for key in unexpected {
                    let at = format!("{pointer}/{}", escape_segment(key));
                    let mut d = Diagnostic::new(
                        "benchscale::schema::unknown_field",
                        format!("unknown field `{key}`"),
                    )
                    .with_opt_span(self.spans.key(&at), "not a field here")
                    .with_pointer(at.clone());
                    d = match suggest(key, &allowed) {
                        Some(best) => d.with_help(format!("did you mean `{best}`?")),
                        None => d.with_help(format!("allowed here: {}", allowed.join(", "))),
                    };
                    self.unknown.push(at);
                    self.diagnostics.push(d);
                }
                return;
            }
            // A list of routers for one network: say why one, not only
            // that a string was expected.
            ValidationErrorKind::Type { .. }
                if instance.is_array() && is_network_router(&pointer) =>
            {
                let network = pointer.split('/').nth(2).unwrap_or_default();
                Diagnostic::new(
                    "benchscale::router::two_routers",
                    format!(
                        "network `{network}` names {} routers; a network has one router, its nodes' one default route",
                        instance.as_array().map_or(0, Vec::len)
                    ),
                )
                .with_opt_span(value_span, "one node here")
                .with_help("name one router node; put the others' homes on networks of their own")
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => json_type_name(&t.to_string()).to_string(),
                    // `null` stands for "left out", which needs no mention.
                    TypeKind::Multiple(set) => set
                        .iter()
                        .filter(|t| t.to_string() != "null")
                        .map(|t| json_type_name(&t.to_string()))
                        .collect::<Vec<_>>()
                        .join(" or "),
                };
                Diagnostic::new(
                    "benchscale::schema::wrong_type",
                    format!("expected {expected}, found {}", type_name(instance)),
                )
                .with_opt_span(value_span, "wrong type")
                .with_help(format!("write {expected} here"))
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let at = if pointer.is_empty() {
                    // The whole document: point at its first character.
                    self.spans.value("").map(|r| r.start..r.start)
                } else {
                    self.spans.key(&pointer)
                };
                Diagnostic::new(
                    "benchscale::schema::missing_field",
                    format!("missing required field `{name}`"),
                )
                .with_opt_span(at, format!("`{name}` is missing here"))
                .with_help(format!("add `{name}:`"))
            }
            ValidationErrorKind::Enum { options } => {
                let options: Vec<String> = options
                    .as_array()
                    .map(|a| a.iter().filter_map(|o| o.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                let given = instance.as_str().unwrap_or_default();
                let help = match suggest(given, &options) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!("use one of: {}", options.join(", ")),
                };
                Diagnostic::new(
                    "benchscale::schema::invalid_value",
                    format!("{} is not one of: {}", show(instance), options.join(", ")),
                )
                .with_opt_span(value_span, "not allowed")
                .with_help(help)
            }
            // A version of the wrong type gets a type error already.
            ValidationErrorKind::Constant { .. } if pointer == "/version" && !instance.is_number() => return,
            ValidationErrorKind::Constant { expected_value } if pointer == "/version" => {
                Diagnostic::new(
                    "benchscale::version::unsupported",
                    format!("topology format version {} is not supported", show(instance)),
                )
                .with_opt_span(value_span, "unsupported version")
                .with_help(format!(
                    "this benchscale reads version {expected_value}; write `version: {expected_value}` or leave it out"
                ))
            }
            ValidationErrorKind::Pattern { pattern } => pattern_diagnostic(
                pattern,
                instance.as_str().unwrap_or_default(),
                value_span,
                &pointer,
            ),
            ValidationErrorKind::PropertyNames { error } => {
                let name = error.instance().as_str().unwrap_or_default().to_string();
                let at = format!("{pointer}/{}", escape_segment(&name));
                pattern_diagnostic(NAME_PATTERN, &name, self.spans.key(&at), &at).with_pointer(at)
            }
            ValidationErrorKind::Minimum { limit } | ValidationErrorKind::ExclusiveMinimum { limit } => {
                Diagnostic::new(
                    "benchscale::schema::out_of_range",
                    format!("{} is below the minimum of {limit}", show(instance)),
                )
                .with_opt_span(value_span, "too small")
                .with_help(format!("use a value of at least {limit}"))
            }
            ValidationErrorKind::Maximum { limit } | ValidationErrorKind::ExclusiveMaximum { limit } => {
                Diagnostic::new(
                    "benchscale::schema::out_of_range",
                    format!("{} is above the maximum of {limit}", show(instance)),
                )
                .with_opt_span(value_span, "too large")
                .with_help(format!("use a value of at most {limit}"))
            }
            ValidationErrorKind::MinItems { .. } => Diagnostic::new(
                "benchscale::schema::empty_list",
                "this list must not be empty",
            )
            .with_opt_span(value_span, "empty")
            .with_help("give at least one item"),
            ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
                // An untagged choice (such as a list or a map of networks).
                // When exactly one alternative accepts the value's type, its
                // errors are the useful ones; otherwise say what is expected.
                let fitting: Vec<&Vec<ValidationError<'static>>> = context
                    .iter()
                    .filter(|errors| {
                        !errors.iter().any(|e| {
                            e.instance_path().as_str() == pointer
                                && matches!(e.kind(), ValidationErrorKind::Type { .. })
                        })
                    })
                    .collect();
                if let [only] = fitting.as_slice() {
                    for e in only.iter() {
                        self.map(e);
                    }
                    return;
                }
                let expected = self.alternatives(error.schema_path().as_str());
                Diagnostic::new(
                    "benchscale::schema::wrong_type",
                    format!("expected {expected}, found {}", type_name(instance)),
                )
                .with_opt_span(value_span, "wrong type")
                .with_help(format!("write {expected} here"))
            }
            _ => Diagnostic::new("benchscale::schema::invalid_value", error.to_string())
                .with_opt_span(value_span, "invalid")
                .with_help("see schemas/topology.schema.json for what is allowed here"),
        };
        self.diagnostics.push(d.with_pointer(pointer));
    }

    /// "a string or a list" for an `anyOf` whose alternatives have types.
    fn alternatives(&self, schema_path: &str) -> String {
        let branches = self
            .schema
            .pointer(schema_path)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut names: Vec<&'static str> = Vec::new();
        for branch in &branches {
            let branch = match branch.get("$ref").and_then(Value::as_str) {
                Some(r) => self
                    .schema
                    .pointer(r.trim_start_matches('#'))
                    .unwrap_or(branch),
                None => branch,
            };
            if let Some(t) = branch.get("type").and_then(Value::as_str) {
                let name = json_type_name(t);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        if names.is_empty() {
            "another value".into()
        } else {
            names.join(" or ")
        }
    }
}

/// Why a name does not match [`NAME_PATTERN`].
fn name_problem(name: &str) -> &'static str {
    if name.is_empty() {
        "it is empty"
    } else if name.chars().count() > 63 {
        "it is longer than 63 characters (a DNS label: node names become host names)"
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        "it must start with a lowercase letter"
    } else {
        "it may hold only lowercase letters, digits and `-`"
    }
}

fn pattern_diagnostic(
    pattern: &str,
    given: &str,
    span: Option<std::ops::Range<usize>>,
    pointer: &str,
) -> Diagnostic {
    if pattern == NAME_PATTERN {
        let what = if pointer == "/name" {
            "lab name"
        } else if pointer.starts_with("/networks/") {
            "network name"
        } else {
            "node name"
        };
        Diagnostic::new(
            "benchscale::name::invalid",
            format!("`{given}` is not a valid {what}: {}", name_problem(given)),
        )
        .with_opt_span(span, "invalid name")
        .with_help(
            "names start with a lowercase letter, then up to 23 lowercase letters, digits or `-`",
        )
    } else if pattern == OUTPUT_PATTERN {
        Diagnostic::new(
            "benchscale::step::invalid_capture",
            format!("`{given}` is not a valid output name"),
        )
        .with_opt_span(span, "invalid output name")
        .with_help("output names start with a letter or `_`, then letters, digits or `_`")
    } else {
        Diagnostic::new(
            "benchscale::schema::invalid_value",
            format!("`{given}` does not match the pattern `{pattern}`"),
        )
        .with_opt_span(span, "does not match")
    }
}

/// The closest allowed word, if it is close enough to be a likely typo.
pub fn suggest(given: &str, allowed: &[String]) -> Option<String> {
    allowed
        .iter()
        .map(|a| (strsim::damerau_levenshtein(given, a), a))
        .filter(|(distance, a)| *distance <= 2.max(a.len() / 3) && *distance < a.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, a)| a.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_words_only() {
        let allowed: Vec<String> = ["image", "networks", "depends_on"].map(String::from).into();
        assert_eq!(suggest("imgae", &allowed), Some("image".into()));
        assert_eq!(suggest("network", &allowed), Some("networks".into()));
        assert_eq!(suggest("dependson", &allowed), Some("depends_on".into()));
        assert_eq!(suggest("zzz", &allowed), None);
    }

    #[test]
    fn the_schema_compiles_and_is_2020_12() {
        let (schema, validator) = compiled();
        assert!(validator.is_some());
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["additionalProperties"], false);
    }
}
