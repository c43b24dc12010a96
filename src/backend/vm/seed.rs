//! The NoCloud seed disk: a small FAT image labelled `CIDATA`, made in
//! memory with no host tool (no `genisoimage`, `mkfs.vfat` or loop mount).
//!
//! cloud-init's NoCloud data source looks for a vfat or iso9660 file system
//! whose label is `cidata` or `CIDATA` and reads `meta-data`, `user-data`
//! and `network-config` from its root. FAT is the simpler of the two to
//! write, and `fatfs` writes the label both in the boot sector and as the
//! root folder's volume entry, where `blkid` looks first.
//!
//! The image is deterministic: the same files give the same bytes (file
//! times are the FAT epoch, the volume serial is derived from the
//! contents), so a seed's hash can tell whether it changed.

use std::io::{self, Cursor, Write};

use fatfs::{FileSystem, FormatVolumeOptions, FsOptions};
use sha2::{Digest, Sha256};

/// The volume label, padded to FAT's eleven characters.
pub const LABEL: &[u8; 11] = b"CIDATA     ";

/// Smallest image made; FAT12 with room to spare for typical user data.
const MIN_SIZE: u64 = 1024 * 1024;
/// Largest total of file contents accepted: cloud-init reads user data
/// into memory, and a seed this large is a mistake rather than a need.
const MAX_CONTENT: u64 = 64 * 1024 * 1024;

/// A FAT image labelled `CIDATA` holding `files` (name, contents) in its
/// root folder, as raw disk bytes to attach to a VM.
///
/// Blocking (CPU only, no I/O): run it in `spawn_blocking` when the files
/// are large.
///
/// # Errors
///
/// `io::ErrorKind::InvalidInput` for an empty name, a name with `/` or
/// `\`, a repeated name, or contents over 64 MiB in all; any error from
/// the FAT writer otherwise.
pub fn build_seed(files: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
    let total = check(files)?;
    // Data plus a quarter for cluster slack, plus room for the FATs and
    // the root folder, rounded up to whole MiB.
    let size = (total + total / 4 + 512 * 1024).div_ceil(MIN_SIZE) * MIN_SIZE;
    let size = usize::try_from(size.max(MIN_SIZE)).map_err(io::Error::other)?;
    let mut disk = Cursor::new(vec![0u8; size]);
    fatfs::format_volume(
        &mut disk,
        FormatVolumeOptions::new()
            .volume_label(*LABEL)
            .volume_id(volume_id(files)),
    )?;
    {
        let fs = FileSystem::new(&mut disk, FsOptions::new())?;
        let root = fs.root_dir();
        for (name, contents) in files {
            let mut file = root.create_file(name)?;
            file.truncate()?;
            file.write_all(contents)?;
            file.flush()?;
        }
        drop(root);
        fs.unmount()?;
    }
    Ok(disk.into_inner())
}

fn check(files: &[(&str, &[u8])]) -> io::Result<u64> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    let mut total = 0u64;
    for (i, (name, contents)) in files.iter().enumerate() {
        if name.is_empty() || name.contains(['/', '\\']) {
            return Err(invalid(format!(
                "seed file name {name:?} is not a plain name"
            )));
        }
        // FAT compares names without case, so `A` and `a` would collide.
        if files[..i]
            .iter()
            .any(|(other, _)| other.eq_ignore_ascii_case(name))
        {
            return Err(invalid(format!("seed file {name:?} is given twice")));
        }
        total += contents.len() as u64;
    }
    if total > MAX_CONTENT {
        return Err(invalid(format!(
            "seed files hold {total} bytes, more than the limit of {MAX_CONTENT}"
        )));
    }
    Ok(total)
}

/// The volume serial number, from the contents: stable for the same seed,
/// different between seeds (it becomes the file system's UUID).
fn volume_id(files: &[(&str, &[u8])]) -> u32 {
    let mut hash = Sha256::new();
    for (name, contents) in files {
        hash.update((name.len() as u64).to_le_bytes());
        hash.update(name.as_bytes());
        hash.update((contents.len() as u64).to_le_bytes());
        hash.update(contents);
    }
    let digest = hash.finalize();
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Name and contents of each file in the root folder.
    type Files = Vec<(String, Vec<u8>)>;

    /// The boot sector label, the root folder's label entry, and the files.
    fn read_back(image: Vec<u8>) -> (String, Option<String>, Files) {
        let fs = FileSystem::new(Cursor::new(image), FsOptions::new()).unwrap();
        let label = fs.volume_label();
        let root_label = fs.read_volume_label_from_root_dir().unwrap();
        let mut files = Vec::new();
        for entry in fs.root_dir().iter() {
            let entry = entry.unwrap();
            let mut contents = Vec::new();
            entry.to_file().read_to_end(&mut contents).unwrap();
            files.push((entry.file_name(), contents));
        }
        (label, root_label, files)
    }

    #[test]
    fn files_and_label_read_back() {
        let user = b"#cloud-config\nusers: []\n".to_vec();
        let image = build_seed(&[
            ("meta-data", b"instance-id: x\n"),
            ("user-data", &user),
            ("network-config", b"version: 2\n"),
        ])
        .unwrap();
        assert_eq!(image.len() as u64, MIN_SIZE);
        let (label, root_label, files) = read_back(image);
        assert_eq!(label, "CIDATA");
        assert_eq!(root_label.as_deref(), Some("CIDATA"));
        assert_eq!(
            files,
            vec![
                ("meta-data".to_owned(), b"instance-id: x\n".to_vec()),
                ("user-data".to_owned(), user),
                ("network-config".to_owned(), b"version: 2\n".to_vec()),
            ]
        );
    }

    #[test]
    fn same_files_same_bytes_other_files_other_serial() {
        let a = build_seed(&[("meta-data", b"a")]).unwrap();
        assert_eq!(a, build_seed(&[("meta-data", b"a")]).unwrap());
        let b = build_seed(&[("meta-data", b"b")]).unwrap();
        assert_ne!(
            volume_id(&[("meta-data", b"a")]),
            volume_id(&[("meta-data", b"b")])
        );
        assert_ne!(a, b);
    }

    #[test]
    fn large_contents_get_a_larger_image() {
        let big = vec![b'x'; 3 * 1024 * 1024];
        let image = build_seed(&[("user-data", &big)]).unwrap();
        assert!(image.len() as u64 >= 4 * MIN_SIZE);
        let (_, _, files) = read_back(image);
        assert_eq!(files[0].1, big);
    }

    #[test]
    fn bad_names_are_refused() {
        for files in [
            vec![("", b"x".as_slice())],
            vec![("a/b", b"x".as_slice())],
            vec![
                ("meta-data", b"x".as_slice()),
                ("META-DATA", b"y".as_slice()),
            ],
        ] {
            let err = build_seed(&files).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{files:?}");
        }
    }
}
