//! `envform destroy`: `apply` of a plan that deletes every environment the configuration
//! manages, under the same lock, checks and confirmation (which names what is destroyed).

use super::apply::{ExecutionArgs, Mode, run};
use super::exit::Exit;

/// `envform destroy` flags.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  envform destroy -f examples/scenarios/ephemeral-test.yaml --auto-approve"
)]
pub(crate) struct DestroyArgs {
    #[command(flatten)]
    execution: ExecutionArgs,
}

/// Runs `envform destroy`.
pub(crate) async fn execute(args: DestroyArgs) -> miette::Result<Exit> {
    run(&args.execution, Mode::Destroy).await
}
