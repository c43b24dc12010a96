//! Network conditions on a VM's attachment, against the real libvirtd,
//! QEMU and kernel: set on the VM's tap, measured from this machine (the
//! tiny guest answers TCP on its echo port), changed in place without
//! re-creating the domain, and gone after destroy.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::conditions_left;
use crate::vmlab::{TINY, VmLab, tiny_node};

fn lab_yaml(delay: &str) -> String {
    let health = "    health:\n      - console: { pattern: \"login:\" }\n        timeout: 180s\n      - tcp: { port: 7 }\n        timeout: 60s\n";
    let node = tiny_node("far", "lan", "10.239.{n}.10", "console=ttyS0 quiet", health).replace(
        "      lan: { ip: 10.239.{n}.10 }",
        &format!("      lan: {{ ip: 10.239.{{n}}.10, conditions: {{ delay: {delay} }} }}"),
    );
    format!("\nname: {{lab}}\nnetworks:\n  lan:\n    subnet: 10.239.{{n}}.0/24\nnodes:{node}")
}

/// The median time a TCP connect to the VM's echo port takes: one round
/// trip, whose answer the VM sends (so its delay is in it).
fn connect_ms(addr: SocketAddr) -> f64 {
    let mut times: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
            let took = start.elapsed().as_secs_f64() * 1000.0;
            drop(stream);
            std::thread::sleep(Duration::from_millis(20));
            took
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[test]
fn a_vm_attachment_is_delayed_changed_in_place_and_cleaned_up() {
    let lab = VmLab::booting("vt-cond", &TINY, &lab_yaml("50ms"));
    lab.apply_ok(Duration::from_secs(600));
    let addr: SocketAddr = format!("10.239.{}.10:7", lab.slot)
        .parse()
        .expect("address");
    let first = connect_ms(addr);
    assert!(
        (45.0..=60.0).contains(&first),
        "what the VM sends is delayed 50 ms, yet a connect took {first:.2} ms"
    );
    let domain = lab.domain("far");

    lab.write(&lab_yaml("100ms"));
    lab.apply_ok(Duration::from_secs(120));
    assert_eq!(lab.domain("far").uuid, domain.uuid, "the VM was re-created");
    let second = connect_ms(addr);
    assert!(
        (95.0..=115.0).contains(&second),
        "delay 100 ms declared, a connect took {second:.2} ms"
    );
    lab.plan().expect_code(0, "plan after the change");

    lab.run(&["destroy", &lab.file_arg()])
        .expect_code(0, "destroy");
    assert_eq!(conditions_left(&lab.name), Vec::<String>::new());
}
