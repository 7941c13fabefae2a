//! `envform init`: a starter desired-state file written from what is live, so an organization that
//! already has environments starts by adopting them (the next plan adopts, never creates or deletes).

mod entry;
mod terraform;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::args::{LockArgs, StateArgs, TargetArgs};
use super::exit::Exit;
use crate::api::{Environment, Status};
use crate::model::{DEFAULT_ENVIRONMENT, Owner};
use entry::Entry;

/// `envform init` flags.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  envform init && envform plan\n  envform init --from-terraform terraform.tfstate && envform plan"
)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Where to write the file.
    #[arg(
        short = 'f',
        long = "file",
        default_value = "envform.yaml",
        value_name = "PATH"
    )]
    path: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
    /// Migrate a Terraform configuration of the Kubiya provider: its state (format 4), a
    /// terraform.tfstate file or a Terraform HTTP backend address (read only, never written).
    #[arg(long, value_name = "PATH_OR_URL")]
    from_terraform: Option<String>,
    /// Where the migrated configuration keeps its state (an HTTP backend's user and password
    /// also serve to read --from-terraform's address).
    #[command(flatten, next_help_heading = "With --from-terraform")]
    state: StateArgs,
    #[command(flatten, next_help_heading = "With --from-terraform")]
    lock: LockArgs,
}

/// Runs `envform init`.
pub(crate) async fn execute(args: InitArgs) -> miette::Result<Exit> {
    refuse_to_overwrite(&args.path, args.force)?;
    if let Some(source) = &args.from_terraform {
        return terraform::execute(&args, source).await;
    }
    let connection = super::workspace::connect(&args.target.resolve()?).await?;
    let live = connection.api.list(None).await.map_err(miette::Report::new);
    connection.close().await;
    let live = live?;
    let text = starter(&live);
    write_file(&args.path, &text)?;
    eprintln!(
        "Wrote {} with {} environment(s).",
        args.path.display(),
        live.iter()
            .filter(
                |env| env.name != DEFAULT_ENVIRONMENT && Owner::of(env.settings.as_ref()).is_none()
            )
            .count()
    );
    super::output::next_step("Run `envform plan` to see them adopted, then `envform apply`.");
    Ok(Exit::Success)
}

/// Refuses to replace the file at `path` unless `force`.
fn refuse_to_overwrite(path: &Path, force: bool) -> miette::Result<()> {
    if path.exists() && !force {
        return Err(miette::miette!(
            code = "envform::init::exists",
            help = "pass --force to replace it",
            "{} already exists",
            path.display()
        ));
    }
    Ok(())
}

/// Writes the file (and the directories it is in), naming it in the error.
fn write_file(path: &Path, text: &str) -> miette::Result<()> {
    let cannot =
        |error: std::io::Error| miette::miette!("cannot write {}: {error}", path.display());
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(cannot)?;
    }
    std::fs::write(path, text).map_err(cannot)
}

/// The starter file for `live`: every environment no other configuration owns, with its managed
/// fields, `default` and the others' environments commented out, and `options.adopt` set so that
/// the first plan adopts what it names. Values are written as JSON, which YAML reads as
/// flow-style scalars, maps and lists.
fn starter(live: &[Environment]) -> String {
    let mut text = String::from(
        "# Desired state written by `envform init` from the live environments.\n\
         # Edit it, then `envform plan` shows what `envform apply` would change.\n\
         version: 1\n\
         # The first plan adopts the environments below; once applied, this can go.\n\
         options: {adopt: true}\n\
         environments:\n",
    );
    let mut environments: Vec<&Environment> = live.iter().collect();
    environments.sort_by(|a, b| a.name.cmp(&b.name));
    let adoptable = |environment: &&&Environment| {
        environment.name != DEFAULT_ENVIRONMENT
            && Owner::of(environment.settings.as_ref()).is_none()
    };
    if !environments
        .iter()
        .any(|environment| adoptable(&environment))
    {
        text.push_str("  []\n");
    }
    for environment in environments {
        let entry = entry(environment);
        let owner = Owner::of(environment.settings.as_ref());
        if environment.name == DEFAULT_ENVIRONMENT || owner.is_some() {
            match owner {
                Some(owner) => {
                    let _ = writeln!(
                        text,
                        "  # Owned by another configuration ({owner}): left to it.",
                    );
                }
                None => text.push_str(
                    "  # The organization's `default` environment is created by the service and cannot\n  \
                     # be deleted; uncomment to manage its fields too.\n",
                ),
            }
            for line in entry.lines() {
                let _ = writeln!(text, "  # {line}");
            }
        } else {
            for line in entry.lines() {
                let _ = writeln!(text, "  {line}");
            }
        }
    }
    text
}

/// A live environment as a file entry: its managed fields, without the ownership stamp and the
/// `env_vars` values.
fn entry(environment: &Environment) -> String {
    let mut entry = Entry {
        name: environment.name.clone(),
        ..Entry::default()
    };
    let mut field = |key: &'static str, value: Value| entry.fields.push((key, value));
    if let Some(display_name) = environment
        .display_name
        .as_ref()
        .filter(|display_name| **display_name != environment.name)
    {
        field("display_name", display_name.clone().into());
    }
    if let Some(description) = &environment.description {
        field("description", description.clone().into());
    }
    // Only the statuses a user sets; the service's own ones are left to it.
    if matches!(environment.status, Status::Active | Status::Inactive) {
        field("status", environment.status.as_str().into());
    }
    for (key, value) in [
        ("configuration", environment.configuration.clone()),
        ("metadata", environment.metadata.clone()),
        // The ownership stamp is envform's bookkeeping, never part of a file.
        ("settings", Owner::unstamped(environment.settings.as_ref())),
    ] {
        if let Some(map) = value.filter(|map| !map.is_empty()) {
            field(key, Value::Object(map));
        }
    }
    if let Some(tags) = environment.tags.as_ref().filter(|tags| !tags.is_empty()) {
        field("tags", tags.clone().into());
    }
    if let Some(execution) = &environment.execution_environment {
        // Secret values never go into a file: the variables stay live, outside the file's control.
        let mut public = execution.clone();
        if !public.env_vars.is_empty() {
            public.env_vars.clear();
            entry.env_vars_kept_live = true;
        }
        if let Ok(value) = serde_json::to_value(&public)
            && value.as_object().is_some_and(|object| !object.is_empty())
        {
            entry.fields.push(("execution_environment", value));
        }
    }
    entry.lines().join("\n")
}
