//! `envform env`: one environment at a time, like kubectl — list, get, create, update, delete,
//! the worker command, its workers, worker token rotation and the audit history.

use std::path::{Path, PathBuf};

use miette::{Context, IntoDiagnostic};
use serde::de::DeserializeOwned;

use super::args::TargetArgs;
use super::exit::Exit;
use super::output::{self, print_stdout};
use crate::api::{
    AuditAction, AuditEvent, CreateEnvironment, Environment, EnvironmentId, EnvironmentsApi,
    JsonMap, ManagedField, Patch, Status, UpdateEnvironment, WorkerCommand, WorkersApi,
};

/// Output format of `env` commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// JSON on stdout, for scripts.
    Json,
}

/// `envform env` and its flags.
#[derive(Debug, clap::Args)]
pub(crate) struct EnvArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(subcommand)]
    command: EnvCommand,
}

/// `envform env` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum EnvCommand {
    /// List environments.
    #[command(after_help = "Example:\n  envform env list --status active -o json")]
    List {
        /// Only environments with this status.
        #[arg(long, value_parser = parse_status)]
        status: Option<Status>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        /// Show `execution_environment.env_vars` values instead of masking them.
        #[arg(long)]
        reveal: bool,
    },
    /// Show one environment.
    #[command(after_help = "Example:\n  envform env get production -o json")]
    Get {
        /// Environment id or name.
        environment: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        /// Show `execution_environment.env_vars` values instead of masking them.
        #[arg(long)]
        reveal: bool,
    },
    /// Create an environment from flags or a JSON/YAML file.
    #[command(
        after_help = "Examples:\n  envform env create --name staging --max-workers 10\n  envform env create -f staging.yaml"
    )]
    Create {
        /// A JSON or YAML file with the create body (`-` for stdin).
        #[arg(short, long, conflicts_with_all = ["name"])]
        file: Option<PathBuf>,
        /// Environment name.
        #[arg(long, required_unless_present = "file")]
        name: Option<String>,
        #[command(flatten)]
        fields: FieldFlags,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Update fields of an environment (each field given replaces the stored one).
    #[command(
        after_help = "Examples:\n  envform env update staging --max-workers 20\n  envform env update staging --clear description\n  envform env update staging -f patch.yaml"
    )]
    Update {
        /// Environment id or name.
        environment: String,
        /// A JSON or YAML file with the patch body (`null` clears a field; `-` for stdin).
        #[arg(short, long)]
        file: Option<PathBuf>,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: FieldFlags,
        /// Clear a field (repeatable).
        #[arg(long, value_name = "FIELD", value_parser = clearable_field())]
        clear: Vec<ManagedField>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Delete an environment (asks first on a terminal; --yes otherwise).
    #[command(after_help = "Example:\n  envform env delete test-1234 --yes")]
    Delete {
        /// Environment id or name.
        environment: String,
        /// Do not ask.
        #[arg(short, long)]
        yes: bool,
    },
    /// Show the command workers run to register with an environment.
    #[command(after_help = "Example:\n  envform env worker-command production --reveal")]
    WorkerCommand {
        /// Environment id or name.
        environment: String,
        /// Show the worker token instead of masking it.
        #[arg(long)]
        reveal: bool,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Revoke every worker token of an environment and issue one new one (its workers stop).
    #[command(after_help = "Example:\n  envform env rotate-token production --yes --reveal")]
    RotateToken {
        /// Environment id or name.
        environment: String,
        /// Do not ask.
        #[arg(short, long)]
        yes: bool,
        /// Show the new token instead of masking it (it is returned only this once).
        #[arg(long)]
        reveal: bool,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// List the workers registered with an environment.
    #[command(after_help = "Example:\n  envform env workers production -o json")]
    Workers {
        /// Environment id or name.
        environment: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Show the audit log of an environment (also of a deleted one, by name or id).
    #[command(after_help = "Example:\n  envform env history production -o json")]
    History {
        /// Environment id or name.
        environment: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

/// Field flags shared by `create` and `update`.
#[derive(Debug, clap::Args)]
pub(crate) struct FieldFlags {
    /// Display name.
    #[arg(long)]
    display_name: Option<String>,
    /// Description.
    #[arg(long)]
    description: Option<String>,
    /// Status: active or inactive.
    #[arg(long, value_parser = parse_status)]
    status: Option<Status>,
    /// configuration.max_workers (≥ 1); on update, other configuration keys are kept.
    #[arg(long)]
    max_workers: Option<u64>,
    /// configuration.timeout_seconds (≥ 1).
    #[arg(long)]
    timeout_seconds: Option<u64>,
    /// A metadata entry KEY=VALUE (repeatable; replaces all metadata).
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    metadata: Vec<(String, String)>,
    /// A tag (repeatable; replaces all tags).
    #[arg(long = "tag")]
    tags: Vec<String>,
}

impl FieldFlags {
    fn configuration(&self) -> Option<JsonMap> {
        if self.max_workers.is_none() && self.timeout_seconds.is_none() {
            return None;
        }
        let mut configuration = JsonMap::new();
        if let Some(max_workers) = self.max_workers {
            configuration.insert("max_workers".into(), max_workers.into());
        }
        if let Some(timeout_seconds) = self.timeout_seconds {
            configuration.insert("timeout_seconds".into(), timeout_seconds.into());
        }
        Some(configuration)
    }

    fn metadata(&self) -> Option<JsonMap> {
        (!self.metadata.is_empty()).then(|| {
            self.metadata
                .iter()
                .map(|(key, value)| (key.clone(), value.clone().into()))
                .collect()
        })
    }

    fn tags(&self) -> Option<Vec<String>> {
        (!self.tags.is_empty()).then(|| self.tags.clone())
    }
}

/// The fields `env update --clear` can clear: the registry's clearable ones, shown in `--help`.
fn clearable_field() -> impl clap::builder::TypedValueParser<Value = ManagedField> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(ManagedField::wire_names(|spec| spec.clearable))
        .try_map(|name| ManagedField::from_wire_name(&name).ok_or("not a managed field"))
}

fn parse_status(text: &str) -> Result<Status, String> {
    text.parse::<Status>().map_err(|error| error.to_string())
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// Runs an `env` subcommand.
pub(crate) async fn execute(args: EnvArgs) -> miette::Result<Exit> {
    let (_target, connection) = super::workspace::connect(&args.target).await?;
    let result = run_command(connection.api.as_ref(), connection.workers(), args.command).await;
    connection.close().await;
    result
}

async fn run_command(
    api: &dyn EnvironmentsApi,
    workers: &dyn WorkersApi,
    command: EnvCommand,
) -> miette::Result<Exit> {
    match command {
        EnvCommand::RotateToken {
            environment,
            yes,
            reveal,
            output,
        } => return rotate_token(api, workers, &environment, yes, reveal, output).await,
        EnvCommand::Workers {
            environment,
            output,
        } => return list_workers(api, workers, &environment, output).await,
        EnvCommand::History {
            environment,
            output,
        } => return history(api, workers, &environment, output).await,
        EnvCommand::List {
            status,
            output,
            reveal,
        } => {
            let mut environments = api.list(status).await.map_err(miette::Report::new)?;
            if !reveal {
                environments.iter_mut().for_each(mask_env_vars);
            }
            match output {
                OutputFormat::Json => print_json(&environments)?,
                OutputFormat::Table => print_stdout(&environment_table(&environments))?,
            }
        }
        EnvCommand::Get {
            environment,
            output,
            reveal,
        } => {
            let mut environment = resolve(api, &environment).await?;
            if !reveal {
                mask_env_vars(&mut environment);
            }
            print_environment(&environment, output)?;
        }
        EnvCommand::Create {
            file,
            name,
            fields,
            output,
        } => {
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
        }
        EnvCommand::Update {
            environment,
            file,
            name,
            fields,
            clear,
            output,
        } => {
            let mut patch = match file {
                Some(path) => read_document::<UpdateEnvironment>(&path)?,
                None => UpdateEnvironment::default(),
            };
            apply_flags(&mut patch, name, &fields, &clear);
            if patch.is_empty() {
                return Err(miette::miette!(
                    code = "envform::cli::empty_update",
                    help = "pass a field flag such as --description, --clear FIELD, or -f FILE",
                    "nothing to update"
                ));
            }
            let current = resolve(api, &environment).await?;
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
            let mut environment = api
                .update(current.id, &patch)
                .await
                .map_err(miette::Report::new)?;
            mask_env_vars(&mut environment);
            print_environment(&environment, output)?;
        }
        EnvCommand::Delete { environment, yes } => {
            let current = resolve(api, &environment).await?;
            if !yes {
                if !output::interactive() {
                    return Err(miette::miette!(
                        code = "envform::cli::confirmation_required",
                        help = "pass --yes to delete without a terminal",
                        "refusing to delete `{}` without confirmation",
                        current.name
                    ));
                }
                let question = format!(
                    "Delete environment `{}` ({})? Its workers will stop. Type `yes` to confirm:",
                    current.name, current.id
                );
                if !output::confirm(&question, false)? {
                    eprintln!("Delete cancelled.");
                    return Ok(Exit::Error);
                }
            }
            api.delete(current.id).await.map_err(miette::Report::new)?;
            eprintln!("Deleted environment `{}` ({}).", current.name, current.id);
        }
        EnvCommand::WorkerCommand {
            environment,
            reveal,
            output,
        } => {
            let current = resolve(api, &environment).await?;
            let command = api
                .get_worker_command(current.id)
                .await
                .map_err(miette::Report::new)?;
            let shown = if reveal {
                command.command.clone()
            } else {
                command.masked_command()
            };
            match output {
                OutputFormat::Json => {
                    let mut value = serde_json::to_value(&command).into_diagnostic()?;
                    if !reveal {
                        value["worker_token"] = command.worker_token.masked().into();
                        value["command"] = shown.clone().into();
                        value["command_parts"] = serde_json::json!(
                            command
                                .command_parts
                                .iter()
                                .map(|part| if part == command.worker_token.expose() {
                                    command.worker_token.masked()
                                } else {
                                    part.clone()
                                })
                                .collect::<Vec<_>>()
                        );
                    }
                    print_json(&value)?;
                }
                OutputFormat::Table => {
                    print_stdout(&format!("{shown}\n"))?;
                    if !command.can_register {
                        eprintln!(
                            "note: workers cannot register yet: the namespace is {}",
                            command.namespace_status.as_deref().unwrap_or("not ready")
                        );
                    }
                    if !reveal {
                        eprintln!("hint: the token is masked; pass --reveal to show it");
                    }
                }
            }
        }
    }
    Ok(Exit::Success)
}

fn apply_flags(
    patch: &mut UpdateEnvironment,
    name: Option<String>,
    fields: &FieldFlags,
    clear: &[ManagedField],
) {
    if let Some(name) = name {
        patch.name = Patch::Set(name);
    }
    if let Some(value) = &fields.display_name {
        patch.display_name = Patch::Set(value.clone());
    }
    if let Some(value) = &fields.description {
        patch.description = Patch::Set(value.clone());
    }
    if let Some(status) = fields.status {
        patch.status = Patch::Set(status);
    }
    if let Some(configuration) = fields.configuration() {
        patch.configuration = Patch::Set(configuration);
    }
    if let Some(metadata) = fields.metadata() {
        patch.metadata = Patch::Set(metadata);
    }
    if let Some(tags) = fields.tags() {
        patch.tags = Patch::Set(tags);
    }
    for field in clear {
        patch.clear(*field);
    }
}

/// Finds an environment by id, or by name with one list call.
pub(crate) async fn resolve(
    api: &dyn EnvironmentsApi,
    reference: &str,
) -> miette::Result<Environment> {
    if let Ok(id) = reference.parse::<EnvironmentId>() {
        return api.get(id).await.map_err(miette::Report::new);
    }
    let environments = api.list(None).await.map_err(miette::Report::new)?;
    let names: Vec<&str> = environments.iter().map(|env| env.name.as_str()).collect();
    let suggestion = names
        .iter()
        .copied()
        .filter(|name| strsim::levenshtein(name, reference) < 3)
        .min_by_key(|name| strsim::levenshtein(name, reference));
    environments
        .iter()
        .find(|environment| environment.name == reference)
        .cloned()
        .ok_or_else(|| match suggestion {
            Some(name) => miette::miette!(
                code = "envform::cli::unknown_environment",
                help = format!("did you mean `{name}`?"),
                "no environment named `{reference}`"
            ),
            None => miette::miette!(
                code = "envform::cli::unknown_environment",
                help = "`envform env list` shows the environments",
                "no environment named `{reference}`"
            ),
        })
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

fn print_json<T: serde::Serialize>(value: &T) -> miette::Result<()> {
    let mut text = serde_json::to_string_pretty(value).into_diagnostic()?;
    text.push('\n');
    print_stdout(&text)
}

/// What `env` output shows in place of an `env_vars` value.
const MASKED: &str = "(sensitive)";

/// Replaces every `execution_environment.env_vars` value with [`MASKED`].
fn mask_env_vars(environment: &mut Environment) {
    if let Some(execution) = &mut environment.execution_environment {
        for value in execution.env_vars.values_mut() {
            *value = MASKED.into();
        }
    }
}

fn print_environment(environment: &Environment, output: OutputFormat) -> miette::Result<()> {
    match output {
        OutputFormat::Json => print_json(environment),
        OutputFormat::Table => print_stdout(&environment_details(environment)),
    }
}

fn environment_table(environments: &[Environment]) -> String {
    let rows: Vec<Vec<String>> = environments
        .iter()
        .map(|environment| {
            vec![
                environment.name.clone(),
                environment.status.to_string(),
                environment
                    .active_workers
                    .map_or_else(|| "-".to_owned(), |count| count.to_string()),
                environment.id.to_string(),
                environment
                    .created_at
                    .map_or_else(|| "-".to_owned(), |at| at.to_string()),
            ]
        })
        .collect();
    output::table(&["NAME", "STATUS", "WORKERS", "ID", "CREATED"], &rows)
}

fn environment_details(environment: &Environment) -> String {
    let optional = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let json = |value: Option<&JsonMap>| {
        value.map_or_else(
            || "-".to_owned(),
            |map| serde_json::Value::Object(map.clone()).to_string(),
        )
    };
    let rows = vec![
        vec!["id".to_owned(), environment.id.to_string()],
        vec!["name".to_owned(), environment.name.clone()],
        vec![
            "display_name".to_owned(),
            optional(&environment.display_name),
        ],
        vec!["description".to_owned(), optional(&environment.description)],
        vec!["status".to_owned(), environment.status.to_string()],
        vec![
            "configuration".to_owned(),
            json(environment.configuration.as_ref()),
        ],
        vec!["metadata".to_owned(), json(environment.metadata.as_ref())],
        vec![
            "tags".to_owned(),
            environment
                .tags
                .as_ref()
                .map_or_else(|| "-".to_owned(), |tags| tags.join(", ")),
        ],
        vec![
            "temporal_namespace".to_owned(),
            optional(&environment.temporal_namespace),
        ],
        vec![
            "error_message".to_owned(),
            optional(&environment.error_message),
        ],
        vec![
            "created_at".to_owned(),
            environment
                .created_at
                .map_or_else(|| "-".to_owned(), |at| at.to_string()),
        ],
        vec![
            "updated_at".to_owned(),
            environment
                .updated_at
                .map_or_else(|| "-".to_owned(), |at| at.to_string()),
        ],
    ];
    output::table(&["FIELD", "VALUE"], &rows)
}

/// `env rotate-token`: asks first on a terminal (the environment's workers stop), then shows the
/// new worker command once.
async fn rotate_token(
    api: &dyn EnvironmentsApi,
    workers: &dyn WorkersApi,
    reference: &str,
    yes: bool,
    reveal: bool,
    output: OutputFormat,
) -> miette::Result<Exit> {
    let current = resolve(api, reference).await?;
    let active = current.active_workers.unwrap_or(0);
    if !yes {
        if !output::interactive() {
            return Err(miette::miette!(
                code = "envform::cli::confirmation_required",
                help = "pass --yes to rotate without a terminal",
                "refusing to rotate the worker token of `{}` without confirmation",
                current.name
            ));
        }
        let question = format!(
            "Rotate the worker token of `{}`? Its {active} active worker(s) will stop. Type `yes` to confirm:",
            current.name
        );
        if !output::confirm(&question, false)? {
            eprintln!("Rotation cancelled.");
            return Ok(Exit::Error);
        }
    }
    let command = workers
        .rotate_worker_token(current.id)
        .await
        .map_err(miette::Report::new)?;
    match output {
        OutputFormat::Json => print_json(&shown_command(&command, reveal))?,
        OutputFormat::Table => {
            let shown = if reveal {
                command.command.clone()
            } else {
                command.masked_command()
            };
            print_stdout(&format!("{shown}\n"))?;
            if !reveal {
                eprintln!(
                    "hint: the new token is masked; `envform env worker-command {}` issues another",
                    current.name
                );
            }
        }
    }
    eprintln!(
        "Rotated the worker token of `{}`: every earlier token is revoked, and workers using one \
         stop at their next heartbeat ({active} active now).",
        current.name
    );
    Ok(Exit::Success)
}

/// A worker command as JSON, its token masked unless `reveal`.
fn shown_command(command: &WorkerCommand, reveal: bool) -> serde_json::Value {
    let mut value = serde_json::to_value(command).unwrap_or_default();
    if !reveal {
        let token = command.worker_token.expose();
        value["worker_token"] = command.worker_token.masked().into();
        value["command"] = command.masked_command().into();
        value["command_parts"] = command
            .command_parts
            .iter()
            .map(|part| {
                if part == token {
                    command.worker_token.masked()
                } else {
                    part.clone()
                }
            })
            .collect();
    }
    value
}

/// `env workers`: the environment's registered workers, active and stale.
async fn list_workers(
    api: &dyn EnvironmentsApi,
    workers: &dyn WorkersApi,
    reference: &str,
    output: OutputFormat,
) -> miette::Result<Exit> {
    let current = resolve(api, reference).await?;
    let listed = workers
        .list_workers(current.id)
        .await
        .map_err(miette::Report::new)?;
    match output {
        OutputFormat::Json => print_json(&listed)?,
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = listed
                .iter()
                .map(|worker| {
                    vec![
                        worker.id.to_string(),
                        worker.status.to_string(),
                        if worker.busy { "busy" } else { "idle" }.to_owned(),
                        worker.hostname.clone(),
                        worker.version.clone(),
                        worker.last_heartbeat_at.to_string(),
                    ]
                })
                .collect();
            print_stdout(&output::table(
                &[
                    "ID",
                    "STATUS",
                    "TASK",
                    "HOSTNAME",
                    "VERSION",
                    "LAST HEARTBEAT",
                ],
                &rows,
            ))?;
        }
    }
    Ok(Exit::Success)
}

/// `env history`: the audit log of one environment. A name no live environment has is looked up
/// in the organization's log, so a deleted environment's history can still be read.
async fn history(
    api: &dyn EnvironmentsApi,
    workers: &dyn WorkersApi,
    reference: &str,
    output: OutputFormat,
) -> miette::Result<Exit> {
    let events = if let Ok(id) = reference.parse::<EnvironmentId>() {
        workers
            .audit_events(Some(id))
            .await
            .map_err(miette::Report::new)?
    } else {
        let live = api.list(None).await.map_err(miette::Report::new)?;
        match live
            .iter()
            .find(|environment| environment.name == reference)
        {
            Some(environment) => workers
                .audit_events(Some(environment.id))
                .await
                .map_err(miette::Report::new)?,
            None => workers
                .audit_events(None)
                .await
                .map_err(miette::Report::new)?
                .into_iter()
                .filter(|event| event.environment_name.as_deref() == Some(reference))
                .collect(),
        }
    };
    if events.is_empty() {
        return Err(miette::miette!(
            code = "envform::cli::unknown_environment",
            help = "`envform env list` shows the environments",
            "no environment named `{reference}`, and no history under that name"
        ));
    }
    match output {
        OutputFormat::Json => print_json(&events)?,
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = events
                .iter()
                .map(|event| {
                    vec![
                        event.at.to_string(),
                        event.actor.clone(),
                        event.action.to_string(),
                        event_summary(event),
                    ]
                })
                .collect();
            print_stdout(&output::table(&["AT", "ACTOR", "ACTION", "CHANGES"], &rows))?;
        }
    }
    Ok(Exit::Success)
}

/// One line about what an audit event changed.
fn event_summary(event: &AuditEvent) -> String {
    let field = |document: &Option<serde_json::Value>, key: &str| {
        document
            .as_ref()
            .and_then(|document| document.get(key))
            .map(|value| {
                value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned)
            })
            .unwrap_or_default()
    };
    match event.action {
        AuditAction::EnvironmentCreate => {
            format!("created (status {})", field(&event.after, "status"))
        }
        AuditAction::EnvironmentDelete => "deleted; its workers stop".to_owned(),
        AuditAction::EnvironmentUpdate => {
            let (Some(before), Some(after)) = (
                event.before.as_ref().and_then(|value| value.as_object()),
                event.after.as_ref().and_then(|value| value.as_object()),
            ) else {
                return "updated".to_owned();
            };
            let changed: Vec<&str> = after
                .iter()
                .filter(|(key, value)| before.get(*key) != Some(*value))
                .map(|(key, _)| key.as_str())
                .collect();
            if changed.is_empty() {
                "no field changed".to_owned()
            } else {
                changed.join(", ")
            }
        }
        AuditAction::WorkerTokenIssue => "worker token issued".to_owned(),
        AuditAction::WorkerTokenRotate => format!(
            "worker tokens rotated ({} revoked)",
            field(&event.after, "revoked_tokens")
        ),
        AuditAction::WorkerRegister => format!(
            "worker {} registered from {}",
            field(&event.after, "worker_id"),
            field(&event.after, "hostname")
        ),
        AuditAction::WorkerDeregister => {
            format!("worker {} deregistered", field(&event.before, "worker_id"))
        }
    }
}
