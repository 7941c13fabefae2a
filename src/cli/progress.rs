//! Apply progress on stderr: an indicatif bar on a terminal, plain lines elsewhere (CI logs).

use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::apply::{Progress, StepOutcome};
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
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}") {
            bar.set_style(style.progress_chars("=> "));
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
        self.line(&line);
    }

    fn note(&self, message: &str) {
        self.line(message);
    }
}
