//! `env_vars` digests are keyed with the state's salt: stable across runs of one state, different
//! in every other state, never the plain SHA-256 a guess can be checked against; a state written
//! before digests were salted plans without changes and is upgraded by the next apply; the served
//! HTTP backend keeps the salt.

use std::io::{Read, Write};
use std::path::Path;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{KEY_A, Scenario};

const SECRET: &str = "salted-secret-51c0";

fn file(level: &str) -> String {
    format!(
        "version: 1\nenvironments:\n  - name: api\n    execution_environment:\n      env_vars: {{LOG_LEVEL: {level}, TOKEN: {SECRET}}}\n"
    )
}

/// The unsalted digest older versions stored: `sha256:` and the SHA-256 of the JSON text.
fn plain_digest(value: &str) -> String {
    let json = serde_json::to_string(value).unwrap();
    format!("sha256:{}", hex::encode(Sha256::digest(json.as_bytes())))
}

/// The salted digest: HMAC-SHA256 of the JSON text keyed with the state's salt.
fn keyed_digest(salt: &str, value: &str) -> String {
    let key = hex::decode(salt).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(serde_json::to_string(value).unwrap().as_bytes());
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

fn env_vars(state: &Value) -> &Value {
    &state["resources"]["api"]["last_applied"]["execution_environment"]["env_vars"]
}

fn salt(state: &Value) -> String {
    let salt = state["digest_salt"]
        .as_str()
        .unwrap_or_else(|| panic!("no salt: {state:#}"))
        .to_owned();
    assert_eq!(salt.len(), 64, "{salt}");
    assert!(salt.bytes().all(|byte| byte.is_ascii_hexdigit()), "{salt}");
    salt
}

/// Rewrites the state file as versions before salted digests wrote it: no salt, each digest the
/// plain SHA-256 of its value.
fn write_unsalted(state_path: &Path, values: &[(&str, &str)]) {
    let mut state: Value = serde_json::from_str(&std::fs::read_to_string(state_path).unwrap())
        .expect("the state file is JSON");
    state.as_object_mut().unwrap().remove("digest_salt");
    let vars = state["resources"]["api"]["last_applied"]["execution_environment"]["env_vars"]
        .as_object_mut()
        .unwrap();
    for (key, value) in values {
        vars.insert((*key).to_owned(), Value::String(plain_digest(value)));
    }
    std::fs::write(state_path, serde_json::to_string_pretty(&state).unwrap()).unwrap();
}

#[test]
fn digests_are_keyed_with_the_state_salt_and_stable_across_its_runs() {
    let scenario = Scenario::new();
    scenario.write(&file("info"));
    scenario.apply_ok();
    assert_eq!(
        scenario.plan_exit_code(),
        0,
        "an unchanged file plans no change"
    );
    let state = scenario.state();
    let salt = salt(&state);
    let stored = env_vars(&state)["LOG_LEVEL"].as_str().unwrap().to_owned();
    assert_eq!(stored, keyed_digest(&salt, "info"));
    // A guess hashed alone does not confirm the stored value.
    let plain = plain_digest("info");
    assert_ne!(stored, plain);
    assert!(!stored.contains(plain.trim_start_matches("sha256:")));

    // A saved plan holds digests made with the state's salt, and not the salt itself.
    scenario.write(&file("debug"));
    scenario.save_plan();
    let saved = std::fs::read_to_string(scenario.path().join("plan.json")).unwrap();
    assert!(saved.contains(&keyed_digest(&salt, "debug")), "{saved}");
    assert!(saved.contains(&keyed_digest(&salt, SECRET)), "{saved}");
    assert!(!saved.contains(&salt), "the saved plan carries no salt");
    assert!(!saved.contains(SECRET) && !saved.contains(&plain_digest(SECRET)));
    scenario
        .envform()
        .args(["apply", "plan.json", "--auto-approve"])
        .assert()
        .success();
    let state = scenario.state();
    assert_eq!(self::salt(&state), salt, "the salt stays with the lineage");
    assert_eq!(
        env_vars(&state)["LOG_LEVEL"],
        Value::String(keyed_digest(&salt, "debug"))
    );
    assert_eq!(scenario.plan_exit_code(), 0);
}

#[test]
fn the_same_file_digests_differently_in_two_states() {
    let states: Vec<Value> = (0..2)
        .map(|_| {
            let scenario = Scenario::new();
            scenario.write(&file("info"));
            scenario.apply_ok();
            scenario.state()
        })
        .collect();
    assert_ne!(salt(&states[0]), salt(&states[1]));
    for key in ["LOG_LEVEL", "TOKEN"] {
        let (one, other) = (&env_vars(&states[0])[key], &env_vars(&states[1])[key]);
        assert!(one.as_str().unwrap().starts_with("hmac-sha256:"), "{one}");
        assert_ne!(one, other, "`{key}` cannot be matched across states");
    }
}

#[test]
fn a_state_written_before_digests_were_salted_plans_clean_and_is_upgraded_by_apply() {
    let scenario = Scenario::new();
    scenario.write(&file("info"));
    scenario.apply_ok();
    let state_path = scenario.state_path();
    let unsalted = [("LOG_LEVEL", "info"), ("TOKEN", SECRET)];
    write_unsalted(&state_path, &unsalted);
    let before = std::fs::read_to_string(&state_path).unwrap();
    assert!(!before.contains("digest_salt") && before.contains(&plain_digest("info")));

    // No change and no drift for the upgrade; planning writes nothing.
    let plan = scenario.plan().arg("--detailed-exitcode").output().unwrap();
    assert_eq!(plan.status.code(), Some(0), "{plan:?}");
    let shown = String::from_utf8_lossy(&plan.stdout);
    assert!(!shown.contains("outside of envform"), "{shown}");
    let json = scenario.plan().args(["--format", "json"]).output().unwrap();
    let document: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(document["drift"], serde_json::json!([]), "{document:#}");
    assert_eq!(std::fs::read_to_string(&state_path).unwrap(), before);

    // The next apply stores a salt and rewrites the digests with it.
    scenario.apply_ok();
    let state = scenario.state();
    let salt = salt(&state);
    for (key, value) in unsalted {
        assert_eq!(
            env_vars(&state)[key],
            Value::String(keyed_digest(&salt, value)),
            "{key}"
        );
    }
    assert_eq!(scenario.plan_exit_code(), 0);

    // Through a saved plan too: the plan carries the salt made for it, which apply stores.
    write_unsalted(&state_path, &unsalted);
    scenario.write(&file("warn"));
    scenario.save_plan();
    scenario
        .envform()
        .args(["apply", "plan.json", "--auto-approve"])
        .assert()
        .success();
    let state = scenario.state();
    let salt = self::salt(&state);
    assert_eq!(
        env_vars(&state)["LOG_LEVEL"],
        Value::String(keyed_digest(&salt, "warn"))
    );
    assert_eq!(
        env_vars(&state)["TOKEN"],
        Value::String(keyed_digest(&salt, SECRET))
    );
    let saved = std::fs::read_to_string(scenario.path().join("plan.json")).unwrap();
    assert!(
        saved.contains(&salt),
        "the plan carried the salt it was made with"
    );
    assert_eq!(scenario.plan_exit_code(), 0);
}

#[test]
fn the_served_http_backend_keeps_the_salt() {
    let scenario = Scenario::new();
    scenario.write(&file("info"));
    let address = format!("{}/api/v1/state/salted", scenario.server.url);
    let on_served = |args: &[&str]| {
        let mut command = scenario.envform();
        command
            .args(args)
            .env("ENVFORM_STATE_ADDRESS", &address)
            .env("ENVFORM_STATE_USERNAME", "envform")
            .env("ENVFORM_STATE_PASSWORD", KEY_A);
        command
    };
    // The document as the service serves it, read with a plain GET.
    let served = || -> Value {
        let authority = scenario.server.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(authority).unwrap();
        write!(
            stream,
            "GET /api/v1/state/salted HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {KEY_A}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        serde_json::from_str(body).unwrap_or_else(|error| panic!("{error}: {answer}"))
    };
    on_served(&["apply", "--auto-approve"]).assert().success();
    let first = served();
    let salt = salt(&first);
    assert_eq!(
        env_vars(&first)["LOG_LEVEL"],
        Value::String(keyed_digest(&salt, "info"))
    );
    on_served(&["plan", "--detailed-exitcode"]).assert().code(0);
    scenario.write(&file("debug"));
    on_served(&["apply", "--auto-approve"]).assert().success();
    let second = served();
    assert_eq!(self::salt(&second), salt);
    assert_eq!(
        env_vars(&second)["LOG_LEVEL"],
        Value::String(keyed_digest(&salt, "debug"))
    );
    on_served(&["plan", "--detailed-exitcode"]).assert().code(0);
    assert!(!scenario.state_path().exists());
}
