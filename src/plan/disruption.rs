//! Disruption: steps that stop running workers. Deleting an environment, or making it
//! `inactive`, stops every worker registered to it; the plan says how many (from the live
//! `active_workers` of the one list call) and, unless the caller allows it, refuses to be made.
//! These are the values a plan records; `disruption_check` finds them among a plan's steps.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::EnvironmentId;

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
