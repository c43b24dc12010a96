//! Where configuration comes from: the environment and a TOML file.

use std::path::{Path, PathBuf};

use super::{KEYS, env_var};
use crate::diagnostics::line_col;

/// Reads environment variables; tests pass a map instead of the process's.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Environment for std::collections::HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// A configuration problem, naming where the bad value came from.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ConfigError {
    /// `--config` or `BENCHSCALE_CONFIG` names a file that does not exist.
    #[error("configuration file `{path}` (from {from}) does not exist")]
    #[diagnostic(
        code(benchscale::config::missing_file),
        help("fix the path, or unset {from} to use the defaults")
    )]
    MissingFile { path: PathBuf, from: String },
    /// The file exists but cannot be read.
    #[error("cannot read configuration file `{path}`")]
    #[diagnostic(code(benchscale::config::read), help("check the file's permissions"))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has a key or type we do not know.
    #[error("{path}:{line}:{column}: {message}")]
    #[diagnostic(code(benchscale::config::parse), help("{help}"))]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        help: String,
    },
    /// A value does not parse.
    #[error("{origin}: `{value}` is {problem}")]
    #[diagnostic(code(benchscale::config::bad_value), help("{help}"))]
    BadValue {
        origin: String,
        value: String,
        problem: String,
        help: &'static str,
    },
}

/// The configuration file to read, if any.
pub(super) fn find_file(
    explicit: Option<&Path>,
    env: &dyn Environment,
) -> Result<Option<PathBuf>, ConfigError> {
    let named = match (explicit, env.var("BENCHSCALE_CONFIG")) {
        (Some(p), _) => Some((p.to_path_buf(), "--config".to_string())),
        (None, Some(p)) if !p.is_empty() => {
            Some((PathBuf::from(p), "BENCHSCALE_CONFIG".to_string()))
        }
        _ => None,
    };
    if let Some((path, from)) = named {
        return if path.exists() {
            Ok(Some(path))
        } else {
            Err(ConfigError::MissingFile { path, from })
        };
    }
    let user = match (env.var("XDG_CONFIG_HOME"), env.var("HOME")) {
        (Some(x), _) if !x.is_empty() => Some(PathBuf::from(x).join("benchscale/config.toml")),
        (_, Some(h)) if !h.is_empty() => {
            Some(PathBuf::from(h).join(".config/benchscale/config.toml"))
        }
        _ => None,
    };
    let system = PathBuf::from("/etc/benchscale/config.toml");
    Ok(user.into_iter().chain([system]).find(|p| p.is_file()))
}

/// The file's settings as (key, text, line).
pub(super) fn parse_file(
    path: &Path,
    text: &str,
) -> Result<Vec<(&'static str, String, usize)>, ConfigError> {
    let parse_error = |span: Option<std::ops::Range<usize>>, message: String, help: String| {
        let (line, column) = line_col(text, span.map_or(0, |s| s.start));
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
            help,
        }
    };
    // Values keep their spans, which give the line of each setting.
    let table: std::collections::BTreeMap<String, toml::Spanned<toml::Value>> =
        toml::from_str(text).map_err(|e| {
            parse_error(
                e.span(),
                e.message().trim().to_string(),
                "fix the TOML syntax".into(),
            )
        })?;
    let mut out = Vec::new();
    for (key, value) in table {
        let span = value.span();
        let Some(known) = KEYS.iter().find(|k| **k == key) else {
            let allowed: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
            let help = match crate::topology::schema::suggest(&key, &allowed) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("known keys: {}", KEYS.join(", ")),
            };
            return Err(parse_error(
                Some(span),
                format!("unknown key `{key}`"),
                help,
            ));
        };
        let text_value = match value.into_inner() {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            other => {
                return Err(parse_error(
                    Some(span),
                    format!(
                        "`{key}` must be a string or a number, not {}",
                        other.type_str()
                    ),
                    format!(
                        "write `{key} = \"...\"`; the same setting can come from {}",
                        env_var(&key)
                    ),
                ));
            }
        };
        let (line, _) = line_col(text, span.start);
        out.push((*known, text_value, line));
    }
    Ok(out)
}
