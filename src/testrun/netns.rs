//! Connections made from inside a container's network namespace, by this
//! process: a thread enters the namespace (`setns`), and the sockets it
//! opens there stay there. So `reach` and `http` from a container need
//! nothing in its image (busybox has no UDP client, many images no HTTP
//! one), and see what the container sees: its routes, its conditions.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::topology::checks::Protocol;

/// How long one try waits for a connection or a reply.
pub const TRY: Duration = Duration::from_secs(3);

/// Runs `work` on a thread inside the network namespace of process `pid`.
pub async fn within<T: Send + 'static>(
    pid: u32,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(move || {
        let path = format!("/proc/{pid}/ns/net");
        let ns = std::fs::File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
        // A thread of its own: the namespace is a property of the thread,
        // which ends with the work (blocking-pool threads are reused).
        std::thread::spawn(move || {
            // SAFETY: setns with a valid descriptor of a network namespace.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "enter the node's network namespace: {}",
                    std::io::Error::last_os_error()
                ));
            }
            work()
        })
        .join()
        .map_err(|_| "the probe thread panicked".to_string())?
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Whether `addr` answers over `protocol`: a TCP connection, a UDP reply
/// to a datagram, an ICMP echo reply. `Ok(detail)` when it does, `Err`
/// with what happened when not.
pub fn reach(ip: Ipv4Addr, port: Option<u16>, protocol: Protocol) -> Result<String, String> {
    match protocol {
        Protocol::Tcp => {
            let addr = SocketAddr::from((ip, port.unwrap_or(0)));
            TcpStream::connect_timeout(&addr, TRY)
                .map(|_| format!("connected to {addr}"))
                .map_err(|e| format!("tcp {addr}: {e}"))
        }
        Protocol::Udp => {
            let addr = SocketAddr::from((ip, port.unwrap_or(0)));
            let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
            socket
                .set_read_timeout(Some(TRY))
                .map_err(|e| e.to_string())?;
            socket
                .send_to(b"benchscale reach\n", addr)
                .map_err(|e| format!("udp {addr}: {e}"))?;
            let mut buf = [0u8; 2048];
            match recv_within(&socket, &mut buf, Instant::now() + TRY) {
                Ok((n, from)) => Ok(format!("{n} bytes back from {from}")),
                Err(e) => Err(format!("udp {addr}: no reply ({e})")),
            }
        }
        Protocol::Icmp => ping(ip),
    }
}

/// One ICMP echo over a raw socket.
fn ping(ip: Ipv4Addr) -> Result<String, String> {
    // SAFETY: plain socket calls on a descriptor this function owns.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    if fd < 0 {
        return Err(format!("icmp socket: {}", std::io::Error::last_os_error()));
    }
    let socket = unsafe { <UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let id = (std::process::id() & 0xffff) as u16;
    let mut packet = [8u8, 0, 0, 0, (id >> 8) as u8, id as u8, 0, 1];
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    socket
        .send_to(&packet, SocketAddr::from((ip, 0)))
        .map_err(|e| format!("icmp {ip}: {e}"))?;
    let deadline = Instant::now() + TRY;
    let mut buf = [0u8; 1500];
    while let Ok((n, from)) = recv_within(&socket, &mut buf, deadline) {
        // A raw socket gets the IP header too; the echo reply is type 0
        // with our id.
        let header = usize::from(buf[0] & 0x0f) * 4;
        let reply = buf.get(header..n).unwrap_or_default();
        if from.ip() == std::net::IpAddr::V4(ip)
            && reply.first() == Some(&0)
            && reply.get(4..6) == Some(&id.to_be_bytes())
        {
            return Ok(format!("echo reply from {ip}"));
        }
    }
    Err(format!(
        "icmp {ip}: no echo reply within {} s",
        TRY.as_secs()
    ))
}

/// The next datagram on `socket` before `deadline`. A signal to this
/// process (a child's exit) ends a receive that has a timeout with EINTR,
/// whatever the handler's flags; that is not the end of the wait.
fn recv_within(
    socket: &UdpSocket,
    buf: &mut [u8],
    deadline: Instant,
) -> std::io::Result<(usize, SocketAddr)> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        socket.set_read_timeout(Some(left))?;
        match socket.recv_from(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An HTTP/1.0 GET of `url` (`http://HOST[:PORT][/PATH]`, HOST an IPv4
/// address): the status and the body.
pub fn http_get(url: &str) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}`: only http:// URLs can be fetched"))?;
    let (host_port, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>().map_err(|_| format!("`{url}`: bad port"))?,
        ),
        None => (host_port, 80),
    };
    let ip: Ipv4Addr = host.parse().map_err(|_| {
        format!("`{url}`: the host must be an IPv4 address (use `${{{{ nodes.NODE.ip.NET }}}}`)")
    })?;
    let addr = SocketAddr::from((ip, port));
    let mut stream = TcpStream::connect_timeout(&addr, TRY).map_err(|e| format!("{url}: {e}"))?;
    stream
        .set_read_timeout(Some(TRY))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host_port}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{url}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("{url}: {e}"))?;
    parse_response(&String::from_utf8_lossy(&answer))
        .ok_or_else(|| format!("{url}: not an HTTP answer"))
}

fn parse_response(text: &str) -> Option<(u16, String)> {
    let status = text
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_and_checksums() {
        assert_eq!(
            parse_response("HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\nnope"),
            Some((404, "nope".into()))
        );
        assert_eq!(parse_response("garbage"), None);
        // An echo request with id 0x1234, sequence 1.
        let mut p = [8u8, 0, 0, 0, 0x12, 0x34, 0, 1];
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(checksum(&p), 0);
        assert!(http_get("ftp://x").is_err());
        assert!(http_get("http://name/").unwrap_err().contains("IPv4"));
    }

    extern "C" fn nothing(_: libc::c_int) {}

    /// A signal during the wait (the handler installed without
    /// SA_RESTART, as a child's exit would find it) does not end it: the
    /// datagram sent after the signal is still received.
    #[test]
    fn a_signal_during_a_receive_does_not_end_the_wait() {
        // SAFETY: a handler that does nothing, for a signal no other test
        // of this process uses.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = nothing as extern "C" fn(libc::c_int) as usize;
            assert_eq!(
                libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut()),
                0
            );
        }
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiting = std::thread::spawn(move || {
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            let mut buf = [0u8; 16];
            recv_within(&receiver, &mut buf, Instant::now() + TRY)
                .map(|(n, _)| buf[..n].to_vec())
                .map_err(|e| e.to_string())
        });
        let thread = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: the thread is alive, blocked in its receive.
        assert_eq!(unsafe { libc::pthread_kill(thread, libc::SIGUSR2) }, 0);
        std::thread::sleep(Duration::from_millis(200));
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"late", to).unwrap();
        assert_eq!(waiting.join().unwrap(), Ok(b"late".to_vec()));
    }
}
