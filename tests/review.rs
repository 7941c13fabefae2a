//! The review-to-apply workflow: a plan saved in one place (the pull request's job) is shown
//! again in any format and applied exactly, from another directory, without `-f`.

use std::path::Path;

use predicates::prelude::*;

use crate::support::Scenario;

/// Snapshots `text` with what changes from run to run (the temporary directory, ids, lineages,
/// digests) replaced, so it compares what a reviewer sees.
fn snapshot(name: &str, text: &str, directory: &Path) {
    let text = text.replace(&directory.display().to_string(), "[DIR]");
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/review"),
        prepend_module_to_snapshot => false,
        filters => vec![
            (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[UUID]"),
            (r"[0-9a-f]{64}", "[DIGEST]"),
        ],
    }, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn a_saved_plan_is_shown_in_every_format_and_applied_from_elsewhere_without_f() {
    let scenario = Scenario::new();
    std::fs::create_dir_all(scenario.path().join("environments")).unwrap();
    std::fs::create_dir_all(scenario.path().join("merge-job")).unwrap();
    std::fs::write(
        scenario.path().join("environments/envform.yaml"),
        "version: 1\nenvironments:\n  - name: api\n    description: the API\n    configuration: {max_workers: 4}\n    execution_environment:\n      env_vars: {TOKEN: hunter2}\n  - name: batch\n    depends_on: [api]\n",
    )
    .unwrap();
    let plan_json = scenario
        .envform()
        .args(["plan", "-f", "environments/", "--format", "json"])
        .output()
        .unwrap();
    assert!(plan_json.status.success(), "{plan_json:?}");
    scenario
        .envform()
        .args(["plan", "-f", "environments/", "--out", "reviewed.tfplan"])
        .assert()
        .success()
        .stderr(predicate::str::contains("envform apply reviewed.tfplan"));
    let saved = std::fs::read_to_string(scenario.path().join("reviewed.tfplan")).unwrap();
    assert!(!saved.contains("hunter2"), "a secret value was saved");

    // `show --format json` gives what `plan --format json` gave; each format is snapshotted.
    for format in ["human", "json", "markdown"] {
        let shown = scenario
            .envform()
            .args(["show", "reviewed.tfplan", "--format", format])
            .output()
            .unwrap();
        assert!(shown.status.success(), "{shown:?}");
        let text = String::from_utf8(shown.stdout).unwrap();
        if format == "json" {
            // A state never written gets a new lineage with each plan: the rest is the same.
            let without_lineage = |text: &str| -> String {
                text.lines()
                    .filter(|line| !line.contains("\"lineage\": \""))
                    .collect()
            };
            assert_eq!(
                without_lineage(&text),
                without_lineage(&String::from_utf8_lossy(&plan_json.stdout))
            );
        }
        snapshot(&format!("show_{format}"), &text, scenario.path());
    }

    // The merge job runs in another directory, with only the plan file.
    let merge_job = scenario.path().join("merge-job");
    std::fs::copy(
        scenario.path().join("reviewed.tfplan"),
        merge_job.join("reviewed.tfplan"),
    )
    .unwrap();
    scenario
        .server
        .envform(&merge_job)
        .args(["apply", "reviewed.tfplan", "--auto-approve"])
        .assert()
        .success();
    assert!(!merge_job.join(".envform").exists(), "state went elsewhere");
    scenario
        .envform()
        .args(["plan", "-f", "environments/", "--detailed-exitcode"])
        .assert()
        .code(0);

    // A comment-only edit keeps a saved plan valid; a change of meaning makes it stale.
    let file = scenario.path().join("environments/envform.yaml");
    std::fs::write(&file, "version: 1\nenvironments:\n  - name: api\n    description: v2\n    configuration: {max_workers: 4}\n    execution_environment:\n      env_vars: {TOKEN: hunter2}\n  - name: batch\n    depends_on: [api]\n").unwrap();
    let plan_next = || {
        scenario
            .envform()
            .args([
                "plan",
                "-f",
                "environments/",
                "--out",
                "merge-job/next.tfplan",
            ])
            .assert()
            .success();
    };
    plan_next();
    let text = std::fs::read_to_string(&file).unwrap();
    let stale_after = |edit: &str| {
        std::fs::write(&file, edit).unwrap();
        scenario
            .server
            .envform(&merge_job)
            .args(["apply", "next.tfplan", "--auto-approve"])
            .output()
            .unwrap()
    };
    let commented = stale_after(&format!("# reviewed\n{}", text.replace("v2", "v2   # new")));
    assert!(commented.status.success(), "{commented:?}");
    plan_next();
    let changed = stale_after(&text.replace("v2", "v3"));
    assert_eq!(changed.status.code(), Some(1), "{changed:?}");
    assert!(
        String::from_utf8_lossy(&changed.stderr).contains("desired-state files changed"),
        "{changed:?}"
    );

    // The JSON rendering alone is not a plan to apply.
    std::fs::write(merge_job.join("rendered.json"), &plan_json.stdout).unwrap();
    scenario
        .server
        .envform(&merge_job)
        .args(["apply", "rendered.json", "--auto-approve"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("envform::plan::not_saved"));
}

#[test]
fn a_destroy_plan_is_saved_reviewed_and_applied() {
    let scenario = Scenario::new();
    scenario.write(
        "version: 1\nenvironments:\n  - name: alpha\n  - name: beta\n    depends_on: [alpha]\n",
    );
    scenario.apply_ok();
    scenario
        .plan()
        .args(["--destroy", "--out", "destroy.tfplan"])
        .assert()
        .success();
    scenario
        .envform()
        .args(["show", "destroy.tfplan"])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 to destroy"));
    assert_eq!(scenario.live().len(), 3, "a plan changes nothing");
    scenario
        .envform()
        .args(["apply", "destroy.tfplan", "--auto-approve"])
        .assert()
        .success();
    scenario.assert_converged(&[]);
}
