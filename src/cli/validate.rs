//! `envform validate`: checks desired-state files offline — no API, no state.

use super::args::DesiredArgs;
use super::exit::Exit;

/// `envform validate` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  envform validate -f environments/")]
pub(crate) struct ValidateArgs {
    #[command(flatten)]
    desired: DesiredArgs,
}

/// Runs `envform validate`.
pub(crate) fn execute(args: &ValidateArgs) -> miette::Result<Exit> {
    let desired = args.desired.load()?;
    let count = desired.environments.len();
    let files = desired.sources.files.len();
    eprintln!(
        "The configuration is valid: {count} environment{} in {files} file{}:",
        if count == 1 { "" } else { "s" },
        if files == 1 { "" } else { "s" }
    );
    for file in &desired.sources.files {
        eprintln!("  {}", file.path.display());
    }
    Ok(Exit::Success)
}
