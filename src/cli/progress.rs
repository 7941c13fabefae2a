//! Apply progress on stderr: an indicatif bar on a terminal, plain lines elsewhere (CI logs).
//! A long wait is never silent: off a terminal a step still running gets a line every
//! [`WAIT_REPORT_INTERVAL`](crate::apply::WAIT_REPORT_INTERVAL) saying what it waits for; on a
//! terminal the bar shows the time elapsed, what the slowest step waits for and, once a step has
//! finished, an estimate of the time left.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::{Progress, StepOutcome, Waiting};
use crate::plan::{Action, Step};

/// Progress for the terminal.
pub(crate) struct TerminalProgress {
    bar: ProgressBar,
    started: Mutex<std::collections::BTreeMap<u32, Instant>>,
}

impl TerminalProgress {
    /// A bar over `steps` steps (hidden when stderr is not a terminal).
    pub(crate) fn new(steps: usize) -> Self {
        let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        set_template(&bar, WITHOUT_ETA);
        if !bar.is_hidden() {
            // Redraws the spinner and the elapsed time while every step waits.
            bar.enable_steady_tick(Duration::from_millis(250));
        }
        Self {
            bar,
            started: Mutex::new(Default::default()),
        }
    }

    fn line(&self, text: &str) {
        if self.bar.is_hidden() {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The bar until a step has finished: no rate to estimate from yet.
const WITHOUT_ETA: &str = "{spinner} {elapsed:>4} [{bar:30}] {pos}/{len} {wide_msg}";
/// The bar once steps finish: the time left, estimated from their pace.
const WITH_ETA: &str = "{spinner} {elapsed:>4} [{bar:30}] {pos}/{len} ~{eta} left {wide_msg}";

fn set_template(bar: &ProgressBar, template: &str) {
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
}

fn verb(action: Action) -> (&'static str, &'static str) {
    match action {
        Action::Create => ("Creating", "Created"),
        Action::Update => ("Updating", "Updated"),
        Action::Delete => ("Destroying", "Destroyed"),
        Action::Adopt => ("Adopting", "Adopted"),
        Action::Rename => ("Renaming", "Renamed"),
        Action::NoOp => ("Recording", "Recorded"),
    }
}

impl Progress for TerminalProgress {
    fn started(&self, step: &Step) {
        if let Ok(mut started) = self.started.lock() {
            started.insert(step.id.0, Instant::now());
        }
        let (doing, _) = verb(step.action);
        self.bar.set_message(format!("{doing} {}", step.name));
        self.line(&format!("{}: {doing}...", step.name));
    }

    fn waiting(&self, step: &Step, elapsed: Duration, waiting: Waiting) {
        let (doing, _) = verb(step.action);
        let seconds = elapsed.as_secs();
        if self.bar.is_hidden() {
            eprintln!(
                "{}: Still {}... [{seconds}s elapsed] {}",
                step.name,
                doing.to_lowercase(),
                waiting.describe()
            );
        } else {
            self.bar.set_message(format!(
                "{doing} {}: {} ({seconds}s)",
                step.name,
                waiting.describe()
            ));
        }
    }

    fn finished(&self, step: &Step, outcome: &StepOutcome) {
        let elapsed = self
            .started
            .lock()
            .ok()
            .and_then(|started| started.get(&step.id.0).map(Instant::elapsed));
        let (_, done) = verb(step.action);
        let line = match outcome {
            StepOutcome::Done { warnings } => {
                let mut line = format!(
                    "{}: {done} after {:.1}s",
                    step.final_name(),
                    elapsed.map_or(0.0, |elapsed| elapsed.as_secs_f64())
                );
                for warning in warnings {
                    line.push_str(&format!("\n{}: warning: {warning}", step.final_name()));
                }
                line
            }
            StepOutcome::Failed { message } => format!("{}: failed: {message}", step.name),
            StepOutcome::Unknown { message } => {
                format!("{}: outcome unknown: {message}", step.name)
            }
            StepOutcome::Skipped { because } => {
                format!("{}: skipped: step {because} did not finish", step.name)
            }
            StepOutcome::Interrupted => format!("{}: not started", step.name),
        };
        self.bar.inc(1);
        if self.bar.position() == 1 && self.bar.length() > Some(1) {
            set_template(&self.bar, WITH_ETA);
        }
        self.line(&line);
    }

    fn note(&self, message: &str) {
        self.line(message);
    }
}
