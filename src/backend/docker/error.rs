//! How bollard errors become [`BackendError`]s.
//!
//! The executor reacts to the kind of failure (retry, re-create, give up and
//! tell the user to start Docker), so the mapping matters more than the text:
//! transport failures are `Unreachable`, HTTP 404 is `NotFound`, and the rest
//! is `Api` with the operation that failed. The bollard error is kept as the
//! cause.

use std::fmt::Write as _;

use bollard::errors::Error;

use super::DockerBackend;
use crate::backend::{BackendError, Daemon, cause};

impl DockerBackend {
    /// Maps a failed call; `operation` says what was tried ("start container
    /// bs-lab-web") and `what` names the thing a 404 says is gone.
    pub(super) fn fail(
        &self,
        operation: impl Into<String>,
        what: impl Into<String>,
        err: Error,
    ) -> BackendError {
        classify(&self.endpoint, operation, what, err)
    }
}

/// See [`DockerBackend::fail`].
pub(super) fn classify(
    endpoint: &str,
    operation: impl Into<String>,
    what: impl Into<String>,
    err: Error,
) -> BackendError {
    match err {
        Error::DockerResponseServerError {
            status_code: 404, ..
        } => BackendError::NotFound {
            daemon: Daemon::Docker,
            what: what.into(),
        },
        Error::DockerResponseServerError {
            status_code,
            ref message,
        } => BackendError::Api {
            daemon: Daemon::Docker,
            operation: operation.into(),
            message: if message.trim().is_empty() {
                format!("the engine answered HTTP {status_code}")
            } else {
                message.trim().to_owned()
            },
            source: Some(cause(err)),
        },
        ref e if is_transport(e) => BackendError::Unreachable {
            endpoint: endpoint.to_owned(),
            message: error_chain(e),
            source: Some(cause(err)),
        },
        e => BackendError::Api {
            daemon: Daemon::Docker,
            operation: operation.into(),
            message: error_chain(&e),
            source: Some(cause(e)),
        },
    }
}

/// The engine does not have `image`, as its 404 answer `err` says.
pub(super) fn image_missing(image: &str, err: Error) -> BackendError {
    let message = match &err {
        Error::DockerResponseServerError { message, .. } => message.trim().to_owned(),
        other => other.to_string(),
    };
    BackendError::ImageMissing {
        daemon: Daemon::Docker,
        image: image.to_owned(),
        message,
        source: Some(cause(err)),
    }
}

/// Whether the engine answered that an image is missing: it answers 404
/// for a missing network too, and only its message tells them apart.
pub(super) fn is_image_missing(err: &Error) -> bool {
    matches!(
        err,
        Error::DockerResponseServerError {
            status_code: 404,
            message,
        } if message.contains("image")
    )
}

/// Whether the error is about reaching the daemon rather than about the
/// request: the socket is missing, the connection broke or timed out.
fn is_transport(err: &Error) -> bool {
    matches!(
        err,
        Error::HyperLegacyError { .. }
            | Error::HyperResponseError { .. }
            | Error::IOError { .. }
            | Error::RequestTimeoutError
            | Error::SocketNotFoundError(_)
            | Error::UnsupportedURISchemeError { .. }
    )
}

/// Whether the daemon answered 404.
pub(super) fn is_not_found(err: &Error) -> bool {
    matches!(
        err,
        Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// The error and its causes on one line: hyper's own message ("client error
/// (Connect)") says nothing until its source ("No such file or directory")
/// is added.
pub(super) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// A container or network id as a person would type it: 64-hex ids are cut
/// to the 12 characters `docker ps` shows, names are kept.
pub(super) fn short_id(id: &str) -> &str {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        &id[..12]
    } else {
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status_code: u16, message: &str) -> Error {
        Error::DockerResponseServerError {
            status_code,
            message: message.to_owned(),
        }
    }

    #[test]
    fn not_found_names_the_thing() {
        let err = classify(
            "unix:///s",
            "start container x",
            "container x",
            server(404, "nope"),
        );
        assert!(matches!(err, BackendError::NotFound { ref what, .. } if what == "container x"));
    }

    #[test]
    fn other_statuses_keep_the_operation_and_message() {
        let err = classify(
            "unix:///s",
            "start container x",
            "container x",
            server(409, " busy\n"),
        );
        let BackendError::Api {
            operation, message, ..
        } = err
        else {
            panic!("not Api");
        };
        assert_eq!(
            (operation.as_str(), message.as_str()),
            ("start container x", "busy")
        );
        let err = classify("e", "op", "w", server(500, ""));
        assert!(err.to_string().contains("HTTP 500"), "{err}");
    }

    #[test]
    fn transport_errors_are_unreachable() {
        let err = classify(
            "unix:///s",
            "op",
            "w",
            Error::SocketNotFoundError("/s".into()),
        );
        assert!(
            matches!(err, BackendError::Unreachable { ref endpoint, .. } if endpoint == "unix:///s")
        );
        let err = classify("e", "op", "w", Error::RequestTimeoutError);
        assert!(matches!(err, BackendError::Unreachable { .. }));
    }

    #[test]
    fn long_ids_are_shortened_and_names_kept() {
        let id = "a".repeat(64);
        assert_eq!(short_id(&id), "aaaaaaaaaaaa");
        assert_eq!(short_id("bs-lab-web"), "bs-lab-web");
    }
}
