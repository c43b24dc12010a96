//! How `virt` errors become [`BackendError`]s.
//!
//! The executor reacts to the kind of failure, so what matters is the
//! mapping: "no such domain" is [`BackendError::NotFound`] (the planner
//! re-creates the VM), a daemon that cannot be opened is
//! [`BackendError::LibvirtUnreachable`], and every other failure is
//! [`BackendError::Api`] with the operation that was tried. The `virt`
//! error is kept as the cause.

use virt::error::{Error, ErrorNumber};

use crate::backend::{BackendError, Daemon, cause};

/// Maps a failed libvirt call; `operation` says what was tried ("start VM
/// bs-lab-a").
pub(super) fn api(operation: impl Into<String>) -> impl FnOnce(Error) -> BackendError {
    let operation = operation.into();
    move |e| BackendError::Api {
        daemon: Daemon::Libvirt,
        operation,
        message: e.message().to_string(),
        source: Some(cause(e)),
    }
}

/// Maps a failed lookup of a domain by name: one that does not exist is
/// [`BackendError::NotFound`] naming `what`; any other failure (the
/// connection broke) is not taken for an absence.
pub(super) fn lookup(what: String) -> impl FnOnce(Error) -> BackendError {
    move |e| {
        if is_absent(&e) {
            not_found(what)
        } else {
            api(format!("find {what}"))(e)
        }
    }
}

/// [`BackendError::NotFound`] for libvirt.
pub(super) fn not_found(what: String) -> BackendError {
    BackendError::NotFound {
        daemon: Daemon::Libvirt,
        what,
    }
}

/// Whether libvirt says the object does not exist.
pub(super) fn is_absent(err: &Error) -> bool {
    err.code()
        .is_known_and(|code| matches!(code, ErrorNumber::NoDomain | ErrorNumber::NoNetwork))
}

/// libvirt cannot be opened at `uri`.
pub(super) fn unreachable(uri: &str, err: Error) -> BackendError {
    BackendError::LibvirtUnreachable {
        uri: uri.to_owned(),
        message: err.message().to_string(),
        source: Some(cause(err)),
    }
}

/// A call on the blocking pool did not finish (it panicked, or the
/// runtime is shutting down).
pub(super) fn interrupted(err: tokio::task::JoinError) -> BackendError {
    BackendError::api(Daemon::Libvirt, "libvirt call", err)
}
