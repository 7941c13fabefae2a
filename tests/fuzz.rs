//! Fuzzing with proptest: the desired-state parser, the saved-plan reader, the state-file reader and
//! the server's JSON bodies get random and mutated input; none may panic, and the server never
//! answers 5xx or stops. CI runs a short smoke; `ENVFORM_FUZZ_SECONDS=600` runs each of the four
//! targets for ten minutes, shared among its input kinds
//! (`cargo test --release --test integration fuzz -- --nocapture --test-threads 2`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::support::{KEY_A, Server};

/// Runs `test` on inputs from `strategy`: 64 cases, or batches until `1/share` of
/// `ENVFORM_FUZZ_SECONDS` has passed.
fn fuzz<S: Strategy>(
    target: &str,
    share: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let seconds: u64 = std::env::var("ENVFORM_FUZZ_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(seconds) / share;
    let mut total = 0u64;
    loop {
        let cases = 64;
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(error) = runner.run(&strategy, &test) {
            panic!("{target}: {error}");
        }
        total += u64::from(cases);
        if Instant::now() >= deadline {
            break;
        }
    }
    eprintln!("fuzz {target}: {total} cases, 0 failures");
}

fn good_yaml() -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/environments/envform.yaml"),
    )
    .unwrap()
}

/// A string from `base` with a few bytes replaced, inserted or removed (kept valid UTF-8).
fn mutated(base: String) -> impl Strategy<Value = String> {
    let length = base.chars().count().max(1);
    proptest::collection::vec((0..length, any::<char>(), 0..3u8), 1..6).prop_map(move |edits| {
        let mut chars: Vec<char> = base.chars().collect();
        for (position, replacement, kind) in edits {
            let position = position.min(chars.len());
            match kind {
                0 if position < chars.len() => chars[position] = replacement,
                1 => chars.insert(position, replacement),
                _ if position < chars.len() => {
                    chars.remove(position);
                }
                _ => chars.push(replacement),
            }
        }
        chars.into_iter().collect()
    })
}

fn yaml_like() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        r"(version: 1\n)?(environments:\n)?([ -~\t\n:\[\]{}&*<>|#-]{0,200})",
    )
    .unwrap()
}

fn parse_and_render(text: String) -> Result<(), TestCaseError> {
    let sources = envform::desired::Sources {
        files: vec![envform::desired::SourceFile {
            path: PathBuf::from("fuzz.yaml"),
            text,
        }],
    };
    if let Err(error) = envform::desired::parse(sources) {
        // Every diagnostic renders, pointing into its file.
        let mut rendered = String::new();
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .render_report(&mut rendered, &error)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert!(!rendered.is_empty());
    }
    Ok(())
}

#[test]
fn fuzz_desired_state_parser() {
    fuzz("spec (arbitrary)", 3, any::<String>(), parse_and_render);
    fuzz("spec (yaml-like)", 3, yaml_like(), parse_and_render);
    fuzz(
        "spec (mutated example)",
        3,
        mutated(good_yaml()),
        parse_and_render,
    );
}

fn saved_plan() -> String {
    let desired = envform::desired::parse(envform::desired::Sources {
        files: vec![envform::desired::SourceFile {
            path: PathBuf::from("envform.yaml"),
            text: good_yaml(),
        }],
    })
    .unwrap();
    let state = envform::state::State::empty("fuzz");
    let plan = envform::plan::diff(&desired, &[], &state, &Default::default()).unwrap();
    plan.to_saved().unwrap()
}

#[test]
fn fuzz_saved_plan_reader() {
    let check = |text: String| {
        if let Ok(plan) = envform::plan::Plan::from_saved(&text) {
            // A plan that loads renders in every format.
            for format in [
                envform::plan::render::Format::Human,
                envform::plan::render::Format::Json,
                envform::plan::render::Format::Markdown,
            ] {
                let _ = envform::plan::render::render(&plan, format, &Default::default());
            }
        }
        Ok(())
    };
    fuzz("plan reader (arbitrary)", 2, any::<String>(), check);
    fuzz("plan reader (mutated)", 2, mutated(saved_plan()), check);
}

#[test]
fn fuzz_state_file_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let valid = serde_json::to_string_pretty(&envform::state::State::empty("fuzz")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let check = |bytes: Vec<u8>| {
        std::fs::write(&path, &bytes).unwrap();
        let backend = envform::state::LocalBackend::new(&path);
        let _ = runtime.block_on(envform::state::StateBackend::load(&backend));
        Ok(())
    };
    fuzz(
        "state reader (arbitrary)",
        2,
        proptest::collection::vec(any::<u8>(), 0..512),
        check,
    );
    fuzz(
        "state reader (mutated)",
        2,
        mutated(valid).prop_map(String::into_bytes),
        check,
    );
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|number| serde_json::json!(number)),
        "[a-z_]{0,12}".prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("name".to_owned()),
                    Just("status".to_owned()),
                    Just("configuration".to_owned()),
                    Just("max_workers".to_owned()),
                    Just("metadata".to_owned()),
                    Just("execution_environment".to_owned()),
                    Just("env_vars".to_owned()),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..5
            )
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

#[test]
fn fuzz_server_json_bodies() {
    envform::api::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let id = runtime.block_on(async {
        let created: serde_json::Value = client
            .post(format!("{}/api/v1/environments", server.url))
            .bearer_auth(KEY_A)
            .json(&serde_json::json!({"name": "fuzz-target"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created["id"].as_str().unwrap().to_owned()
    });
    let check = |(body, patch): (serde_json::Value, bool)| {
        let status = runtime.block_on(async {
            let request = if patch {
                client.patch(format!("{}/api/v1/environments/{id}", server.url))
            } else {
                client.post(format!("{}/api/v1/environments", server.url))
            };
            request
                .bearer_auth(KEY_A)
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .map(|response| response.status().as_u16())
        });
        let status = status.map_err(|error| TestCaseError::fail(format!("no answer: {error}")))?;
        prop_assert!(status < 500, "status {} for {}", status, body);
        Ok(())
    };
    fuzz("server bodies", 1, (json_value(), any::<bool>()), check);
    let health = runtime.block_on(async {
        client
            .get(format!("{}/health", server.url))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(health.is_success());
}
