//! Two configurations in two directories, with two states, against one `envform serve`: each
//! environment belongs to the state that made it, and another configuration can neither adopt,
//! change nor delete it until it is taken over on purpose.

use std::path::Path;

use predicates::prelude::*;

use crate::support::{Scenario, read_state};

/// `envform` with `-f DIR/envform.yaml`, so state lives in `DIR/.envform/state.json`.
fn run(scenario: &Scenario, dir: &str, args: &[&str]) -> assert_cmd::Command {
    let mut command = scenario.envform();
    command
        .args(args)
        .args(["-f", &format!("{dir}/envform.yaml")]);
    command
}

fn write(scenario: &Scenario, dir: &str, yaml: &str) {
    std::fs::create_dir_all(scenario.path().join(dir)).unwrap();
    std::fs::write(scenario.path().join(dir).join("envform.yaml"), yaml).unwrap();
}

fn lineage(scenario: &Scenario, dir: &str) -> String {
    let state = read_state(&scenario.path().join(dir).join(".envform/state.json"));
    state["lineage"].as_str().unwrap().to_owned()
}

/// Standard error with the report's wrapping undone (line breaks, margins), so a long value
/// such as a lineage can be looked for whole.
fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '│')
        .collect()
}

#[test]
fn two_configurations_keep_to_their_own_environments_until_one_is_taken_over() {
    let scenario = Scenario::new();
    write(
        &scenario,
        "team-a",
        "version: 1\nenvironments:\n  - name: shared-env\n  - name: a-only\n",
    );
    run(&scenario, "team-a", &["apply", "--auto-approve"])
        .assert()
        .success();
    let a = lineage(&scenario, "team-a");

    // B names A's environment: the plan fails naming A's lineage, and B's apply changes nothing.
    write(
        &scenario,
        "team-b",
        "version: 1\nenvironments:\n  - name: shared-env\n    description: b's\n  - name: b-only\n",
    );
    let before = scenario.live();
    for command in [vec!["plan"], vec!["apply", "--auto-approve", "--adopt"]] {
        let output = run(&scenario, "team-b", &command).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let stderr = stderr_of(&output);
        assert!(
            stderr.contains("envform::plan::owned_elsewhere"),
            "{stderr}"
        );
        assert!(stderr.contains("`shared-env`isowned"), "{stderr}");
        assert!(stderr.contains(&a), "{stderr}");
    }
    assert_eq!(scenario.live(), before, "B's apply changed nothing live");
    let owners = scenario.envform().args(["env", "list"]).output().unwrap();
    let table = String::from_utf8_lossy(&owners.stdout).into_owned();
    assert!(table.contains("OWNER"), "{table}");
    assert!(table.contains(&a[..8]), "{table}");

    // Importing a name the configuration does not have is refused.
    run(&scenario, "team-b", &["import", "a-only"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "envform::import::not_in_configuration",
        ));
    // So is importing A's environment without --take-over; with it, it moves to B.
    run(&scenario, "team-b", &["import", "shared-env"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("envform::plan::owned_elsewhere"));
    run(
        &scenario,
        "team-b",
        &["import", "shared-env", "--take-over"],
    )
    .assert()
    .success()
    .stderr(predicate::str::contains("Took over `shared-env`"));
    let b = lineage(&scenario, "team-b");
    run(&scenario, "team-b", &["apply", "--auto-approve"])
        .assert()
        .success();
    let shared = scenario
        .envform()
        .args(["env", "get", "shared-env", "-o", "json"])
        .output()
        .unwrap();
    let shared: serde_json::Value = serde_json::from_slice(&shared.stdout).unwrap();
    assert_eq!(shared["description"], "b's");
    assert_eq!(shared["settings"]["envform_owner"]["lineage"], b.as_str());

    // Now A's plan fails the same way, naming B.
    let output = run(&scenario, "team-a", &["plan"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("envform::plan::owned_elsewhere"),
        "{stderr}"
    );
    assert!(stderr.contains(&b), "{stderr}");

    // Without it in A's file, A's plan leaves it out: counted, never listed as unmanaged.
    write(
        &scenario,
        "team-a",
        "version: 1\noptions: {prune: true}\nenvironments:\n  - name: a-only\n",
    );
    run(&scenario, "team-a", &["state", "rm", "shared-env"])
        .assert()
        .success();
    let output = run(&scenario, "team-a", &["plan", "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["owned_elsewhere"], 2, "{plan}");
    let unmanaged: Vec<&str> = plan["unmanaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        unmanaged,
        ["default"],
        "prune never reaches B's environments"
    );
    assert!(Path::new(&scenario.path().join("team-a/.envform/state.json")).exists());
}

#[test]
fn a_fresh_state_over_existing_environments_adopts_only_when_asked() {
    let scenario = Scenario::new();
    for name in ["old-1", "old-2"] {
        scenario
            .envform()
            .args(["env", "create", "--name", name])
            .assert()
            .success();
    }
    scenario.write("version: 1\nenvironments:\n  - name: old-1\n  - name: old-2\n");
    let output = scenario.plan().output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = stderr_of(&output);
    assert_eq!(
        stderr.matches("envform::plan::exists_unmanaged").count(),
        2,
        "{stderr}"
    );
    assert!(stderr.contains("envformimportold-1"), "{stderr}");
    let output = scenario.plan().arg("--adopt").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(text.contains("state is new or empty"), "{text}");
    assert!(text.contains("2 to adopt"), "{text}");
    scenario.apply().arg("--adopt").assert().success();
    assert_eq!(scenario.plan_exit_code(), 0);
}

#[test]
fn configurations_with_disjoint_scopes_see_only_their_own() {
    let scenario = Scenario::new();
    write(
        &scenario,
        "team-a",
        "version: 1\noptions: {prune: true, scope: {name_prefix: team-a-}}\nenvironments:\n  - name: team-a-api\n",
    );
    write(
        &scenario,
        "team-b",
        "version: 1\noptions: {prune: true, scope: {name_prefix: team-b-}}\nenvironments:\n  - name: team-b-api\n  - name: team-b-jobs\n",
    );
    for dir in ["team-a", "team-b"] {
        run(&scenario, dir, &["apply", "--auto-approve"])
            .assert()
            .success();
    }
    // Something unowned outside both scopes, which `prune` would otherwise delete.
    scenario
        .envform()
        .args(["env", "create", "--name", "scratch"])
        .assert()
        .success();
    for (dir, own) in [
        ("team-a", vec!["team-a-api"]),
        ("team-b", vec!["team-b-api", "team-b-jobs"]),
    ] {
        let output = run(
            &scenario,
            dir,
            &["plan", "--format", "json", "--detailed-exitcode"],
        )
        .output()
        .unwrap();
        assert_eq!(output.status.code(), Some(0), "{dir}: {output:?}");
        let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let seen: Vec<&str> = plan["resource_changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|change| change["name"].as_str().unwrap())
            .collect();
        assert_eq!(seen, own, "{dir} sees only its own");
        assert_eq!(plan["unmanaged"], serde_json::json!([]), "{dir}");
        assert_eq!(
            plan["owned_elsewhere"], 0,
            "{dir}: the others are out of scope"
        );
    }
    run(&scenario, "team-a", &["apply", "--auto-approve"])
        .assert()
        .success();
    let live = scenario.live();
    for name in ["scratch", "team-b-api", "team-b-jobs", "team-a-api"] {
        assert!(
            live.contains_key(name),
            "{name} survives team-a's prune: {live:?}"
        );
    }

    // A desired environment outside its own scope is a diagnostic at its name.
    write(
        &scenario,
        "team-a",
        "version: 1\noptions: {scope: {name_prefix: team-a-, tags: [team-a]}}\nenvironments:\n  - name: team-a-api\n    tags: [team-a]\n  - name: stray\n    tags: [team-a]\n  - name: team-a-untagged\n",
    );
    let output = run(&scenario, "team-a", &["validate"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("envform::spec::outside_scope").count(),
        2,
        "{stderr}"
    );
    assert!(stderr.contains("team-a/envform.yaml:6:11"), "{stderr}");
    let joined = stderr_of(&output);
    assert!(joined.contains("doesnotstartwith`team-a-`"), "{stderr}");
    assert!(joined.contains("lacksthetag`team-a`"), "{stderr}");
}
