//! The planner (docs/src/concepts/plans.md): desired × live × state → an immutable [`Plan`]. Pure and
//! synchronous: no I/O, no clock, and every collection it walks is sorted, so the same inputs give
//! the same plan. Hashed maps serve lookups only.
//!
//! Identity is the name. Each desired environment is matched to a live one (by name, or by
//! `renamed_from`), then each managed field is diffed three ways: desired, live, last applied.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::base::PlanBase;
use super::disruption::DisruptionPolicy;
use super::disruption_check;
use super::error::{DefaultOperation, PlanError, PlanErrors, ThresholdKind, source_of};
use super::model::{
    Action, Drift, DriftResolution, FieldChange, Plan, PlanOptions, PlanSettings, PlanWarning,
    Rename, StateRecord, Step, StepId, StepNote, SwapPart, Unmanaged,
};
use super::order;
use super::value::{self, ValuePath};
use crate::api::{Environment, EnvironmentId, JsonMap, Status};
use crate::desired::{Desired, DesiredEnvironment, Reference, Threshold};
use crate::model::ManagedField;
use crate::state::{ResourceState, State};

/// The name of the environment every organization keeps; it is never deleted.
pub const DEFAULT_ENVIRONMENT: &str = "default";

/// Longest environment name the service accepts.
const MAX_NAME_CHARS: usize = 100;

/// Plans the changes that make `live` match `desired`, given what `state` says was applied.
pub fn diff(
    desired: &Desired,
    live: &[Environment],
    state: &State,
    options: &PlanOptions,
) -> Result<Plan, PlanErrors> {
    Planner::new(desired, live, state, options).run()
}

/// The temporary name a rename from `from` to `to` goes through when it is part of a swap:
/// derived from both names, so a plan made after an interrupted swap finds it again.
pub fn swap_temporary_name(from: &str, to: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(from.as_bytes());
    hasher.update([0]);
    hasher.update(to.as_bytes());
    let short = hex::encode(&hasher.finalize()[..4]);
    let suffix = format!("-envform-swap-{short}");
    let room = MAX_NAME_CHARS.saturating_sub(suffix.chars().count());
    let prefix: String = to.chars().take(room).collect();
    format!("{prefix}{suffix}")
}

/// The last-applied document a desired environment records when it is created: its managed
/// fields in the file, secrets digested. (Steps carry the exact document to record, which also
/// reflects `ignore_changes`.)
pub fn last_applied(environment: &DesiredEnvironment) -> JsonMap {
    ManagedField::ALL
        .into_iter()
        .filter_map(|field| {
            let value = field.desired_value(&environment.fields)?;
            Some((field.wire_name().to_owned(), value))
        })
        .collect()
}

/// Fewest desired environments worth a run on another thread.
const ENVIRONMENTS_PER_RUN: usize = 512;

/// What planning one desired environment adds to the plan.
struct PlannedEnvironment {
    /// The live environment it took.
    live: Option<EnvironmentId>,
    /// Its step, or two for a swap.
    steps: Vec<Step>,
    drift: Vec<Drift>,
    warnings: Vec<PlanWarning>,
}

/// Which live environment a desired one is, and how it was found.
struct Identity<'a> {
    live: Option<&'a Environment>,
    /// The live name when it is renamed.
    renamed_from: Option<String>,
    /// The state entry, when it records this very live environment.
    managed: Option<&'a ResourceState>,
    notes: Vec<StepNote>,
}

/// One managed field of a desired environment set beside live.
struct Compared {
    field: ManagedField,
    /// Whether the desired file sets the field (else it is cleared, or ignored).
    in_file: bool,
    /// Live's value, when it is not `after`.
    live_if_different: Option<Option<Value>>,
    /// The value the plan leaves.
    after: Option<Value>,
}

struct Planner<'a> {
    desired: &'a Desired,
    live: &'a [Environment],
    state: &'a State,
    options: &'a PlanOptions,
    /// The oldest live environment of each name.
    live_by_name: HashMap<&'a str, &'a Environment>,
    /// Every live environment by id.
    live_by_id: HashMap<EnvironmentId, &'a Environment>,
    scope: Option<BTreeSet<String>>,
    steps: Vec<Step>,
    drift: Vec<Drift>,
    unmanaged: Vec<Unmanaged>,
    warnings: Vec<PlanWarning>,
    errors: Vec<PlanError>,
}

impl<'a> Planner<'a> {
    fn new(
        desired: &'a Desired,
        live: &'a [Environment],
        state: &'a State,
        options: &'a PlanOptions,
    ) -> Self {
        let mut live_by_name: HashMap<&str, &Environment> = HashMap::with_capacity(live.len());
        let mut live_by_id = HashMap::with_capacity(live.len());
        let mut duplicates = BTreeSet::new();
        for environment in live {
            live_by_id.insert(environment.id, environment);
            // Live comes ordered by creation: the oldest of a duplicated name wins.
            if live_by_name.contains_key(environment.name.as_str()) {
                duplicates.insert(environment.name.clone());
            } else {
                live_by_name.insert(&environment.name, environment);
            }
        }
        let warnings = duplicates
            .into_iter()
            .map(|name| PlanWarning::DuplicateLiveName { name })
            .collect();
        Self {
            desired,
            live,
            state,
            options,
            live_by_name,
            live_by_id,
            scope: None,
            steps: Vec::new(),
            drift: Vec::new(),
            unmanaged: Vec::new(),
            warnings,
            errors: Vec::new(),
        }
    }

    fn run(mut self) -> Result<Plan, PlanErrors> {
        self.scope = self.scope();
        let claims = self.rename_claims();
        let swapped = swapped_renames(&claims);

        let mut desired: Vec<&DesiredEnvironment> = self
            .desired
            .environments
            .iter()
            .filter(|environment| self.in_scope(&environment.name))
            .collect();
        desired.sort_by(|left, right| left.name.cmp(&right.name));

        // Environments are planned independently of each other: large plans on every core.
        let planned = crate::parallel::in_runs(
            &desired,
            ENVIRONMENTS_PER_RUN,
            |run| -> Vec<PlannedEnvironment> {
                run.iter()
                    .map(|environment| {
                        let identity = self.identify(environment, &claims);
                        let swapped = swapped.contains(&environment.name);
                        self.plan_environment(environment, identity, swapped)
                    })
                    .collect()
            },
        );
        // Membership only: hashed sets, so nothing is copied or compared character by character.
        let mut used_live: HashSet<EnvironmentId> = HashSet::with_capacity(desired.len());
        let mut accounted: HashSet<&str> = HashSet::with_capacity(desired.len());
        self.steps.reserve(desired.len());
        for (environment, planned) in desired.iter().zip(planned.into_iter().flatten()) {
            used_live.extend(planned.live);
            accounted.insert(&environment.name);
            accounted.extend(claims.get(&environment.name).map(String::as_str));
            self.steps.extend(planned.steps);
            self.drift.extend(planned.drift);
            self.warnings.extend(planned.warnings);
        }
        self.plan_leftover_live(&used_live, &mut accounted);
        self.plan_leftover_state(&accounted);
        self.check_thresholds();
        let disruptions = disruption_check::disruptions_by_id(&self.steps, &self.live_by_id);
        match self.options.disruption {
            DisruptionPolicy::Refuse => {
                self.errors.extend(disruption_check::refusals(&disruptions))
            }
            DisruptionPolicy::Warn => self
                .warnings
                .extend(disruption_check::warnings(&disruptions)),
            DisruptionPolicy::Allow => {}
        }
        self.drift
            .sort_by(|left, right| (&left.name, &left.path).cmp(&(&right.name, &right.path)));

        let base = self.base();
        let steps = std::mem::take(&mut self.steps);
        let steps = match order::schedule(steps, self.desired, self.state, self.live.is_empty()) {
            Ok(steps) => steps,
            Err(cycles) => {
                self.errors.extend(cycles);
                Vec::new()
            }
        };
        if !self.errors.is_empty() {
            return Err(PlanErrors {
                errors: self.errors,
            });
        }
        let settings = PlanSettings {
            prune: self.desired.options.prune,
            force: self.options.force,
            targets: self.options.targets.clone(),
            allow_disruption: self.options.disruption == DisruptionPolicy::Allow,
        };
        Ok(Plan::new(
            base,
            settings,
            steps,
            self.drift,
            self.unmanaged,
            self.warnings,
            disruptions,
        ))
    }

    fn in_scope(&self, name: &str) -> bool {
        self.scope.as_ref().is_none_or(|scope| scope.contains(name))
    }

    /// The names `--target` reaches: the targets, what they depend on, and the renames they are
    /// part of. `None` when there are no targets.
    fn scope(&mut self) -> Option<BTreeSet<String>> {
        if self.options.targets.is_empty() {
            return None;
        }
        let known: BTreeSet<&str> = self
            .desired
            .environments
            .iter()
            .map(|environment| environment.name.as_str())
            .chain(self.state.resources.keys().map(String::as_str))
            .chain(self.live_by_name.keys().copied())
            .collect();
        let mut pending: Vec<String> = Vec::new();
        for target in &self.options.targets {
            if known.contains(target.as_str()) {
                pending.push(target.clone());
            } else {
                let help = known
                    .iter()
                    .filter(|name| strsim::levenshtein(name, target) <= 2)
                    .min_by_key(|name| strsim::levenshtein(name, target))
                    .map(|name| format!("did you mean `{name}`?"));
                self.errors.push(PlanError::UnknownTarget {
                    name: target.clone(),
                    help,
                });
            }
        }
        let mut scope = BTreeSet::new();
        while let Some(name) = pending.pop() {
            if !scope.insert(name.clone()) {
                continue;
            }
            for environment in &self.desired.environments {
                let renamed_from = environment.renamed_from.as_ref();
                if environment.name == name {
                    pending.extend(environment.depends_on.iter().map(|r| r.name.clone()));
                    if let Some(from) = renamed_from {
                        pending.push(from.name.clone());
                        pending.push(swap_temporary_name(&from.name, &name));
                    }
                } else if renamed_from.is_some_and(|from| from.name == name) {
                    pending.push(environment.name.clone());
                }
            }
        }
        self.warnings.push(PlanWarning::Targeted {
            targets: self.options.targets.clone(),
        });
        Some(scope)
    }

    /// Which live name each renamed desired environment takes over (desired name → live name).
    fn rename_claims(&mut self) -> BTreeMap<String, String> {
        let mut renamed: Vec<(&DesiredEnvironment, &Reference)> = self
            .desired
            .environments
            .iter()
            .filter_map(|environment| Some((environment, environment.renamed_from.as_ref()?)))
            .collect();
        renamed.sort_by(|(left, _), (right, _)| left.name.cmp(&right.name));
        let mut claims: BTreeMap<String, String> = BTreeMap::new();
        for (environment, from) in renamed {
            if from.name == environment.name || !self.in_scope(&environment.name) {
                continue;
            }
            if self.rename_recorded(environment, &from.name) {
                continue;
            }
            // The temporary name of an interrupted swap first: it can only be this rename's.
            let source = [
                swap_temporary_name(&from.name, &environment.name),
                from.name.clone(),
            ]
            .into_iter()
            .find(|name| self.live_by_name.contains_key(name.as_str()));
            let Some(source) = source else {
                // Nothing to rename: done already, or the old one is gone.
                continue;
            };
            if source == DEFAULT_ENVIRONMENT {
                self.errors.push(PlanError::ProtectedDefault {
                    operation: DefaultOperation::RenamedAway,
                    source_code: source_of(&self.desired.sources, from.location),
                    span: Some(from.location.span),
                });
                continue;
            }
            claims.insert(environment.name.clone(), source);
        }

        // A renamed environment whose new name exists live, and is not itself renamed away, keeps
        // that one: the rename is done or the name is taken. Dropping a claim can free another.
        let mut ignored: BTreeSet<String> = BTreeSet::new();
        loop {
            let sources: BTreeSet<&String> = claims.values().collect();
            let keep_own: Vec<String> = claims
                .keys()
                .filter(|name| {
                    self.live_by_name.contains_key(name.as_str()) && !sources.contains(name)
                })
                .cloned()
                .collect();
            if keep_own.is_empty() {
                break;
            }
            for name in keep_own {
                claims.remove(&name);
                ignored.insert(name);
            }
        }

        // Two environments renamed from one: the first (by name) keeps it.
        let mut by_source: BTreeMap<String, String> = BTreeMap::new();
        let mut conflicts = Vec::new();
        for (name, source) in &claims {
            if let Some(first) = by_source.get(source) {
                conflicts.push((source.clone(), first.clone(), name.clone()));
            } else {
                by_source.insert(source.clone(), name.clone());
            }
        }
        for (source, first, second) in conflicts {
            claims.remove(&second);
            let location = self
                .desired
                .environment(&second)
                .and_then(|environment| environment.renamed_from.as_ref())
                .map(|from| from.location);
            self.errors.push(PlanError::RenameConflict {
                from: source,
                first,
                second,
                source_code: location.and_then(|l| source_of(&self.desired.sources, l)),
                span: location.map(|l| l.span),
            });
        }
        for name in ignored {
            if let Some(from) = self
                .desired
                .environment(&name)
                .and_then(|environment| environment.renamed_from.as_ref())
            {
                self.warnings.push(PlanWarning::RenameIgnored {
                    name: name.clone(),
                    renamed_from: from.name.clone(),
                });
            }
        }
        claims
    }

    /// Whether state records this very rename as applied to the live environment of the new name.
    fn rename_recorded(&self, environment: &DesiredEnvironment, from: &str) -> bool {
        let Some(live) = self.live_by_name.get(environment.name.as_str()) else {
            return false;
        };
        self.state
            .resources
            .get(&environment.name)
            .is_some_and(|resource| {
                resource.id == live.id && resource.renamed_from.as_deref() == Some(from)
            })
    }

    fn identify(
        &self,
        environment: &DesiredEnvironment,
        claims: &BTreeMap<String, String>,
    ) -> Identity<'a> {
        let name = environment.name.as_str();
        let renamed_from = claims.get(name).cloned();
        let live_name = renamed_from.as_deref().unwrap_or(name);
        // A name another environment is renamed away from is free: this one is created anew.
        let renamed_away = renamed_from.is_none() && claims.values().any(|source| source == name);
        let (live, recorded) = if renamed_away {
            (None, None)
        } else {
            (
                self.live_by_name.get(live_name).copied(),
                self.state.resources.get(live_name),
            )
        };
        let managed = match (live, recorded) {
            (Some(live), Some(recorded)) if recorded.id == live.id => Some(recorded),
            _ => None,
        };
        let mut notes = Vec::new();
        match (live, recorded, managed) {
            (None, Some(_), _) => notes.push(StepNote::Recreate),
            (Some(_), Some(_), None) => notes.push(StepNote::ReplacedOutside),
            (Some(_), None, _) if renamed_from.is_some() => notes.push(StepNote::TakenOver),
            _ => {}
        }
        Identity {
            live,
            renamed_from,
            managed,
            notes,
        }
    }

    /// The step (two for a swap) and the drift of one desired environment.
    fn plan_environment(
        &self,
        environment: &DesiredEnvironment,
        identity: Identity<'a>,
        swapped: bool,
    ) -> PlannedEnvironment {
        let (ignored, warnings) = ignore_paths(environment);
        let mut steps = Vec::new();
        let mut drift = Vec::new();
        // The fields applied before, found in one pass over the record rather than one lookup
        // per field.
        let mut applied_fields: Vec<ManagedField> = Vec::new();
        if let Some(resource) = identity.managed {
            applied_fields.extend(resource.last_applied.iter().filter_map(|(name, value)| {
                ManagedField::from_wire_name(name).filter(|_| !value.is_null())
            }));
        }
        let mut changes = Vec::new();
        let mut unchanged = Vec::new();
        let mut recorded = JsonMap::new();
        // Each field compared against live, kept for the drift check before `after` moves into
        // the record: values are built once and cloned only into changes.
        let mut compared: Vec<Compared> = Vec::with_capacity(ManagedField::ALL.len());
        for field in ManagedField::ALL {
            let desired = field.desired_value(&environment.fields);
            let in_file = desired.is_some();
            let was_applied = applied_fields.contains(&field);
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
                let before = field.live_value(live);
                (
                    apply_ignores(target, before.as_ref(), field, &ignored),
                    Some(before),
                )
            } else {
                (target, None)
            };
            let unchanged_live = match &before {
                Some(before) => *before == after,
                None => field.live_equals(live, after.as_ref()),
            };
            let live_if_different = if unchanged_live {
                if in_file {
                    unchanged.push(field);
                }
                None
            } else {
                let before = before.unwrap_or_else(|| field.live_value(live));
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

        if let (Some(live), Some(resource)) = (identity.live, identity.managed) {
            record_drift(&mut drift, live, resource, &compared, &ignored);
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

        let action = match (&identity.live, &identity.renamed_from) {
            (None, _) => Action::Create,
            (Some(_), Some(_)) => Action::Rename,
            (Some(_), None) if identity.managed.is_none() => Action::Adopt,
            (Some(_), None) if changes.is_empty() => Action::NoOp,
            (Some(_), None) => Action::Update,
        };
        let wait_for_provisioning = identity.live.is_some_and(|live| {
            live.status == Status::Provisioning
                && changes
                    .iter()
                    .any(|change| change.field == ManagedField::Status)
        });
        let record = StateRecord::Record {
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
        let environment_id = identity.live.map(|live| live.id);
        let mut rename = identity.renamed_from.clone().map(|from| Rename {
            from,
            to: environment.name.clone(),
        });
        let mut swap = None;
        if swapped && let Some(whole) = &rename {
            let temporary = swap_temporary_name(&whole.from, &whole.to);
            steps.push(Step {
                id: StepId(0),
                action: Action::Rename,
                name: environment.name.clone(),
                environment_id,
                rename: Some(Rename {
                    from: whole.from.clone(),
                    to: temporary.clone(),
                }),
                swap: Some(SwapPart::ToTemporary),
                changes: Vec::new(),
                unchanged: Vec::new(),
                depends_on: Vec::new(),
                wait_for_provisioning: false,
                record: StateRecord::Carry,
                notes: Vec::new(),
            });
            rename = Some(Rename {
                from: temporary,
                to: environment.name.clone(),
            });
            swap = Some(SwapPart::FromTemporary);
        }
        steps.push(Step {
            id: StepId(0),
            action,
            name: environment.name.clone(),
            environment_id,
            rename,
            swap,
            changes,
            unchanged,
            depends_on: Vec::new(),
            wait_for_provisioning,
            record,
            notes: identity.notes,
        });
        PlannedEnvironment {
            live: environment_id,
            steps,
            drift,
            warnings,
        }
    }

    /// Live environments no desired one took: deleted when state manages them (or with
    /// `options.prune`), otherwise listed as unmanaged.
    fn plan_leftover_live<'s>(
        &mut self,
        used_live: &HashSet<EnvironmentId>,
        accounted: &mut HashSet<&'s str>,
    ) where
        'a: 's,
    {
        let mut leftover: Vec<&Environment> = self
            .live_by_name
            .values()
            .copied()
            .filter(|live| !used_live.contains(&live.id) && self.in_scope(&live.name))
            .collect();
        leftover.sort_by(|left, right| left.name.cmp(&right.name));
        for live in leftover {
            let recorded = self
                .state
                .resources
                .get(&live.name)
                .filter(|resource| resource.id == live.id);
            let note = match recorded {
                Some(resource) => {
                    if live.name == DEFAULT_ENVIRONMENT {
                        self.errors.push(PlanError::ProtectedDefault {
                            operation: DefaultOperation::Deleted,
                            source_code: None,
                            span: None,
                        });
                        continue;
                    }
                    if resource.prevent_destroy {
                        self.errors.push(PlanError::PreventDestroy {
                            name: live.name.clone(),
                            source_code: None,
                            span: None,
                        });
                        continue;
                    }
                    None
                }
                None if self.desired.options.prune && live.name != DEFAULT_ENVIRONMENT => {
                    Some(StepNote::Pruned)
                }
                None => {
                    self.unmanaged.push(Unmanaged {
                        name: live.name.clone(),
                        environment_id: live.id,
                        status: live.status,
                    });
                    continue;
                }
            };
            accounted.insert(&live.name);
            let changes = ManagedField::ALL
                .into_iter()
                .filter_map(|field| {
                    Some(FieldChange {
                        field,
                        before: Some(field.live_value(live)?),
                        after: None,
                    })
                })
                .collect();
            self.steps.push(Step {
                id: StepId(0),
                action: Action::Delete,
                name: live.name.clone(),
                environment_id: Some(live.id),
                rename: None,
                swap: None,
                changes,
                unchanged: Vec::new(),
                depends_on: Vec::new(),
                wait_for_provisioning: false,
                record: StateRecord::Forget,
                notes: note.into_iter().collect(),
            });
        }
    }

    /// State entries nothing above used: their environment is gone live; only state changes.
    fn plan_leftover_state(&mut self, accounted: &HashSet<&str>) {
        for (name, resource) in &self.state.resources {
            if accounted.contains(name.as_str()) || !self.in_scope(name) {
                continue;
            }
            self.steps.push(Step {
                id: StepId(0),
                action: Action::NoOp,
                name: name.clone(),
                environment_id: Some(resource.id),
                rename: None,
                swap: None,
                changes: Vec::new(),
                unchanged: Vec::new(),
                depends_on: Vec::new(),
                wait_for_provisioning: false,
                record: StateRecord::Forget,
                notes: vec![StepNote::GoneOutside],
            });
        }
    }

    /// octoDNS-style safety: too large a share of managed environments changed at once.
    fn check_thresholds(&mut self) {
        if self.options.force {
            return;
        }
        let managed = self.state.resources.len();
        let count = |actions: &[Action]| {
            self.steps
                .iter()
                .filter(|step| step.swap != Some(SwapPart::ToTemporary))
                .filter(|step| actions.contains(&step.action))
                .count()
        };
        let checks = [
            (
                ThresholdKind::Delete,
                count(&[Action::Delete]),
                self.desired.options.delete_threshold,
            ),
            (
                ThresholdKind::Update,
                count(&[Action::Update, Action::Rename]),
                self.desired.options.update_threshold,
            ),
        ];
        for (kind, count, threshold) in checks {
            if exceeds(threshold, count, managed) {
                self.errors.push(PlanError::Threshold {
                    kind,
                    count,
                    managed,
                    max_fraction: threshold.max_fraction,
                });
            }
        }
    }

    fn base(&self) -> PlanBase {
        let mut touched = BTreeMap::new();
        let mut absent = BTreeSet::new();
        for step in &self.steps {
            let live = step.environment_id.and_then(|id| self.live_by_id.get(&id));
            match live {
                Some(live) if step.calls_api() || step.action == Action::Adopt => {
                    touched.insert(live.name.clone(), live.updated_at);
                }
                Some(_) => {}
                // A name live has now is freed by a rename in this plan; that environment is
                // touched, so its moving is what makes the plan stale.
                None if step.action == Action::Create
                    && !self.live_by_name.contains_key(step.name.as_str()) =>
                {
                    absent.insert(step.name.clone());
                }
                None => {}
            }
            if let Some(rename) = &step.rename
                && !self.live_by_name.contains_key(rename.to.as_str())
                && step.swap.is_none()
            {
                absent.insert(rename.to.clone());
            }
        }
        PlanBase {
            lineage: PlanBase::lineage_of(self.state),
            serial: self.state.serial,
            desired_digest: self.desired.digest.clone(),
            touched,
            absent,
        }
    }
}

/// The `ignore_changes` paths of an environment, as value paths; unknown fields are warned.
fn ignore_paths(environment: &DesiredEnvironment) -> (Vec<Vec<String>>, Vec<PlanWarning>) {
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

/// Drift: every leaf of a last-applied field that live no longer has.
fn record_drift(
    drift: &mut Vec<Drift>,
    live: &Environment,
    resource: &ResourceState,
    compared: &[Compared],
    ignored: &[Vec<String>],
) {
    for (wire_name, applied) in &resource.last_applied {
        let Some(field) = ManagedField::from_wire_name(wire_name) else {
            continue;
        };
        // `provisioning` is the service's own transition, not a change made by someone.
        if field == ManagedField::Status && live.status == Status::Provisioning {
            continue;
        }
        let applied = (!applied.is_null()).then_some(applied);
        let found = compared.iter().find(|compared| compared.field == field);
        let now_owned;
        let (now, after) = match found {
            Some(compared) => {
                let after = compared.after.as_ref();
                let now = compared
                    .live_if_different
                    .as_ref()
                    .map_or(after, Option::as_ref);
                (now, after)
            }
            // A field left alone stays as live has it.
            None => {
                now_owned = field.live_value(live);
                (now_owned.as_ref(), now_owned.as_ref())
            }
        };
        for difference in value::leaf_differences(applied, now) {
            let mut path = vec![wire_name.clone()];
            path.extend(difference.path.iter().cloned());
            let resolution = if ignored.iter().any(|prefix| path.starts_with(prefix)) {
                DriftResolution::Ignored
            } else if value::get(after, &difference.path) == difference.after.as_ref() {
                DriftResolution::Accepted
            } else {
                DriftResolution::Overwritten
            };
            drift.push(Drift {
                name: live.name.clone(),
                path: ValuePath(path),
                last_applied: difference.before,
                live: difference.after,
                resolution,
            });
        }
    }
}

fn exceeds(threshold: Threshold, count: usize, managed: usize) -> bool {
    // Counts are small; f64 holds them exactly.
    managed >= threshold.min_existing
        && managed > 0
        && count as f64 > threshold.max_fraction * managed as f64
}

/// The value to send for a field once `ignore_changes` has put live's value back under each
/// ignored path (a whole-field path keeps live's value as it is).
fn apply_ignores(
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

/// Desired names whose rename is part of a cycle (a swap): each cycle is broken at its smallest
/// name, which goes through a temporary name.
fn swapped_renames(claims: &BTreeMap<String, String>) -> BTreeSet<String> {
    // Renames as old name → new name; each name is freed and claimed at most once.
    let next: BTreeMap<&str, &str> = claims
        .iter()
        .map(|(to, from)| (from.as_str(), to.as_str()))
        .collect();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut broken = BTreeSet::new();
    for &start in next.keys() {
        if seen.contains(start) {
            continue;
        }
        let mut path = vec![start];
        let mut current = start;
        while let Some(&to) = next.get(current) {
            if seen.contains(to) {
                break;
            }
            if let Some(at) = path.iter().position(|&name| name == to) {
                // path[at..] is a cycle of old names; each renames to the next.
                if let Some(smallest) = path[at..].iter().filter_map(|name| next.get(name)).min() {
                    broken.insert((*smallest).to_owned());
                }
                break;
            }
            path.push(to);
            current = to;
        }
        seen.extend(path);
    }
    broken
}
