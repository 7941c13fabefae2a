//! `envform import`: records a live environment in state, under the lock, so the next plan
//! manages it.

use super::args::{ConfigurationArgs, LockArgs};
use super::env::resolve;
use super::exit::Exit;
use super::workspace;
use crate::api::JsonMap;
use crate::state::ResourceState;

/// `envform import` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  envform import production")]
pub(crate) struct ImportArgs {
    /// The live environment's name (or id).
    name: String,
    #[command(flatten)]
    location: ConfigurationArgs,
    #[command(flatten)]
    lock: LockArgs,
}

/// Runs `envform import`: records a live environment in state, so the next plan manages it.
pub(crate) async fn execute(args: ImportArgs) -> miette::Result<Exit> {
    let global = &args.location.target;
    let backend = args.location.state_command_backend()?;
    let target = global.resolve()?.describe();
    let handle = workspace::lock(backend.as_ref(), "import", &args.lock).await?;
    let result = async {
        let (_, connection) = workspace::connect(global).await?;
        let environment = resolve(connection.api.as_ref(), &args.name).await;
        connection.close().await;
        let environment = environment?;
        let mut state = workspace::load_state(backend.as_ref(), &target).await?;
        if let Some(existing) = state.resources.get(&environment.name) {
            return Err(miette::miette!(
                code = "envform::state::already_managed",
                "`{}` is already in state (id {})",
                environment.name,
                existing.id
            ));
        }
        // Nothing applied yet: the next plan enforces what the file says and leaves the rest.
        state.resources.insert(
            environment.name.clone(),
            ResourceState {
                id: environment.id,
                last_applied: JsonMap::new(),
                prevent_destroy: false,
                depends_on: Vec::new(),
                renamed_from: None,
            },
        );
        state.serial += 1;
        backend
            .save(&state, Some(&handle))
            .await
            .map_err(miette::Report::new)?;
        eprintln!(
            "Imported `{}` ({}); run `envform plan` to see what the file changes.",
            environment.name, environment.id
        );
        Ok(Exit::Success)
    }
    .await;
    workspace::unlock(backend.as_ref(), handle).await;
    result
}
