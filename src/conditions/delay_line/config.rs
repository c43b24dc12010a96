//! What a lab's delay line does: its queue and one rule per host-side
//! interface and direction. The engine writes it as JSON next to the lab's
//! record; the running process reads it back whenever the file changes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::DelayLineError;
use crate::conditions::{ConditionSet, Direction};

/// The file name of a lab's delay-line configuration, in the lab's folder.
pub const CONFIG_FILE: &str = "delay-line.json";
/// What the process reports about itself (pid, queue, the configuration in
/// effect), in the lab's folder.
pub const STATUS_FILE: &str = "delay-line.status.json";
/// Where the process's stderr goes, in the lab's folder.
pub const LOG_FILE: &str = "delay-line.log";

/// The configuration of one lab's delay line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelayLineConfig {
    pub lab: String,
    /// The netfilter queue the lab's rules send packets to.
    pub queue: u16,
    pub links: Vec<LinkRule>,
}

/// The conditions of what crosses one host-side interface in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRule {
    /// Host-side interface name (a container's veth peer, a VM's tap).
    pub ifname: String,
    pub direction: Direction,
    /// Only delay, jitter, reorder, corrupt and duplicate are done here;
    /// the kernel does loss and rate before the packet is queued.
    pub set: ConditionSet,
}

impl DelayLineConfig {
    /// The file's bytes: pretty JSON, so that a person can read it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// True when some rule needs the packet's bytes (corrupting or sending
    /// a copy); otherwise the queue copies only metadata, which is cheaper.
    pub fn needs_payload(&self) -> bool {
        self.links.iter().any(|l| {
            let n = l.set.normalized();
            n.corrupt.is_some() || n.duplicate.is_some()
        })
    }
}

/// A short, stable digest of a configuration file's bytes: what the process
/// reports as in effect, and what `ensure` waits for.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The lab's folder under the state folder, where the record also lives.
pub fn lab_dir(state_dir: &Path, lab: &str) -> PathBuf {
    state_dir.join("labs").join(lab)
}

/// Reads a configuration file, with its digest.
pub fn read(path: &Path) -> Result<(DelayLineConfig, String), DelayLineError> {
    let bytes = std::fs::read(path).map_err(|source| DelayLineError::Io {
        action: "read the delay-line configuration",
        path: path.to_path_buf(),
        source,
    })?;
    let config = serde_json::from_slice(&bytes).map_err(|source| DelayLineError::BadConfig {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((config, digest(&bytes)))
}

/// Writes `bytes` to `path` so that a reader sees the old file or the new
/// one, never a part: a temporary file in the same folder, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DelayLineError> {
    let io = |action: &'static str| {
        move |source| DelayLineError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io("write"))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("replace")(e)
    })
}

/// What the running process reports in [`STATUS_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    /// The queue bound.
    pub queue: u16,
    /// The digest of the configuration file in effect.
    pub config: String,
    /// Interfaces of the configuration that do not exist (yet): their
    /// packets pass undelayed until they appear.
    #[serde(default)]
    pub missing: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_with_condition_strings() {
        let config = DelayLineConfig {
            lab: "web".into(),
            queue: 1234,
            links: vec![LinkRule {
                ifname: "veth1a2b".into(),
                direction: Direction::Egress,
                set: ConditionSet {
                    delay: Some(40_000),
                    jitter: Some(500),
                    ..Default::default()
                },
            }],
        };
        let bytes = config.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"delay\": \"40ms\""), "{text}");
        assert!(text.contains("\"direction\": \"egress\""), "{text}");
        let back: DelayLineConfig = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, config);
        assert!(!config.needs_payload());
        assert_eq!(digest(&bytes), digest(&config.to_bytes()));
        assert_eq!(digest(&bytes).len(), 16);
    }
}
