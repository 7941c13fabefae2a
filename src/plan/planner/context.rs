//! The planner's inputs and what the phases add to the plan as they run: one value every phase
//! reads and extends, so each phase can live in its own file.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt};

use crate::api::Environment;
use crate::desired::Desired;
use crate::model::{EnvironmentId, ManagedField};
use crate::plan::error::PlanError;
use crate::plan::field::SecretDigests;
use crate::plan::model::{Drift, PlanOptions, Refusal, Step, Unmanaged};
use crate::plan::warning::PlanWarning;
use crate::state::State;

/// The inputs, the lookups built from them once, and what the phases have added so far.
pub(super) struct Planner<'a> {
    /// The desired environments and options.
    pub(super) desired: &'a Desired,
    /// The live environments of the one list call, oldest first.
    pub(super) live: &'a [Environment],
    /// What was applied before.
    pub(super) state: &'a State,
    /// The caller's options (targets, force, disruption).
    pub(super) options: &'a PlanOptions,
    /// How secret values are digested: keyed with the state's salt.
    pub(super) digests: SecretDigests,
    /// The oldest live environment of each name.
    pub(super) live_by_name: HashMap<&'a str, &'a Environment>,
    /// Every live environment by id.
    pub(super) live_by_id: HashMap<EnvironmentId, &'a Environment>,
    /// The names `--target` reaches; `None` without targets.
    pub(super) scope: Option<BTreeSet<String>>,
    /// The steps so far, unordered.
    pub(super) steps: Vec<Step>,
    /// The drift found so far.
    pub(super) drift: Vec<Drift>,
    /// Live environments nothing manages.
    pub(super) unmanaged: Vec<Unmanaged>,
    /// Warnings for every format.
    pub(super) warnings: Vec<PlanWarning>,
    /// Problems that stop the plan; all are reported at once.
    pub(super) errors: Vec<PlanError>,
    /// Live environments other configurations own, left out of the plan.
    pub(super) owned_elsewhere: usize,
    /// Safety checks the plan does not pass.
    pub(super) refusals: Vec<Refusal>,
    /// Fields left alone on some environment because the control plane does not keep them.
    pub(super) not_kept: BTreeSet<ManagedField>,
}

impl<'a> Planner<'a> {
    /// A planner over these inputs, with live indexed by name and by id.
    pub(super) fn new(
        desired: &'a Desired,
        live: &'a [Environment],
        state: &'a State,
        options: &'a PlanOptions,
    ) -> Self {
        let mut live_by_name: HashMap<&str, &Environment> = HashMap::with_capacity(live.len());
        let mut live_by_id = HashMap::with_capacity(live.len());
        let mut duplicates = BTreeSet::new();
        // Outside `options.scope` a live environment is invisible: never listed, adopted or pruned.
        let scope = desired.options.scope.as_ref();
        let visible = live.iter().filter(|environment| {
            scope.is_none_or(|scope| {
                scope.contains(
                    &environment.name,
                    environment.tags.as_deref().unwrap_or_default(),
                )
            })
        });
        for environment in visible {
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
            digests: SecretDigests::of(state),
            live_by_name,
            live_by_id,
            scope: None,
            steps: Vec::new(),
            drift: Vec::new(),
            unmanaged: Vec::new(),
            warnings,
            errors: Vec::new(),
            owned_elsewhere: 0,
            refusals: Vec::new(),
            not_kept: BTreeSet::new(),
        }
    }

    /// Whether live environments nothing owns may be adopted (`--adopt` or `options.adopt`).
    pub(super) fn adopts(&self) -> bool {
        self.options.adopt || self.desired.options.adopt
    }

    /// Whether `name` is within the `--target` scope (everything is, without targets).
    pub(super) fn in_scope(&self, name: &str) -> bool {
        self.scope.as_ref().is_none_or(|scope| scope.contains(name))
    }
}
