//! The delay-line process: binds the lab's netfilter queue and holds each
//! packet until it is due. One thread and one loop: `ppoll` sleeps until
//! the earliest packet is due or the queue has packets, every packet ready
//! is read without blocking, then everything due gets its verdict.
//!
//! It logs to stderr, which its starter sends to the lab's log file: the
//! process has no terminal, and this is its only voice.

use std::io::ErrorKind;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use nfq::{Message, Queue};

use super::DelayLineError;
use super::config::{self, DelayLineConfig, STATUS_FILE, Status};
use super::schedule::{self, Line, Rng, Rules};

/// Packets the kernel keeps for the queue, held ones included; beyond, it
/// drops new ones, as netem does past its `limit`.
const QUEUE_MAX_LEN: u32 = 16_384;
/// The queue socket's receive buffer: room for a burst of packets handed
/// over before the loop reads them.
const RECEIVE_BUFFER: libc::c_int = 16 << 20;
/// How often the configuration file is looked at: one stat, and `ensure`
/// waits for the reload, so a short period keeps an apply quick.
const RELOAD_CHECK: Duration = Duration::from_millis(10);
/// How often interface names are resolved again: a node re-created under
/// the same host-side name gets a new index.
const RESOLVE_EVERY: Duration = Duration::from_secs(1);
/// Most packets read in one go before due packets are sent, so that a
/// flood does not hold back packets already due.
const BATCH: usize = 256;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// A packet held, and the copy to send with it when it is duplicated.
struct Packet {
    msg: Message,
    copy: Option<Vec<u8>>,
}

/// Counters logged when the line stops.
#[derive(Default)]
struct Counts {
    seen: u64,
    held: u64,
    corrupted: u64,
    duplicated: u64,
    errors: u64,
}

struct Daemon {
    lab: String,
    path: PathBuf,
    queue: Queue,
    /// The queue's socket, which `ppoll` waits on.
    fd: libc::c_int,
    queue_num: u16,
    /// Whether the queue copies packets' bytes (for corrupt and duplicate)
    /// or only their metadata.
    payload: bool,
    config: DelayLineConfig,
    digest: String,
    file_id: Option<(SystemTime, u64, u64)>,
    missing: Vec<String>,
    line: Line<Packet>,
    copies: Copier,
    counts: Counts,
    last_check: Instant,
    last_resolve: Instant,
}

/// Runs the delay line of `lab` with the configuration at `path` until
/// SIGTERM or SIGINT; every packet held is sent before it returns.
///
/// # Errors
/// When the configuration cannot be read or is another lab's, or the queue
/// cannot be bound; errors after that are logged and the line goes on.
pub fn run(lab: &str, path: &Path) -> Result<(), DelayLineError> {
    // Sleeps end when asked, not up to 50 µs later (the default slack):
    // the delay is a sleep.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
    let unblocked = block_stop_signals();
    let (config, digest) = config::read(path)?;
    if config.lab != lab {
        return Err(DelayLineError::WrongLab {
            path: path.to_path_buf(),
            lab: lab.to_string(),
            found: config.lab,
        });
    }
    let payload = config.needs_payload();
    let (queue, fd) = bind(config.queue, payload)?;
    let now = Instant::now();
    let mut daemon = Daemon {
        lab: lab.to_string(),
        path: path.to_path_buf(),
        queue_num: config.queue,
        queue,
        fd,
        payload,
        config,
        digest,
        file_id: file_id(path),
        missing: Vec::new(),
        line: Line::new(Rules::default(), Rng::from_time_and_pid()),
        copies: Copier::default(),
        counts: Counts::default(),
        last_check: now,
        last_resolve: now,
    };
    daemon.resolve();
    daemon.report_loaded("bound queue and loaded");
    daemon.serve(&unblocked);
    daemon.finish();
    Ok(())
}

/// Blocks SIGTERM and SIGINT except inside `ppoll`, so that a stop request
/// never slips in between the check of the flag and the sleep. Returns the
/// mask to sleep with.
fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: plain libc calls on local, initialized signal sets; the
    // handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let mut stop: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut stop);
        libc::sigaddset(&mut stop, libc::SIGTERM);
        libc::sigaddset(&mut stop, libc::SIGINT);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigprocmask(libc::SIG_BLOCK, &stop, &mut old);
        let handler = on_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
        libc::sigdelset(&mut old, libc::SIGTERM);
        libc::sigdelset(&mut old, libc::SIGINT);
        old
    }
}

/// Opens and binds queue `num`. Copying only metadata when no rule needs
/// the bytes saves a copy of every packet; then the kernel may also hand
/// over unsegmented (GSO) packets, fewer and larger. With bytes, packets
/// come segmented and with full checksums, so that a flipped bit is caught
/// by the receiver as on a real link.
fn bind(num: u16, payload: bool) -> Result<(Queue, libc::c_int), DelayLineError> {
    let err = |source| DelayLineError::Queue { queue: num, source };
    let (mut queue, fd) = open().map_err(err)?;
    queue.bind(num).map_err(err)?;
    configure(&mut queue, num, payload).map_err(err)?;
    queue.set_nonblocking(true);
    grow_receive_buffer(fd);
    Ok((queue, fd))
}

/// Opens a queue and finds its socket, to sleep on: `nfq` 0.2.5 does not
/// hand it out. A new descriptor is the lowest unused one (POSIX), so in
/// this single-threaded process the socket the queue opens first is the
/// one a probe got just before; its kind is checked to be sure.
fn open() -> std::io::Result<(Queue, libc::c_int)> {
    // SAFETY: opening and closing a descriptor of our own.
    let probe = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if probe < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `probe` is ours and used no more.
    unsafe { libc::close(probe) };
    let queue = Queue::open()?;
    let is_netfilter_socket = sockopt(probe, libc::SO_DOMAIN) == Some(libc::AF_NETLINK)
        && sockopt(probe, libc::SO_PROTOCOL) == Some(libc::NETLINK_NETFILTER);
    if !is_netfilter_socket {
        return Err(std::io::Error::other(
            "cannot find the queue's socket among the process's descriptors",
        ));
    }
    Ok((queue, probe))
}

/// A burst larger than the socket's buffer is dropped by the kernel before
/// the queue's own limit is reached; a large buffer lets the queue's limit
/// be the one that counts. Beyond the system's maximum only root may go
/// (`SO_RCVBUFFORCE`); otherwise the default stays, which works, just with
/// less room for bursts.
fn grow_receive_buffer(fd: libc::c_int) {
    let size: libc::c_int = RECEIVE_BUFFER;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: an int option from an int.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

fn sockopt(fd: libc::c_int, option: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: an int-sized option into an int.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value)
}

fn configure(queue: &mut Queue, num: u16, payload: bool) -> std::io::Result<()> {
    queue.set_copy_range(num, if payload { 0xffff } else { 0 })?;
    queue.set_queue_max_len(num, QUEUE_MAX_LEN)?;
    // Not fail-open: a full queue drops, as netem's limit does, rather
    // than letting packets through undelayed.
    queue.set_fail_open(num, false)?;
    queue.set_recv_gso(num, !payload)
}

/// What identifies a version of the file: a rewrite is a rename of a new
/// file, so its inode changes even when its time does not.
fn file_id(path: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.ino(), m.len()))
}

impl Daemon {
    fn serve(&mut self, unblocked: &libc::sigset_t) {
        while !STOP.load(Ordering::SeqCst) {
            let now = Instant::now();
            self.release_due(now);
            self.maybe_reload(now);
            let wait = self
                .line
                .held
                .next_due()
                .map_or(RELOAD_CHECK, |due| {
                    due.saturating_duration_since(Instant::now())
                })
                .min(RELOAD_CHECK);
            let timeout = libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            };
            let mut pfd = libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, a valid timeout and signal mask.
            let ready = unsafe { libc::ppoll(&mut pfd, 1, &timeout, unblocked) };
            if ready > 0 && pfd.revents & libc::POLLIN != 0 {
                self.drain();
            }
        }
    }

    /// Reads every packet waiting, without blocking, at most a batch.
    fn drain(&mut self) {
        for _ in 0..BATCH {
            match self.queue.recv() {
                Ok(msg) => self.admit(msg, Instant::now()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => return,
                // An error the kernel reports for one verdict (the packet
                // is gone) comes back here; the next read goes on.
                Err(e) => self.error(format_args!("reading the queue: {e}")),
            }
        }
    }

    fn admit(&mut self, mut msg: Message, now: Instant) {
        self.counts.seen += 1;
        let Some(fate) =
            self.line
                .decide(msg.get_hook(), msg.get_physindev(), msg.get_physoutdev())
        else {
            self.accept(msg);
            return;
        };
        // Bytes are touched only when the queue copied the whole packet, as
        // it sent it (a packet queued before a reload may have come without
        // them, or unsegmented).
        let whole = !msg.get_payload().is_empty()
            && msg.get_payload().len() == msg.get_original_len()
            && !msg.is_seg_offloaded();
        // As netem, the copy is made before the original is corrupted.
        let copy = (fate.duplicate && whole).then(|| msg.get_payload().to_vec());
        if fate.corrupt && whole {
            let mut bytes = msg.get_payload().to_vec();
            if schedule::corrupt(&mut bytes, &mut self.line.rng).is_some() {
                msg.set_payload(bytes);
                self.counts.corrupted += 1;
            }
        }
        let packet = Packet { msg, copy };
        if fate.hold.is_zero() {
            self.send(packet);
        } else {
            self.counts.held += 1;
            self.line.held.push(now + fate.hold, packet);
        }
    }

    fn release_due(&mut self, now: Instant) {
        while let Some(packet) = self.line.held.pop_due(now) {
            self.send(packet);
        }
    }

    fn send(&mut self, packet: Packet) {
        self.accept(packet.msg);
        if let Some(copy) = packet.copy {
            match self.copies.send(&copy) {
                Ok(()) => self.counts.duplicated += 1,
                Err(e) => self.error(format_args!("sending a duplicate: {e}")),
            }
        }
    }

    fn accept(&mut self, mut msg: Message) {
        msg.set_verdict(nfq::Verdict::Accept);
        if let Err(e) = self.queue.verdict(msg) {
            self.error(format_args!("giving a verdict: {e}"));
        }
    }

    /// Logs the first errors and then every thousandth, so that a stream of
    /// one error does not fill the disk.
    fn error(&mut self, what: std::fmt::Arguments<'_>) {
        self.counts.errors += 1;
        let n = self.counts.errors;
        if n <= 20 || n.is_multiple_of(1000) {
            log(&self.lab, format_args!("error {n}: {what}"));
        }
    }

    fn maybe_reload(&mut self, now: Instant) {
        if now.duration_since(self.last_check) < RELOAD_CHECK {
            return;
        }
        self.last_check = now;
        let id = file_id(&self.path);
        if id != self.file_id {
            self.file_id = id;
            match config::read(&self.path) {
                Ok((config, digest)) if digest != self.digest => self.reload(config, digest),
                Ok(_) => {}
                Err(e) => log(&self.lab, format_args!("keeping the rules in effect: {e}")),
            }
        } else if now.duration_since(self.last_resolve) >= RESOLVE_EVERY {
            self.resolve();
        }
    }

    fn reload(&mut self, config: DelayLineConfig, digest: String) {
        if config.lab != self.lab {
            log(
                &self.lab,
                format_args!("ignoring a configuration of lab `{}`", config.lab),
            );
            return;
        }
        if config.queue != self.queue_num {
            // Held packets belong to the old queue: they leave now, before
            // it is let go, rather than being dropped with it.
            for packet in self.line.held.drain() {
                self.send(packet);
            }
            match bind(config.queue, config.needs_payload()) {
                Ok((queue, fd)) => {
                    let _ = self.queue.unbind(self.queue_num);
                    self.queue = queue;
                    self.fd = fd;
                    self.queue_num = config.queue;
                    self.payload = config.needs_payload();
                }
                Err(e) => {
                    log(
                        &self.lab,
                        format_args!("keeping queue {}: {e}", self.queue_num),
                    );
                    return;
                }
            }
        } else if config.needs_payload() != self.payload {
            let payload = config.needs_payload();
            match configure(&mut self.queue, self.queue_num, payload) {
                Ok(()) => self.payload = payload,
                Err(e) => log(&self.lab, format_args!("changing what is copied: {e}")),
            }
        }
        self.config = config;
        self.digest = digest;
        self.resolve();
        self.report_loaded("loaded");
    }

    fn resolve(&mut self) {
        self.last_resolve = Instant::now();
        let (rules, missing) = Rules::resolve(&self.config, if_index);
        self.line.rules = rules;
        if missing != self.missing {
            if !missing.is_empty() {
                log(
                    &self.lab,
                    format_args!("no such interface (yet): {}", missing.join(", ")),
                );
            }
            self.missing = missing;
            self.write_status();
        }
    }

    fn report_loaded(&mut self, what: &str) {
        self.write_status();
        log(
            &self.lab,
            format_args!(
                "{what} configuration {} (queue {}, {} rules)",
                self.digest,
                self.queue_num,
                self.line.rules.len()
            ),
        );
    }

    fn write_status(&mut self) {
        let status = Status {
            pid: std::process::id(),
            queue: self.queue_num,
            config: self.digest.clone(),
            missing: self.missing.clone(),
        };
        let path = self.path.with_file_name(STATUS_FILE);
        let bytes = serde_json::to_vec(&status).unwrap_or_default();
        if let Err(e) = config::write_atomic(&path, &bytes) {
            log(
                &self.lab,
                format_args!("{e}: {:?}", std::error::Error::source(&e)),
            );
        }
    }

    fn finish(&mut self) {
        let held = self.line.held.len();
        while !self.line.held.is_empty() {
            for packet in self.line.held.drain() {
                self.send(packet);
            }
        }
        let c = &self.counts;
        log(
            &self.lab,
            format_args!(
                "stopping: sent the {held} packets held; {} seen, {} delayed, {} corrupted, {} duplicated, {} errors",
                c.seen, c.held, c.corrupted, c.duplicated, c.errors
            ),
        );
        let _ = self.queue.unbind(self.queue_num);
    }
}

fn log(lab: &str, what: std::fmt::Arguments<'_>) {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    eprintln!("{secs:.3} delay-line[{lab}]: {what}");
}

fn if_index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index > 0).then_some(index)
}

/// Sends duplicates through raw IP sockets (the header included, as it
/// is): the host routes them to the lab's bridge like any packet of its
/// own. The sockets are opened at the first duplicate.
#[derive(Default)]
struct Copier {
    v4: Option<OwnedFd>,
    v6: Option<OwnedFd>,
}

impl Copier {
    fn send(&mut self, packet: &[u8]) -> std::io::Result<()> {
        let Some(version) = packet.first().map(|b| b >> 4) else {
            return Ok(());
        };
        // SAFETY: zeroed sockaddr structs are valid; the pointers and
        // lengths passed to sendto describe them and `packet`.
        unsafe {
            match version {
                4 if packet.len() >= 20 => {
                    let fd = raw_socket(&mut self.v4, libc::AF_INET)?;
                    let mut addr: libc::sockaddr_in = std::mem::zeroed();
                    addr.sin_family = libc::AF_INET as libc::sa_family_t;
                    addr.sin_addr.s_addr =
                        u32::from_ne_bytes([packet[16], packet[17], packet[18], packet[19]]);
                    sent(libc::sendto(
                        fd,
                        packet.as_ptr().cast(),
                        packet.len(),
                        0,
                        (&addr as *const libc::sockaddr_in).cast(),
                        std::mem::size_of_val(&addr) as libc::socklen_t,
                    ))
                }
                6 if packet.len() >= 40 => {
                    let fd = raw_socket(&mut self.v6, libc::AF_INET6)?;
                    let mut addr: libc::sockaddr_in6 = std::mem::zeroed();
                    addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                    addr.sin6_addr.s6_addr.copy_from_slice(&packet[24..40]);
                    sent(libc::sendto(
                        fd,
                        packet.as_ptr().cast(),
                        packet.len(),
                        0,
                        (&addr as *const libc::sockaddr_in6).cast(),
                        std::mem::size_of_val(&addr) as libc::socklen_t,
                    ))
                }
                _ => Ok(()),
            }
        }
    }
}

/// The raw socket of a family, opened the first time. `IPPROTO_RAW` means
/// the packet carries its own header.
fn raw_socket(slot: &mut Option<OwnedFd>, family: libc::c_int) -> std::io::Result<libc::c_int> {
    if let Some(fd) = slot {
        return Ok(fd.as_raw_fd());
    }
    // SAFETY: socket() returns a new descriptor we then own, or -1.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::IPPROTO_RAW,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(slot.insert(owned).as_raw_fd())
}

fn sent(n: isize) -> std::io::Result<()> {
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}
