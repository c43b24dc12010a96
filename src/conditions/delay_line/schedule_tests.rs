use super::*;
use crate::conditions::delay_line::config::LinkRule;

fn ms(n: u64) -> Option<u64> {
    Some(n * 1000)
}

fn pct(p: u32) -> Option<Percent> {
    Some(Percent::from_millionths(p * 1_000_000))
}

fn config(links: &[(&str, Direction, ConditionSet)]) -> DelayLineConfig {
    DelayLineConfig {
        lab: "t".into(),
        queue: 1000,
        links: links
            .iter()
            .map(|(ifname, direction, set)| LinkRule {
                ifname: (*ifname).into(),
                direction: *direction,
                set: *set,
            })
            .collect(),
    }
}

/// Interfaces `if1`, `if2`, … have indexes 1, 2, …; others do not exist.
fn index_of(name: &str) -> Option<u32> {
    name.strip_prefix("if")?.parse().ok()
}

#[test]
fn a_plain_delay_holds_every_packet_exactly_that_long() {
    let set = ConditionSet {
        delay: ms(40),
        ..Default::default()
    };
    let mut rng = Rng::seeded(1);
    for _ in 0..1000 {
        let f = fate(&set, &mut rng);
        assert_eq!(f.hold, Duration::from_millis(40));
        assert!(!f.corrupt && !f.duplicate);
    }
}

#[test]
fn jitter_stays_within_its_bounds_and_spreads_over_them() {
    let set = ConditionSet {
        delay: ms(50),
        jitter: ms(10),
        ..Default::default()
    };
    let mut rng = Rng::seeded(2);
    let holds: Vec<Duration> = (0..20_000).map(|_| fate(&set, &mut rng).hold).collect();
    let (lo, hi) = (Duration::from_millis(40), Duration::from_millis(60));
    assert!(holds.iter().all(|h| *h >= lo && *h <= hi));
    // Both ends are reached (within a tenth of a millisecond), and the mean
    // is the declared delay.
    assert!(holds.iter().any(|h| *h < lo + Duration::from_micros(100)));
    assert!(holds.iter().any(|h| *h > hi - Duration::from_micros(100)));
    let mean = holds.iter().sum::<Duration>() / holds.len() as u32;
    assert!(mean.abs_diff(Duration::from_millis(50)) < Duration::from_micros(300));
}

#[test]
fn jitter_larger_than_the_delay_clamps_at_zero() {
    let set = ConditionSet {
        delay: ms(1),
        jitter: ms(5),
        ..Default::default()
    };
    let mut rng = Rng::seeded(3);
    let holds: Vec<Duration> = (0..5_000).map(|_| fate(&set, &mut rng).hold).collect();
    assert!(holds.contains(&Duration::ZERO));
    assert!(holds.iter().all(|h| *h <= Duration::from_millis(6)));
}

#[test]
fn the_reorder_share_goes_at_once_and_the_rest_is_delayed() {
    let set = ConditionSet {
        delay: ms(20),
        reorder: pct(25),
        ..Default::default()
    };
    let mut rng = Rng::seeded(4);
    let n = 40_000;
    let at_once = (0..n)
        .filter(|_| fate(&set, &mut rng).hold == Duration::ZERO)
        .count();
    let share = at_once as f64 / n as f64;
    assert!((share - 0.25).abs() < 0.01, "share {share}");
}

#[test]
fn corrupt_and_duplicate_shares_follow_their_percentages() {
    let set = ConditionSet {
        corrupt: pct(10),
        duplicate: pct(50),
        ..Default::default()
    };
    let mut rng = Rng::seeded(5);
    let n = 40_000;
    let fates: Vec<Fate> = (0..n).map(|_| fate(&set, &mut rng)).collect();
    let corrupt = fates.iter().filter(|f| f.corrupt).count() as f64 / n as f64;
    let dup = fates.iter().filter(|f| f.duplicate).count() as f64 / n as f64;
    assert!((corrupt - 0.10).abs() < 0.01, "corrupt {corrupt}");
    assert!((dup - 0.50).abs() < 0.01, "duplicate {dup}");
    let none = ConditionSet::default();
    assert!((0..1000).all(|_| fate(&none, &mut rng) == fate(&none, &mut rng)));
}

fn ipv4_packet(options_words: u8, payload: usize) -> Vec<u8> {
    let header = 20 + usize::from(options_words) * 4;
    let mut p = vec![0u8; header + payload];
    p[0] = 0x40 | (5 + options_words);
    p
}

#[test]
fn corrupt_flips_exactly_one_bit_after_the_ip_header() {
    let mut rng = Rng::seeded(6);
    for (packet, header) in [
        (ipv4_packet(0, 100), 20),
        (ipv4_packet(2, 3), 28),
        (
            {
                let mut p = vec![0u8; 41];
                p[0] = 0x60;
                p
            },
            40,
        ),
    ] {
        for _ in 0..500 {
            let mut damaged = packet.clone();
            let bit = corrupt(&mut damaged, &mut rng).expect("a bit flipped");
            assert!(bit >= header * 8);
            let flipped: u32 = packet
                .iter()
                .zip(&damaged)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(flipped, 1);
            assert_eq!(packet[..header], damaged[..header]);
        }
    }
}

#[test]
fn malformed_packets_are_left_alone() {
    let mut rng = Rng::seeded(7);
    let mut cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x45],
        vec![0x45; 19],
        ipv4_packet(0, 0),
        vec![0x4f; 30],
        vec![0x41; 30],
        vec![0x60; 39],
        vec![0x00; 64],
        vec![0xff; 64],
    ];
    for packet in &mut cases {
        let before = packet.clone();
        assert_eq!(corrupt(packet, &mut rng), None, "{before:?}");
        assert_eq!(*packet, before);
    }
    // Random bytes of every length: never a panic.
    for len in 0..200 {
        let mut p: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let _ = corrupt(&mut p, &mut rng);
        let _ = ip_header_len(&p);
    }
}

#[test]
fn rules_are_found_by_hook_port_and_direction() {
    let delay = ConditionSet {
        delay: ms(10),
        ..Default::default()
    };
    let shaped_only = ConditionSet {
        rate: Some(crate::conditions::Rate(1_000_000)),
        ..Default::default()
    };
    let cfg = config(&[
        ("if3", Direction::Egress, delay),
        ("if4", Direction::Ingress, delay),
        ("if5", Direction::Egress, shaped_only),
        ("gone", Direction::Egress, delay),
    ]);
    let (rules, missing) = Rules::resolve(&cfg, index_of);
    assert_eq!(missing, vec!["gone".to_string()]);
    assert_eq!(rules.len(), 2);
    assert!(rules.lookup(HOOK_PREROUTING, 3, 0).is_some());
    // What port 3 sends out is its node's ingress: no rule.
    assert!(rules.lookup(HOOK_POSTROUTING, 0, 3).is_none());
    assert!(rules.lookup(HOOK_POSTROUTING, 7, 4).is_some());
    assert!(rules.lookup(HOOK_PREROUTING, 4, 0).is_none());
    // Loss and rate are the kernel's: nothing to do here.
    assert!(rules.lookup(HOOK_PREROUTING, 5, 0).is_none());
    // Other hooks, and packets with no bridge port, pass.
    assert!(rules.lookup(1, 3, 3).is_none());
    assert!(rules.lookup(HOOK_PREROUTING, 0, 0).is_none());
}

#[test]
fn held_packets_leave_by_due_time_then_arrival() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut s = Schedule::default();
    s.push(at(30), "c");
    s.push(at(10), "a");
    s.push(at(20), "b1");
    s.push(at(20), "b2");
    assert_eq!(s.next_due(), Some(at(10)));
    assert_eq!(s.pop_due(at(9)), None);
    assert_eq!(s.pop_due(at(25)), Some("a"));
    assert_eq!(s.pop_due(at(25)), Some("b1"));
    assert_eq!(s.pop_due(at(25)), Some("b2"));
    assert_eq!(s.pop_due(at(25)), None);
    assert_eq!(s.len(), 1);
    s.push(at(5), "late");
    assert_eq!(s.drain(), vec!["late", "c"]);
    assert!(s.is_empty());
}

#[test]
fn a_reload_replaces_the_rules_and_keeps_the_held_packets() {
    let t0 = Instant::now();
    let first = config(&[(
        "if1",
        Direction::Egress,
        ConditionSet {
            delay: ms(50),
            ..Default::default()
        },
    )]);
    let mut line: Line<u32> = Line::new(Rules::resolve(&first, index_of).0, Rng::seeded(8));
    for n in 0..10 {
        let f = line.decide(HOOK_PREROUTING, 1, 0).expect("a rule");
        line.held.push(t0 + f.hold, n);
    }
    let second = config(&[(
        "if2",
        Direction::Egress,
        ConditionSet {
            delay: ms(5),
            ..Default::default()
        },
    )]);
    line.rules = Rules::resolve(&second, index_of).0;
    assert_eq!(line.held.len(), 10);
    assert!(line.decide(HOOK_PREROUTING, 1, 0).is_none());
    let f = line.decide(HOOK_PREROUTING, 2, 0).expect("the new rule");
    assert_eq!(f.hold, Duration::from_millis(5));
    // The packets held before keep their due time.
    assert_eq!(line.held.pop_due(t0 + Duration::from_millis(49)), None);
    let released: Vec<u32> =
        std::iter::from_fn(|| line.held.pop_due(t0 + Duration::from_millis(50))).collect();
    assert_eq!(released, (0..10).collect::<Vec<_>>());
}

#[test]
fn the_generator_is_uniform_enough_and_never_stuck() {
    let mut rng = Rng::seeded(0);
    let mut buckets = [0u32; 10];
    for _ in 0..100_000 {
        buckets[rng.below(10) as usize] += 1;
    }
    assert!(
        buckets.iter().all(|b| (9_000..11_000).contains(b)),
        "{buckets:?}"
    );
    assert_eq!(rng.below(0), 0);
    assert!(!rng.chance(None));
    assert!(!rng.chance(Some(Percent::ZERO)));
    assert!(rng.chance(Some(Percent::HUNDRED)));
}
