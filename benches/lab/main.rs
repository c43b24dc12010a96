//! The lab benchmark: benchscale against the floor (the same Docker and
//! libvirt calls made directly, all at once, with no engine logic) and
//! against docker-compose, side by side on the same machine in one run.
//!
//! Run (as root, with the Docker engine, docker-compose, libvirtd, the
//! image `benchscale/busybox:latest` and the tiny VM images):
//!
//! ```text
//! cargo bench --bench lab
//! ```
//!
//! It writes `BENCHMARKS.md` and `docs/bench/apply-vs-size.svg` (overwritten
//! each run, except the blocks of `BENCHMARKS.md` that the conditions and
//! test-runner benchmarks write, which are carried over as they are).
//! Variables for
//! shorter runs; the defaults are the full set:
//!
//! - `BENCH_SIZES=10,30,100,200`: container lab sizes (4 networks); `0`
//!   skips them, as it does in the other lists.
//! - `BENCH_RUNS=3`: runs of each measurement (median, min–max).
//! - `BENCH_VMS=1,4`: tiny guest counts; `0` skips VMs.
//! - `BENCH_OFFLINE=100,1000,10000`: nodes of the offline validate + plan.
//! - `BENCH_PROFILE=30`: size of the profile (where the time goes); `0`
//!   skips it.
//! - `BENCH_SWEEP=4,8,16,32,64`: `--parallelism` values tried in the
//!   profile.
//! - `BENCH_OUT=DIR`: where to write the report (default: the repository).
//!
//! What is measured, for each size and run:
//! - benchscale (the release binary, as a user runs it, so process start,
//!   loading the file and connecting count): cold apply, no-change apply,
//!   an apply that changes one node (re-created), destroy; peak RSS of each
//!   from `wait4`.
//! - the floor: create the networks, then every container (create, connect
//!   the second network, start) at full parallelism with bollard; then
//!   remove them.
//! - docker-compose: `up -d`, a second `up -d`, `down -t 0` on the
//!   equivalent compose file (`benchscale::synth::compose_file`).
//!
//! The no-change apply is repeated once through a recording proxy on the
//! Docker socket, which counts its API calls (none may mutate). The
//! profile runs each tool once through the proxy to see which calls the
//! time goes to, and sweeps `--parallelism`.
//!
//! Everything it makes is named `bench-*` (Docker labels, libvirt names
//! `bs-bench-*`) on 10.252.0.0/16 and 10.253.0.0/16; leftovers of an
//! earlier run are removed first, and everything again at the end, on
//! error and on Ctrl-C.
//!
//! Run without `--bench` (as `cargo test --benches` does), it only checks
//! itself and the offline pipeline, touching no daemon.

/// The other benchmarks' blocks of the report, kept as they are.
#[path = "../conditions/block.rs"]
mod block;
mod containers;
mod ctx;
mod docker;
mod guests;
mod offline;
mod plot;
mod profile;
mod proxy;
mod report;
mod run;
mod targets;
mod vm;

use containers::*;
use ctx::*;
use guests::*;
use offline::*;
use profile::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use benchscale::backend::Observed;
use benchscale::synth::{PlainLab, Shape, TinyVms, compose_file, plain_topology, tiny_vm_topology};
use benchscale::topology::{AnyFile, load_str};
use bollard::{ClientVersion, Docker};

use run::{Measured, Samples, capture};

/// Networks of every container lab.
const NETWORKS: usize = 4;
/// Longest any one command may take.
const LIMIT: Duration = Duration::from_secs(900);
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sizes: Vec<usize>,
    pub runs: usize,
    pub vms: Vec<usize>,
    pub offline: Vec<usize>,
    pub profile: Option<usize>,
    pub sweep: Vec<usize>,
    pub out: PathBuf,
    /// The `BENCH_*` variables given, for the command line in the report.
    pub given: Vec<(String, String)>,
}

fn list(var: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(var) {
        Ok(text) => text
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .filter(|n| *n > 0)
            .collect(),
        Err(_) => default.to_vec(),
    }
}

impl Settings {
    fn from_env() -> Settings {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let profile = list("BENCH_PROFILE", &[30]).first().copied();
        Settings {
            sizes: list("BENCH_SIZES", &[10, 30, 100, 200]),
            runs: list("BENCH_RUNS", &[3]).first().copied().unwrap_or(3),
            vms: list("BENCH_VMS", &[1, 4]),
            offline: list("BENCH_OFFLINE", &[100, 1000, 10_000]),
            profile,
            sweep: list("BENCH_SWEEP", &[4, 8, 16, 32, 64]),
            out: std::env::var_os("BENCH_OUT").map_or(root, PathBuf::from),
            given: std::env::vars()
                .filter(|(k, _)| k.starts_with("BENCH_"))
                .collect(),
        }
    }
}

/// Container lab results of one size.
#[derive(Debug, Default)]
pub struct SizeResult {
    pub size: usize,
    pub bs_cold: Samples,
    pub bs_nochange: Samples,
    pub bs_change: Samples,
    pub bs_destroy: Samples,
    /// Peak RSS in KiB, the highest over the runs, by operation.
    pub bs_rss: BTreeMap<&'static str, u64>,
    /// The no-change apply through the proxy: every call and how many mutate.
    pub nochange_calls: Option<(BTreeMap<String, usize>, usize)>,
    pub floor_create: Samples,
    pub floor_remove: Samples,
    pub compose_up: Samples,
    pub compose_up2: Samples,
    pub compose_down: Samples,
    pub compose_rss: u64,
}

/// VM results of one guest count.
#[derive(Debug, Default)]
pub struct VmResult {
    pub vms: usize,
    pub domain_type: String,
    pub bs: Samples,
    /// With `BENCHSCALE_LIBVIRT_DOMAIN_TYPE` set: no KVM probe.
    pub bs_preset: Samples,
    pub floor: Samples,
    pub bs_destroy: Samples,
    pub floor_down: Samples,
    pub bs_rss: u64,
    /// The slowest guest's uptime at its ready line, seconds.
    pub bs_boot: Samples,
    pub floor_boot: Samples,
}

/// Offline results of one size.
#[derive(Debug, Default)]
pub struct OfflineResult {
    pub nodes: usize,
    pub networks: usize,
    pub bytes: usize,
    pub validate: Samples,
    pub plan: Samples,
    pub total: Samples,
    /// `benchscale validate FILE`, wall time of the process.
    pub binary: Samples,
    pub binary_rss: u64,
}

/// One tool's run through the proxy.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub label: String,
    pub wall: Duration,
    pub calls: Vec<proxy::Call>,
    /// When the process (or the floor's first call) started.
    pub t0: Instant,
    pub end: Instant,
}

/// Where the time goes at one size.
#[derive(Debug, Default)]
pub struct Profile {
    pub size: usize,
    pub timelines: Vec<Timeline>,
    /// `--parallelism` to cold apply seconds.
    pub sweep: Vec<(usize, Samples)>,
    pub floor: Samples,
}

/// Facts about the machine and the software.
#[derive(Debug, Default)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
    pub load_start: String,
    pub load_end: String,
    pub docker: String,
    pub compose: String,
    pub libvirt: String,
    pub qemu: String,
    pub rustc: String,
    pub commit: String,
    pub date: String,
    /// Peak RSS reported for `true` started the way benchscale is: what the
    /// method itself adds, at most.
    pub rss_floor_kib: u64,
}

/// Everything measured.
#[derive(Debug, Default)]
pub struct Results {
    pub machine: Machine,
    pub sizes: Vec<SizeResult>,
    pub vms: Vec<VmResult>,
    pub vm_skipped: Option<String>,
    pub offline: Vec<OfflineResult>,
    pub profile: Option<Profile>,
    pub errors: Vec<String>,
    /// Daemon failures the run went on after (see `docker::STALE_ENDPOINT`).
    pub incidents: Vec<String>,
    pub duration: Duration,
}

/// Paths and clients every part uses.
struct Ctx {
    settings: Settings,
    bin: PathBuf,
    scratch: PathBuf,
    config: PathBuf,
    rt: tokio::runtime::Runtime,
    docker: Docker,
    api: ClientVersion,
    launcher: run::Launcher,
    /// Part of every lab name, different in each invocation: a lab the
    /// daemon could not fully remove never meets its successor.
    tag: String,
    counter: AtomicUsize,
    incidents: Mutex<Vec<String>>,
}

fn say(text: impl AsRef<str>) {
    eprintln!("lab-bench: {}", text.as_ref());
}

fn main() {
    if std::env::args().any(|a| a == "--launcher") {
        run::launcher_main();
        return;
    }
    let bench = std::env::args().any(|a| a == "--bench");
    if !bench {
        smoke();
        return;
    }
    let settings = Settings::from_env();
    let started = Instant::now();
    // First, while this process is small: see `run`.
    let launcher = run::Launcher::start().expect("start the launcher");
    let scratch = PathBuf::from(format!("/tmp/benchscale-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("make the scratch folder");
    let guard = Cleanup(scratch.clone());
    cleanup_everything();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    watch_signals(&rt, scratch.clone());

    let mut results = Results {
        machine: machine(),
        ..Results::default()
    };
    if let Err(e) = preflight(&settings) {
        say(format!("cannot run: {e}"));
        drop(guard);
        std::process::exit(1);
    }
    let api = docker::api_version().expect("the Docker engine answers (checked)");
    let docker = docker::client(&format!("unix://{DOCKER_SOCKET}"), &api).expect("bollard client");
    let config = scratch.join("config.toml");
    std::fs::write(
        &config,
        "# empty: defaults and BENCHSCALE_* variables only\n",
    )
    .expect("write the configuration");
    let ctx = Ctx {
        settings: settings.clone(),
        bin: PathBuf::from(env!("CARGO_BIN_EXE_benchscale")),
        scratch,
        config,
        rt,
        docker,
        api,
        launcher,
        tag: format!("{:03x}", std::process::id() & 0xfff),
        counter: AtomicUsize::new(0),
        incidents: Mutex::default(),
    };
    results.machine.rss_floor_kib = ctx
        .launcher
        .run(&Command::new("true"), &ctx.scratch, LIMIT)
        .map_or(0, |m| m.max_rss_kib);
    say(format!(
        "sizes {:?}, {} runs, VMs {:?}, offline {:?}, profile {:?}; report in {}",
        settings.sizes,
        settings.runs,
        settings.vms,
        settings.offline,
        settings.profile,
        settings.out.display()
    ));

    results.offline = offline(&ctx, &settings.offline, settings.runs.max(5));
    for &size in &settings.sizes {
        let (r, error) = containers(&ctx, size);
        results.sizes.push(r);
        if let Some(e) = error {
            say(format!("size {size}: {e}"));
            results.errors.push(format!("containers, size {size}: {e}"));
            cleanup_everything();
        }
    }
    if let Some(size) = settings.profile {
        match profile(&ctx, size) {
            Ok(p) => results.profile = Some(p),
            Err(e) => {
                say(format!("profile: {e}"));
                results.errors.push(format!("profile: {e}"));
                cleanup_everything();
            }
        }
    }
    if !settings.vms.is_empty() {
        match vm::missing() {
            Some(why) => results.vm_skipped = Some(why),
            None => {
                for &n in &settings.vms {
                    let (r, error) = vms(&ctx, n);
                    results.vms.push(r);
                    if let Some(e) = error {
                        say(format!("{n} VMs: {e}"));
                        results.errors.push(format!("VMs, {n}: {e}"));
                        vm::cleanup_bench_domains();
                    }
                }
            }
        }
    }
    results.machine.load_end = run::loadavg();
    results.incidents = ctx
        .incidents
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    results.duration = started.elapsed();
    let mut failed = !results.errors.is_empty();
    match report::write(&settings, &results) {
        Ok(files) => {
            for f in files {
                say(format!("wrote {}", f.display()));
            }
        }
        Err(e) => {
            say(format!("cannot write the report: {e}"));
            failed = true;
        }
    }
    println!("{}", targets::summary(&results));
    // `exit` runs no destructor: clean up first.
    drop(ctx);
    drop(guard);
    if failed {
        std::process::exit(1);
    }
}

/// Without `--bench`: the parts that need no daemon.
fn smoke() {
    proxy::self_check();
    block::self_check();
    let r = offline_one(100, 1);
    assert!(r.total.median().is_some());
    let mut s = Samples::default();
    for v in [3.0, 1.0, 2.0] {
        s.push(v);
    }
    assert_eq!(s.median(), Some(2.0));
    let svg = plot::svg_for_check();
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    println!("lab bench: self-check passed; run it with `cargo bench --bench lab`");
}

/// Removes the harness's leftovers and, on drop, the scratch folder.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        cleanup_everything();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything named `bench-*` in Docker (by label: benchscale's labs, the
/// floor's, compose's) and libvirt (`bs-bench-*`).
fn cleanup_everything() {
    docker::cleanup_bench_labels();
    vm::cleanup_bench_domains();
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ctrl-C or SIGTERM: let children stop, clean up, exit 130.
fn watch_signals(rt: &tokio::runtime::Runtime, scratch: PathBuf) {
    rt.spawn(async move {
        benchscale::cli::interrupt().await;
        INTERRUPTED.store(true, Ordering::SeqCst);
        say("interrupted: cleaning up");
        tokio::time::sleep(Duration::from_secs(2)).await;
        cleanup_everything();
        let _ = std::fs::remove_dir_all(&scratch);
        std::process::exit(130);
    });
}

fn preflight(settings: &Settings) -> Result<(), String> {
    if !run::quiet("docker", &["version"]) {
        return Err("the Docker engine does not answer (scripts/setup-host.sh)".into());
    }
    if !run::quiet("docker", &["image", "inspect", "benchscale/busybox:latest"]) {
        return Err(
            "the image benchscale/busybox:latest is missing (scripts/build-images.sh)".into(),
        );
    }
    if !settings.sizes.is_empty() && !run::quiet("docker-compose", &["version"]) {
        return Err("docker-compose is not installed (apt-get install docker-compose)".into());
    }
    for &size in &settings.sizes {
        if !PlainLab::new("bench", size, NETWORKS).fits() {
            return Err(format!(
                "{size} containers do not fit on {NETWORKS} /24 networks"
            ));
        }
    }
    Ok(())
}

fn machine() -> Machine {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or("unknown".into(), |kib| {
            format!("{:.1} GiB", kib / 1024.0 / 1024.0)
        });
    let cpu_model = run::cpu_model();
    let commit = run::commit();
    let libvirt = capture("virsh", &["-c", vm::URI, "version"])
        .lines()
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .filter(|(k, _)| k == "Using library" || k == "Running hypervisor")
        .map(|(_, v)| v)
        .collect::<Vec<_>>()
        .join(", ");
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model,
        memory,
        kernel: capture("uname", &["-r"]),
        load_start: run::loadavg(),
        load_end: String::new(),
        docker: capture(
            "docker",
            &[
                "version",
                "--format",
                "{{.Server.Version}} (API {{.Server.APIVersion}})",
            ],
        ),
        compose: capture("docker-compose", &["version", "--short"]),
        libvirt: if libvirt.is_empty() {
            "unknown".into()
        } else {
            libvirt
        },
        qemu: capture("qemu-system-x86_64", &["--version"])
            .lines()
            .next()
            .unwrap_or("unknown")
            .to_string(),
        rustc: capture("rustc", &["--version"]),
        commit,
        date: capture("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        rss_floor_kib: 0,
    }
}
