//! `envform import`: records a live environment in state, under the lock, so the next plan
//! manages it.

use super::args::{ConfigurationArgs, LockArgs};
use super::env::resolve;
use super::exit::Exit;
use super::workspace;
use crate::api::{Environment, EnvironmentsApi, JsonMap, Patch, UpdateEnvironment};
use crate::desired::Desired;
use crate::model::Owner;
use crate::plan::PlanError;
use crate::state::{AppliedFields, LockHandle, ResourceState, State, StateBackend};

/// `envform import` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  envform import production")]
pub(crate) struct ImportArgs {
    /// The live environment's name (or id); the configuration must name it.
    name: String,
    /// Take it from the configuration that owns it now (recorded in the service's audit log).
    #[arg(long)]
    take_over: bool,
    #[command(flatten)]
    location: ConfigurationArgs,
    #[command(flatten)]
    lock: LockArgs,
}

/// Runs `envform import`: records a live environment the configuration names in state, then
/// stamps it with this state's lineage, so the next plan manages it.
pub(crate) async fn execute(args: ImportArgs) -> miette::Result<Exit> {
    let configuration = &args.location;
    let desired = configuration.desired.load()?;
    let backend = configuration.backend(Some(&desired))?;
    let target = configuration.target()?;
    let handle = workspace::lock(backend.as_ref(), "import", &args.lock).await?;
    let result = async {
        let connection = workspace::connect(&target).await?;
        let imported = import(
            connection.api.as_ref(),
            backend.as_ref(),
            &handle,
            &desired,
            &target.describe(),
            &args,
        )
        .await;
        connection.close().await;
        imported
    }
    .await;
    workspace::unlock(backend.as_ref(), handle).await;
    result
}

async fn import(
    api: &dyn EnvironmentsApi,
    backend: &dyn StateBackend,
    handle: &LockHandle,
    desired: &Desired,
    target: &str,
    args: &ImportArgs,
) -> miette::Result<Exit> {
    let environment = resolve(api, &args.name).await?;
    let Some(wanted) = desired.environment(&environment.name) else {
        return Err(miette::miette!(
            code = "envform::import::not_in_configuration",
            help = format!(
                "add `- name: {}` to the configuration first, so the next plan keeps it",
                environment.name
            ),
            "`{}` is not in the configuration: importing it would have the next plan delete it",
            environment.name
        ));
    };
    let mut state =
        workspace::load_state(backend, target, args.location.state.control_plane_moved).await?;
    if let Some(existing) = state.resources.get(&environment.name) {
        return Err(miette::miette!(
            code = "envform::state::already_managed",
            "`{}` is already in state (id {})",
            environment.name,
            existing.id
        ));
    }
    let current = Owner::of(environment.settings.as_ref());
    if let Some(owner) = current
        && owner.lineage != state.lineage
        && !args.take_over
    {
        return Err(miette::Report::new(PlanError::OwnedElsewhere {
            name: environment.name.clone(),
            owner,
            doing: "import",
        }));
    }
    // Nothing applied yet: the next plan enforces what the file says and leaves the rest.
    let imported = Imported {
        name: environment.name.clone(),
        live: &environment,
        last_applied: JsonMap::new(),
        depends_on: Vec::new(),
        prevent_destroy: wanted.lifecycle.prevent_destroy,
    };
    record(api, backend, handle, &mut state, &[imported]).await?;
    match current {
        Some(previous) if previous.lineage != state.lineage => eprintln!(
            "Took over `{}` ({}) from {previous}; its configuration's next plan refuses to touch it.",
            environment.name, environment.id
        ),
        _ => {
            eprintln!("Imported `{}` ({}).", environment.name, environment.id);
            super::output::next_step("Run `envform plan` to see what the file changes.");
        }
    }
    Ok(Exit::Success)
}

/// A live environment an import takes into state.
pub(super) struct Imported<'a> {
    /// Its name in state: the configuration's name for it.
    pub(super) name: String,
    /// The environment as listed.
    pub(super) live: &'a Environment,
    /// What state records as last applied.
    pub(super) last_applied: JsonMap,
    /// The names it depends on.
    pub(super) depends_on: Vec<String>,
    /// Whether its configuration protects it (recorded in the stamp).
    pub(super) prevent_destroy: bool,
}

/// Records `imported` in `state` and saves it under `handle`, then stamps each environment as
/// this state's. State first: should a stamp fail after it, the next plan stamps what state
/// manages.
pub(super) async fn record(
    api: &dyn EnvironmentsApi,
    backend: &dyn StateBackend,
    handle: &LockHandle,
    state: &mut State,
    imported: &[Imported<'_>],
) -> miette::Result<()> {
    for environment in imported {
        state.resources.insert(
            environment.name.clone(),
            ResourceState {
                id: environment.live.id,
                last_applied: AppliedFields::new(&environment.last_applied),
                prevent_destroy: false,
                depends_on: environment.depends_on.clone(),
                renamed_from: None,
            },
        );
    }
    state.serial += 1;
    backend
        .save(state, Some(handle))
        .await
        .map_err(miette::Report::new)?;
    for environment in imported {
        let owner = Owner {
            lineage: state.lineage,
            prevent_destroy: environment.prevent_destroy,
        };
        stamp(api, environment.live, owner).await?;
    }
    Ok(())
}

/// Stamps `environment` as managed by `owner`, unless it already carries that very stamp.
async fn stamp(
    api: &dyn EnvironmentsApi,
    environment: &Environment,
    owner: Owner,
) -> miette::Result<()> {
    if Owner::of(environment.settings.as_ref()) == Some(owner) {
        return Ok(());
    }
    let patch = UpdateEnvironment {
        settings: Patch::Set(owner.stamped(Owner::unstamped(environment.settings.as_ref()))),
        ..UpdateEnvironment::default()
    };
    api.update(environment.id, &patch)
        .await
        .map(|_| ())
        .map_err(miette::Report::new)
}
