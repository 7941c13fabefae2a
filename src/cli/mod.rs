//! The command line: clap definitions, settings resolution, output and exit codes. Commands are
//! thin: each resolves its settings, calls the library, and turns the outcome into an [`Exit`].

mod apply;
mod args;
mod destroy;
mod env;
mod exit;
mod force_unlock;
mod import;
mod init;
mod output;
mod plan;
mod progress;
pub mod serve;
mod settings;
mod state;
mod validate;
mod worker;
mod workspace;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use args::TargetArgs;
pub use exit::Exit;

/// envform: desired state for the environments of an agent control plane.
///
/// Without --api-url, every command runs against the embedded control plane in
/// .envform/control-plane.db: no server and no account needed.
#[derive(Debug, Parser)]
#[command(
    name = "envform",
    version,
    propagate_version = true,
    max_term_width = 80
)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace); ENVFORM_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check desired-state files offline.
    Validate(validate::ValidateArgs),
    /// Show what apply would change.
    Plan(plan::PlanArgs),
    /// Make live match the desired state.
    Apply(apply::ApplyArgs),
    /// Delete every environment this configuration manages.
    Destroy(destroy::DestroyArgs),
    /// Take a live environment under management.
    Import(import::ImportArgs),
    /// Look at or mend state.
    #[command(subcommand)]
    State(state::StateCommand),
    /// Break a state lock whose holder is gone.
    ForceUnlock(force_unlock::ForceUnlockArgs),
    /// Manage environments one by one.
    Env(env::EnvArgs),
    /// Write a starter envform.yaml from the live environments.
    Init(init::InitArgs),
    /// Run the Environments Service over HTTP.
    Serve(serve::ServeArgs),
    /// Join an environment's worker pool (the command `env worker-command` prints).
    #[command(subcommand_required = true)]
    Worker(worker::WorkerArgs),
    /// Print shell completions (bash, zsh, fish, ...).
    #[command(after_help = "Example:\n  envform completions bash > /etc/bash_completion.d/envform")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Runs the command line and returns its exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version are successes; every usage error is exit 1 (never 2, which
            // `plan --detailed-exitcode` reserves for "changes present").
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => Exit::Error.into(),
            };
        }
    };
    output::install_report_handler();
    // A server logs each request and a worker what it does, by default; other commands only
    // warnings.
    let is_server = matches!(cli.command, Command::Serve(_) | Command::Worker(_));
    output::install_tracing(cli.verbose + u8::from(is_server));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            output::report(miette::miette!("cannot start the async runtime: {error}"));
            return Exit::Error.into();
        }
    };
    let exit = runtime.block_on(execute(cli));
    exit.into()
}

async fn execute(cli: Cli) -> Exit {
    let result = match cli.command {
        Command::Validate(args) => validate::execute(&args),
        Command::Plan(args) => plan::execute(args).await,
        Command::Apply(args) => apply::execute_apply(args).await,
        Command::Destroy(args) => destroy::execute(args).await,
        Command::Import(args) => import::execute(args).await,
        Command::State(command) => state::execute(command).await,
        Command::ForceUnlock(args) => force_unlock::execute(args).await,
        Command::Env(args) => env::execute(args).await,
        Command::Init(args) => init::execute(args).await,
        Command::Serve(args) => serve::execute(args).await.map(|()| Exit::Success),
        Command::Worker(args) => worker::execute(args).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut buffer = Vec::new();
            clap_complete::generate(shell, &mut command, "envform", &mut buffer);
            output::print_stdout(&String::from_utf8_lossy(&buffer)).map(|()| Exit::Success)
        }
    };
    result.unwrap_or_else(|report| {
        output::report(report);
        Exit::Error
    })
}
