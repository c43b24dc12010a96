//! How `virt` errors become [`BackendError`]s.

use crate::backend::BackendError;

/// Maps a failed libvirt call; `operation` says what was tried ("start VM
/// bs-lab-a").
pub(super) fn api(operation: impl Into<String>) -> impl FnOnce(virt::error::Error) -> BackendError {
    let operation = operation.into();
    move |e| BackendError::Api {
        operation,
        message: e.message().to_string(),
    }
}
