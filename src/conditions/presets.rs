//! The built-in presets, with the values of the benchScale preset library
//! (delay, jitter, loss, rate).

use super::{ConditionSet, Percent, Rate};

/// One built-in preset.
pub struct Preset {
    pub name: &'static str,
    /// What it stands for, for `docs` and error help.
    pub about: &'static str,
    /// Delay and jitter in microseconds, loss in millionths of a percent,
    /// rate in bits per second; zero means none.
    delay: u64,
    jitter: u64,
    loss: u32,
    rate: u64,
}

impl Preset {
    pub fn set(&self) -> ConditionSet {
        ConditionSet {
            delay: Some(self.delay),
            jitter: Some(self.jitter),
            loss: Some(Percent::from_millionths(self.loss)),
            rate: Some(Rate(self.rate)),
            ..Default::default()
        }
        .normalized()
    }
}

const MS: u64 = 1000;
const PCT: u32 = 1_000_000;
const KBIT: u64 = 1000;
const MBIT: u64 = 1000 * KBIT;
const GBIT: u64 = 1000 * MBIT;

pub const BUILT_IN: &[Preset] = &[
    Preset {
        name: "localhost",
        about: "nothing added",
        delay: 0,
        jitter: 0,
        loss: 0,
        rate: 0,
    },
    Preset {
        name: "datacenter",
        about: "hosts in one data center",
        delay: 200,
        jitter: 50,
        loss: 0,
        rate: 10 * GBIT,
    },
    Preset {
        name: "basement_lan",
        about: "a wired LAN",
        delay: 500,
        jitter: 100,
        loss: 0,
        rate: 10 * GBIT,
    },
    Preset {
        name: "home_lan",
        about: "a home network with Wi-Fi",
        delay: 2 * MS,
        jitter: MS,
        loss: PCT / 100,
        rate: GBIT,
    },
    Preset {
        name: "broadband",
        about: "a good home connection",
        delay: 15 * MS,
        jitter: 3 * MS,
        loss: PCT / 10,
        rate: 100 * MBIT,
    },
    Preset {
        name: "friend_wan",
        about: "a friend's home across the internet",
        delay: 50 * MS,
        jitter: 10 * MS,
        loss: PCT / 2,
        rate: 100 * MBIT,
    },
    Preset {
        name: "mobile_cell",
        about: "a mobile phone connection",
        delay: 100 * MS,
        jitter: 30 * MS,
        loss: 2 * PCT,
        rate: 10 * MBIT,
    },
    Preset {
        name: "urban_congested",
        about: "a crowded city network",
        delay: 150 * MS,
        jitter: 80 * MS,
        loss: 15 * PCT,
        rate: 2 * MBIT,
    },
    Preset {
        name: "satellite",
        about: "a geostationary satellite link",
        delay: 600 * MS,
        jitter: 50 * MS,
        loss: 5 * PCT,
        rate: 5 * MBIT,
    },
    Preset {
        name: "intermittent",
        about: "a link that keeps failing",
        delay: 500 * MS,
        jitter: 300 * MS,
        loss: 50 * PCT,
        rate: 500 * KBIT,
    },
    Preset {
        name: "deep_space",
        about: "a probe far away",
        delay: 2000 * MS,
        jitter: 200 * MS,
        loss: 10 * PCT,
        rate: MBIT,
    },
];

/// The built-in preset of that name.
pub fn built_in(name: &str) -> Option<ConditionSet> {
    BUILT_IN.iter().find(|p| p.name == name).map(Preset::set)
}

/// The built-in preset whose values are exactly `set`, if any.
pub fn matching(set: &ConditionSet) -> Option<&'static str> {
    let set = set.normalized();
    BUILT_IN
        .iter()
        .find(|p| p.set() == set && !set.is_empty())
        .map(|p| p.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_the_format_pages_values() {
        let wan = built_in("friend_wan").unwrap();
        assert_eq!(
            wan.to_string(),
            "delay 50ms jitter 10ms loss 0.5% rate 100mbit"
        );
        assert_eq!(
            built_in("datacenter").unwrap().to_string(),
            "delay 0.2ms jitter 0.05ms rate 10gbit"
        );
        assert_eq!(
            built_in("intermittent").unwrap().to_string(),
            "delay 500ms jitter 300ms loss 50% rate 500kbit"
        );
        assert_eq!(
            built_in("deep_space").unwrap().to_string(),
            "delay 2000ms jitter 200ms loss 10% rate 1mbit"
        );
        assert!(built_in("localhost").unwrap().is_empty());
        assert_eq!(BUILT_IN.len(), 11);
    }

    #[test]
    fn values_find_their_preset() {
        let cell = built_in("mobile_cell").unwrap();
        assert_eq!(matching(&cell), Some("mobile_cell"));
        let other = ConditionSet {
            delay: Some(100 * MS),
            ..Default::default()
        };
        assert_eq!(matching(&other), None);
        assert_eq!(matching(&ConditionSet::default()), None);
    }
}
