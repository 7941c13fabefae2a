//! README.md stays true: the quick start and every block fenced as `sh runnable` run against the
//! embedded default in a temporary directory, line by line, and must exit 0.

use std::path::Path;
use std::process::Command;

use crate::support::envform_bin;

/// The fenced blocks whose info string is `info`.
fn blocks(readme: &str, info: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_start().strip_prefix("```")) {
            (None, Some(rest)) if rest.trim() == info => current = Some(String::new()),
            (Some(block), Some(_)) => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), None) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn copy_examples(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for directory in ["", "scenarios"] {
        std::fs::create_dir_all(to.join("examples").join(directory)).unwrap();
        for entry in std::fs::read_dir(from.join(directory)).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|extension| extension == "yaml")
            {
                std::fs::copy(
                    &path,
                    to.join("examples")
                        .join(directory)
                        .join(path.file_name().unwrap()),
                )
                .unwrap();
            }
        }
    }
}

fn run_block(dir: &Path, block: &str) {
    let bin_dir = envform_bin().parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for line in block.lines().filter(|line| !line.trim().is_empty()) {
        let output = Command::new("bash")
            .args(["-o", "pipefail", "-c", line])
            .current_dir(dir)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .env_remove("KUBIYA_CONTROL_PLANE_URL")
            .env_remove("KUBIYA_API_KEY")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "README line failed: {line}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn quick_start_and_runnable_blocks_work() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_examples(dir.path());

    // The quick start's first command, with the built binary in place of `cargo run`.
    let quick_start = blocks(&readme, "sh")
        .into_iter()
        .next()
        .expect("a quick start block");
    assert!(
        quick_start.contains("cargo run -q -- plan -f examples/"),
        "{quick_start}"
    );
    run_block(
        dir.path(),
        &quick_start.replace("cargo run -q --", "envform"),
    );
    assert!(dir.path().join("examples/.envform/state.json").exists());

    let runnable = blocks(&readme, "sh runnable");
    assert!(!runnable.is_empty(), "README.md has no runnable block");
    for block in runnable {
        run_block(dir.path(), &block);
    }
    assert!(
        std::fs::read_to_string(dir.path().join("plan.md"))
            .unwrap()
            .contains("<details>")
    );
}
