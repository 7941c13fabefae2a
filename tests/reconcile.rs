//! The reconciler end to end: `envform validate | plan | apply | destroy` as processes against a
//! real `envform serve`, with real state files and locks.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};

use predicates::prelude::*;
use serde_json::Value;

use crate::support::{Scenario, Server, envform, state_ids};

fn examples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files = vec![root.join("environments/envform.yaml")];
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(root.join("scenarios"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .collect();
    scenarios.sort();
    files.extend(scenarios);
    files
}

/// A scenario whose desired-state file holds `yaml`.
fn served(yaml: &str) -> Scenario {
    let scenario = Scenario::new();
    scenario.write(yaml);
    scenario
}

#[test]
fn every_example_validates_plans_applies_and_converges() {
    for example in examples() {
        let scenario = Scenario::new().with_file(&example).with_state("state.json");
        let file = example.display().to_string();
        envform(scenario.path())
            .args(["validate", "-f", &file])
            .assert()
            .success();
        let server = &scenario.server;
        let lists_before = server.requests("GET", "/api/v1/environments");
        scenario
            .plan()
            .arg("--detailed-exitcode")
            .assert()
            .code(2)
            .stdout(predicate::str::contains("to add"));
        assert_eq!(
            server.requests("GET", "/api/v1/environments") - lists_before,
            1,
            "a plan makes exactly one list call ({file})"
        );
        assert_eq!(server.requests("GET", "/api/v1/environments/"), 0);
        scenario
            .apply()
            .assert()
            .success()
            .stdout(predicate::str::contains("Apply complete!"));
        scenario
            .plan()
            .arg("--detailed-exitcode")
            .assert()
            .code(0)
            .stdout(predicate::str::contains("No changes."));
        let managed = scenario.state_ids();
        let live = scenario.live();
        for (name, id) in &managed {
            assert_eq!(live.get(name), Some(id), "{file}: {name}");
        }
        assert!(!managed.is_empty(), "{file}");
    }
}

#[test]
fn plan_formats_and_exit_codes() {
    let scenario = served(
        "version: 1\nenvironments:\n  - name: api\n    description: \"a | b <c> `d`\"\n    execution_environment:\n      env_vars: {TOKEN: hunter2-secret}\n",
    )
    .with_file("envform.yaml");
    let json = scenario.plan().args(["--format", "json"]).output().unwrap();
    assert!(json.status.success(), "{json:?}");
    let document: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(document["format_version"], "1.1");
    assert_eq!(
        document["resource_changes"][0]["change"]["actions"],
        serde_json::json!(["create"])
    );
    assert!(!String::from_utf8_lossy(&json.stdout).contains("hunter2-secret"));
    let markdown = scenario
        .plan()
        .args(["--format", "markdown"])
        .output()
        .unwrap();
    let markdown = String::from_utf8(markdown.stdout).unwrap();
    assert!(markdown.contains("<details>"), "{markdown}");
    assert!(!markdown.contains("hunter2-secret"));
    let human = scenario.plan().output().unwrap();
    let human = String::from_utf8(human.stdout).unwrap();
    assert!(human.contains("(sensitive)"), "{human}");
    assert!(!human.contains("hunter2-secret"));
    assert!(!human.contains('\u{1b}'), "no colour off a terminal");
    // Bad input is exit 1, never 2.
    scenario.write_file("bad.yaml", "version: 1\nenvironments:\n  - name: x\n");
    scenario
        .envform()
        .args(["plan", "-f", "bad.yaml", "--detailed-exitcode"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bad.yaml"));
    scenario
        .envform()
        .args(["plan", "--format", "yaml"])
        .assert()
        .code(1);
}

/// The files' `state:` block moves local state; a file at the default place is then not read.
#[test]
fn plan_reads_local_state_where_the_file_puts_it() {
    let scenario = served(
        "version: 1\nstate:\n  backend: local\n  path: custom/state.json\nenvironments:\n  - name: api\n",
    );
    scenario.apply().assert().success();
    assert_eq!(
        state_ids(&scenario.path().join("custom/state.json"))
            .keys()
            .collect::<Vec<_>>(),
        ["api"]
    );
    // Unreadable state at the default place: read by mistake, it would fail the plan.
    std::fs::create_dir_all(scenario.path().join(".envform")).unwrap();
    scenario.write_file(".envform/state.json", "not a state file");
    scenario
        .plan()
        .arg("--detailed-exitcode")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("No changes."));
    // Without the block, the default place is the state, and its error is reported.
    scenario.write("version: 1\nenvironments:\n  - name: api\n");
    scenario
        .plan()
        .arg("--detailed-exitcode")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("state.json"));
}

#[test]
fn without_auto_approve_off_a_terminal_nothing_is_applied() {
    let scenario = served("version: 1\nenvironments:\n  - name: api\n");
    scenario
        .envform()
        .arg("apply")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--auto-approve"));
    assert_eq!(scenario.live().len(), 1, "only default");
    assert!(!scenario.state_path().exists());
}

#[test]
fn saved_plan_applies_exactly_and_is_refused_once_stale() {
    let scenario = served("version: 1\nenvironments:\n  - name: api\n    description: one\n");
    scenario.save_plan();
    scenario.apply().arg("plan.json").assert().success();
    assert!(scenario.live().contains_key("api"));

    // A plan made, then the world moves (an out-of-band edit): refused, saying what moved.
    scenario.write("version: 1\nenvironments:\n  - name: api\n    description: two\n");
    scenario.save_plan();
    scenario
        .envform()
        .args(["env", "update", "api", "--tag", "moved"])
        .assert()
        .success();
    scenario
        .apply()
        .arg("plan.json")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("`api` changed live"));
    // A comment-only edit of the file keeps a saved plan valid; a change of meaning does not.
    scenario.save_plan();
    scenario.write(
        "# reviewed in the pull request\nversion: 1\nenvironments:\n  - description: two   # the API\n    name: api\n",
    );
    scenario.apply().arg("plan.json").assert().success();
    scenario.save_plan();
    scenario.write("version: 1\nenvironments:\n  - name: api\n    description: three\n");
    scenario
        .apply()
        .arg("plan.json")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("desired-state files changed"));
    scenario.write_file("junk.json", "{not a plan");
    scenario
        .apply()
        .arg("junk.json")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("junk.json"));
}

#[test]
fn rename_swap_adopt_delete_and_recreate() {
    let scenario = Scenario::new();
    let apply = |yaml: &str| {
        scenario.write(yaml);
        scenario.apply_ok()
    };

    // Adopt: a live environment of a desired name that nothing owns is taken over when asked,
    // not created again; without --adopt the plan refuses and nothing changes.
    scenario
        .envform()
        .args(["env", "create", "--name", "legacy"])
        .assert()
        .success();
    let legacy_id = scenario.live()["legacy"].clone();
    scenario.write(
        "version: 1\nenvironments:\n  - name: legacy\n    description: adopted\n  - name: blue\n  - name: green\n",
    );
    scenario
        .apply()
        .assert()
        .code(1)
        .stderr(predicate::str::contains("envform::plan::exists_unmanaged"))
        .stderr(predicate::str::contains("envform import legacy"));
    assert_eq!(scenario.live().len(), 2, "nothing was created");
    let out = scenario.apply().arg("--adopt").assert().success();
    let out = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(out.contains("adopt"), "{out}");
    assert_eq!(scenario.live()["legacy"], legacy_id);
    assert_eq!(scenario.plan_exit_code(), 0);

    // Rename in place keeps the id.
    let blue_id = scenario.live()["blue"].clone();
    apply(
        "version: 1\nenvironments:\n  - name: legacy\n    description: adopted\n  - name: azure\n    renamed_from: blue\n  - name: green\n",
    );
    assert_eq!(scenario.live()["azure"], blue_id);
    assert_eq!(scenario.plan_exit_code(), 0);

    // Swap two names through a temporary one: both ids survive, names exchanged.
    let before = scenario.live();
    apply(
        "version: 1\nenvironments:\n  - name: legacy\n    description: adopted\n  - name: green\n    renamed_from: azure\n  - name: azure\n    renamed_from: green\n",
    );
    let after = scenario.live();
    assert_eq!(after["green"], before["azure"]);
    assert_eq!(after["azure"], before["green"]);
    assert_eq!(scenario.plan_exit_code(), 0);
    scenario.assert_converged(&["azure", "green", "legacy"]);

    // Deleted outside envform (an owned environment only with --force): re-created on the next
    // apply.
    scenario
        .envform()
        .args(["env", "delete", "green", "--yes"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("envform::cli::owned"));
    scenario
        .envform()
        .args(["env", "delete", "green", "--yes", "--force"])
        .assert()
        .success();
    let out = apply(
        "version: 1\nenvironments:\n  - name: legacy\n    description: adopted\n  - name: green\n    renamed_from: azure\n  - name: azure\n    renamed_from: green\n",
    );
    assert!(out.contains("created"), "{out}");
    scenario.assert_converged(&["azure", "green", "legacy"]);

    // Removed from the file: deleted.
    apply("version: 1\nenvironments:\n  - name: legacy\n    description: adopted\n");
    scenario.assert_converged(&["legacy"]);
    assert_eq!(scenario.plan_exit_code(), 0);
}

#[test]
fn protections_and_destroy() {
    let scenario = Scenario::new();
    let many: String = (0..10)
        .map(|index| format!("  - name: env-{index:03}\n"))
        .collect();
    scenario.write(&format!(
        "version: 1\nenvironments:\n  - name: keep\n    lifecycle: {{prevent_destroy: true}}\n{many}"
    ));
    scenario.apply().assert().success();

    // Deleting 4 of 11 managed (> 30%) needs --force; nothing happens without it.
    let fewer: String = (4..10)
        .map(|index| format!("  - name: env-{index:03}\n"))
        .collect();
    scenario.write(&format!(
        "version: 1\nenvironments:\n  - name: keep\n    lifecycle: {{prevent_destroy: true}}\n{fewer}"
    ));
    scenario
        .apply()
        .assert()
        .code(1)
        .stderr(predicate::str::contains("envform::plan::threshold"));
    assert_eq!(scenario.live().len(), 12);
    scenario.apply().arg("--force").assert().success();
    assert_eq!(scenario.live().len(), 8);

    // prevent_destroy: `env delete` names the owner and the protection, destroy fails, and
    // nothing is deleted.
    scenario
        .envform()
        .args(["env", "delete", "keep", "--yes"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("envform::cli::owned"))
        .stderr(predicate::str::contains("prevent_destroy"));
    scenario
        .envform()
        .args(["destroy", "--auto-approve", "--force"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("prevent_destroy"));
    assert_eq!(scenario.live().len(), 8);
    scenario.write(&format!(
        "version: 1\nenvironments:\n  - name: keep\n{fewer}"
    ));
    scenario.apply().assert().success();
    scenario
        .envform()
        .args(["destroy", "--auto-approve", "--force"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Destroy complete!"));
    assert_eq!(
        scenario.live().keys().collect::<Vec<_>>(),
        ["default"],
        "default is never deleted"
    );
    assert!(scenario.state_ids().is_empty());
}

#[test]
fn applies_through_injected_faults_converge_without_duplicates() {
    // Reads fail twice (retried by the client); two creates are committed but answered 500
    // (ambiguous: the executor looks them up instead of creating twice).
    let scenario = Scenario::with(Server::options().args([
        "--faults",
        "status=503,count=2,method=GET;status=500,method=POST,when=after,count=2",
    ]));
    let names: Vec<String> = (0..6).map(|index| format!("faulty-{index}")).collect();
    let yaml: String = names
        .iter()
        .map(|name| format!("  - name: {name}\n"))
        .collect();
    scenario.write(&format!("version: 1\nenvironments:\n{yaml}"));
    let mut attempts = 0;
    loop {
        attempts += 1;
        let output = scenario.apply().output().unwrap();
        if output.status.success() {
            break;
        }
        assert!(attempts < 4, "apply did not converge: {output:?}");
    }
    scenario.assert_converged(&names.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(scenario.plan_exit_code(), 0);
}

/// Starts `envform apply --auto-approve` with `extra` flags and returns it with a reader of its
/// stderr lines.
fn spawn_apply(scenario: &Scenario, extra: &[&str]) -> (Child, BufReader<ChildStderr>) {
    let mut child = scenario
        .apply_process()
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    (child, stderr)
}

/// Reads stderr until `count` steps have finished (or the stream ends).
fn wait_for_finished_steps(stderr: &mut BufReader<ChildStderr>, count: usize) {
    let mut finished = 0;
    let mut line = String::new();
    while finished < count {
        line.clear();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line.contains(": Created after") {
            finished += 1;
        }
    }
}

const TWENTY: usize = 20;

/// Writes a chain of twenty environments, each depending on the one before, and returns their
/// names.
fn twenty_environments(scenario: &Scenario) -> Vec<String> {
    let names: Vec<String> = (0..TWENTY)
        .map(|index| format!("step-{index:02}"))
        .collect();
    // A chain, so each step waits for the previous one: kills land between steps.
    let mut yaml = String::from("version: 1\nenvironments:\n");
    for (index, name) in names.iter().enumerate() {
        yaml.push_str(&format!("  - name: {name}\n"));
        if index > 0 {
            yaml.push_str(&format!("    depends_on: [{}]\n", names[index - 1]));
        }
    }
    scenario.write(&yaml);
    names
}

fn as_strs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

#[test]
fn kill_nine_at_many_points_then_rerun_converges() {
    // Every step boundary of the 20-step chain: before the first, and after each of 19.
    for kill_after in 0..TWENTY {
        let scenario = Scenario::new();
        let names = twenty_environments(&scenario);
        let (mut child, mut stderr) = spawn_apply(&scenario, &["--parallelism", "1"]);
        wait_for_finished_steps(&mut stderr, kill_after);
        let _ = child.kill();
        let _ = child.wait();
        // The lock died with the process: the rerun needs no force-unlock.
        scenario.apply().assert().success();
        scenario.assert_converged(&as_strs(&names));
    }
}

#[test]
fn kill_nine_during_journal_appends_and_compaction_then_rerun_converges() {
    // Independent environments at parallelism 4: every round of finished steps is one journal
    // record, so kills land during appends; the last points land in the final save and the
    // compaction at unlock.
    const COUNT: usize = 40;
    let names: Vec<String> = (0..COUNT).map(|index| format!("many-{index:02}")).collect();
    let mut yaml = String::from("version: 1\nenvironments:\n");
    for name in &names {
        yaml.push_str(&format!("  - name: {name}\n    description: one of many\n"));
    }
    let mut journals_seen = 0;
    let points: Vec<(usize, u64)> = [1, 5, 13, 26, 37]
        .into_iter()
        .map(|steps| (steps, 0))
        .chain([0, 1, 3, 6, 12].into_iter().map(|pause| (COUNT, pause)))
        .collect();
    for (steps, pause_ms) in points {
        let scenario = Scenario::new();
        scenario.write(&yaml);
        let (mut child, mut stderr) = spawn_apply(&scenario, &["--parallelism", "4"]);
        wait_for_finished_steps(&mut stderr, steps);
        std::thread::sleep(std::time::Duration::from_millis(pause_ms));
        let _ = child.kill();
        let _ = child.wait();
        let state_path = scenario.state_path();
        if envform::state::LocalBackend::new(&state_path)
            .journal_path()
            .exists()
        {
            journals_seen += 1;
        }
        if state_path.exists() {
            // What state claims is live, with the same id: nothing saved was lost or invented.
            let live = scenario.live();
            for (name, id) in scenario.state_ids() {
                assert_eq!(live.get(&name), Some(&id), "{name} after {steps} steps");
            }
        }
        scenario.apply().assert().success();
        scenario.assert_converged(&as_strs(&names));
        assert!(
            !envform::state::LocalBackend::new(&state_path)
                .journal_path()
                .exists(),
            "a finished apply leaves no journal"
        );
    }
    assert!(
        journals_seen > 0,
        "no kill landed while the journal was in use"
    );
}

#[test]
fn interrupt_stops_cleanly_with_exit_130() {
    let scenario = Scenario::new();
    let names = twenty_environments(&scenario);
    let (mut child, mut stderr) = spawn_apply(&scenario, &["--parallelism", "1"]);
    wait_for_finished_steps(&mut stderr, 2);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "stderr: {rest}");
    assert!(rest.contains("Interrupt received"), "{rest}");
    // State holds exactly what finished; the lock is free at once.
    let state = scenario.state_ids();
    let live = scenario.live();
    assert!(state.len() < TWENTY, "interrupted early: {}", state.len());
    for (name, id) in &state {
        assert_eq!(live.get(name), Some(id));
    }
    scenario
        .apply()
        .args(["--lock-timeout", "0s"])
        .assert()
        .success();
    scenario.assert_converged(&as_strs(&names));
}

#[test]
fn concurrent_applies_on_local_state_take_turns() {
    for concurrency in [2, 8] {
        let scenario = Scenario::new();
        let names = twenty_environments(&scenario);
        // All started before any is waited for, so they really contend for the lock.
        let children: Vec<_> = (0..concurrency)
            .map(|_| {
                scenario
                    .apply_process()
                    .args(["--lock-timeout", "60s"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{output:?}");
        }
        // The lock log: every hold released before the next began.
        let log =
            std::fs::read_to_string(scenario.path().join(".envform/state.json.lock.log")).unwrap();
        let holds =
            envform::state::check_lock_log(&log).unwrap_or_else(|error| panic!("{error}\n{log}"));
        assert!(
            holds >= concurrency,
            "{holds} holds for {concurrency} applies:\n{log}"
        );
        scenario.assert_converged(&as_strs(&names));
    }
}

#[test]
fn kill_nine_during_a_create_then_rerun_adopts_instead_of_duplicating() {
    // The organization's namespace takes 2 s: creates made meanwhile wait in `provisioning`.
    let scenario = Scenario::with(Server::options().args(["--provision-delay", "2s"]));
    scenario.write("version: 1\nenvironments:\n  - name: slow-one\n  - name: slow-two\n");
    let (mut child, mut stderr) = spawn_apply(&scenario, &["--parallelism", "1"]);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "apply ended early"
        );
        if line.contains("slow-one: Creating") {
            break;
        }
    }
    // Give the POST time to land, then kill while the step waits for provisioning.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = child.kill();
    let _ = child.wait();
    let state = scenario.state();
    assert!(
        state["intents"].get("slow-one").is_some(),
        "the create's intent was recorded before it was sent: {state}"
    );
    assert!(scenario.live().contains_key("slow-one"));
    let out = scenario.apply_ok();
    assert!(out.contains("adopt"));
    scenario.assert_converged(&["slow-one", "slow-two"]);
    let state = scenario.state();
    assert!(
        state.get("intents").is_none(),
        "intents are cleared: {state}"
    );
}

#[test]
fn server_killed_mid_write_keeps_a_sound_database_and_apply_converges() {
    let mut scenario = Scenario::new();
    let names: Vec<String> = (0..30).map(|index| format!("busy-{index:02}")).collect();
    let yaml: String = names
        .iter()
        .map(|name| format!("  - name: {name}\n"))
        .collect();
    scenario.write(&format!("version: 1\nenvironments:\n{yaml}"));
    let (mut apply, mut stderr) = spawn_apply(&scenario, &["--parallelism", "8"]);
    wait_for_finished_steps(&mut stderr, 5);
    // kill -9 the server while writes are in flight.
    scenario.server.kill();
    // The apply would spend its retries on a dead server; it is not what this test is about.
    let _ = apply.kill();
    let _ = apply.wait();
    scenario.server.start_again();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let integrity: String = runtime.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&scenario.server.db);
        let mut connection = sqlx::ConnectOptions::connect(&options).await.unwrap();
        sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut connection)
            .await
            .unwrap()
    });
    assert_eq!(integrity, "ok");
    // The server came back on another port: the same control plane, moved.
    scenario
        .apply()
        .assert()
        .code(1)
        .stderr(predicate::str::contains("envform::state::target_changed"));
    scenario
        .apply()
        .arg("--control-plane-moved")
        .assert()
        .success();
    scenario.assert_converged(&as_strs(&names));
}

#[test]
fn a_plan_over_a_threshold_is_shown_in_every_format_then_refused_and_force_travels_in_a_saved_plan()
{
    let scenario = Scenario::new();
    let names = |range: std::ops::Range<usize>| -> String {
        range
            .map(|index| format!("  - name: env-{index:03}\n"))
            .collect()
    };
    scenario.write(&format!("version: 1\nenvironments:\n{}", names(0..300)));
    scenario.apply_ok();
    // 100 of 300 deleted is 33%, more than the default 30%.
    scenario.write(&format!("version: 1\nenvironments:\n{}", names(100..300)));
    for format in ["human", "json", "markdown"] {
        let output = scenario.plan().args(["--format", format]).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{format}: {output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(stderr.contains("envform::plan::threshold"), "{stderr}");
        match format {
            "json" => {
                let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
                assert_eq!(plan["errors"][0]["code"], "envform::plan::threshold");
                let deletes = plan["resource_changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|change| change["change"]["actions"] == serde_json::json!(["delete"]))
                    .count();
                assert_eq!(deletes, 100, "the whole plan is there");
            }
            "markdown" => {
                assert!(
                    stdout.starts_with("### envform plan\n\n> **Refused:**"),
                    "{stdout}"
                );
                assert!(stdout.contains("env-099"), "{stdout}");
            }
            _ => assert!(stdout.contains("100 to destroy"), "{stdout}"),
        }
    }
    scenario
        .apply()
        .assert()
        .code(1)
        .stdout(predicate::str::contains("100 to destroy"))
        .stderr(predicate::str::contains("envform::plan::threshold"));
    assert_eq!(scenario.live().len(), 301, "nothing was deleted");
    // Approved once at plan time, the saved plan applies on the merge job without --force.
    scenario
        .plan()
        .args(["--force", "--out", "approved.json"])
        .assert()
        .success();
    scenario
        .envform()
        .args(["apply", "approved.json", "--auto-approve"])
        .assert()
        .success();
    assert_eq!(scenario.live().len(), 201);
}

#[test]
fn destroy_of_a_target_takes_what_depends_on_it() {
    let scenario = Scenario::new();
    scenario.write(
        "version: 1\nenvironments:\n  - name: dev-eu\n  - name: staging-eu\n    depends_on: [dev-eu]\n  - name: prod-eu\n    depends_on: [staging-eu]\n  - name: other\n",
    );
    scenario.apply_ok();
    let output = scenario
        .envform()
        .args(["destroy", "--target", "dev-eu", "--auto-approve"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("3 to destroy"), "{stdout}");
    scenario.assert_converged(&["other"]);
}

#[test]
fn the_same_configuration_from_any_directory_finds_the_same_database_and_state() {
    // Applied from the parent directory, the embedded database is the parent's; the state beside
    // the file records it, so the configuration planned from its own directory or a sibling one
    // reads the same database and the same state, and creates no other database there.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("day1/environments")).unwrap();
    std::fs::create_dir_all(root.path().join("elsewhere")).unwrap();
    crate::support::write_file(
        &root.path().join("day1/environments"),
        "envform.yaml",
        "version: 1\nenvironments:\n  - name: alpha\n  - name: beta\n",
    );
    envform(root.path())
        .args(["apply", "-f", "day1/environments/", "--auto-approve"])
        .assert()
        .success();
    let runs: [(&str, &str); 3] = [
        ("day1/environments", "envform.yaml"),
        ("elsewhere", "../day1/environments/"),
        (".", "day1/environments/"),
    ];
    for (directory, file) in runs {
        envform(&root.path().join(directory))
            .args(["plan", "-f", file, "--detailed-exitcode"])
            .assert()
            .code(0);
        envform(&root.path().join(directory))
            .args(["state", "list", "-f", file])
            .assert()
            .success()
            .stdout(predicate::str::is_match("(?s)^NAME +ID\nalpha +[0-9a-f-]+\nbeta +").unwrap());
    }
    for directory in ["day1/environments", "elsewhere"] {
        let database = root
            .path()
            .join(directory)
            .join(".envform/control-plane.db");
        assert!(!database.exists(), "{} was created", database.display());
    }

    // Another database named on purpose is refused, naming both, until the move is declared.
    let output = envform(root.path())
        .args([
            "plan",
            "-f",
            "day1/environments/",
            "--embedded-db",
            "other.db",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).replace(['\n', '│', ' '], "");
    assert!(
        stderr.contains("envform::state::target_changed") && stderr.contains("other.db"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("to add"));
}

#[test]
fn an_apply_with_nothing_to_do_writes_no_state() {
    let scenario = Scenario::new();
    scenario.write("version: 1\nenvironments:\n  - name: alpha\n  - name: beta\n");
    scenario.apply_ok();
    let path = scenario.state_path();
    let bytes = std::fs::read(&path).unwrap();
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    let out = scenario.apply_ok();
    assert!(out.contains("No changes."), "{out}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "state is untouched");
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified
    );
    // What state manages, for scripts.
    let listed = scenario
        .envform()
        .args(["state", "list", "-o", "json"])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let entries: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
}
