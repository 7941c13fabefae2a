//! `env worker-command` and `env rotate-token`: the worker token, masked unless asked for.

use miette::IntoDiagnostic;

use super::lookup::resolve;
use super::show::{OutputFormat, print_json};
use crate::api::{EnvironmentsApi, WorkerCommand, WorkersApi};
use crate::cli::exit::Exit;
use crate::cli::output::{self, print_stdout};

/// `env worker-command`.
pub(super) async fn worker_command(
    api: &dyn EnvironmentsApi,
    environment: &str,
    reveal: bool,
    output: OutputFormat,
) -> miette::Result<()> {
    let current = resolve(api, environment).await?;
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
                value["command_parts"] =
                    serde_json::to_value(command.command_parts.masked(&command.worker_token))
                        .into_diagnostic()?;
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
                output::next_step("hint: the token is masked; pass --reveal to show it");
            }
        }
    }
    Ok(())
}

/// `env rotate-token`: asks first on a terminal (the environment's workers stop), then shows the
/// new worker command once.
pub(super) async fn rotate_token(
    api: &dyn EnvironmentsApi,
    workers: &dyn WorkersApi,
    reference: &str,
    yes: bool,
    reveal: bool,
    output: OutputFormat,
) -> miette::Result<Exit> {
    let current = resolve(api, reference).await?;
    let active = current.active_workers.unwrap_or(0);
    let confirmation = output::Confirmation {
        action: format!("rotate the worker token of `{}`", current.name),
        without_terminal: "rotate without a terminal",
        question: format!(
            "Rotate the worker token of `{}`? Its {active} active worker(s) will stop. Type `yes` to confirm:",
            current.name
        ),
        cancelled: "Rotation cancelled.",
    };
    if !output::confirmed(yes, &confirmation)? {
        return Ok(Exit::Error);
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
        value["worker_token"] = command.worker_token.masked().into();
        value["command"] = command.masked_command().into();
        value["command_parts"] =
            serde_json::to_value(command.command_parts.masked(&command.worker_token))
                .unwrap_or_default();
    }
    value
}
