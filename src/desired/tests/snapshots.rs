//! Rendered diagnostics, one snapshot per kind, kept in `snapshots/desired/` (no colour, width 100).

use std::path::Path;

use super::{parse_text, render, sources};
use crate::desired::{SpecError, load, parse};

const HEAD: &str = "version: 1\nenvironments:\n";

/// Snapshots the rendered report of `error` under `name`, checking its code first.
#[track_caller]
fn snapshot(name: &str, code: &str, error: &SpecError) {
    let codes: Vec<&str> = error.diagnostics().iter().map(|d| d.code()).collect();
    assert!(
        codes.contains(&code),
        "{name}: expected {code} in {codes:?}"
    );
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/desired"),
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, render(error));
    });
}

#[track_caller]
fn snapshot_text(name: &str, code: &str, text: &str) {
    let error = parse_text(text).expect_err("the text must not parse");
    snapshot(name, code, &error);
}

#[test]
fn yaml_syntax() {
    snapshot_text(
        "yaml_syntax",
        "envform::spec::yaml_syntax",
        "version: 1\nenvironments:\n  - name: prod\n    tags: [a, b\n    description: x\n",
    );
}

#[test]
fn yaml_syntax_tab() {
    snapshot_text(
        "yaml_syntax_tab",
        "envform::spec::yaml_syntax",
        "version: 1\nenvironments:\n\t- name: prod\n",
    );
}

#[test]
fn invalid_utf8() {
    let error = load(Path::new("tests/fixtures/spec/bad/non-utf8.yaml")).unwrap_err();
    snapshot("invalid_utf8", "envform::spec::invalid_utf8", &error);
}

#[test]
fn empty_file() {
    snapshot_text("empty_file", "envform::spec::empty_file", "# nothing yet\n");
}

#[test]
fn too_complex() {
    let text = format!("version: 1\nx-deep: {}{}\n", "[".repeat(70), "]".repeat(70));
    snapshot_text("too_complex", "envform::spec::too_complex", &text);
}

#[test]
fn recursive_alias() {
    snapshot_text(
        "recursive_alias",
        "envform::spec::recursive_alias",
        "version: 1\nx-loop: &loop\n  again: *loop\n",
    );
}

#[test]
fn duplicate_key() {
    snapshot_text(
        "duplicate_key",
        "envform::spec::duplicate_key",
        &format!("{HEAD}  - name: prod\n    description: one\n    description: two\n"),
    );
}

#[test]
fn unknown_key() {
    snapshot_text(
        "unknown_key",
        "envform::spec::unknown_key",
        &format!("{HEAD}  - name: prod\n    descripton: Production\n    owner: platform\n"),
    );
}

#[test]
fn unknown_key_in_defaults() {
    snapshot_text(
        "unknown_key_in_defaults",
        "envform::spec::unknown_key",
        "version: 1\ndefaults:\n  name: everything\nenvironments:\n  - name: prod\n",
    );
}

#[test]
fn missing_key() {
    snapshot_text(
        "missing_key",
        "envform::spec::missing_key",
        "environments:\n  - description: Production\n",
    );
}

#[test]
fn wrong_type() {
    snapshot_text(
        "wrong_type",
        "envform::spec::wrong_type",
        &format!(
            "{HEAD}  - name: prod\n    tags: platform\n    lifecycle: {{prevent_destroy: \"yes\"}}\n    execution_environment:\n      env_vars: {{PORT: 8080}}\n"
        ),
    );
}

#[test]
fn unsupported_version() {
    snapshot_text(
        "unsupported_version",
        "envform::spec::unsupported_version",
        "version: 2\nenvironments: []\n",
    );
}

#[test]
fn duplicate_section() {
    let first = "version: 1\noptions:\n  prune: true\n";
    let second = "version: 1\noptions:\n  prune: false\n";
    let error = parse(sources(&[("base.yaml", first), ("more.yaml", second)])).unwrap_err();
    snapshot(
        "duplicate_section",
        "envform::spec::duplicate_section",
        &error,
    );
}

#[test]
fn duplicate_name() {
    snapshot_text(
        "duplicate_name",
        "envform::spec::duplicate_name",
        &format!("{HEAD}  - name: production\n    description: one\n  - name: production\n"),
    );
}

#[test]
fn duplicate_name_across_files() {
    let first = format!("{HEAD}  - name: production\n");
    let second = format!("{HEAD}  - name: staging\n  - name: production\n");
    let error = parse(sources(&[("prod.yaml", &first), ("stage.yaml", &second)])).unwrap_err();
    snapshot(
        "duplicate_name_across_files",
        "envform::spec::duplicate_name",
        &error,
    );
}

#[test]
fn invalid_name() {
    snapshot_text(
        "invalid_name",
        "envform::spec::invalid_name",
        &format!(
            "{HEAD}  - name: p\n  - name: \"prod \"\n  - name: {}\n",
            "x".repeat(101)
        ),
    );
}

#[test]
fn invalid_status() {
    snapshot_text(
        "invalid_status",
        "envform::spec::invalid_status",
        &format!("{HEAD}  - name: prod\n    status: ready\n  - name: stage\n    status: inactiv\n"),
    );
}

#[test]
fn out_of_range() {
    snapshot_text(
        "out_of_range",
        "envform::spec::out_of_range",
        &format!(
            "{HEAD}  - name: prod\n    configuration:\n      max_workers: 0\n      timeout_seconds: 99999999999999999999999\n"
        ),
    );
}

#[test]
fn invalid_value() {
    snapshot_text(
        "invalid_value",
        "envform::spec::invalid_value",
        "version: 1\nstate:\n  backend: s3\n",
    );
}

#[test]
fn secret_in_file() {
    snapshot_text(
        "secret_in_file",
        "envform::spec::secret_in_file",
        "version: 1\nstate:\n  backend: http\n  address: https://state.example/envform\n  username: ci\n  password: hunter2\n",
    );
}

#[test]
fn unknown_dependency() {
    snapshot_text(
        "unknown_dependency",
        "envform::spec::unknown_dependency",
        &format!("{HEAD}  - name: staging\n  - name: production\n    depends_on: [stagign, qa]\n"),
    );
}

#[test]
fn dependency_cycle() {
    snapshot_text(
        "dependency_cycle",
        "envform::spec::dependency_cycle",
        &format!(
            "{HEAD}  - name: dev\n    depends_on: [production]\n  - name: staging\n    depends_on: [dev]\n  - name: production\n    depends_on: [staging]\n"
        ),
    );
}

#[test]
fn conflicting_rename() {
    snapshot_text(
        "conflicting_rename",
        "envform::spec::conflicting_rename",
        &format!(
            "{HEAD}  - name: prod\n  - name: production\n    renamed_from: prod\n  - name: live\n    renamed_from: live\n"
        ),
    );
}

#[test]
fn unknown_ignore_path() {
    snapshot_text(
        "unknown_ignore_path",
        "envform::spec::unknown_ignore_path",
        &format!(
            "{HEAD}  - name: prod\n    lifecycle:\n      ignore_changes: [metdata.owner, status.reason, name]\n"
        ),
    );
}

#[test]
fn many_problems_in_one_report() {
    snapshot_text(
        "many_problems",
        "envform::spec::unknown_key",
        &format!(
            "{HEAD}  - name: production\n    stauts: active\n    configuration: {{max_workers: -1}}\n    depends_on: [stagin]\n  - name: staging\n    tags: [1]\n"
        ),
    );
}

#[test]
fn problem_in_an_anchor_points_at_the_alias_too() {
    snapshot_text(
        "anchor_and_alias",
        "envform::spec::out_of_range",
        &format!(
            "version: 1\nx-base: &base\n  max_workers: 0\n{}  - name: prod\n    configuration:\n      <<: *base\n",
            "environments:\n"
        ),
    );
}
