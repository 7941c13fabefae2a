//! What a plan says without being stopped by it: each warning a kind and a message, in every
//! format.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::disruption::{DisruptionCause, describe};

/// Something the user should know that does not stop the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanWarning {
    /// `renamed_from` names an environment, but the new name exists too.
    RenameIgnored {
        /// The desired name.
        name: String,
        /// The `renamed_from` name.
        renamed_from: String,
    },
    /// Live has two environments with one name; the first is used.
    DuplicateLiveName {
        /// The name.
        name: String,
    },
    /// An `ignore_changes` path that names no managed field.
    UnknownIgnorePath {
        /// The environment.
        name: String,
        /// The path as written.
        path: String,
    },
    /// The plan covers only some environments.
    Targeted {
        /// The `--target` names.
        targets: Vec<String>,
    },
    /// State is new or empty, and the plan adopts live environments into it.
    AdoptsIntoNewState {
        /// How many it adopts.
        count: usize,
    },
    /// The control plane did not keep these fields when they were sent: they are not managed
    /// there (state records it; see docs/src/reference/compatibility.md).
    NotKept {
        /// The fields' wire names.
        fields: Vec<String>,
    },
    /// The plan stops active workers; applying it needs `--allow-disruption`.
    Disruption {
        /// The environment.
        name: String,
        /// Why its workers stop.
        cause: DisruptionCause,
        /// How many are active.
        active_workers: u32,
    },
}

impl fmt::Display for PlanWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanWarning::RenameIgnored { name, renamed_from } => write!(
                f,
                "`{name}` has `renamed_from: {renamed_from}`, but `{name}` already exists: \
                 it is used as is, and `{renamed_from}` is handled on its own"
            ),
            PlanWarning::DuplicateLiveName { name } => write!(
                f,
                "more than one live environment is named `{name}`; only the oldest is considered"
            ),
            PlanWarning::UnknownIgnorePath { name, path } => write!(
                f,
                "`{name}`: `lifecycle.ignore_changes` entry `{path}` names no managed field"
            ),
            PlanWarning::AdoptsIntoNewState { count } => write!(
                f,
                "state is new or empty, and this plan adopts {count} live environment{}: check \
                 that the state workspace is the one this configuration uses",
                if *count == 1 { "" } else { "s" }
            ),
            PlanWarning::Targeted { targets } => write!(
                f,
                "the plan is limited to {} and what they depend on (--target); \
                 other changes may be pending",
                targets.join(", ")
            ),
            PlanWarning::NotKept { fields } => {
                let named: Vec<String> = fields.iter().map(|field| format!("`{field}`")).collect();
                let (list, verb) = match named.as_slice() {
                    [one] => (one.clone(), "is"),
                    [rest @ .., last] => (format!("{} and {last}", rest.join(", ")), "are"),
                    [] => (String::new(), "are"),
                };
                write!(
                    f,
                    "{list} {verb} not kept by this control plane; not managed there \
                     (managed again once it shows a value)"
                )
            }
            PlanWarning::Disruption {
                name,
                cause,
                active_workers,
            } => write!(
                f,
                "{} `{name}`: {}; apply and destroy need --allow-disruption",
                cause.doing(),
                describe(*active_workers)
            ),
        }
    }
}
