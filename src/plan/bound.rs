//! A plan bound to the world as it is now: its base checked against state, the desired files and
//! live, its safety refusals and its disruptions (against the workers live has now) checked, and
//! every step's API call resolved with the real secret values and ownership stamp. This is the only thing `apply` executes, so no caller of
//! the library can execute a stale plan or one whose secrets changed since it was reviewed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::base::{PlanBase, StalePlan};
use super::error::PlanErrors;
use super::field::SecretDigests;
use super::model::{Plan, StepId};
use super::payload::{Payload, ResolveError, resolve_payload};
use crate::api::Environment;
use crate::desired::{Desired, DesiredEnvironment};
use crate::model::EnvironmentId;
use crate::state::State;

/// A plan ready to execute. It holds real secret values, so it is never serialized and its `Debug`
/// shows only the shape of each call.
pub struct BoundPlan {
    plan: Plan,
    payloads: BTreeMap<StepId, Payload>,
    state: State,
}

/// Why a plan cannot be bound.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BindError {
    /// Something the plan was computed against has moved since.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Stale(#[from] StalePlan),
    /// The plan would stop active workers and disruption is not allowed, or it does not pass a
    /// safety check that `--force` did not allow.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Refused(#[from] PlanErrors),
    /// A step's call cannot be built.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Resolve(#[from] ResolveError),
}

impl Plan {
    /// Binds the plan to `desired`, `live` (one list call, made now) and `state` (read under the
    /// lock): refuses it when its base has moved, it did not pass a safety check, or it would stop
    /// workers without `allow_disruption` (or the plan's own approval); then resolves every
    /// step's call.
    pub fn bind(
        self,
        desired: &Desired,
        live: &[Environment],
        state: State,
        allow_disruption: bool,
    ) -> Result<BoundPlan, BindError> {
        self.base().check(&state, desired, live)?;
        if let Some(refused) = self.refused() {
            return Err(BindError::Refused(refused));
        }
        super::disruption_check::check_saved(&self, live, allow_disruption)?;
        let mut state = state;
        // A state that has not stored its salt yet takes the one the plan's digests were made
        // with (the salt made for this run otherwise differs).
        if let Some(salt) = self.base().digest_salt
            && state.digest_salt_is_new()
        {
            state.digest_salt = Some(salt);
        }
        let digests = SecretDigests::of(&state);
        let desired_by_name: HashMap<&str, &DesiredEnvironment> = desired
            .environments
            .iter()
            .map(|environment| (environment.name.as_str(), environment))
            .collect();
        let live_by_id: HashMap<EnvironmentId, &Environment> = live
            .iter()
            .map(|environment| (environment.id, environment))
            .collect();
        let payloads = self
            .steps()
            .iter()
            .map(|step| {
                let desired = desired_by_name.get(step.name.as_str()).copied();
                let live = step
                    .environment_id
                    .and_then(|id| live_by_id.get(&id).copied());
                Ok((step.id, resolve_payload(step, desired, live, digests)?))
            })
            .collect::<Result<_, ResolveError>>()?;
        // A state never written takes the lineage the plan stamped on what it creates and
        // adopts, so that the environments and the state name the same owner.
        if let Some(lineage) = self.base().owner_lineage
            && PlanBase::lineage_of(&state).is_none()
        {
            state.lineage = lineage;
        }
        Ok(BoundPlan {
            plan: self,
            payloads,
            state,
        })
    }
}

impl BoundPlan {
    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Whether executing would change nothing, live or in state: every step a no-op whose record
    /// is already what state holds. Then apply takes the lock and writes nothing.
    pub fn changes_nothing(&self) -> bool {
        if self.plan.has_changes() {
            return false;
        }
        let mut after = self.state.clone();
        for step in self.plan.steps() {
            let Some(id) = step.environment_id else {
                return false;
            };
            step.record_in(&mut after, id);
        }
        after == self.state
    }

    /// Splits into the plan, the call of each step and the state to journal into.
    pub fn into_parts(self) -> (Plan, BTreeMap<StepId, Payload>, State) {
        (self.plan, self.payloads, self.state)
    }
}

impl fmt::Debug for BoundPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `Payload`'s own `Debug` shows the shape of each call, never a body.
        f.debug_struct("BoundPlan")
            .field("steps", &self.plan.steps().len())
            .field("payloads", &self.payloads)
            .field("serial", &self.state.serial)
            .finish_non_exhaustive()
    }
}
