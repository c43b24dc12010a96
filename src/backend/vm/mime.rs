//! The MIME multipart user data cloud-init reads when it is given more than
//! one document (its "mime multi part archive" format).
//!
//! cloud-init parses it with Python's `email` package. Text that is all
//! ASCII goes as `7bit`, readable when the seed is mounted to debug a boot;
//! anything else goes as base64, because Python decodes a non-ASCII `8bit`
//! body through `raw-unicode-escape` and would mangle it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// One part of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Header lines in order; empty for a verbatim part.
    headers: Vec<(String, String)>,
    body: String,
    /// The body is a complete MIME entity (its own headers included).
    verbatim: bool,
}

impl Part {
    /// A part of type `content_type` named `filename` (cloud-init logs the
    /// name and uses it for scripts it saves).
    pub fn new(content_type: &str, filename: &str, body: &str) -> Self {
        let ascii = body.is_ascii();
        let charset = if ascii { "us-ascii" } else { "utf-8" };
        let encoding = if ascii { "7bit" } else { "base64" };
        let body = if ascii {
            body.to_owned()
        } else {
            wrap(&STANDARD.encode(body.as_bytes()), 76)
        };
        Self {
            headers: vec![
                (
                    "Content-Type".into(),
                    format!("{content_type}; charset=\"{charset}\""),
                ),
                ("MIME-Version".into(), "1.0".into()),
                ("Content-Transfer-Encoding".into(), encoding.into()),
                (
                    "Content-Disposition".into(),
                    format!("attachment; filename=\"{filename}\""),
                ),
            ],
            body,
            verbatim: false,
        }
    }

    /// A complete MIME entity supplied by the user, kept byte for byte.
    pub fn verbatim(entity: &str) -> Self {
        Self {
            headers: Vec::new(),
            body: entity.to_owned(),
            verbatim: true,
        }
    }

    /// Adds a header line.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn write(&self, out: &mut String) {
        if !self.verbatim {
            for (name, value) in &self.headers {
                out.push_str(&format!("{name}: {value}\n"));
            }
            out.push('\n');
        }
        out.push_str(&self.body);
        // The line break before a boundary belongs to the boundary, so one
        // is always added: a body ending in a newline keeps it.
        out.push('\n');
    }
}

/// The parts as one `multipart/mixed` message, in order.
pub fn multipart(parts: &[Part]) -> String {
    let boundary = boundary_for(parts);
    let mut out =
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n\n");
    for part in parts {
        out.push_str(&format!("--{boundary}\n"));
        part.write(&mut out);
    }
    out.push_str(&format!("--{boundary}--\n"));
    out
}

/// A boundary that occurs in no part, as MIME requires. Deterministic, so
/// the same input always gives the same seed.
fn boundary_for(parts: &[Part]) -> String {
    (0u32..)
        .map(|n| format!("==benchscale-boundary-{n}=="))
        .find(|b| {
            parts.iter().all(|p| {
                !p.body.contains(b.as_str())
                    && p.headers.iter().all(|(_, v)| !v.contains(b.as_str()))
            })
        })
        .unwrap_or_default()
}

fn wrap(text: &str, width: usize) -> String {
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(width)
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_parts_are_7bit_and_in_order() {
        let text = multipart(&[
            Part::new("text/cloud-config", "a.cfg", "#cloud-config\na: 1\n"),
            Part::new("text/x-shellscript", "b", "#!/bin/sh\necho hi").header("X-A", "b"),
        ]);
        let expected = "Content-Type: multipart/mixed; boundary=\"==benchscale-boundary-0==\"\n\
            MIME-Version: 1.0\n\n\
            --==benchscale-boundary-0==\n\
            Content-Type: text/cloud-config; charset=\"us-ascii\"\n\
            MIME-Version: 1.0\n\
            Content-Transfer-Encoding: 7bit\n\
            Content-Disposition: attachment; filename=\"a.cfg\"\n\n\
            #cloud-config\na: 1\n\n\
            --==benchscale-boundary-0==\n\
            Content-Type: text/x-shellscript; charset=\"us-ascii\"\n\
            MIME-Version: 1.0\n\
            Content-Transfer-Encoding: 7bit\n\
            Content-Disposition: attachment; filename=\"b\"\n\
            X-A: b\n\n\
            #!/bin/sh\necho hi\n\
            --==benchscale-boundary-0==--\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn boundary_avoids_the_contents() {
        let body = "#!/bin/sh\n# --==benchscale-boundary-0==\n";
        let text = multipart(&[Part::new("text/x-shellscript", "s", body)]);
        assert!(text.contains("boundary=\"==benchscale-boundary-1==\""));
    }

    #[test]
    fn non_ascii_goes_as_wrapped_base64() {
        let body = "#cloud-config\nmotd: \"héllo wörld\"\n".repeat(5);
        let part = Part::new("text/cloud-config", "u", &body);
        let mut out = String::new();
        part.write(&mut out);
        assert!(out.contains("charset=\"utf-8\""));
        assert!(out.contains("Content-Transfer-Encoding: base64\n"));
        let encoded: String = out
            .split("\n\n")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect();
        assert!(
            out.split("\n\n")
                .nth(1)
                .unwrap()
                .lines()
                .all(|l| l.len() <= 76)
        );
        assert_eq!(STANDARD.decode(encoded).unwrap(), body.as_bytes());
    }

    #[test]
    fn verbatim_part_keeps_its_own_headers() {
        let entity = "Content-Type: text/x-shellscript\n\n#!/bin/sh\ntrue";
        let text = multipart(&[Part::verbatim(entity)]);
        assert!(text.contains(
            "--==benchscale-boundary-0==\nContent-Type: text/x-shellscript\n\n#!/bin/sh\ntrue\n--"
        ));
    }
}
