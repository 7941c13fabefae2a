//! Tests of the desired-state file: exact positions, rendered snapshots, bad-input fixtures.

use std::path::PathBuf;

use super::{Desired, Options, SourceFile, Sources, SpecDiagnostic, SpecError, parse};
use sha2::Digest as _;

/// Parses one file named `envform.yaml`.
pub(super) fn parse_text(text: &str) -> Result<Desired, SpecError> {
    parse(sources(&[("envform.yaml", text)]))
}

/// Sources from (path, text) pairs.
pub(super) fn sources(files: &[(&str, &str)]) -> Sources {
    Sources {
        files: files
            .iter()
            .map(|(path, text)| SourceFile {
                path: PathBuf::from(path),
                text: (*text).to_owned(),
            })
            .collect(),
    }
}

/// The text of every `*.yaml` and `*.yml` file of the spec fixtures and the examples, in path
/// order; a file that is not UTF-8 is left out.
pub(super) fn fixture_and_example_texts() -> Vec<String> {
    let mut texts = Vec::new();
    for directory in [
        "tests/fixtures/spec/good",
        "tests/fixtures/spec/good-directory",
        "tests/fixtures/spec/bad",
        "tests/fixtures/spec/bad-directory",
        "examples/environments",
        "examples/scenarios",
    ] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "yaml" || extension == "yml")
            })
            .collect();
        paths.sort();
        texts.extend(
            paths
                .iter()
                .filter_map(|path| String::from_utf8(std::fs::read(path).unwrap()).ok()),
        );
    }
    texts
}

/// The diagnostics of a text that must not parse.
pub(super) fn diagnostics(text: &str) -> Vec<SpecDiagnostic> {
    match parse_text(text) {
        Ok(desired) => panic!("expected diagnostics, parsed {desired:#?}"),
        Err(error) => error.diagnostics().to_vec(),
    }
}

/// A report rendered without colour at a fixed width, as snapshots keep it.
pub(super) fn render(error: &SpecError) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100);
    let mut out = String::new();
    handler
        .render_report(&mut out, error)
        .expect("rendering into a String cannot fail");
    out
}

fn json(map: &Option<crate::model::JsonMap>) -> serde_json::Value {
    serde_json::Value::Object(map.clone().expect("the field is set"))
}

#[test]
fn the_design_example_parses() {
    let text = "version: 1
environments:
  - name: staging
  - name: production
    description: Production environment
    status: active                      # active | inactive; omit to leave it to the service
    configuration: {max_workers: 20, timeout_seconds: 7200}
    metadata: {stage: production, team: platform}
    depends_on: [staging]               # applied after staging, destroyed before it
    lifecycle: {prevent_destroy: true}  # plan fails rather than delete it
    renamed_from: prod                  # rename in place instead of delete + create
";
    let desired = parse_text(text).unwrap();
    assert_eq!(desired.environments.len(), 2);
    let production = &desired.environments[1];
    assert_eq!(production.name, "production");
    assert_eq!(production.name_location.span, (53, 10).into());
    assert_eq!(production.location.span.offset(), 47);
    assert_eq!(production.fields.status, Some(crate::model::Status::Active));
    assert_eq!(
        json(&production.fields.configuration),
        serde_json::json!({"max_workers": 20, "timeout_seconds": 7200})
    );
    assert_eq!(production.depends_on[0].name, "staging");
    assert!(production.lifecycle.prevent_destroy);
    assert_eq!(production.renamed_from.as_ref().unwrap().name, "prod");
    assert_eq!(desired.options, super::Options::default());
    assert_eq!(desired.options.delete_threshold.max_fraction, 0.3);
    assert_eq!(desired.options.delete_threshold.min_existing, 10);
    assert_eq!(desired.state, None);
    assert_eq!(desired.name_index()["production"], 1);
}

#[test]
fn defaults_are_deep_merged() {
    let text = "version: 1
defaults:
  description: managed by envform
  configuration: {max_workers: 5, timeout_seconds: 600, nested: {a: 1, b: 2}}
  metadata: {team: platform, tier: gold}
  tags: [managed, shared]
  lifecycle: {prevent_destroy: true, ignore_changes: [metadata]}
environments:
  - name: production
    configuration: {max_workers: 20, nested: {b: 3}}
    tags: [critical]
  - name: scratch
    description: null
    metadata: {team: null, owner: null}
    lifecycle: {prevent_destroy: false}
";
    let desired = parse_text(text).unwrap();
    let production = desired.environment("production").unwrap();
    // Mappings merge key by key and the environment's values win.
    assert_eq!(
        json(&production.fields.configuration),
        serde_json::json!({"max_workers": 20, "nested": {"b": 3, "a": 1}, "timeout_seconds": 600})
    );
    // Lists are replaced, not appended.
    assert_eq!(production.fields.tags, Some(vec!["critical".to_owned()]));
    assert_eq!(
        production.fields.description.as_deref(),
        Some("managed by envform")
    );
    assert!(production.lifecycle.prevent_destroy);
    let scratch = desired.environment("scratch").unwrap();
    // An explicit null drops the default.
    assert_eq!(scratch.fields.description, None);
    assert!(!scratch.lifecycle.prevent_destroy);
    // Inside a field, `key: null` drops the default's key; a null of its own is kept as written.
    assert_eq!(
        json(&scratch.fields.metadata),
        serde_json::json!({"owner": null, "tier": "gold"})
    );
    assert_eq!(scratch.lifecycle.ignore_changes.len(), 1);
    assert_eq!(
        scratch.fields.tags,
        Some(vec!["managed".to_owned(), "shared".to_owned()])
    );
}

#[test]
fn anchors_and_merge_keys_work() {
    let text = "version: 1
x-small: &small {max_workers: 2, timeout_seconds: 600}
x-team: &team platform
environments:
  - name: dev
    configuration: *small
    metadata: {team: *team}
  - name: staging
    configuration:
      <<: *small
      max_workers: 10
";
    let desired = parse_text(text).unwrap();
    assert_eq!(
        json(&desired.environments[0].fields.configuration),
        serde_json::json!({"max_workers": 2, "timeout_seconds": 600})
    );
    assert_eq!(
        json(&desired.environments[0].fields.metadata),
        serde_json::json!({"team": "platform"})
    );
    assert_eq!(
        json(&desired.environments[1].fields.configuration),
        serde_json::json!({"max_workers": 10, "timeout_seconds": 600})
    );
}

#[test]
fn a_problem_in_defaults_is_reported_once() {
    let text = "version: 1
defaults:
  configuration: {max_workers: 0}
environments:
  - name: one1
  - name: two2
  - name: three
";
    let found = diagnostics(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code(), "envform::spec::out_of_range");
    assert_eq!((found[0].line, found[0].column), (3, 32));
}

#[test]
fn a_problem_in_defaults_is_reported_without_environments() {
    let found = diagnostics("version: 1\ndefaults: {stauts: active}\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code(), "envform::spec::unknown_key");
}

#[test]
fn state_http_backend() {
    let text = "version: 1
state:
  backend: http
  address: https://state.example/envform
  lock_method: LOCK
  username: ci
";
    let desired = parse_text(text).unwrap();
    assert_eq!(
        desired.state,
        Some(super::StateBackendConfig::Http(super::HttpBackendConfig {
            address: "https://state.example/envform".to_owned(),
            lock_method: Some("LOCK".to_owned()),
            username: Some("ci".to_owned()),
            ..Default::default()
        }))
    );
    assert!(desired.environments.is_empty());
}

#[test]
fn only_true_and_false_are_booleans() {
    let found = diagnostics("version: 1\noptions: {prune: yes}\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].code(), "envform::spec::wrong_type");
    // `on` is a string, so an environment can be called that.
    let desired =
        parse_text("version: 1\nenvironments:\n  - name: on\n    tags: [no, off]\n").unwrap();
    assert_eq!(desired.environments[0].name, "on");
    assert_eq!(
        desired.environments[0].fields.tags,
        Some(vec!["no".to_owned(), "off".to_owned()])
    );
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let desired = parse_text("\u{feff}version: 1\nenvironments:\n  - name: production\n").unwrap();
    assert_eq!(desired.environments[0].name, "production");
    // Offsets count the mark's three bytes.
    assert_eq!(desired.environments[0].name_location.span, (38, 10).into());
}

#[test]
fn the_digest_hashed_one_environment_at_a_time_is_that_of_the_whole_document() {
    // The document as a whole, as the digest was first computed.
    let whole = |desired: &Desired, options: &Options| {
        let mut environments: Vec<serde_json::Value> = desired
            .environments
            .iter()
            .map(super::environment_meaning)
            .collect();
        environments.sort_by_key(|environment| environment["name"].to_string());
        let mut meaning = super::rest_of_meaning(options, desired.state.as_ref());
        meaning["environments"] = serde_json::Value::Array(environments);
        hex::encode(sha2::Sha256::digest(
            super::canonical(meaning).to_string().as_bytes(),
        ))
    };
    let text = "version: 1\noptions: {prune: false, adopt: true}\nstate: {backend: local, path: s.json}\nenvironments:\n  - name: zeta\n    description: last \"quoted\"\n    metadata: {b: 1, a: [2, 1]}\n  - name: Alpha\n    depends_on: [zeta]\n    lifecycle: {prevent_destroy: true, ignore_changes: [metadata, description]}\n  - name: mid-1\n    configuration: {timeout_seconds: 60, max_workers: 3}\n  - name: new-1\n    display_name: New\n    status: inactive\n    renamed_from: old-1\n    tags: [b, a]\n    settings: {z: {y: 1, x: [{q: 1, p: -2.5}]}, a: null}\n    execution_environment: {secrets: [s], env_vars: {B: \"1\", A: \"2\"}, mcp_servers: {m: {url: u, a: [1]}}}\n    nonsensitive: [B, A]\n";
    let desired = parse(sources(&[("a.yaml", text)])).unwrap();
    assert_eq!(desired.environments.len(), 4);
    assert_eq!(desired.digest, whole(&desired, &desired.options));
    let empty = parse(sources(&[("e.yaml", "version: 1\nenvironments: []\n")])).unwrap();
    assert_eq!(empty.digest, whole(&empty, &empty.options));
}

#[test]
fn the_digest_follows_meaning_not_writing() {
    let digest = |files: &[(&str, &str)]| parse(sources(files)).unwrap().digest;
    let first = digest(&[(
        "a.yaml",
        "version: 1\nenvironments:\n  - name: api\n    configuration: {max_workers: 2, timeout_seconds: 60}\n  - name: db\n",
    )]);
    assert_eq!(first.len(), 64);
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    // Comments, whitespace, key order, environment order and the split into files: same meaning.
    let rewritten = digest(&[
        (
            "b.yaml",
            "# the database\nversion: 1\nenvironments:\n  - name: db\n",
        ),
        (
            "c.yaml",
            "version: 1\nenvironments:\n  - configuration:\n      timeout_seconds: 60\n      max_workers: 2\n    name: api   # the API\n",
        ),
    ]);
    assert_eq!(first, rewritten);
    // Any change of meaning is another digest.
    for changed in [
        "version: 1\nenvironments:\n  - name: api\n    configuration: {max_workers: 3, timeout_seconds: 60}\n  - name: db\n",
        "version: 1\nenvironments:\n  - name: api\n    configuration: {max_workers: 2, timeout_seconds: 60}\n",
        "version: 1\noptions: {prune: true}\nenvironments:\n  - name: api\n    configuration: {max_workers: 2, timeout_seconds: 60}\n  - name: db\n",
        "version: 1\nenvironments:\n  - name: api\n    configuration: {max_workers: 2, timeout_seconds: 60}\n    depends_on: [db]\n  - name: db\n",
    ] {
        assert_ne!(first, digest(&[("a.yaml", changed)]), "{changed}");
    }
}

#[test]
fn default_path_is_envform_yaml() {
    assert_eq!(super::default_path(), PathBuf::from("envform.yaml"));
}

#[test]
fn source_debug_output_leaves_the_text_out() {
    let text = "version: 1\nenvironments:\n  - name: prod\n    execution_environment:\n      env_vars: {TOKEN: s3cr3t-value}\n";
    let desired = parse_text(text).unwrap();
    let shown = format!("{:?}", desired.sources);
    assert!(!shown.contains("s3cr3t-value"), "{shown}");
    assert!(shown.contains("envform.yaml"));
}

#[test]
fn diagnostics_never_quote_env_var_values() {
    let text = "version: 1\nenvironments:\n  - name: prod\n    execution_environment:\n      env_vars: {TOKEN: [s3cr3t-value]}\n";
    let error = parse_text(text).unwrap_err();
    let diagnostic = &error.diagnostics()[0];
    assert!(!diagnostic.to_string().contains("s3cr3t"));
    assert!(!format!("{diagnostic:?}").contains("s3cr3t"));
    assert!(!error.to_string().contains("s3cr3t"));
}

mod compose;
mod fixtures;
mod positions;
mod snapshots;
mod split;

#[test]
fn state_without_backend_reports_only_that() {
    let found = diagnostics("version: 1\nstate: {address: https://x, password: p4ss}\n");
    let codes: Vec<&str> = found.iter().map(|d| d.code()).collect();
    assert_eq!(
        codes,
        vec![
            "envform::spec::missing_key",
            "envform::spec::secret_in_file"
        ]
    );
}

#[test]
fn a_large_file_is_read_quickly() {
    let mut text = String::from(
        "version: 1\ndefaults:\n  configuration: {max_workers: 5}\n  metadata: {team: platform}\nenvironments:\n",
    );
    for index in 0..2_000_usize {
        let dependency = if index == 0 { 1 } else { index - 1 };
        text.push_str(&format!(
            "  - name: environment-{index}\n    tags: [a, b]\n    metadata: {{index: {index}}}\n    depends_on: [environment-{dependency}]\n"
        ));
    }
    let big_mapping: String = (0..20_000)
        .map(|key| format!("      key{key}: {key}\n"))
        .collect();
    text.push_str(&format!("  - name: wide\n    settings:\n{big_mapping}"));
    let started = std::time::Instant::now();
    let result = parse_text(&text);
    let elapsed = started.elapsed();
    // environment-0 and environment-1 depend on each other: one cycle, nothing else.
    let error = result.unwrap_err();
    let codes: Vec<&str> = error.diagnostics().iter().map(|d| d.code()).collect();
    assert_eq!(codes, vec!["envform::spec::dependency_cycle"]);
    assert!(
        elapsed < std::time::Duration::from_secs(10),
        "took {elapsed:?}"
    );
}

#[test]
fn swaps_and_rename_chains_may_reuse_a_desired_name() {
    let desired = parse_text(
        "version: 1\nenvironments:\n  - name: blue\n    renamed_from: green\n  - name: green\n    renamed_from: blue\n",
    )
    .expect("a swap is valid");
    assert_eq!(desired.environments.len(), 2);
    // Renaming away from a name that stays desired as itself is still a conflict.
    let error = parse_text(
        "version: 1\nenvironments:\n  - name: blue\n    renamed_from: green\n  - name: green\n",
    )
    .unwrap_err();
    assert_eq!(
        error.diagnostics()[0].code(),
        "envform::spec::conflicting_rename"
    );
}
