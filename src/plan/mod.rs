//! Pure planning (docs/src/concepts/plans.md): desired × live × state → an immutable [`Plan`], its order,
//! and its renderings. No I/O, no async, no clock: the same inputs always give the same plan.
//!
//! - [`diff`] (the `planner`) builds the plan (three-way field semantics, renames, adoption, protection,
//!   thresholds, drift); `order` turns its steps into a DAG and one flat order.
//! - [`Plan::bind`] checks a plan against state, the files and live as they are now and turns each
//!   step into its API call with the real secret values (the plan itself only ever holds their
//!   digests): the [`BoundPlan`] is what `apply` executes. [`Step::record_in`] is what a finished
//!   step writes to state.
//! - [`render`] shows a plan as `human`, `json` or `markdown`.

mod base;
mod bound;
mod disruption;
mod disruption_check;
mod error;
mod field;
mod model;
mod order;
mod payload;
mod planner;
pub mod render;
mod saved;
mod value;
mod warning;

pub use crate::model::DEFAULT_ENVIRONMENT;
pub use crate::model::ManagedField;
pub use base::{PlanBase, StalePlan, Staleness};
pub use bound::{BindError, BoundPlan};
pub use disruption::{Disruption, DisruptionCause, DisruptionPolicy, disruption_summary};
pub use disruption_check::disruptions;
pub use error::{DefaultOperation, PlanError, PlanErrors, ThresholdKind};
pub(crate) use field::is_empty_collection;
pub use field::{DIGEST_PREFIX, LEGACY_DIGEST_PREFIX, SecretDigests, is_digest, legacy_digest};
pub use model::{
    Action, Drift, DriftResolution, FieldChange, PLAN_FORMAT_VERSION, Plan, PlanLoadError,
    PlanOptions, PlanSettings, Recorded, Refusal, Rename, ResourceChange, StateRecord, Step,
    StepId, StepNote, Summary, SwapPart, Unmanaged,
};
pub use payload::{Payload, ResolveError};
pub use planner::{diff, last_applied, swap_temporary_name};
pub use saved::{SavedPlan, saved_text};
pub use value::ValuePath;
pub use warning::PlanWarning;

#[cfg(test)]
mod tests;
