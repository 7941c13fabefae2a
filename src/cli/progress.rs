//! Apply progress on stderr: an indicatif bar on a terminal, plain lines elsewhere (CI logs).
//! A long wait is never silent: off a terminal a step still running gets a line every
//! [`WAIT_REPORT_INTERVAL`](crate::apply::WAIT_REPORT_INTERVAL) saying what it waits for; on a
//! terminal the bar shows the time elapsed, what the longest-running step is doing or waiting
//! for and, once a step has finished, an estimate of the time left.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::{Progress, StepOutcome, Waiting};
use crate::plan::{Action, Step};

/// Progress for the terminal.
pub(crate) struct TerminalProgress {
    bar: ProgressBar,
    /// The steps running: when each started and what the bar says about it.
    running: Mutex<BTreeMap<u32, (Instant, String)>>,
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
            running: Mutex::new(BTreeMap::new()),
        }
    }

    /// Updates what the running steps say (`None` removes a finished step), shows the
    /// longest-running one in the bar, and returns how long `step` has run.
    fn running(&self, step: &Step, says: Option<String>) -> Option<Duration> {
        let Ok(mut running) = self.running.lock() else {
            return None;
        };
        let elapsed = match says {
            Some(text) => {
                let entry = running
                    .entry(step.id.0)
                    .or_insert_with(|| (Instant::now(), String::new()));
                entry.1 = text;
                entry.0.elapsed()
            }
            None => running.remove(&step.id.0)?.0.elapsed(),
        };
        let oldest = running.values().min_by_key(|(started, _)| *started);
        let message = match (oldest, running.len()) {
            (None, _) => String::new(),
            (Some((_, text)), 1) => text.clone(),
            (Some((_, text)), count) => format!("{text} (+{} more)", count - 1),
        };
        self.bar.set_message(message);
        Some(elapsed)
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
const WITHOUT_ETA: &str = "{spinner} {elapsed:>4} [{bar:20}] {pos}/{len} {wide_msg}";
/// The bar once steps finish: the time left, estimated from their pace.
const WITH_ETA: &str = "{spinner} {elapsed:>4} [{bar:20}] {pos}/{len} ~{eta} left {wide_msg}";

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
        let (doing, _) = verb(step.action);
        self.running(step, Some(format!("{doing} {}", step.name)));
        self.line(&format!("{}: {doing}...", step.name));
    }

    fn waiting(&self, step: &Step, elapsed: Duration, waiting: Waiting) {
        if self.bar.is_hidden() {
            let (doing, _) = verb(step.action);
            eprintln!(
                "{}: Still {}... [{}s elapsed] {}",
                step.name,
                doing.to_lowercase(),
                elapsed.as_secs(),
                waiting.describe()
            );
        } else {
            // The bar's own clock shows the time; the message says what is awaited.
            self.running(step, Some(format!("{}: {}", step.name, waiting.describe())));
        }
    }

    fn finished(&self, step: &Step, outcome: &StepOutcome) {
        let elapsed = self.running(step, None);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::StepId;

    fn step(id: u32, action: Action, name: &str) -> Step {
        let mut step = Step::new(action, name, None, crate::plan::StateRecord::Forget);
        step.id = StepId(id);
        step
    }

    #[test]
    fn the_bar_names_the_longest_running_step_and_how_many_more_run() {
        let progress = TerminalProgress::new(3);
        let alpha = step(1, Action::Create, "alpha");
        let beta = step(2, Action::Delete, "beta");
        progress.started(&alpha);
        assert_eq!(progress.bar.message(), "Creating alpha");
        progress.started(&beta);
        assert_eq!(progress.bar.message(), "Creating alpha (+1 more)");
        progress.finished(
            &alpha,
            &StepOutcome::Done {
                warnings: Vec::new(),
            },
        );
        assert_eq!(progress.bar.message(), "Destroying beta");
        assert_eq!(progress.bar.position(), 1);
        progress.finished(
            &beta,
            &StepOutcome::Done {
                warnings: Vec::new(),
            },
        );
        assert_eq!(progress.bar.message(), "");
        // A step that never started (skipped) counts without touching the message.
        progress.finished(
            &step(3, Action::Create, "gamma"),
            &StepOutcome::Skipped { because: StepId(1) },
        );
        assert_eq!(progress.bar.position(), 3);
    }
}
