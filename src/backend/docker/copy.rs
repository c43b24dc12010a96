//! Copying a local file into a container, through the archive endpoint.
//!
//! The engine extracts a tar archive at a path in the container. Folders the
//! destination needs are created by putting them in the archive, but only
//! those that do not exist: the engine applies a folder entry's mode and
//! owner to a folder that is already there, so an entry for `tmp/` would turn
//! `/tmp` from 1777 into 0755.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::body_full;
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, UploadToContainerOptionsBuilder,
};

use super::DockerBackend;
use super::error::{is_not_found, short_id};
use crate::backend::{BackendError, Daemon};

/// The mode of a copied file when the step gives none.
const DEFAULT_FILE_MODE: u32 = 0o644;
/// The mode of the folders created for it.
const FOLDER_MODE: u32 = 0o755;

/// Copies the local file `src` to `dest` in the container, creating the
/// folders it needs (mode 0755, owned by root). The file gets `mode`
/// (0644 when `None`) and root as owner. A `dest` ending in `/` is a
/// folder: the file keeps its name there. A relative `dest` is taken
/// from `/`.
///
/// Works on a stopped container as well as a running one.
///
/// # Errors
///
/// [`BackendError::Api`] naming the path when `src` cannot be read or
/// `dest` is not a usable path; [`BackendError::NotFound`] when the
/// container is gone.
pub(super) async fn copy(
    backend: &DockerBackend,
    id: &str,
    src: &Path,
    dest: &str,
    mode: Option<u32>,
) -> Result<(), BackendError> {
    let short = short_id(id);
    let operation = format!("copy {} to {short}:{dest}", src.display());
    let what = format!("container {short}");
    let components = dest_components(dest, src)
        .map_err(|message| BackendError::refused(Daemon::Docker, &operation, message))?;
    let contents = read_local(src.to_owned()).await?;
    let missing = missing_folders(backend, id, &components, &operation, &what).await?;
    let file = components.join("/");
    let mode = mode.unwrap_or(DEFAULT_FILE_MODE);
    let archive =
        tokio::task::spawn_blocking(move || build_archive(&missing, &file, &contents, mode))
            .await
            .map_err(std::io::Error::other)
            .and_then(|built| built)
            .map_err(|e| {
                BackendError::io(
                    Daemon::Docker,
                    format!("build the archive of {}", src.display()),
                    e,
                )
            })?;

    let options = UploadToContainerOptionsBuilder::default().path("/").build();
    backend
        .docker
        .upload_to_container(id, Some(options), body_full(archive.into()))
        .await
        .map_err(|e| backend.fail(&operation, &what, e))
}

/// The folders above the file (relative paths, shallowest first) that do
/// not exist in the container. Walks up from the deepest, so the usual
/// case of an existing folder costs one request.
async fn missing_folders(
    backend: &DockerBackend,
    id: &str,
    components: &[String],
    operation: &str,
    what: &str,
) -> Result<Vec<String>, BackendError> {
    let mut missing = Vec::new();
    for depth in (1..components.len()).rev() {
        let folder = components[..depth].join("/");
        let options = ContainerArchiveInfoOptionsBuilder::default()
            .path(&format!("/{folder}"))
            .build();
        match backend
            .docker
            .get_container_archive_info(id, Some(options))
            .await
        {
            Ok(_) => break,
            // A missing container answers 404 too; the upload that
            // follows reports it properly.
            Err(e) if is_not_found(&e) => missing.push(folder),
            Err(e) => return Err(backend.fail(operation, what, e)),
        }
    }
    missing.reverse();
    Ok(missing)
}

/// Reads the whole local file off the async threads.
async fn read_local(src: PathBuf) -> Result<Vec<u8>, BackendError> {
    let operation = format!("read {}", src.display());
    tokio::task::spawn_blocking(move || std::fs::read(&src))
        .await
        .map_err(std::io::Error::other)
        .and_then(|read| read)
        .map_err(|e| BackendError::io(Daemon::Docker, operation, e))
}

/// The path components of `dest`, relative to `/`, ending with the file name.
fn dest_components(dest: &str, src: &Path) -> Result<Vec<String>, String> {
    let mut components: Vec<String> = dest
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_owned)
        .collect();
    if components.iter().any(|c| c == "..") {
        return Err(format!("the destination `{dest}` must not contain `..`"));
    }
    if dest.ends_with('/') || components.is_empty() {
        let name = src
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("the destination `{dest}` names no file"))?;
        components.push(name.to_owned());
    }
    Ok(components)
}

/// A tar archive, paths relative to `/`: an entry for each folder in
/// `folders` (in order), then `file` with `contents`. Everything is owned by
/// root.
fn build_archive(
    folders: &[String],
    file: &str,
    contents: &[u8],
    mode: u32,
) -> std::io::Result<Vec<u8>> {
    let mtime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        header.set_size(size);
        header
    };

    let mut builder = tar::Builder::new(Vec::new());
    for folder in folders {
        let mut folder_header = header(tar::EntryType::Directory, FOLDER_MODE, 0);
        builder.append_data(&mut folder_header, folder, std::io::empty())?;
    }
    let mut file_header = header(
        tar::EntryType::Regular,
        mode & 0o7777,
        contents.len() as u64,
    );
    builder.append_data(&mut file_header, file, contents)?;
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_become_relative_components() {
        let src = Path::new("files/product.deb");
        assert_eq!(
            dest_components("/tmp/a.deb", src).unwrap(),
            ["tmp", "a.deb"]
        );
        assert_eq!(
            dest_components("opt//x/./f", src).unwrap(),
            ["opt", "x", "f"]
        );
        assert_eq!(
            dest_components("/opt/app/", src).unwrap(),
            ["opt", "app", "product.deb"]
        );
        assert!(dest_components("/opt/../etc/passwd", src).is_err());
    }

    #[test]
    fn the_archive_holds_the_folders_then_the_file() {
        let folders = ["a".to_owned(), "a/b".to_owned()];
        let data = build_archive(&folders, "a/b/f.txt", b"hello", 0o600).unwrap();
        let mut archive = tar::Archive::new(&data[..]);
        let entries: Vec<(String, u32, u64, bool)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.entry_type().is_dir(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("a".to_owned(), 0o755, 0, true),
                ("a/b".to_owned(), 0o755, 0, true),
                ("a/b/f.txt".to_owned(), 0o600, 0, false),
            ]
        );
    }

    #[test]
    fn long_paths_fit() {
        let file = format!("{}/f", "d".repeat(200));
        let data = build_archive(&[], &file, b"", 0o644).unwrap();
        let mut archive = tar::Archive::new(&data[..]);
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().display().to_string(), file);
    }

    #[tokio::test]
    async fn a_missing_local_file_is_named() {
        let err = read_local(PathBuf::from("/no/such/file.deb"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("/no/such/file.deb"), "{err}");
    }
}
