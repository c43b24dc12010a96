//! Temporary folders, removed with everything in them when dropped (also
//! when the test panics). Each has a unique random name, so that test
//! threads and test processes never share one.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// See the module documentation.
#[derive(Debug)]
pub struct Scratch(TempDir);

impl Scratch {
    /// A folder `benchscale-<tag>-…` in the temporary folder, for this
    /// user only.
    pub fn new(tag: &str) -> Self {
        Self::make(&std::env::temp_dir(), tag, 0o700)
    }

    /// A folder under `/tmp` that every user can read: libvirt's QEMU runs
    /// as a user of its own and must read the overlays and seeds made
    /// here, and `TMPDIR` may point where it cannot look.
    pub fn for_libvirt(tag: &str) -> Self {
        Self::make(Path::new("/tmp"), tag, 0o755)
    }

    fn make(parent: &Path, tag: &str, mode: u32) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("benchscale-{tag}-"))
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
            .tempdir_in(parent)
            .unwrap_or_else(|e| panic!("make a temporary folder in {}: {e}", parent.display()));
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// A path in the folder.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.path().join(name)
    }
}
