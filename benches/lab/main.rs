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
//! each run). Variables for shorter runs; the defaults are the full set:
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

mod docker;
mod proxy;
mod report;
mod run;
mod vm;

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
    results.machine.load_end = loadavg();
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
    println!("{}", report::summary(&results));
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
    let r = offline_one(100, 1);
    assert!(r.total.median().is_some());
    let mut s = Samples::default();
    for v in [3.0, 1.0, 2.0] {
        s.push(v);
    }
    assert_eq!(s.median(), Some(2.0));
    let svg = report::svg_for_check();
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
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
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

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
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
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".into(), |(_, m)| m.trim().to_string());
    let root = env!("CARGO_MANIFEST_DIR");
    let mut commit = capture("git", &["-C", root, "rev-parse", "--short=12", "HEAD"]);
    if capture(
        "git",
        &["-C", root, "status", "--porcelain", "--untracked-files=no"],
    ) != "unknown"
    {
        commit.push_str(" with uncommitted changes");
    }
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
        load_start: loadavg(),
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

// ---------------------------------------------------------------------------
// benchscale, the binary
// ---------------------------------------------------------------------------

impl Ctx {
    /// The benchscale binary with `args`, the harness's state folder and
    /// configuration, and none of the caller's `BENCHSCALE_*` variables
    /// but the base image path.
    fn benchscale(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).current_dir(&self.scratch);
        for (key, _) in std::env::vars() {
            if key.starts_with("BENCHSCALE_") && key != "BENCHSCALE_BASE_IMAGE_PATH" {
                cmd.env_remove(key);
            }
        }
        cmd.env("BENCHSCALE_CONFIG", &self.config)
            .env("BENCHSCALE_STATE_DIR", self.scratch.join("state"))
            .env("NO_COLOR", "1");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    fn run_bs(
        &self,
        args: &[&str],
        extra: &[(&str, &str)],
        what: &str,
    ) -> Result<Measured, String> {
        self.run_bs_raw(args, extra)?.ok(what)
    }

    /// Like [`Ctx::run_bs`], whatever the exit code.
    fn run_bs_raw(&self, args: &[&str], extra: &[(&str, &str)]) -> Result<Measured, String> {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        self.launcher
            .run(&self.benchscale(args, extra), &self.scratch, LIMIT)
    }

    /// A fresh container lab of `tool` (`bs`, `floor`, `compose`) on
    /// subnets no network uses right now.
    fn plain(&self, tool: &str, size: usize) -> Result<PlainLab, String> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let mut lab = PlainLab::new(
            &format!("bench-{tool}{size}-{}{n}", self.tag),
            size,
            NETWORKS,
        );
        lab.third_octet = self
            .rt
            .block_on(docker::free_thirds(&self.docker, NETWORKS))?;
        Ok(lab)
    }

    fn incident(&self, text: String) {
        say(format!("daemon incident: {text}"));
        self.incidents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(text);
    }

    /// A removal that failed only because the daemon kept a stale endpoint
    /// on a network (every container is gone) is an incident, not a
    /// failure: its time still counts.
    fn removed(&self, m: Measured, what: &str, lab: &str) -> Result<Measured, String> {
        if m.code == Some(0) {
            return Ok(m);
        }
        let text = format!("{}\n{}", m.stdout, m.stderr);
        if text.contains(docker::STALE_ENDPOINT)
            && self.rt.block_on(docker::count(&self.docker, lab))?.0 == 0
        {
            let line = text
                .lines()
                .find(|l| l.contains(docker::STALE_ENDPOINT))
                .unwrap_or_default();
            self.incident(format!("{what} of {lab}: {}", line.trim()));
            return Ok(m);
        }
        m.ok(what)
    }

    fn compose(&self, file: &Path, project: &str, args: &[&str], host: Option<&str>) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.arg("-p")
            .arg(project)
            .arg("-f")
            .arg(file)
            .args(args)
            .current_dir(&self.scratch)
            .env("COMPOSE_INTERACTIVE_NO_CLI", "1");
        if let Some(host) = host {
            cmd.env("DOCKER_HOST", host);
        } else {
            cmd.env_remove("DOCKER_HOST");
        }
        cmd
    }

    fn run_compose(
        &self,
        file: &Path,
        project: &str,
        args: &[&str],
        host: Option<&str>,
    ) -> Result<Measured, String> {
        let what = format!("docker-compose {}", args.join(" "));
        self.run_compose_raw(file, project, args, host)?.ok(&what)
    }

    /// Like [`Ctx::run_compose`], whatever the exit code.
    fn run_compose_raw(
        &self,
        file: &Path,
        project: &str,
        args: &[&str],
        host: Option<&str>,
    ) -> Result<Measured, String> {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        self.launcher.run(
            &self.compose(file, project, args, host),
            &self.scratch,
            LIMIT,
        )
    }

    fn write(&self, name: &str, text: &str) -> Result<PathBuf, String> {
        let path = self.scratch.join(name);
        std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Checks that `lab` has `want` running containers.
    fn expect_running(&self, lab: &str, want: usize) -> Result<(), String> {
        let (all, running) = self.rt.block_on(docker::count(&self.docker, lab))?;
        if all == want && running == want {
            Ok(())
        } else {
            Err(format!(
                "lab {lab}: {running} of {all} containers run, {want} expected"
            ))
        }
    }
}

fn rss(map: &mut BTreeMap<&'static str, u64>, key: &'static str, m: &Measured) {
    let e = map.entry(key).or_default();
    *e = (*e).max(m.max_rss_kib);
}

/// The results of one size, and the error that stopped it early.
fn containers(ctx: &Ctx, size: usize) -> (SizeResult, Option<String>) {
    let mut r = SizeResult {
        size,
        ..SizeResult::default()
    };
    let error = containers_into(ctx, size, &mut r).err();
    (r, error)
}

fn containers_into(ctx: &Ctx, size: usize, r: &mut SizeResult) -> Result<(), String> {
    let runs = ctx.settings.runs;
    for run in 1..=runs {
        let tag = format!("[{size} containers, run {run}/{runs}]");
        // benchscale
        let bs_lab = ctx.plain("bs", size)?;
        let file = ctx.write(&format!("{}.yaml", bs_lab.lab), &plain_topology(&bs_lab))?;
        let file_arg = file.display().to_string();
        let cold = ctx.run_bs(&["apply", &file_arg], &[], "benchscale cold apply")?;
        ctx.expect_running(&bs_lab.lab, size)?;
        let nochange = ctx.run_bs(&["apply", &file_arg], &[], "benchscale no-change apply")?;
        if !nochange.stdout.contains("no changes") {
            return Err(format!(
                "the second apply changed something: {}",
                nochange.stdout
            ));
        }
        if r.nochange_calls.is_none() {
            r.nochange_calls = Some(count_nochange(ctx, &file_arg)?);
        }
        let mut changed = bs_lab.clone();
        changed.changed = Some(size / 2);
        std::fs::write(&file, plain_topology(&changed)).map_err(|e| e.to_string())?;
        let change = ctx.run_bs(
            &["apply", &file_arg],
            &[],
            "benchscale one-node change apply",
        )?;
        ctx.expect_running(&bs_lab.lab, size)?;
        let destroy = ctx.removed(
            ctx.run_bs_raw(&["destroy", &file_arg], &[])?,
            "benchscale destroy",
            &bs_lab.lab,
        )?;
        ctx.expect_running(&bs_lab.lab, 0)?;
        say(format!(
            "{tag} benchscale: cold {:.2}s, no-change {:.2}s, change {:.2}s, destroy {:.2}s, peak RSS {:.1} MiB",
            cold.secs(),
            nochange.secs(),
            change.secs(),
            destroy.secs(),
            cold.rss_mib()
        ));
        r.bs_cold.push(cold.secs());
        r.bs_nochange.push(nochange.secs());
        r.bs_change.push(change.secs());
        r.bs_destroy.push(destroy.secs());
        rss(&mut r.bs_rss, "cold apply", &cold);
        rss(&mut r.bs_rss, "no-change apply", &nochange);
        rss(&mut r.bs_rss, "change apply", &change);
        rss(&mut r.bs_rss, "destroy", &destroy);
        ctx.rt.block_on(docker::settle());

        // the floor
        let floor_lab = ctx.plain("floor", size)?;
        let create = ctx
            .rt
            .block_on(docker::floor_create(&ctx.docker, &floor_lab))?;
        ctx.expect_running(&floor_lab.lab, size)?;
        let (remove, stale) = ctx
            .rt
            .block_on(docker::floor_remove(&ctx.docker, &floor_lab))?;
        for s in stale {
            ctx.incident(s);
        }
        say(format!(
            "{tag} floor: create {:.2}s, remove {:.2}s",
            create.as_secs_f64(),
            remove.as_secs_f64()
        ));
        r.floor_create.push(create.as_secs_f64());
        r.floor_remove.push(remove.as_secs_f64());
        ctx.rt.block_on(docker::settle());

        // docker-compose
        let compose_lab = ctx.plain("compose", size)?;
        let compose = ctx.write(
            &format!("{}.yml", compose_lab.lab),
            &compose_file(&compose_lab),
        )?;
        let project = compose_lab.lab.as_str();
        let up = ctx.run_compose(&compose, project, &["up", "-d"], None)?;
        ctx.expect_running(project, size)?;
        let up2 = ctx.run_compose(&compose, project, &["up", "-d"], None)?;
        let down = ctx.removed(
            ctx.run_compose_raw(&compose, project, &["down", "-t", "0"], None)?,
            "docker-compose down",
            project,
        )?;
        ctx.expect_running(project, 0)?;
        say(format!(
            "{tag} compose: up {:.2}s, second up {:.2}s, down {:.2}s",
            up.secs(),
            up2.secs(),
            down.secs()
        ));
        r.compose_up.push(up.secs());
        r.compose_up2.push(up2.secs());
        r.compose_down.push(down.secs());
        r.compose_rss = r.compose_rss.max(up.max_rss_kib);
        ctx.rt.block_on(docker::settle());
    }
    Ok(())
}

/// Starts a proxy on the harness's socket.
fn proxy(ctx: &Ctx) -> Result<proxy::Proxy, String> {
    proxy::Proxy::start(
        &ctx.rt,
        &ctx.scratch.join("docker-proxy.sock"),
        Path::new(DOCKER_SOCKET),
    )
    .map_err(|e| format!("start the proxy: {e}"))
}

/// A no-change apply through the proxy: its calls, and how many mutate.
fn count_nochange(ctx: &Ctx, file: &str) -> Result<(BTreeMap<String, usize>, usize), String> {
    let proxy = proxy(ctx)?;
    let url = proxy.url();
    let run = ctx.run_bs(
        &["apply", file],
        &[("BENCHSCALE_DOCKER_HOST", url.as_str())],
        "benchscale no-change apply (through the proxy)",
    )?;
    if !run.stdout.contains("no changes") {
        return Err(format!(
            "the counted apply changed something: {}",
            run.stdout
        ));
    }
    let calls = proxy.take();
    let mutating = calls.iter().filter(|c| c.mutating()).count();
    let mut by_key = BTreeMap::new();
    for c in &calls {
        *by_key.entry(c.key()).or_insert(0) += 1;
    }
    Ok((by_key, mutating))
}

// ---------------------------------------------------------------------------
// the profile
// ---------------------------------------------------------------------------

fn profile(ctx: &Ctx, size: usize) -> Result<Profile, String> {
    let mut p = Profile {
        size,
        ..Profile::default()
    };
    say(format!("[profile, {size} containers] through the proxy"));
    let proxy = proxy(ctx)?;
    let url = proxy.url();
    let host = [("BENCHSCALE_DOCKER_HOST", url.as_str())];
    let timeline = |label: &str, m: &Measured| Timeline {
        label: label.into(),
        wall: m.wall,
        calls: proxy.take(),
        t0: m.started,
        end: m.ended,
    };

    let bs_lab = ctx.plain("bs", size)?;
    let file = ctx.write(&format!("{}.yaml", bs_lab.lab), &plain_topology(&bs_lab))?;
    let file_arg = file.display().to_string();
    let m = ctx.run_bs(
        &["apply", &file_arg],
        &host,
        "benchscale cold apply (proxy)",
    )?;
    p.timelines.push(timeline("benchscale cold apply", &m));
    let m = ctx.run_bs(
        &["apply", &file_arg],
        &host,
        "benchscale no-change apply (proxy)",
    )?;
    p.timelines.push(timeline("benchscale no-change apply", &m));
    let m = ctx.removed(
        ctx.run_bs_raw(&["destroy", &file_arg], &host)?,
        "benchscale destroy (proxy)",
        &bs_lab.lab,
    )?;
    p.timelines.push(timeline("benchscale destroy", &m));
    ctx.rt.block_on(docker::settle());

    let floor_lab = ctx.plain("floor", size)?;
    let via = docker::client(&url, &ctx.api)?;
    let t0 = Instant::now();
    let took = ctx.rt.block_on(docker::floor_create(&via, &floor_lab))?;
    p.timelines.push(Timeline {
        label: "floor create".into(),
        wall: took,
        calls: proxy.take(),
        t0,
        end: Instant::now(),
    });
    let t0 = Instant::now();
    let (took, stale) = ctx.rt.block_on(docker::floor_remove(&via, &floor_lab))?;
    for s in stale {
        ctx.incident(s);
    }
    p.timelines.push(Timeline {
        label: "floor remove".into(),
        wall: took,
        calls: proxy.take(),
        t0,
        end: Instant::now(),
    });
    ctx.rt.block_on(docker::settle());

    let compose_lab = ctx.plain("compose", size)?;
    let compose = ctx.write(
        &format!("{}.yml", compose_lab.lab),
        &compose_file(&compose_lab),
    )?;
    let project = compose_lab.lab.as_str();
    let m = ctx.run_compose(&compose, project, &["up", "-d"], Some(&url))?;
    p.timelines.push(timeline("compose up -d", &m));
    let m = ctx.removed(
        ctx.run_compose_raw(&compose, project, &["down", "-t", "0"], Some(&url))?,
        "docker-compose down (proxy)",
        project,
    )?;
    p.timelines.push(timeline("compose down -t 0", &m));
    drop(proxy);
    ctx.rt.block_on(docker::settle());

    // The floor again without the proxy, then the parallelism sweep.
    for _ in 0..ctx.settings.runs {
        let floor_lab = ctx.plain("floor", size)?;
        let took = ctx
            .rt
            .block_on(docker::floor_create(&ctx.docker, &floor_lab))?;
        p.floor.push(took.as_secs_f64());
        let (_, stale) = ctx
            .rt
            .block_on(docker::floor_remove(&ctx.docker, &floor_lab))?;
        for s in stale {
            ctx.incident(s);
        }
        ctx.rt.block_on(docker::settle());
    }
    for &parallelism in &ctx.settings.sweep {
        let mut samples = Samples::default();
        let n = parallelism.to_string();
        for _ in 0..ctx.settings.runs {
            let lab = ctx.plain("bs", size)?;
            let file = ctx.write(&format!("{}.yaml", lab.lab), &plain_topology(&lab))?;
            let file_arg = file.display().to_string();
            let m = ctx.run_bs(
                &["apply", "--parallelism", &n, &file_arg],
                &[],
                "benchscale cold apply (sweep)",
            )?;
            ctx.removed(
                ctx.run_bs_raw(&["destroy", &file_arg], &[])?,
                "benchscale destroy (sweep)",
                &lab.lab,
            )?;
            samples.push(m.secs());
            ctx.rt.block_on(docker::settle());
        }
        say(format!(
            "[profile, {size} containers] --parallelism {parallelism}: {:.2}s",
            samples.median().unwrap_or_default()
        ));
        p.sweep.push((parallelism, samples));
    }
    Ok(p)
}

// ---------------------------------------------------------------------------
// VMs
// ---------------------------------------------------------------------------

/// The results of one guest count, and the error that stopped it early.
fn vms(ctx: &Ctx, n: usize) -> (VmResult, Option<String>) {
    let mut r = VmResult {
        vms: n,
        ..VmResult::default()
    };
    let error = vms_into(ctx, n, &mut r).err();
    (r, error)
}

fn vms_into(ctx: &Ctx, n: usize, r: &mut VmResult) -> Result<(), String> {
    let overlays = ctx.scratch.join("vm-overlays");
    let overlay_env = overlays.display().to_string();
    let kvm = Path::new("/dev/kvm").exists();
    for run in 1..=ctx.settings.runs {
        let tag = format!("[{n} VMs, run {run}/{}]", ctx.settings.runs);
        let k = ctx.counter.fetch_add(1, Ordering::SeqCst);
        let lab = TinyVms::new(&format!("bench-vm{n}-{}{k}", ctx.tag), n);
        let mut floor_lab = TinyVms::new(&format!("bench-vmfloor{n}-{}{k}", ctx.tag), n);
        floor_lab.third_octet = 1;
        let file = ctx.write(&format!("{}.yaml", lab.lab), &tiny_vm_topology(&lab))?;
        let file_arg = file.display().to_string();
        let env = [("BENCHSCALE_OVERLAY_DIR", overlay_env.as_str())];
        let up = ctx.run_bs(&["apply", &file_arg], &env, "benchscale VM apply")?;
        let logs: Vec<PathBuf> = (0..n)
            .map(|i| {
                overlays
                    .join(&lab.lab)
                    .join(format!("{}.console.log", TinyVms::vm_name(i)))
            })
            .collect();
        if let Some(boot) = vm::boot_uptime(&logs) {
            r.bs_boot.push(boot);
        }
        let first = benchscale::backend::resource_name(&lab.lab, &TinyVms::vm_name(0));
        r.domain_type = vm::domain_type_of(&first).unwrap_or_else(|| "qemu".into());
        let down = ctx.run_bs(&["destroy", &file_arg], &env, "benchscale VM destroy")?;
        r.bs.push(up.secs());
        r.bs_destroy.push(down.secs());
        r.bs_rss = r.bs_rss.max(up.max_rss_kib);
        let mut line = format!(
            "{tag} benchscale: apply {:.2}s (domain type {}), destroy {:.2}s",
            up.secs(),
            r.domain_type,
            down.secs()
        );
        if kvm {
            let preset = [
                ("BENCHSCALE_OVERLAY_DIR", overlay_env.as_str()),
                ("BENCHSCALE_LIBVIRT_DOMAIN_TYPE", r.domain_type.as_str()),
            ];
            let up = ctx.run_bs(
                &["apply", &file_arg],
                &preset,
                "benchscale VM apply (type preset)",
            )?;
            ctx.run_bs(&["destroy", &file_arg], &preset, "benchscale VM destroy")?;
            r.bs_preset.push(up.secs());
            line.push_str(&format!("; domain type preset: apply {:.2}s", up.secs()));
        }
        let floor = vm::VmFloor::new(&floor_lab, &ctx.scratch.join("vm-floor"), &r.domain_type)?;
        let result = floor.up(LIMIT);
        if let Some(boot) = vm::boot_uptime(&floor.logs()) {
            r.floor_boot.push(boot);
        }
        let down = floor.down();
        let up = result?;
        let down = down?;
        r.floor.push(up.as_secs_f64());
        r.floor_down.push(down.as_secs_f64());
        say(format!(
            "{line}; floor: up {:.2}s, down {:.2}s",
            up.as_secs_f64(),
            down.as_secs_f64()
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// offline
// ---------------------------------------------------------------------------

fn offline(ctx: &Ctx, sizes: &[usize], runs: usize) -> Vec<OfflineResult> {
    let mut out = Vec::new();
    for &nodes in sizes {
        let mut r = offline_one(nodes, runs);
        let text = offline_text(nodes);
        if let Ok(file) = ctx.write(&format!("bench-offline-{nodes}.yaml"), &text) {
            let file_arg = file.display().to_string();
            for _ in 0..runs {
                if let Ok(m) = ctx.run_bs(&["validate", &file_arg], &[], "benchscale validate") {
                    r.binary.push(m.secs());
                    r.binary_rss = r.binary_rss.max(m.max_rss_kib);
                }
            }
        }
        say(format!(
            "[offline, {nodes} nodes] validate + plan {:.1} ms in process; `benchscale validate` {:.1} ms",
            r.total.median().unwrap_or_default() * 1e3,
            r.binary.median().unwrap_or_default() * 1e3
        ));
        out.push(r);
    }
    out
}

fn offline_networks(nodes: usize) -> usize {
    nodes.div_ceil(200).max(NETWORKS)
}

fn offline_text(nodes: usize) -> String {
    let mut shape = Shape::containers("bench-offline", nodes, offline_networks(nodes));
    shape.second_octet = 252;
    benchscale::synth::topology(&shape)
}

/// Validate (parse, schema, resolve, cycles) and plan (diff against an
/// empty lab, as a first apply sees it) in this process.
fn offline_one(nodes: usize, runs: usize) -> OfflineResult {
    let text = offline_text(nodes);
    let path = Path::new("bench-offline.yaml");
    let empty = Observed::default();
    let mut r = OfflineResult {
        nodes,
        networks: offline_networks(nodes),
        bytes: text.len(),
        ..OfflineResult::default()
    };
    // Warm-up: the schema's one-time compilation.
    let _ = load_str(path, &text, &AnyFile);
    for _ in 0..runs {
        let t0 = Instant::now();
        let topology = load_str(path, &text, &AnyFile).expect("a generated topology validates");
        let t1 = Instant::now();
        let plan = benchscale::plan::diff(&topology, &empty, None);
        let t2 = Instant::now();
        assert_eq!(plan.nodes.len(), nodes, "every node is planned");
        std::hint::black_box(&plan);
        r.validate.push((t1 - t0).as_secs_f64());
        r.plan.push((t2 - t1).as_secs_f64());
        r.total.push((t2 - t0).as_secs_f64());
    }
    r
}
