//! Reaching a node's port from this machine, for `tcp` and `http`
//! conditions.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{BackendError, cause};

/// Connects to `addr` within `limit`; with `send`, writes it and returns
/// what one read brings back (at most 64 bytes: enough for a status line).
///
/// # Errors
///
/// [`BackendError::Reach`] naming `addr` when the connection is refused,
/// fails or takes longer than `limit`.
pub async fn tcp(
    addr: SocketAddr,
    send: Option<&str>,
    limit: Duration,
) -> Result<String, BackendError> {
    let fail = |e: std::io::Error| BackendError::Reach {
        target: addr.to_string(),
        message: e.to_string(),
        source: Some(cause(e)),
    };
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.map_err(fail)?;
        let Some(send) = send else {
            return Ok(String::new());
        };
        stream.write_all(send.as_bytes()).await.map_err(fail)?;
        let mut head = [0u8; 64];
        let n = stream.read(&mut head).await.map_err(fail)?;
        Ok(String::from_utf8_lossy(&head[..n]).into_owned())
    };
    tokio::time::timeout(limit, attempt)
        .await
        .map_err(|_| BackendError::Reach {
            target: addr.to_string(),
            message: "timed out".to_owned(),
            source: None,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sends_and_reads_one_answer_or_names_the_refusal() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5];
            conn.read_exact(&mut buf).await.unwrap();
            conn.write_all(b"HTTP/1.0 204 No Content\r\n\r\n")
                .await
                .unwrap();
            buf
        });
        let got = tcp(addr, Some("hello"), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(got.starts_with("HTTP/1.0 204"), "{got}");
        assert_eq!(&server.await.unwrap(), b"hello");

        // Nothing listens there any more.
        let refused = tcp(addr, None, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.starts_with(&format!("connect to {addr}: ")),
            "{refused}"
        );
    }
}
