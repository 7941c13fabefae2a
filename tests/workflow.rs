//! The pull-request workflow: the CI recipes in `examples/ci/` are valid YAML whose envform
//! command lines parse with the real CLI; `init`; completions.

use std::path::Path;

use clap::Parser;
use predicates::prelude::*;

use crate::support::{Server, envform};

/// Every `envform …` command line of the CI script, its variables given the defaults, without
/// shell redirections and line continuations.
fn envform_command_lines(text: &str) -> Vec<Vec<String>> {
    text.replace("\\\n", " ")
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let command = line
                .strip_prefix("envform ")
                .or_else(|| line.strip_prefix("if ! envform "))?;
            let command = command.split(" 2>").next().unwrap_or(command);
            let command = command
                .split(['>', '|', '#', ';'])
                .next()
                .unwrap_or(command);
            let command = command
                .replace("\"$config\"", "environments/")
                .replace("\"$planfile\"", "envform.tfplan");
            Some(
                std::iter::once("envform".to_owned())
                    .chain(command.split_whitespace().map(str::to_owned))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn ci_recipes_parse_and_their_commands_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci");
    for name in ["github-actions.yml", "gitlab-ci.yml"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let document: serde_json::Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|error| panic!("{name} is not valid YAML: {error}"));
        assert!(document.is_object(), "{name}");
        // Installed from envform's repository (there is no crates.io release), and the shared
        // script does the planning and applying.
        let installs: Vec<&str> = text
            .lines()
            .filter(|line| line.contains("cargo install"))
            .collect();
        assert!(!installs.is_empty(), "{name}");
        for install in installs {
            assert!(
                install.contains("cargo install --locked --git "),
                "{name}: {install}"
            );
        }
        for step in ["sh ci/envform-ci.sh plan", "sh ci/envform-ci.sh apply"] {
            assert!(text.contains(step), "{name} does not run `{step}`");
        }
    }
    let script = std::fs::read_to_string(dir.join("envform-ci.sh")).unwrap();
    let commands = envform_command_lines(&script);
    assert!(commands.len() >= 4, "{commands:?}");
    for command in commands {
        envform::cli::Cli::try_parse_from(&command).unwrap_or_else(|error| {
            panic!(
                "envform-ci.sh: `{}` does not parse: {error}",
                command.join(" ")
            )
        });
    }
    // The checker itself rejects a command the CLI does not know.
    assert!(envform::cli::Cli::try_parse_from(["envform", "plan", "--no-such-flag"]).is_err());
}

/// Runs the CI script's `step` in `dir` with the built binary on `PATH`, against `server`.
fn ci_step(server: &Server, dir: &Path, step: &str) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci/envform-ci.sh");
    let bin = crate::support::envform_bin();
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = std::process::Command::new("sh");
    command
        .arg(&script)
        .arg(step)
        .current_dir(dir)
        .env("PATH", path)
        .env("KUBIYA_CONTROL_PLANE_URL", server.url())
        .env("KUBIYA_API_KEY", crate::support::KEY_A)
        .env("ENVFORM_COMMIT", "0123abc")
        .env("ENVFORM_IN_AUTOMATION", "1")
        .env("NO_COLOR", "1")
        .env_remove("ENVFORM_STATE_ADDRESS")
        .env_remove("ENVFORM_EMBEDDED_DB");
    command.output().unwrap()
}

#[test]
fn the_ci_script_comments_the_plan_then_applies_exactly_the_reviewed_one() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::start(&root.path().join("serve.db"), &[]);
    let pull_request = root.path().join("pull-request");
    let merge = root.path().join("merge");
    let write = |dir: &Path, yaml: &str| {
        std::fs::create_dir_all(dir.join("environments")).unwrap();
        std::fs::write(dir.join("environments/envform.yaml"), yaml).unwrap();
    };
    let yaml = "version: 1\nenvironments:\n  - name: staging\n  - name: production\n    depends_on: [staging]\n";
    write(&pull_request, yaml);

    // The pull request's job: a comment with a header and the plan; the plan file is kept.
    let plan = ci_step(&server, &pull_request, "plan");
    assert!(plan.status.success(), "{plan:?}");
    let comment = std::fs::read_to_string(pull_request.join("comment.md")).unwrap();
    assert!(
        comment.starts_with("<!-- envform-plan -->\n**envform** `envform "),
        "{comment}"
    );
    assert!(
        comment.contains("configuration `environments/`"),
        "{comment}"
    );
    assert!(comment.contains("commit `0123abc`"), "{comment}");
    assert!(
        comment.contains("**Plan: 2 to add, 0 to change"),
        "{comment}"
    );

    // The merge job: another checkout with the artifact, applies exactly it.
    write(&merge, yaml);
    std::fs::copy(
        pull_request.join("envform.tfplan"),
        merge.join("envform.tfplan"),
    )
    .unwrap();
    // Both checkouts share one state, as they would on an HTTP backend.
    std::fs::create_dir_all(merge.join("environments/.envform")).unwrap();
    let applied = ci_step(&server, &merge, "apply");
    assert!(applied.status.success(), "{applied:?}");
    assert!(String::from_utf8_lossy(&applied.stdout).contains("Apply complete!"));
    assert!(!merge.join("comment.md").exists());

    // Reviewed, then another change reaches main first: the merged files no longer mean what
    // was reviewed, so nothing is applied and the plan of what is there now is commented.
    let reviewed = format!("{yaml}  - name: tools\n");
    write(&pull_request, &reviewed);
    std::fs::create_dir_all(pull_request.join("environments/.envform")).unwrap();
    std::fs::copy(
        merge.join("environments/.envform/state.json"),
        pull_request.join("environments/.envform/state.json"),
    )
    .unwrap();
    assert!(ci_step(&server, &pull_request, "plan").status.success());
    std::fs::copy(
        pull_request.join("envform.tfplan"),
        merge.join("envform.tfplan"),
    )
    .unwrap();
    write(&merge, &format!("{reviewed}  - name: extra\n"));
    let stale = ci_step(&server, &merge, "apply");
    assert_eq!(stale.status.code(), Some(1), "{stale:?}");
    let comment = std::fs::read_to_string(merge.join("comment.md")).unwrap();
    assert!(
        comment.contains("**Not applied:** the reviewed plan is stale"),
        "{comment}"
    );
    assert!(comment.contains("<code>tools</code>"), "{comment}");
    assert!(comment.contains("<code>extra</code>"), "{comment}");
    let live = server.live_environments(&merge);
    assert!(!live.contains_key("tools") && !live.contains_key("extra"));

    // A configuration that does not validate: the comment shows the error, and the job fails.
    write(&pull_request, "version: 1\nenvironments:\n  - nme: typo\n");
    let failed = ci_step(&server, &pull_request, "plan");
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    let comment = std::fs::read_to_string(pull_request.join("comment.md")).unwrap();
    assert!(comment.contains("### envform validate failed"), "{comment}");
    assert!(!pull_request.join("envform.tfplan").exists());
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
