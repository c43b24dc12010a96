//! Diagnostics: every problem found in a topology file, with its place.
//!
//! A [`Diagnostic`] is plain data (a stable code, a message, a help line and a
//! byte span). [`FileDiagnostics`] ties them to the file's text so that the CLI
//! can render them with miette or as JSON. Nothing here prints.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

/// One problem in a topology file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// A stable code such as `benchscale::schema::unknown_field`.
    pub code: &'static str,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// Byte range in the file that the label points at.
    pub span: Option<Range<usize>>,
    /// The short text shown at the span.
    pub label: Option<String>,
    /// JSON pointer of the value the problem is about, when it has one.
    pub pointer: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with a code and a message and nothing else yet.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            help: None,
            span: None,
            label: None,
            pointer: None,
        }
    }

    /// Adds the help line.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds the span and the label shown there.
    #[must_use]
    pub fn with_span(mut self, span: Range<usize>, label: impl Into<String>) -> Self {
        self.span = Some(span);
        self.label = Some(label.into());
        self
    }

    /// Adds the span, if there is one, and the label shown there.
    #[must_use]
    pub fn with_opt_span(self, span: Option<Range<usize>>, label: impl Into<String>) -> Self {
        match span {
            Some(span) => self.with_span(span, label),
            None => self,
        }
    }

    /// Adds the JSON pointer.
    #[must_use]
    pub fn with_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = Some(pointer.into());
        self
    }
}

/// Line (1-based) and column (1-based, in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// All diagnostics of one file, with the file's text for rendering.
#[derive(Debug, Clone)]
pub struct FileDiagnostics {
    /// The path as the user gave it.
    pub path: PathBuf,
    /// The file's text (shared, since every rendered diagnostic needs it).
    pub text: Arc<str>,
    /// The problems, in the order they were found.
    pub diagnostics: Vec<Diagnostic>,
}

/// The JSON form of one diagnostic, as `validate -o json` prints it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JsonDiagnostic {
    pub code: String,
    pub message: String,
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub pointer: Option<String>,
    pub help: Option<String>,
}

impl FileDiagnostics {
    /// Diagnostics for a file whose text could be read.
    pub fn new(path: &Path, text: Arc<str>, diagnostics: Vec<Diagnostic>) -> Self {
        Self {
            path: path.to_path_buf(),
            text,
            diagnostics,
        }
    }

    /// Line and column of a diagnostic, when it has a span.
    pub fn position(&self, diagnostic: &Diagnostic) -> Option<(usize, usize)> {
        diagnostic
            .span
            .as_ref()
            .map(|span| line_col(&self.text, span.start))
    }

    /// The JSON form of every diagnostic.
    pub fn to_json(&self) -> Vec<JsonDiagnostic> {
        self.diagnostics
            .iter()
            .map(|d| {
                let position = self.position(d);
                JsonDiagnostic {
                    code: d.code.to_string(),
                    message: d.message.clone(),
                    file: self.path.display().to_string(),
                    line: position.map(|p| p.0),
                    column: position.map(|p| p.1),
                    pointer: d.pointer.clone(),
                    help: d.help.clone(),
                }
            })
            .collect()
    }

    /// One line per diagnostic, `file:line:col: code: message`.
    pub fn to_short_lines(&self) -> Vec<String> {
        self.diagnostics
            .iter()
            .map(|d| match self.position(d) {
                Some((line, col)) => format!(
                    "{}:{line}:{col}: {}: {}",
                    self.path.display(),
                    d.code,
                    d.message
                ),
                None => format!("{}: {}: {}", self.path.display(), d.code, d.message),
            })
            .collect()
    }
}

/// A diagnostic rendered by miette, with the file's text as its source.
#[derive(Debug)]
pub struct Rendered {
    diagnostic: Diagnostic,
    location: String,
    source: miette::NamedSource<Arc<str>>,
}

impl FileDiagnostics {
    /// Each diagnostic as a miette report, ready to print.
    pub fn rendered(&self) -> Vec<Rendered> {
        self.diagnostics
            .iter()
            .map(|d| {
                let location = match self.position(d) {
                    Some((line, col)) => format!("{}:{line}:{col}", self.path.display()),
                    None => self.path.display().to_string(),
                };
                Rendered {
                    diagnostic: d.clone(),
                    location,
                    source: miette::NamedSource::new(
                        self.path.display().to_string(),
                        self.text.clone(),
                    ),
                }
            })
            .collect()
    }
}

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.diagnostic.message)
    }
}

impl std::error::Error for Rendered {}

impl miette::Diagnostic for Rendered {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.diagnostic.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.diagnostic.span.as_ref().map(|_| &self.source as _)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = self.diagnostic.span.clone()?;
        let label = miette::LabeledSpan::new_with_span(self.diagnostic.label.clone(), span);
        Some(Box::new(std::iter::once(label)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let text = "a: é\nbb: x\n";
        assert_eq!(line_col(text, 0), (1, 1));
        // "x" is at byte 10 (é takes two bytes) but column 5 of line 2.
        let x = text.find('x').unwrap();
        assert_eq!(line_col(text, x), (2, 5));
        let e = text.find('é').unwrap();
        assert_eq!(line_col(text, e + 2), (1, 5));
    }
}
