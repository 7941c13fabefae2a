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

/// The variable that sets what is logged, overriding `-v`: a level, or an env-filter directive.
pub(crate) const LOG_VARIABLE: &str = "ENVFORM_LOG";

/// Logs to stderr. `-v` shows envform's own events (phases with their durations, each API call
/// and state request, the state lock) at debug, `-vv` at trace; the libraries underneath (hyper,
/// reqwest, rustls, h2, sqlx) stay at warnings until `-vvv`, so their chatter never hides
/// envform's. A server or a worker logs envform's events at info by default. `ENVFORM_LOG`
/// overrides the count: a bare level (`debug`) means envform's events at that level, `trace`
/// everything, and anything else is an env-filter directive used as written.
pub(crate) fn install_tracing(verbose: u8, is_server: bool) {
    let directive = match std::env::var(LOG_VARIABLE) {
        Ok(value) if !value.trim().is_empty() => log_directive(value.trim()),
        _ => default_directive(verbose, is_server).to_owned(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directive).unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(default_directive(verbose, is_server))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(stderr_color())
        .try_init();
}

/// What `-v` counts to.
fn default_directive(verbose: u8, is_server: bool) -> &'static str {
    match (verbose, is_server) {
        (0, false) => "warn",
        (0, true) => "warn,envform=info",
        (1, _) => "warn,envform=debug",
        (2, _) => "warn,envform=trace",
        _ => "trace",
    }
}

/// `ENVFORM_LOG` as a directive: a bare level below `trace` applies to envform only.
fn log_directive(value: &str) -> String {
    match value.to_ascii_lowercase().as_str() {
        level @ ("error" | "warn" | "info" | "debug") => format!("warn,envform={level}"),
        _ => value.to_owned(),
    }
}

/// Logs at debug that a phase of a command ended, with its duration: where the time went.
pub(crate) fn phase_done(phase: &'static str, started: std::time::Instant) {
    // A target of its own, so `ENVFORM_LOG=envform::phase=debug` shows the timings alone.
    tracing::debug!(
        target: "envform::phase",
        phase,
        duration_ms = started.elapsed().as_millis() as u64,
        "phase done"
    );
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

/// Renders rows as a left-aligned table with a header. Cells come from the service (names,
/// hostnames): control and invisible characters are written escaped, so a value cannot move the
/// cursor, recolour the terminal or forge a line.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let escaped: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| escape_for_terminal(cell).into_owned())
                .collect()
        })
        .collect();
    let rows = &escaped;
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

/// `text` with control and invisible characters escaped (`\n`, `\u{1b}`, `\u{202e}`).
pub(crate) fn escape_for_terminal(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || crate::model::is_invisible(c);
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            escaped.extend(c.escape_unicode());
        } else {
            escaped.push(c);
        }
    }
    std::borrow::Cow::Owned(escaped)
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
    fn verbosity_shows_envform_before_its_libraries() {
        assert_eq!(default_directive(0, false), "warn");
        assert_eq!(default_directive(0, true), "warn,envform=info");
        assert_eq!(default_directive(1, false), "warn,envform=debug");
        assert_eq!(default_directive(2, true), "warn,envform=trace");
        assert_eq!(default_directive(3, false), "trace");
        assert_eq!(log_directive("debug"), "warn,envform=debug");
        assert_eq!(log_directive("INFO"), "warn,envform=info");
        assert_eq!(log_directive("trace"), "trace");
        assert_eq!(log_directive("envform::api=debug"), "envform::api=debug");
    }

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

    #[test]
    fn table_cells_cannot_drive_the_terminal() {
        let text = table(
            &["NAME"],
            &[vec!["\u{1b}[2Jev\nil\u{202e}".into()], vec!["plain".into()]],
        );
        assert_eq!(text, "NAME\n\\u{1b}[2Jev\\u{a}il\\u{202e}\nplain\n");
    }
}
