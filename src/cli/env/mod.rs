//! `envform env`: one environment at a time, like kubectl — list, get, create, update, delete,
//! the worker command, its workers, worker token rotation and the audit history. Each group of
//! subcommands has its own file; this one declares them and dispatches.

mod change;
mod fields;
mod lookup;
mod pool;
mod read;
mod show;
mod tokens;

use std::path::PathBuf;

use fields::{FieldFlags, clearable_field, parse_status};
use show::OutputFormat;

use super::args::TargetArgs;
use super::exit::Exit;
use crate::api::{EnvironmentsApi, ManagedField, Status, WorkersApi};

pub(crate) use lookup::resolve;

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
        /// Output format (also spelt --output).
        #[arg(short = 'o', long = "format", visible_alias = "output", value_enum, default_value_t = OutputFormat::Table)]
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
        /// Output format (also spelt --output).
        #[arg(short = 'o', long = "format", visible_alias = "output", value_enum, default_value_t = OutputFormat::Table)]
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
        /// Output format (also spelt --output).
        #[arg(short = 'o', long = "format", visible_alias = "output", value_enum, default_value_t = OutputFormat::Table)]
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
        /// Output format (also spelt --output).
        #[arg(short = 'o', long = "format", visible_alias = "output", value_enum, default_value_t = OutputFormat::Table)]
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
        /// Delete it even though a configuration owns it (its next plan re-creates it).
        #[arg(long)]
        force: bool,
    },
    /// Show the command workers run to register with an environment.
    #[command(after_help = "Example:\n  envform env worker-command production --reveal")]
    WorkerCommand {
        /// Environment id or name.
        environment: String,
        /// Show the worker token instead of masking it.
        #[arg(long)]
        reveal: bool,
        /// Output format (also spelt --output).
        #[arg(short = 'o', long = "format", visible_alias = "output", value_enum, default_value_t = OutputFormat::Table)]
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
        /// Output format (also spelt --output).
        #[arg(short = 'o', long = "format", visible_alias = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// List the workers registered with an environment.
    #[command(after_help = "Example:\n  envform env workers production -o json")]
    Workers {
        /// Environment id or name.
        environment: String,
        /// Output format (also spelt --output).
        #[arg(short = 'o', long = "format", visible_alias = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Run the built-in `envform.ping` workflow on an environment's Temporal task queue and show
    /// which workers answered and how long each took (needs `envform serve --temporal-address`).
    #[command(
        after_help = "Exits 1 when a ping got no answer.\n\nExample:\n  envform env ping production --count 5"
    )]
    Ping {
        /// Environment id or name.
        environment: String,
        /// How many pings, one after the other (1 to 100).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        count: u32,
        /// Output format (also spelt --output).
        #[arg(short = 'o', long = "format", visible_alias = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Show the audit log of an environment (also of a deleted one, by name or id).
    #[command(after_help = "Example:\n  envform env history production -o json")]
    History {
        /// Environment id or name.
        environment: String,
        /// Output format (also spelt --output).
        #[arg(short = 'o', long = "format", visible_alias = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

/// Runs an `env` subcommand.
pub(crate) async fn execute(args: EnvArgs) -> miette::Result<Exit> {
    let connection = crate::cli::workspace::connect(&args.target.resolve()?).await?;
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
        EnvCommand::List {
            status,
            output,
            reveal,
        } => read::list(api, status, output, reveal).await?,
        EnvCommand::Get {
            environment,
            output,
            reveal,
        } => read::get(api, &environment, output, reveal).await?,
        EnvCommand::Create {
            file,
            name,
            fields,
            output,
        } => change::create(api, file, name, &fields, output).await?,
        EnvCommand::Update {
            environment,
            file,
            name,
            fields,
            clear,
            output,
        } => change::update(api, &environment, file, name, &fields, &clear, output).await?,
        EnvCommand::Delete {
            environment,
            yes,
            force,
        } => return change::delete(api, &environment, yes, force).await,
        EnvCommand::WorkerCommand {
            environment,
            reveal,
            output,
        } => tokens::worker_command(api, &environment, reveal, output).await?,
        EnvCommand::RotateToken {
            environment,
            yes,
            reveal,
            output,
        } => return tokens::rotate_token(api, workers, &environment, yes, reveal, output).await,
        EnvCommand::Workers {
            environment,
            output,
        } => return pool::list_workers(api, workers, &environment, output).await,
        EnvCommand::History {
            environment,
            output,
        } => return pool::history(api, workers, &environment, output).await,
        EnvCommand::Ping {
            environment,
            count,
            output,
        } => return pool::ping(api, workers, &environment, count, output).await,
    }
    Ok(Exit::Success)
}
