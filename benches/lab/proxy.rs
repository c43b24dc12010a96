//! A recording proxy in front of the Docker socket.
//!
//! Clients (the benchscale binary through `BENCHSCALE_DOCKER_HOST`,
//! docker-compose through `DOCKER_HOST`, the floor through bollard) talk to
//! a Unix socket of ours; every byte is passed on to the daemon unchanged,
//! and the request line of every HTTP request is recorded with the moment
//! its head arrived and the moment the first byte of its answer came back.
//! HTTP/1.1 clients do not pipeline, so on one connection the first bytes
//! from the daemon after a request are that request's answer.
//!
//! It adds a little latency, so timed runs never go through it: it counts
//! calls (a no-change apply must make no mutating one) and attributes time
//! in the profile.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// One API call as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The path without API version prefix and query, ids and names
    /// replaced by `{id}`: `POST /containers/{id}/start`.
    pub endpoint: String,
    pub start: Instant,
    /// When the first byte of the answer arrived.
    pub answered: Option<Instant>,
}

impl Call {
    /// Whether the call may change something on the daemon.
    pub fn mutating(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS")
    }

    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.endpoint)
    }
}

type Calls = Arc<Mutex<Vec<Call>>>;

/// A running proxy; stops accepting when dropped (the runtime owns the
/// task, which ends with the runtime).
pub struct Proxy {
    pub socket: PathBuf,
    calls: Calls,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Proxy {
    /// Listens on `socket` and forwards to `upstream` (a socket path).
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        socket: &Path,
        upstream: &Path,
    ) -> std::io::Result<Proxy> {
        let _ = std::fs::remove_file(socket);
        let listener = {
            let _guard = runtime.enter();
            UnixListener::bind(socket)?
        };
        let calls: Calls = Arc::default();
        let upstream = upstream.to_path_buf();
        let shared = calls.clone();
        let task = runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let calls = shared.clone();
                tokio::spawn(async move {
                    if let Ok(server) = UnixStream::connect(&upstream).await {
                        pipe(client, server, calls).await;
                    }
                });
            }
        });
        Ok(Proxy {
            socket: socket.to_path_buf(),
            calls,
            task,
        })
    }

    /// `unix://` URL of the socket.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Takes the calls recorded so far.
    pub fn take(&self) -> Vec<Call> {
        let mut calls = std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()));
        calls.sort_by_key(|c| c.start);
        calls
    }
}

async fn pipe(client: UnixStream, server: UnixStream, calls: Calls) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Indices into `calls` of requests not answered yet, in order.
    let pending: Arc<Mutex<VecDeque<usize>>> = Arc::default();
    let upward = {
        let calls = calls.clone();
        let pending = pending.clone();
        async move {
            let mut parser = Parser::default();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                for (method, path) in parser.feed(&buf[..n]) {
                    let mut all = calls.lock().unwrap_or_else(|e| e.into_inner());
                    all.push(Call {
                        method,
                        endpoint: normalize(&path),
                        start: Instant::now(),
                        answered: None,
                    });
                    let index = all.len() - 1;
                    pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back(index);
                }
                if server_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = server_write.shutdown().await;
        }
    };
    let downward = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let answered = pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            if let Some(index) = answered {
                let now = Instant::now();
                if let Some(call) = calls
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(index)
                {
                    call.answered = Some(now);
                }
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upward, downward);
}

/// Splits a client's byte stream into requests: head up to the blank line,
/// then `Content-Length` bytes of body. A chunked or upgraded request ends
/// the parsing of that connection (the bytes still pass).
#[derive(Default)]
struct Parser {
    buf: Vec<u8>,
    /// Body bytes still to skip.
    skip: usize,
    gave_up: bool,
}

impl Parser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.gave_up {
            return out;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len());
                self.buf.drain(..n);
                self.skip -= n;
                if self.skip > 0 {
                    return out;
                }
            }
            let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                return out;
            };
            let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            self.buf.drain(..end + 4);
            let mut lines = head.split("\r\n");
            let mut first = lines.next().unwrap_or_default().split_whitespace();
            let method = first.next().unwrap_or_default().to_string();
            let path = first.next().unwrap_or_default().to_string();
            let mut length = 0usize;
            for line in lines {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let name = name.trim().to_ascii_lowercase();
                let value = value.trim().to_ascii_lowercase();
                if name == "content-length" {
                    length = value.parse().unwrap_or(0);
                } else if (name == "transfer-encoding" && value.contains("chunked"))
                    || name == "upgrade"
                {
                    self.gave_up = true;
                }
            }
            out.push((method, path));
            if self.gave_up {
                self.buf.clear();
                return out;
            }
            self.skip = length;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `/v1.41/containers/bs-lab-node3/start?x=1` → `/containers/{id}/start`.
pub fn normalize(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.first().is_some_and(|s| {
        s.starts_with('v') && s[1..].chars().all(|c| c.is_ascii_digit() || c == '.')
    }) {
        segments.remove(0);
    }
    const VERBS: [&str; 4] = ["create", "json", "prune", "_ping"];
    let mut out = Vec::new();
    match segments.as_slice() {
        // Image names have slashes: /images/benchscale/busybox:latest/json.
        ["images", middle @ .., "json"] if !middle.is_empty() => {
            out.extend(["images", "{name}", "json"]);
        }
        [kind, id, rest @ ..]
            if matches!(*kind, "containers" | "networks" | "exec" | "volumes")
                && !VERBS.contains(id) =>
        {
            out.push(*kind);
            out.push("{id}");
            out.extend(rest);
        }
        other => out.extend(other),
    }
    format!("/{}", out.join("/"))
}

/// Checks of the parsing, run by the smoke mode (`cargo test --benches`).
pub fn self_check() {
    assert_eq!(
        normalize("/v1.41/containers/bs-x-node3/start?t=1"),
        "/containers/{id}/start"
    );
    assert_eq!(
        normalize("/v1.41/containers/json?all=1"),
        "/containers/json"
    );
    assert_eq!(normalize("/containers/create?name=a"), "/containers/create");
    assert_eq!(normalize("/v1.41/networks/abc"), "/networks/{id}");
    assert_eq!(
        normalize("/v1.41/images/benchscale/busybox:latest/json"),
        "/images/{name}/json"
    );
    let mut p = Parser::default();
    let a = p.feed(b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel");
    assert_eq!(a, vec![("POST".to_string(), "/a".to_string())]);
    let b = p.feed(b"loGET /b HTTP/1.1\r\n\r\n");
    assert_eq!(b, vec![("GET".to_string(), "/b".to_string())]);
}
