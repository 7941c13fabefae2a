//! What the executor tells the person watching: a small trait, so the terminal (bars or plain
//! lines) stays at the edge.

use super::outcome::StepOutcome;
use crate::plan::Step;

/// Receives progress events; called from the executor's loop, never concurrently.
pub trait Progress: Send + Sync {
    /// A step's API call was sent.
    fn started(&self, step: &Step);
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
    fn finished(&self, _step: &Step, _outcome: &StepOutcome) {}
    fn note(&self, _message: &str) {}
}
