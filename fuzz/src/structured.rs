//! A topology-shaped document built by `arbitrary`, rendered to YAML text.
//!
//! Names come mostly from a small pool so that references (`depends_on`,
//! `networks`, `${{ nodes.<n>.ip.<net> }}`, outputs) often point at things
//! that exist; every scalar can also be raw fuzz text. Scalars are written as
//! double-quoted YAML strings, so the text is well-formed YAML unless a raw
//! fragment is spliced in on purpose (`Lab::tail`).

use std::fmt::Write as _;

use libfuzzer_sys::arbitrary::{self, Arbitrary};

const NAMES: [&str; 10] = [
    "a", "b", "c", "web", "db", "lan", "wan", "n-1", "relay-net", "x",
];
const WORDS: [&str; 12] = [
    "benchscale/busybox:latest",
    "debian-12.qcow2",
    "sh",
    "-c",
    "true",
    "login:",
    "^ready$",
    "files/a.deb",
    "/tmp/a.deb",
    "0644",
    "root",
    "token",
];
const UNITS: [&str; 7] = ["ms", "s", "m", "h", "", "d", "us"];

#[derive(Arbitrary, Debug)]
pub enum Name {
    Pool(u8),
    Raw(String),
}

impl Name {
    fn text(&self) -> String {
        match self {
            Name::Pool(i) => NAMES[*i as usize % NAMES.len()].to_string(),
            Name::Raw(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
pub enum Expr {
    Ip(Name, Name),
    Output(Name, Name),
    LabName,
    Raw(String),
}

impl Expr {
    fn text(&self) -> String {
        match self {
            Expr::Ip(node, net) => format!("${{{{ nodes.{}.ip.{} }}}}", node.text(), net.text()),
            Expr::Output(node, out) => {
                format!("${{{{ nodes.{}.outputs.{} }}}}", node.text(), out.text())
            }
            Expr::LabName => "${{ lab.name }}".to_string(),
            Expr::Raw(s) => format!("${{{{{s}}}}}"),
        }
    }
}

#[derive(Arbitrary, Debug)]
pub enum Scalar {
    Word(u8),
    Expr(Expr),
    Mixed(String, Expr, String),
    Raw(String),
    Number(i64),
    Bool(bool),
}

impl Scalar {
    /// The scalar as a YAML value: quoted text, or a bare number/bool.
    fn yaml(&self) -> String {
        match self {
            Scalar::Word(i) => quote(WORDS[*i as usize % WORDS.len()]),
            Scalar::Expr(e) => quote(&e.text()),
            Scalar::Mixed(a, e, b) => quote(&format!("{a}{}{b}", e.text())),
            Scalar::Raw(s) => quote(s),
            Scalar::Number(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Arbitrary, Debug)]
pub struct Subnet {
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    prefix: u8,
    canonical: bool,
}

impl Subnet {
    fn text(&self) -> String {
        if self.canonical {
            format!("10.{}.{}.0/24", self.b, self.c)
        } else {
            format!("{}.{}.{}.{}/{}", self.a, self.b, self.c, self.d, self.prefix % 40)
        }
    }
}

#[derive(Arbitrary, Debug)]
pub enum Ip {
    /// A host in the n-th network's subnet (when that subnet is canonical).
    InNet(u8, u8),
    Raw(u8, u8, u8, u8),
    Expr(Expr),
    Text(String),
}

#[derive(Arbitrary, Debug)]
pub struct Network {
    name: Name,
    subnet: Option<Subnet>,
    gateway: Option<Ip>,
    nat: Option<bool>,
    dhcp: Option<bool>,
}

#[derive(Arbitrary, Debug)]
pub enum Kind {
    Container,
    Vm,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
pub enum Attach {
    List(Vec<Name>),
    Map(Vec<(Name, Option<Ip>)>),
}

#[derive(Arbitrary, Debug)]
pub enum Condition {
    Created,
    Started,
    Healthy,
    Provisioned,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
pub enum Deps {
    List(Vec<Name>),
    Map(Vec<(Name, Condition)>),
}

#[derive(Arbitrary, Debug)]
pub enum Duration {
    Good(u16, u8),
    Raw(String),
}

impl Duration {
    fn yaml(&self) -> String {
        match self {
            Duration::Good(n, u) => quote(&format!("{n}{}", UNITS[*u as usize % UNITS.len()])),
            Duration::Raw(s) => quote(s),
        }
    }
}

#[derive(Arbitrary, Debug)]
pub enum Run {
    Shell(Scalar),
    Argv(Vec<Scalar>),
}

impl Run {
    fn yaml(&self) -> String {
        match self {
            Run::Shell(s) => s.yaml(),
            Run::Argv(v) => flow_list(v.iter().take(6).map(Scalar::yaml)),
        }
    }
}

#[derive(Arbitrary, Debug)]
pub enum HealthCond {
    Console(Scalar),
    Tcp(u16, Option<Name>),
    Ssh(bool),
    Exec(Run),
    Http(u16, Option<Scalar>, Option<u16>),
    DockerHealth,
}

impl HealthCond {
    fn yaml(&self) -> String {
        match self {
            HealthCond::Console(p) => format!("console: {{ pattern: {} }}", p.yaml()),
            HealthCond::Tcp(port, net) => match net {
                Some(n) => format!("tcp: {{ port: {port}, network: {} }}", quote(&n.text())),
                None => format!("tcp: {{ port: {port} }}"),
            },
            HealthCond::Ssh(true) => "ssh:".to_string(),
            HealthCond::Ssh(false) => "ssh: {}".to_string(),
            HealthCond::Exec(run) => format!("exec: {{ run: {} }}", run.yaml()),
            HealthCond::Http(port, path, status) => {
                let mut s = format!("http: {{ port: {port}");
                if let Some(p) = path {
                    let _ = write!(s, ", path: {}", p.yaml());
                }
                if let Some(st) = status {
                    let _ = write!(s, ", status: {st}");
                }
                s.push_str(" }");
                s
            }
            HealthCond::DockerHealth => "docker_health: {}".to_string(),
        }
    }
}

#[derive(Arbitrary, Debug)]
pub struct Health {
    cond: Option<HealthCond>,
    second: Option<HealthCond>,
    timeout: Option<Duration>,
    interval: Option<Duration>,
    start_period: Option<Duration>,
}

#[derive(Arbitrary, Debug)]
pub enum StepBody {
    Run(Run),
    Copy(Scalar, Scalar, Option<Scalar>),
    Both(Run, Scalar, Scalar),
    Neither,
}

#[derive(Arbitrary, Debug)]
pub struct Step {
    name: Option<Scalar>,
    body: StepBody,
    capture: Option<Name>,
    timeout: Option<Duration>,
    retries: Option<i64>,
    user: Option<Scalar>,
}

#[derive(Arbitrary, Debug)]
pub struct Boot {
    kernel: Scalar,
    initrd: Option<Scalar>,
    cmdline: Option<Scalar>,
}

#[derive(Arbitrary, Debug)]
pub struct Node {
    name: Name,
    kind: Option<Kind>,
    /// Use `<<: *defaults` (when the lab defines the anchor).
    merge: bool,
    image: Option<Scalar>,
    command: Option<Vec<Scalar>>,
    env: Vec<(Name, Scalar)>,
    boot: Option<Boot>,
    memory_mib: Option<i64>,
    vcpus: Option<i64>,
    disk_gib: Option<i64>,
    cloud_init: Option<Scalar>,
    networks: Option<Attach>,
    depends_on: Option<Deps>,
    health: Vec<Health>,
    provision: Vec<Step>,
    unknown: Option<(Name, Scalar)>,
}

#[derive(Arbitrary, Debug)]
pub struct Lab {
    /// Raw text appended at the end, one time in eight: anything goes there.
    tail: Option<String>,
    tail_gate: u8,
    version: Option<u8>,
    name: Name,
    description: Option<Scalar>,
    container_image: Option<Scalar>,
    vm_image: Option<Scalar>,
    /// Define `x-defaults: &defaults { ... }` for nodes to merge.
    anchor: Option<Vec<(Name, Scalar)>>,
    networks: Vec<Network>,
    nodes: Vec<Node>,
}

impl Lab {
    /// Renders the document as YAML text.
    pub fn to_yaml(&self) -> String {
        let mut y = String::new();
        if let Some(v) = self.version {
            let _ = writeln!(y, "version: {}", v % 3);
        }
        let _ = writeln!(y, "name: {}", quote(&self.name.text()));
        if let Some(d) = &self.description {
            let _ = writeln!(y, "description: {}", d.yaml());
        }
        if let Some(entries) = &self.anchor {
            // Unknown top-level key: reported, but not blocking.
            y.push_str("x-defaults: &defaults\n");
            if entries.is_empty() {
                y.push_str("  {}\n");
            }
            for (k, v) in entries.iter().take(4) {
                let _ = writeln!(y, "  {}: {}", quote(&k.text()), v.yaml());
            }
        }
        if self.container_image.is_some() || self.vm_image.is_some() {
            y.push_str("defaults:\n");
            if let Some(i) = &self.container_image {
                let _ = writeln!(y, "  container:\n    image: {}", i.yaml());
            }
            if let Some(i) = &self.vm_image {
                let _ = writeln!(y, "  vm:\n    image: {}", i.yaml());
            }
        }
        let networks: Vec<&Network> = self.networks.iter().take(4).collect();
        if !networks.is_empty() {
            y.push_str("networks:\n");
        }
        for n in &networks {
            let _ = writeln!(y, "  {}:", quote(&n.name.text()));
            let mut empty = true;
            if let Some(s) = &n.subnet {
                let _ = writeln!(y, "    subnet: {}", quote(&s.text()));
                empty = false;
            }
            if let Some(g) = &n.gateway {
                let _ = writeln!(y, "    gateway: {}", ip_yaml(g, &networks));
                empty = false;
            }
            if let Some(b) = n.nat {
                let _ = writeln!(y, "    nat: {b}");
                empty = false;
            }
            if let Some(b) = n.dhcp {
                let _ = writeln!(y, "    dhcp: {b}");
                empty = false;
            }
            if empty {
                y.push_str("    {}\n");
            }
        }
        let nodes: Vec<&Node> = self.nodes.iter().take(6).collect();
        if !nodes.is_empty() {
            y.push_str("nodes:\n");
        }
        for node in nodes {
            node.render(&mut y, &networks, self.anchor.is_some());
        }
        if let Some(tail) = &self.tail {
            if self.tail_gate % 8 == 0 {
                y.push_str(tail);
            }
        }
        y
    }
}

impl Node {
    fn render(&self, y: &mut String, networks: &[&Network], anchor: bool) {
        let _ = writeln!(y, "  {}:", quote(&self.name.text()));
        let start = y.len();
        if self.merge && anchor {
            y.push_str("    <<: *defaults\n");
        }
        match &self.kind {
            Some(Kind::Container) => y.push_str("    kind: container\n"),
            Some(Kind::Vm) => y.push_str("    kind: vm\n"),
            Some(Kind::Raw(s)) => {
                let _ = writeln!(y, "    kind: {}", quote(s));
            }
            None => {}
        }
        if let Some(i) = &self.image {
            let _ = writeln!(y, "    image: {}", i.yaml());
        }
        if let Some(c) = &self.command {
            let _ = writeln!(y, "    command: {}", flow_list(c.iter().take(6).map(Scalar::yaml)));
        }
        if !self.env.is_empty() {
            y.push_str("    env:\n");
            for (k, v) in self.env.iter().take(4) {
                let _ = writeln!(y, "      {}: {}", quote(&k.text()), v.yaml());
            }
        }
        if let Some(b) = &self.boot {
            let _ = writeln!(y, "    boot:\n      kernel: {}", b.kernel.yaml());
            if let Some(i) = &b.initrd {
                let _ = writeln!(y, "      initrd: {}", i.yaml());
            }
            if let Some(c) = &b.cmdline {
                let _ = writeln!(y, "      cmdline: {}", c.yaml());
            }
        }
        for (key, v) in [
            ("memory_mib", self.memory_mib),
            ("vcpus", self.vcpus),
            ("disk_gib", self.disk_gib),
        ] {
            if let Some(v) = v {
                let _ = writeln!(y, "    {key}: {v}");
            }
        }
        if let Some(u) = &self.cloud_init {
            let _ = writeln!(y, "    cloud_init:\n      user_data: {}", u.yaml());
        }
        match &self.networks {
            Some(Attach::List(names)) => {
                let _ = writeln!(
                    y,
                    "    networks: {}",
                    flow_list(names.iter().take(4).map(|n| quote(&n.text())))
                );
            }
            Some(Attach::Map(entries)) => {
                y.push_str("    networks:\n");
                if entries.is_empty() {
                    y.push_str("      {}\n");
                }
                for (n, ip) in entries.iter().take(4) {
                    match ip {
                        Some(ip) => {
                            let _ = writeln!(
                                y,
                                "      {}: {{ ip: {} }}",
                                quote(&n.text()),
                                ip_yaml(ip, networks)
                            );
                        }
                        None => {
                            let _ = writeln!(y, "      {}:", quote(&n.text()));
                        }
                    }
                }
            }
            None => {}
        }
        match &self.depends_on {
            Some(Deps::List(names)) => {
                let _ = writeln!(
                    y,
                    "    depends_on: {}",
                    flow_list(names.iter().take(4).map(|n| quote(&n.text())))
                );
            }
            Some(Deps::Map(entries)) => {
                y.push_str("    depends_on:\n");
                if entries.is_empty() {
                    y.push_str("      {}\n");
                }
                for (n, c) in entries.iter().take(4) {
                    let c = match c {
                        Condition::Created => "created".to_string(),
                        Condition::Started => "started".to_string(),
                        Condition::Healthy => "healthy".to_string(),
                        Condition::Provisioned => "provisioned".to_string(),
                        Condition::Raw(s) => quote(s),
                    };
                    let _ = writeln!(y, "      {}: {c}", quote(&n.text()));
                }
            }
            None => {}
        }
        if !self.health.is_empty() {
            y.push_str("    health:\n");
            for h in self.health.iter().take(3) {
                let mut lines = Vec::new();
                if let Some(c) = &h.cond {
                    lines.push(c.yaml());
                }
                if let Some(c) = &h.second {
                    lines.push(c.yaml());
                }
                for (key, d) in [
                    ("timeout", &h.timeout),
                    ("interval", &h.interval),
                    ("start_period", &h.start_period),
                ] {
                    if let Some(d) = d {
                        lines.push(format!("{key}: {}", d.yaml()));
                    }
                }
                list_item(y, "      ", &lines);
            }
        }
        if !self.provision.is_empty() {
            y.push_str("    provision:\n");
            for s in self.provision.iter().take(4) {
                let mut lines = Vec::new();
                if let Some(n) = &s.name {
                    lines.push(format!("name: {}", n.yaml()));
                }
                match &s.body {
                    StepBody::Run(r) => lines.push(format!("run: {}", r.yaml())),
                    StepBody::Copy(src, dest, mode) => {
                        let mut c = format!("copy: {{ src: {}, dest: {}", src.yaml(), dest.yaml());
                        if let Some(m) = mode {
                            let _ = write!(c, ", mode: {}", m.yaml());
                        }
                        c.push_str(" }");
                        lines.push(c);
                    }
                    StepBody::Both(r, src, dest) => {
                        lines.push(format!("run: {}", r.yaml()));
                        lines.push(format!("copy: {{ src: {}, dest: {} }}", src.yaml(), dest.yaml()));
                    }
                    StepBody::Neither => {}
                }
                if let Some(c) = &s.capture {
                    lines.push(format!("capture: {}", quote(&c.text())));
                }
                if let Some(d) = &s.timeout {
                    lines.push(format!("timeout: {}", d.yaml()));
                }
                if let Some(r) = s.retries {
                    lines.push(format!("retries: {r}"));
                }
                if let Some(u) = &s.user {
                    lines.push(format!("user: {}", u.yaml()));
                }
                list_item(y, "      ", &lines);
            }
        }
        if let Some((k, v)) = &self.unknown {
            let _ = writeln!(y, "    {}: {}", quote(&k.text()), v.yaml());
        }
        if y.len() == start {
            y.push_str("    {}\n");
        }
    }
}

/// One block-sequence item made of `key: value` lines.
fn list_item(y: &mut String, indent: &str, lines: &[String]) {
    if lines.is_empty() {
        let _ = writeln!(y, "{indent}- {{}}");
        return;
    }
    for (i, line) in lines.iter().enumerate() {
        let lead = if i == 0 { "- " } else { "  " };
        let _ = writeln!(y, "{indent}{lead}{line}");
    }
}

fn ip_yaml(ip: &Ip, networks: &[&Network]) -> String {
    match ip {
        Ip::InNet(n, host) => {
            let subnet = networks
                .get(*n as usize % networks.len().max(1))
                .and_then(|n| n.subnet.as_ref());
            match subnet {
                Some(s) if s.canonical => quote(&format!("10.{}.{}.{host}", s.b, s.c)),
                Some(s) => quote(&format!("{}.{}.{}.{host}", s.a, s.b, s.c)),
                None => quote(&format!("10.0.0.{host}")),
            }
        }
        Ip::Raw(a, b, c, d) => quote(&format!("{a}.{b}.{c}.{d}")),
        Ip::Expr(e) => quote(&e.text()),
        Ip::Text(s) => quote(s),
    }
}

fn flow_list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    format!("[{}]", items.join(", "))
}

/// A YAML double-quoted scalar holding exactly `s`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            // Non-printable in YAML's sense: escape them all.
            c if matches!(c as u32, 0x80..=0x9f | 0xd800..=0xdfff | 0xfffe | 0xffff)
                || c == '\u{feff}' =>
            {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
