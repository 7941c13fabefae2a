//! The production SDK's requests against a real `envform serve`: tests/production_client.py (the
//! standard library only, run with `python3`) sends exactly what that SDK sends and runs the
//! documentation's examples end to end; its answers are kept as golden JSON in
//! `snapshots/production_client/`, ids, times and tokens redacted.

use std::process::Command;

use serde_json::Value;

use crate::support::{KEY_A, Server};

/// Replaces what changes from run to run (ids, timestamps, tokens, generated names) by
/// placeholders, keeping the shape: a timestamp stays recognisably `+00:00` with microseconds.
fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                let volatile = matches!(
                    key.as_str(),
                    "id" | "temporal_namespace_id" | "provisioning_workflow_id" | "created_by"
                ) || key == "worker_token";
                if volatile && field.is_string() {
                    *field = Value::String(format!("[{key}]"));
                } else if let Some(text) = field.as_str()
                    && text.len() == 32
                    && text.ends_with("+00:00")
                {
                    *field = Value::String("[YYYY-MM-DDTHH:MM:SS.ffffff+00:00]".to_owned());
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[test]
fn the_production_sdk_requests_run_the_documented_examples() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/production_client.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(server.url())
        .arg(KEY_A)
        .output()
        .expect("run python3 (tests need Python 3)");
    assert!(
        output.status.success(),
        "production_client.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut answers: Value =
        serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    // The token is in the command: masked there too, before redaction hides it.
    if let Some(command) = answers.pointer_mut("/worker_command/body") {
        let token = command["worker_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(token.starts_with("efw_"), "{command}");
        let text = command["command"]
            .as_str()
            .unwrap_or_default()
            .replace(&token, "[worker_token]");
        command["command"] = Value::String(text);
    }
    redact(&mut answers);
    // Every request the script made had the SDK's form: no trailing slash reached the log.
    assert!(!server.log().contains("path=/api/v1/environments/ "));
    let names: Vec<String> = answers
        .as_object()
        .expect("answers by name")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        names,
        [
            "create",
            "delete",
            "error_conflict",
            "error_default",
            "error_invalid",
            "error_not_found",
            "error_unauthorized",
            "get",
            "list_initial",
            "patch",
            "worker_command"
        ]
    );
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/production_client"),
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        for name in names {
            insta::assert_json_snapshot!(name.clone(), answers[&name]);
        }
    });
}
