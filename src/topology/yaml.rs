//! YAML text to a JSON value plus a span for every JSON pointer.
//!
//! The loader drives saphyr's event parser itself instead of building
//! saphyr's own document tree, for three reasons: it can stop as soon as a
//! limit is crossed (alias bombs, deep nesting), it sees every key so that a
//! duplicate key is reported at the second occurrence, and it records spans
//! keyed by JSON pointer, which is what the schema validator reports.
//!
//! Scalars follow the YAML 1.2 core schema: `no`, `yes`, `on` and `off` stay
//! strings. Merge keys (`<<: *base`), which docker compose users rely on, are
//! supported; explicit keys win over merged ones.

use std::ops::Range;

// A faster hash than SipHash for maps filled once per value (see spans.rs).
use foldhash::{HashMap, HashMapExt};

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};
use serde_json::{Map, Number, Value};

use super::spans::{CharToByte, NodeSpans, SpanMap, escape_segment};
use crate::diagnostics::Diagnostic;

/// Bounds that keep hostile input cheap to refuse.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest file accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of mappings and sequences.
    pub max_depth: usize,
    /// Most values in the loaded document, counting every alias expansion.
    pub max_values: usize,
    /// Most values that aliases may copy, all together.
    pub max_alias_values: usize,
    /// Most bytes of text (strings and keys) that aliases may copy.
    pub max_alias_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // 16 MiB and two million values hold a generated 10,000-node lab with
        // room to spare. Aliases get a far smaller budget, counted in values
        // and in bytes before anything is copied, so that an alias bomb (or
        // a long string copied a million times) is refused after a few
        // milliseconds and megabytes of work; real topologies alias a few
        // default blocks.
        Self {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 64,
            max_values: 2_000_000,
            max_alias_values: 100_000,
            max_alias_bytes: 4 * 1024 * 1024,
        }
    }
}

/// A loaded document.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    pub spans: SpanMap,
}

/// The result of loading: the document when one could be built, and every
/// problem found on the way (duplicate keys do not stop loading).
#[derive(Debug)]
pub struct Loaded {
    pub document: Option<Document>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads YAML text. Never panics, whatever the input.
pub fn load(text: &str, limits: &Limits) -> Loaded {
    if text.len() > limits.max_bytes {
        let d = Diagnostic::new(
            "benchscale::yaml::too_large",
            format!(
                "the file is {} bytes, more than the limit of {} bytes",
                text.len(),
                limits.max_bytes
            ),
        )
        .with_help("split the lab into smaller files, or check that this is the right file");
        return Loaded {
            document: None,
            diagnostics: vec![d],
        };
    }
    let mut builder = Builder::new(text, limits);
    match builder.run() {
        Ok(value) => Loaded {
            document: Some(Document {
                value,
                spans: builder.spans,
            }),
            diagnostics: builder.diagnostics,
        },
        Err(fatal) => {
            let mut diagnostics = builder.diagnostics;
            diagnostics.push(fatal);
            Loaded {
                document: None,
                diagnostics,
            }
        }
    }
}

struct Frame {
    pointer: String,
    start: usize,
    anchor: usize,
    key_span: Option<Range<usize>>,
    body: Body,
}

enum Body {
    Seq(Vec<Value>),
    Map {
        entries: Map<String, Value>,
        /// The key waiting for its value, with its span.
        pending: Option<(String, Range<usize>, bool)>,
        first_seen: HashMap<String, Range<usize>>,
        /// Mappings named by `<<` keys, applied when the mapping ends.
        merges: Vec<(Value, Range<usize>)>,
    },
}

struct Anchored {
    /// Bytes of text (strings and keys) in `value`.
    bytes: usize,
    value: Value,
    values: usize,
}

struct Builder<'t> {
    text: &'t str,
    limits: &'t Limits,
    conv: CharToByte<'t>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Anchored>,
    spans: SpanMap,
    diagnostics: Vec<Diagnostic>,
    values: usize,
    alias_values: usize,
    alias_bytes: usize,
    root: Option<Value>,
}

type Fatal = Diagnostic;

// A fatal error ends loading, once per file: keeping it unboxed costs
// nothing measurable and keeps every error site plain.
#[allow(clippy::result_large_err)]
impl<'t> Builder<'t> {
    fn new(text: &'t str, limits: &'t Limits) -> Self {
        Self {
            text,
            limits,
            conv: CharToByte::new(text),
            stack: Vec::new(),
            anchors: HashMap::new(),
            spans: SpanMap::default(),
            diagnostics: Vec::new(),
            values: 0,
            alias_values: 0,
            alias_bytes: 0,
            root: None,
        }
    }

    fn range(&self, span: &Span) -> Range<usize> {
        let start = self.conv.byte(span.start.index());
        let end = self.conv.byte(span.end.index()).max(start);
        start..end
    }

    fn run(&mut self) -> Result<Value, Fatal> {
        let mut parser = Parser::new_from_str(self.text);
        let mut documents = 0usize;
        while let Some(next) = parser.next_event() {
            let (event, span) = next.map_err(|e| self.syntax_error(&e))?;
            match event {
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        let at = self.range(&span);
                        return Err(Diagnostic::new(
                            "benchscale::yaml::multiple_documents",
                            "the file holds more than one YAML document",
                        )
                        .with_span(at, "a second document starts here")
                        .with_help("keep one lab per file; remove the `---` and what follows"));
                    }
                }
                Event::Scalar(text, style, anchor, tag) => {
                    self.on_scalar(&text, style, anchor, tag.as_deref(), &span)?;
                }
                Event::Alias(id) => self.on_alias(id, &span)?,
                Event::SequenceStart(anchor, tag) => {
                    self.check_collection_tag(tag.as_deref(), "seq", &span)?;
                    self.open(anchor, &span, Body::Seq(Vec::new()))?;
                }
                Event::MappingStart(anchor, tag) => {
                    self.check_collection_tag(tag.as_deref(), "map", &span)?;
                    let body = Body::Map {
                        entries: Map::new(),
                        pending: None,
                        first_seen: HashMap::new(),
                        merges: Vec::new(),
                    };
                    self.open(anchor, &span, body)?;
                }
                Event::SequenceEnd | Event::MappingEnd => self.close(&span)?,
                Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            }
        }
        match self.root.take() {
            Some(value) => Ok(value),
            None => Err(
                Diagnostic::new("benchscale::yaml::empty", "the file is empty")
                    .with_help("a topology needs at least `name:` and `nodes:`"),
            ),
        }
    }

    fn syntax_error(&self, error: &ScanError) -> Fatal {
        let mut at = self.conv.byte(error.marker().index());
        // At the end of the file there is nothing to point at: point at the
        // last character written instead, where the unclosed thing ends.
        let written = self.text.trim_end().len();
        if at >= written {
            at = written.saturating_sub(1);
            while !self.text.is_char_boundary(at) {
                at -= 1;
            }
        }
        // The scanner reports a tab after reading it; point at the tab.
        if error.info().contains("tab")
            && at > 0
            && self.text.as_bytes().get(at - 1) == Some(&b'\t')
        {
            at -= 1;
        }
        let end = self.text[at..]
            .chars()
            .next()
            .map_or(at, |c| at + c.len_utf8());
        Diagnostic::new(
            "benchscale::yaml::syntax",
            format!("invalid YAML: {}", error.info()),
        )
        .with_span(at..end, "here")
        .with_help("fix the YAML syntax; indentation must use spaces, and `key: value` needs a space after the colon")
    }

    fn count(&mut self, n: usize, span: &Range<usize>, alias: bool) -> Result<(), Fatal> {
        self.values = self.values.saturating_add(n);
        if self.values <= self.limits.max_values {
            return Ok(());
        }
        let (code, message, help) = if alias {
            (
                "benchscale::yaml::alias_limit",
                format!(
                    "aliases expand to more than {} values",
                    self.limits.max_values
                ),
                "this looks like an alias bomb; write the values out or use fewer nested aliases",
            )
        } else {
            (
                "benchscale::yaml::too_large",
                format!(
                    "the document has more than {} values",
                    self.limits.max_values
                ),
                "split the lab into smaller files",
            )
        };
        Err(Diagnostic::new(code, message)
            .with_span(span.clone(), "limit crossed here")
            .with_help(help))
    }

    /// The pointer of the value that the next event produces, and the span of
    /// its key when it is a mapping entry.
    fn slot(&self) -> (String, Option<Range<usize>>) {
        match self.stack.last() {
            None => (String::new(), None),
            Some(frame) => match &frame.body {
                Body::Seq(items) => (format!("{}/{}", frame.pointer, items.len()), None),
                Body::Map { pending, .. } => match pending {
                    Some((key, span, _)) => (
                        format!("{}/{}", frame.pointer, escape_segment(key)),
                        Some(span.clone()),
                    ),
                    None => (frame.pointer.clone(), None),
                },
            },
        }
    }

    fn expects_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame {
                body: Body::Map { pending: None, .. },
                ..
            })
        )
    }

    fn on_scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        span: &Span,
    ) -> Result<(), Fatal> {
        let at = self.range(span);
        self.count(1, &at, false)?;
        if self.expects_key() {
            let merge = style == ScalarStyle::Plain && text == "<<" && tag.is_none();
            let key = text.to_string();
            if let Some(Frame {
                body:
                    Body::Map {
                        pending,
                        first_seen,
                        ..
                    },
                ..
            }) = self.stack.last_mut()
            {
                if !merge {
                    if let Some(first) = first_seen.get(&key) {
                        let (line, _) = crate::diagnostics::line_col(self.text, first.start);
                        self.diagnostics.push(
                            Diagnostic::new(
                                "benchscale::yaml::duplicate_key",
                                format!("duplicate key `{key}` (first defined on line {line})"),
                            )
                            .with_span(at.clone(), "defined again here")
                            .with_help("remove one of the two entries or rename it"),
                        );
                    } else {
                        first_seen.insert(key.clone(), at.clone());
                    }
                }
                *pending = Some((key, at, merge));
            }
            return Ok(());
        }
        let value = self.scalar_value(text, style, tag, &at)?;
        self.finish(value, at, anchor)
    }

    fn scalar_value(
        &self,
        text: &str,
        style: ScalarStyle,
        tag: Option<&Tag>,
        at: &Range<usize>,
    ) -> Result<Value, Fatal> {
        let Some(tag) = tag else {
            return Ok(if style == ScalarStyle::Plain {
                resolve_plain(text)
            } else {
                Value::String(text.to_string())
            });
        };
        let core = core_tag(tag);
        let value = match core {
            Some("str") => Some(Value::String(text.to_string())),
            Some("null") => Some(Value::Null),
            Some("bool" | "int" | "float") => {
                let resolved = resolve_plain(text);
                let fits = match (core, &resolved) {
                    (Some("bool"), Value::Bool(_)) => true,
                    (Some("int"), Value::Number(n)) => n.is_i64() || n.is_u64(),
                    (Some("float"), Value::Number(_)) => true,
                    _ => false,
                };
                fits.then_some(resolved)
            }
            _ => None,
        };
        value.ok_or_else(|| {
            Diagnostic::new(
                "benchscale::yaml::unsupported_tag",
                format!("the tag `{tag}` is not supported here"),
            )
            .with_span(at.clone(), "tagged value")
            .with_help("remove the tag; topology files use plain YAML values")
        })
    }

    fn check_collection_tag(
        &self,
        tag: Option<&Tag>,
        expected: &str,
        span: &Span,
    ) -> Result<(), Fatal> {
        match tag {
            None => Ok(()),
            Some(tag) if core_tag(tag) == Some(expected) => Ok(()),
            Some(tag) => Err(Diagnostic::new(
                "benchscale::yaml::unsupported_tag",
                format!("the tag `{tag}` is not supported here"),
            )
            .with_span(self.range(span), "tagged value")
            .with_help("remove the tag; topology files use plain YAML values")),
        }
    }

    fn complex_key(&self, at: Range<usize>) -> Fatal {
        Diagnostic::new(
            "benchscale::yaml::complex_key",
            "a mapping key must be a plain string",
        )
        .with_span(at, "not a string key")
        .with_help("use a string as the key")
    }

    fn on_alias(&mut self, id: usize, span: &Span) -> Result<(), Fatal> {
        let at = self.range(span);
        if self.expects_key() {
            return Err(self.complex_key(at));
        }
        let Some(anchored) = self.anchors.get(&id) else {
            return Err(Diagnostic::new(
                "benchscale::yaml::recursive_alias",
                "this alias refers to a node that contains it",
            )
            .with_span(at, "alias")
            .with_help("an alias can only name a node that is complete before it"));
        };
        // Charge the copy before making it: cloning is the expensive part.
        let (n, bytes) = (anchored.values, anchored.bytes);
        self.alias_values = self.alias_values.saturating_add(n);
        self.alias_bytes = self.alias_bytes.saturating_add(bytes);
        if self.alias_values > self.limits.max_alias_values
            || self.alias_bytes > self.limits.max_alias_bytes
        {
            return Err(Diagnostic::new(
                "benchscale::yaml::alias_limit",
                format!(
                    "aliases expand to more than {} values or {} bytes",
                    self.limits.max_alias_values, self.limits.max_alias_bytes
                ),
            )
            .with_span(at, "limit crossed here")
            .with_help(
                "this looks like an alias bomb; write the values out or use fewer nested aliases",
            ));
        }
        self.count(n, &at, true)?;
        let value = self
            .anchors
            .get(&id)
            .map(|a| a.value.clone())
            .unwrap_or(Value::Null);
        // The alias's own span stands for every value inside the copy: the
        // span map falls back to the nearest recorded ancestor.
        self.finish(value, at, 0)
    }

    fn open(&mut self, anchor: usize, span: &Span, body: Body) -> Result<(), Fatal> {
        let at = self.range(span);
        if self.expects_key() {
            return Err(self.complex_key(at));
        }
        self.count(1, &at, false)?;
        if self.stack.len() >= self.limits.max_depth {
            return Err(Diagnostic::new(
                "benchscale::yaml::too_deep",
                format!(
                    "values are nested more than {} levels deep",
                    self.limits.max_depth
                ),
            )
            .with_span(at, "too deep")
            .with_help("flatten the structure; no topology needs this much nesting"));
        }
        let (pointer, key_span) = self.slot();
        self.stack.push(Frame {
            pointer,
            start: at.start,
            anchor,
            key_span,
            body,
        });
        Ok(())
    }

    fn close(&mut self, span: &Span) -> Result<(), Fatal> {
        let end = self.range(span).end;
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let value = match frame.body {
            Body::Seq(items) => Value::Array(items),
            Body::Map {
                mut entries,
                merges,
                ..
            } => {
                for (source, at) in merges {
                    let sources = match source {
                        Value::Array(items) => items,
                        other => vec![other],
                    };
                    for source in sources {
                        let Value::Object(source) = source else {
                            return Err(Diagnostic::new(
                                "benchscale::yaml::bad_merge",
                                "a merge key `<<` must name a mapping or a list of mappings",
                            )
                            .with_span(at, "not a mapping")
                            .with_help("use `<<: *anchor` where the anchor is a mapping"));
                        };
                        for (k, v) in source {
                            if !entries.contains_key(&k) {
                                self.spans.insert(
                                    format!("{}/{}", frame.pointer, escape_segment(&k)),
                                    NodeSpans {
                                        key: Some(at.clone()),
                                        value: at.clone(),
                                    },
                                );
                                entries.insert(k, v);
                            }
                        }
                    }
                }
                Value::Object(entries)
            }
        };
        // Restore the parent's view: the frame's own slot is recorded by
        // `finish` with the span of the whole collection.
        let start = frame.start;
        let anchor = frame.anchor;
        let key_span = frame.key_span;
        self.finish_at(value, start..end, anchor, frame.pointer, key_span)
    }

    fn finish(&mut self, value: Value, at: Range<usize>, anchor: usize) -> Result<(), Fatal> {
        let (pointer, key_span) = self.slot();
        self.finish_at(value, at, anchor, pointer, key_span)
    }

    fn finish_at(
        &mut self,
        value: Value,
        at: Range<usize>,
        anchor: usize,
        pointer: String,
        key_span: Option<Range<usize>>,
    ) -> Result<(), Fatal> {
        if anchor != 0 {
            let (values, bytes) = count_values(&value);
            self.anchors.insert(
                anchor,
                Anchored {
                    value: value.clone(),
                    values,
                    bytes,
                },
            );
        }
        let merge_slot = matches!(
            self.stack.last(),
            Some(Frame {
                body: Body::Map {
                    pending: Some((_, _, true)),
                    ..
                },
                ..
            })
        );
        if !merge_slot {
            self.spans.insert(
                pointer,
                NodeSpans {
                    key: key_span,
                    value: at.clone(),
                },
            );
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(value);
            }
            Some(frame) => match &mut frame.body {
                Body::Seq(items) => items.push(value),
                Body::Map {
                    entries,
                    pending,
                    merges,
                    ..
                } => {
                    if let Some((key, _, merge)) = pending.take() {
                        if merge {
                            merges.push((value, at));
                        } else if !entries.contains_key(&key) {
                            entries.insert(key, value);
                        }
                    }
                }
            },
        }
        Ok(())
    }
}

/// Counts values and bytes of text in a tree without recursion, so a deep
/// alias copy cannot overflow the stack.
fn count_values(value: &Value) -> (usize, usize) {
    let (mut n, mut bytes) = (0usize, 0usize);
    let mut todo = vec![value];
    while let Some(v) = todo.pop() {
        n += 1;
        match v {
            Value::Array(items) => todo.extend(items.iter()),
            Value::Object(map) => {
                bytes = bytes.saturating_add(map.keys().map(String::len).sum());
                todo.extend(map.values());
            }
            Value::String(s) => bytes = bytes.saturating_add(s.len()),
            _ => {}
        }
    }
    (n, bytes)
}

fn core_tag(tag: &Tag) -> Option<&str> {
    (tag.is_yaml_core_schema() || tag.handle == "!!").then_some(tag.suffix.as_str())
}

/// Resolves a plain scalar by the YAML 1.2 core schema.
pub fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_int(text) {
        return Value::Number(n);
    }
    if let Some(f) = parse_float(text) {
        // `2.0` and `1e3` are whole numbers, as JSON Schema sees them; make
        // them integers so that integer fields accept them.
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            return Value::Number(Number::from(f as i64));
        }
        if let Some(n) = Number::from_f64(f) {
            return Value::Number(n);
        }
    }
    // Digits too many for 64 bits are still a number, not text.
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

fn parse_int(text: &str) -> Option<Number> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(rest) = text.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = text.strip_prefix("0x") {
        (16, rest)
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if radix != 10 {
        return u64::from_str_radix(digits, radix).ok().map(Number::from);
    }
    if negative {
        format!("-{digits}").parse::<i64>().ok().map(Number::from)
    } else {
        digits.parse::<u64>().ok().map(Number::from)
    }
}

fn parse_float(text: &str) -> Option<f64> {
    let unsigned = text.trim_start_matches(['-', '+']);
    if text.len() - unsigned.len() > 1 {
        return None;
    }
    match unsigned {
        ".inf" | ".Inf" | ".INF" => return None, // JSON has no infinity
        ".nan" | ".NaN" | ".NAN" => return None,
        _ => {}
    }
    // The core schema's float pattern: digits, an optional fraction and an
    // optional exponent, with at least one digit before the exponent.
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let mut parts = mantissa.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = digits(whole)
        && fraction.is_none_or(digits)
        && (!whole.is_empty() || fraction.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if mantissa_ok && exponent_ok && (fraction.is_some() || exponent.is_some()) {
        text.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_ok(text: &str) -> Document {
        let loaded = load(text, &Limits::default());
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded.document.unwrap()
    }

    fn codes(text: &str, limits: &Limits) -> Vec<&'static str> {
        load(text, limits)
            .diagnostics
            .iter()
            .map(|d| d.code)
            .collect()
    }

    #[test]
    fn yaml_1_2_keeps_norway_a_string() {
        let doc = load_ok("a: no\nb: yes\nc: on\nd: true\ne: 010\nf: 1.5\ng: ~\nh: '1'\n");
        assert_eq!(
            doc.value,
            serde_json::json!({"a": "no", "b": "yes", "c": "on", "d": true, "e": 10, "f": 1.5, "g": null, "h": "1"})
        );
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let text = "nodes:\n  web:\n    image: x\n";
        let doc = load_ok(text);
        let spans = doc.spans.get("/nodes/web/image").unwrap();
        assert_eq!(&text[spans.key.clone().unwrap()], "image");
        assert_eq!(&text[spans.value.clone()], "x");
    }

    #[test]
    fn spans_are_bytes_after_multibyte_text() {
        let text = "description: ééé\nname: x\n";
        let doc = load_ok(text);
        let spans = doc.spans.get("/name").unwrap();
        assert_eq!(&text[spans.value.clone()], "x");
    }

    #[test]
    fn duplicate_key_points_at_the_second() {
        let text = "a: 1\nb: 2\na: 3\n";
        let loaded = load(text, &Limits::default());
        assert_eq!(loaded.diagnostics.len(), 1);
        let d = &loaded.diagnostics[0];
        assert_eq!(d.code, "benchscale::yaml::duplicate_key");
        assert_eq!(d.span.clone().unwrap().start, 10);
        // The first value wins so later stages see a consistent document.
        assert_eq!(loaded.document.unwrap().value["a"], 1);
    }

    #[test]
    fn merge_keys_fill_in_without_overriding() {
        let doc = load_ok("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n");
        assert_eq!(doc.value["use"], serde_json::json!({"x": 1, "y": 3}));
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert_eq!(
            codes(&text, &Limits::default()),
            ["benchscale::yaml::alias_limit"]
        );
    }

    #[test]
    fn a_long_string_copied_by_aliases_is_refused_before_it_is_copied() {
        // Few values, but each copy carries a kilobyte: a million copies
        // would take gigabytes.
        let mut text = format!("name: lab\nx-s: &s \"{}\"\nx-l:\n", "a".repeat(1000));
        text.push_str("  l1: &l1 [*s, *s, *s, *s, *s, *s, *s, *s, *s, *s]\n");
        for i in 2..=6 {
            let p = i - 1;
            let list = vec![format!("*l{p}"); 10].join(", ");
            text.push_str(&format!("  l{i}: &l{i} [{list}]\n"));
        }
        let started = std::time::Instant::now();
        assert_eq!(
            codes(&text, &Limits::default()),
            ["benchscale::yaml::alias_limit"]
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(100_000);
        let got = codes(&text, &Limits::default());
        assert_eq!(got.len(), 1);
        assert!(
            got[0] == "benchscale::yaml::too_deep" || got[0] == "benchscale::yaml::syntax",
            "{got:?}"
        );
        let block: String = (0..200).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        assert_eq!(
            codes(&block, &Limits::default()),
            ["benchscale::yaml::too_deep"]
        );
    }

    #[test]
    fn size_limit_is_checked_first() {
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        assert_eq!(
            codes("name: abcdefghijk\n", &limits),
            ["benchscale::yaml::too_large"]
        );
    }

    #[test]
    fn bad_inputs_do_not_panic() {
        for text in [
            "",
            "---\n---\n",
            "a: [",
            "{a: 1, a: 2}",
            "? [a]\n: b\n",
            "*x",
            "&a [*a]",
            "a: !!int x",
            "a: !custom 1",
            "- 1\n- &x 2\n- *x",
            "\u{feff}a: 1",
            "<<: 1",
            "a:\n  <<: [1]\n",
        ] {
            let _ = load(text, &Limits::default());
        }
    }
}
