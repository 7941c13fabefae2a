//! Disruption: steps that stop running workers. Deleting an environment, or making it
//! `inactive`, stops every worker registered to it; the plan says how many (from the live
//! `active_workers` of the one list call) and, unless the caller allows it, refuses to be made.

use std::fmt;

use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use super::error::{PlanError, PlanErrors};
use super::model::{Action, Plan, PlanWarning, Step, SwapPart};
use crate::api::{Environment, EnvironmentId, Status};

/// What the caller wants done about a plan that stops active workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DisruptionPolicy {
    /// Make no such plan: each disruption is a [`PlanError`] (`apply` and `destroy` without
    /// `--allow-disruption`).
    #[default]
    Refuse,
    /// Make the plan, with a warning that applying it needs `--allow-disruption` (`plan`).
    Warn,
    /// Make the plan; the workers may stop (`--allow-disruption`).
    Allow,
}

/// Why a step stops workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisruptionCause {
    /// The environment is deleted.
    Delete,
    /// The environment's status becomes `inactive`.
    Deactivate,
}

impl DisruptionCause {
    /// The cause as a verb phrase: "deleting" / "deactivating".
    pub(crate) fn doing(self) -> &'static str {
        match self {
            DisruptionCause::Delete => "deleting",
            DisruptionCause::Deactivate => "deactivating",
        }
    }
}

/// One environment whose active workers a plan stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disruption {
    /// The environment's name in the plan.
    pub name: String,
    /// The live environment.
    pub environment_id: EnvironmentId,
    /// Why its workers stop.
    pub cause: DisruptionCause,
    /// How many were active when the plan was made.
    pub active_workers: u32,
}

impl Disruption {
    /// "2 active workers will stop".
    pub fn describe(&self) -> String {
        describe(self.active_workers)
    }
}

impl fmt::Display for Disruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} `{}`: {}",
            self.cause.doing(),
            self.name,
            self.describe()
        )
    }
}

/// "1 active worker will stop" / "N active workers will stop".
pub(crate) fn describe(active_workers: u32) -> String {
    if active_workers == 1 {
        "1 active worker will stop".to_owned()
    } else {
        format!("{active_workers} active workers will stop")
    }
}

/// The line the renderings add under the summary: "Disruption: 3 active workers will stop."
pub fn disruption_summary(active_workers: u32) -> String {
    format!("Disruption: {}.", describe(active_workers))
}

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
