//! `envform apply` (and `destroy`, which runs through here): lock → read state → list live → plan
//! (or read a saved plan) → bind → show → confirm → execute → unlock (docs/src/concepts/plans.md#apply).

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::args::{LockArgs, ReconcileArgs, parse_duration};
use super::exit::Exit;
use super::output::{self, print_stdout};
use super::plan::{PlanFormat, Planned, make_plan, show_plan};
use super::progress::TerminalProgress;
use super::workspace;
use crate::apply::{ApplyOptions, ApplyReport, Journal};
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
    let configuration = &args.reconcile.configuration;
    let desired = configuration.desired.load()?;
    let backend = configuration.backend(Some(&desired))?;
    let target = configuration.target()?;
    let handle = workspace::lock(backend.as_ref(), "apply", &args.lock).await?;
    let connection = match workspace::connect(&target).await {
        Ok(connected) => connected,
        Err(error) => {
            workspace::unlock(backend.as_ref(), handle).await;
            return Err(error);
        }
    };
    let result = locked(
        &connection,
        backend.as_ref(),
        &handle,
        &target.describe(),
        desired,
        args,
        mode,
    )
    .await;
    connection.close().await;
    workspace::unlock(backend.as_ref(), handle).await;
    result
}

async fn locked(
    connection: &Connection,
    backend: &dyn StateBackend,
    handle: &crate::state::LockHandle,
    target: &str,
    desired: Desired,
    args: &ExecutionArgs,
    mode: Mode,
) -> miette::Result<Exit> {
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
    if plan.refused().is_some() {
        show_plan(
            &plan,
            PlanFormat::Human,
            crate::plan::render::DEFAULT_MARKDOWN_MAX_CHARS,
        )?;
    }
    let bound = plan
        .bind(
            &desired,
            &live,
            state,
            args.reconcile.planning.allow_disruption,
        )
        .map_err(miette::Report::new)?;
    let plan = bound.plan();
    show_plan(
        plan,
        PlanFormat::Human,
        crate::plan::render::DEFAULT_MARKDOWN_MAX_CHARS,
    )?;
    // Nothing to do live nor in state: no state is written, so the serial stays and every saved
    // plan made against it stays valid.
    if bound.changes_nothing() {
        return Ok(Exit::Success);
    }
    if plan.has_changes() && !args.auto_approve {
        if !output::interactive() {
            return Err(miette::miette!(
                code = "envform::apply::approval_required",
                help = "review the plan above, then run again with --auto-approve",
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
    let progress = TerminalProgress::new(plan.steps().len());
    let summary = plan.summary();
    let options = ApplyOptions {
        parallelism: usize::from(args.parallelism),
        wait_timeout: args.wait_timeout,
        ..ApplyOptions::default()
    };
    let report = crate::apply::execute(
        bound,
        Arc::clone(&connection.api),
        Journal {
            backend,
            lock: Some(handle),
        },
        &options,
        cancel,
        &progress,
    )
    .await;
    watcher.abort();
    progress.finish();
    print_stdout(&conclusion(&report, summary, is_destroy))?;
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
