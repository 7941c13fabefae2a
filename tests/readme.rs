//! README.md and the book under `docs/src/` stay true: the README's quick start and every block
//! fenced as `sh runnable` run against the embedded default in a temporary directory, line by
//! line, and must exit 0; every relative link resolves to a file, and every `#anchor` into a book
//! page to one of its headings.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::envform_bin;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The book's sources.
fn book_dir() -> PathBuf {
    root().join("docs/src")
}

/// The fenced blocks whose info string is `info`.
fn blocks(markdown: &str, info: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
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

/// The lines of `markdown` outside fenced code blocks.
fn prose_lines(markdown: &str) -> Vec<&str> {
    let mut in_fence = false;
    let mut lines = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            lines.push(line);
        }
    }
    lines
}

/// Every markdown file under `dir`, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    crate::support::files_below(dir)
        .into_iter()
        .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
        .collect()
}

fn copy_examples(to: &Path) {
    let from = root().join("examples");
    for directory in ["environments", "scenarios"] {
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

/// Runs each line of `block` in `dir` with the built binary on `PATH`; `source` names the file
/// the block comes from, for the failure message.
fn run_block(dir: &Path, block: &str, source: &str) {
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
            .env_remove("ENVFORM_EMBEDDED_DB")
            .env_remove("ENVFORM_STATE_PATH")
            .env_remove("ENVFORM_STATE_ADDRESS")
            .env_remove("ENVFORM_LOG")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{source}: line failed: {line}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn quick_start_and_runnable_blocks_work() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_examples(dir.path());

    // The quick start's first command, with the built binary in place of `cargo run`.
    let quick_start = blocks(&readme, "sh")
        .into_iter()
        .next()
        .expect("a quick start block");
    assert!(
        quick_start.contains("cargo run -q -- plan -f examples/environments/"),
        "{quick_start}"
    );
    run_block(
        dir.path(),
        &quick_start.replace("cargo run -q --", "envform"),
        "README.md",
    );
    assert!(
        dir.path()
            .join("examples/environments/.envform/state.json")
            .exists()
    );

    let runnable = blocks(&readme, "sh runnable");
    assert!(!runnable.is_empty(), "README.md has no runnable block");
    for block in runnable {
        run_block(dir.path(), &block, "README.md");
    }
    assert!(
        std::fs::read_to_string(dir.path().join("plan.md"))
            .unwrap()
            .contains("<details>")
    );
}

/// Each book page's runnable blocks run in order, in a fresh directory of the page's own.
#[test]
fn book_runnable_blocks_work() {
    let mut ran = 0;
    for file in markdown_files(&book_dir()) {
        let text = std::fs::read_to_string(&file).unwrap();
        let runnable = blocks(&text, "sh runnable");
        if runnable.is_empty() {
            continue;
        }
        let source = file.strip_prefix(root()).unwrap().display().to_string();
        let dir = tempfile::tempdir().unwrap();
        copy_examples(dir.path());
        for block in runnable {
            run_block(dir.path(), &block, &source);
            ran += 1;
        }
    }
    assert!(ran > 0, "the book has no runnable block");
}

/// The id mdBook gives a heading: lowercase, whitespace to `-`, punctuation other than `-` and
/// `_` dropped (so backticks vanish).
fn heading_id(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|character| {
            if character.is_alphanumeric() || character == '-' || character == '_' {
                Some(character.to_lowercase().collect::<String>())
            } else if character.is_whitespace() {
                Some("-".to_owned())
            } else {
                None
            }
        })
        .collect()
}

/// The ids of the headings of a markdown page; a repeated heading gets `-1`, `-2`, … as in mdBook.
fn heading_ids(markdown: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for line in prose_lines(markdown) {
        let level = line
            .chars()
            .take_while(|&character| character == '#')
            .count();
        let Some(text) = line.get(level..).and_then(|rest| rest.strip_prefix(' ')) else {
            continue;
        };
        if level == 0 || level > 6 {
            continue;
        }
        let base = heading_id(text.trim().trim_end_matches('#').trim());
        let mut id = base.clone();
        let mut repeat = 0;
        while ids.contains(&id) {
            repeat += 1;
            id = format!("{base}-{repeat}");
        }
        ids.insert(id);
    }
    ids
}

/// The targets of the inline links (`[text](target)`) of a markdown page, outside code.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(markdown) {
        // Drop inline code spans: what is between backticks is not a link.
        let prose = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    targets
}

fn is_relative(target: &str) -> bool {
    !(target.is_empty() || target.contains("://") || target.starts_with("mailto:"))
}

#[test]
fn relative_links_resolve() {
    let book = book_dir();
    let mut pages = markdown_files(&book);
    pages.push(root().join("README.md"));
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        let source = page.strip_prefix(root()).unwrap().display().to_string();
        for target in link_targets(&text).into_iter().filter(|t| is_relative(t)) {
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(path)
            };
            if !file.exists() {
                broken.push(format!("{source}: `{target}`: no file {}", file.display()));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            let is_book_page = file.extension().is_some_and(|extension| extension == "md")
                && file
                    .canonicalize()
                    .unwrap()
                    .starts_with(book.canonicalize().unwrap());
            if is_book_page {
                let ids = heading_ids(&std::fs::read_to_string(&file).unwrap());
                if !ids.contains(anchor) {
                    broken.push(format!(
                        "{source}: `{target}`: no heading with id `{anchor}` (there are: {})",
                        ids.into_iter().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
    }
    assert!(checked > 0, "no relative link found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn heading_ids_follow_mdbook() {
    assert_eq!(heading_id("Fields, three ways"), "fields-three-ways");
    assert_eq!(heading_id("`envform serve`"), "envform-serve");
    assert_eq!(
        heading_id("Where envform's service differs"),
        "where-envforms-service-differs"
    );
    assert_eq!(
        heading_id("state_service and co-op"),
        "state_service-and-co-op"
    );
    let ids = heading_ids("# A\n\n```\n# not a heading\n```\n## A\n");
    assert_eq!(ids, BTreeSet::from(["a".to_owned(), "a-1".to_owned()]));
}
