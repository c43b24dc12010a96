//! Where each value of a loaded document came from in the file.
//!
//! The YAML loader records, for every JSON pointer, the byte span of the value
//! and of the key that introduced it. Later stages look spans up by pointer,
//! falling back to the nearest ancestor, so a diagnostic always has a place.

use std::ops::Range;

// One entry per value of the file: at 10,000 nodes the map takes hundreds
// of thousands of inserts, where SipHash cost a tenth of validation.
use foldhash::HashMap;

/// Spans of one value: the value itself and, for mapping entries, its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpans {
    pub key: Option<Range<usize>>,
    pub value: Range<usize>,
}

/// A map from JSON pointer to spans.
#[derive(Debug, Clone, Default)]
pub struct SpanMap {
    map: HashMap<String, NodeSpans>,
}

impl SpanMap {
    pub(crate) fn insert(&mut self, pointer: String, spans: NodeSpans) {
        self.map.insert(pointer, spans);
    }

    /// Spans recorded for exactly this pointer.
    pub fn get(&self, pointer: &str) -> Option<&NodeSpans> {
        self.map.get(pointer)
    }

    /// The span of the value at `pointer` or of its nearest recorded ancestor.
    pub fn value(&self, pointer: &str) -> Option<Range<usize>> {
        self.nearest(pointer).map(|s| s.value.clone())
    }

    /// The span of the key that introduced `pointer`, else of its value, else
    /// of the nearest ancestor. Use it for problems about a name.
    pub fn key(&self, pointer: &str) -> Option<Range<usize>> {
        match self.map.get(pointer) {
            Some(spans) => Some(spans.key.clone().unwrap_or_else(|| spans.value.clone())),
            None => self.value(pointer),
        }
    }

    fn nearest(&self, pointer: &str) -> Option<&NodeSpans> {
        let mut current = pointer;
        loop {
            if let Some(spans) = self.map.get(current) {
                return Some(spans);
            }
            match current.rfind('/') {
                Some(i) => current = &current[..i],
                None => return None,
            }
        }
    }
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape_segment(segment: &str) -> String {
    if segment.contains(['~', '/']) {
        segment.replace('~', "~0").replace('/', "~1")
    } else {
        segment.to_string()
    }
}

/// Joins pointer segments into a JSON pointer.
pub fn pointer(segments: &[&str]) -> String {
    let mut out = String::new();
    for s in segments {
        out.push('/');
        out.push_str(&escape_segment(s));
    }
    out
}

/// Converts the parser's character offsets to byte offsets.
///
/// The YAML parser counts characters; miette and Rust strings count bytes.
/// For ASCII text they agree. Otherwise a checkpoint every 64 characters
/// bounds each conversion to a short walk, so large files stay linear.
pub(crate) struct CharToByte<'a> {
    text: &'a str,
    checkpoints: Option<Vec<usize>>,
}

const CHECKPOINT_EVERY: usize = 64;

impl<'a> CharToByte<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let checkpoints = (!text.is_ascii()).then(|| {
            text.char_indices()
                .step_by(CHECKPOINT_EVERY)
                .map(|(byte, _)| byte)
                .collect()
        });
        Self { text, checkpoints }
    }

    pub(crate) fn byte(&self, char_index: usize) -> usize {
        let Some(checkpoints) = &self.checkpoints else {
            return char_index.min(self.text.len());
        };
        let slot = char_index / CHECKPOINT_EVERY;
        let Some(&start) = checkpoints.get(slot) else {
            return self.text.len();
        };
        self.text[start..]
            .char_indices()
            .nth(char_index % CHECKPOINT_EVERY)
            .map_or(self.text.len(), |(offset, _)| start + offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_to_byte_handles_multibyte_text() {
        let text = "é".repeat(200) + "x";
        let conv = CharToByte::new(&text);
        assert_eq!(conv.byte(0), 0);
        assert_eq!(conv.byte(1), 2);
        assert_eq!(conv.byte(130), 260);
        assert_eq!(conv.byte(200), 400);
        assert_eq!(conv.byte(201), 401);
        assert_eq!(conv.byte(5000), text.len());
    }

    #[test]
    fn lookups_fall_back_to_the_nearest_ancestor() {
        let mut map = SpanMap::default();
        map.insert(
            "/nodes".into(),
            NodeSpans {
                key: Some(0..5),
                value: 7..20,
            },
        );
        assert_eq!(map.value("/nodes/a/image"), Some(7..20));
        assert_eq!(map.key("/nodes"), Some(0..5));
        assert_eq!(map.value("/other"), None);
    }

    #[test]
    fn pointer_segments_are_escaped() {
        assert_eq!(pointer(&["a/b", "c~d"]), "/a~1b/c~0d");
    }
}
