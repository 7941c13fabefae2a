//! Phase: the fields of each desired environment, compared three ways (desired, live, last
//! applied) with `ignore_changes` put back, and the step (two for a swap) that makes live match.

use std::collections::BTreeMap;

use foldhash::{HashSet, HashSetExt};
use serde_json::Value;

use super::context::Planner;
use super::drift::{Compared, DriftInputs, record_drift};
use super::identity::{Identity, swap_temporary_name, swapped_renames};
use crate::desired::DesiredEnvironment;
use crate::model::{EnvironmentId, FieldSet, JsonMap, ManagedField, Owner, Status};
use crate::plan::error::PlanError;
use crate::plan::field::SecretDigests;
use crate::plan::model::{
    Action, Drift, FieldChange, Recorded, Rename, StateRecord, Step, StepNote, SwapPart,
};
use crate::plan::value;
use crate::plan::warning::PlanWarning;

/// The last-applied document a desired environment records when it is created: its managed
/// fields in the file, secrets digested with `digests`. (Steps carry the exact document to
/// record, which also reflects `ignore_changes`.)
pub fn last_applied(environment: &DesiredEnvironment, digests: SecretDigests) -> JsonMap {
    ManagedField::ALL
        .into_iter()
        .filter_map(|field| {
            let value = field.desired_value(&environment.fields, digests)?;
            Some((field.wire_name().to_owned(), value))
        })
        .collect()
}

/// What planning one desired environment adds to the plan besides its step: for most, nothing.
pub(super) struct PlannedEnvironment {
    /// The first half of a swap, which goes before the step (boxed: rare).
    pub(super) to_temporary: Option<Box<Step>>,
    /// Drift found on it.
    pub(super) drift: Vec<Drift>,
    /// Warnings about it.
    pub(super) warnings: Vec<PlanWarning>,
    /// Why it cannot be planned (another configuration owns it, or adoption was not asked for).
    pub(super) errors: Vec<PlanError>,
    /// Fields left alone because the control plane does not keep them.
    pub(super) not_kept: Vec<ManagedField>,
}

impl PlannedEnvironment {
    /// Whether it adds nothing.
    fn is_empty(&self) -> bool {
        self.to_temporary.is_none()
            && self.drift.is_empty()
            && self.warnings.is_empty()
            && self.errors.is_empty()
            && self.not_kept.is_empty()
    }
}

/// Fewest desired environments worth a run on another thread.
const ENVIRONMENTS_PER_RUN: usize = 512;

/// What the desired environments took: the live environments they are, and every name they
/// account for (their own and the names they are renamed from).
pub(super) struct Taken<'n> {
    /// Live environments a desired one is.
    pub(super) live: HashSet<EnvironmentId>,
    /// Names the desired environments account for.
    pub(super) names: HashSet<&'n str>,
}

impl<'a> Planner<'a> {
    /// Plans every desired environment in scope, each on its own (large plans on every core),
    /// and adds their steps, drift and warnings in name order.
    pub(super) fn plan_desired<'n>(&mut self, claims: &'n BTreeMap<String, String>) -> Taken<'n>
    where
        'a: 'n,
    {
        let swapped = swapped_renames(claims);
        let mut desired: Vec<&'a DesiredEnvironment> = self
            .desired
            .environments
            .iter()
            .filter(|environment| self.in_scope(&environment.name))
            .collect();
        desired.sort_by(|left, right| left.name.cmp(&right.name));
        let planner = &*self;
        // Each step is written straight into the plan's list, in name order: a large plan holds
        // one copy of its steps, not one per environment and another when they are joined.
        let (steps, besides) =
            crate::parallel::each_unzipped(&desired, ENVIRONMENTS_PER_RUN, |environment| {
                let identity = planner.identify(environment, claims);
                let swapped = swapped.contains(&environment.name);
                planner.plan_environment(environment, identity, swapped)
            });
        // Membership only: hashed sets, so nothing is copied or compared character by character.
        let mut taken = Taken {
            live: HashSet::with_capacity(desired.len()),
            names: HashSet::with_capacity(desired.len()),
        };
        let mut halves = Vec::new();
        let joined = desired.iter().zip(&steps).zip(besides);
        for (index, ((environment, step), beside)) in joined.enumerate() {
            // The step acts on the live environment this one took.
            taken.live.extend(step.environment_id);
            taken.names.insert(&environment.name);
            taken
                .names
                .extend(claims.get(&environment.name).map(String::as_str));
            let Some(planned) = beside else {
                continue;
            };
            halves.extend(planned.to_temporary.map(|half| (index, *half)));
            self.drift.extend(planned.drift);
            self.warnings.extend(planned.warnings);
            self.errors.extend(planned.errors);
            self.not_kept.extend(planned.not_kept);
        }
        // The first phase to add steps: the list is the plan's own.
        debug_assert!(self.steps.is_empty(), "plan_desired adds the first steps");
        self.steps = with_halves(steps, halves);
        taken
    }

    /// The step (two for a swap) and the drift of one desired environment.
    pub(super) fn plan_environment(
        &self,
        environment: &DesiredEnvironment,
        identity: Identity<'a>,
        swapped: bool,
    ) -> (Step, Option<Box<PlannedEnvironment>>) {
        let (ignored, warnings) = ignore_paths(environment);
        let mut drift = Vec::new();
        // Parsed from state's text once per environment, and dropped with this plan of it.
        let applied = identity
            .managed
            .map(|resource| resource.last_applied.to_map());
        // The fields applied before, found in one pass over the record rather than one lookup
        // per field.
        let applied_fields: FieldSet = applied
            .iter()
            .flatten()
            .filter_map(|(name, value)| {
                ManagedField::from_wire_name(name).filter(|_| !value.is_null())
            })
            .collect();
        let mut changes = Vec::new();
        let mut unchanged = FieldSet::default();
        let mut recorded = JsonMap::new();
        // Each field compared against live, kept for the drift check before `after` moves into
        // the record: values are built once and cloned only into changes.
        let mut compared: Vec<Compared> = Vec::with_capacity(ManagedField::ALL.len());
        let unkept = self.state.unkept_here();
        let mut not_kept = Vec::new();
        let mut skipped = Vec::new();
        for field in ManagedField::ALL {
            // A field this control plane did not keep is left alone, unless live shows a value
            // for it now (then the control plane keeps it after all, and it is managed again).
            if let Some(live) = identity.live
                && unkept.is_some_and(|unkept| unkept.contains(field.wire_name()))
                && field
                    .live_value(live, &environment.fields.nonsensitive, self.digests)
                    .is_none()
            {
                if field
                    .desired_value(&environment.fields, self.digests)
                    .is_some()
                {
                    not_kept.push(field);
                }
                skipped.push(field);
                continue;
            }
            let desired = field.desired_value(&environment.fields, self.digests);
            let in_file = desired.is_some();
            let was_applied = applied_fields.contains(field);
            let target = match desired {
                Some(value) => Some(value),
                None if field.clears_when_removed() && was_applied => None,
                // Neither in the file nor applied before: someone else's field.
                None => continue,
            };
            let Some(live) = identity.live else {
                if let Some(value) = target {
                    recorded.insert(field.wire_name().to_owned(), value.clone());
                    changes.push(FieldChange {
                        field,
                        before: None,
                        after: Some(value),
                    });
                }
                continue;
            };
            // Live's value is copied only where the plan needs it: ignored paths, or a change.
            let ignores_field = ignored
                .iter()
                .any(|path| path.first().is_some_and(|first| first == field.wire_name()));
            let (after, before) = if ignores_field {
                let before = field.live_value(live, &environment.fields.nonsensitive, self.digests);
                (
                    apply_ignores(target, before.as_ref(), field, &ignored),
                    Some(before),
                )
            } else {
                (target, None)
            };
            let unchanged_live = match &before {
                Some(before) => *before == after,
                None => field.live_equals(
                    live,
                    after.as_ref(),
                    &environment.fields.nonsensitive,
                    self.digests,
                ),
            };
            let live_if_different = if unchanged_live {
                if in_file {
                    unchanged.insert(field);
                }
                None
            } else {
                let before = before.unwrap_or_else(|| {
                    field.live_value(live, &environment.fields.nonsensitive, self.digests)
                });
                changes.push(FieldChange {
                    field,
                    before: before.clone(),
                    after: after.clone(),
                });
                Some(before)
            };
            compared.push(Compared {
                field,
                in_file,
                live_if_different,
                after,
            });
        }

        if let (Some(live), Some(applied)) = (identity.live, &applied) {
            record_drift(
                &mut drift,
                DriftInputs {
                    live,
                    applied,
                    desired_vars: environment
                        .fields
                        .execution_environment
                        .as_ref()
                        .map(|execution| &execution.env_vars),
                    compared: &compared,
                    ignored: &ignored,
                    revealed: &environment.fields.nonsensitive,
                    not_kept: &skipped,
                    digests: self.digests,
                },
            );
        }
        for Compared {
            field,
            in_file,
            after,
            ..
        } in compared
        {
            if in_file && let Some(value) = after {
                recorded.insert(field.wire_name().to_owned(), value);
            }
        }

        let mut action = match (&identity.live, &identity.renamed_from) {
            (None, _) => Action::Create,
            (Some(_), Some(_)) => Action::Rename,
            (Some(_), None) if identity.managed.is_none() => Action::Adopt,
            (Some(_), None) if changes.is_empty() => Action::NoOp,
            (Some(_), None) => Action::Update,
        };
        let (owner, errors) = self.ownership(environment, &identity, action);
        let mut notes = identity.notes;
        if owner.is_some() && action == Action::NoOp {
            // Only the stamp is written: an environment managed before ownership was recorded,
            // or whose `prevent_destroy` changed.
            action = Action::Update;
            notes.push(StepNote::Stamp);
        }
        let wait_for_provisioning = identity.live.is_some_and(|live| {
            live.status == Status::Provisioning
                && changes
                    .iter()
                    .any(|change| change.field == ManagedField::Status)
        });
        let environment_id = identity.live.map(|live| live.id);
        let entry = Recorded {
            last_applied: recorded,
            prevent_destroy: environment.lifecycle.prevent_destroy,
            depends_on: environment
                .depends_on
                .iter()
                .map(|reference| reference.name.clone())
                .collect(),
            renamed_from: environment
                .renamed_from
                .as_ref()
                .map(|reference| reference.name.clone()),
        };
        // A no-op whose record state already holds keeps the entry: a plan of a large
        // configuration with few changes then holds no second copy of every environment.
        // `managed` is the entry under this name with live's id; its fields are parsed above.
        let record = match (identity.managed, &applied) {
            (Some(resource), Some(applied))
                if action == Action::NoOp && entry.is_held_by(resource, applied) =>
            {
                StateRecord::Keep
            }
            _ => StateRecord::Record(Box::new(entry)),
        };
        let mut rename = identity.renamed_from.clone().map(|from| {
            Box::new(Rename {
                from,
                to: environment.name.clone(),
            })
        });
        let mut swap = None;
        let mut to_temporary = None;
        if swapped && let Some(whole) = &rename {
            let temporary = swap_temporary_name(&whole.from, &whole.to);
            to_temporary = Some(Box::new(Step {
                rename: Some(Box::new(Rename {
                    from: whole.from.clone(),
                    to: temporary.clone(),
                })),
                swap: Some(SwapPart::ToTemporary),
                ..Step::new(
                    Action::Rename,
                    &environment.name,
                    environment_id,
                    StateRecord::Carry,
                )
            }));
            rename = Some(Box::new(Rename {
                from: temporary,
                to: environment.name.clone(),
            }));
            swap = Some(SwapPart::FromTemporary);
        }
        let step = Step {
            rename,
            swap,
            changes,
            unchanged,
            wait_for_provisioning,
            owner,
            notes,
            ..Step::new(action, &environment.name, environment_id, record)
        };
        let beside = PlannedEnvironment {
            to_temporary,
            drift,
            warnings,
            errors,
            not_kept,
        };
        // Boxed, and only when there is something: a large plan keeps one pointer per
        // environment while the steps are joined.
        (step, (!beside.is_empty()).then(|| Box::new(beside)))
    }

    /// The stamp the step must write (`None`: live carries the right one already) and why the
    /// environment cannot be planned: another configuration owns it, or it exists unowned and
    /// adoption was not asked for. An unowned environment this state manages was managed before
    /// ownership was recorded, and is stamped without asking.
    fn ownership(
        &self,
        environment: &DesiredEnvironment,
        identity: &Identity<'_>,
        action: Action,
    ) -> (Option<Owner>, Vec<PlanError>) {
        let ours = Owner {
            lineage: self.state.lineage,
            prevent_destroy: environment.lifecycle.prevent_destroy,
        };
        let Some(live) = identity.live else {
            return (Some(ours), Vec::new());
        };
        match Owner::of(live.settings.as_ref()) {
            Some(owner) if owner.lineage != ours.lineage => {
                let doing = match action {
                    Action::Adopt => "adopt",
                    Action::Rename => "rename",
                    _ => "manage",
                };
                let error = PlanError::OwnedElsewhere {
                    name: live.name.clone(),
                    owner,
                    doing,
                };
                (None, vec![error])
            }
            Some(owner) => ((owner != ours).then_some(ours), Vec::new()),
            None if identity.managed.is_none() && !self.adopts() => {
                let error = PlanError::ExistsUnmanaged {
                    name: live.name.clone(),
                };
                (None, vec![error])
            }
            None => (Some(ours), Vec::new()),
        }
    }
}

/// `steps` with each swap's first half (by the index of the step it goes before) in its place.
/// Only a plan with swaps builds the list again.
fn with_halves(steps: Vec<Step>, halves: Vec<(usize, Step)>) -> Vec<Step> {
    if halves.is_empty() {
        return steps;
    }
    let mut joined = Vec::with_capacity(steps.len() + halves.len());
    let mut halves = halves.into_iter().peekable();
    for (index, step) in steps.into_iter().enumerate() {
        if let Some((_, half)) = halves.next_if(|(before, _)| *before == index) {
            joined.push(half);
        }
        joined.push(step);
    }
    joined
}

/// The `ignore_changes` paths of an environment, as value paths; unknown fields are warned.
pub(super) fn ignore_paths(
    environment: &DesiredEnvironment,
) -> (Vec<Vec<String>>, Vec<PlanWarning>) {
    let mut paths = Vec::new();
    let mut warnings = Vec::new();
    for path in &environment.lifecycle.ignore_changes {
        let known = path
            .0
            .first()
            .is_some_and(|field| ManagedField::from_wire_name(field).is_some());
        if known {
            paths.push(path.0.clone());
        } else {
            warnings.push(PlanWarning::UnknownIgnorePath {
                name: environment.name.clone(),
                path: path.to_string(),
            });
        }
    }
    (paths, warnings)
}

/// The value to send for a field once `ignore_changes` has put live's value back under each
/// ignored path (a whole-field path keeps live's value as it is).
pub(super) fn apply_ignores(
    target: Option<Value>,
    live: Option<&Value>,
    field: ManagedField,
    ignored: &[Vec<String>],
) -> Option<Value> {
    let mut after = target;
    for path in ignored {
        let Some((first, rest)) = path.split_first() else {
            continue;
        };
        if first != field.wire_name() {
            continue;
        }
        if rest.is_empty() {
            return live.cloned();
        }
        // A key path only means something inside an object.
        if matches!(after, Some(Value::Object(_)) | None) {
            after = value::set(after, rest, value::get(live, rest).cloned());
        }
    }
    after
}
