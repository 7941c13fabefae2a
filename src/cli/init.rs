//! `envform init`: a starter desired-state file written from what is live, so an organization that
//! already has environments starts by adopting them (the next plan adopts, never creates or deletes).

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use super::args::TargetArgs;
use super::exit::Exit;
use crate::api::{Environment, Status};
use crate::model::{DEFAULT_ENVIRONMENT, Owner};

/// `envform init` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  envform init && envform plan")]
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
}

/// Runs `envform init`.
pub(crate) async fn execute(args: InitArgs) -> miette::Result<Exit> {
    if args.path.exists() && !args.force {
        return Err(miette::miette!(
            code = "envform::init::exists",
            help = "pass --force to replace it",
            "{} already exists",
            args.path.display()
        ));
    }
    let connection = super::workspace::connect(&args.target.resolve()?).await?;
    let live = connection.api.list(None).await.map_err(miette::Report::new);
    connection.close().await;
    let live = live?;
    let text = starter(&live);
    std::fs::write(&args.path, text)
        .map_err(|error| miette::miette!("cannot write {}: {error}", args.path.display()))?;
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

fn entry(environment: &Environment) -> String {
    let mut lines = vec![format!(
        "- name: {}",
        json(&Value::from(environment.name.clone()))
    )];
    let mut field = |key: &str, value: Value| lines.push(format!("  {key}: {}", json(&value)));
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
    let mut ignore = Vec::new();
    if let Some(execution) = &environment.execution_environment {
        // Secret values never go into a file: the variables stay live, outside the file's control.
        let mut public = execution.clone();
        if !public.env_vars.is_empty() {
            public.env_vars.clear();
            ignore.push("execution_environment.env_vars");
        }
        if let Ok(value) = serde_json::to_value(&public)
            && value.as_object().is_some_and(|object| !object.is_empty())
        {
            field("execution_environment", value);
        }
    }
    if !ignore.is_empty() {
        lines.push(format!(
            "  lifecycle: {{ignore_changes: [{}]}}  # values kept live, not written here",
            ignore.join(", ")
        ));
    }
    lines.join("\n")
}

fn json(value: &Value) -> String {
    value.to_string()
}
