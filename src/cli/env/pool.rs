//! `env workers` and `env history`: an environment's worker pool and its audit log.

use super::lookup::resolve;
use super::show::{OutputFormat, print_json};
use crate::api::{AuditAction, AuditEvent, EnvironmentId, EnvironmentsApi, WorkersApi};
use crate::cli::exit::Exit;
use crate::cli::output::{self, print_stdout};

/// `env workers`: the environment's registered workers, active and stale.
pub(super) async fn list_workers(
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
pub(super) async fn history(
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

/// `env ping`: runs `envform.ping` on the environment's task queue through the service; exit 1
/// when a ping got no answer.
pub(super) async fn ping(
    api: &dyn EnvironmentsApi,
    workers: &dyn WorkersApi,
    reference: &str,
    count: u32,
    output: OutputFormat,
) -> miette::Result<Exit> {
    let current = resolve(api, reference).await?;
    let report = workers
        .ping_environment(current.id, count)
        .await
        .map_err(miette::Report::new)?;
    match output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = report
                .pings
                .iter()
                .enumerate()
                .map(|(index, ping)| {
                    vec![
                        (index + 1).to_string(),
                        ping.worker_id.clone().unwrap_or_else(|| "-".to_owned()),
                        ping.hostname.clone().unwrap_or_else(|| "-".to_owned()),
                        format!("{:.1} ms", ping.round_trip_ms),
                        ping.error.clone().unwrap_or_else(|| "answered".to_owned()),
                    ]
                })
                .collect();
            print_stdout(&format!(
                "{} (namespace {}, task queue {})\n{}",
                report.environment_name,
                report.temporal_namespace,
                report.task_queue,
                output::table(&["#", "WORKER", "HOSTNAME", "ROUND TRIP", "RESULT"], &rows)
            ))?;
        }
    }
    let unanswered = report
        .pings
        .iter()
        .filter(|ping| ping.error.is_some())
        .count();
    if unanswered > 0 {
        eprintln!("envform env ping: {unanswered} of {count} pings got no answer");
        return Ok(Exit::Error);
    }
    Ok(Exit::Success)
}
