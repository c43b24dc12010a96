//! Files of a VM: base image resolution, qcow2 overlays, the per-lab
//! folder of overlays, seeds and console logs.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::super::BackendError;

/// Where a lab's files live: `<overlay_dir>/<lab>/`.
#[derive(Debug, Clone)]
pub struct LabFiles {
    pub dir: PathBuf,
}

impl LabFiles {
    pub fn new(overlay_dir: &Path, lab: &str) -> Self {
        Self {
            dir: overlay_dir.join(lab),
        }
    }

    pub fn overlay(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.qcow2"))
    }

    pub fn seed(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}-seed.img"))
    }

    pub fn console_log(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.console.log"))
    }

    /// Removes a node's files; missing ones are fine.
    pub fn remove_node(&self, node: &str) {
        for path in [self.overlay(node), self.seed(node), self.console_log(node)] {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A path as written in the topology: relative ones are under the base
/// image path.
pub fn resolve(base_image_path: &Path, name: &str) -> PathBuf {
    let path = Path::new(name);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_image_path.join(path)
    }
}

/// `qcow2` or `raw`, from the file's magic bytes.
pub fn format_of(path: &Path) -> std::io::Result<&'static str> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path)?;
    let n = file.read(&mut magic)?;
    Ok(if n == 4 && magic == *b"QFI\xfb" {
        "qcow2"
    } else {
        "raw"
    })
}

/// The size the guest sees: a qcow2 header's size field, or a raw file's
/// length.
pub fn virtual_size(path: &Path, format: &str) -> std::io::Result<u64> {
    use std::io::Read;
    if format == "qcow2" {
        let mut header = [0u8; 32];
        std::fs::File::open(path)?.read_exact(&mut header)?;
        let mut size = [0u8; 8];
        size.copy_from_slice(&header[24..32]);
        Ok(u64::from_be_bytes(size))
    } else {
        Ok(std::fs::metadata(path)?.len())
    }
}

/// Creates a qcow2 overlay backed by `base`, grown to `size_gib` if given.
/// Creating an overlay writes only a header, so it takes the same short
/// time whatever the size of the base; the base is never written.
///
/// # Errors
///
/// The base is missing or `qemu-img` fails.
pub fn create_overlay(
    base: &Path,
    overlay: &Path,
    size_gib: Option<u64>,
) -> Result<(), BackendError> {
    let api = |message: String| BackendError::Api {
        operation: format!("create overlay {}", overlay.display()),
        message,
    };
    let format = format_of(base).map_err(|e| BackendError::ImageMissing {
        image: base.display().to_string(),
        message: e.to_string(),
    })?;
    if let Some(parent) = overlay.parent() {
        std::fs::create_dir_all(parent).map_err(|e| api(e.to_string()))?;
    }
    let _ = std::fs::remove_file(overlay);
    let mut cmd = Command::new("qemu-img");
    cmd.args(["create", "-q", "-f", "qcow2", "-F", format, "-b"])
        .arg(base)
        .arg(overlay);
    // Only ever grow: an overlay smaller than its base would cut it off.
    if let Some(gib) =
        size_gib.filter(|g| g.saturating_mul(1 << 30) > virtual_size(base, format).unwrap_or(0))
    {
        cmd.arg(format!("{gib}G"));
    }
    let out = cmd
        .output()
        .map_err(|e| api(format!("cannot run qemu-img: {e} (install qemu-utils)")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(api(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}
