//! Golden-file tests of `benchscale validate` on scenario-named fixtures.
//!
//! Each `tests/fixtures/invalid-*/` folder holds `topology.yaml` and
//! `expected.txt`: one line per diagnostic, `LINE:COL CODE MESSAGE`. Run
//! with `BLESS=1` to rewrite the golden files after a deliberate change, then
//! read the diff.

use crate::support::{benchscale, fixture_dirs, relative, yaml_files};

fn golden_lines(json: &serde_json::Value) -> String {
    let mut out = String::new();
    for d in json.as_array().expect("a JSON array") {
        let line = d["line"].as_u64().map_or("-".into(), |l| l.to_string());
        let column = d["column"].as_u64().map_or("-".into(), |c| c.to_string());
        out.push_str(&format!(
            "{line}:{column} {} {}\n",
            d["code"].as_str().unwrap_or_default(),
            d["message"].as_str().unwrap_or_default()
        ));
    }
    out
}

#[test]
fn every_invalid_fixture_reports_exactly_its_golden_diagnostics() {
    let dirs = fixture_dirs("invalid-");
    assert!(dirs.len() >= 40, "only {} invalid fixtures", dirs.len());
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for dir in dirs {
        let file = dir.join("topology.yaml");
        let rel = relative(&file);
        let out = benchscale(&["validate", "-o", "json", &rel]);
        if out.status.code() != Some(1) {
            failures.push(format!(
                "{rel}: exit code {:?}, expected 1",
                out.status.code()
            ));
            continue;
        }
        let json: serde_json::Value = match serde_json::from_slice(&out.stdout) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{rel}: output is not JSON: {e}"));
                continue;
            }
        };
        for d in json.as_array().into_iter().flatten() {
            if d["file"] != rel.as_str() || d["help"].as_str().is_none_or(str::is_empty) {
                failures.push(format!("{rel}: diagnostic without file or help: {d}"));
            }
        }
        let got = golden_lines(&json);
        let golden = dir.join("expected.txt");
        if bless {
            std::fs::write(&golden, &got).expect("write golden file");
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            failures.push(format!("{rel}:\n--- expected\n{want}--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_fixtures_render_each_problem_with_file_line_and_column() {
    // The human form names the same positions as the JSON form.
    for dir in fixture_dirs("invalid-") {
        let rel = relative(&dir.join("topology.yaml"));
        let json = benchscale(&["validate", "-o", "json", &rel]);
        let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
        let text = benchscale(&["validate", &rel]);
        assert_eq!(text.status.code(), Some(1), "{rel}");
        let stderr = String::from_utf8_lossy(&text.stderr);
        for d in json.as_array().into_iter().flatten() {
            if let (Some(line), Some(column)) = (d["line"].as_u64(), d["column"].as_u64()) {
                let place = format!("{rel}:{line}:{column}");
                assert!(stderr.contains(&place), "{place} missing from:\n{stderr}");
            }
            let code = d["code"].as_str().unwrap_or_default();
            assert!(stderr.contains(code), "{code} missing from:\n{stderr}");
        }
    }
}

#[test]
fn every_valid_fixture_topology_and_example_validates() {
    let mut files: Vec<_> = fixture_dirs("valid-")
        .into_iter()
        .map(|d| d.join("topology.yaml"))
        .collect();
    assert!(!files.is_empty());
    files.extend(yaml_files("topologies"));
    files.extend(yaml_files("examples"));
    for file in files {
        let rel = relative(&file);
        let out = benchscale(&["validate", &rel]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{rel}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn topology_files_start_with_the_schema_header() {
    let mut files = yaml_files("topologies");
    files.extend(yaml_files("examples"));
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/topology.schema.json\n"),
            "{} lacks the yaml-language-server header",
            file.display()
        );
    }
}
