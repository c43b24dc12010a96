//! Images: whether the engine has one, and pulling one from its registry
//! with the user's credentials, its layers' progress summed as it comes.

use std::collections::BTreeMap;

use bollard::models::CreateImageInfo;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use super::DockerBackend;
use super::credentials::{self, registry_of, with_tag};
use super::error::is_not_found;
use crate::backend::{BackendError, OnPull, PullProgress};

/// The id of `image` on the engine (`sha256:…`), or `None` without it.
///
/// # Errors
///
/// The engine cannot be asked.
pub(super) async fn image_id(
    backend: &DockerBackend,
    image: &str,
) -> Result<Option<String>, BackendError> {
    match backend.docker.inspect_image(image).await {
        Ok(inspect) => Ok(inspect.id),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(backend.fail(
            format!("inspect image {image}"),
            format!("image {image}"),
            e,
        )),
    }
}

/// Pulls `image` (`:latest` when it names no tag), then returns its id.
///
/// # Errors
///
/// [`BackendError::PullFailed`] when the credentials cannot be read or the
/// engine reports the registry's refusal; [`BackendError::Unreachable`]
/// when the engine itself goes away.
pub(super) async fn pull(
    backend: &DockerBackend,
    image: &str,
    progress: OnPull<'_>,
) -> Result<String, BackendError> {
    let registry = registry_of(image).to_owned();
    let failed =
        |message: String, source: Option<crate::backend::Cause>| BackendError::PullFailed {
            image: image.to_owned(),
            registry: registry.clone(),
            message,
            source,
        };
    let credentials = credentials::for_image(image)
        .await
        .map_err(|e| failed(format!("cannot read the Docker credentials: {e}"), None))?;
    let reference = with_tag(image);
    let options = CreateImageOptionsBuilder::default()
        .from_image(&reference)
        .build();
    let mut stream = backend
        .docker
        .create_image(Some(options), None, credentials);
    let mut layers = Layers::default();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if layers.update(&info) {
                    progress(layers.progress());
                }
            }
            Err(e) => {
                use bollard::errors::Error;
                return Err(match e {
                    // The registry's answer, passed on by the engine:
                    // before the stream (no such repository, refused) or
                    // in it (a manifest or layer that failed). Its words
                    // are the message; bollard's error around them would
                    // only show them a second time.
                    Error::DockerStreamError { error } => failed(error.trim().to_owned(), None),
                    Error::DockerResponseServerError { message, .. } => {
                        failed(message.trim().to_owned(), None)
                    }
                    other => backend.fail(format!("pull image {image}"), image, other),
                });
            }
        }
    }
    match image_id(backend, &reference).await? {
        Some(id) => Ok(id),
        None => Err(failed(
            "the engine reported the pull done, but does not have the image".to_owned(),
            None,
        )),
    }
}

/// One layer's bytes, as the engine reports them.
#[derive(Debug, Default, Clone, Copy)]
struct Layer {
    current: u64,
    total: u64,
    done: bool,
}

/// Every layer of one pull, by the id the engine gives it.
#[derive(Debug, Default)]
struct Layers(BTreeMap<String, Layer>);

impl Layers {
    /// Folds in one message; true when the progress changed. Messages
    /// without a layer id (`Pulling from …`, `Digest: …`) and those about
    /// the tag rather than a layer are not layers.
    fn update(&mut self, info: &CreateImageInfo) -> bool {
        let (Some(id), Some(status)) = (info.id.as_deref(), info.status.as_deref()) else {
            return false;
        };
        if status.starts_with("Pulling from") {
            return false;
        }
        let before = self.0.get(id).copied();
        let layer = self.0.entry(id.to_owned()).or_default();
        let detail = info.progress_detail.as_ref();
        let bytes = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
        match status {
            "Downloading" => {
                if let Some(total) = bytes(detail.and_then(|d| d.total)) {
                    layer.total = total;
                }
                if let Some(current) = bytes(detail.and_then(|d| d.current)) {
                    layer.current = current;
                }
            }
            "Download complete" | "Verifying Checksum" => layer.current = layer.total,
            // Extraction follows the download; the pull is done with a
            // layer once it is in place.
            "Pull complete" | "Already exists" => {
                layer.current = layer.total;
                layer.done = true;
            }
            _ => {}
        }
        before.is_none_or(|b| {
            (b.current, b.total, b.done) != (layer.current, layer.total, layer.done)
        })
    }

    fn progress(&self) -> PullProgress {
        PullProgress {
            layers: self.0.len(),
            layers_done: self.0.values().filter(|l| l.done).count(),
            bytes_done: self.0.values().map(|l| l.current).sum(),
            bytes_total: self.0.values().map(|l| l.total).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::ProgressDetail;

    use super::*;

    fn info(id: &str, status: &str, bytes: Option<(i64, i64)>) -> CreateImageInfo {
        CreateImageInfo {
            id: Some(id.into()),
            status: Some(status.into()),
            progress_detail: bytes.map(|(current, total)| ProgressDetail {
                current: Some(current),
                total: Some(total),
            }),
            error_detail: None,
        }
    }

    #[test]
    fn layers_sum_their_bytes_and_count_when_done() {
        let mut layers = Layers::default();
        assert!(!layers.update(&info("1", "Pulling from benchscale-test/a", None)));
        assert!(layers.update(&info("aa", "Pulling fs layer", None)));
        assert!(layers.update(&info("bb", "Already exists", None)));
        assert!(layers.update(&info("aa", "Downloading", Some((100, 1000)))));
        assert!(!layers.update(&info("aa", "Downloading", Some((100, 1000)))));
        assert_eq!(
            layers.progress(),
            PullProgress {
                layers: 2,
                layers_done: 1,
                bytes_done: 100,
                bytes_total: 1000
            }
        );
        layers.update(&info("aa", "Download complete", None));
        layers.update(&info("aa", "Extracting", Some((10, 1000))));
        layers.update(&info("aa", "Pull complete", None));
        assert_eq!(
            layers.progress(),
            PullProgress {
                layers: 2,
                layers_done: 2,
                bytes_done: 1000,
                bytes_total: 1000
            }
        );
        let mut status_only = CreateImageInfo {
            status: Some("Digest: sha256:00".into()),
            ..Default::default()
        };
        assert!(!layers.update(&status_only));
        status_only.status = None;
        assert!(!layers.update(&status_only));
    }
}
