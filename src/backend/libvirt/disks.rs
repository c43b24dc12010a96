//! Files of a VM: base image resolution, qcow2 overlays, the per-lab
//! folder of overlays, seeds and console logs.

use std::path::{Path, PathBuf};

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

    /// A node's files: overlay, seed and console log.
    pub fn of_node(&self, node: &str) -> Vec<PathBuf> {
        vec![self.overlay(node), self.seed(node), self.console_log(node)]
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

/// What an overlay of a base image needs from the base: its format
/// (`qcow2` or `raw`, from its magic bytes) and, when the overlay is to be
/// larger, the size to give `qemu-img`. `header` is the base's first 32
/// bytes (fewer for a tiny file), `len` its length in bytes.
pub fn overlay_shape(
    header: &[u8],
    len: u64,
    size_gib: Option<u64>,
) -> (&'static str, Option<String>) {
    let qcow2 = header.starts_with(b"QFI\xfb") && header.len() >= 32;
    let (format, virtual_size) = if qcow2 {
        let mut size = [0u8; 8];
        size.copy_from_slice(&header[24..32]);
        ("qcow2", u64::from_be_bytes(size))
    } else {
        ("raw", len)
    };
    // Only ever grow: an overlay smaller than its base would cut it off.
    let size = size_gib
        .filter(|g| g.saturating_mul(1 << 30) > virtual_size)
        .map(|g| format!("{g}G"));
    (format, size)
}

/// `qemu-img create` of a qcow2 overlay backed by `base`. Creating an
/// overlay writes only a header, so it takes the same short time whatever
/// the size of the base; the base is never written.
pub fn qemu_img_create(
    base: &Path,
    overlay: &Path,
    format: &str,
    size: Option<String>,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "qemu-img", "create", "-q", "-f", "qcow2", "-F", format, "-b",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    args.push(base.display().to_string());
    args.push(overlay.display().to_string());
    args.extend(size);
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qcow2_header(virtual_size: u64) -> Vec<u8> {
        let mut header = b"QFI\xfb".to_vec();
        header.resize(24, 0);
        header.extend(virtual_size.to_be_bytes());
        header
    }

    #[test]
    fn overlays_only_grow_past_the_base() {
        let two = 2 << 30;
        assert_eq!(
            overlay_shape(&qcow2_header(two), 900, Some(4)),
            ("qcow2", Some("4G".into()))
        );
        assert_eq!(
            overlay_shape(&qcow2_header(two), 900, Some(1)),
            ("qcow2", None)
        );
        assert_eq!(
            overlay_shape(&qcow2_header(two), 900, None),
            ("qcow2", None)
        );
        assert_eq!(overlay_shape(&[0; 32], two, Some(2)), ("raw", None));
        assert_eq!(
            overlay_shape(&[0; 32], two, Some(3)),
            ("raw", Some("3G".into()))
        );
        // A short file cannot be a qcow2 image.
        assert_eq!(overlay_shape(b"QFI\xfb", 4, None), ("raw", None));
    }

    #[test]
    fn qemu_img_gets_the_backing_format_and_size() {
        let args = qemu_img_create(
            Path::new("/b/base.raw"),
            Path::new("/o/n.qcow2"),
            "raw",
            Some("4G".into()),
        );
        assert_eq!(
            args.join(" "),
            "qemu-img create -q -f qcow2 -F raw -b /b/base.raw /o/n.qcow2 4G"
        );
    }
}
