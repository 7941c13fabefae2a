//! Exact-position tests: for every diagnostic kind, the byte offset, line, column and width of
//! the node it points at (casey/just style).

use super::{diagnostics, parse_text, sources};
use crate::desired::{
    DiagnosticKind, NameProblem, NodeKind, Range, RenameConflict, Section, SourceId,
    SpecDiagnostic, parse,
};

const HEAD: &str = "version: 1\nenvironments:\n";

/// The one diagnostic of `text`.
fn only(text: &str) -> SpecDiagnostic {
    let mut found = diagnostics(text);
    assert_eq!(found.len(), 1, "expected one diagnostic, got {found:#?}");
    found.remove(0)
}

/// Asserts code, byte offset, line, column and width.
#[track_caller]
fn assert_at(
    diagnostic: &SpecDiagnostic,
    code: &str,
    offset: usize,
    line: usize,
    column: usize,
    width: usize,
) {
    assert_eq!(
        (
            diagnostic.code(),
            diagnostic.offset(),
            diagnostic.line,
            diagnostic.column,
            diagnostic.width()
        ),
        (code, offset, line, column, width),
        "{diagnostic:#?}"
    );
}

#[test]
fn yaml_syntax() {
    // The `:` after `bar` cannot start a key inside the unclosed flow sequence.
    let diagnostic = only("version: 1\nfoo: [1, 2\nbar: 3\n");
    assert!(matches!(diagnostic.kind, DiagnosticKind::YamlSyntax { .. }));
    assert_at(&diagnostic, "envform::spec::yaml_syntax", 25, 3, 4, 1);
}

#[test]
fn yaml_syntax_for_a_tab_in_indentation() {
    let diagnostic = only("version: 1\nenvironments:\n\t- name: prod\n");
    // Points at the tab itself: line 3 starts at byte 25.
    assert_at(&diagnostic, "envform::spec::yaml_syntax", 25, 3, 1, 1);
}

#[test]
fn invalid_utf8() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("envform.yaml");
    std::fs::write(&path, b"version: 1\n# caf\xe9\n").unwrap();
    let error = crate::desired::load(&path).unwrap_err();
    let [diagnostic] = error.diagnostics() else {
        panic!("expected one diagnostic: {error:#?}");
    };
    assert_eq!(diagnostic.kind, DiagnosticKind::InvalidUtf8);
    // The bad byte follows "version: 1\n# caf"; it reads as one U+FFFD, three bytes wide.
    assert_at(diagnostic, "envform::spec::invalid_utf8", 16, 2, 6, 3);
}

#[test]
fn empty_file() {
    for text in ["", "\n", "# only a comment\n"] {
        let diagnostic = only(text);
        assert_eq!(diagnostic.kind, DiagnosticKind::EmptyFile);
        assert_at(&diagnostic, "envform::spec::empty_file", 0, 1, 1, 0);
    }
}

#[test]
fn too_complex_nesting() {
    let text = format!("version: 1\nx-deep: {}{}\n", "[".repeat(70), "]".repeat(70));
    let diagnostic = only(&text);
    assert!(matches!(diagnostic.kind, DiagnosticKind::TooComplex { .. }));
    // "version: 1\nx-deep: " is 19 bytes; the 65th bracket is one level too deep.
    assert_at(
        &diagnostic,
        "envform::spec::too_complex",
        19 + 64,
        2,
        9 + 64,
        1,
    );
}

#[test]
fn too_complex_alias_bomb() {
    let mut text =
        String::from("version: 1\nx-0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10 {
        let previous = format!("*a{}", level - 1);
        let items = [previous.as_str(); 9].join(", ");
        text.push_str(&format!("x-{level}: &a{level} [{items}]\n"));
    }
    let started = std::time::Instant::now();
    let diagnostic = only(&text);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        matches!(&diagnostic.kind, DiagnosticKind::TooComplex { message } if message.contains("nodes")),
        "{diagnostic:#?}"
    );
    assert_eq!(diagnostic.code(), "envform::spec::too_complex");
}

#[test]
fn recursive_alias() {
    let diagnostic = only("version: 1\nx-loop: &a [*a]\n");
    assert_eq!(diagnostic.kind, DiagnosticKind::RecursiveAlias);
    assert_at(&diagnostic, "envform::spec::recursive_alias", 23, 2, 13, 2);
}

#[test]
fn duplicate_key_points_at_both() {
    let diagnostic = only("version: 1\nversion: 1\n");
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::DuplicateKey {
            key: "version".to_owned()
        }
    );
    assert_at(&diagnostic, "envform::spec::duplicate_key", 11, 2, 1, 7);
    assert_eq!(diagnostic.labels.len(), 1);
    assert_eq!(diagnostic.labels[0].location.span, (0, 7).into());
}

#[test]
fn duplicate_key_in_a_large_mapping_points_at_both() {
    // Past the size where keys are compared pair by pair, they are hashed: same answer.
    let mut text = format!("{HEAD}  - name: prod\n    metadata:\n");
    for index in 0..20 {
        text.push_str(&format!("      k{index}: v\n"));
    }
    let first = text.find("k3:").expect("k3");
    text.push_str("      k3: again\n");
    let repeated = text.rfind("k3:").expect("second k3");
    let diagnostic = only(&text);
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::DuplicateKey {
            key: "k3".to_owned()
        }
    );
    assert_at(
        &diagnostic,
        "envform::spec::duplicate_key",
        repeated,
        25,
        7,
        2,
    );
    assert_eq!(diagnostic.labels[0].location.span, (first, 2).into());
}

#[test]
fn unknown_key_with_suggestion() {
    let diagnostic = only(&format!("{HEAD}  - name: prod\n    descripton: x\n"));
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::UnknownKey {
            key: "descripton".to_owned(),
            section: Section::Environment,
            suggestion: Some("description"),
        }
    );
    assert_at(&diagnostic, "envform::spec::unknown_key", 44, 4, 5, 10);
}

#[test]
fn unknown_key_without_suggestion() {
    let diagnostic = only(&format!(
        "{HEAD}  - name: prod\n    lifecycle: {{when: now}}\n"
    ));
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::UnknownKey {
            key: "when".to_owned(),
            section: Section::Lifecycle,
            suggestion: None,
        }
    );
    // "    lifecycle: {" is 16 bytes into line 4, which starts at byte 40.
    assert_at(&diagnostic, "envform::spec::unknown_key", 56, 4, 17, 4);
}

#[test]
fn missing_name_points_at_the_entry() {
    let diagnostic = only(&format!("{HEAD}  - description: x\n"));
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::MissingKey {
            key: "name",
            section: Section::Environment
        }
    );
    assert_at(&diagnostic, "envform::spec::missing_key", 29, 3, 5, 14);
}

#[test]
fn missing_version_points_at_the_first_line() {
    let diagnostic = only("environments: []\n");
    assert_at(&diagnostic, "envform::spec::missing_key", 0, 1, 1, 16);
}

#[test]
fn wrong_type_in_a_list() {
    let diagnostic = only(&format!("{HEAD}  - name: prod\n    tags: [a, 1]\n"));
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::WrongType {
            key: "tags[1]".to_owned(),
            expected: "a string",
            found: NodeKind::Integer,
        }
    );
    assert_at(&diagnostic, "envform::spec::wrong_type", 54, 4, 15, 1);
}

#[test]
fn wrong_type_of_a_block_mapping_spans_its_first_line() {
    let diagnostic = only(&format!("{HEAD}  - name: prod\n    tags:\n      team: a\n"));
    assert!(matches!(
        diagnostic.kind,
        DiagnosticKind::WrongType {
            found: NodeKind::Mapping,
            ..
        }
    ));
    // Line 5 starts at byte 50; "      " precedes "team: a".
    assert_at(&diagnostic, "envform::spec::wrong_type", 56, 5, 7, 7);
}

#[test]
fn wrong_type_of_an_env_var_names_it_without_its_value() {
    let text = format!(
        "{HEAD}  - name: prod\n    execution_environment:\n      env_vars: {{PORT: 8080}}\n"
    );
    let diagnostic = only(&text);
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::WrongType {
            key: "env_vars.PORT".to_owned(),
            expected: "a string",
            found: NodeKind::Integer,
        }
    );
    // Line 5 starts at byte 67; "      env_vars: {PORT: " is 23 bytes.
    assert_at(&diagnostic, "envform::spec::wrong_type", 90, 5, 24, 4);
    assert!(!diagnostic.to_string().contains("8080"));
}

#[test]
fn unsupported_version() {
    let diagnostic = only("version: 2\nenvironments: {}\n");
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::UnsupportedVersion {
            found: "2".to_owned()
        }
    );
    assert_at(
        &diagnostic,
        "envform::spec::unsupported_version",
        9,
        1,
        10,
        1,
    );
}

#[test]
fn duplicate_section_across_files_points_at_both() {
    let text = "version: 1\noptions: {prune: true}\n";
    let error = parse(sources(&[("a.yaml", text), ("b.yaml", text)])).unwrap_err();
    let [diagnostic] = error.diagnostics() else {
        panic!("expected one diagnostic: {error:#?}");
    };
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::DuplicateSection { key: "options" }
    );
    assert_eq!(diagnostic.location.source, SourceId(1));
    // Both labels sit on the `options` key.
    assert_at(diagnostic, "envform::spec::duplicate_section", 11, 2, 1, 7);
    assert_eq!(diagnostic.labels[0].location.source, SourceId(0));
    assert_eq!(diagnostic.labels[0].location.span, (11, 7).into());
}

#[test]
fn duplicate_name_points_at_both() {
    let diagnostic = only(&format!("{HEAD}  - name: prod\n  - name: prod\n"));
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::DuplicateName {
            name: "prod".to_owned()
        }
    );
    assert_at(&diagnostic, "envform::spec::duplicate_name", 50, 4, 11, 4);
    assert_eq!(diagnostic.labels[0].location.span, (35, 4).into());
    assert_eq!(diagnostic.labels[0].text, "first defined here");
}

#[test]
fn duplicate_name_across_files_points_at_both() {
    let first = format!("{HEAD}  - name: prod\n");
    let second = format!("{HEAD}  - name: staging\n  - name: prod\n");
    let error = parse(sources(&[("a.yaml", &first), ("b.yaml", &second)])).unwrap_err();
    let [diagnostic] = error.diagnostics() else {
        panic!("expected one diagnostic: {error:#?}");
    };
    assert_eq!(diagnostic.location.source, SourceId(1));
    assert_at(diagnostic, "envform::spec::duplicate_name", 53, 4, 11, 4);
    assert_eq!(diagnostic.labels[0].location.source, SourceId(0));
    assert_eq!(diagnostic.labels[0].location.span, (35, 4).into());
    let related: Vec<_> = miette::Diagnostic::related(diagnostic)
        .expect("a note for the other file")
        .collect();
    assert_eq!(related.len(), 1);
}

#[test]
fn invalid_name() {
    let diagnostic = only(&format!("{HEAD}  - name: p\n"));
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::InvalidName {
            name: "p".to_owned(),
            problem: NameProblem::TooShort
        }
    );
    assert_at(&diagnostic, "envform::spec::invalid_name", 35, 3, 11, 1);
}

#[test]
fn invalid_name_with_whitespace_includes_the_quotes() {
    let diagnostic = only(&format!("{HEAD}  - name: \" prod\"\n"));
    assert!(matches!(
        diagnostic.kind,
        DiagnosticKind::InvalidName {
            problem: NameProblem::OuterWhitespace,
            ..
        }
    ));
    assert_at(&diagnostic, "envform::spec::invalid_name", 35, 3, 11, 7);
}

#[test]
fn invalid_status_set_by_the_service() {
    let diagnostic = only(&format!("{HEAD}  - name: prod\n    status: provisioning\n"));
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::InvalidStatus {
            status: "provisioning".to_owned(),
            suggestion: None
        }
    );
    assert_at(&diagnostic, "envform::spec::invalid_status", 52, 4, 13, 12);
    let help = miette::Diagnostic::help(&diagnostic).unwrap().to_string();
    assert!(help.contains("the service sets `provisioning`"), "{help}");
}

#[test]
fn invalid_status_with_suggestion() {
    let diagnostic = only(&format!("{HEAD}  - name: prod\n    status: actve\n"));
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::InvalidStatus {
            status: "actve".to_owned(),
            suggestion: Some("active")
        }
    );
    assert_at(&diagnostic, "envform::spec::invalid_status", 52, 4, 13, 5);
}

#[test]
fn out_of_range_below_one() {
    let diagnostic = only(&format!(
        "{HEAD}  - name: prod\n    configuration: {{max_workers: 0}}\n"
    ));
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::OutOfRange {
            key: "configuration.max_workers".to_owned(),
            found: "0".to_owned(),
            range: Range::Positive
        }
    );
    assert_at(&diagnostic, "envform::spec::out_of_range", 73, 4, 34, 1);
}

#[test]
fn out_of_range_too_large_for_64_bits() {
    let diagnostic = only(&format!(
        "{HEAD}  - name: prod\n    configuration:\n      timeout_seconds: 99999999999999999999999\n"
    ));
    assert!(matches!(
        diagnostic.kind,
        DiagnosticKind::OutOfRange {
            range: Range::Positive,
            ..
        }
    ));
    // Line 5 starts at byte 59; "      timeout_seconds: " is 23 bytes.
    assert_at(&diagnostic, "envform::spec::out_of_range", 82, 5, 24, 23);
}

#[test]
fn invalid_value_of_backend() {
    let diagnostic = only("version: 1\nstate: {backend: htp}\n");
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::InvalidValue {
            key: "backend",
            value: "htp".to_owned(),
            expected: &["local", "http"],
            suggestion: Some("http"),
        }
    );
    assert_at(&diagnostic, "envform::spec::invalid_value", 28, 2, 18, 3);
}

#[test]
fn secret_in_file() {
    let text = "version: 1\nstate:\n  backend: http\n  address: https://x\n  password: hunter2\n";
    let diagnostic = only(text);
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::SecretInFile {
            key: "password".to_owned()
        }
    );
    assert_at(&diagnostic, "envform::spec::secret_in_file", 57, 5, 3, 8);
    assert!(!format!("{diagnostic:?}").contains("hunter2"));
}

#[test]
fn unknown_dependency_with_suggestion() {
    let text = format!("{HEAD}  - name: staging\n  - name: prod\n    depends_on: [stagin]\n");
    let diagnostic = only(&text);
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::UnknownDependency {
            name: "stagin".to_owned(),
            suggestion: Some("staging".to_owned())
        }
    );
    // Line 5 starts at byte 58; "    depends_on: [" is 17 bytes.
    assert_at(
        &diagnostic,
        "envform::spec::unknown_dependency",
        75,
        5,
        18,
        6,
    );
}

#[test]
fn dependency_cycle_is_reported_whole() {
    let text = format!(
        "{HEAD}  - name: aa\n    depends_on: [bb]\n  - name: bb\n    depends_on: [cc]\n  - name: cc\n    depends_on: [aa]\n"
    );
    let diagnostic = only(&text);
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::DependencyCycle {
            cycle: vec!["aa".into(), "bb".into(), "cc".into(), "aa".into()]
        }
    );
    // Each environment takes 34 bytes; its dependency is 30 bytes in (13 + 17).
    assert_at(
        &diagnostic,
        "envform::spec::dependency_cycle",
        25 + 30,
        4,
        18,
        2,
    );
    let labels: Vec<(usize, &str)> = diagnostic
        .labels
        .iter()
        .map(|label| (label.location.span.offset(), label.text.as_str()))
        .collect();
    assert_eq!(
        labels,
        vec![
            (25 + 34 + 30, "`bb` depends on `cc`"),
            (25 + 68 + 30, "`cc` depends on `aa`"),
        ]
    );
    assert_eq!(
        diagnostic.to_string(),
        "dependency cycle: `aa` → `bb` → `cc` → `aa`"
    );
}

#[test]
fn dependency_cycle_starts_at_the_first_environment_written() {
    // The search enters the cycle at `bb` (listed first by `zz`), but the report starts at `aa`.
    let text = format!(
        "{HEAD}  - name: zz\n    depends_on: [bb]\n  - name: aa\n    depends_on: [bb]\n  - name: bb\n    depends_on: [aa]\n"
    );
    let diagnostic = only(&text);
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::DependencyCycle {
            cycle: vec!["aa".into(), "bb".into(), "aa".into()]
        }
    );
    assert_at(
        &diagnostic,
        "envform::spec::dependency_cycle",
        25 + 34 + 30,
        6,
        18,
        2,
    );
}

#[test]
fn self_dependency_is_a_cycle() {
    let diagnostic = only(&format!("{HEAD}  - name: aa\n    depends_on: [aa]\n"));
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::DependencyCycle {
            cycle: vec!["aa".into(), "aa".into()]
        }
    );
    assert_at(&diagnostic, "envform::spec::dependency_cycle", 55, 4, 18, 2);
}

#[test]
fn conflicting_rename_to_own_name() {
    let diagnostic = only(&format!("{HEAD}  - name: prod\n    renamed_from: prod\n"));
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::ConflictingRename {
            name: "prod".to_owned(),
            conflict: RenameConflict::OwnName
        }
    );
    assert_at(
        &diagnostic,
        "envform::spec::conflicting_rename",
        58,
        4,
        19,
        4,
    );
}

#[test]
fn conflicting_rename_from_a_desired_environment() {
    let text = format!("{HEAD}  - name: old\n  - name: new\n    renamed_from: old\n");
    let diagnostic = only(&text);
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::ConflictingRename {
            name: "old".to_owned(),
            conflict: RenameConflict::StillDesired
        }
    );
    // Line 5 starts at byte 53.
    assert_at(
        &diagnostic,
        "envform::spec::conflicting_rename",
        71,
        5,
        19,
        3,
    );
    assert_eq!(diagnostic.labels[0].location.span, (35, 3).into());
}

#[test]
fn conflicting_rename_claimed_twice() {
    let text = format!(
        "{HEAD}  - name: one\n    renamed_from: old\n  - name: two\n    renamed_from: old\n"
    );
    let diagnostic = only(&text);
    assert_eq!(
        diagnostic.kind,
        DiagnosticKind::ConflictingRename {
            name: "old".to_owned(),
            conflict: RenameConflict::SameSource
        }
    );
    assert_at(
        &diagnostic,
        "envform::spec::conflicting_rename",
        93,
        6,
        19,
        3,
    );
    assert_eq!(diagnostic.labels[0].location.span, (57, 3).into());
}

#[test]
fn unknown_ignore_path() {
    let text = format!(
        "{HEAD}  - name: prod\n    lifecycle:\n      ignore_changes: [metdata.owner, tags.x]\n"
    );
    let found = diagnostics(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(
        found[0].kind,
        DiagnosticKind::UnknownIgnorePath {
            path: "metdata.owner".to_owned(),
            suggestion: Some("metadata.owner".to_owned())
        }
    );
    // Line 5 starts at byte 55; "      ignore_changes: [" is 23 bytes.
    assert_at(
        &found[0],
        "envform::spec::unknown_ignore_path",
        78,
        5,
        24,
        13,
    );
    assert_eq!(
        found[1].kind,
        DiagnosticKind::UnknownIgnorePath {
            path: "tags.x".to_owned(),
            suggestion: None
        }
    );
    assert_at(
        &found[1],
        "envform::spec::unknown_ignore_path",
        93,
        5,
        39,
        6,
    );
}

#[test]
fn columns_count_characters_and_offsets_count_bytes() {
    // `x-` keys are ignored; `é` is two bytes.
    let diagnostic = only("version: 1\nx-é: 1\nfoo: 2\n");
    assert_at(&diagnostic, "envform::spec::unknown_key", 19, 3, 1, 3);
    let diagnostic = only(&format!("{HEAD}  - {{name: é1, descrption: 2}}\n"));
    // "  - {name: é1, " is 16 bytes but 15 characters.
    assert_at(&diagnostic, "envform::spec::unknown_key", 41, 3, 16, 10);
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let text =
        format!("{HEAD}  - name: p\n    status: on\n    tags: 3\n    foo: 1\n  - description: x\n");
    let error = parse_text(&text).unwrap_err();
    let codes: Vec<&str> = error.diagnostics().iter().map(|d| d.code()).collect();
    assert_eq!(
        codes,
        vec![
            "envform::spec::invalid_name",
            "envform::spec::invalid_status",
            "envform::spec::wrong_type",
            "envform::spec::unknown_key",
            "envform::spec::missing_key",
        ]
    );
    assert_eq!(error.to_string(), "found 5 problems in envform.yaml");
}

#[test]
fn near_miss_configuration_key_is_a_warning_at_the_key() {
    let text = format!(
        "{HEAD}  - name: api\n    configuration: {{max_worker: 2, timeout_second: 5, max_workers: 3, teams: x}}\n"
    );
    let desired = parse_text(&text).expect("a near miss keeps the file valid");
    let warnings: Vec<_> = desired.warnings.iter().collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert_at(warnings[0], "envform::spec::near_miss_key", 59, 4, 21, 10);
    assert_eq!(
        warnings[0].kind,
        DiagnosticKind::NearMissKey {
            key: "max_worker".to_owned(),
            suggestion: "max_workers"
        }
    );
    assert!(matches!(
        &warnings[1].kind,
        DiagnosticKind::NearMissKey { key, suggestion: "timeout_seconds" } if key == "timeout_second"
    ));
    assert_eq!(
        miette::Diagnostic::severity(warnings[0]),
        Some(miette::Severity::Warning)
    );
    // The key is kept as written: the service receives it.
    let configuration = desired.environments[0]
        .fields
        .configuration
        .as_ref()
        .unwrap();
    assert!(configuration.contains_key("max_worker"));
}

#[test]
fn a_large_plain_file_is_not_a_bomb() {
    // 100,000 environments are 300,000 nodes: more than an alias budget allows, and plain.
    let mut text = String::from(HEAD);
    for index in 0..100_000 {
        text.push_str(&format!("  - name: env-{index:06}\n"));
    }
    let desired = parse_text(&text).expect("a plain file of any size within the byte limit");
    assert_eq!(desired.environments.len(), 100_000);
}
