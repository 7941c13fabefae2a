//! `envform show PLANFILE`: a saved plan rendered again, in any format, with no API, state or
//! files: `show --format json` gives what `plan --format json` gave for that plan.

use std::path::PathBuf;

use super::exit::Exit;
use super::plan::{PlanFormat, show_plan};
use super::workspace;
use crate::plan::render::DEFAULT_MARKDOWN_MAX_CHARS;

/// `envform show` flags.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  envform show plan.json\n  envform show plan.json --format markdown > plan.md"
)]
pub(crate) struct ShowArgs {
    /// A plan saved with `envform plan --out`.
    #[arg(value_name = "PLANFILE")]
    plan_file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
    format: PlanFormat,
    /// Largest markdown output, in characters.
    #[arg(long, default_value_t = DEFAULT_MARKDOWN_MAX_CHARS, value_name = "CHARS")]
    markdown_max_chars: usize,
}

/// Runs `envform show`.
pub(crate) fn execute(args: &ShowArgs) -> miette::Result<Exit> {
    let saved = workspace::read_saved(&args.plan_file)?;
    show_plan(&saved.plan, args.format, args.markdown_max_chars)?;
    Ok(Exit::Success)
}
