//! What conditions cost an apply: a lab with conditions on every
//! attachment against the same lab without, and what the no-change apply
//! touches (Docker API calls, kernel commands, kernel state).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::Path;

use benchscale::synth::PlainLab;
use serde_json::Value;

use crate::run::{Samples, capture};
use crate::{Ctx, PREFIX, arg, running, say};

/// Containers of the cost lab, and its networks.
pub const NODES: usize = 30;
pub const NETWORKS: usize = 2;
/// What each node sends on each network.
pub const NETWORK_SETS: [&str; NETWORKS] = [
    "{ delay: 10ms, jitter: 1ms, loss: 0.1%, rate: 100mbit }",
    "{ delay: 5ms, loss: 0.2%, rate: 200mbit }",
];
/// Every `OWN`-th node sends on its first network with its own set and
/// receives there through an ingress rate.
pub const OWN: usize = 3;
pub const OWN_SET: &str = "{ delay: 20ms, jitter: 2ms, rate: 50mbit }";
pub const INGRESS: &str = "{ rate: 50mbit }";

/// The cost results.
#[derive(Debug, Default)]
pub struct Cost {
    pub base_cold: Samples,
    pub base_nochange: Samples,
    pub base_destroy: Samples,
    pub cold: Samples,
    pub nochange: Samples,
    pub destroy: Samples,
    /// One line per no-change apply of the conditioned lab: what differed
    /// in the kernel (empty: nothing).
    pub kernel: Vec<KernelCheck>,
    /// Objects of the lab in the kernel after its cold apply.
    pub objects: Option<Objects>,
    /// The counted no-change apply: Docker calls by endpoint and how many
    /// mutate.
    pub calls: Option<(BTreeMap<String, usize>, usize)>,
    /// The counted no-change apply's kernel commands.
    pub commands: Option<Commands>,
    /// Daemon failures the run went on after (see `STALE_ENDPOINT`).
    pub incidents: Vec<String>,
}

/// The kernel before and after one no-change apply.
#[derive(Debug, Default)]
pub struct KernelCheck {
    /// Lines of the whole snapshot that differ.
    pub all: Vec<String>,
    /// Of those, the lines of this lab's objects.
    pub ours: Vec<String>,
}

/// How many kernel objects the conditioned lab has.
#[derive(Debug, Default, Clone)]
pub struct Objects {
    pub ifbs: usize,
    pub qdiscs: usize,
    pub rules: usize,
    pub delay_line: bool,
}

/// The kernel commands of one run, from the wrappers' log.
#[derive(Debug, Default)]
pub struct Commands {
    pub total: usize,
    pub mutating: Vec<String>,
    /// By tool and first words: `tc qdisc show` → 60.
    pub kinds: BTreeMap<String, usize>,
    /// From the first command's start to the last one's.
    pub span_s: f64,
    pub wall_s: f64,
}

/// The lab of `NODES` containers, with or without conditions.
pub fn topology(lab: &PlainLab, conditioned: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "name: {}\ndefaults:\n  container:\n    image: {}\n    command: [\"sleep\", \"86400\"]\nnetworks:",
        lab.lab, lab.image
    );
    for k in 0..lab.networks {
        let _ = writeln!(
            out,
            "  {}:\n    subnet: {}",
            PlainLab::network_name(k),
            lab.subnet(k)
        );
        if conditioned {
            let _ = writeln!(out, "    conditions: {}", NETWORK_SETS[k % NETWORKS]);
        }
    }
    out.push_str("nodes:\n");
    for i in 0..lab.nodes {
        let _ = writeln!(
            out,
            "  {}:\n    kind: container\n    networks:",
            PlainLab::node_name(i)
        );
        for (n, (k, ip)) in lab.attachments_of(i).into_iter().enumerate() {
            let own = if conditioned && n == 0 && i % OWN == 0 {
                format!(", conditions: {OWN_SET}, ingress: {INGRESS}")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "      {}: {{ ip: {ip}{own} }}",
                PlainLab::network_name(k)
            );
        }
    }
    out
}

fn plain(ctx: &Ctx, which: &str) -> PlainLab {
    let n = ctx.next();
    let mut lab = PlainLab::new(&format!("{PREFIX}{which}{n}-{}", ctx.tag), NODES, NETWORKS);
    lab.second_octet = 254;
    // Fresh subnets for every lab, none that a network uses (one the
    // daemon failed to remove keeps its subnet until dockerd restarts).
    // 10.254.250 and up is the accuracy lab's.
    let used = used_thirds();
    lab.third_octet = (0..240u8)
        .step_by(NETWORKS)
        .find(|t| (*t..*t + NETWORKS as u8).all(|x| !used.contains(&x)))
        .unwrap_or(0);
    lab
}

/// The third octets of the 10.254.X.0/24 subnets networks use.
fn used_thirds() -> BTreeSet<u8> {
    let ids = capture("docker", &["network", "ls", "-q"]);
    let mut args = vec![
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    args.extend(ids.lines());
    capture("docker", &args)
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("10.254.")?.split('.').next()?.parse().ok())
        .collect()
}

/// What Docker says when it refuses to remove a network that no container
/// is attached to any more: its own race between a forced removal and the
/// container's exit handling (moby/moby#42119), as in the lab benchmark.
const STALE_ENDPOINT: &str = "has active endpoints";

pub fn run(ctx: &Ctx, r: &mut Cost) -> Result<(), String> {
    let runs = ctx.settings.runs;
    for i in 1..=runs {
        // Alternate which lab goes first, so that neither always meets a
        // daemon still busy with the other's removal.
        let order = if i % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        for conditioned in order {
            one(ctx, r, conditioned, &format!("[run {i}/{runs}]"))?;
        }
    }
    Ok(())
}

fn one(ctx: &Ctx, r: &mut Cost, conditioned: bool, tag: &str) -> Result<(), String> {
    let lab = plain(ctx, if conditioned { "cost" } else { "base" });
    let file = ctx.write(&format!("{}.yaml", lab.lab), &topology(&lab, conditioned))?;
    let file = arg(&file);
    let cold = ctx.run(&["apply", &file], &[], "cold apply")?;
    if running(&lab.lab) != NODES {
        return Err(format!("{}: not all {NODES} containers run", lab.lab));
    }
    let before = conditioned.then(|| Snapshot::take(&lab.lab));
    if let Some(s) = &before {
        let objects = s.objects();
        if !objects.delay_line || objects.ifbs == 0 {
            return Err(format!(
                "{}: no conditions in the kernel: {objects:?}",
                lab.lab
            ));
        }
        r.objects.get_or_insert(objects);
    }
    let nochange = ctx.run(&["apply", &file], &[], "no-change apply")?;
    if !nochange.stdout.contains("no changes") {
        return Err(format!(
            "the second apply changed something: {}",
            nochange.stdout
        ));
    }
    if let Some(before) = &before {
        let after = Snapshot::take(&lab.lab);
        r.kernel.push(before.compare(&after));
        if r.calls.is_none() {
            let (calls, commands) = counted(ctx, &file)?;
            r.calls = Some(calls);
            r.commands = Some(commands);
            r.kernel.push(after.compare(&Snapshot::take(&lab.lab)));
        }
    }
    let destroy = ctx.run_raw(&["destroy", &file], &[])?;
    if running(&lab.lab) != 0 {
        return Err(format!("{}: containers left after destroy", lab.lab));
    }
    let text = format!("{}{}", destroy.stdout, destroy.stderr);
    if destroy.code != Some(0) && text.contains(STALE_ENDPOINT) {
        // Its time still counts: every container is gone.
        let line = text.lines().find(|l| l.contains(STALE_ENDPOINT));
        r.incidents.push(format!(
            "destroy of {}: {}",
            lab.lab,
            line.unwrap_or_default().trim()
        ));
    }
    let destroy = if text.contains(STALE_ENDPOINT) {
        destroy
    } else {
        destroy.ok("destroy")?
    };
    say(format!(
        "{tag} {}: cold {:.2}s, no-change {:.2}s, destroy {:.2}s",
        if conditioned {
            "conditions"
        } else {
            "baseline"
        },
        cold.secs(),
        nochange.secs(),
        destroy.secs()
    ));
    let (c, n, d) = if conditioned {
        (&mut r.cold, &mut r.nochange, &mut r.destroy)
    } else {
        (&mut r.base_cold, &mut r.base_nochange, &mut r.base_destroy)
    };
    c.push(cold.secs());
    n.push(nochange.secs());
    d.push(destroy.secs());
    Ok(())
}

/// Docker API calls by kind, and how many of them mutate.
type DockerCalls = (BTreeMap<String, usize>, usize);

/// A no-change apply through the recording Docker proxy, with `tc`, `ip`
/// and `iptables` wrapped on its `PATH` to log what it runs.
fn counted(ctx: &Ctx, file: &str) -> Result<(DockerCalls, Commands), String> {
    let scratch = &ctx.tools.scratch;
    let bin = scratch.join("wrapped");
    let log = scratch.join("commands.log");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&log);
    for tool in ["tc", "ip", "iptables"] {
        let real = capture("sh", &["-c", &format!("command -v {tool}")]);
        if !real.starts_with('/') {
            return Err(format!("{tool} is not installed"));
        }
        let script = format!(
            "#!/bin/sh\necho \"$(date +%s.%N) {tool} $*\" >> '{}'\nexec {real} \"$@\"\n",
            log.display()
        );
        let path = bin.join(tool);
        std::fs::write(&path, script).map_err(|e| e.to_string())?;
        make_executable(&path)?;
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let proxy = crate::proxy::Proxy::start(
        &ctx.rt,
        &scratch.join("docker-proxy.sock"),
        Path::new("/var/run/docker.sock"),
    )
    .map_err(|e| format!("start the proxy: {e}"))?;
    let url = proxy.url();
    let run = ctx.run(
        &["apply", file],
        &[("BENCHSCALE_DOCKER_HOST", url.as_str()), ("PATH", &path)],
        "no-change apply (counted)",
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
    let mut commands = commands(&std::fs::read_to_string(&log).unwrap_or_default());
    commands.wall_s = run.secs();
    Ok(((by_key, mutating), commands))
}

fn make_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Words that make a `tc`, `ip` or `iptables` command change something.
const MUTATING: [&str; 15] = [
    "add", "set", "del", "delete", "change", "replace", "flush", "-A", "-I", "-D", "-N", "-X",
    "-F", "-R", "-Z",
];

/// Reads the wrappers' log: `SECONDS TOOL ARGS…` a line.
fn commands(log: &str) -> Commands {
    let mut c = Commands::default();
    let mut times = Vec::new();
    for line in log.lines() {
        let mut words = line.split_whitespace();
        let (Some(t), Some(tool)) = (words.next(), words.next()) else {
            continue;
        };
        let args: Vec<&str> = words.collect();
        times.extend(t.parse::<f64>().ok());
        c.total += 1;
        if args.iter().any(|a| MUTATING.contains(a)) {
            c.mutating.push(format!("{tool} {}", args.join(" ")));
        }
        let kind: Vec<&str> = std::iter::once(tool)
            .chain(args.iter().copied().filter(|a| !a.starts_with('-')).take(2))
            .collect();
        *c.kinds.entry(kind.join(" ")).or_insert(0) += 1;
    }
    if let (Some(lo), Some(hi)) = (
        times.iter().copied().reduce(f64::min),
        times.iter().copied().reduce(f64::max),
    ) {
        c.span_s = hi - lo;
    }
    c
}

/// The kernel's conditions state, one object a line: ifb devices, qdiscs,
/// mangle rules, and the lab's delay line.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    lab: String,
    ifbs: Vec<String>,
    qdiscs: Vec<String>,
    rules: Vec<String>,
    delay_line: Option<u32>,
    /// The host side veths of the lab's containers.
    veths: BTreeSet<String>,
}

/// Each element of a JSON array as one compact line.
fn json_lines(text: &str) -> Vec<String> {
    match serde_json::from_str(text) {
        Ok(Value::Array(items)) => items.iter().map(Value::to_string).collect(),
        _ => vec![format!("unreadable: {}", text.trim())],
    }
}

impl Snapshot {
    pub fn take(lab: &str) -> Snapshot {
        let bridges: BTreeSet<String> = capture(
            "docker",
            &[
                "network",
                "ls",
                "-q",
                "--no-trunc",
                "--filter",
                &format!("label={}={lab}", benchscale::backend::LABEL_LAB),
            ],
        )
        .lines()
        .filter_map(|id| id.get(..12).map(|s| format!("br-{s}")))
        .collect();
        let veths = json_lines(&capture("ip", &["-j", "link", "show", "type", "veth"]))
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["master"].as_str().is_some_and(|m| bridges.contains(m)))
            .filter_map(|v| v["ifname"].as_str().map(str::to_owned))
            .collect();
        Snapshot {
            lab: lab.to_string(),
            ifbs: json_lines(&capture("ip", &["-d", "-j", "link", "show", "type", "ifb"])),
            qdiscs: json_lines(&capture("tc", &["-j", "qdisc", "show"])),
            rules: capture("iptables", &["-w", "-t", "mangle", "-S"])
                .lines()
                .map(str::to_owned)
                .collect(),
            delay_line: benchscale::conditions::delay_line::find(lab).map(|r| r.pid),
            veths,
        }
    }

    fn lines(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self
            .ifbs
            .iter()
            .map(|l| format!("ifb {l}"))
            .chain(self.qdiscs.iter().map(|l| format!("qdisc {l}")))
            .chain(self.rules.iter().map(|l| format!("rule {l}")))
            .collect();
        all.insert(format!("delay line pid {:?}", self.delay_line));
        all
    }

    /// This lab's ifb names.
    fn our_ifbs(&self) -> BTreeSet<String> {
        let mark = format!("lab={} ", self.lab);
        self.ifbs
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["ifalias"].as_str().is_some_and(|a| a.contains(&mark)))
            .filter_map(|v| v["ifname"].as_str().map(str::to_owned))
            .collect()
    }

    /// This lab's mangle chains: the targets of the rules that carry its
    /// mark.
    fn our_chains(&self) -> BTreeSet<String> {
        let mark = format!("benchscale lab={}", self.lab);
        self.rules
            .iter()
            .filter(|l| l.contains(&mark))
            .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "-j").nth(1))
            .map(str::to_owned)
            .collect()
    }

    /// Whether a line of [`Snapshot::lines`] is about this lab.
    fn is_ours(&self, line: &str, devices: &BTreeSet<String>, chains: &BTreeSet<String>) -> bool {
        let mark = format!("lab={}", self.lab);
        line.starts_with("delay line")
            || line.contains(&mark)
            || devices.iter().any(|d| line.contains(&format!("\"{d}\"")))
            || chains
                .iter()
                .any(|c| line.split_whitespace().any(|w| w == c))
    }

    pub fn objects(&self) -> Objects {
        let ifbs = self.our_ifbs();
        let devices: BTreeSet<String> = ifbs.union(&self.veths).cloned().collect();
        let chains = self.our_chains();
        Objects {
            ifbs: ifbs.len(),
            qdiscs: self
                .qdiscs
                .iter()
                .filter(|l| devices.iter().any(|d| l.contains(&format!("\"{d}\""))))
                .count(),
            rules: self
                .rules
                .iter()
                .filter(|l| self.is_ours(&format!("rule {l}"), &BTreeSet::new(), &chains))
                .count(),
            delay_line: self.delay_line.is_some(),
        }
    }

    /// The lines that differ between `self` and `after`, all and this
    /// lab's.
    pub fn compare(&self, after: &Snapshot) -> KernelCheck {
        let (a, b) = (self.lines(), after.lines());
        let all: Vec<String> = a
            .difference(&b)
            .map(|l| format!("- {l}"))
            .chain(b.difference(&a).map(|l| format!("+ {l}")))
            .collect();
        let devices: BTreeSet<String> = self
            .our_ifbs()
            .into_iter()
            .chain(after.our_ifbs())
            .chain(self.veths.iter().cloned())
            .chain(after.veths.iter().cloned())
            .collect();
        let chains: BTreeSet<String> = self
            .our_chains()
            .union(&after.our_chains())
            .cloned()
            .collect();
        let ours = all
            .iter()
            .filter(|l| self.is_ours(&l[2..], &devices, &chains))
            .cloned()
            .collect();
        KernelCheck { all, ours }
    }
}

/// Checks of the pure parts.
pub fn self_check() {
    let lab = PlainLab::new("bench-cond-x", NODES, NETWORKS);
    let with = topology(&lab, true);
    let without = topology(&lab, false);
    for text in [&with, &without] {
        benchscale::topology::load_str(
            Path::new("bench.yaml"),
            text,
            &benchscale::topology::AnyFile,
        )
        .expect("the cost lab is valid");
    }
    assert_eq!(with.matches("ingress:").count(), NODES.div_ceil(OWN));
    assert!(!without.contains("conditions"));
    let c = commands(
        "1.5 tc -j qdisc show dev x\n2.0 iptables -w -t mangle -S\n2.25 tc qdisc replace dev x root tbf\n",
    );
    assert_eq!((c.total, c.mutating.len(), c.span_s), (3, 1, 0.75));
    assert_eq!(c.kinds["tc qdisc show"], 1);
    let before = Snapshot {
        lab: "l".into(),
        ifbs: vec![r#"{"ifname":"bs1","ifalias":"benchscale lab=l node=a network=n"}"#.into()],
        qdiscs: vec![
            r#"{"dev":"bs1","kind":"tbf"}"#.into(),
            r#"{"dev":"other","kind":"tbf"}"#.into(),
        ],
        rules: vec![
            "-A FORWARD -m comment --comment \"benchscale lab=l\" -j BS-1-E".into(),
            "-A BS-1-E -j NFQUEUE".into(),
        ],
        delay_line: Some(7),
        veths: BTreeSet::new(),
    };
    assert!(before.compare(&before).all.is_empty());
    let mut after = before.clone();
    after.qdiscs[1] = r#"{"dev":"other","kind":"htb"}"#.into();
    after.rules[1] = "-A BS-1-E -j DROP".into();
    let check = before.compare(&after);
    assert_eq!((check.all.len(), check.ours.len()), (4, 2));
    let o = before.objects();
    assert_eq!((o.ifbs, o.qdiscs, o.rules), (1, 1, 2));
}
