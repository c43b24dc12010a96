//! VM displays against the real libvirtd and QEMU: a tiny guest with
//! `display: true` whose kernel writes to the screen too (`console=tty0`
//! last, so that its init and shell are on the screen), its VNC address
//! in `status`, `benchscale screenshot`, and `screenshot` test steps read
//! by OCR (the `tesseract` program), one passing and one failing with the
//! text it read.

use std::time::{Duration, Instant};

use benchscale::screen::Image;

use crate::support::LabCli;
use crate::vmlab::{TINY, VmLab, tiny_node};

fn lab_yaml() -> String {
    // The serial console has only the kernel's lines (the screen is
    // /dev/console), so the node is healthy once the kernel runs init.
    let health = "    display: true\n    health:\n      - console: { pattern: \"Run /init as init process\" }\n        timeout: 180s\n";
    let node = tiny_node(
        "screen",
        "lan",
        "10.241.{n}.10",
        "console=ttyS0 console=tty0",
        health,
    );
    format!(
        "\nname: {{lab}}\nnetworks:\n  lan:\n    subnet: 10.241.{{n}}.0/24\nnodes:{node}\ntests:\n  - name: reads-the-console\n    steps:\n      - screenshot: {{ node: screen }}\n        expect: {{ text: \"benchscale-tiny\" }}\n        within: 90s\n      - screenshot: {{ node: screen }}\n  - name: never-there\n    steps:\n      - screenshot: {{ node: screen }}\n        expect: {{ text: \"words that never appear\" }}\n        within: 2s\n"
    )
}

#[test]
fn a_vm_screen_is_shot_watched_and_read() {
    let lab = VmLab::booting("vt-display", &TINY, &lab_yaml());
    lab.apply_ok(Duration::from_secs(600));

    // The VNC server is on loopback, at the port libvirt picked.
    let vnc = lab.node_status("screen")["vnc"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(vnc.starts_with("127.0.0.1:59"), "vnc address: {vnc:?}");
    let text = lab.run(&["status", &lab.name]);
    assert!(
        text.stdout.contains(&format!("vnc {vnc}")),
        "{}",
        text.both()
    );

    // `benchscale screenshot`: a PNG of a plausible screen, not blank
    // once the guest has written to it.
    let file = lab.dir().join("screen.png");
    let file_arg = file.display().to_string();
    let started = Instant::now();
    let image = loop {
        let run = lab.run(&["screenshot", &lab.name, "screen", "-o", &file_arg]);
        run.expect_code(0, "screenshot");
        let bytes = std::fs::read(&file).expect("the PNG was written");
        let image = Image::from_png(&bytes).expect("a valid PNG");
        if image.colours(3) > 1 || started.elapsed() > Duration::from_secs(60) {
            break image;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!(
        "vm_display: {}x{} screenshot, {} ms for the last one",
        image.width(),
        image.height(),
        started.elapsed().as_millis()
    );
    assert!(
        (640..=4096).contains(&image.width()) && (400..=4096).contains(&image.height()),
        "{}x{}",
        image.width(),
        image.height()
    );
    assert!(image.colours(3) > 1, "the screen is one colour");

    // Test steps: the text is read, and a failure shows what was read.
    let run = lab.run(&["test", &lab.file_arg(), "-o", "json"]);
    run.expect_code(1, "one test passes, one fails");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("a JSON report");
    let tests = &report["tests"];
    assert_eq!(tests[0]["passed"], true, "{report:#}");
    assert_eq!(tests[1]["passed"], false, "{report:#}");
    let seen = tests[1]["failure"]["seen"].as_str().unwrap_or_default();
    assert!(seen.contains("benchscale-tiny"), "the text read: {seen}");
    let step = &tests[0]["steps"][0];
    eprintln!(
        "vm_display: OCR step passed in {} ms ({} tries)",
        step["duration_ms"], step["tries"]
    );
    // Each screenshot step left its PNG in the test's artifacts.
    let artifacts = tests[0]["artifacts"].as_str().expect("an artifacts folder");
    for name in ["step-01-screen.png", "step-02-screen.png"] {
        let bytes = std::fs::read(std::path::Path::new(artifacts).join(name))
            .unwrap_or_else(|e| panic!("{artifacts}/{name}: {e}"));
        Image::from_png(&bytes).expect("a valid PNG");
    }
    let failed = tests[1]["artifacts"].as_str().expect("an artifacts folder");
    assert!(
        std::path::Path::new(failed).join("screen.png").is_file(),
        "a failed test keeps the screen of every VM with a display"
    );
}
