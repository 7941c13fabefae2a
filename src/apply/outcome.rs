//! How each step ended, and the per-environment table printed at the end of an apply.

use crate::plan::{Action, StepId};
use crate::state::State;

/// How one step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Done; `warnings` name fields the service did not keep.
    Done {
        /// Things to know, such as a field the service dropped.
        warnings: Vec<String>,
    },
    /// The service refused or the call failed; nothing was changed by this step.
    Failed {
        /// The service's message.
        message: String,
    },
    /// Whether the change happened is not known (a timeout or a reset after sending).
    Unknown {
        /// What happened.
        message: String,
    },
    /// Not run because a step it depends on did not finish.
    Skipped {
        /// The step that failed first.
        because: StepId,
    },
    /// Not run because the apply was interrupted.
    Interrupted,
}

impl StepOutcome {
    /// The word shown in the result table.
    pub fn label(&self) -> &'static str {
        match self {
            StepOutcome::Done { .. } => "done",
            StepOutcome::Failed { .. } => "failed",
            StepOutcome::Unknown { .. } => "unknown",
            StepOutcome::Skipped { .. } => "skipped",
            StepOutcome::Interrupted => "not started",
        }
    }

    /// Whether the step completed.
    pub fn is_done(&self) -> bool {
        matches!(self, StepOutcome::Done { .. })
    }
}

/// One step's line in the report.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    /// The step.
    pub step: StepId,
    /// The environment's name.
    pub name: String,
    /// What the step did.
    pub action: Action,
    /// How it ended.
    pub outcome: StepOutcome,
}

/// The end of an apply.
#[derive(Debug, Clone)]
pub struct ApplyReport {
    /// Every step of the plan, in plan order.
    pub results: Vec<StepResult>,
    /// Whether an interrupt stopped the scheduling.
    pub interrupted: bool,
    /// The state as last saved.
    pub state: State,
    /// What stopped the run early besides an interrupt (state could not be saved).
    pub fatal: Option<String>,
}

impl ApplyReport {
    /// Whether every step completed and state was saved.
    pub fn succeeded(&self) -> bool {
        !self.interrupted
            && self.fatal.is_none()
            && self.results.iter().all(|result| result.outcome.is_done())
    }

    /// The results of steps that act on a live environment; a no-op only brings state up to
    /// date and is neither listed nor counted.
    fn acting(&self) -> impl Iterator<Item = &StepResult> {
        self.results
            .iter()
            .filter(|result| result.action != Action::NoOp)
    }

    /// Counts of steps by outcome label, in a fixed order.
    pub fn counts(&self) -> [(&'static str, usize); 5] {
        let count = |label: &str| {
            self.acting()
                .filter(|result| result.outcome.label() == label)
                .count()
        };
        [
            ("done", count("done")),
            ("failed", count("failed")),
            ("unknown", count("unknown")),
            ("skipped", count("skipped")),
            ("not started", count("not started")),
        ]
    }

    /// The per-environment result table, empty when no step acted on a live environment.
    pub fn table(&self) -> String {
        if self.acting().next().is_none() {
            return String::new();
        }
        let mut rows: Vec<[String; 4]> = vec![[
            "ENVIRONMENT".into(),
            "ACTION".into(),
            "RESULT".into(),
            "DETAIL".into(),
        ]];
        for result in self.acting() {
            let detail = match &result.outcome {
                StepOutcome::Done { warnings } => warnings.join("; "),
                StepOutcome::Failed { message } | StepOutcome::Unknown { message } => {
                    message.clone()
                }
                StepOutcome::Skipped { because } => format!("step {because} did not finish"),
                StepOutcome::Interrupted => "interrupted before it started".into(),
            };
            rows.push([
                result.name.clone(),
                result.action.to_string(),
                result.outcome.label().into(),
                detail,
            ]);
        }
        let widths: Vec<usize> = (0..3)
            .map(|column| {
                rows.iter()
                    .map(|row| row[column].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        for row in &rows {
            let line = format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}
