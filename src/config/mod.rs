//! Configuration: defaults, then a TOML file, then `BENCHSCALE_*` variables.
//!
//! Each effective value remembers where it came from, for `benchscale
//! config`. A bad value is an error naming the variable, or the file and
//! line, that gave it.

mod sources;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::conditions::kernel::PlaneChoice;
use serde::Serialize;

pub use sources::{ConfigError, Environment, ProcessEnv};

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    Default,
    File { path: PathBuf, line: usize },
    Env { var: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env { var } => write!(f, "environment {var}"),
        }
    }
}

/// A value and its origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

/// How libvirt domains are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainType {
    /// KVM when it works on this host, else software emulation.
    Auto,
    Kvm,
    Qemu,
}

impl fmt::Display for DomainType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DomainType::Auto => "auto",
            DomainType::Kvm => "kvm",
            DomainType::Qemu => "qemu",
        })
    }
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// The configuration file read, if any.
    pub file: Option<PathBuf>,
    pub libvirt_uri: Setting<String>,
    pub docker_host: Setting<String>,
    pub base_image_path: Setting<PathBuf>,
    pub overlay_dir: Setting<PathBuf>,
    pub state_dir: Setting<PathBuf>,
    pub ssh_user: Setting<String>,
    pub ssh_port: Setting<u16>,
    pub ssh_timeout_secs: Setting<u64>,
    pub libvirt_domain_type: Setting<DomainType>,
    /// The data plane of network conditions: `auto`, `netem` or
    /// `userspace`.
    pub conditions: Setting<PlaneChoice>,
}

/// One row of `benchscale config`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub key: &'static str,
    pub env: String,
    pub value: String,
    pub origin: Origin,
}

/// Every setting: its key in the file; the variable is `BENCHSCALE_` and the
/// key in capitals.
pub const KEYS: [&str; 10] = [
    "libvirt_uri",
    "docker_host",
    "base_image_path",
    "overlay_dir",
    "state_dir",
    "ssh_user",
    "ssh_port",
    "ssh_timeout_secs",
    "libvirt_domain_type",
    "conditions",
];

/// The environment variable of a key.
pub fn env_var(key: &str) -> String {
    format!("BENCHSCALE_{}", key.to_ascii_uppercase())
}

fn default_of(key: &str, env: &dyn Environment) -> String {
    match key {
        "libvirt_uri" => "qemu:///system".into(),
        "docker_host" => "unix:///var/run/docker.sock".into(),
        "base_image_path" => "/var/lib/libvirt/images".into(),
        // libvirt's QEMU processes must reach overlays, so they live beside
        // the base images rather than in a home folder.
        "overlay_dir" => "/var/lib/libvirt/images/benchscale".into(),
        "state_dir" => match (env.var("XDG_STATE_HOME"), env.var("HOME")) {
            (Some(x), _) if !x.is_empty() => format!("{x}/benchscale"),
            (_, Some(h)) if !h.is_empty() => format!("{h}/.local/state/benchscale"),
            _ => "/var/lib/benchscale".into(),
        },
        "ssh_user" => "benchscale".into(),
        "ssh_port" => "22".into(),
        "ssh_timeout_secs" => "30".into(),
        "libvirt_domain_type" => "auto".into(),
        "conditions" => "auto".into(),
        _ => String::new(),
    }
}

impl Config {
    /// Loads the configuration from the process environment and the file
    /// named by `explicit` (the `--config` option), `BENCHSCALE_CONFIG`, or
    /// the user's or the system's config folder, the first that exists.
    ///
    /// # Errors
    ///
    /// A named file that is missing, a file that does not parse, or a bad
    /// value, each naming its origin.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let env = ProcessEnv;
        let file = sources::find_file(explicit, &env)?;
        let file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Some((path, text))
            }
            None => None,
        };
        Self::from_sources(&env, file.as_ref().map(|(p, t)| (p.as_path(), t.as_str())))
    }

    /// Builds the configuration from an environment and a file's text.
    ///
    /// # Errors
    ///
    /// As [`Config::load`].
    pub fn from_sources(
        env: &dyn Environment,
        file: Option<(&Path, &str)>,
    ) -> Result<Self, ConfigError> {
        let mut raw: HashMap<&'static str, (String, Origin)> = KEYS
            .iter()
            .map(|k| (*k, (default_of(k, env), Origin::Default)))
            .collect();
        if let Some((path, text)) = file {
            for (key, value, line) in sources::parse_file(path, text)? {
                raw.insert(
                    key,
                    (
                        value,
                        Origin::File {
                            path: path.to_path_buf(),
                            line,
                        },
                    ),
                );
            }
        }
        for key in KEYS {
            let var = env_var(key);
            if let Some(value) = env.var(&var) {
                raw.insert(key, (value, Origin::Env { var }));
            }
        }
        let mut take =
            |key: &'static str| raw.remove(key).unwrap_or((String::new(), Origin::Default));
        Ok(Config {
            file: file.map(|(p, _)| p.to_path_buf()),
            libvirt_uri: parse(take("libvirt_uri"), |v| {
                if v.contains("://") || v.contains(":///") {
                    Ok(v.to_string())
                } else {
                    Err((
                        "not a libvirt URI".into(),
                        "use a URI such as qemu:///system or qemu+ssh://host/system",
                    ))
                }
            })?,
            docker_host: parse(take("docker_host"), |v| {
                if ["unix://", "tcp://", "http://", "https://", "ssh://"]
                    .iter()
                    .any(|p| v.starts_with(p))
                {
                    Ok(v.to_string())
                } else {
                    Err((
                        "not a Docker host address".into(),
                        "use unix:///var/run/docker.sock or tcp://HOST:PORT",
                    ))
                }
            })?,
            base_image_path: parse(take("base_image_path"), absolute_path)?,
            overlay_dir: parse(take("overlay_dir"), absolute_path)?,
            state_dir: parse(take("state_dir"), absolute_path)?,
            ssh_user: parse(take("ssh_user"), |v| {
                let ok = !v.is_empty()
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
                if ok {
                    Ok(v.to_string())
                } else {
                    Err((
                        "not a user name".into(),
                        "use letters, digits, `_`, `-` or `.`",
                    ))
                }
            })?,
            ssh_port: parse(take("ssh_port"), |v| {
                v.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| ("not a port number".into(), "use a number from 1 to 65535"))
            })?,
            ssh_timeout_secs: parse(take("ssh_timeout_secs"), |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|p| (1..=86_400).contains(p))
                    .ok_or_else(|| {
                        (
                            "not a number of seconds".into(),
                            "use a whole number from 1 to 86400",
                        )
                    })
            })?,
            libvirt_domain_type: parse(take("libvirt_domain_type"), |v| match v {
                "auto" => Ok(DomainType::Auto),
                "kvm" => Ok(DomainType::Kvm),
                "qemu" => Ok(DomainType::Qemu),
                _ => Err(("not a domain type".into(), "use auto, kvm or qemu")),
            })?,
            conditions: parse(take("conditions"), |v| {
                v.parse::<PlaneChoice>()
                    .map_err(|_| ("not a data plane".into(), "use auto, netem or userspace"))
            })?,
        })
    }

    /// Every setting with its variable, value and origin.
    pub fn rows(&self) -> Vec<Row> {
        fn row<T: fmt::Display>(key: &'static str, s: &Setting<T>) -> Row {
            Row {
                key,
                env: env_var(key),
                value: s.value.to_string(),
                origin: s.origin.clone(),
            }
        }
        fn path_row(key: &'static str, s: &Setting<PathBuf>) -> Row {
            Row {
                key,
                env: env_var(key),
                value: s.value.display().to_string(),
                origin: s.origin.clone(),
            }
        }
        vec![
            row("libvirt_uri", &self.libvirt_uri),
            row("docker_host", &self.docker_host),
            path_row("base_image_path", &self.base_image_path),
            path_row("overlay_dir", &self.overlay_dir),
            path_row("state_dir", &self.state_dir),
            row("ssh_user", &self.ssh_user),
            row("ssh_port", &self.ssh_port),
            row("ssh_timeout_secs", &self.ssh_timeout_secs),
            row("libvirt_domain_type", &self.libvirt_domain_type),
            row("conditions", &self.conditions),
        ]
    }
}

fn absolute_path(v: &str) -> Result<PathBuf, (String, &'static str)> {
    if Path::new(v).is_absolute() {
        Ok(PathBuf::from(v))
    } else {
        Err((
            "not an absolute path".into(),
            "use a path that starts with /",
        ))
    }
}

fn parse<T>(
    (text, origin): (String, Origin),
    check: impl Fn(&str) -> Result<T, (String, &'static str)>,
) -> Result<Setting<T>, ConfigError> {
    match check(text.trim()) {
        Ok(value) => Ok(Setting { value, origin }),
        Err((problem, help)) => Err(ConfigError::BadValue {
            origin: origin.to_string(),
            value: text,
            problem,
            help,
        }),
    }
}

#[cfg(test)]
mod tests;
