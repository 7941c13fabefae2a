//! Finding the steps of a plan that stop active workers, against the live environments of the
//! one list call, and refusing or warning about them as the caller asked.

use foldhash::HashMap;

use super::disruption::{Disruption, DisruptionCause};
use super::error::{PlanError, PlanErrors};
use super::model::{Action, Plan, Step, SwapPart};
use super::warning::PlanWarning;
use crate::api::Environment;
use crate::model::{EnvironmentId, Status};

/// The disruptions of `steps` against `live`: each delete, and each step that makes an
/// environment `inactive` (not already so), of an environment with active workers.
pub fn disruptions(steps: &[Step], live: &[Environment]) -> Vec<Disruption> {
    let by_id = live
        .iter()
        .map(|environment| (environment.id, environment))
        .collect();
    disruptions_by_id(steps, &by_id)
}

/// [`disruptions`] against live environments already keyed by id.
pub(crate) fn disruptions_by_id(
    steps: &[Step],
    by_id: &HashMap<EnvironmentId, &Environment>,
) -> Vec<Disruption> {
    let mut found: Vec<Disruption> = steps
        .iter()
        .filter(|step| step.swap != Some(SwapPart::ToTemporary))
        .filter_map(|step| {
            let environment = by_id.get(&step.environment_id?)?;
            let active_workers = environment.active_workers.filter(|count| *count > 0)?;
            let cause = if step.action == Action::Delete {
                DisruptionCause::Delete
            } else if step.new_status() == Some(Status::Inactive)
                && environment.status != Status::Inactive
            {
                DisruptionCause::Deactivate
            } else {
                return None;
            };
            Some(Disruption {
                name: step.name.clone(),
                environment_id: environment.id,
                cause,
                active_workers,
            })
        })
        .collect();
    found.sort_by(|left, right| left.name.cmp(&right.name));
    found
}

/// The errors of disruptions that are not allowed.
pub(crate) fn refusals(disruptions: &[Disruption]) -> Vec<PlanError> {
    disruptions
        .iter()
        .map(|disruption| PlanError::Disruption {
            name: disruption.name.clone(),
            doing: disruption.cause.doing(),
            stopping: disruption.describe(),
        })
        .collect()
}

/// The warnings of disruptions a plan shows without refusing them.
pub(crate) fn warnings(disruptions: &[Disruption]) -> Vec<PlanWarning> {
    disruptions
        .iter()
        .map(|disruption| PlanWarning::Disruption {
            name: disruption.name.clone(),
            cause: disruption.cause,
            active_workers: disruption.active_workers,
        })
        .collect()
}

/// Checks a saved plan against live as it is now (workers may have registered since it was
/// made): unless disruption is allowed, by the plan's own settings or by `allow`, a plan whose
/// steps would stop active workers is refused.
pub fn check_saved(plan: &Plan, live: &[Environment], allow: bool) -> Result<(), PlanErrors> {
    if allow || plan.settings().allow_disruption {
        return Ok(());
    }
    let errors = refusals(&disruptions(plan.steps(), live));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(PlanErrors { errors })
    }
}
