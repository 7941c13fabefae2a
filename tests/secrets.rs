//! Secrets never leak: worker tokens, API keys and `env_vars` values are absent from every output
//! format, trace-level log, state file, saved plan and error message.

use std::path::Path;

use crate::support::{KEY_A, Server};

const SECRET_VALUE: &str = "env-var-secret-3f9a1c";

/// Every file below `dir` whose contents include `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    crate::support::files_below(dir)
        .into_iter()
        .filter(|path| {
            // The input file holds the values, and the service's database what it must serve.
            let is_source = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("serve.db") || name == "envform.yaml");
            !is_source
                && std::fs::read(path).is_ok_and(|bytes| {
                    bytes
                        .windows(needle.len())
                        .any(|window| window == needle.as_bytes())
                })
        })
        .map(|path| path.display().to_string())
        .collect()
}

#[test]
fn no_secret_appears_in_outputs_logs_state_or_plans() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    std::fs::write(
        dir.path().join("envform.yaml"),
        format!(
            "version: 1\nenvironments:\n  - name: api\n    execution_environment:\n      env_vars: {{TOKEN: {SECRET_VALUE}}}\n      secrets: [db-password]\n"
        ),
    )
    .unwrap();
    let transcript = std::cell::RefCell::new(String::new());
    let run = |args: &[&str]| {
        let output = server
            .envform(dir.path())
            .env("ENVFORM_LOG", "trace")
            .args(args)
            .output()
            .unwrap();
        let mut transcript = transcript.borrow_mut();
        transcript.push_str(&String::from_utf8_lossy(&output.stdout));
        transcript.push_str(&String::from_utf8_lossy(&output.stderr));
        output
    };
    for format in ["human", "json", "markdown"] {
        run(&["plan", "--format", format]);
    }
    assert!(run(&["plan", "--out", "plan.json"]).status.success());
    assert!(
        run(&["apply", "plan.json", "--auto-approve"])
            .status
            .success()
    );
    // The secret changes: shown as changed, never by value.
    std::fs::write(
        dir.path().join("envform.yaml"),
        "version: 1\nenvironments:\n  - name: api\n    execution_environment:\n      env_vars: {TOKEN: rotated-value-77}\n",
    )
    .unwrap();
    for format in ["human", "json", "markdown"] {
        run(&["plan", "--format", format]);
    }
    assert!(
        transcript.borrow().contains("(sensitive value changed)"),
        "{}",
        transcript.borrow()
    );
    // The machine forms too: validate's verdict, apply's event stream, state show's table.
    assert!(run(&["validate", "--format", "json"]).status.success());
    assert!(
        run(&["apply", "--auto-approve", "--format", "json"])
            .status
            .success()
    );
    run(&["env", "get", "api", "-o", "json"]);
    run(&["state", "show", "api"]);
    run(&["state", "show", "api", "-o", "table"]);
    let masked = run(&["env", "worker-command", "api"]);
    assert!(masked.status.success());
    // Error paths: a bad key and a missing environment.
    let bad = server
        .envform(dir.path())
        .env("KUBIYA_API_KEY", "not-the-key-8c1d")
        .args(["env", "list"])
        .output()
        .unwrap();
    transcript
        .borrow_mut()
        .push_str(&String::from_utf8_lossy(&bad.stderr));
    run(&["env", "get", "missing"]);

    // The one token revealed on purpose, to look for it everywhere else.
    let revealed = server
        .envform(dir.path())
        .args(["env", "worker-command", "api", "--reveal", "-o", "json"])
        .output()
        .unwrap();
    let revealed: serde_json::Value = serde_json::from_slice(&revealed.stdout).unwrap();
    let token = revealed["worker_token"].as_str().unwrap().to_owned();
    run(&["env", "worker-command", "api", "-o", "json"]);
    run(&["env", "list", "-o", "json"]);
    // The audit log holds every change above, before and after.
    let history = run(&["env", "history", "api", "-o", "json"]);
    assert!(history.status.success(), "{history:?}");
    assert!(String::from_utf8_lossy(&history.stdout).contains("(sensitive"));

    let transcript = transcript.into_inner();
    let log = server.log();
    assert!(log.lines().count() > 10, "the server logged requests");
    for secret in [
        SECRET_VALUE,
        "rotated-value-77",
        KEY_A,
        "not-the-key-8c1d",
        token.as_str(),
    ] {
        assert!(!transcript.contains(secret), "`{secret}` in command output");
        assert!(!log.contains(secret), "`{secret}` in the server log");
        let files = files_containing(dir.path(), secret);
        assert!(files.is_empty(), "`{secret}` in {files:?}");
    }
}

#[test]
fn keys_marked_nonsensitive_are_shown_and_the_rest_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let file = |level: &str| {
        format!(
            "version: 1\nenvironments:\n  - name: api\n    nonsensitive: [LOG_LEVEL]\n    execution_environment:\n      env_vars: {{LOG_LEVEL: {level}, API_TOKEN: hunter2-secret}}\n"
        )
    };
    std::fs::write(dir.path().join("envform.yaml"), file("info")).unwrap();
    crate::support::envform(dir.path())
        .args(["apply", "--auto-approve"])
        .assert()
        .success();
    std::fs::write(dir.path().join("envform.yaml"), file("debug")).unwrap();
    let plan = crate::support::envform(dir.path())
        .args(["plan", "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(2), "{plan:?}");
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains(r#"LOG_LEVEL = "info" -> "debug""#), "{text}");
    let json = crate::support::envform(dir.path())
        .args(["plan", "--format", "json"])
        .output()
        .unwrap();
    let document: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let change = &document["resource_changes"][0]["change"];
    assert_eq!(
        change["after"]["execution_environment"]["env_vars"],
        serde_json::json!({"LOG_LEVEL": "debug", "API_TOKEN": "(sensitive)"})
    );
    assert_eq!(change["sensitive_changes"], serde_json::json!([]));
    crate::support::envform(dir.path())
        .args(["apply", "--auto-approve"])
        .assert()
        .success();
    // Live and state agree with the file in the same form: nothing to do, no drift.
    crate::support::envform(dir.path())
        .args(["plan", "--detailed-exitcode"])
        .assert()
        .code(0);
    let state = std::fs::read_to_string(dir.path().join(".envform/state.json")).unwrap();
    assert!(state.contains("\"LOG_LEVEL\": \"debug\""), "{state}");
    let holding = files_containing(dir.path(), "hunter2-secret");
    assert!(
        holding.iter().all(|file| file.contains("control-plane.db")),
        "only the embedded service's database holds the secret: {holding:?}"
    );
}
