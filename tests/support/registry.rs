//! A real image registry on loopback for the pull tests: Debian's
//! `docker-registry` (the Distribution registry), with its storage in
//! memory, on a free port of 127.0.0.1, where Docker allows plain HTTP
//! without any `insecure-registries` setting.
//!
//! One registry serves every test of a test process. It is started by a
//! thread that lives as long as the process, with the kernel told to end
//! it when that thread does (`PR_SET_PDEATHSIG`), so it never outlives
//! the tests, however they end, and leaves nothing on disk.
//!
//! [`TestImage`] builds an image of its own (the test image plus a layer
//! of random bytes, so that a pull has something to download), pushes it
//! with bollard and removes it from the engine, so that the next apply
//! must pull it. Dropping it removes whatever the engine has under its
//! name: declare it before the lab whose containers use it, so that the
//! lab's containers go first.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;

use super::docker::{IMAGE, docker, docker_ok, require_docker};

/// The registry program of Debian's `docker-registry` package.
const PROGRAM: &str = "docker-registry";

/// The registry of this test process.
pub struct Registry {
    /// `127.0.0.1:PORT`, the first component of its images' names.
    pub host: String,
}

impl Registry {
    /// The registry of this test process, started on first use. Fails
    /// (never skips) when Docker, the test image or the registry program
    /// is missing.
    pub fn shared() -> &'static Registry {
        static SHARED: OnceLock<Registry> = OnceLock::new();
        require_docker();
        SHARED.get_or_init(|| {
            let mut last = String::new();
            // A port found free may be taken before the registry binds it.
            for _ in 0..5 {
                match start() {
                    Ok(registry) => return registry,
                    Err(e) => last = e,
                }
            }
            panic!("cannot start a registry for the pull tests: {last}");
        })
    }

    /// `127.0.0.1:PORT/benchscale-test/NAME:TAG-…`, a name no other test
    /// uses, whether or not anything was pushed there.
    pub fn unique(&self, name: &str, tag: &str) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!(
            "{}/benchscale-test/{name}:{tag}-{}-{nanos}",
            self.host,
            std::process::id()
        )
    }
}

/// Starts the registry on a free port and waits until it answers.
fn start() -> Result<Registry, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let host = format!("127.0.0.1:{port}");
    let config = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  inmemory: {{}}\nhttp:\n  addr: {host}\n"
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut command = Command::new(PROGRAM);
        command
            .args(["serve", "/dev/stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches no memory of the
        // parent; it ends the registry when this thread ends.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().and_then(|mut child| {
            let mut stdin = child.stdin.take().expect("piped stdin");
            stdin.write_all(config.as_bytes())?;
            Ok(child)
        });
        let mut child = match child {
            Ok(child) => {
                let _ = tx.send(Ok(()));
                child
            }
            Err(e) => {
                let _ = tx.send(Err(format!(
                    "cannot run {PROGRAM} ({e}): run scripts/setup-host.sh, which installs Debian's docker-registry"
                )));
                return;
            }
        };
        // The registry reads its whole configuration before it serves;
        // then this thread waits for it, for as long as the process lives.
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let _ = child.wait();
        eprintln!("the test registry on 127.0.0.1:{port} ended: {stderr}");
    });
    rx.recv()
        .map_err(|_| "the registry thread ended".to_owned())??;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if answers(port) {
            return Ok(Registry { host });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{PROGRAM} did not answer on {host} within 15 s"))
}

/// Whether the registry answers its API's version check.
fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).is_ok()
        && answer.starts_with(b"HTTP/1.")
        && &answer[9..12] == b"200"
}

/// An image pushed to the test registry and removed from the engine.
pub struct TestImage {
    /// Its full name, registry included.
    pub name: String,
    /// The id of every image built under the name: one that lost the name
    /// to a later build is still there until the drop.
    built: std::sync::Mutex<Vec<String>>,
}

impl TestImage {
    /// Builds an image named after `name` and `tag` on the test image with
    /// `mib` MiB of random bytes in a layer of its own, pushes it and
    /// removes it from the engine.
    pub fn pushed(registry: &Registry, name: &str, tag: &str, mib: u32) -> Self {
        let image = TestImage {
            name: registry.unique(name, tag),
            built: std::sync::Mutex::default(),
        };
        image.build_and_push(mib);
        image.forget();
        image
    }

    /// Builds another image under the same name and pushes it: the
    /// registry's name now stands for it, and so does the engine's.
    pub fn build_and_push(&self, mib: u32) {
        build(&self.name, mib);
        if let Some(id) = self.id() {
            self.built
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(id);
        }
        push(&self.name);
    }

    /// Removes the image from the engine (the registry keeps it).
    pub fn forget(&self) {
        docker_ok(&["image", "rm", &self.name]);
    }

    /// The engine's id of the image, if it has it.
    pub fn id(&self) -> Option<String> {
        let out = docker(&["image", "inspect", "--format", "{{.Id}}", &self.name]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for TestImage {
    fn drop(&mut self) {
        let _ = docker(&["image", "rm", "--force", &self.name]);
        let built = self
            .built
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for id in built.iter() {
            let _ = docker(&["image", "rm", "--force", id]);
        }
    }
}

/// `docker build` of `FROM` the test image plus `mib` MiB of random bytes;
/// the docker CLI is fine in fixtures (benchscale itself never uses it).
fn build(name: &str, mib: u32) {
    let dockerfile = format!(
        "FROM {IMAGE}\nRUN head -c {} /dev/urandom > /blob\nLABEL io.benchscale.test-image={name}\n",
        u64::from(mib) * 1024 * 1024
    );
    let mut child = Command::new("docker")
        .args(["build", "--quiet", "--tag", name, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run docker build");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(dockerfile.as_bytes())
        .expect("write the Dockerfile");
    let out = child.wait_with_output().expect("docker build");
    assert!(
        out.status.success(),
        "docker build of {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pushes `name` to its registry through the Docker API.
fn push(name: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let docker = bollard::Docker::connect_with_local_defaults().expect("connect to Docker");
        let (repository, tag) = name.rsplit_once(':').expect("a tag");
        let options = bollard::query_parameters::PushImageOptionsBuilder::default()
            .tag(tag)
            .build();
        let mut stream = docker.push_image(repository, Some(options), None);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                panic!("push of {name} failed: {e}");
            }
        }
    });
}
