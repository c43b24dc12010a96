//! How close measured conditions come to declared ones: two nettest
//! containers on one network, `a` sending with the declared set, `b`
//! answering.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;

use crate::run::Samples;
use crate::{Ctx, PREFIX, arg, running, say};

/// Declared one-way delays of what `a` sends, milliseconds.
pub const DELAYS_MS: [f64; 4] = [1.0, 10.0, 50.0, 200.0];
/// Declared rates of what `a` sends, Mbit/s.
pub const RATES_MBIT: [f64; 3] = [1.0, 10.0, 100.0];
/// Pings per measurement (the first, which may wait for ARP, is left out).
pub const PINGS: usize = 30;
/// Seconds of each iperf3 run, after one left out for slow start.
pub const IPERF_S: u32 = 5;
/// TCP payload per Ethernet frame, as a qdisc counts the frame: a 1500
/// byte IP packet carries 1448 bytes after the IP and TCP headers (with
/// timestamps), and the qdisc also counts the 14 byte Ethernet header.
pub const PAYLOAD_SHARE: f64 = 1448.0 / 1514.0;

const SUBNET: &str = "10.254.250";

/// One throughput measurement through the delay line.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    pub what: String,
    pub mbit: f64,
    /// CPU seconds of the delay line over the run, and the run's seconds.
    pub cpu_s: Option<f64>,
    pub wall_s: f64,
}

#[derive(Debug, Default)]
pub struct Accuracy {
    /// Round trip without conditions, ms (median).
    pub base_rtt: Option<f64>,
    /// Declared one-way delay, measured round trip (median), ms.
    pub delays: Vec<(f64, f64)>,
    /// Declared rate, TCP goodput, Mbit/s.
    pub rates: Vec<(f64, f64)>,
    pub throughput: Vec<Throughput>,
}

/// The lab, with `set` on what `a` sends.
pub fn topology(lab: &str, set: Option<&str>) -> String {
    let own = set.map_or(String::new(), |s| format!(", conditions: {s}"));
    format!(
        "name: {lab}
defaults:
  container:
    image: benchscale/nettest:latest
    command: [\"sleep\", \"86400\"]
networks:
  net:
    subnet: {SUBNET}.0/24
nodes:
  a:
    kind: container
    networks: {{ net: {{ ip: {SUBNET}.10{own} }} }}
  b:
    kind: container
    networks: {{ net: {{ ip: {SUBNET}.11 }} }}
"
    )
}

struct Lab<'a> {
    ctx: &'a Ctx,
    name: String,
    file: PathBuf,
}

impl Lab<'_> {
    fn apply(&self, set: Option<&str>) -> Result<(), String> {
        std::fs::write(&self.file, topology(&self.name, set)).map_err(|e| e.to_string())?;
        self.ctx.run(
            &["apply", &arg(&self.file)],
            &[],
            "apply of the accuracy lab",
        )?;
        Ok(())
    }

    fn exec(&self, node: &str, command: &[&str]) -> Result<String, String> {
        let mut args = vec!["exec", &self.name, node, "--"];
        args.extend(command);
        Ok(self.ctx.run(&args, &[], &command.join(" "))?.stdout)
    }

    /// Median round trip from `a` to `b`, ms.
    fn rtt(&self) -> Result<f64, String> {
        let count = (PINGS + 1).to_string();
        let deadline = (PINGS as f64 * 0.2 + 15.0).to_string();
        let out = self.exec(
            "a",
            &[
                "ping",
                "-c",
                &count,
                "-i",
                "0.2",
                "-w",
                &deadline,
                &format!("{SUBNET}.11"),
            ],
        )?;
        let times = ping_times(&out);
        if times.len() < PINGS / 2 {
            return Err(format!("too few ping replies: {out}"));
        }
        let mut s = Samples::default();
        for t in times.into_iter().skip(1) {
            s.push(t);
        }
        s.median().ok_or_else(|| "no ping replies".into())
    }

    /// iperf3 from `a` to `b`: Mbit/s received, and the run's seconds.
    fn iperf(&self, udp: bool) -> Result<(f64, f64), String> {
        let t = IPERF_S.to_string();
        let server = format!("{SUBNET}.11");
        let mut command = vec!["iperf3", "-c", &server, "-t", &t, "-O", "1", "-J"];
        if udp {
            // As fast as the sender can; 1400 bytes fit one frame.
            command.extend(["-u", "-b", "0", "-l", "1400"]);
        }
        let started = Instant::now();
        let out = self.exec("a", &command)?;
        let wall = started.elapsed().as_secs_f64();
        let bits = received_bits(&out).ok_or_else(|| format!("iperf3 said: {out}"))?;
        Ok((bits / 1e6, wall))
    }
}

/// Each reply's time in busybox ping's output, ms.
fn ping_times(out: &str) -> Vec<f64> {
    out.lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.trim_end_matches(" ms").trim().parse().ok())
        .collect()
}

/// What the receiver got, bits per second, from iperf3's JSON:
/// `sum_received`, or, from an iperf3 without it, what
/// was sent less what was lost.
fn received_bits(json: &str) -> Option<f64> {
    let v: Value = serde_json::from_str(json).ok()?;
    let end = &v["end"];
    if let Some(b) = end["sum_received"]["bits_per_second"].as_f64() {
        return Some(b);
    }
    let sum = &end["sum"];
    let lost = sum["lost_percent"].as_f64().unwrap_or(0.0);
    Some(sum["bits_per_second"].as_f64()? * (1.0 - lost / 100.0))
}

/// CPU seconds (user and system) `pid` has used.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which may hold spaces: utime and
    // stime are fields 14 and 15, so 12 and 13 after the state.
    let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks: f64 = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks / hz as f64)
}

pub fn run(ctx: &Ctx, r: &mut Accuracy) -> Result<(), String> {
    let name = format!("{PREFIX}acc-{}", ctx.tag);
    let lab = Lab {
        ctx,
        file: ctx.tools.scratch.join(format!("{name}.yaml")),
        name,
    };
    let result = measure(&lab, r);
    let destroy = ctx.run(
        &["destroy", &arg(&lab.file)],
        &[],
        "destroy of the accuracy lab",
    );
    result.and(destroy.map(|_| ()))
}

fn measure(lab: &Lab, r: &mut Accuracy) -> Result<(), String> {
    lab.apply(None)?;
    if running(&lab.name) != 2 {
        return Err("the accuracy lab's containers do not run".into());
    }
    lab.exec("b", &["iperf3", "-s", "-D"])?;
    let base = lab.rtt()?;
    r.base_rtt = Some(base);
    say(format!("round trip without conditions: {base:.3} ms"));
    let (mbit, wall) = lab.iperf(false)?;
    r.throughput.push(Throughput {
        what: "TCP, no conditions (no delay line)".into(),
        mbit,
        cpu_s: None,
        wall_s: wall,
    });
    for delay in DELAYS_MS {
        lab.apply(Some(&format!("{{ delay: {delay}ms }}")))?;
        let rtt = lab.rtt()?;
        say(format!("delay {delay} ms: round trip {rtt:.3} ms"));
        r.delays.push((delay, rtt));
    }
    for rate in RATES_MBIT {
        lab.apply(Some(&format!("{{ rate: {rate}mbit }}")))?;
        let (mbit, _) = lab.iperf(false)?;
        say(format!("rate {rate} mbit: TCP goodput {mbit:.2} Mbit/s"));
        r.rates.push((rate, mbit));
    }
    lab.apply(Some("{ delay: 1ms }"))?;
    for (what, udp) in [("TCP, delay 1ms", false), ("UDP, delay 1ms", true)] {
        let pid = benchscale::conditions::delay_line::find(&lab.name)
            .map(|d| d.pid)
            .ok_or("no delay line runs with a delay declared")?;
        let before = cpu_seconds(pid);
        let (mbit, wall) = lab.iperf(udp)?;
        let after = cpu_seconds(pid);
        let cpu_s = before.zip(after).map(|(b, a)| a - b);
        say(format!(
            "{what}: {mbit:.1} Mbit/s, delay line CPU {cpu_s:?} s in {wall:.1} s"
        ));
        r.throughput.push(Throughput {
            what: what.into(),
            mbit,
            cpu_s,
            wall_s: wall,
        });
    }
    Ok(())
}

/// Checks of the parsing.
pub fn self_check() {
    let out = "PING x (x): 56 data bytes\n64 bytes from x: seq=0 ttl=64 time=0.512 ms\n64 bytes from x: seq=1 ttl=64 time=10.25 ms\n";
    assert_eq!(ping_times(out), vec![0.512, 10.25]);
    let tcp = r#"{"end":{"sum_received":{"bits_per_second":9.5e6}}}"#;
    assert_eq!(received_bits(tcp), Some(9.5e6));
    let udp = r#"{"end":{"sum":{"bits_per_second":2e8,"lost_percent":25}}}"#;
    assert_eq!(received_bits(udp), Some(1.5e8));
    let me = cpu_seconds(std::process::id()).expect("this process's CPU time");
    assert!(me >= 0.0);
    let text = topology("bench-cond-x", Some("{ delay: 10ms }"));
    benchscale::topology::load_str(
        std::path::Path::new("bench.yaml"),
        &text,
        &benchscale::topology::AnyFile,
    )
    .expect("the accuracy lab is valid");
}
