//! The pull-request workflow: the CI recipes in `examples/ci/` are valid YAML whose envform
//! command lines parse with the real CLI; `init`; completions.

use std::path::Path;

use clap::Parser;
use predicates::prelude::*;

use crate::support::{Server, envform};

/// Every `envform …` command line in a CI recipe, without shell redirections.
fn envform_command_lines(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter_map(|line| {
            let start = line.find("envform ")?;
            let command = &line[start..];
            // Only lines that run it: `envform …`, `- envform …` or `run: envform …` (not prose,
            // not `cargo install --locked envform`).
            let prefix = line[..start].trim().trim_start_matches('-').trim();
            if !(prefix.is_empty() || prefix == "run:") {
                return None;
            }
            let command = command.split(['>', '|', '#']).next().unwrap_or(command);
            Some(command.split_whitespace().map(str::to_owned).collect())
        })
        .collect()
}

#[test]
fn ci_recipes_parse_and_their_commands_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci");
    let mut checked = 0;
    for name in ["github-actions.yml", "gitlab-ci.yml"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let document: serde_json::Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|error| panic!("{name} is not valid YAML: {error}"));
        assert!(document.is_object(), "{name}");
        let commands = envform_command_lines(&text);
        assert!(commands.len() >= 3, "{name}: {commands:?}");
        for command in commands {
            envform::cli::Cli::try_parse_from(&command).unwrap_or_else(|error| {
                panic!("{name}: `{}` does not parse: {error}", command.join(" "))
            });
            checked += 1;
        }
    }
    assert!(checked >= 6);
    // The checker itself rejects a command the CLI does not know.
    assert!(envform::cli::Cli::try_parse_from(["envform", "plan", "--no-such-flag"]).is_err());
}

#[test]
fn init_writes_a_file_whose_plan_only_adopts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    server
        .envform(dir.path())
        .args([
            "env",
            "create",
            "--name",
            "alpha",
            "--max-workers",
            "3",
            "--metadata",
            "team=a",
        ])
        .assert()
        .success();
    std::fs::write(
        dir.path().join("beta.json"),
        r#"{"name":"beta","description":"with secrets","execution_environment":{"env_vars":{"TOKEN":"init-secret-value"},"secrets":["s1"]}}"#,
    )
    .unwrap();
    server
        .envform(dir.path())
        .args(["env", "create", "-f", "beta.json"])
        .assert()
        .success();
    server.envform(dir.path()).arg("init").assert().success();
    let text = std::fs::read_to_string(dir.path().join("envform.yaml")).unwrap();
    assert!(text.contains("# - name: \"default\""), "{text}");
    assert!(!text.contains("init-secret-value"), "{text}");
    let output = server
        .envform(dir.path())
        .args(["plan", "--format", "json", "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let actions: Vec<String> = plan["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["change"]["actions"].to_string())
        .collect();
    assert_eq!(actions, [r#"["adopt"]"#, r#"["adopt"]"#], "{plan}");
    // An existing file is kept unless --force.
    server
        .envform(dir.path())
        .arg("init")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
}

#[test]
fn completions_for_common_shells() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        envform(dir.path())
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("envform"))
            .stdout(predicate::str::contains("plan"));
    }
    envform(dir.path())
        .args(["completions", "tcsh"])
        .assert()
        .code(1);
}

#[test]
fn every_subcommand_help_has_a_purpose_and_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let subcommands = [
        vec!["env"],
        vec!["state"],
        vec!["serve"],
        vec!["validate"],
        vec!["plan"],
        vec!["apply"],
        vec!["show"],
        vec!["destroy"],
        vec!["import"],
        vec!["state", "list"],
        vec!["state", "show"],
        vec!["state", "rm"],
        vec!["force-unlock"],
        vec!["init"],
        vec!["completions"],
        vec!["env", "list"],
        vec!["env", "get"],
        vec!["env", "create"],
        vec!["env", "update"],
        vec!["env", "delete"],
        vec!["env", "worker-command"],
    ];
    for subcommand in subcommands {
        let output = envform(dir.path())
            .args(&subcommand)
            .arg("--help")
            .env("COLUMNS", "80")
            .output()
            .unwrap();
        assert!(output.status.success(), "{subcommand:?}");
        let help = String::from_utf8(output.stdout).unwrap();
        assert!(
            help.contains("Example"),
            "{subcommand:?} has no example:\n{help}"
        );
        for line in help.lines() {
            assert!(
                line.chars().count() <= 80,
                "{subcommand:?}: line wider than 80 columns: {line}"
            );
        }
    }
}

#[test]
fn version_and_terraform_habits_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = envform(dir.path()).arg("version").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with(&format!("envform {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        text.contains("linux") || text.contains("darwin") || text.contains("windows"),
        "{text}"
    );
    std::fs::write(
        dir.path().join("envform.yaml"),
        "version: 1\nenvironments:\n  - name: habit\n",
    )
    .unwrap();
    envform(dir.path())
        .args(["plan", "-out=tfplan", "-detailed-exitcode", "-no-color"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Apply exactly this plan"));
    assert!(dir.path().join("tfplan").exists());
    // In automation the "next step" hints are dropped; the facts stay.
    let quiet = envform(dir.path())
        .args(["plan", "--out", "tfplan"])
        .env("ENVFORM_IN_AUTOMATION", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(stderr.contains("Saved the plan to tfplan."), "{stderr}");
    assert!(!stderr.contains("Apply exactly"), "{stderr}");
    envform(dir.path())
        .args(["apply", "-auto-approve", "-lock-timeout=5s", "tfplan"])
        .assert()
        .success();
    envform(dir.path())
        .args(["plan", "-detailed-exitcode"])
        .assert()
        .code(0);
}

#[test]
fn a_configuration_spreads_over_nested_directories_and_repeated_files() {
    // `environments/` read recursively in path order (hidden `.envform/` skipped), plus a file
    // named on its own: one configuration, its state beside the first path.
    let root = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "environments/prod/eu.yaml",
        "version: 1\nenvironments:\n  - name: prod-eu\n    depends_on: [dev-eu]\n",
    );
    write(
        "environments/dev/eu.yml",
        "version: 1\nenvironments:\n  - name: dev-eu\n",
    );
    write("environments/.envform/ignored.yaml", "not: [valid");
    write("environments/README.md", "not yaml, ignored");
    write(
        "shared/tools.yaml",
        "version: 1\nenvironments:\n  - name: tools\n",
    );
    let output = envform(root.path())
        .args(["validate", "-f", "environments/", "-f", "shared/tools.yaml"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let files: Vec<&str> = stderr.lines().skip(1).map(str::trim).collect();
    assert_eq!(
        files,
        [
            "environments/dev/eu.yml",
            "environments/prod/eu.yaml",
            "shared/tools.yaml"
        ],
        "{stderr}"
    );
    assert!(stderr.contains("3 environments in 3 files"), "{stderr}");
    envform(root.path())
        .args(["apply", "-f", "environments/", "-f", "shared/tools.yaml"])
        .arg("--auto-approve")
        .assert()
        .success();
    assert!(
        root.path()
            .join("environments/.envform/state.json")
            .exists()
    );
    envform(root.path())
        .args(["plan", "-f", "environments/", "-f", "shared/tools.yaml"])
        .arg("--detailed-exitcode")
        .assert()
        .code(0);
    // Without the second file, `tools` is no longer desired: the plan deletes it.
    envform(root.path())
        .args(["plan", "-f", "environments/", "--detailed-exitcode"])
        .assert()
        .code(2)
        .stdout(predicates::str::contains("tools will be destroyed"));
}
