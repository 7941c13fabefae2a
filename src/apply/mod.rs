//! Executing a [`Plan`](crate::plan::Plan) (docs/src/concepts/plans.md#apply): scheduling its DAG with bounded
//! parallelism, calling the API, waiting for provisioning, journaling every finished step to
//! state, and stopping cleanly on an interrupt. It decides nothing about *what* to change: every
//! choice is already in the plan.

mod executor;
mod outcome;
mod progress;
mod step;

pub use executor::{ApplyOptions, Journal, execute};
pub use outcome::{ApplyReport, StepOutcome, StepResult};
pub use progress::{Progress, SilentProgress, WAIT_REPORT_INTERVAL, Waiting};

#[cfg(test)]
mod tests;
