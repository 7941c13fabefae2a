//! `envform plan`: desired × live × state → a plan, shown as human text, JSON or markdown.
//! Exactly one list call; no writes anywhere (except the plan file asked for with `--out`).

use std::path::PathBuf;

use miette::IntoDiagnostic;

use super::args::ReconcileArgs;
use super::exit::Exit;
use super::output::{print_stdout, stdout_color, write_stdout};
use super::workspace;
use crate::api::Environment;
use crate::desired::Desired;
use crate::plan::render::{self, DEFAULT_MARKDOWN_MAX_CHARS, Format, RenderOptions};
use crate::plan::{DisruptionPolicy, Plan, PlanOptions};
use crate::state::{LocalBackend, State, StateBackend};

/// How the plan is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PlanFormat {
    /// Terraform-like text.
    Human,
    /// The versioned JSON document (schema in docs/src/reference/plan-json.md).
    Json,
    /// A pull-request comment.
    Markdown,
}

impl From<PlanFormat> for Format {
    fn from(format: PlanFormat) -> Self {
        match format {
            PlanFormat::Human => Format::Human,
            PlanFormat::Json => Format::Json,
            PlanFormat::Markdown => Format::Markdown,
        }
    }
}

/// `envform plan` flags.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  envform plan\n  envform plan -f environments/ --format markdown > plan.md\n  envform plan --out plan.json --detailed-exitcode"
)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    reconcile: ReconcileArgs,
    /// Output format (also spelt --output).
    #[arg(short = 'o', long, visible_alias = "output", value_enum, default_value_t = PlanFormat::Human)]
    format: PlanFormat,
    /// Save the plan, with what it was computed against, for `envform apply PLANFILE`.
    #[arg(long, value_name = "PLANFILE")]
    out: Option<PathBuf>,
    /// Exit 2 when the plan has changes, 0 when it has none.
    #[arg(long)]
    detailed_exitcode: bool,
    /// Plan to delete every environment the configuration manages (save it with --out).
    #[arg(long)]
    destroy: bool,
    /// Largest markdown output, in characters.
    #[arg(long, default_value_t = DEFAULT_MARKDOWN_MAX_CHARS, value_name = "CHARS")]
    markdown_max_chars: usize,
}

/// Everything a plan was made from.
pub(crate) struct Planned {
    /// The desired state.
    pub(crate) desired: Desired,
    /// State as read.
    pub(crate) state: State,
    /// The live environments, from the one list call.
    pub(crate) live: Vec<Environment>,
    /// The plan.
    pub(crate) plan: Plan,
}

/// Lists live once and plans `desired` against it and `state`.
pub(crate) async fn make_plan(
    api: &dyn crate::api::EnvironmentsApi,
    desired: Desired,
    state: State,
    options: &PlanOptions,
) -> miette::Result<Planned> {
    let started = std::time::Instant::now();
    let live = api.list(None).await.map_err(miette::Report::new)?;
    super::output::phase_done("list", started);
    plan_against(desired, state, live, options)
}

/// Plans `desired` against `live` (from the one list call) and `state`.
/// A destroy plan is planned against the files with no environments, so every managed one goes;
/// it is bound the same way (deletes carry no secrets to resolve).
fn plan_against(
    mut desired: Desired,
    state: State,
    live: Vec<crate::api::Environment>,
    options: &PlanOptions,
) -> miette::Result<Planned> {
    let started = std::time::Instant::now();
    if options.destroy {
        desired.environments.clear();
    }
    // What the list call and the files left freed is given back before the plan is built.
    super::memory::give_back_freed();
    let plan = crate::plan::diff(&desired, &live, &state, options).map_err(miette::Report::new)?;
    super::output::phase_done("plan", started);
    Ok(Planned {
        desired,
        state,
        live,
        plan,
    })
}

/// Shows a plan on stdout in a format; JSON is written as it is serialized.
pub(crate) fn show_plan(
    plan: &Plan,
    format: PlanFormat,
    markdown_max_chars: usize,
) -> miette::Result<()> {
    if format == PlanFormat::Json {
        return write_stdout(|out| render::write_json(plan, out));
    }
    let options = RenderOptions {
        color: format == PlanFormat::Human && stdout_color(),
        markdown_max_chars,
    };
    let mut text = render::render(plan, format.into(), &options);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    print_stdout(&text)
}

/// Runs `envform plan`.
pub(crate) async fn execute(args: PlanArgs) -> miette::Result<Exit> {
    let configuration = &args.reconcile.configuration;
    let target = configuration.target()?;
    // The files are read and checked while the client is set up and the one list call runs:
    // neither needs the other.
    let desired_args = configuration.desired.clone();
    let loaded = tokio::task::spawn_blocking(move || desired_args.load());
    let connection = workspace::connect(&target).await?;
    let listing = tokio::spawn({
        let api = std::sync::Arc::clone(&connection.api);
        async move {
            let started = std::time::Instant::now();
            let listed = api.list(None).await;
            super::output::phase_done("list", started);
            listed
        }
    });
    // So does reading local state, from where it is unless the files' `state:` block says
    // otherwise (then it is read again from there).
    let early_path = configuration
        .state_settings(None)
        .local_path()
        .map(ToOwned::to_owned);
    let early_state = early_path
        .clone()
        .map(|path| tokio::spawn(async move { LocalBackend::new(path).load().await }));
    let loaded = loaded
        .await
        .map_err(|error| miette::miette!("reading the desired state stopped: {error}"));
    let prepared = async {
        let desired = loaded??;
        // The files' trees are freed: their pages go back while the list call is still read.
        super::memory::give_back_freed();
        let settings = configuration.state_settings(Some(&desired));
        let same_file = settings.local_path() == early_path.as_deref();
        let backend = workspace::open_backend(settings)?;
        let stored = match early_state {
            Some(early) if same_file => early
                .await
                .map_err(|error| miette::miette!("reading state stopped: {error}"))?,
            _ => backend.load().await,
        };
        let stored = stored.map_err(miette::Report::new)?;
        let state = State::for_target(
            stored,
            &target.describe(),
            configuration.state.control_plane_moved,
        )
        .map_err(miette::Report::new)?;
        Ok::<_, miette::Report>((desired, state))
    }
    .await;
    let live = listing.await;
    connection.close().await;
    let (desired, state) = prepared?;
    let live = live
        .map_err(|error| miette::miette!("the list call stopped: {error}"))?
        .map_err(miette::Report::new)?;
    // `plan` shows a plan that stops workers, with a warning; `apply` refuses it without the flag.
    let options = PlanOptions {
        destroy: args.destroy,
        ..args.reconcile.planning.options(DisruptionPolicy::Warn)
    };
    // The process ends right after this command: freeing tens of thousands of environments one
    // allocation at a time would only delay the exit, so the memory goes back with the process.
    let planned = std::mem::ManuallyDrop::new(plan_against(desired, state, live, &options)?);
    show_plan(&planned.plan, args.format, args.markdown_max_chars)?;
    // A plan that does not pass a safety check is shown whole for review, then fails.
    if let Some(refused) = planned.plan.refused() {
        return Err(miette::Report::new(refused));
    }
    if let Some(out) = &args.out {
        // Absolute paths, so `apply PLANFILE` finds the files from any directory.
        let paths = configuration
            .desired
            .paths()
            .iter()
            .map(std::path::absolute)
            .collect::<std::io::Result<Vec<_>>>()
            .into_diagnostic()?;
        let text = crate::plan::saved_text(&planned.plan, &paths).into_diagnostic()?;
        std::fs::write(out, text).map_err(|error| {
            miette::miette!("cannot write the plan to {}: {error}", out.display())
        })?;
        eprintln!("Saved the plan to {}.", out.display());
        super::output::next_step(&format!(
            "Apply exactly this plan with `envform apply {}`.",
            out.display()
        ));
    }
    Ok(if args.detailed_exitcode && planned.plan.has_changes() {
        Exit::Changes
    } else {
        Exit::Success
    })
}
