//! `envform apply` (and `destroy`, which runs through here): lock → read state → list live → plan
//! (or read a saved plan) → bind → show → confirm → execute → unlock (docs/src/concepts/plans.md#apply).

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::args::{LockArgs, ReconcileArgs, parse_duration};
use super::events::JsonEvents;
use super::exit::Exit;
use super::output::{self, ReportFormat, print_stdout};
use super::plan::{PlanFormat, Planned, make_plan, show_plan};
use super::progress::TerminalProgress;
use super::workspace;
use crate::apply::{ApplyOptions, ApplyReport, Journal, Progress};
use crate::desired::Desired;
use crate::plan::{DisruptionPolicy, Plan, PlanOptions, Summary};
use crate::state::StateBackend;
use crate::target::Connection;

/// Flags of `apply` and `destroy`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExecutionArgs {
    #[command(flatten)]
    reconcile: ReconcileArgs,
    #[command(flatten)]
    lock: LockArgs,
    /// Apply without asking (required when not on a terminal).
    #[arg(long)]
    auto_approve: bool,
    /// At most this many API calls at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallelism: u16,
    /// How long a create may wait for provisioning, e.g. 10m.
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    wait_timeout: std::time::Duration,
    /// Output format (also spelt --output): `json` writes a JSON Lines event stream on stdout
    /// instead of the plan, progress and result table.
    #[arg(short = 'o', long, visible_alias = "output", value_enum, default_value_t = ReportFormat::Human)]
    format: ReportFormat,
}

/// `envform apply` flags.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  envform apply\n  envform apply -f environments/ --auto-approve\n  envform plan --out plan.json && envform apply plan.json"
)]
pub(crate) struct ApplyArgs {
    /// A plan saved with `envform plan --out`: apply exactly it (refused if anything moved);
    /// its configuration files are read from where the plan recorded them unless -f is given.
    #[arg(value_name = "PLANFILE")]
    plan_file: Option<PathBuf>,
    #[command(flatten)]
    execution: ExecutionArgs,
}

/// Runs `envform apply`.
pub(crate) async fn execute_apply(mut args: ApplyArgs) -> miette::Result<Exit> {
    let saved = match &args.plan_file {
        Some(path) => {
            let saved = workspace::read_saved(path)?;
            let desired = &mut args.execution.reconcile.configuration.desired;
            if desired.paths.is_empty() {
                desired.paths = recorded_paths(path, saved.configuration)?;
            }
            Some(Box::new(saved.plan))
        }
        None => None,
    };
    run(&args.execution, Mode::Apply { saved }).await
}

/// The configuration paths a saved plan recorded, when they all still exist.
fn recorded_paths(
    plan_file: &std::path::Path,
    paths: Vec<PathBuf>,
) -> miette::Result<Vec<PathBuf>> {
    if paths.is_empty() {
        // Saved without paths: the default file, as before paths were recorded.
        return Ok(paths);
    }
    if let Some(missing) = paths.iter().find(|path| !path.exists()) {
        return Err(miette::miette!(
            code = "envform::apply::configuration_moved",
            help = "pass the configuration with -f (a checkout elsewhere is fine: its meaning is what is checked)",
            "{} was made from {}, which is not there",
            plan_file.display(),
            missing.display()
        ));
    }
    Ok(paths)
}

/// What `apply` runs: a fresh plan or a saved one, or, for `destroy`, a plan to delete everything.
pub(super) enum Mode {
    /// `envform apply [PLANFILE]`.
    Apply {
        /// The saved plan, when one is given.
        saved: Option<Box<Plan>>,
    },
    /// `envform destroy`.
    Destroy,
}

pub(super) async fn run(args: &ExecutionArgs, mode: Mode) -> miette::Result<Exit> {
    let events = (args.format == ReportFormat::Json).then(|| {
        JsonEvents::new(match mode {
            Mode::Apply { .. } => "apply",
            Mode::Destroy => "destroy",
        })
    });
    let result = run_reporting(args, mode, events.as_ref()).await;
    // A script reading the stream learns why it ended without a summary; stderr has the report.
    if let (Err(report), Some(events)) = (&result, &events) {
        events.error(report);
    }
    result
}

async fn run_reporting(
    args: &ExecutionArgs,
    mode: Mode,
    events: Option<&JsonEvents>,
) -> miette::Result<Exit> {
    let configuration = &args.reconcile.configuration;
    let desired = configuration.desired.load()?;
    let backend = configuration.backend(Some(&desired))?;
    let target = configuration.target()?;
    let handle = match events {
        Some(events) => {
            workspace::lock_telling_waits(backend.as_ref(), "apply", &args.lock, &mut |holder| {
                events.lock_waiting(holder);
            })
            .await?
        }
        None => workspace::lock(backend.as_ref(), "apply", &args.lock).await?,
    };
    let connection = match workspace::connect(&target).await {
        Ok(connected) => connected,
        Err(error) => {
            workspace::unlock(backend.as_ref(), handle).await;
            return Err(error);
        }
    };
    let held = Held {
        connection: &connection,
        backend: backend.as_ref(),
        handle: &handle,
        target: &target.describe(),
    };
    let result = locked(&held, desired, args, mode, events).await;
    connection.close().await;
    workspace::unlock(backend.as_ref(), handle).await;
    result
}

/// What `apply` holds once it has the lock: the connection, the state backend, the lock and the
/// control plane's description.
struct Held<'a> {
    connection: &'a Connection,
    backend: &'a dyn StateBackend,
    handle: &'a crate::state::LockHandle,
    target: &'a str,
}

async fn locked(
    held: &Held<'_>,
    desired: Desired,
    args: &ExecutionArgs,
    mode: Mode,
    events: Option<&JsonEvents>,
) -> miette::Result<Exit> {
    let Held {
        connection,
        backend,
        handle,
        target,
    } = *held;
    let state = workspace::load_state(
        backend,
        target,
        args.reconcile.configuration.state.control_plane_moved,
    )
    .await?;
    let api = connection.api.as_ref();
    // Stopping active workers is a plan-time error unless --allow-disruption: nothing is applied.
    let options = PlanOptions {
        destroy: matches!(mode, Mode::Destroy),
        ..args.reconcile.planning.options(DisruptionPolicy::Refuse)
    };
    let planned = match mode {
        Mode::Apply { saved: None } | Mode::Destroy => {
            make_plan(api, desired, state, &options).await?
        }
        Mode::Apply { saved: Some(plan) } => {
            let live = api.list(None).await.map_err(miette::Report::new)?;
            let mut desired = desired;
            // A saved destroy plan is bound as it was planned: against no environments.
            if plan.settings().destroy {
                desired.environments.clear();
            }
            Planned {
                desired,
                state,
                live,
                plan: *plan,
            }
        }
    };
    let is_destroy = planned.plan.settings().destroy;
    // A fresh plan and a saved one take the same checks: base, disruptions, secrets.
    let Planned {
        desired,
        state,
        live,
        plan,
    } = planned;
    // A plan refused by a safety check is still shown, so what was refused can be reviewed.
    if let (Some(_), Some(events)) = (plan.refused(), events) {
        events.plan(&plan);
    } else if plan.refused().is_some() {
        show_plan(
            &plan,
            PlanFormat::Human,
            crate::plan::render::DEFAULT_MARKDOWN_MAX_CHARS,
        )?;
    }
    let binding = std::time::Instant::now();
    let bound = plan
        .bind(
            &desired,
            &live,
            state,
            args.reconcile.planning.allow_disruption,
        )
        .map_err(miette::Report::new)?;
    output::phase_done("bind", binding);
    let plan = bound.plan();
    match events {
        Some(events) => events.plan(plan),
        None => show_plan(
            plan,
            PlanFormat::Human,
            crate::plan::render::DEFAULT_MARKDOWN_MAX_CHARS,
        )?,
    }
    // Nothing to do live nor in state: no state is written, so the serial stays and every saved
    // plan made against it stays valid.
    if bound.changes_nothing() {
        if let Some(events) = events {
            events.nothing_to_do();
        }
        return Ok(Exit::Success);
    }
    if plan.has_changes() && !args.auto_approve {
        if !output::interactive() {
            return Err(miette::miette!(
                code = "envform::apply::approval_required",
                help = if events.is_some() {
                    "the plan is the stream's `plan` event; run again with --auto-approve to apply it"
                } else {
                    "review the plan above, then run again with --auto-approve"
                },
                "refusing to apply without --auto-approve: stdin is not a terminal, nothing was applied"
            ));
        }
        let question = if is_destroy {
            "Do you really want to destroy these environments? Only 'yes' will be accepted:"
        } else {
            "Do you want to perform these actions? Only 'yes' will be accepted:"
        };
        if !output::confirm(question, false)? {
            eprintln!("Apply cancelled; nothing was applied.");
            return Ok(Exit::Error);
        }
    }
    let cancel = CancellationToken::new();
    let watcher = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            output::stop_signal().await;
            cancel.cancel();
        }
    });
    // The bar is made only for people: with JSON, stderr stays quiet.
    let terminal = events
        .is_none()
        .then(|| TerminalProgress::new(plan.steps().len()));
    let progress: &dyn Progress = match (events, &terminal) {
        (Some(events), _) => events,
        (None, Some(terminal)) => terminal,
        (None, None) => &crate::apply::SilentProgress,
    };
    let summary = plan.summary();
    let options = ApplyOptions {
        parallelism: usize::from(args.parallelism),
        wait_timeout: args.wait_timeout,
        ..ApplyOptions::default()
    };
    let applying = std::time::Instant::now();
    let report = crate::apply::execute(
        bound,
        Arc::clone(&connection.api),
        Journal {
            backend,
            lock: Some(handle),
        },
        &options,
        cancel,
        progress,
    )
    .await;
    output::phase_done("apply", applying);
    watcher.abort();
    if let Some(terminal) = &terminal {
        terminal.finish();
    }
    match events {
        Some(events) => events.summary(&report),
        None => print_stdout(&conclusion(&report, summary, is_destroy))?,
    }
    Ok(if report.interrupted {
        Exit::Interrupted
    } else if report.succeeded() {
        Exit::Success
    } else {
        Exit::Error
    })
}

fn conclusion(report: &ApplyReport, summary: Summary, is_destroy: bool) -> String {
    let mut text = String::from("\n");
    let table = report.table();
    if !table.is_empty() {
        text.push_str(&table);
        text.push('\n');
    }
    if let Some(fatal) = &report.fatal {
        text.push_str(&format!("Stopped: {fatal}\n"));
    }
    if report.interrupted {
        text.push_str(
            "Apply interrupted: finished steps are saved in state; run apply again to continue.\n",
        );
    } else if report.succeeded() {
        if is_destroy {
            text.push_str(&format!(
                "Destroy complete! Environments: {} destroyed.\n",
                summary.destroy
            ));
        } else {
            text.push_str(&format!(
                "Apply complete! Environments: {} added, {} changed, {} destroyed, {} adopted.\n",
                summary.add, summary.change, summary.destroy, summary.adopt
            ));
        }
    } else {
        let counts = report
            .counts()
            .iter()
            .filter(|(_, count)| *count > 0)
            .map(|(label, count)| format!("{count} {label}"))
            .collect::<Vec<_>>()
            .join(", ");
        text.push_str(&format!("Apply failed: {counts}.\n"));
    }
    text
}
