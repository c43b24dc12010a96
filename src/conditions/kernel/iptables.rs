//! `iptables`: the userspace plane's loss and delay-line rules, in two
//! chains per lab in the mangle table, and `iptables -S` read back.
//!
//! What a node sends crosses the bridge in from its host-side interface,
//! so its rules match `--physdev-in` in the chain jumped from PREROUTING
//! (`BS-<hash>-OUT`); what it receives leaves through that interface, so
//! its rules match `--physdev-out` in the chain jumped from POSTROUTING
//! (`BS-<hash>-IN`). An attachment's rules are the ones that name its
//! interface, in order: loss first, so that a dropped packet never reaches
//! the delay line, then the NFQUEUE rule.
//!
//! NFQUEUE, statistic and physdev are xtables extensions that only the
//! `iptables` tool speaks, so these rules are run through it.

use super::command::Cmd;
use crate::conditions::{Direction, Percent};

/// The table of benchscale's chains: mangle runs before filtering and NAT,
/// and its chains see bridged packets when br_netfilter is on.
pub const TABLE: &str = "mangle";

/// xt_statistic keeps a probability as a 31-bit fraction.
const STATISTIC_ONE: f64 = 2_147_483_648.0;

/// One rule of an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Drops at random, with xt_statistic's probability (a fraction of
    /// 2^31), which is what `iptables -S` prints back.
    Loss(u32),
    /// Hands packets to the delay line listening on this queue; with
    /// `--queue-bypass` they pass when nothing listens.
    Queue(u16),
}

impl Rule {
    pub fn loss(share: Percent) -> Rule {
        Rule::Loss((share.probability() * STATISTIC_ONE).round() as u32)
    }

    pub fn loss_percent(self) -> Option<Percent> {
        match self {
            Rule::Loss(p) => Some(Percent::from_millionths(
                (f64::from(p) / STATISTIC_ONE * 1e8).round() as u32,
            )),
            Rule::Queue(_) => None,
        }
    }

    /// The rule's match and target, as `iptables -S` prints them (so that
    /// the same words delete it).
    pub fn spec(self, direction: Direction, ifname: &str) -> Vec<String> {
        let mut spec: Vec<String> = ["-m", "physdev", physdev_option(direction), ifname]
            .map(str::to_owned)
            .to_vec();
        match self {
            Rule::Loss(p) => spec.extend(
                [
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &format!("{:.11}", f64::from(p) / STATISTIC_ONE),
                    "-j",
                    "DROP",
                ]
                .map(str::to_owned),
            ),
            Rule::Queue(q) => spec.extend(
                [
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    &q.to_string(),
                    "--queue-bypass",
                ]
                .map(str::to_owned),
            ),
        }
        spec
    }
}

fn physdev_option(direction: Direction) -> &'static str {
    match direction {
        Direction::Egress => "--physdev-in",
        Direction::Ingress => "--physdev-out",
    }
}

/// The built-in chain a direction's lab chain is jumped from.
pub fn hook(direction: Direction) -> &'static str {
    match direction {
        Direction::Egress => "PREROUTING",
        Direction::Ingress => "POSTROUTING",
    }
}

/// `BS-<10 hex of the lab's hash>-OUT` or `-IN`: 17 characters at most,
/// under iptables' 28.
pub fn chain(lab: &str, direction: Direction) -> String {
    let suffix = match direction {
        Direction::Egress => "OUT",
        Direction::Ingress => "IN",
    };
    format!("BS-{}-{suffix}", super::short_hash(&[lab]))
}

/// The comment that marks a lab's jump rules.
pub fn mark(lab: &str) -> String {
    format!("benchscale lab={lab}")
}

fn iptables(args: &[&str]) -> Cmd {
    // `-w`: wait for the xtables lock that other tools (Docker, libvirt)
    // take, rather than fail.
    Cmd::new("iptables", &["-w", "-t", TABLE]).args(args.iter().copied())
}

/// The whole table: listing one chain that does not exist fails, with
/// words that differ between iptables versions and backends (nf_tables
/// 1.8.9 calls it "incompatible").
pub fn list() -> Cmd {
    iptables(&["-S"])
}

/// The chains `iptables -S` output declares (`-N` lines).
pub fn parse_chains(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .map(|c| c.trim().to_owned())
        .collect()
}

pub fn new_chain(chain: &str) -> Cmd {
    iptables(&["-N", chain]).ok_if("already exists")
}

pub fn jump(lab: &str, direction: Direction, chain: &str) -> Cmd {
    // First in the hook, so that no earlier ACCEPT lets packets skip it.
    iptables(&["-I", hook(direction), "1", "-m", "comment", "--comment"])
        .arg(mark(lab))
        .args(["-j", chain])
}

pub fn append(chain: &str, spec: &[String]) -> Cmd {
    iptables(&["-A", chain]).args(spec.iter().cloned())
}

/// Deletes the rule printed as `-A <chain> <spec...>` by `iptables -S`.
pub fn delete(chain: &str, spec: &[String]) -> Cmd {
    iptables(&["-D", chain]).args(spec.iter().cloned())
}

pub fn flush(chain: &str) -> Cmd {
    iptables(&["-F", chain])
}

pub fn delete_chain(chain: &str) -> Cmd {
    iptables(&["-X", chain])
}

/// One `-A` line of `iptables -S`, split into the chain and the words
/// after it, with the double quotes iptables puts around comments taken
/// off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub chain: String,
    pub spec: Vec<String>,
}

impl Line {
    /// The value after `option` (`--physdev-in` → the interface).
    pub fn value(&self, option: &str) -> Option<&str> {
        let at = self.spec.iter().position(|w| w == option)?;
        self.spec.get(at + 1).map(String::as_str)
    }

    /// The interface this rule is about, and the direction, when it is a
    /// rule of an attachment.
    pub fn attachment(&self) -> Option<(Direction, &str)> {
        if let Some(ifname) = self.value("--physdev-in") {
            return Some((Direction::Egress, ifname));
        }
        self.value("--physdev-out")
            .map(|ifname| (Direction::Ingress, ifname))
    }

    /// The benchscale rule this line is, if it is one.
    pub fn rule(&self) -> Option<Rule> {
        match self.value("-j")? {
            "DROP" => {
                let p: f64 = self.value("--probability")?.parse().ok()?;
                Some(Rule::Loss((p * STATISTIC_ONE).round() as u32))
            }
            "NFQUEUE" => Some(Rule::Queue(self.value("--queue-num")?.parse().ok()?)),
            _ => None,
        }
    }
}

/// The `-A` lines of `iptables -S` output (`-N` and `-P` lines say nothing
/// about rules).
pub fn parse_lines(output: &str) -> Vec<Line> {
    output
        .lines()
        .filter_map(|line| {
            let words = split_words(line);
            let mut words = words.into_iter();
            if words.next().as_deref() != Some("-A") {
                return None;
            }
            let chain = words.next()?;
            Some(Line {
                chain,
                spec: words.collect(),
            })
        })
        .collect()
}

/// Words as iptables prints them: separated by spaces, a word in double
/// quotes (a comment) may hold spaces and `\"`.
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => word.extend(chars.next()),
                    '"' => break,
                    c => word.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
    words
}

/// The rules of one attachment in a chain's lines, with the words that
/// delete each.
pub fn rules_of(lines: &[Line], direction: Direction, ifname: &str) -> Vec<(Rule, Vec<String>)> {
    lines
        .iter()
        .filter(|l| l.attachment() == Some((direction, ifname)))
        .filter_map(|l| l.rule().map(|r| (r, l.spec.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"-N BS-0123456789-OUT
-A BS-0123456789-OUT -m physdev --physdev-in veth1 -m statistic --mode random --probability 0.00499999989 -j DROP
-A BS-0123456789-OUT -m physdev --physdev-in veth1 -j NFQUEUE --queue-num 7 --queue-bypass
-A BS-0123456789-OUT -m physdev --physdev-in veth10 -m statistic --mode random --probability 0.50000000000 -j DROP
-A PREROUTING -m comment --comment "benchscale lab=a \"b\"" -j BS-0123456789-OUT
"#;

    #[test]
    fn reads_rules_back_as_they_were_written() {
        let lines = parse_lines(SAMPLE);
        assert_eq!(lines.len(), 4);
        let rules = rules_of(&lines, Direction::Egress, "veth1");
        let half = Percent::from_millionths(500_000);
        assert_eq!(
            rules.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            vec![Rule::loss(half), Rule::Queue(7)]
        );
        assert_eq!(rules[0].0.loss_percent(), Some(half));
        assert_eq!(
            rules[0].1,
            Rule::loss(half).spec(Direction::Egress, "veth1")
        );
        assert_eq!(rules[1].1, Rule::Queue(7).spec(Direction::Egress, "veth1"));
        assert!(rules_of(&lines, Direction::Ingress, "veth1").is_empty());
        assert_eq!(lines[3].value("--comment"), Some("benchscale lab=a \"b\""));
    }

    #[test]
    fn loss_survives_the_round_trip_through_31_bits() {
        for millionths in [1, 10, 12_345, 500_000, 2_000_000, 15_000_000, 100_000_000] {
            let share = Percent::from_millionths(millionths);
            let rule = Rule::loss(share);
            let printed = rule.spec(Direction::Ingress, "x");
            let line = format!("-A C {}", printed.join(" "));
            let back = parse_lines(&line)[0].rule().unwrap();
            assert_eq!(back.loss_percent(), Some(share), "{line}");
        }
    }

    #[test]
    fn chain_names_fit_iptables() {
        let long = "a".repeat(63);
        assert!(chain(&long, Direction::Egress).len() <= 28);
        assert_eq!(chain("lab", Direction::Ingress).len(), 16);
        assert_ne!(
            chain("lab", Direction::Egress),
            chain("lab2", Direction::Egress)
        );
    }
}
