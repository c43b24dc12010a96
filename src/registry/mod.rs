//! The lab registry: what was applied, outputs and history, per lab.
//!
//! Each lab has a folder under `<state_dir>/labs/<lab>/` with `state.json`
//! (written atomically: temporary file, fsync, rename; mode 0600) and a
//! `lock` file. [`Registry::lock`] takes an exclusive lock so that two
//! commands never change one lab at once; different labs do not contend.
//! The kernel drops the lock when its process dies, even by `kill -9`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lifecycle::{Health, Stage};
use crate::plan::hash::NodeSpecV1;
use crate::topology::model::NodeKind;

/// How many applies the history keeps.
const HISTORY_LEN: usize = 50;

/// A registry failure.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RegistryError {
    /// Another process holds the lab's lock.
    #[error("lab `{lab}` is being changed by another benchscale process (pid {pid})")]
    #[diagnostic(
        code(benchscale::registry::locked),
        help(
            "wait for it to finish; if no such process runs, the lock is released already and you can retry"
        )
    )]
    Locked { lab: String, pid: String },
    /// The state folder cannot be read or written.
    #[error("cannot use the state folder {path}")]
    #[diagnostic(
        code(benchscale::registry::io),
        help("check BENCHSCALE_STATE_DIR and its permissions")
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `state.json` does not parse.
    #[error("the lab record {path} is damaged: {message}")]
    #[diagnostic(
        code(benchscale::registry::damaged),
        help(
            "remove the file; `benchscale apply` rebuilds it from what runs, and `destroy --lab` works without it"
        )
    )]
    Damaged { path: PathBuf, message: String },
}

/// What was applied of one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub spec_hash: String,
}

/// What was applied of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub kind: NodeKind,
    pub id: String,
    pub spec_hash: String,
    /// The spec that was applied, to name the fields that change.
    pub spec: Option<NodeSpecV1>,
    /// Hashes of the provisioning steps that completed, in order.
    pub steps: Vec<String>,
    pub outputs: BTreeMap<String, String>,
    pub addresses: BTreeMap<String, Ipv4Addr>,
    /// Health when last checked.
    pub health: Health,
    /// VMs: milliseconds from start to healthy at the last boot.
    #[serde(default)]
    pub boot_ms: Option<u64>,
    /// How far the instance `id` got: a node is taken as healthy without a
    /// probe only when this very instance was seen healthy. Absent in
    /// records of older versions, which makes the next apply check once.
    #[serde(default)]
    pub stage: Option<Stage>,
    /// The health conditions (their hash) this instance was seen healthy
    /// with; changed conditions are checked again.
    #[serde(default)]
    pub health_hash: Option<String>,
}

impl NodeRecord {
    /// Whether the instance `id`, running now, was seen healthy under the
    /// health conditions whose hash is `health_hash`.
    pub fn seen_healthy(&self, id: &str, health_hash: &str) -> bool {
        self.id == id
            && self.stage >= Some(Stage::Healthy)
            && self.health_hash.as_deref() == Some(health_hash)
    }
}

/// One apply or destroy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub command: String,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    pub duration_ms: u64,
    /// `ok`, `failed` or `interrupted`.
    pub result: String,
    pub changes: usize,
    pub message: Option<String>,
}

/// One run of `benchscale test`, as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRunEntry {
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    pub duration_ms: u64,
    /// `passed`, `failed` or `interrupted`.
    pub result: String,
    /// Each test run: name, passed, duration in milliseconds.
    pub tests: Vec<(String, bool, u64)>,
}

/// Everything the registry keeps of one lab.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabRecord {
    pub lab: String,
    pub topology_path: Option<PathBuf>,
    pub topology_hash: Option<String>,
    pub networks: BTreeMap<String, NetworkRecord>,
    pub nodes: BTreeMap<String, NodeRecord>,
    pub history: Vec<HistoryEntry>,
    /// The last test runs, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_runs: Vec<TestRunEntry>,
}

impl LabRecord {
    pub fn new(lab: &str) -> Self {
        Self {
            lab: lab.to_string(),
            ..Self::default()
        }
    }

    /// Appends a test run, keeping the last [`HISTORY_LEN`].
    pub fn push_test_run(&mut self, entry: TestRunEntry) {
        self.test_runs.push(entry);
        let excess = self.test_runs.len().saturating_sub(HISTORY_LEN);
        self.test_runs.drain(..excess);
    }

    /// Appends to the history, keeping the last [`HISTORY_LEN`] entries.
    pub fn push_history(&mut self, entry: HistoryEntry) {
        self.history.push(entry);
        let excess = self.history.len().saturating_sub(HISTORY_LEN);
        self.history.drain(..excess);
    }
}

/// The registry under a state folder.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
}

/// An exclusive hold on one lab; released when dropped.
#[derive(Debug)]
pub struct LabLock {
    _file: File,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Registry {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            root: state_dir.join("labs"),
        }
    }

    /// The lab's folder: its record, lock and the files other parts keep
    /// for it (the delay line's, test artifacts).
    pub fn dir(&self, lab: &str) -> PathBuf {
        self.root.join(lab)
    }

    fn state_path(&self, lab: &str) -> PathBuf {
        self.dir(lab).join("state.json")
    }

    /// Takes the lab's lock, or fails at once naming the holder's pid.
    ///
    /// # Errors
    ///
    /// [`RegistryError::Locked`] when another process holds it.
    pub fn lock(&self, lab: &str) -> Result<LabLock, RegistryError> {
        let dir = self.dir(lab);
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let path = dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_error(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(RegistryError::Locked {
                    lab: lab.to_string(),
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid.to_string()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&path)(e)),
        }
        // The pid is only for the message another process shows.
        file.set_len(0).map_err(io_error(&path))?;
        file.rewind().map_err(io_error(&path))?;
        write!(file, "{}", std::process::id()).map_err(io_error(&path))?;
        file.flush().map_err(io_error(&path))?;
        Ok(LabLock { _file: file })
    }

    /// The lab's record, if there is one.
    ///
    /// # Errors
    ///
    /// An unreadable or damaged file.
    pub fn load(&self, lab: &str) -> Result<Option<LabRecord>, RegistryError> {
        let path = self.state_path(lab);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(&path)(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| RegistryError::Damaged {
                path,
                message: e.to_string(),
            })
    }

    /// Writes the lab's record atomically, readable by its owner only.
    ///
    /// # Errors
    ///
    /// The state folder cannot be written.
    pub fn save(&self, record: &LabRecord) -> Result<(), RegistryError> {
        let dir = self.dir(&record.lab);
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let path = self.state_path(&record.lab);
        let tmp = dir.join(format!("state.json.tmp{}", std::process::id()));
        let text = serde_json::to_vec_pretty(record).unwrap_or_default();
        let write = || -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            // The rename is durable only once the folder is synced.
            File::open(&dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_error(&path)(e)
        })
    }

    /// Forgets a lab: removes its record (the lock file stays while held).
    ///
    /// # Errors
    ///
    /// The file exists but cannot be removed.
    pub fn remove(&self, lab: &str) -> Result<(), RegistryError> {
        let path = self.state_path(lab);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    /// Every lab with a record.
    pub fn labs(&self) -> Vec<String> {
        let mut labs: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("state.json").is_file())
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .collect();
        labs.sort();
        labs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("benchscale-registry-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn save_then_load_round_trips_with_mode_0600() {
        let dir = temp("roundtrip");
        let registry = Registry::new(&dir);
        let mut record = LabRecord::new("lab-a");
        record.nodes.insert(
            "web".into(),
            NodeRecord {
                kind: NodeKind::Vm,
                id: "abc".into(),
                spec_hash: "v1:0".into(),
                spec: None,
                steps: Vec::new(),
                outputs: [("k".to_string(), "v".to_string())].into(),
                addresses: Default::default(),
                health: Health::Healthy,
                boot_ms: Some(1200),
                stage: Some(Stage::Provisioned),
                health_hash: Some("v1:1".into()),
            },
        );
        registry.save(&record).unwrap();
        assert_eq!(registry.load("lab-a").unwrap(), Some(record));
        let mode = std::fs::metadata(dir.join("labs/lab-a/state.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(registry.labs(), ["lab-a"]);
        registry.remove("lab-a").unwrap();
        registry.remove("lab-a").unwrap();
        assert_eq!(registry.load("lab-a").unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_lock_on_one_lab_fails_naming_the_pid_but_other_labs_lock() {
        let dir = temp("lock");
        let registry = Registry::new(&dir);
        let held = registry.lock("one").unwrap();
        match registry.lock("one") {
            Err(RegistryError::Locked { pid, .. }) => {
                assert_eq!(pid, std::process::id().to_string())
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        let other = registry.lock("two").unwrap();
        drop(held);
        let again = registry.lock("one").unwrap();
        drop((other, again));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_record_is_a_clear_error() {
        let dir = temp("damaged");
        std::fs::create_dir_all(dir.join("labs/x")).unwrap();
        std::fs::write(dir.join("labs/x/state.json"), "{not json").unwrap();
        let err = Registry::new(&dir).load("x").unwrap_err();
        assert!(matches!(err, RegistryError::Damaged { .. }), "{err:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn history_keeps_the_last_entries() {
        let mut record = LabRecord::new("h");
        for i in 0..(HISTORY_LEN + 5) {
            record.push_history(HistoryEntry {
                command: "apply".into(),
                started_at: i as u64,
                duration_ms: 1,
                result: "ok".into(),
                changes: 0,
                message: None,
            });
        }
        assert_eq!(record.history.len(), HISTORY_LEN);
        assert_eq!(record.history[0].started_at, 5);
    }
}
