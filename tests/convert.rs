//! `benchscale convert` on scenario-named v1 files: each folder of
//! `tests/fixtures/convert/` holds `old.yaml`, the expected `new.yaml` and
//! the expected `stderr.txt`. Every output must validate. Run with
//! `BLESS=1` to rewrite the golden files after a deliberate change.

use crate::support::{Scratch, benchscale, relative, root};

fn cases() -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("tests/fixtures/convert"))
        .expect("convert fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_v1_fixture_converts_to_its_golden_file_which_validates() {
    let bless = std::env::var_os("BLESS").is_some();
    let scratch = Scratch::new("convert");
    let mut failures = Vec::new();
    let dirs = cases();
    assert!(dirs.len() >= 8, "only {} convert fixtures", dirs.len());
    for dir in dirs {
        let old = relative(&dir.join("old.yaml"));
        let out = benchscale(&["convert", &old]);
        if out.status.code() != Some(0) {
            failures.push(format!(
                "{old}: exit {:?}\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let (yaml, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        if bless {
            std::fs::write(dir.join("new.yaml"), &yaml).expect("write");
            std::fs::write(dir.join("stderr.txt"), &stderr).expect("write");
        } else {
            for (file, got) in [("new.yaml", &yaml), ("stderr.txt", &stderr)] {
                let want = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
                if *got != want {
                    failures.push(format!("{old} {file}:\n--- expected\n{want}--- got\n{got}"));
                }
            }
        }
        // The output validates where it is written, with the schema header.
        assert!(
            yaml.starts_with("# yaml-language-server: $schema="),
            "{old}"
        );
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let written = scratch.path().join(format!("{name}.yaml"));
        std::fs::write(&written, &yaml).expect("write");
        let check = benchscale(&["validate", &written.display().to_string()]);
        if check.status.code() != Some(0) {
            failures.push(format!(
                "{old}: the output does not validate:\n{}\n{yaml}",
                String::from_utf8_lossy(&check.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_problem_line_names_the_file_line_and_column() {
    for dir in cases() {
        let old = relative(&dir.join("old.yaml"));
        let out = benchscale(&["convert", &old]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut lines: Vec<&str> = stderr.lines().collect();
        let summary = lines.pop().unwrap_or_default();
        assert!(
            summary.starts_with(&format!("{old}: converted to stdout; ")),
            "{summary}"
        );
        for line in lines {
            let rest = line
                .strip_prefix(&format!("{old}:"))
                .unwrap_or_else(|| panic!("{line}"));
            let mut parts = rest.splitn(3, ':');
            let l: usize = parts
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("{line}"));
            let c: usize = parts
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("{line}"));
            assert!(l >= 1 && c >= 1, "{line}");
        }
    }
}

fn convert_text(name: &str, text: &str) -> (Option<i32>, String, String) {
    let scratch = Scratch::new("convert-bad");
    let file = scratch.path().join(name);
    std::fs::write(&file, text).expect("write");
    let out = benchscale(&["convert", &file.display().to_string()]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn input_that_is_not_a_v1_topology_is_an_error_at_its_place() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "bad.yaml",
            "metadata:\n  name: [unclosed\n",
            ":2:17: not YAML",
        ),
        ("empty.yaml", "", ":1:1: not a benchScale v1 topology"),
        (
            "list.yaml",
            "- a\n- b\n",
            ":1:1: not a benchScale v1 topology",
        ),
        ("scalar.yaml", "42\n", ":1:1: not a benchScale v1 topology"),
        (
            "other.yaml",
            "\nfoo: 1\n",
            ":2:1: not a benchScale v1 topology",
        ),
        (
            "new.yaml",
            "name: lab\nnodes:\n  a: {kind: container, image: x}\n",
            "needs no conversion",
        ),
    ];
    for (name, text, want) in cases {
        let (code, stdout, stderr) = convert_text(name, text);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(stdout.is_empty(), "{name}: {stdout}");
        assert!(
            stderr.contains(&format!("{name}{want}")) || stderr.contains(want),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

#[test]
fn odd_values_are_left_out_and_the_output_still_validates() {
    let odd = "metadata: {name: 42, description: [a], tags: x}\n\
               network: {name: 7, subnet: 12, conditions: {latency_ms: fast, bandwidth_kbps: -1, jitter_ms: true}}\n\
               nodes:\n  - 5\n  - {name: [x], image: busybox, env: 3, metadata: {docker_args: --privileged}}\n  - {name: ok, image: 9}\n  - null\n";
    let (code, stdout, stderr) = convert_text("odd.yaml", odd);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("left out"), "{stderr}");
    let scratch = Scratch::new("convert-odd");
    let file = scratch.path().join("new.yaml");
    std::fs::write(&file, &stdout).expect("write");
    let check = benchscale(&["validate", &file.display().to_string()]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}\n{stdout}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn output_file_is_not_overwritten_without_force() {
    let scratch = Scratch::new("convert-out");
    let new = scratch.path().join("new.yaml");
    let new_arg = new.display().to_string();
    let old = relative(&root().join("tests/fixtures/convert/network-preset/old.yaml"));
    let first = benchscale(&["convert", &old, "-o", &new_arg]);
    assert_eq!(first.status.code(), Some(0));
    assert!(first.stdout.is_empty());
    let written = std::fs::read_to_string(&new).expect("written");
    assert!(written.contains("conditions: friend_wan"));
    std::fs::write(&new, "keep me").expect("write");
    let second = benchscale(&["convert", &old, "-o", &new_arg]);
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&new).unwrap(), "keep me");
    let third = benchscale(&["convert", &old, "-o", &new_arg, "--force"]);
    assert_eq!(third.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&new).unwrap(), written);
}
