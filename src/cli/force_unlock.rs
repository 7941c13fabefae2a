//! `envform force-unlock`: breaks a state lock whose holder is gone.

use super::args::ConfigurationArgs;
use super::exit::Exit;
use super::output;

/// `envform force-unlock` flags.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  envform force-unlock 5f0c2d9e-0000-4000-8000-000000000000 --yes"
)]
pub(crate) struct ForceUnlockArgs {
    /// The lock's ID, as printed by the command that waits for it.
    lock_id: String,
    #[command(flatten)]
    location: ConfigurationArgs,
    /// Do not ask.
    #[arg(short, long)]
    yes: bool,
}

/// Runs `envform force-unlock`.
pub(crate) async fn execute(args: ForceUnlockArgs) -> miette::Result<Exit> {
    let backend = args.location.state_command_backend()?;
    let confirmation = output::Confirmation {
        action: format!("break lock {}", args.lock_id),
        without_terminal: "break the lock without a terminal",
        question: format!(
            "Break lock {} on {}? Only do this if its holder is gone. Type `yes` to confirm:",
            args.lock_id,
            backend.describe()
        ),
        cancelled: "Force-unlock cancelled.",
    };
    if !output::confirmed(args.yes, &confirmation)? {
        return Ok(Exit::Error);
    }
    backend
        .force_unlock(&args.lock_id)
        .await
        .map_err(miette::Report::new)?;
    eprintln!("Lock {} released.", args.lock_id);
    Ok(Exit::Success)
}
