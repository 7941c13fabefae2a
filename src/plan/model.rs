//! The plan: an immutable value holding every step apply takes, already ordered, with what each
//! step sends and what it records in state, and the base it was computed against. Only
//! [`diff`](super::diff) builds one (or a saved plan is loaded); apply executes it and decides
//! nothing, like a blueprint that leaves no choices to its executor.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::base::PlanBase;
use super::disruption::{Disruption, DisruptionPolicy};
use super::error::{PlanError, PlanErrors, ThresholdKind};
use super::value::ValuePath;
use super::warning::PlanWarning;
use crate::api::{EnvironmentId, JsonMap, Status};
use crate::model::{FieldSet, ManagedField, Owner};
use crate::state::{AppliedFields, ResourceState, State};

/// The version of the saved plan format and of the JSON rendering.
pub const PLAN_FORMAT_VERSION: &str = "1.1";

/// What the caller asks of a plan beyond the desired file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Allow deletes and updates above the safety thresholds.
    pub force: bool,
    /// Plan only these environments and what they depend on (empty: all).
    pub targets: Vec<String>,
    /// What to do about steps that stop active workers (refuse them by default).
    pub disruption: DisruptionPolicy,
    /// `--adopt`: live environments nothing owns may be adopted by name.
    pub adopt: bool,
    /// A destroy plan: recorded in the plan (the caller plans against no environments).
    pub destroy: bool,
}

/// The options a plan was computed with, kept in the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSettings {
    /// `options.prune` of the file.
    pub prune: bool,
    /// `--force`.
    pub force: bool,
    /// `--target` names.
    pub targets: Vec<String>,
    /// `--allow-disruption`: the plan may stop active workers.
    #[serde(default)]
    pub allow_disruption: bool,
    /// `--adopt` or `options.adopt`: live environments nothing owns may be adopted.
    #[serde(default)]
    pub adopt: bool,
    /// `plan --destroy` or `destroy`: the plan deletes everything the configuration manages.
    #[serde(default)]
    pub destroy: bool,
}

/// An immutable plan. Steps are stored in execution order; each step's `depends_on` are the
/// edges of the DAG, so independent steps can run in parallel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    format_version: String,
    base: PlanBase,
    settings: PlanSettings,
    steps: Vec<Step>,
    drift: Vec<Drift>,
    unmanaged: Vec<Unmanaged>,
    warnings: Vec<PlanWarning>,
    // Absent from plans saved before workers were tracked.
    #[serde(default)]
    disruptions: Vec<Disruption>,
    // Absent from plans saved before ownership was recorded.
    #[serde(default)]
    owned_elsewhere: usize,
    // Absent from plans saved before refusals were kept in the plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    refusals: Vec<Refusal>,
}

/// A safety check the plan does not pass: the plan is complete and shown, but not applied
/// (`plan` exits 1, `apply` refuses it) until `--force` allows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    /// Too many deletes or updates at once.
    Threshold {
        /// Deletes or updates.
        threshold: ThresholdKind,
        /// How many the plan makes.
        count: usize,
        /// How many environments state manages.
        managed: usize,
        /// The share allowed.
        max_fraction: f64,
    },
}

impl Refusal {
    /// The refusal as the error `plan` and `apply` report.
    pub fn error(&self) -> PlanError {
        match *self {
            Refusal::Threshold {
                threshold,
                count,
                managed,
                max_fraction,
            } => PlanError::Threshold {
                kind: threshold,
                count,
                managed,
                max_fraction,
            },
        }
    }
}

/// What the planner found, in the order the plan keeps it.
pub(crate) struct PlanContents {
    /// The steps, in execution order.
    pub(crate) steps: Vec<Step>,
    /// Changes made live since the last apply.
    pub(crate) drift: Vec<Drift>,
    /// Live environments nothing manages.
    pub(crate) unmanaged: Vec<Unmanaged>,
    /// Warnings for every format.
    pub(crate) warnings: Vec<PlanWarning>,
    /// Steps that stop active workers.
    pub(crate) disruptions: Vec<Disruption>,
    /// How many live environments other configurations own.
    pub(crate) owned_elsewhere: usize,
    /// Safety checks the plan does not pass.
    pub(crate) refusals: Vec<Refusal>,
}

/// Why a saved plan cannot be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanLoadError {
    /// Not a plan document.
    #[error("not an envform plan: {0}")]
    #[diagnostic(code(envform::plan::unreadable))]
    Unreadable(#[from] serde_json::Error),
    /// The JSON rendering (`plan --format json`), which cannot be applied.
    #[error("this is the JSON rendering of a plan, not a saved plan")]
    #[diagnostic(
        code(envform::plan::not_saved),
        help("save a plan to apply with `envform plan --out PLANFILE`")
    )]
    NotSaved,
    /// Written by an incompatible envform.
    #[error("plan format {found} is not supported (expected {PLAN_FORMAT_VERSION})")]
    #[diagnostic(
        code(envform::plan::format_version),
        help("make the plan again with this version of envform")
    )]
    FormatVersion {
        /// The version in the file.
        found: String,
    },
}

impl Plan {
    /// Assembles a plan; only the planner calls this.
    pub(crate) fn new(base: PlanBase, settings: PlanSettings, contents: PlanContents) -> Self {
        Self {
            format_version: PLAN_FORMAT_VERSION.to_owned(),
            base,
            settings,
            steps: contents.steps,
            drift: contents.drift,
            unmanaged: contents.unmanaged,
            warnings: contents.warnings,
            disruptions: contents.disruptions,
            owned_elsewhere: contents.owned_elsewhere,
            refusals: contents.refusals,
        }
    }

    /// The safety checks the plan does not pass; it is applied only once they are allowed.
    pub fn refusals(&self) -> &[Refusal] {
        &self.refusals
    }

    /// The refusals as one error, when there are any.
    pub fn refused(&self) -> Option<PlanErrors> {
        (!self.refusals.is_empty()).then(|| PlanErrors {
            errors: self.refusals.iter().map(Refusal::error).collect(),
        })
    }

    /// How many live environments other configurations own (never touched, never listed).
    pub fn owned_elsewhere(&self) -> usize {
        self.owned_elsewhere
    }

    /// The format version the plan was written with.
    pub fn format_version(&self) -> &str {
        &self.format_version
    }

    /// What the plan was computed against.
    pub fn base(&self) -> &PlanBase {
        &self.base
    }

    /// The options the plan was computed with.
    pub fn settings(&self) -> &PlanSettings {
        &self.settings
    }

    /// Every step, in execution order (ids are 1, 2, … in this order).
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The step with this id.
    pub fn step(&self, id: StepId) -> Option<&Step> {
        self.steps.iter().find(|step| step.id == id)
    }

    /// Fields changed live since the last apply.
    pub fn drift(&self) -> &[Drift] {
        &self.drift
    }

    /// Live environments neither in the file nor in state, left alone.
    pub fn unmanaged(&self) -> &[Unmanaged] {
        &self.unmanaged
    }

    /// Things the user should know that do not stop the plan.
    pub fn warnings(&self) -> &[PlanWarning] {
        &self.warnings
    }

    /// The environments whose active workers the plan stops, by name.
    pub fn disruptions(&self) -> &[Disruption] {
        &self.disruptions
    }

    /// How many active workers the plan stops in all.
    pub fn stopped_workers(&self) -> u32 {
        self.disruptions
            .iter()
            .map(|disruption| disruption.active_workers)
            .sum()
    }

    /// Counts of environments to add, change, destroy and adopt.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        // Each environment has one main step (a swap adds a first half): count those, without
        // grouping the steps by name as `resource_changes` does.
        let main_steps = self
            .steps
            .iter()
            .filter(|step| step.swap != Some(SwapPart::ToTemporary));
        for step in main_steps {
            match step.action {
                Action::Create => summary.add += 1,
                Action::Update | Action::Rename => summary.change += 1,
                Action::Delete => summary.destroy += 1,
                Action::Adopt => summary.adopt += 1,
                Action::NoOp => {}
            }
        }
        summary
    }

    /// Whether applying the plan changes anything live or takes anything over.
    pub fn has_changes(&self) -> bool {
        !self.summary().is_empty()
    }

    /// The plan per environment (a swapped environment has two steps), sorted by name.
    pub fn resource_changes(&self) -> Vec<ResourceChange<'_>> {
        let mut by_name: BTreeMap<&str, Vec<&Step>> = BTreeMap::new();
        for step in &self.steps {
            by_name.entry(step.name.as_str()).or_default().push(step);
        }
        by_name
            .into_iter()
            .filter_map(|(name, steps)| {
                let main = *steps
                    .iter()
                    .find(|step| step.swap != Some(SwapPart::ToTemporary))?;
                let first = steps
                    .iter()
                    .find(|step| step.swap == Some(SwapPart::ToTemporary));
                let previous_name = first
                    .and_then(|step| step.rename.as_ref())
                    .or(main.rename.as_ref())
                    .map(|rename| rename.from.as_str());
                let temporary_name = first
                    .and_then(|step| step.rename.as_ref())
                    .map(|rename| rename.to.as_str());
                Some(ResourceChange {
                    name,
                    action: main.action,
                    previous_name,
                    temporary_name,
                    main,
                    steps,
                })
            })
            .collect()
    }
}

/// The identifier of a step within its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepId(pub u32);

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a step does to its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `+`: create it.
    Create,
    /// `~`: change fields in place.
    Update,
    /// `-`: delete it.
    Delete,
    /// `<=`: take over a live environment state does not know (then update it if needed).
    Adopt,
    /// `~`: rename it in place (then update it if needed).
    Rename,
    /// Nothing live; state is brought up to date.
    NoOp,
}

impl Action {
    /// The symbol the human rendering uses.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update | Action::Rename => "~",
            Action::Delete => "-",
            Action::Adopt => "<=",
            Action::NoOp => " ",
        }
    }

    /// The action's name in the JSON rendering.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Adopt => "adopt",
            Action::Rename => "rename",
            Action::NoOp => "no-op",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node of the plan's DAG: one API call at most, and what to record in state once it is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The step's id, its position in the order (from 1).
    pub id: StepId,
    /// What the step does.
    pub action: Action,
    /// The environment's name once the plan is applied (for a delete, its current name).
    pub name: String,
    /// The live environment acted on; `None` for a create.
    pub environment_id: Option<EnvironmentId>,
    /// The rename the step performs, if any (boxed: rare, and a plan holds a step per
    /// environment).
    pub rename: Option<Box<Rename>>,
    /// Which half of a swap through a temporary name this step is.
    pub swap: Option<SwapPart>,
    /// Fields with their value before and after (secrets digested). For a create or an update
    /// these are the fields sent; for a delete, the fields that go with the environment.
    pub changes: Vec<FieldChange>,
    /// Fields in the file whose live value already matches.
    pub unchanged: FieldSet,
    /// Steps that must finish first.
    pub depends_on: Vec<StepId>,
    /// Wait until the environment has left `provisioning`: after a create (the organization's
    /// first environment, which every other create follows), before an update (a status change).
    pub wait_for_provisioning: bool,
    /// What to write to state once the step is done.
    pub record: StateRecord,
    /// The ownership stamp this step writes into the environment's `settings` (a create, an
    /// adoption, or an environment whose stamp is missing or out of date); `None` when live
    /// already carries the right one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// Why the step is there, when it is not obvious.
    pub notes: Vec<StepNote>,
}

impl Step {
    /// A step of `action` on `name`: no rename, changes, dependencies or notes yet, and an id the
    /// order assigns later.
    pub(crate) fn new(
        action: Action,
        name: impl Into<String>,
        environment_id: Option<EnvironmentId>,
        record: StateRecord,
    ) -> Self {
        Self {
            id: StepId(0),
            action,
            name: name.into(),
            environment_id,
            rename: None,
            swap: None,
            changes: Vec::new(),
            unchanged: FieldSet::default(),
            depends_on: Vec::new(),
            wait_for_provisioning: false,
            record,
            owner: None,
            notes: Vec::new(),
        }
    }

    /// The name the environment has once this step is done.
    pub fn final_name(&self) -> &str {
        self.rename.as_ref().map_or(&self.name, |rename| &rename.to)
    }

    /// The new status this step sends, if it changes the status.
    pub fn new_status(&self) -> Option<Status> {
        self.changes
            .iter()
            .find(|change| change.field == ManagedField::Status)
            .and_then(|change| change.after.as_ref()?.as_str()?.parse().ok())
    }

    /// Whether the step calls the API (a no-op or a plain adopt only writes state).
    pub fn calls_api(&self) -> bool {
        match self.action {
            Action::Create | Action::Delete | Action::Rename => true,
            Action::Update | Action::Adopt => !self.changes.is_empty() || self.owner.is_some(),
            Action::NoOp => false,
        }
    }

    /// Records the finished step in `state`; `environment_id` is the environment it acted on
    /// (for a create, the id the service returned).
    pub fn record_in(&self, state: &mut State, environment_id: EnvironmentId) {
        let carried = self
            .rename
            .as_ref()
            .and_then(|rename| state.resources.remove(&rename.from));
        let name = self.final_name().to_owned();
        match &self.record {
            StateRecord::Record(recorded) => {
                state.resources.insert(
                    name,
                    ResourceState {
                        id: environment_id,
                        last_applied: AppliedFields::new(&recorded.last_applied),
                        prevent_destroy: recorded.prevent_destroy,
                        depends_on: recorded.depends_on.clone(),
                        renamed_from: recorded.renamed_from.clone(),
                    },
                );
            }
            StateRecord::Carry => {
                let resource = carried.unwrap_or_else(|| ResourceState {
                    id: environment_id,
                    last_applied: AppliedFields::default(),
                    prevent_destroy: false,
                    depends_on: Vec::new(),
                    renamed_from: None,
                });
                state.resources.insert(
                    name,
                    ResourceState {
                        id: environment_id,
                        ..resource
                    },
                );
            }
            StateRecord::Keep => {}
            StateRecord::Forget => {
                state.resources.remove(&name);
            }
        }
    }
}

/// A rename performed by a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    /// The name before the step.
    pub from: String,
    /// The name after the step.
    pub to: String,
}

/// The halves of a rename that goes through a temporary name (to break a swap or a rename cycle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwapPart {
    /// Renames the environment away to the temporary name.
    ToTemporary,
    /// Renames it from the temporary name to its final one, with its field changes.
    FromTemporary,
}

/// What a finished step writes to state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateRecord {
    /// Record the environment under its final name with this entry. (Boxed: a plan holds a step
    /// per environment, and most hold `Keep`.)
    Record(Box<Recorded>),
    /// Move the entry along with the rename, unchanged (the first half of a swap).
    Carry,
    /// Leave the entry as it is: a no-op whose record state already holds. (A variant of its
    /// own, so an envform that predates it refuses a saved plan holding it rather than misread
    /// it.)
    Keep,
    /// Remove the entry.
    Forget,
}

/// The state entry a [`StateRecord::Record`] writes, but for the environment's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// The managed fields as applied (secret values as digests).
    pub last_applied: JsonMap,
    /// `lifecycle.prevent_destroy`.
    pub prevent_destroy: bool,
    /// `depends_on` names.
    pub depends_on: Vec<String>,
    /// `renamed_from`, so the rename is not made again.
    pub renamed_from: Option<String>,
}

impl Recorded {
    /// Whether `resource`, whose last-applied fields parse to `applied`, already holds this entry.
    pub fn is_held_by(&self, resource: &ResourceState, applied: &JsonMap) -> bool {
        resource.prevent_destroy == self.prevent_destroy
            && resource.depends_on == self.depends_on
            && resource.renamed_from == self.renamed_from
            && *applied == self.last_applied
    }
}

/// A field's value before and after a step (secret values as digests).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Which field.
    pub field: ManagedField,
    /// Its live value (`None`: absent).
    pub before: Option<Value>,
    /// Its value after the step (`None`: cleared).
    pub after: Option<Value>,
}

/// Why a step exists, when the action alone does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepNote {
    /// State knew the environment, but it was deleted outside envform: it is created again.
    Recreate,
    /// The live environment of that name is not the one state recorded (replaced outside envform).
    ReplacedOutside,
    /// Deleted because `options.prune` is set and nothing manages it.
    Pruned,
    /// A rename of a live environment state did not know: it is taken over.
    TakenOver,
    /// State knew the environment, which is gone live and from the file: only state is updated.
    GoneOutside,
    /// Only the ownership stamp is written (it was missing or out of date).
    Stamp,
}

impl StepNote {
    /// A short phrase for the displays.
    pub fn describe(self) -> &'static str {
        match self {
            StepNote::Recreate => "re-create: deleted outside envform",
            StepNote::ReplacedOutside => "replaced outside envform: the live one is taken over",
            StepNote::Pruned => "pruned: not in the configuration nor in state",
            StepNote::TakenOver => "not managed before: taken over",
            StepNote::GoneOutside => "deleted outside envform: removed from state",
            StepNote::Stamp => "records which configuration owns it",
        }
    }
}

/// A field changed live since the last apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// The environment's current name.
    pub name: String,
    /// Where, from the field's wire name down.
    pub path: ValuePath,
    /// The value last applied (secrets digested).
    pub last_applied: Option<Value>,
    /// The value live has now (secrets digested).
    pub live: Option<Value>,
    /// What the plan does about it.
    pub resolution: DriftResolution,
}

/// What the plan does about a drifted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftResolution {
    /// The plan sets it back to the configuration.
    Overwritten,
    /// Live's value stays: the configuration now agrees, or no longer manages it.
    Accepted,
    /// Under `lifecycle.ignore_changes`: left as it is.
    Ignored,
}

impl DriftResolution {
    /// A short phrase for the displays.
    pub fn describe(self) -> &'static str {
        match self {
            DriftResolution::Overwritten => "will be overwritten",
            DriftResolution::Accepted => "kept",
            DriftResolution::Ignored => "ignored: lifecycle.ignore_changes",
        }
    }
}

/// A live environment nothing manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmanaged {
    /// Its name.
    pub name: String,
    /// Its id.
    pub environment_id: EnvironmentId,
    /// Its status.
    pub status: Status,
}

/// Counts of environments per kind of change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Created.
    pub add: usize,
    /// Updated or renamed.
    pub change: usize,
    /// Deleted.
    pub destroy: usize,
    /// Adopted.
    pub adopt: usize,
}

impl Summary {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Plan: {} to add, {} to change, {} to destroy, {} to adopt.",
            self.add, self.change, self.destroy, self.adopt
        )
    }
}

/// One environment's part of a plan, for the displays.
#[derive(Debug, Clone)]
pub struct ResourceChange<'a> {
    /// Its name once applied (for a delete, its current name).
    pub name: &'a str,
    /// What happens to it.
    pub action: Action,
    /// Its name before a rename.
    pub previous_name: Option<&'a str>,
    /// The temporary name a swap goes through.
    pub temporary_name: Option<&'a str>,
    /// The step that carries its field changes.
    pub main: &'a Step,
    /// All its steps, in order.
    pub steps: Vec<&'a Step>,
}
