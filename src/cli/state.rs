//! `envform state list | show | rm`, `envform import` and `envform force-unlock`: looking at and
//! mending state by hand, always under the lock.

use miette::IntoDiagnostic;

use super::env::resolve;
use super::exit::Exit;
use super::output::{self, print_stdout};

use super::args::{ConfigurationArgs, LockArgs};
use super::workspace;
use crate::api::JsonMap;
use crate::state::ResourceState;

/// `envform state` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum StateCommand {
    /// List the environments state manages.
    #[command(after_help = "Example:\n  envform state list")]
    List {
        #[command(flatten)]
        location: ConfigurationArgs,
    },
    /// Show what state records for one environment.
    #[command(after_help = "Example:\n  envform state show production")]
    Show {
        /// The environment's name.
        name: String,
        #[command(flatten)]
        location: ConfigurationArgs,
    },
    /// Forget an environment (it stays live, unmanaged).
    #[command(after_help = "Example:\n  envform state rm legacy")]
    Rm {
        /// The environment's name.
        name: String,
        #[command(flatten)]
        location: ConfigurationArgs,
        #[command(flatten)]
        lock: LockArgs,
    },
}

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

/// Runs a `state` subcommand.
pub(crate) async fn execute(command: StateCommand) -> miette::Result<Exit> {
    match command {
        StateCommand::List { location } => {
            let target = location.target.resolve()?.describe();
            let backend = location.state_command_backend()?;
            let state = workspace::load_state(backend.as_ref(), &target).await?;
            let rows: Vec<Vec<String>> = state
                .resources
                .iter()
                .map(|(name, resource)| vec![name.clone(), resource.id.to_string()])
                .collect();
            print_stdout(&output::table(&["NAME", "ID"], &rows))?;
        }
        StateCommand::Show { name, location } => {
            let target = location.target.resolve()?.describe();
            let backend = location.state_command_backend()?;
            let state = workspace::load_state(backend.as_ref(), &target).await?;
            let resource = state
                .resources
                .get(&name)
                .ok_or_else(|| not_managed(&name))?;
            let mut text = serde_json::to_string_pretty(resource).into_diagnostic()?;
            text.push('\n');
            print_stdout(&text)?;
        }
        StateCommand::Rm {
            name,
            location,
            lock,
        } => {
            let target = location.target.resolve()?.describe();
            let backend = location.state_command_backend()?;
            let handle = workspace::lock(backend.as_ref(), "state rm", &lock).await?;
            let result = async {
                let mut state = workspace::load_state(backend.as_ref(), &target).await?;
                if state.resources.remove(&name).is_none() {
                    return Err(not_managed(&name));
                }
                state.serial += 1;
                backend
                    .save(&state, Some(&handle))
                    .await
                    .map_err(miette::Report::new)?;
                eprintln!("Removed `{name}` from state; it is still live, now unmanaged.");
                Ok(Exit::Success)
            }
            .await;
            workspace::unlock(backend.as_ref(), handle).await;
            return result;
        }
    }
    Ok(Exit::Success)
}

/// Runs `envform import`: records a live environment in state, so the next plan manages it.
pub(crate) async fn execute_import(args: ImportArgs) -> miette::Result<Exit> {
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

/// Runs `envform force-unlock`.
pub(crate) async fn execute_force_unlock(args: ForceUnlockArgs) -> miette::Result<Exit> {
    let backend = args.location.state_command_backend()?;
    if !args.yes {
        if !output::interactive() {
            return Err(miette::miette!(
                code = "envform::cli::confirmation_required",
                help = "pass --yes to break the lock without a terminal",
                "refusing to break lock {} without confirmation",
                args.lock_id
            ));
        }
        let question = format!(
            "Break lock {} on {}? Only do this if its holder is gone. Type `yes` to confirm:",
            args.lock_id,
            backend.describe()
        );
        if !output::confirm(&question, false)? {
            eprintln!("Force-unlock cancelled.");
            return Ok(Exit::Error);
        }
    }
    backend
        .force_unlock(&args.lock_id)
        .await
        .map_err(miette::Report::new)?;
    eprintln!("Lock {} released.", args.lock_id);
    Ok(Exit::Success)
}

fn not_managed(name: &str) -> miette::Report {
    miette::miette!(
        code = "envform::state::not_managed",
        help = "`envform state list` shows what state manages",
        "`{name}` is not in state"
    )
}
