//! Terminal output: diagnostics and logs on stderr, data on stdout, colour only where the stream is
//! a terminal and `NO_COLOR` is unset (anstream decides).

use std::io::{IsTerminal, Write};

/// Whether colour may be written to stdout.
pub(crate) fn stdout_color() -> bool {
    anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
}

fn stderr_color() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

/// The variable that, set (to anything but `0` or nothing), drops the "next step" hints that
/// only make sense to a person at a terminal, as Terraform's `TF_IN_AUTOMATION` does.
pub(crate) const IN_AUTOMATION_VARIABLE: &str = "ENVFORM_IN_AUTOMATION";

/// Prints a "next step" hint on stderr, unless running in automation.
pub(crate) fn next_step(hint: &str) {
    let automated =
        std::env::var(IN_AUTOMATION_VARIABLE).is_ok_and(|value| !value.is_empty() && value != "0");
    if !automated {
        eprintln!("{hint}");
    }
}

/// Output format of the commands that show data (`env`, `state list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// JSON on stdout, for scripts.
    Json,
}

/// Output format of the commands that report on what they did (`validate`, `apply`,
/// `destroy`): text for people, or JSON on stdout for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ReportFormat {
    /// Text for people.
    Human,
    /// JSON on stdout, for scripts.
    Json,
}

/// Writes `value` as pretty JSON on stdout.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> miette::Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|error| miette::miette!("cannot write JSON: {error}"))?;
    text.push('\n');
    print_stdout(&text)
}

/// Whether stdin and stderr are a terminal a person can answer on.
pub(crate) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Sets how miette renders reports: colour only when stderr allows it.
pub(crate) fn install_report_handler() {
    let color = stderr_color();
    let _ = miette::set_hook(Box::new(move |_| {
        let theme = if color {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        Box::new(miette::GraphicalReportHandler::new_themed(theme).with_width(100))
    }));
}

/// Logs to stderr; `ENVFORM_LOG` (an env-filter) overrides the `-v` count.
pub(crate) fn install_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENVFORM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_color())
        .try_init();
}

/// Prints a report on stderr.
pub(crate) fn report(report: miette::Report) {
    eprintln!("{report:?}");
}

/// Writes data to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub(crate) fn print_stdout(text: &str) -> miette::Result<()> {
    write_stdout(|out| out.write_all(text.as_bytes()))
}

/// Lets `write` write to stdout through a buffer; a closed pipe ends it quietly.
pub(crate) fn write_stdout(
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> miette::Result<()> {
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match write(&mut stdout).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(miette::miette!("cannot write to stdout: {error}"))
        }
        _ => Ok(()),
    }
}

/// Renders rows as a left-aligned table with a header.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Returns once Ctrl-C or SIGTERM arrives (never, if signals cannot be watched).
pub(crate) async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Asks a yes/no question on stderr; only `yes` (or `y` when `short` is allowed) confirms.
/// A destructive command's confirmation: what it would do, asked on a terminal, refused without
/// one unless `--yes` was given.
pub(crate) struct Confirmation<'a> {
    /// What is done, after "refusing to": `delete `staging``.
    pub(crate) action: String,
    /// How to skip the question, after "pass --yes to": `delete without a terminal`.
    pub(crate) without_terminal: &'a str,
    /// The question, ending with what to type.
    pub(crate) question: String,
    /// What is printed when the answer is not `yes`: `Delete cancelled.`
    pub(crate) cancelled: &'a str,
}

/// Whether to go on: `yes`, or the person at the terminal typed `yes`. Without a terminal and
/// without `yes` it is an error that says how to skip the question.
pub(crate) fn confirmed(yes: bool, confirmation: &Confirmation<'_>) -> miette::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !interactive() {
        return Err(miette::miette!(
            code = "envform::cli::confirmation_required",
            help = format!("pass --yes to {}", confirmation.without_terminal),
            "refusing to {} without confirmation",
            confirmation.action
        ));
    }
    let answer = confirm(&confirmation.question, false)?;
    if !answer {
        eprintln!("{}", confirmation.cancelled);
    }
    Ok(answer)
}

pub(crate) fn confirm(question: &str, accept_short: bool) -> miette::Result<bool> {
    eprint!("{question} ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|error| miette::miette!("cannot read the answer: {error}"))?;
    let answer = answer.trim();
    Ok(answer == "yes" || (accept_short && answer == "y"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let text = table(
            &["NAME", "STATUS"],
            &[
                vec!["production".into(), "active".into()],
                vec!["qa".into(), "provisioning".into()],
            ],
        );
        assert_eq!(
            text,
            "NAME        STATUS\nproduction  active\nqa          provisioning\n"
        );
    }
}
