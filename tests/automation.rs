//! Running envform from automation: long waits are visible in a CI log, and `apply`, `destroy`
//! and `validate` speak JSON for scripts.

use serde_json::Value;

use crate::support::{Scenario, Server, envform, write_file};

/// A provisioning delay longer than the interval between still-waiting reports (10 s), as the
/// service's namespace provisioning can be.
const PROVISION_DELAY: &str = "12s";

#[test]
fn a_long_wait_is_reported_every_interval_off_a_terminal() {
    let scenario = Scenario::with(Server::options().args(["--provision-delay", PROVISION_DELAY]));
    scenario.write("version: 1\nenvironments:\n  - name: alpha\n");
    let output = scenario.apply().output().expect("run envform apply");
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let created = lines
        .iter()
        .position(|line| *line == "alpha: Creating...")
        .unwrap_or_else(|| panic!("no start line:\n{stderr}"));
    let waiting = lines
        .iter()
        .position(|line| *line == "alpha: Still creating... [10s elapsed] waiting for provisioning")
        .unwrap_or_else(|| panic!("no still-waiting line:\n{stderr}"));
    let done = lines
        .iter()
        .position(|line| line.starts_with("alpha: Created after "))
        .unwrap_or_else(|| panic!("no end line:\n{stderr}"));
    assert!(created < waiting && waiting < done, "{stderr}");
}

/// Snapshots `text` under `name` in `snapshots/automation/`, with times, durations and ids
/// replaced by placeholders.
#[track_caller]
fn snapshot(name: &str, text: &str) {
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/automation"),
        prepend_module_to_snapshot => false,
        omit_expression => true,
        filters => vec![
            (r#""time":"[^"]+""#, r#""time":"[time]""#),
            (r#""elapsed_seconds":[0-9.]+"#, r#""elapsed_seconds":"[seconds]""#),
            (r#""id":"[0-9a-f-]{36}""#, r#""id":"[id]""#),
        ],
    }, {
        insta::assert_snapshot!(name, text);
    });
}

/// Runs `command`, checks that it succeeded and wrote nothing on stderr, and returns its stdout.
#[track_caller]
fn quiet_success(command: &mut assert_cmd::Command) -> String {
    let output = command.output().expect("run envform");
    assert!(output.status.success(), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// Parses a JSON Lines stream, checking every line is one object with a `type` and a `time`.
fn events(stdout: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(stdout).expect("UTF-8");
    text.lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not one JSON object ({error}): {line}"));
            assert!(event["type"].is_string(), "{line}");
            assert!(event["time"].is_string(), "{line}");
            event
        })
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|event| event["type"].as_str().unwrap_or_default())
        .collect()
}

#[test]
fn apply_and_destroy_json_stream_events_on_stdout_and_nothing_on_stderr() {
    let scenario = Scenario::with(Server::options().args(["--provision-delay", PROVISION_DELAY]));
    scenario.write(
        "version: 1\nenvironments:\n  - name: alpha\n  - name: beta\n    depends_on: [alpha]\n",
    );
    let apply_stream =
        quiet_success(
            scenario
                .apply()
                .args(["--format", "json", "--parallelism", "1"]),
        );
    let applied = events(apply_stream.as_bytes());
    assert_eq!(
        types(&applied),
        [
            "plan",
            "step_started",
            "waiting",
            "step_finished",
            "step_started",
            "step_finished",
            "summary"
        ]
    );
    assert_eq!(applied[2]["name"], "alpha");
    assert_eq!(applied[2]["waiting_for"], "provisioning");
    assert_eq!(applied[2]["elapsed_seconds"], 10);
    let summary = &applied[6];
    assert_eq!(summary["result"], "succeeded");
    assert_eq!(summary["added"], 2);
    let live = scenario.live();
    assert_eq!(summary["results"][0]["id"], live["alpha"].as_str());

    let destroy_stream =
        quiet_success(
            scenario
                .envform()
                .args(["destroy", "--auto-approve", "-o", "json"]),
        );
    let destroyed = events(destroy_stream.as_bytes());
    assert_eq!(
        destroyed.last().map(|event| &event["destroyed"]),
        Some(&Value::from(2))
    );

    snapshot(
        "apply_destroy_json_stream",
        &format!("# apply\n{apply_stream}# destroy\n{destroy_stream}"),
    );
}

#[test]
fn a_json_apply_that_stops_early_ends_its_stream_with_an_error_event() {
    let scenario = Scenario::new();
    scenario.write("version: 1\nenvironments:\n  - name: alpha\n");
    // Without --auto-approve and without a terminal, nothing is applied.
    let output = scenario
        .envform()
        .args(["apply", "--format", "json"])
        .output()
        .expect("run envform apply");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stream = events(&output.stdout);
    assert_eq!(types(&stream), ["plan", "error"]);
    assert_eq!(stream[1]["code"], "envform::apply::approval_required");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("envform::apply::approval_required"),
        "{stderr}"
    );
    assert_eq!(scenario.live().len(), 1, "only `default` is live");
}

#[test]
fn validate_json_lists_every_problem_with_its_place_and_exits_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_file(
        dir.path(),
        "envform.yaml",
        "version: 1\nenvironments:\n  - name: alpha\n    descripton: typo\n  - name: alpha\n  - name: beta\n    status: sleeping\n    depends_on: [gamma]\n",
    );
    let output = envform(dir.path())
        .args(["validate", "--format", "json"])
        .output()
        .expect("run envform validate");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let verdict: Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(verdict["valid"], false);
    assert_eq!(verdict["diagnostics"].as_array().map(Vec::len), Some(4));
    snapshot("validate_json_invalid", &stdout);
}

#[test]
fn validate_json_of_a_valid_directory_names_its_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_file(
        dir.path(),
        "b.yaml",
        "version: 1\nenvironments:\n  - name: beta\n",
    );
    write_file(
        dir.path(),
        "a.yml",
        "version: 1\nenvironments:\n  - name: alpha\n",
    );
    // `-o` and `--output` are the other spellings of `--format`.
    for flag in ["--format", "-o", "--output"] {
        let stdout = quiet_success(envform(dir.path()).args(["validate", "-f", ".", flag, "json"]));
        let verdict: Value = serde_json::from_str(&stdout).expect("JSON");
        assert_eq!(verdict["valid"], true, "{verdict}");
        assert_eq!(verdict["files"], serde_json::json!(["./a.yml", "./b.yaml"]));
        assert_eq!(verdict["diagnostics"], serde_json::json!([]));
    }
}

#[test]
fn every_command_with_selectable_output_takes_format_o_and_output() {
    let scenario = Scenario::new();
    scenario.write("version: 1\nenvironments:\n  - name: alpha\n");
    scenario.apply_ok();
    let commands: [&[&str]; 5] = [
        &["env", "list"],
        &["env", "get", "alpha"],
        &["state", "list"],
        &["state", "show", "alpha"],
        &["plan"],
    ];
    for command in commands {
        for flag in ["--format", "-o", "--output"] {
            let output = scenario
                .envform()
                .args(command)
                .args([flag, "json"])
                .output()
                .expect("run envform");
            assert!(output.status.success(), "{command:?} {flag}: {output:?}");
            let parsed: Result<Value, _> = serde_json::from_slice(&output.stdout);
            assert!(parsed.is_ok(), "{command:?} {flag} is not JSON: {output:?}");
        }
    }
    // `state show` also has a table for people.
    let output = scenario
        .envform()
        .args(["state", "show", "alpha", "--format", "table"])
        .output()
        .expect("run envform state show");
    assert!(output.status.success(), "{output:?}");
    let table = String::from_utf8_lossy(&output.stdout);
    let id = &scenario.state_ids()["alpha"];
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("id") && line.ends_with(id.as_str())),
        "{table}"
    );
}

/// The lines of `stderr` that are log events of a target starting with `prefix`.
fn log_lines<'a>(stderr: &'a str, prefix: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|line| {
            line.split_whitespace()
                .nth(2)
                .is_some_and(|target| target.starts_with(prefix))
        })
        .collect()
}

#[test]
fn verbose_logs_show_envform_events_and_keep_library_noise_for_trace() {
    let scenario = Scenario::new();
    scenario.write("version: 1\nenvironments:\n  - name: alpha\n");
    let verbose = scenario
        .plan()
        .arg("-v")
        .output()
        .expect("run envform plan");
    let by_variable = scenario
        .plan()
        .env("ENVFORM_LOG", "debug")
        .output()
        .expect("run envform plan");
    for output in [verbose, by_variable] {
        assert!(output.status.success(), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let calls = log_lines(&stderr, "envform::api");
        assert!(
            calls.iter().any(|line| line.contains("API call")
                && line.contains("method=GET")
                && line.contains("path=\"/api/v1/environments\"")
                && line.contains("status=200")
                && line.contains("latency_ms=")),
            "no API call logged:\n{stderr}"
        );
        assert!(
            stderr.contains("phase=\"plan\"") && stderr.contains("duration_ms="),
            "{stderr}"
        );
        for library in ["hyper", "reqwest", "rustls", "h2", "sqlx"] {
            assert!(
                log_lines(&stderr, library).is_empty(),
                "{library}:\n{stderr}"
            );
        }
        assert!(
            !stderr.contains(crate::support::KEY_A),
            "the key leaked:\n{stderr}"
        );
    }
    // Without -v, nothing is logged.
    let quiet = scenario.plan().output().expect("run envform plan");
    assert!(log_lines(&String::from_utf8_lossy(&quiet.stderr), "envform").is_empty());
}

/// The `help:` of a rendered report, its wrapped lines joined.
fn help_of(stderr: &str) -> String {
    let start = stderr
        .find("help:")
        .unwrap_or_else(|| panic!("no help:\n{stderr}"));
    stderr[start..]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn refused_state_credentials_say_which_variable_to_set() {
    let scenario = Scenario::new();
    scenario.write("version: 1\nenvironments:\n  - name: alpha\n");
    let address = format!("{}/api/v1/state/ws", scenario.server.url);
    let wrong_password = "not-the-key-1234";
    let output = scenario
        .apply()
        .args(["--state-address", &address, "--state-username", "ci", "-v"])
        .env("ENVFORM_STATE_PASSWORD", wrong_password)
        .output()
        .expect("run envform apply");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("envform::state::unauthorized"), "{stderr}");
    assert!(stderr.contains("answered 401"), "{stderr}");
    let help = help_of(&stderr);
    assert!(help.contains("ENVFORM_STATE_PASSWORD"), "{stderr}");
    assert!(stderr.contains("--state-username"), "{stderr}");
    assert!(!stderr.contains("above"), "{stderr}");
    assert!(
        !stderr.contains(wrong_password),
        "the password leaked:\n{stderr}"
    );
    // The lock request is logged with its status, not its credentials.
    assert!(
        log_lines(&stderr, "envform::state")
            .iter()
            .any(|line| line.contains("method=LOCK") && line.contains("status=401")),
        "{stderr}"
    );

    // A password without a user sends nothing: the help says so.
    let output = scenario
        .apply()
        .args(["--state-address", &address])
        .env("ENVFORM_STATE_PASSWORD", crate::support::KEY_A)
        .output()
        .expect("run envform apply");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let help = help_of(&stderr);
    assert!(help.contains("no credentials were sent"), "{stderr}");
    assert!(help.contains("--state-username"), "{stderr}");
    assert_eq!(scenario.live().len(), 1, "nothing was applied");
}

#[test]
fn a_refused_api_key_names_the_variable() {
    let scenario = Scenario::new();
    scenario.write("version: 1\nenvironments:\n  - name: alpha\n");
    let output = scenario
        .plan()
        .env("KUBIYA_API_KEY", "wrong-key-5678")
        .output()
        .expect("run envform plan");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("envform::api::unauthorized"), "{stderr}");
    assert!(help_of(&stderr).contains("KUBIYA_API_KEY"), "{stderr}");
    assert!(!stderr.contains("wrong-key-5678"), "{stderr}");
}

#[test]
fn a_json_apply_waiting_for_the_lock_says_so_in_its_stream() {
    use std::io::{BufRead, BufReader};

    let scenario = Scenario::with(Server::options().args(["--provision-delay", PROVISION_DELAY]));
    scenario.write("version: 1\nenvironments:\n  - name: alpha\n");
    // A first apply holds the lock while it waits for provisioning.
    let mut first = scenario
        .apply_process()
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn envform apply");
    let stderr = first.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let started = lines.any(|line| line.is_ok_and(|line| line == "alpha: Creating..."));
    assert!(started, "the first apply did not start its create");

    let output = scenario
        .apply()
        .args(["--format", "json", "--lock-timeout", "1s"])
        .output()
        .expect("run envform apply");
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stream = events(&output.stdout);
    assert_eq!(types(&stream), ["lock_waiting", "error"], "{stream:?}");
    assert!(
        stream[0]["holder"]
            .as_str()
            .is_some_and(|holder| holder.contains("apply")),
        "{stream:?}"
    );
    assert_eq!(stream[1]["code"], "envform::state::lock_timeout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("Waiting for the state lock"), "{stderr}");
}

#[test]
fn a_json_apply_with_nothing_to_do_is_a_plan_and_a_summary() {
    let scenario = Scenario::new();
    scenario.write("version: 1\nenvironments:\n  - name: alpha\n");
    scenario.apply_ok();
    let stream = quiet_success(scenario.apply().args(["--format", "json"]));
    let stream = events(stream.as_bytes());
    assert_eq!(types(&stream), ["plan", "summary"]);
    assert_eq!(stream[0]["add"], 0);
    let summary = &stream[1];
    assert_eq!(summary["result"], "succeeded");
    assert_eq!(summary["counts"]["done"], 0);
    assert_eq!(summary["results"], serde_json::json!([]));
}

#[test]
fn a_failed_step_and_its_skipped_dependents_are_events_and_the_summary_says_failed() {
    let scenario = Scenario::with(Server::options().args([
        "--faults",
        "status=400,method=POST,path=/api/v1/environments",
    ]));
    scenario.write(
        "version: 1\nenvironments:\n  - name: alpha\n  - name: beta\n    depends_on: [alpha]\n",
    );
    let output = scenario
        .apply()
        .args(["--format", "json"])
        .output()
        .expect("run envform apply");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
    let stream = events(&output.stdout);
    assert_eq!(
        types(&stream),
        [
            "plan",
            "step_started",
            "step_failed",
            "step_skipped",
            "summary"
        ]
    );
    assert_eq!(stream[2]["result"], "failed");
    assert_eq!(stream[3]["because"], 1);
    assert_eq!(stream[4]["result"], "failed");
    snapshot(
        "apply_json_failure_stream",
        &String::from_utf8_lossy(&output.stdout),
    );
}
