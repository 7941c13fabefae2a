//! What the executor tells the person watching: a small trait, so the terminal (bars or plain
//! lines) stays at the edge.

use std::time::Duration;

use super::outcome::StepOutcome;
use crate::plan::Step;

/// How often a step still running is reported (`alpha: Still creating... [20s elapsed]`): often
/// enough that a CI log never looks hung, rarely enough that a long wait stays a few lines.
pub const WAIT_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// What a running step is waiting for, named in its still-waiting reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Waiting {
    /// The API's answer to the step's call.
    Answer,
    /// The environment to leave `provisioning`.
    Provisioning,
}

impl Waiting {
    /// The words shown after the elapsed time.
    pub fn describe(self) -> &'static str {
        match self {
            Waiting::Answer => "waiting for the API's answer",
            Waiting::Provisioning => "waiting for provisioning",
        }
    }
}

/// Receives progress events; called from the executor's loop, never concurrently.
pub trait Progress: Send + Sync {
    /// A step's API call was sent.
    fn started(&self, step: &Step);
    /// A step is still running `elapsed` after it started (every [`WAIT_REPORT_INTERVAL`]).
    fn waiting(&self, step: &Step, elapsed: Duration, waiting: Waiting);
    /// A step ended.
    fn finished(&self, step: &Step, outcome: &StepOutcome);
    /// A free-form note (waiting, interrupt received, a warning).
    fn note(&self, message: &str);
}

/// Progress that shows nothing (library use, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct SilentProgress;

impl Progress for SilentProgress {
    fn started(&self, _step: &Step) {}
    fn waiting(&self, _step: &Step, _elapsed: Duration, _waiting: Waiting) {}
    fn finished(&self, _step: &Step, _outcome: &StepOutcome) {}
    fn note(&self, _message: &str) {}
}
