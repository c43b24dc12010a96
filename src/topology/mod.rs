//! Loading a topology file: YAML with spans, JSON Schema, resolution.
//!
//! The pipeline is `yaml::load` (text to JSON value plus spans), then
//! `schema::validate`, then serde into the raw types, then
//! `resolve::resolve` into the [`model`]. Every stage reports diagnostics
//! with spans; all of them are returned together.
//!
//! Architecture Invariant: nothing in this module does I/O except
//! [`load_file`], which reads the file and checks that `copy.src` files and
//! volume sources exist (through the [`FileCheck`] it hands to the pure
//! pipeline).

pub mod checks;
pub mod duration;
pub mod model;
pub mod net;
pub(crate) mod raw;
mod raw_conditions;
mod raw_tests;
mod resolve;

pub use resolve::DEFAULT_VM_BOOT_PATTERN;
pub mod schema;
pub mod spans;
pub mod template;
pub mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use model::Topology;

use crate::diagnostics::{Diagnostic, FileDiagnostics};

/// Answers whether a `copy.src` file can be copied. [`load_file`] asks the
/// file system; tests and fuzzing can answer without touching it.
pub trait FileCheck {
    /// A digest of the file's content (or `None` when the checker does
    /// not read files); `Err` says what is wrong, such as "does not exist".
    fn check(&self, path: &Path) -> Result<Option<String>, String>;

    /// The absolute path of a volume's source, a file or a folder; `Err`
    /// says what is wrong. Docker needs absolute sources, and the topology
    /// file may have been named by a relative path.
    fn mount_source(&self, path: &Path) -> Result<PathBuf, String>;
}

/// Asks the real file system.
pub struct RealFiles;

impl FileCheck for RealFiles {
    fn check(&self, path: &Path) -> Result<Option<String>, String> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => digest_file(path)
                .map(Some)
                .map_err(|e| format!("cannot be read ({e})")),
            Ok(m) if m.is_dir() => Err("is a folder, not a file".into()),
            Ok(_) => Err("is not a regular file".into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("does not exist".into()),
            Err(e) => Err(format!("cannot be read ({e})")),
        }
    }

    fn mount_source(&self, path: &Path) -> Result<PathBuf, String> {
        // Canonical, so that the path Docker gets (and the spec hash) does
        // not depend on the folder benchscale was started from.
        std::fs::canonicalize(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "does not exist".into(),
            _ => format!("cannot be used ({e})"),
        })
    }
}

/// Accepts every path.
pub struct AnyFile;

impl FileCheck for AnyFile {
    fn check(&self, _: &Path) -> Result<Option<String>, String> {
        Ok(None)
    }

    fn mount_source(&self, path: &Path) -> Result<PathBuf, String> {
        Ok(path.to_path_buf())
    }
}

/// SHA-256 of a file, read in blocks so a large file costs little memory.
fn digest_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect())
}

const NON_BLOCKING: [&str; 4] = [
    "benchscale::schema::unknown_field",
    "benchscale::name::invalid",
    "benchscale::step::invalid_capture",
    "benchscale::version::unsupported",
];

/// Loads a topology from text. `path` names the file in diagnostics and its
/// folder is the base for `copy.src`. Never panics, whatever the text.
///
/// # Errors
///
/// Every problem found, sorted by position in the file.
pub fn load_str(
    path: &Path,
    text: &str,
    files: &dyn FileCheck,
) -> Result<Topology, FileDiagnostics> {
    let text: Arc<str> = Arc::from(text);
    let fail = |mut diagnostics: Vec<Diagnostic>| {
        diagnostics.sort_by_key(|d| (d.span.as_ref().map_or(0, |s| s.start), d.code));
        FileDiagnostics::new(path, text.clone(), diagnostics)
    };
    let loaded = yaml::load(&text, &yaml::Limits::default());
    let mut diagnostics = loaded.diagnostics;
    let Some(mut document) = loaded.document else {
        return Err(fail(diagnostics));
    };
    if !document.value.is_object() {
        diagnostics.push(
            Diagnostic::new(
                "benchscale::schema::wrong_type",
                "a topology file must be a map of settings",
            )
            .with_opt_span(document.spans.value(""), "not a map")
            .with_help("start with `name: my-lab` and `nodes:`"),
        );
        return Err(fail(diagnostics));
    }
    let (schema_diagnostics, unknown) = schema::validate(&document.value, &document.spans);
    // Unknown fields, bad names and an unsupported version leave the
    // structure intact: the rest of the file can still be checked, so one run
    // shows every problem. Other structural errors would only cause
    // misleading follow-on errors, so checking stops after them.
    let blocking = schema_diagnostics
        .iter()
        .any(|d| !NON_BLOCKING.contains(&d.code));
    diagnostics.extend(schema_diagnostics);
    if blocking {
        return Err(fail(diagnostics));
    }
    for pointer in &unknown {
        remove_pointer(&mut document.value, pointer);
    }
    // Top-level `x-` keys hold the user's own anchors, as in compose files.
    if let Some(map) = document.value.as_object_mut() {
        map.retain(|key, _| !key.starts_with("x-"));
    }
    let raw: raw::RawTopology = match serde_json::from_value(document.value) {
        Ok(raw) => raw,
        Err(e) => {
            diagnostics.push(
                Diagnostic::new(
                    "benchscale::internal",
                    format!("the schema accepted a value the types refuse: {e}"),
                )
                .with_help("this is a bug in benchscale; please report it with the file"),
            );
            return Err(fail(diagnostics));
        }
    };
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    match resolve::resolve(raw, &document.spans, path, &base_dir, files) {
        Ok(topology) if diagnostics.is_empty() => Ok(topology),
        Ok(_) => Err(fail(diagnostics)),
        Err(more) => {
            diagnostics.extend(more);
            Err(fail(diagnostics))
        }
    }
}

fn remove_pointer(value: &mut serde_json::Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    if let Some(serde_json::Value::Object(map)) = value.pointer_mut(parent) {
        map.remove(&key);
    }
}

/// Reads and loads a topology file.
///
/// # Errors
///
/// The file's problems; a file that cannot be read, is too large or is not
/// UTF-8 gives one diagnostic without a position.
pub fn load_file(path: &Path) -> Result<Topology, FileDiagnostics> {
    let limit = yaml::Limits::default().max_bytes;
    let unreadable = |code: &'static str, message: String, help: &str| {
        FileDiagnostics::new(
            path,
            Arc::from(""),
            vec![Diagnostic::new(code, message).with_help(help)],
        )
    };
    // Check the size before reading, so a huge file costs no memory.
    match std::fs::metadata(path) {
        Ok(m) if m.len() > limit as u64 => {
            return Err(unreadable(
                "benchscale::yaml::too_large",
                format!(
                    "the file is {} bytes, more than the limit of {limit} bytes",
                    m.len()
                ),
                "split the lab into smaller files, or check that this is the right file",
            ));
        }
        Ok(m) if m.is_dir() => {
            return Err(unreadable(
                "benchscale::io::read",
                format!("`{}` is a folder, not a topology file", path.display()),
                "name a YAML file",
            ));
        }
        _ => {}
    }
    let bytes = std::fs::read(path).map_err(|e| {
        unreadable(
            "benchscale::io::read",
            format!("cannot read `{}`: {e}", path.display()),
            "check the path and the file's permissions",
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        // The text before the bad byte is valid, so the byte's line and
        // column can still be shown.
        let at = e.utf8_error().valid_up_to();
        let text: Arc<str> = Arc::from(String::from_utf8_lossy(e.as_bytes()).as_ref());
        let d = Diagnostic::new("benchscale::yaml::encoding", "the file is not valid UTF-8")
            .with_span(at..at + 1, "not UTF-8")
            .with_help("save the file as UTF-8");
        FileDiagnostics::new(path, text, vec![d])
    })?;
    load_str(path, &text, &RealFiles)
}
