//! `envform env` end-to-end through the binary: on the embedded default and against `envform serve`.

use predicates::prelude::*;
use serde_json::Value;

use crate::support::{KEY_A, Server, envform};

fn json_stdout(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[test]
fn embedded_default_create_list_get_update_delete() {
    let dir = tempfile::tempdir().unwrap();

    // A fresh directory has only the organization's default environment.
    let output = envform(dir.path())
        .args(["env", "list", "-o", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let list = json_stdout(&output);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|env| env["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default"]);
    assert!(dir.path().join(".envform/control-plane.db").exists());

    let output = envform(dir.path())
        .args([
            "env",
            "create",
            "--name",
            "staging",
            "--description",
            "Staging environment",
            "--max-workers",
            "10",
            "--timeout-seconds",
            "60",
            "--metadata",
            "team=platform",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let created = json_stdout(&output);
    assert_eq!(created["name"], "staging");
    assert_eq!(created["configuration"]["max_workers"], 10);
    assert_eq!(created["metadata"]["team"], "platform");
    assert!(created.get("worker_token").is_none());

    // By name and by id.
    let output = envform(dir.path())
        .args(["env", "get", "staging", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(json_stdout(&output)["id"], created["id"]);
    let id = created["id"].as_str().unwrap();
    envform(dir.path())
        .args(["env", "get", id])
        .assert()
        .success()
        .stdout(predicate::str::contains("Staging environment"));

    // Update one field; clear another; the rest stays.
    let output = envform(dir.path())
        .args([
            "env",
            "update",
            "staging",
            "--max-workers",
            "20",
            "--clear",
            "description",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let updated = json_stdout(&output);
    assert_eq!(updated["configuration"]["max_workers"], 20);
    // One configuration key changed; the other is kept.
    assert_eq!(updated["configuration"]["timeout_seconds"], 60);
    assert!(updated["description"].is_null());
    assert_eq!(updated["metadata"]["team"], "platform");

    // Delete needs --yes off a terminal, and then works.
    envform(dir.path())
        .args(["env", "delete", "staging"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--yes"));
    envform(dir.path())
        .args(["env", "delete", "staging", "--yes"])
        .assert()
        .success();
    envform(dir.path())
        .args(["env", "get", "staging"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no environment named `staging`"));
}

#[test]
fn embedded_errors_are_clear_and_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    envform(dir.path())
        .args(["env", "create", "--name", "x"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("name"));
    envform(dir.path())
        .args(["env", "create", "--name", "dup"])
        .assert()
        .success();
    envform(dir.path())
        .args(["env", "create", "--name", "dup"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("envform::api::conflict"));
    envform(dir.path())
        .args(["env", "delete", "default", "--yes"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("default"));
    envform(dir.path())
        .args(["env", "get", "dpu"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("did you mean `dup`?"));
    envform(dir.path())
        .args(["env", "list", "--status", "sleeping"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown status"));
    envform(dir.path())
        .args(["env", "update", "dup"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nothing to update"));
    envform(dir.path())
        .args(["env", "create", "-f", "missing.yaml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("missing.yaml"));
    envform(dir.path())
        .args(["env", "list", "--api-url", "http://127.0.0.1:9"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("API key"));
    envform(dir.path())
        .args(["no-such-command"])
        .assert()
        .code(1);
}

#[test]
fn create_from_yaml_and_json_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("staging.yaml"),
        "name: staging\ndescription: from yaml\nconfiguration: {max_workers: 3}\ntags: [a, b]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("patch.json"),
        r#"{"description": null, "metadata": {"owner": "ops"}}"#,
    )
    .unwrap();
    let output = envform(dir.path())
        .args(["env", "create", "-f", "staging.yaml", "-o", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let created = json_stdout(&output);
    assert_eq!(created["description"], "from yaml");
    assert_eq!(created["tags"], serde_json::json!(["a", "b"]));
    let output = envform(dir.path())
        .args(["env", "update", "staging", "-f", "patch.json", "-o", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let updated = json_stdout(&output);
    assert!(updated["description"].is_null());
    assert_eq!(updated["metadata"]["owner"], "ops");
    assert_eq!(updated["configuration"]["max_workers"], 3);

    std::fs::write(dir.path().join("bad.yaml"), "name: [unclosed\n").unwrap();
    envform(dir.path())
        .args(["env", "create", "-f", "bad.yaml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bad.yaml"));
}

#[test]
fn worker_command_masks_the_token_unless_revealed() {
    let dir = tempfile::tempdir().unwrap();
    envform(dir.path())
        .args(["env", "create", "--name", "workers"])
        .assert()
        .success();
    let masked = envform(dir.path())
        .args(["env", "worker-command", "workers", "-o", "json"])
        .output()
        .unwrap();
    assert!(masked.status.success(), "{masked:?}");
    let masked = json_stdout(&masked);
    assert!(masked["worker_token"].as_str().unwrap().contains("masked"));
    assert!(
        masked["command"]
            .as_str()
            .unwrap()
            .contains("--environment workers")
    );

    let revealed = envform(dir.path())
        .args(["env", "worker-command", "workers", "--reveal", "-o", "json"])
        .output()
        .unwrap();
    let revealed = json_stdout(&revealed);
    let token = revealed["worker_token"].as_str().unwrap();
    assert!(
        token.len() >= 43,
        "token too short for 256 bits: {}",
        token.len()
    );
    assert!(revealed["command"].as_str().unwrap().contains(token));
    assert!(!masked.to_string().contains(token));
}

#[test]
fn env_commands_against_serve() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    let remote = |args: &[&str]| {
        let mut command = envform(dir.path());
        command
            .env("KUBIYA_CONTROL_PLANE_URL", &server.url)
            .env("KUBIYA_API_KEY", KEY_A)
            .args(args);
        command
    };
    remote(&["env", "create", "--name", "remote-one"])
        .assert()
        .success();
    let output = remote(&["env", "list", "-o", "json"]).output().unwrap();
    let names: Vec<String> = json_stdout(&output)
        .as_array()
        .unwrap()
        .iter()
        .map(|env| env["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["default", "remote-one"]);
    // Nothing was written to the embedded default.
    assert!(!dir.path().join(".envform/control-plane.db").exists());
    remote(&["env", "update", "remote-one", "--name", "default"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("envform::api::conflict"));
    let mut bad_key = envform(dir.path());
    bad_key
        .env("KUBIYA_CONTROL_PLANE_URL", &server.url)
        .env("KUBIYA_API_KEY", "wrong")
        .args(["env", "list"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("envform::api::unauthorized"));
    remote(&["env", "delete", "remote-one", "--yes"])
        .assert()
        .success();
}
