//! `benchscale convert`: a benchScale v1 topology (`metadata`, one
//! `network`, a `nodes` list with `network_conditions` and
//! `metadata.docker_args`) to a file of this format.
//!
//! The v1 file is loaded with the same span-keeping YAML loader as
//! topologies (`topology::yaml`), so every value left out can be named by
//! line and column. Reading ([`v1`]) builds a small output model; [`emit`]
//! writes it as YAML with a stable key order. Nothing here prints: the CLI
//! shows [`Converted::problems`] and [`Converted::notes`].
//!
//! What cannot be carried over is reported and kept as a comment near
//! where it belongs, and the output always validates, so a user can apply
//! it at once and then read the comments.

pub mod conditions;
pub mod docker_args;
pub mod emit;
pub mod names;
pub mod v1;

use serde_json::Value;

use crate::diagnostics::line_col;
use crate::topology::spans::SpanMap;
use crate::topology::yaml;

/// The result of a conversion.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The new file's text.
    pub yaml: String,
    /// What was left out, in the order read.
    pub problems: Vec<Item>,
    /// What was changed on the way (names fixed, defaults chosen).
    pub notes: Vec<Item>,
}

/// One line for stderr: a place in the v1 file and what happened there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why the input could not be converted at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ConvertError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Converts the text of a v1 topology; `file` names it in problems and
/// comments. Never panics, whatever the text.
///
/// # Errors
///
/// When the text is not YAML, or not a v1 topology (a top-level map with a
/// `nodes` list or a `metadata` map).
pub fn convert(file: &str, text: &str) -> Result<Converted, ConvertError> {
    let loaded = yaml::load(text, &yaml::Limits::default());
    let fail = |offset: usize, message: String| {
        let (line, column) = line_col(text, offset);
        ConvertError {
            file: file.to_string(),
            line,
            column,
            message,
        }
    };
    if text.trim().is_empty() {
        return Err(fail(
            0,
            "not a benchScale v1 topology: the file is empty".into(),
        ));
    }
    let Some(document) = loaded.document else {
        let first = loaded.diagnostics.first();
        let offset = first.and_then(|d| d.span.as_ref()).map_or(0, |s| s.start);
        let message = first.map_or_else(
            || "the file is not YAML".to_string(),
            |d| format!("not YAML: {}", d.message),
        );
        return Err(fail(offset, message));
    };
    let root_at = document.spans.value("").map_or(0, |s| s.start);
    let Value::Object(root) = &document.value else {
        return Err(fail(
            root_at,
            format!(
                "not a benchScale v1 topology: the file holds {}, not a map with `metadata` and `nodes`",
                conditions::kind(&document.value)
            ),
        ));
    };
    let is_v1 = matches!(root.get("nodes"), Some(Value::Array(_)))
        || matches!(root.get("metadata"), Some(Value::Object(_)));
    if !is_v1 {
        let why = if matches!(root.get("nodes"), Some(Value::Object(_))) {
            "its `nodes` is a map, as in this format: it needs no conversion".to_string()
        } else {
            "it has neither a `nodes` list nor a `metadata` map".to_string()
        };
        return Err(fail(
            root_at,
            format!("not a benchScale v1 topology: {why}"),
        ));
    }
    let mut src = Source {
        file,
        text,
        spans: &document.spans,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let lab = v1::read(&mut src, root);
    // In file order, as an editor's problem list shows them.
    src.problems.sort_by_key(|p| (p.line, p.column));
    src.notes.sort_by_key(|n| (n.line, n.column));
    Ok(Converted {
        yaml: emit::emit(&lab),
        problems: src.problems,
        notes: src.notes,
    })
}

/// The v1 file being read: places of values, and what was reported.
pub struct Source<'a> {
    file: &'a str,
    text: &'a str,
    spans: &'a SpanMap,
    problems: Vec<Item>,
    notes: Vec<Item>,
}

/// The longest value shown in a comment; longer ones end in `...`.
const SHOWN: usize = 100;

impl Source<'_> {
    /// Line and column of the value at `ptr` (or its nearest parent).
    fn place(&self, ptr: &str, key: bool) -> (usize, usize) {
        let span = if key {
            self.spans.key(ptr)
        } else {
            self.spans.value(ptr)
        };
        line_col(self.text, span.map_or(0, |s| s.start))
    }

    /// Reports a value left out and returns the comment that keeps it.
    pub fn left_out(&mut self, ptr: &str, value: &Value, why: &str) -> String {
        let name = ptr.rsplit('/').next().unwrap_or_default().to_string();
        self.left_out_entry(ptr, &name, value, why)
    }

    /// [`Self::left_out`] for a key and its value, shown as `key: value`.
    pub fn left_out_entry(&mut self, ptr: &str, key: &str, value: &Value, why: &str) -> String {
        let (line, column) = self.place(ptr, true);
        let shown = if key.is_empty() {
            show(value)
        } else {
            format!("{key}: {}", show(value))
        };
        self.problems.push(Item {
            line,
            column,
            message: format!("{shown}: {why}, and so it was left out"),
        });
        format!(
            "not converted ({}:{line}:{column}): {shown} ({why})",
            self.file
        )
    }

    /// Reports a change made on the way, at the value of `ptr`.
    pub fn note(&mut self, ptr: &str, message: String) {
        let (line, column) = self.place(ptr, false);
        self.notes.push(Item {
            line,
            column,
            message,
        });
    }

    pub fn file(&self) -> &str {
        self.file
    }
}

/// A value on one line, as flow YAML (JSON is flow YAML), cut short.
fn show(value: &Value) -> String {
    let text = match value {
        Value::String(s) => emit::scalar(s),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    if text.chars().count() > SHOWN {
        let cut: String = text.chars().take(SHOWN).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// True for text that another tool was meant to fill in: `{{ var }}`
/// (Jinja, Go templates) or `${VAR}` (shells, compose).
pub fn templated(text: &str) -> bool {
    text.contains("{{") || text.contains("${")
}
