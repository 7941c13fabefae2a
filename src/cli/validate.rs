//! `envform validate`: checks desired-state files offline — no API, no state. With
//! `--format json` the verdict is a JSON document on stdout (docs/src/reference/automation-json.md)
//! and nothing is written to stderr.

use std::path::PathBuf;

use miette::Diagnostic;

use super::args::DesiredArgs;
use super::exit::Exit;
use super::output::{ReportFormat, print_json};
use crate::desired::{SpecDiagnostic, SpecError};

/// `envform validate` flags.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  envform validate -f environments/\n  envform validate --format json"
)]
pub(crate) struct ValidateArgs {
    #[command(flatten)]
    desired: DesiredArgs,
    /// Output format (also spelt --output): `json` writes the verdict and every problem on stdout.
    #[arg(short = 'o', long, visible_alias = "output", value_enum, default_value_t = ReportFormat::Human)]
    format: ReportFormat,
}

/// Runs `envform validate`.
pub(crate) fn execute(args: &ValidateArgs) -> miette::Result<Exit> {
    if args.format == ReportFormat::Json {
        let verdict = Verdict::of(args.desired.load_spec());
        print_json(&verdict)?;
        return Ok(if verdict.valid {
            Exit::Success
        } else {
            Exit::Error
        });
    }
    // The process ends right after this command: freeing every environment one allocation at a
    // time would only delay the exit, so the memory goes back with the process.
    let desired = std::mem::ManuallyDrop::new(args.desired.load()?);
    let count = desired.environments.len();
    let files = desired.sources.files.len();
    eprintln!(
        "The configuration is valid: {count} environment{} in {files} file{}:",
        if count == 1 { "" } else { "s" },
        if files == 1 { "" } else { "s" }
    );
    for file in &desired.sources.files {
        eprintln!("  {}", file.path.display());
    }
    Ok(Exit::Success)
}

/// What `validate --format json` writes.
#[derive(Debug, serde::Serialize)]
struct Verdict {
    /// Whether the configuration loads with no error.
    valid: bool,
    /// The files read, in the order read.
    files: Vec<PathBuf>,
    /// Every problem found, in file order.
    diagnostics: Vec<JsonDiagnostic>,
}

/// One problem, placed in its file.
#[derive(Debug, serde::Serialize)]
struct JsonDiagnostic {
    /// The stable code, e.g. `envform::spec::unknown_key`.
    code: String,
    /// `error` or `warning`.
    severity: &'static str,
    /// What is wrong.
    message: String,
    /// The file, as named when read.
    file: Option<String>,
    /// 1-based line of the offending node.
    line: Option<usize>,
    /// 1-based column (in characters) of the offending node.
    column: Option<usize>,
    /// What to do about it.
    help: Option<String>,
}

impl Verdict {
    fn of(loaded: Result<crate::desired::Desired, SpecError>) -> Self {
        match loaded {
            // Valid, perhaps with warnings.
            Ok(desired) => Verdict {
                valid: true,
                diagnostics: desired
                    .warnings
                    .iter()
                    .map(JsonDiagnostic::placed)
                    .collect(),
                files: desired
                    .sources
                    .files
                    .into_iter()
                    .map(|file| file.path)
                    .collect(),
            },
            Err(error) => {
                let diagnostics = match &error {
                    SpecError::Invalid { diagnostics, .. } => {
                        diagnostics.iter().map(JsonDiagnostic::placed).collect()
                    }
                    // Nothing could be read: the one problem is the path itself.
                    SpecError::Io { path, .. } | SpecError::NoFiles { path } => {
                        vec![JsonDiagnostic::unplaced(&error, path)]
                    }
                };
                Verdict {
                    valid: !diagnostics
                        .iter()
                        .any(|diagnostic| diagnostic.severity == "error"),
                    files: error.files().to_vec(),
                    diagnostics,
                }
            }
        }
    }
}

impl JsonDiagnostic {
    fn placed(diagnostic: &SpecDiagnostic) -> Self {
        JsonDiagnostic {
            code: diagnostic.code().to_owned(),
            severity: severity(diagnostic.severity()),
            message: diagnostic.to_string(),
            file: Some(diagnostic.file().to_owned()),
            line: Some(diagnostic.line),
            column: Some(diagnostic.column),
            help: diagnostic.help_text(),
        }
    }

    fn unplaced(error: &SpecError, path: &std::path::Path) -> Self {
        JsonDiagnostic {
            code: error
                .code()
                .map_or_else(|| "envform::spec".to_owned(), |code| code.to_string()),
            severity: "error",
            message: crate::local::error_chain(error),
            file: Some(path.display().to_string()),
            line: None,
            column: None,
            help: error.help().map(|help| help.to_string()),
        }
    }
}

fn severity(severity: Option<miette::Severity>) -> &'static str {
    match severity {
        None | Some(miette::Severity::Error) => "error",
        Some(miette::Severity::Warning) => "warning",
        Some(miette::Severity::Advice) => "advice",
    }
}
