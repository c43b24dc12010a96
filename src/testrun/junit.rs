//! The report as JUnit XML, the dialect GitLab, GitHub's test reporters and
//! Jenkins read: one `testsuite` for the file, a `testcase` per test with
//! its time, a `failure` with the step, what was expected and what was
//! seen, each step's output in `system-out`, and the artifacts' folder.

use std::fmt::Write;

use super::{StepStatus, TestReport};

/// XML's escapes, and the control characters XML 1.0 has no place for
/// (a command's output may hold them) replaced.
fn escape(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 => '\u{fffd}',
            c => c,
        })
        .collect();
    crate::backend::libvirt::xml::escape(&clean)
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// The JUnit XML of a report.
pub fn to_xml(report: &TestReport) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = report.failed();
    let _ = writeln!(
        x,
        "<testsuites name=\"benchscale\" tests=\"{}\" failures=\"{failures}\" time=\"{}\">",
        report.tests.len(),
        secs(report.duration_ms)
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{}\">",
        escape(&report.file),
        report.tests.len(),
        secs(report.duration_ms)
    );
    for t in &report.tests {
        let _ = writeln!(
            x,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\">",
            escape(&report.lab),
            escape(&t.name),
            secs(t.duration_ms)
        );
        if let Some(f) = &t.failure {
            let message = format!(
                "step `{}`: expected {}, seen {}",
                f.step, f.expected, f.seen
            );
            let _ = writeln!(
                x,
                "      <failure message=\"{}\" type=\"step failed\">{}</failure>",
                escape(&message),
                escape(&message)
            );
        }
        let mut out = String::new();
        for s in &t.steps {
            let status = match s.status {
                StepStatus::Passed => "passed",
                StepStatus::Failed => "FAILED",
                StepStatus::Skipped => "skipped",
            };
            let _ = writeln!(
                out,
                "== {} [{status}, {} ms, {} tries]",
                s.name, s.duration_ms, s.tries
            );
            if !s.output.is_empty() {
                let _ = writeln!(out, "{}", s.output.trim_end());
            }
        }
        let _ = writeln!(out, "== lab returned to the file in {} ms", t.restore_ms);
        if let Some(a) = &t.artifacts {
            let _ = writeln!(out, "[[ATTACHMENT|{a}]]");
        }
        let _ = writeln!(x, "      <system-out>{}</system-out>", escape(&out));
        x.push_str("    </testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testrun::{Failure, StepResult, TestResult};

    #[test]
    fn failures_and_outputs_are_escaped_into_one_suite() {
        let report = TestReport {
            lab: "lab".into(),
            file: "lab.yaml".into(),
            started_at: 0,
            duration_ms: 1500,
            interrupted: false,
            applied: false,
            tests: vec![TestResult {
                name: "a<b".into(),
                passed: false,
                duration_ms: 1200,
                steps: vec![StepResult {
                    name: "exec on web".into(),
                    status: StepStatus::Failed,
                    duration_ms: 10,
                    tries: 1,
                    output: "x & y\u{1}".into(),
                }],
                failure: Some(Failure {
                    step: "exec on web".into(),
                    expected: "exit 0".into(),
                    seen: "exit 1".into(),
                }),
                restore_ms: 5,
                artifacts: Some("/tmp/a".into()),
            }],
        };
        let xml = to_xml(&report);
        assert!(
            xml.contains("<testsuite name=\"lab.yaml\" tests=\"1\" failures=\"1\""),
            "{xml}"
        );
        assert!(xml.contains("name=\"a&lt;b\" time=\"1.200\""), "{xml}");
        assert!(xml.contains("expected exit 0, seen exit 1"), "{xml}");
        assert!(xml.contains("x &amp; y\u{fffd}"), "{xml}");
        assert!(xml.contains("[[ATTACHMENT|/tmp/a]]"), "{xml}");
    }
}
