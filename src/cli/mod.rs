//! The command line: clap definitions, settings resolution, output and exit codes. Commands are
//! thin: each resolves its settings, calls the library, and turns the outcome into an [`Exit`].

mod apply;
mod args;
mod destroy;
mod env;
mod events;
mod exit;
mod force_unlock;
mod import;
mod init;
mod memory;
mod output;
mod plan;
mod progress;
pub mod serve;
mod settings;
mod show;
mod state;
mod temporal_args;
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
    /// More logging on stderr: -v envform's events (API calls, phases, the lock), -vv more of
    /// them, -vvv also the libraries'; ENVFORM_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No colour, even on a terminal (as NO_COLOR=1).
    #[arg(long, global = true)]
    no_color: bool,
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
    /// Render a saved plan again (human, JSON or markdown).
    Show(show::ShowArgs),
    /// Delete every environment this configuration manages.
    Destroy(destroy::DestroyArgs),
    /// Take a live environment under management.
    Import(import::ImportArgs),
    /// Look at or mend state.
    #[command(
        subcommand,
        after_help = "Examples:\n  envform state list -f environments/\n  envform state show production\n  envform state rm legacy --lock-timeout 30s"
    )]
    State(state::StateCommand),
    /// Break a state lock whose holder is gone.
    ForceUnlock(force_unlock::ForceUnlockArgs),
    /// Manage environments one by one.
    #[command(
        after_help = "Examples:\n  envform env list\n  envform env get production -o json\n  envform env update staging --max-workers 20"
    )]
    Env(env::EnvArgs),
    /// Write a starter envform.yaml from the live environments.
    Init(init::InitArgs),
    /// Run the Environments Service over HTTP.
    #[command(
        after_help = "Examples:\n  envform serve --addr 127.0.0.1:8080 --api-key \"$KEY=my-org\"\n  ENVFORM_API_KEYS=\"k1=org-a,k2=org-b\" envform serve --db /var/lib/envform/serve.db"
    )]
    // Boxed: by far the largest variant, and parsed once.
    Serve(Box<serve::ServeArgs>),
    /// Join an environment's worker pool (the command `env worker-command` prints).
    #[command(subcommand_required = true)]
    Worker(worker::WorkerArgs),
    /// Print the version, the commit it was built from and the target.
    Version,
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
    let cli = match Cli::try_parse_from(terraform_style(args.into_iter().map(Into::into))) {
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
    if cli.no_color {
        anstream::ColorChoice::Never.write_global();
    }
    // Databases, state files, their backups and lock files, and saved plans hold digests of
    // secrets and who holds which lock: everything envform creates is its owner's only (files
    // 0600, directories 0700), whatever the caller's umask.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    output::install_report_handler();
    // A server logs each request and a worker what it does, by default; other commands only
    // warnings.
    let is_server = matches!(cli.command, Command::Serve(_) | Command::Worker(_));
    output::install_tracing(cli.verbose, is_server);
    if !is_server {
        memory::share_arenas();
    }
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
        Command::Show(args) => show::execute(&args),
        Command::Destroy(args) => destroy::execute(args).await,
        Command::Import(args) => import::execute(args).await,
        Command::State(command) => state::execute(command).await,
        Command::ForceUnlock(args) => force_unlock::execute(args).await,
        Command::Env(args) => env::execute(args).await,
        Command::Init(args) => init::execute(args).await,
        Command::Serve(args) => serve::execute(*args).await.map(|()| Exit::Success),
        Command::Worker(args) => worker::execute(args).await,
        Command::Version => output::print_stdout(&format!(
            "envform {} (commit {}, {})\n",
            env!("CARGO_PKG_VERSION"),
            env!("ENVFORM_COMMIT"),
            env!("ENVFORM_TARGET")
        ))
        .map(|()| Exit::Success),
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

/// Terraform's single-dash long flags (`-auto-approve`, `-out=FILE`, `-target=X`) as the
/// double-dash ones clap knows, so habits carry over. Only names that are long flags of envform
/// are rewritten, so short flags (`-f`, `-vv`) and values are left alone, and nothing after `--`.
fn terraform_style(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let longs = long_flags(&<Cli as clap::CommandFactory>::command());
    let mut positional = false;
    args.enumerate()
        .map(|(index, arg)| {
            let Some(text) = arg.to_str().filter(|_| index > 0 && !positional) else {
                return arg;
            };
            if text == "--" {
                positional = true;
                return arg;
            }
            let name = text
                .strip_prefix('-')
                .filter(|rest| !rest.starts_with('-'))
                .map(|rest| rest.split('=').next().unwrap_or(rest));
            match name {
                Some(name) if name.len() > 1 && longs.contains(name) => format!("-{text}").into(),
                _ => arg,
            }
        })
        .collect()
}

/// Every long flag of `command` and its subcommands.
fn long_flags(command: &clap::Command) -> std::collections::BTreeSet<String> {
    let mut names: std::collections::BTreeSet<String> = command
        .get_arguments()
        .filter_map(clap::Arg::get_long)
        .map(str::to_owned)
        .collect();
    for subcommand in command.get_subcommands() {
        names.extend(long_flags(subcommand));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(args: &[&str]) -> Vec<String> {
        terraform_style(args.iter().map(OsString::from))
            .into_iter()
            .map(|arg| arg.into_string().expect("utf-8"))
            .collect()
    }

    #[test]
    fn terraform_single_dash_long_flags_are_accepted() {
        assert_eq!(
            rewritten(&[
                "envform",
                "apply",
                "-auto-approve",
                "-lock-timeout=5m",
                "-no-color"
            ]),
            [
                "envform",
                "apply",
                "--auto-approve",
                "--lock-timeout=5m",
                "--no-color"
            ]
        );
        assert_eq!(
            rewritten(&[
                "envform",
                "plan",
                "-out=tfplan",
                "-detailed-exitcode",
                "-target=prod"
            ]),
            [
                "envform",
                "plan",
                "--out=tfplan",
                "--detailed-exitcode",
                "--target=prod"
            ]
        );
        // Short flags, values and whatever follows `--` stay as typed.
        assert_eq!(
            rewritten(&["envform", "plan", "-f", "-vv", "--", "-auto-approve"]),
            ["envform", "plan", "-f", "-vv", "--", "-auto-approve"]
        );
        let parsed = Cli::try_parse_from(terraform_style(
            ["envform", "apply", "-auto-approve", "-parallelism=4"]
                .into_iter()
                .map(OsString::from),
        ));
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}
