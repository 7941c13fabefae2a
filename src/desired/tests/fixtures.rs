//! The fixture corpus under `tests/fixtures/spec/`: every bad file gives its diagnostic (and never
//! a panic), every good file loads.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::desired::{SpecError, StateBackendConfig, load};

const BAD: &str = "tests/fixtures/spec/bad";
const GOOD: &str = "tests/fixtures/spec/good";

/// Each bad fixture and the code of its first diagnostic.
const BAD_FIXTURES: &[(&str, &str)] = &[
    ("anchor-loop.yaml", "recursive_alias"),
    ("bad-indentation.yaml", "yaml_syntax"),
    ("billion-laughs.yaml", "too_complex"),
    ("comments-only.yaml", "empty_file"),
    ("deep-block-nesting.yaml", "too_complex"),
    ("deep-flow-nesting.yaml", "too_complex"),
    ("dependency-cycle.yaml", "dependency_cycle"),
    ("duplicate-key-in-metadata.yaml", "duplicate_key"),
    ("duplicate-key.yaml", "duplicate_key"),
    ("duplicate-names.yaml", "duplicate_name"),
    ("empty.yaml", "empty_file"),
    ("env-var-number.yaml", "wrong_type"),
    ("environments-not-a-list.yaml", "wrong_type"),
    ("ignore-path-into-a-list.yaml", "unknown_ignore_path"),
    ("ignore-path-unknown.yaml", "unknown_ignore_path"),
    ("max-workers-fraction.yaml", "wrong_type"),
    ("max-workers-huge.yaml", "out_of_range"),
    ("merge-key-not-a-mapping.yaml", "yaml_syntax"),
    ("metadata-integer-key.yaml", "wrong_type"),
    ("metadata-nan.yaml", "out_of_range"),
    ("metadata-number-5000-digits.yaml", "out_of_range"),
    ("missing-name.yaml", "missing_key"),
    ("missing-version.yaml", "missing_key"),
    ("multiple-documents.yaml", "yaml_syntax"),
    ("name-5000-characters.yaml", "invalid_name"),
    ("name-control-character.yaml", "invalid_name"),
    ("name-in-defaults.yaml", "unknown_key"),
    ("name-null.yaml", "wrong_type"),
    ("name-too-long.yaml", "invalid_name"),
    ("name-too-short.yaml", "invalid_name"),
    ("non-utf8.yaml", "invalid_utf8"),
    ("nul-byte.yaml", "yaml_syntax"),
    ("prevent-destroy-string.yaml", "wrong_type"),
    ("rename-claimed-twice.yaml", "conflicting_rename"),
    ("rename-from-desired.yaml", "conflicting_rename"),
    ("rename-to-own-name.yaml", "conflicting_rename"),
    ("root-is-list.yaml", "wrong_type"),
    ("root-is-scalar.yaml", "wrong_type"),
    ("self-dependency.yaml", "dependency_cycle"),
    ("state-backend-unknown.yaml", "invalid_value"),
    ("state-http-without-address.yaml", "missing_key"),
    ("state-password.yaml", "secret_in_file"),
    ("status-provisioning.yaml", "invalid_status"),
    ("status-typo.yaml", "invalid_status"),
    ("tab-indentation.yaml", "yaml_syntax"),
    ("tags-not-a-list.yaml", "wrong_type"),
    ("threshold-above-one.yaml", "out_of_range"),
    ("timeout-negative.yaml", "out_of_range"),
    ("unclosed-flow.yaml", "yaml_syntax"),
    ("unclosed-quote.yaml", "yaml_syntax"),
    ("unknown-anchor.yaml", "yaml_syntax"),
    ("unknown-dependency.yaml", "unknown_dependency"),
    ("unknown-environment-key.yaml", "unknown_key"),
    ("unknown-execution-environment-key.yaml", "unknown_key"),
    ("unknown-top-level-key.yaml", "unknown_key"),
    ("utf16-with-bom.yaml", "invalid_utf8"),
    ("utf16-without-bom.yaml", "yaml_syntax"),
    ("version-2.yaml", "unsupported_version"),
    ("version-string.yaml", "wrong_type"),
];

fn files_in(directory: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_bad_fixture_gives_its_diagnostic() {
    assert!(BAD_FIXTURES.len() >= 30);
    let listed: Vec<String> = BAD_FIXTURES
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    assert_eq!(files_in(BAD), listed, "the table lists every file of {BAD}");
    for (name, code) in BAD_FIXTURES {
        let path = Path::new(BAD).join(name);
        let started = Instant::now();
        let error = load(&path).expect_err(name);
        let elapsed = started.elapsed();
        let SpecError::Invalid { diagnostics, .. } = &error else {
            panic!("{name}: expected diagnostics, got {error:?}");
        };
        let first = diagnostics.first().expect("at least one diagnostic");
        assert_eq!(
            first.code(),
            format!("envform::spec::{code}"),
            "{name}: {error:#?}"
        );
        // Every diagnostic points inside its file.
        for diagnostic in diagnostics {
            let length = error_source_length(&path);
            assert!(
                diagnostic.offset() + diagnostic.width() <= length,
                "{name}: {diagnostic:#?}"
            );
            assert!(diagnostic.line >= 1 && diagnostic.column >= 1, "{name}");
        }
        // Rendering must not panic either.
        assert!(super::render(&error).contains(code), "{name}");
        assert!(elapsed < Duration::from_secs(5), "{name} took {elapsed:?}");
    }
}

/// The length of the text diagnostics point into (invalid UTF-8 reads as U+FFFD).
fn error_source_length(path: &Path) -> usize {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).len()
}

#[test]
fn every_good_fixture_loads() {
    let names = files_in(GOOD);
    assert!(names.len() >= 5);
    for name in names {
        let path = Path::new(GOOD).join(&name);
        if let Err(error) = load(&path) {
            panic!("{name}: {}", super::render(&error));
        }
    }
}

#[test]
fn the_full_fixture_reads_every_key() {
    let desired = load(&Path::new(GOOD).join("full.yaml")).unwrap();
    assert!(desired.options.prune);
    assert_eq!(desired.options.delete_threshold.max_fraction, 0.5);
    assert_eq!(desired.options.delete_threshold.min_existing, 4);
    assert_eq!(desired.options.update_threshold.max_fraction, 1.0);
    assert_eq!(desired.options.update_threshold.min_existing, 0);
    assert_eq!(
        desired.state,
        Some(StateBackendConfig::Local {
            path: Some(PathBuf::from(".envform/production.json"))
        })
    );
    let production = desired.environment("production").unwrap();
    let fields = &production.fields;
    assert_eq!(fields.display_name.as_deref(), Some("Production"));
    assert_eq!(
        fields.description.as_deref(),
        Some("Production environment.\nPages the on-call engineer.\n")
    );
    assert_eq!(fields.status, Some(crate::model::Status::Active));
    assert_eq!(
        serde_json::Value::Object(fields.configuration.clone().unwrap()),
        serde_json::json!({"max_workers": 20, "timeout_seconds": 7200, "region": "us-east-1"})
    );
    assert_eq!(
        serde_json::Value::Object(fields.metadata.clone().unwrap()),
        serde_json::json!({"stage": "production", "team": "platform", "cost_center": 42})
    );
    assert_eq!(
        fields.tags.as_deref(),
        Some(&["critical".to_owned(), "customer-facing".to_owned()][..])
    );
    assert_eq!(
        serde_json::Value::Object(fields.settings.clone().unwrap()),
        serde_json::json!({"notifications": {"slack": "#ops", "email": null}})
    );
    let execution = fields.execution_environment.as_ref().unwrap();
    assert_eq!(
        serde_json::Value::Object(execution.env_vars.clone()),
        serde_json::json!({"LOG_LEVEL": "info", "PORT": "8080"})
    );
    assert_eq!(execution.secrets, vec!["DATABASE_URL".to_owned()]);
    assert_eq!(
        execution.integration_ids,
        vec!["github".to_owned(), "slack".to_owned()]
    );
    assert_eq!(
        serde_json::Value::Object(execution.mcp_servers.clone()),
        serde_json::json!({"search": {"url": "https://mcp.example/search", "timeout": 30}})
    );
    let dependencies: Vec<&str> = production
        .depends_on
        .iter()
        .map(|reference| reference.name.as_str())
        .collect();
    assert_eq!(dependencies, vec!["staging"]);
    assert!(production.lifecycle.prevent_destroy);
    let ignored: Vec<String> = production
        .lifecycle
        .ignore_changes
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        ignored,
        vec![
            "metadata.owner",
            "execution_environment.env_vars.TOKEN",
            "status"
        ]
    );
    assert_eq!(production.renamed_from.as_ref().unwrap().name, "prod");
    let staging = desired.environment("staging").unwrap();
    assert_eq!(staging.fields.status, Some(crate::model::Status::Inactive));
    assert_eq!(staging.fields.description, None);
}

#[test]
fn a_directory_is_one_configuration() {
    let desired = load(Path::new("tests/fixtures/spec/good-directory")).unwrap();
    let names: Vec<&str> = desired
        .environments
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, vec!["staging", "production"]);
    // `defaults` of one file apply to the environments of all of them.
    let team = |name: &str| {
        desired
            .environment(name)
            .unwrap()
            .fields
            .metadata
            .as_ref()
            .unwrap()["team"]
            .clone()
    };
    assert_eq!(team("production"), "platform");
    assert_eq!(desired.sources.files.len(), 2, "README.md is not read");
    assert_eq!(desired.environments[1].location.source.0, 1);
}

/// Enough environments that they are read on more than one thread.
#[test]
fn a_large_configuration_keeps_file_order_and_every_problem() {
    let mut text = String::from("version: 1\ndefaults:\n  metadata: {team: core}\nenvironments:\n");
    for index in 0..3_000 {
        let workers = if index == 7 || index == 2_990 { 0 } else { 2 };
        text.push_str(&format!(
            "  - name: env-{index:04}\n    configuration: {{max_workers: {workers}}}\n"
        ));
    }
    let error = super::parse_text(&text).unwrap_err();
    let lines: Vec<(&str, usize)> = error
        .diagnostics()
        .iter()
        .map(|diagnostic| (diagnostic.code(), diagnostic.line))
        .collect();
    // Environment N starts on line 5 + 2N; its `configuration` is the line after.
    let below_one = "envform::spec::out_of_range";
    assert_eq!(lines, vec![(below_one, 20), (below_one, 5_986)]);

    let fixed = text.replace("max_workers: 0", "max_workers: 1");
    let desired = super::parse_text(&fixed).unwrap();
    let names: Vec<&str> = desired
        .environments
        .iter()
        .map(|environment| environment.name.as_str())
        .collect();
    let expected: Vec<String> = (0..3_000).map(|index| format!("env-{index:04}")).collect();
    assert_eq!(names, expected);
    let metadata = desired.environments[2_999]
        .fields
        .metadata
        .as_ref()
        .unwrap();
    assert_eq!(
        metadata["team"], "core",
        "defaults reach the last thread's environments"
    );
}

#[test]
fn a_name_in_two_files_points_at_both() {
    let error = load(Path::new("tests/fixtures/spec/bad-directory")).unwrap_err();
    let [diagnostic] = error.diagnostics() else {
        panic!("expected one diagnostic: {error:#?}");
    };
    assert_eq!(diagnostic.code(), "envform::spec::duplicate_name");
    assert_eq!(diagnostic.location.source.0, 1);
    assert_eq!((diagnostic.line, diagnostic.column), (4, 11));
    assert_eq!(diagnostic.labels[0].location.source.0, 0);
    let rendered = super::render(&error);
    assert!(rendered.contains("bad-directory/a.yaml:3:11"), "{rendered}");
    assert!(rendered.contains("bad-directory/b.yaml:4:11"), "{rendered}");
}

#[test]
fn an_empty_directory_has_no_files() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("notes.txt"), "hello").unwrap();
    let error = load(directory.path()).unwrap_err();
    assert!(matches!(error, SpecError::NoFiles { .. }), "{error:?}");
    assert_eq!(
        miette::Diagnostic::code(&error).unwrap().to_string(),
        "envform::spec::no_files"
    );
}

#[test]
fn a_missing_file_is_an_io_error() {
    let error = load(Path::new("tests/fixtures/spec/does-not-exist.yaml")).unwrap_err();
    assert!(matches!(error, SpecError::Io { .. }), "{error:?}");
    assert_eq!(
        miette::Diagnostic::code(&error).unwrap().to_string(),
        "envform::spec::io"
    );
    assert!(error.to_string().contains("does-not-exist.yaml"));
}
