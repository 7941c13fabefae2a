//! The reconciler end to end: `envform validate | plan | apply | destroy` as processes against a
//! real `envform serve`, with real state files and locks.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use predicates::prelude::*;
use serde_json::Value;

use crate::support::{Server, envform, envform_bin};

fn examples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files = vec![root.join("envform.yaml")];
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

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    crate::support::write_file(dir, name, text)
}

/// A fresh directory with its own `envform serve`, and `envform.yaml` holding `yaml` in it.
fn served(yaml: &str) -> (tempfile::TempDir, Server, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    let file = write(dir.path(), "envform.yaml", yaml);
    (dir, server, file)
}

/// Live environments by name → id, through the binary.
fn live(server: &Server, dir: &Path) -> BTreeMap<String, String> {
    server.live_environments(dir)
}

/// State's resources by name → id.
fn state_ids(state_file: &Path) -> BTreeMap<String, String> {
    let state: Value = serde_json::from_str(&std::fs::read_to_string(state_file).unwrap()).unwrap();
    state["resources"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, resource)| (name.clone(), resource["id"].as_str().unwrap().to_owned()))
        .collect()
}

/// Asserts that state and live agree: every state entry is live with the same id, and live holds
/// exactly `expected` plus `default`.
fn assert_converged(server: &Server, dir: &Path, state_file: &Path, expected: &[&str]) {
    let live = live(server, dir);
    let state = state_ids(state_file);
    for (name, id) in &state {
        assert_eq!(
            live.get(name),
            Some(id),
            "state's `{name}` is not live with id {id}"
        );
    }
    let mut names: Vec<&str> = live.keys().map(String::as_str).collect();
    names.retain(|name| *name != "default");
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(names, expected, "live environments");
    assert_eq!(
        state.keys().map(String::as_str).collect::<Vec<_>>(),
        expected,
        "state entries"
    );
}

#[test]
fn every_example_validates_plans_applies_and_converges() {
    for example in examples() {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&dir.path().join("serve.db"), &[]);
        let file = example.display().to_string();
        let state = dir.path().join("state.json");
        let state_arg = state.display().to_string();
        envform(dir.path())
            .args(["validate", "-f", &file])
            .assert()
            .success();
        let lists_before = server.requests("GET", "/api/v1/environments");
        server
            .envform(dir.path())
            .args([
                "plan",
                "-f",
                &file,
                "--state",
                &state_arg,
                "--detailed-exitcode",
            ])
            .assert()
            .code(2)
            .stdout(predicate::str::contains("to add"));
        assert_eq!(
            server.requests("GET", "/api/v1/environments") - lists_before,
            1,
            "a plan makes exactly one list call ({file})"
        );
        assert_eq!(server.requests("GET", "/api/v1/environments/"), 0);
        server
            .envform(dir.path())
            .args([
                "apply",
                "-f",
                &file,
                "--state",
                &state_arg,
                "--auto-approve",
            ])
            .assert()
            .success()
            .stdout(predicate::str::contains("Apply complete!"));
        server
            .envform(dir.path())
            .args([
                "plan",
                "-f",
                &file,
                "--state",
                &state_arg,
                "--detailed-exitcode",
            ])
            .assert()
            .code(0)
            .stdout(predicate::str::contains("No changes."));
        let managed = state_ids(&state);
        let live = live(&server, dir.path());
        for (name, id) in &managed {
            assert_eq!(live.get(name), Some(id), "{file}: {name}");
        }
        assert!(!managed.is_empty(), "{file}");
    }
}

#[test]
fn plan_formats_and_exit_codes() {
    let (dir, server, file) = served(
        "version: 1\nenvironments:\n  - name: api\n    description: \"a | b <c> `d`\"\n    execution_environment:\n      env_vars: {TOKEN: hunter2-secret}\n",
    );
    let file = file.display().to_string();
    let json = server
        .envform(dir.path())
        .args(["plan", "-f", &file, "--format", "json"])
        .output()
        .unwrap();
    assert!(json.status.success(), "{json:?}");
    let document: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(document["format_version"], "1.0");
    assert_eq!(
        document["resource_changes"][0]["change"]["actions"],
        serde_json::json!(["create"])
    );
    assert!(!String::from_utf8_lossy(&json.stdout).contains("hunter2-secret"));
    let markdown = server
        .envform(dir.path())
        .args(["plan", "-f", &file, "--format", "markdown"])
        .output()
        .unwrap();
    let markdown = String::from_utf8(markdown.stdout).unwrap();
    assert!(markdown.contains("<details>"), "{markdown}");
    assert!(!markdown.contains("hunter2-secret"));
    let human = server
        .envform(dir.path())
        .args(["plan", "-f", &file])
        .output()
        .unwrap();
    let human = String::from_utf8(human.stdout).unwrap();
    assert!(human.contains("(sensitive)"), "{human}");
    assert!(!human.contains("hunter2-secret"));
    assert!(!human.contains('\u{1b}'), "no colour off a terminal");
    // Bad input is exit 1, never 2.
    write(
        dir.path(),
        "bad.yaml",
        "version: 1\nenvironments:\n  - name: x\n",
    );
    server
        .envform(dir.path())
        .args(["plan", "-f", "bad.yaml", "--detailed-exitcode"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bad.yaml"));
    server
        .envform(dir.path())
        .args(["plan", "--format", "yaml"])
        .assert()
        .code(1);
}

/// The files' `state:` block moves local state; a file at the default place is then not read.
#[test]
fn plan_reads_local_state_where_the_file_puts_it() {
    let (dir, server, _file) = served(
        "version: 1\nstate:\n  backend: local\n  path: custom/state.json\nenvironments:\n  - name: api\n",
    );
    server
        .envform(dir.path())
        .args(["apply", "--auto-approve"])
        .assert()
        .success();
    assert_eq!(
        state_ids(&dir.path().join("custom/state.json"))
            .keys()
            .collect::<Vec<_>>(),
        ["api"]
    );
    // Unreadable state at the default place: read by mistake, it would fail the plan.
    std::fs::create_dir_all(dir.path().join(".envform")).unwrap();
    write(dir.path(), ".envform/state.json", "not a state file");
    server
        .envform(dir.path())
        .args(["plan", "--detailed-exitcode"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("No changes."));
    // Without the block, the default place is the state, and its error is reported.
    write(
        dir.path(),
        "envform.yaml",
        "version: 1\nenvironments:\n  - name: api\n",
    );
    server
        .envform(dir.path())
        .args(["plan", "--detailed-exitcode"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("state.json"));
}

#[test]
fn without_auto_approve_off_a_terminal_nothing_is_applied() {
    let (dir, server, _file) = served("version: 1\nenvironments:\n  - name: api\n");
    server
        .envform(dir.path())
        .arg("apply")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--auto-approve"));
    assert_eq!(live(&server, dir.path()).len(), 1, "only default");
    assert!(!dir.path().join(".envform/state.json").exists());
}

#[test]
fn saved_plan_applies_exactly_and_is_refused_once_stale() {
    let (dir, server, _file) =
        served("version: 1\nenvironments:\n  - name: api\n    description: one\n");
    server
        .envform(dir.path())
        .args(["plan", "--out", "plan.json"])
        .assert()
        .success();
    server
        .envform(dir.path())
        .args(["apply", "plan.json", "--auto-approve"])
        .assert()
        .success();
    assert!(live(&server, dir.path()).contains_key("api"));

    // A plan made, then the world moves (an out-of-band edit): refused, saying what moved.
    write(
        dir.path(),
        "envform.yaml",
        "version: 1\nenvironments:\n  - name: api\n    description: two\n",
    );
    server
        .envform(dir.path())
        .args(["plan", "--out", "plan.json"])
        .assert()
        .success();
    server
        .envform(dir.path())
        .args(["env", "update", "api", "--tag", "moved"])
        .assert()
        .success();
    server
        .envform(dir.path())
        .args(["apply", "plan.json", "--auto-approve"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("`api` changed live"));
    // The desired file changing also makes it stale.
    server
        .envform(dir.path())
        .args(["plan", "--out", "plan.json"])
        .assert()
        .success();
    write(
        dir.path(),
        "envform.yaml",
        "version: 1\nenvironments:\n  - name: api\n    description: three\n",
    );
    server
        .envform(dir.path())
        .args(["apply", "plan.json", "--auto-approve"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("desired-state files changed"));
    std::fs::write(dir.path().join("junk.json"), "{not a plan").unwrap();
    server
        .envform(dir.path())
        .args(["apply", "junk.json", "--auto-approve"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("junk.json"));
}

#[test]
fn rename_swap_adopt_delete_and_recreate() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    let state = dir.path().join(".envform/state.json");
    let apply = |yaml: &str| {
        write(dir.path(), "envform.yaml", yaml);
        let output = server
            .envform(dir.path())
            .args(["apply", "--auto-approve"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let plan_is_clean = || {
        server
            .envform(dir.path())
            .args(["plan", "--detailed-exitcode"])
            .assert()
            .code(0);
    };

    // Adopt: a live environment of a desired name is taken over, not created again.
    server
        .envform(dir.path())
        .args(["env", "create", "--name", "legacy"])
        .assert()
        .success();
    let legacy_id = live(&server, dir.path())["legacy"].clone();
    let out = apply(
        "version: 1\nenvironments:\n  - name: legacy\n    description: adopted\n  - name: blue\n  - name: green\n",
    );
    assert!(out.contains("adopt"), "{out}");
    assert_eq!(live(&server, dir.path())["legacy"], legacy_id);
    plan_is_clean();

    // Rename in place keeps the id.
    let blue_id = live(&server, dir.path())["blue"].clone();
    apply(
        "version: 1\nenvironments:\n  - name: legacy\n    description: adopted\n  - name: azure\n    renamed_from: blue\n  - name: green\n",
    );
    assert_eq!(live(&server, dir.path())["azure"], blue_id);
    plan_is_clean();

    // Swap two names through a temporary one: both ids survive, names exchanged.
    let before = live(&server, dir.path());
    apply(
        "version: 1\nenvironments:\n  - name: legacy\n    description: adopted\n  - name: green\n    renamed_from: azure\n  - name: azure\n    renamed_from: green\n",
    );
    let after = live(&server, dir.path());
    assert_eq!(after["green"], before["azure"]);
    assert_eq!(after["azure"], before["green"]);
    plan_is_clean();
    assert_converged(&server, dir.path(), &state, &["azure", "green", "legacy"]);

    // Deleted outside envform: re-created on the next apply.
    server
        .envform(dir.path())
        .args(["env", "delete", "green", "--yes"])
        .assert()
        .success();
    let out = apply(
        "version: 1\nenvironments:\n  - name: legacy\n    description: adopted\n  - name: green\n    renamed_from: azure\n  - name: azure\n    renamed_from: green\n",
    );
    assert!(out.contains("created"), "{out}");
    assert_converged(&server, dir.path(), &state, &["azure", "green", "legacy"]);

    // Removed from the file: deleted.
    apply("version: 1\nenvironments:\n  - name: legacy\n    description: adopted\n");
    assert_converged(&server, dir.path(), &state, &["legacy"]);
    plan_is_clean();
}

#[test]
fn protections_and_destroy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    let many: String = (0..10)
        .map(|index| format!("  - name: env-{index:02}\n"))
        .collect();
    write(
        dir.path(),
        "envform.yaml",
        &format!(
            "version: 1\nenvironments:\n  - name: keep\n    lifecycle: {{prevent_destroy: true}}\n{many}"
        ),
    );
    server
        .envform(dir.path())
        .args(["apply", "--auto-approve"])
        .assert()
        .success();

    // Deleting 4 of 11 managed (> 30%) needs --force; nothing happens without it.
    let fewer: String = (4..10)
        .map(|index| format!("  - name: env-{index:02}\n"))
        .collect();
    write(
        dir.path(),
        "envform.yaml",
        &format!(
            "version: 1\nenvironments:\n  - name: keep\n    lifecycle: {{prevent_destroy: true}}\n{fewer}"
        ),
    );
    server
        .envform(dir.path())
        .args(["apply", "--auto-approve"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("envform::plan::threshold"));
    assert_eq!(live(&server, dir.path()).len(), 12);
    server
        .envform(dir.path())
        .args(["apply", "--auto-approve", "--force"])
        .assert()
        .success();
    assert_eq!(live(&server, dir.path()).len(), 8);

    // prevent_destroy: destroy fails and deletes nothing.
    server
        .envform(dir.path())
        .args(["destroy", "--auto-approve", "--force"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("prevent_destroy"));
    assert_eq!(live(&server, dir.path()).len(), 8);
    write(
        dir.path(),
        "envform.yaml",
        &format!("version: 1\nenvironments:\n  - name: keep\n{fewer}"),
    );
    server
        .envform(dir.path())
        .args(["apply", "--auto-approve"])
        .assert()
        .success();
    server
        .envform(dir.path())
        .args(["destroy", "--auto-approve", "--force"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Destroy complete!"));
    assert_eq!(
        live(&server, dir.path()).keys().collect::<Vec<_>>(),
        ["default"],
        "default is never deleted"
    );
    assert!(state_ids(&dir.path().join(".envform/state.json")).is_empty());
}

#[test]
fn applies_through_injected_faults_converge_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    // Reads fail twice (retried by the client); two creates are committed but answered 500
    // (ambiguous: the executor looks them up instead of creating twice).
    let server = Server::start(
        &dir.path().join("serve.db"),
        &[
            "--faults",
            "status=503,count=2,method=GET;status=500,method=POST,when=after,count=2",
        ],
    );
    let names: Vec<String> = (0..6).map(|index| format!("faulty-{index}")).collect();
    let yaml: String = names
        .iter()
        .map(|name| format!("  - name: {name}\n"))
        .collect();
    write(
        dir.path(),
        "envform.yaml",
        &format!("version: 1\nenvironments:\n{yaml}"),
    );
    let mut attempts = 0;
    loop {
        attempts += 1;
        let output = server
            .envform(dir.path())
            .args(["apply", "--auto-approve"])
            .output()
            .unwrap();
        if output.status.success() {
            break;
        }
        assert!(attempts < 4, "apply did not converge: {output:?}");
    }
    let expected: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_converged(
        &server,
        dir.path(),
        &dir.path().join(".envform/state.json"),
        &expected,
    );
    server
        .envform(dir.path())
        .args(["plan", "--detailed-exitcode"])
        .assert()
        .code(0);
}

/// Starts `envform apply` and returns it with a reader of its stderr lines.
fn spawn_apply(
    server: &Server,
    dir: &Path,
    extra: &[&str],
) -> (std::process::Child, BufReader<std::process::ChildStderr>) {
    let mut child = Command::new(envform_bin())
        .current_dir(dir)
        .env("KUBIYA_CONTROL_PLANE_URL", &server.url)
        .env("KUBIYA_API_KEY", crate::support::KEY_A)
        .env("NO_COLOR", "1")
        .args(["apply", "--auto-approve"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    (child, stderr)
}

/// Reads stderr until `count` steps have finished (or the stream ends).
fn wait_for_finished_steps(stderr: &mut BufReader<std::process::ChildStderr>, count: usize) {
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

fn twenty_environments(dir: &Path) -> Vec<String> {
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
    write(dir, "envform.yaml", &yaml);
    names
}

#[test]
fn kill_nine_at_many_points_then_rerun_converges() {
    // Every step boundary of the 20-step chain: before the first, and after each of 19.
    for kill_after in 0..TWENTY {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&dir.path().join("serve.db"), &[]);
        let names = twenty_environments(dir.path());
        let (mut child, mut stderr) = spawn_apply(&server, dir.path(), &["--parallelism", "1"]);
        wait_for_finished_steps(&mut stderr, kill_after);
        let _ = child.kill();
        let _ = child.wait();
        // The lock died with the process: the rerun needs no force-unlock.
        server
            .envform(dir.path())
            .args(["apply", "--auto-approve"])
            .assert()
            .success();
        let expected: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_converged(
            &server,
            dir.path(),
            &dir.path().join(".envform/state.json"),
            &expected,
        );
    }
}

#[test]
fn interrupt_stops_cleanly_with_exit_130() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    let names = twenty_environments(dir.path());
    let (mut child, mut stderr) = spawn_apply(&server, dir.path(), &["--parallelism", "1"]);
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
    let state = state_ids(&dir.path().join(".envform/state.json"));
    let live = live(&server, dir.path());
    assert!(state.len() < TWENTY, "interrupted early: {}", state.len());
    for (name, id) in &state {
        assert_eq!(live.get(name), Some(id));
    }
    server
        .envform(dir.path())
        .args(["apply", "--auto-approve", "--lock-timeout", "0s"])
        .assert()
        .success();
    let expected: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_converged(
        &server,
        dir.path(),
        &dir.path().join(".envform/state.json"),
        &expected,
    );
}

#[test]
fn concurrent_applies_on_local_state_take_turns() {
    for concurrency in [2, 8] {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&dir.path().join("serve.db"), &[]);
        let names = twenty_environments(dir.path());
        let children: Vec<_> = (0..concurrency)
            .map(|_| {
                Command::new(envform_bin())
                    .current_dir(dir.path())
                    .env("KUBIYA_CONTROL_PLANE_URL", &server.url)
                    .env("KUBIYA_API_KEY", crate::support::KEY_A)
                    .env("NO_COLOR", "1")
                    .args(["apply", "--auto-approve", "--lock-timeout", "60s"])
                    .stdin(Stdio::null())
                    .output()
            })
            .collect();
        for output in children {
            let output = output.unwrap();
            assert!(output.status.success(), "{output:?}");
        }
        // The lock log: every hold released before the next began.
        let log = std::fs::read_to_string(dir.path().join(".envform/state.json.lock.log")).unwrap();
        let holds =
            envform::state::check_lock_log(&log).unwrap_or_else(|error| panic!("{error}\n{log}"));
        assert!(
            holds >= concurrency,
            "{holds} holds for {concurrency} applies:\n{log}"
        );
        let expected: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_converged(
            &server,
            dir.path(),
            &dir.path().join(".envform/state.json"),
            &expected,
        );
    }
}

#[test]
fn kill_nine_during_a_create_then_rerun_adopts_instead_of_duplicating() {
    let dir = tempfile::tempdir().unwrap();
    // The organization's namespace takes 2 s: creates made meanwhile wait in `provisioning`.
    let server = Server::start(&dir.path().join("serve.db"), &["--provision-delay", "2s"]);
    write(
        dir.path(),
        "envform.yaml",
        "version: 1\nenvironments:\n  - name: slow-one\n  - name: slow-two\n",
    );
    let (mut child, mut stderr) = spawn_apply(&server, dir.path(), &["--parallelism", "1"]);
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
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(".envform/state.json")).unwrap(),
    )
    .unwrap();
    assert!(
        state["intents"].get("slow-one").is_some(),
        "the create's intent was recorded before it was sent: {state}"
    );
    assert!(live(&server, dir.path()).contains_key("slow-one"));
    let output = server
        .envform(dir.path())
        .args(["apply", "--auto-approve"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("adopt"));
    assert_converged(
        &server,
        dir.path(),
        &dir.path().join(".envform/state.json"),
        &["slow-one", "slow-two"],
    );
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(".envform/state.json")).unwrap(),
    )
    .unwrap();
    assert!(
        state.get("intents").is_none(),
        "intents are cleared: {state}"
    );
}

#[test]
fn server_killed_mid_write_keeps_a_sound_database_and_apply_converges() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("serve.db");
    let server = Server::start(&db, &[]);
    let names: Vec<String> = (0..30).map(|index| format!("busy-{index:02}")).collect();
    let yaml: String = names
        .iter()
        .map(|name| format!("  - name: {name}\n"))
        .collect();
    write(
        dir.path(),
        "envform.yaml",
        &format!("version: 1\nenvironments:\n{yaml}"),
    );
    let (mut apply, mut stderr) = spawn_apply(&server, dir.path(), &["--parallelism", "8"]);
    wait_for_finished_steps(&mut stderr, 5);
    // kill -9 the server while writes are in flight.
    Command::new("kill")
        .args(["-9", &server.pid().to_string()])
        .status()
        .unwrap();
    // The apply would spend its retries on a dead server; it is not what this test is about.
    let _ = apply.kill();
    let _ = apply.wait();
    let server = server.restart();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let integrity: String = runtime.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
        let mut connection = sqlx::ConnectOptions::connect(&options).await.unwrap();
        sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut connection)
            .await
            .unwrap()
    });
    assert_eq!(integrity, "ok");
    server
        .envform(dir.path())
        .args(["apply", "--auto-approve"])
        .assert()
        .success();
    let expected: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_converged(
        &server,
        dir.path(),
        &dir.path().join(".envform/state.json"),
        &expected,
    );
}
