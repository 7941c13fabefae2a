//! `env create`, `env update` and `env delete`.

use std::path::{Path, PathBuf};

use miette::{Context, IntoDiagnostic};
use serde::de::DeserializeOwned;

use super::fields::{FieldFlags, apply_flags};
use super::lookup::resolve;
use super::show::{OutputFormat, mask_env_vars, print_environment};
use crate::api::{CreateEnvironment, EnvironmentsApi, ManagedField, Patch, UpdateEnvironment};
use crate::cli::exit::Exit;
use crate::cli::output;
use crate::model::Owner;

/// `env create`.
pub(super) async fn create(
    api: &dyn EnvironmentsApi,
    file: Option<PathBuf>,
    name: Option<String>,
    fields: &FieldFlags,
    output: OutputFormat,
) -> miette::Result<()> {
    let data = match file {
        Some(path) => read_document::<CreateEnvironment>(&path)?,
        None => CreateEnvironment {
            name: name.unwrap_or_default(),
            display_name: fields.display_name.clone(),
            description: fields.description.clone(),
            status: fields.status,
            configuration: fields.configuration(),
            metadata: fields.metadata(),
            tags: fields.tags(),
            ..CreateEnvironment::default()
        },
    };
    let mut environment = api.create(&data).await.map_err(miette::Report::new)?;
    mask_env_vars(&mut environment);
    print_environment(&environment, output)?;
    Ok(())
}

/// `env update`: a patch from a file and the flags; `--max-workers`/`--timeout-seconds` merge into
/// the current configuration.
pub(super) async fn update(
    api: &dyn EnvironmentsApi,
    environment: &str,
    file: Option<PathBuf>,
    name: Option<String>,
    fields: &FieldFlags,
    clear: &[ManagedField],
    output: OutputFormat,
) -> miette::Result<()> {
    let mut patch = match file {
        Some(path) => read_document::<UpdateEnvironment>(&path)?,
        None => UpdateEnvironment::default(),
    };
    apply_flags(&mut patch, name, fields, clear);
    if patch.is_empty() {
        return Err(miette::miette!(
            code = "envform::cli::empty_update",
            help = "pass a field flag such as --description, --clear FIELD, or -f FILE",
            "nothing to update"
        ));
    }
    let current = resolve(api, environment).await?;
    // --max-workers / --timeout-seconds change one key each: merge them into the current
    // configuration, since the API replaces a field sent whole.
    if let (Patch::Set(configuration), Some(existing)) =
        (&mut patch.configuration, &current.configuration)
        && fields.configuration().is_some()
    {
        for (key, value) in existing {
            configuration
                .entry(key.clone())
                .or_insert_with(|| value.clone());
        }
    }
    let owner = Owner::of(current.settings.as_ref());
    if let Some(owner) = owner {
        // The stamp stays whatever `settings` becomes: it is not the user's to drop by accident.
        let settings = match std::mem::take(&mut patch.settings) {
            Patch::Set(settings) => Some(Some(settings)),
            Patch::Clear => Some(None),
            Patch::Unchanged => None,
        };
        if let Some(settings) = settings {
            patch.settings = Patch::Set(owner.stamped(settings));
        }
        eprintln!(
            "warning: `{}` is managed by a configuration ({owner}); its next apply reverts the \
             fields it manages",
            current.name
        );
    }
    let mut environment = api
        .update(current.id, &patch)
        .await
        .map_err(miette::Report::new)?;
    mask_env_vars(&mut environment);
    print_environment(&environment, output)?;
    Ok(())
}

/// `env delete`: asks first on a terminal, `--yes` otherwise; an environment a configuration owns
/// only with `--force`.
pub(super) async fn delete(
    api: &dyn EnvironmentsApi,
    environment: &str,
    yes: bool,
    force: bool,
) -> miette::Result<Exit> {
    let current = resolve(api, environment).await?;
    if let Some(owner) = Owner::of(current.settings.as_ref())
        && !force
    {
        let protection = if owner.prevent_destroy {
            ", which protects it with `lifecycle.prevent_destroy`"
        } else {
            ""
        };
        return Err(miette::miette!(
            code = "envform::cli::owned",
            help =
                "remove it from its configuration and apply, or pass --force to delete it anyway",
            "`{}` is managed by a configuration ({owner}){protection}",
            current.name
        ));
    }
    let confirmation = output::Confirmation {
        action: format!("delete `{}`", current.name),
        without_terminal: "delete without a terminal",
        question: format!(
            "Delete environment `{}` ({})? Its workers will stop. Type `yes` to confirm:",
            current.name, current.id
        ),
        cancelled: "Delete cancelled.",
    };
    if !output::confirmed(yes, &confirmation)? {
        return Ok(Exit::Error);
    }
    api.delete(current.id).await.map_err(miette::Report::new)?;
    eprintln!("Deleted environment `{}` ({}).", current.name, current.id);
    Ok(Exit::Success)
}

fn read_document<T: DeserializeOwned>(path: &Path) -> miette::Result<T> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).into_diagnostic()
    } else {
        std::fs::read_to_string(path).into_diagnostic()
    }
    .wrap_err_with(|| format!("cannot read {}", path.display()))?;
    // JSON is read as JSON so its errors speak JSON; anything else is YAML.
    let is_json = path
        .extension()
        .is_some_and(|extension| extension == "json")
        || text.trim_start().starts_with('{');
    if is_json {
        serde_json::from_str(&text)
            .into_diagnostic()
            .wrap_err_with(|| format!("{} is not a valid request body", path.display()))
    } else {
        serde_saphyr::from_str(&text)
            .map_err(|error| miette::miette!("{error}"))
            .wrap_err_with(|| format!("{} is not a valid request body", path.display()))
    }
}
