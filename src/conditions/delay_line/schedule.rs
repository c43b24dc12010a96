//! The delay line's decisions, apart from the queue so that they are tested
//! with plain data: which rule a packet falls under, when it leaves, whether
//! it is corrupted or copied, and the packets held until they are due.
//!
//! The meaning is netem's: `delay ± jitter` (uniform, so jitter reorders
//! packets as netem's does), `reorder` the share sent at once ahead of the
//! delayed ones, `corrupt` one flipped bit, `duplicate` one more copy.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use super::config::DelayLineConfig;
use crate::conditions::{ConditionSet, Direction, Percent};

/// The netfilter hook numbers the lab's rules queue from.
pub const HOOK_PREROUTING: u8 = 0;
pub const HOOK_POSTROUTING: u8 = 4;

/// A small, fast random generator (xorshift64*): condition draws need speed
/// and spread, not secrecy.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed; every seed, zero included, gives a usable
    /// state (splitmix64 scrambles it first).
    pub fn seeded(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_f491_4f6c_dd1d } else { z })
    }

    /// Seeded from the clock and the process id, so that two lines started
    /// together draw differently.
    pub fn from_time_and_pid() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng::seeded(nanos ^ (u64::from(std::process::id()) << 32))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (0 when `n` is 0), without the modulo's bias
    /// toward small values.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: Option<Percent>) -> bool {
        match p {
            Some(p) if p.millionths() > 0 => {
                self.below(u64::from(Percent::HUNDRED.millionths())) < u64::from(p.millionths())
            }
            _ => false,
        }
    }
}

/// What happens to one packet under its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    /// How long it is held; zero sends it at once.
    pub hold: Duration,
    /// Flip one bit after its IP header.
    pub corrupt: bool,
    /// Send one more copy with it.
    pub duplicate: bool,
}

/// Draws a packet's fate under `set`.
pub fn fate(set: &ConditionSet, rng: &mut Rng) -> Fate {
    let corrupt = rng.chance(set.corrupt);
    let duplicate = rng.chance(set.duplicate);
    // netem sends the reordered share at once, ahead of the delayed ones.
    let hold = if rng.chance(set.reorder) {
        Duration::ZERO
    } else {
        let delay = set.delay.unwrap_or(0) as i64;
        let jitter = set.jitter.unwrap_or(0) as i64;
        let spread = if jitter > 0 {
            rng.below(2 * jitter as u64 + 1) as i64 - jitter
        } else {
            0
        };
        Duration::from_micros((delay + spread).max(0) as u64)
    };
    Fate {
        hold,
        corrupt,
        duplicate,
    }
}

/// Length of the IP header at the start of `packet` (IPv4 with options, or
/// IPv6's fixed header), or `None` when the bytes are no IP packet.
pub fn ip_header_len(packet: &[u8]) -> Option<usize> {
    let first = *packet.first()?;
    let len = match first >> 4 {
        4 => usize::from(first & 0x0f) * 4,
        6 => 40,
        _ => return None,
    };
    (len >= 20 && len <= packet.len()).then_some(len)
}

/// Flips one random bit after the IP header, as a damaged link would, and
/// leaves the header alone so that the packet is still delivered (and the
/// receiver's checksum catches it). Returns the bit flipped, or `None`
/// when there is nothing after the header.
pub fn corrupt(packet: &mut [u8], rng: &mut Rng) -> Option<usize> {
    let start = ip_header_len(packet)?;
    let bits = (packet.len() - start) as u64 * 8;
    if bits == 0 {
        return None;
    }
    let bit = start * 8 + rng.below(bits) as usize;
    packet[bit / 8] ^= 0x80 >> (bit % 8);
    Some(bit)
}

/// The rules of a configuration, by interface index and direction.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    by_link: HashMap<(u32, Direction), ConditionSet>,
}

impl Rules {
    /// Resolves each rule's interface with `index_of`; returns the rules
    /// and the interfaces that do not exist. Rules with nothing to do here
    /// (only loss and rate, which the kernel does) are left out, so their
    /// packets pass at once.
    pub fn resolve(
        config: &DelayLineConfig,
        mut index_of: impl FnMut(&str) -> Option<u32>,
    ) -> (Rules, Vec<String>) {
        let mut rules = Rules::default();
        let mut missing = Vec::new();
        for link in &config.links {
            let set = link.set.normalized();
            if !(set.needs_delay_line()) {
                continue;
            }
            match index_of(&link.ifname) {
                Some(index) if index > 0 => {
                    rules.by_link.insert((index, link.direction), set);
                }
                _ => missing.push(link.ifname.clone()),
            }
        }
        (rules, missing)
    }

    /// The rule of a packet queued at `hook`: at PREROUTING, what the
    /// bridge port it came in by received (its node sent it); at
    /// POSTROUTING, what the port it goes out by sends (its node receives).
    pub fn lookup(&self, hook: u8, physindev: u32, physoutdev: u32) -> Option<&ConditionSet> {
        let key = match hook {
            HOOK_PREROUTING => (physindev, Direction::Egress),
            HOOK_POSTROUTING => (physoutdev, Direction::Ingress),
            _ => return None,
        };
        if key.0 == 0 {
            return None;
        }
        self.by_link.get(&key)
    }

    pub fn len(&self) -> usize {
        self.by_link.len()
    }
}

/// A held packet, ordered by due time, then by arrival among equals so
/// that packets due together leave in the order they came.
struct Held<T> {
    due: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Held<T> {
    // Reversed: `BinaryHeap` is a max-heap and the earliest must come first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// The packets held, earliest due first.
pub struct Schedule<T> {
    heap: BinaryHeap<Held<T>>,
    seq: u64,
}

impl<T> Default for Schedule<T> {
    fn default() -> Self {
        Schedule {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T> Schedule<T> {
    pub fn push(&mut self, due: Instant, item: T) {
        self.seq += 1;
        self.heap.push(Held {
            due,
            seq: self.seq,
            item,
        });
    }

    /// When the earliest held packet is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|h| h.due)
    }

    /// The earliest packet due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.heap.peek()?.due <= now {
            self.heap.pop().map(|h| h.item)
        } else {
            None
        }
    }

    /// Every held packet, earliest first: what is sent when the line stops.
    pub fn drain(&mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.heap.len());
        while let Some(h) = self.heap.pop() {
            out.push(h.item);
        }
        out
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// The line's state apart from the queue: the rules in effect, the packets
/// held and the generator. A reload replaces the rules and keeps the rest.
pub struct Line<T> {
    pub rules: Rules,
    pub held: Schedule<T>,
    pub rng: Rng,
}

impl<T> Line<T> {
    pub fn new(rules: Rules, rng: Rng) -> Self {
        Line {
            rules,
            held: Schedule::default(),
            rng,
        }
    }

    /// A packet's fate, or `None` when no rule applies (it passes at once).
    pub fn decide(&mut self, hook: u8, physindev: u32, physoutdev: u32) -> Option<Fate> {
        let set = *self.rules.lookup(hook, physindev, physoutdev)?;
        Some(fate(&set, &mut self.rng))
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
