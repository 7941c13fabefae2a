//! Records the commit and the target triple the binary is built from, for `envform version`.

use std::process::Command;

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ENVFORM_COMMIT={commit}");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=ENVFORM_TARGET={target}");
    // Watch the files that name the commit where git keeps them (in a worktree `.git` is a file
    // and they live elsewhere); a path that does not exist would rerun this on every build.
    let watched: Vec<std::path::PathBuf> = [("--git-dir", "HEAD"), ("--git-common-dir", "refs")]
        .into_iter()
        .filter_map(|(flag, name)| {
            Some(std::path::Path::new(&git(&["rev-parse", flag])?).join(name))
        })
        .filter(|path| path.exists())
        .collect();
    if watched.is_empty() {
        println!("cargo:rerun-if-changed=build.rs");
    }
    for path in watched {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// The trimmed output of a successful `git` command.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}
