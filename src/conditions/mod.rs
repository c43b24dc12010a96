//! Network conditions: what a node's traffic goes through on a network
//! (added delay, jitter, loss, a rate limit, corruption, duplicates and
//! reordering), the built-in presets, and the values' units.
//!
//! A [`ConditionSet`] is resolved: presets are merged and units checked. It
//! means the same on either data plane (the kernel's netem, or the kernel's
//! shapers plus benchscale's userspace element where netem is missing).

pub mod dataplane;
pub mod delay_line;
pub mod kernel;
pub mod presets;
pub mod units;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use units::{Percent, Rate};

/// One direction's conditions. Every key is optional; an empty set means
/// "nothing added".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConditionSet {
    /// Added one-way latency, in microseconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "units::micros"
    )]
    pub delay: Option<u64>,
    /// Delay variation (uniform in `delay ± jitter`), in microseconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "units::micros"
    )]
    pub jitter: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<Percent>,
    /// Share of packets sent at once, ahead of the delayed ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<Percent>,
}

impl ConditionSet {
    /// True when the set adds nothing (the `localhost` preset, or every
    /// value zero).
    pub fn is_empty(&self) -> bool {
        self.normalized() == ConditionSet::default()
    }

    /// The same set with zero values left out, so that `loss: 0%` and no
    /// `loss` compare equal (the kernel keeps no trace of either).
    pub fn normalized(&self) -> ConditionSet {
        fn nz<T: PartialEq + Default>(v: Option<T>) -> Option<T> {
            v.filter(|v| *v != T::default())
        }
        ConditionSet {
            delay: nz(self.delay),
            jitter: nz(self.jitter),
            loss: nz(self.loss),
            rate: nz(self.rate),
            corrupt: nz(self.corrupt),
            duplicate: nz(self.duplicate),
            reorder: nz(self.reorder),
        }
    }

    /// `self` with every key `over` sets replacing it: a preset as base,
    /// the keys next to it as overrides.
    pub fn overridden_by(&self, over: &ConditionSet) -> ConditionSet {
        ConditionSet {
            delay: over.delay.or(self.delay),
            jitter: over.jitter.or(self.jitter),
            loss: over.loss.or(self.loss),
            rate: over.rate.or(self.rate),
            corrupt: over.corrupt.or(self.corrupt),
            duplicate: over.duplicate.or(self.duplicate),
            reorder: over.reorder.or(self.reorder),
        }
    }

    /// True when something besides rate and loss is set: what the kernel
    /// cannot do without netem, and the userspace element does.
    pub fn needs_delay_line(&self) -> bool {
        let n = self.normalized();
        n.delay.is_some()
            || n.jitter.is_some()
            || n.corrupt.is_some()
            || n.duplicate.is_some()
            || n.reorder.is_some()
    }
}

/// As a user writes it: `delay 40ms jitter 5ms loss 0.5% rate 10mbit`, or
/// `none`.
impl fmt::Display for ConditionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.normalized();
        let mut parts = Vec::new();
        if let Some(d) = n.delay {
            parts.push(format!("delay {}", units::format_micros(d)));
        }
        if let Some(j) = n.jitter {
            parts.push(format!("jitter {}", units::format_micros(j)));
        }
        if let Some(l) = n.loss {
            parts.push(format!("loss {l}"));
        }
        if let Some(r) = n.rate {
            parts.push(format!("rate {r}"));
        }
        if let Some(c) = n.corrupt {
            parts.push(format!("corrupt {c}"));
        }
        if let Some(d) = n.duplicate {
            parts.push(format!("duplicate {d}"));
        }
        if let Some(r) = n.reorder {
            parts.push(format!("reorder {r}"));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

/// Which way traffic crosses a node's attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// What the node sends: the host side of its link receives it.
    Egress,
    /// What the node receives: the host side of its link sends it.
    Ingress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        }
    }
}

/// The conditions of one attachment of a running node, as the data plane
/// needs them: the host-side interface of the node's link (a container's
/// veth peer, a VM's tap) and a set per direction (empty for none).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinkConditions {
    pub lab: String,
    pub node: String,
    pub network: String,
    /// Host-side interface name, such as `veth1a2b3c4` or `vnet3`.
    pub ifname: String,
    pub egress: ConditionSet,
    pub ingress: ConditionSet,
}

impl LinkConditions {
    pub fn set(&self, direction: Direction) -> &ConditionSet {
        match direction {
            Direction::Egress => &self.egress,
            Direction::Ingress => &self.ingress,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_values_are_no_values() {
        let zero = ConditionSet {
            loss: Some(Percent::ZERO),
            delay: Some(0),
            ..Default::default()
        };
        assert!(zero.is_empty());
        assert_eq!(zero.to_string(), "none");
        let some = ConditionSet {
            delay: Some(500),
            ..Default::default()
        };
        assert!(!some.is_empty());
        assert!(some.needs_delay_line());
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let base = presets::built_in("friend_wan").unwrap();
        let over = ConditionSet {
            delay: Some(80_000),
            ..Default::default()
        };
        let merged = base.overridden_by(&over);
        assert_eq!(merged.delay, Some(80_000));
        assert_eq!(merged.jitter, base.jitter);
        assert_eq!(merged.rate, base.rate);
        assert_eq!(
            merged.to_string(),
            "delay 80ms jitter 10ms loss 0.5% rate 100mbit"
        );
    }

    #[test]
    fn rate_and_loss_alone_need_no_delay_line() {
        let set = ConditionSet {
            loss: Some(Percent::from_millionths(20_000_000)),
            rate: Some(Rate(2_000_000)),
            ..Default::default()
        };
        assert!(!set.needs_delay_line());
    }
}
