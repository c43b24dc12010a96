//! Pulling images from a real registry on loopback (`support::registry`):
//! when each `pull` policy pulls, that pulls end before anything is made,
//! and what a failed pull tells the user.

use serde_json::Value;

use crate::lab::TestLab;
use crate::support::{Registry, Run, TestImage};

/// One container of `image` on one network; `{pull}` is its policy line.
fn one_node(image: &str, pull: &str) -> String {
    format!(
        r#"
name: {{lab}}
networks:
  lan:
    subnet: 10.243.{{n}}.0/24
nodes:
  a:
    kind: container
    image: {image}
    {pull}
    command: ["sleep", "3600"]
    networks: [lan]
"#
    )
}

/// `apply -o json`: the run and its JSON report.
fn apply_json(lab: &TestLab) -> (Run, Value) {
    let run = lab.run(&["apply", "-o", "json", &lab.file_arg()]);
    let json = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    (run, json)
}

/// The report's events of kind `kind` about `image`.
fn events<'a>(report: &'a Value, kind: &str, image: &str) -> Vec<&'a Value> {
    report["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["event"] == kind && e["image"] == image)
        .collect()
}

/// The time of the first event of `kind` (about `image`, if given).
fn first_at(report: &Value, kind: &str, image: Option<&str>) -> Option<u64> {
    report["events"]
        .as_array()?
        .iter()
        .find(|e| e["event"] == kind && image.is_none_or(|i| e["image"] == i))
        .and_then(|e| e["at_ms"].as_u64())
}

#[test]
fn pull_missing_pulls_an_absent_image_once_and_not_again() {
    let registry = Registry::shared();
    let image = TestImage::pushed(registry, "missing", "t", 2);
    let lab = TestLab::new("it-pull-missing", &one_node(&image.name, ""));

    let plan = lab.plan();
    plan.expect_code(2, "plan with an image to pull");
    assert!(
        plan.stdout.contains("pull") && plan.stdout.contains(&image.name),
        "the plan names the pull:\n{}",
        plan.stdout
    );

    let (run, report) = apply_json(&lab);
    run.expect_code(0, "apply that pulls");
    let started = events(&report, "pull_started", &image.name);
    assert_eq!(started.len(), 1, "{report:#}");
    assert_eq!(started[0]["reason"], "missing");
    let finished = events(&report, "pull_finished", &image.name);
    assert_eq!(finished.len(), 1, "{report:#}");
    assert!(
        finished[0]["bytes"].as_u64() >= Some(2 * 1024 * 1024),
        "{report:#}"
    );
    assert_eq!(finished[0]["id"].as_str(), image.id().as_deref());
    let progress = events(&report, "pull_progress", &image.name);
    assert!(
        progress.iter().any(|p| p["bytes_done"].as_u64() > Some(0)),
        "progress with bytes: {progress:#?}"
    );
    assert_eq!(report["plan"]["pulls"][0]["image"], image.name.as_str());

    // The engine has the image now: nothing to pull, nothing to do.
    lab.plan().expect_code(0, "plan once the image is there");
    let before = lab.fingerprints();
    let (run, report) = apply_json(&lab);
    run.expect_code(0, "second apply");
    assert!(
        events(&report, "pull_started", &image.name).is_empty(),
        "no second pull: {report:#}"
    );
    assert_eq!(lab.fingerprints(), before);
}

#[test]
fn pull_always_pulls_on_every_apply_and_recreates_only_for_a_new_image() {
    let registry = Registry::shared();
    let image = TestImage::pushed(registry, "always", "t", 1);
    let lab = TestLab::new("it-pull-always", &one_node(&image.name, "pull: always"));

    let (run, report) = apply_json(&lab);
    run.expect_code(0, "first apply");
    assert_eq!(events(&report, "pull_finished", &image.name).len(), 1);
    let first = lab.container("a");

    // Pulled again, the same image: nothing re-created. The plan lists the
    // pull but does not count it as a change.
    let plan = lab.plan();
    plan.expect_code(0, "plan with only an always pull");
    assert!(plan.stdout.contains("pulled again"), "{}", plan.stdout);
    let (run, report) = apply_json(&lab);
    run.expect_code(0, "second apply");
    let finished = events(&report, "pull_finished", &image.name);
    assert_eq!(finished.len(), 1, "pulled again: {report:#}");
    assert_eq!(finished[0]["updated"], false);
    assert_eq!(lab.container("a").id, first.id, "not re-created");

    // The registry has a new image under the name: the next apply pulls
    // it and re-creates the container on it.
    image.build_and_push(1);
    image.forget();
    let (run, report) = apply_json(&lab);
    run.expect_code(0, "apply after a new push");
    let finished = events(&report, "pull_finished", &image.name);
    assert_eq!(finished[0]["updated"], true, "{report:#}");
    let now = lab.container("a");
    assert_ne!(now.id, first.id, "re-created on the new image");
    let node = report["plan"]["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|c| c["name"] == "a"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(node["action"], "replace", "{report:#}");
    assert_eq!(node["reason"]["kind"], "image_updated", "{report:#}");
}

#[test]
fn pull_never_with_a_missing_image_fails_before_anything_is_made() {
    let registry = Registry::shared();
    let image = TestImage::pushed(registry, "never", "t", 1);
    let lab = TestLab::new("it-pull-never", &one_node(&image.name, "pull: never"));
    let run = lab.apply();
    run.expect_code(1, "apply with pull: never and no image");
    let flat = run.flat_stderr();
    assert!(
        flat.contains(&format!("image `{}` not available", image.name))
            && flat.contains("pull: never")
            && flat.contains("nothing was created"),
        "{}",
        run.both()
    );
    assert!(lab.containers().is_empty(), "{:#?}", lab.containers());
    assert!(lab.networks().is_empty(), "{:#?}", lab.networks());
    assert_eq!(image.id(), None, "never pulled");
}

#[test]
fn a_failed_pull_names_the_image_and_the_registry_s_answer_and_makes_nothing() {
    let registry = Registry::shared();
    let wrong = registry.unique("no-such-image", "t");
    // A port nothing listens on: this registry cannot be reached.
    let away = "127.0.0.1:9/benchscale-test/away:t";
    for (image, answer, fix) in [
        (
            wrong.as_str(),
            "manifest unknown",
            "check the image's name and tag",
        ),
        (away, "connection refused", "cannot be reached"),
    ] {
        let lab = TestLab::new("it-pull-fails", &one_node(image, ""));
        let run = lab.apply();
        run.expect_code(1, "apply with an image that cannot be pulled");
        // Without any white space: miette wraps long names where it likes.
        let squeezed = |text: &str| text.split_whitespace().collect::<String>();
        let flat = squeezed(&run.stderr.replace('│', " "));
        for words in [
            &format!("pull of image `{image}`"),
            answer,
            fix,
            "benchscale::docker::pull_failed",
            "Nothing was created",
        ] {
            assert!(
                flat.contains(&squeezed(words)),
                "`{words}` missing:\n{}",
                run.both()
            );
        }
        assert!(lab.containers().is_empty(), "{:#?}", lab.containers());
        assert!(lab.networks().is_empty(), "{:#?}", lab.networks());
    }
}

#[test]
fn three_images_are_pulled_at_once_and_all_before_the_first_create() {
    let registry = Registry::shared();
    let images: Vec<TestImage> = ["one", "two", "three"]
        .into_iter()
        .map(|name| TestImage::pushed(registry, name, "t", 8))
        .collect();
    let mut yaml =
        "name: {lab}\nnetworks:\n  lan:\n    subnet: 10.243.{n}.0/24\nnodes:\n".to_owned();
    for (i, image) in images.iter().enumerate() {
        yaml.push_str(&format!(
            "  n{i}:\n    kind: container\n    image: {}\n    command: [\"sleep\", \"3600\"]\n    networks: [lan]\n",
            image.name
        ));
    }
    let lab = TestLab::new("it-pull-three", &yaml);
    let (run, report) = apply_json(&lab);
    run.expect_code(0, "apply of three images");

    let first_create = first_at(&report, "node_created", None).expect("a create");
    let mut started = Vec::new();
    let mut finished = Vec::new();
    for image in &images {
        let name = Some(image.name.as_str());
        started.push(first_at(&report, "pull_progress", name).expect("progress"));
        finished.push(first_at(&report, "pull_finished", name).expect("finished"));
        assert!(image.id().is_some(), "{} is on the engine", image.name);
    }
    let (last_start, first_end) = (started.iter().max(), finished.iter().min());
    eprintln!(
        "pulls of 3 × 8 MiB: progress from {started:?} ms, done at {finished:?} ms; first create at {first_create} ms"
    );
    assert!(
        last_start < first_end,
        "every pull was under way before the first ended: {started:?} {finished:?}"
    );
    assert!(
        finished.iter().all(|&f| f <= first_create),
        "all pulled before the first create at {first_create}: {finished:?}"
    );
    assert_eq!(lab.containers().len(), 3);
}
