//! The planner (docs/src/concepts/plans.md): desired × live × state → an immutable [`Plan`]. Pure
//! and synchronous: no I/O, no clock, and every collection it walks is sorted, so the same inputs
//! give the same plan. Hashed maps serve lookups only.
//!
//! [`diff`] runs the phases in order, each in its own file: `scope` (what `--target` reaches),
//! `identity` (which live environment each desired one is: names, rename claims, swaps),
//! `fields` (the three-way compare of each managed field, with `ignore_changes` and the
//! ownership stamp; it records each environment's `drift` as it goes), `leftovers` (deletes and
//! forgotten state entries), `safety` (thresholds, disruptions); then the order and the base the
//! plan records.

mod context;
mod drift;
mod fields;
mod identity;
mod leftovers;
mod safety;
mod scope;

use std::collections::{BTreeMap, BTreeSet};

use context::Planner;

use crate::api::Environment;
use crate::desired::Desired;
use crate::plan::base::PlanBase;
use crate::plan::disruption::{Disruption, DisruptionPolicy};
use crate::plan::error::PlanErrors;
use crate::plan::model::{Action, Plan, PlanContents, PlanOptions, PlanSettings};
use crate::plan::order;
use crate::plan::warning::PlanWarning;
use crate::state::State;

pub use fields::last_applied;
pub use identity::swap_temporary_name;

/// Plans the changes that make `live` match `desired`, given what `state` says was applied.
pub fn diff(
    desired: &Desired,
    live: &[Environment],
    state: &State,
    options: &PlanOptions,
) -> Result<Plan, PlanErrors> {
    Planner::new(desired, live, state, options).run()
}

impl<'a> Planner<'a> {
    /// The phases, in order; each reads what the ones before it left in the planner.
    fn run(mut self) -> Result<Plan, PlanErrors> {
        self.scope = self.scope();
        let claims = self.rename_claims();
        let taken = self.plan_desired(&claims);
        let accounted = self.plan_leftover_live(taken);
        self.plan_leftover_state(&accounted);
        self.check_thresholds();
        let disruptions = self.check_disruptions();
        self.finish(disruptions)
    }

    /// The plan: its steps ordered, the base recorded, unless a phase found errors.
    fn finish(mut self, disruptions: Vec<Disruption>) -> Result<Plan, PlanErrors> {
        // A new or empty state that adopts is how a typo in a workspace name shows: said first.
        let adopted = self
            .steps
            .iter()
            .filter(|step| step.action == Action::Adopt)
            .count();
        if adopted > 0 && self.state.resources.is_empty() {
            self.warnings
                .insert(0, PlanWarning::AdoptsIntoNewState { count: adopted });
        }
        if !self.not_kept.is_empty() {
            // Said once for the plan, not once per environment.
            self.warnings.push(PlanWarning::NotKept {
                fields: self
                    .not_kept
                    .iter()
                    .map(|field| field.wire_name().to_owned())
                    .collect(),
            });
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
            // No plan to show: its refusals are reported with the rest, all at once.
            self.errors
                .extend(self.refusals.iter().map(crate::plan::Refusal::error));
            return Err(PlanErrors {
                errors: self.errors,
            });
        }
        let settings = PlanSettings {
            prune: self.desired.options.prune,
            force: self.options.force,
            targets: self.options.targets.clone(),
            allow_disruption: self.options.disruption == DisruptionPolicy::Allow,
            adopt: self.adopts(),
            destroy: self.options.destroy,
        };
        Ok(Plan::new(
            base,
            settings,
            PlanContents {
                steps,
                drift: self.drift,
                unmanaged: self.unmanaged,
                warnings: self.warnings,
                disruptions,
                owned_elsewhere: self.owned_elsewhere,
                refusals: self.refusals,
            },
        ))
    }

    /// What the plan was computed against: each live environment it touches, each name it
    /// creates, the state's serial and the files' digest.
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
            owner_lineage: Some(self.state.lineage),
            digest_salt: self
                .state
                .digest_salt
                .filter(|_| self.state.digest_salt_is_new()),
        }
    }
}
