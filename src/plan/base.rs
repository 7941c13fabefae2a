//! What a plan was computed against, and the check that refuses a saved plan once any of it has
//! moved: the state's lineage and serial, the desired files' digest, and each touched environment.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::api::Environment;
use crate::desired::Desired;
use crate::model::DigestSalt;
use crate::state::{Lineage, State};

/// The revisions a plan was computed against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanBase {
    /// The state's lineage; `None` when state was never written (a fresh state has a new one).
    pub lineage: Option<Lineage>,
    /// The state's serial.
    pub serial: u64,
    /// The digest of the desired files ([`Desired::digest`]).
    pub desired_digest: String,
    /// `updated_at` of each live environment the plan changes, adopts or deletes, by name.
    pub touched: BTreeMap<String, Option<Timestamp>>,
    /// Names the plan creates, which must still be free.
    pub absent: BTreeSet<String>,
    /// The lineage the plan stamps on what it creates and adopts; a state never written takes it
    /// when the plan is bound. Absent from plans saved before ownership was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_lineage: Option<Lineage>,
    /// The salt the plan's digests were made with, when the state has not stored one yet (never
    /// written, or written before digests were salted): the state takes it when the plan is
    /// bound. Absent once the state stores its salt, so a saved plan does not carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_salt: Option<DigestSalt>,
}

impl PlanBase {
    /// The lineage a plan records for `state`.
    pub(crate) fn lineage_of(state: &State) -> Option<Lineage> {
        let never_written = state.serial == 0 && state.resources.is_empty();
        (!never_written).then_some(state.lineage)
    }

    /// Fails when anything the plan was computed against has moved since.
    pub fn check(
        &self,
        state: &State,
        desired: &Desired,
        live: &[Environment],
    ) -> Result<(), StalePlan> {
        let mut reasons = Vec::new();
        match self.lineage {
            Some(lineage) if lineage != state.lineage => reasons.push(Staleness::Lineage),
            None if PlanBase::lineage_of(state).is_some() => reasons.push(Staleness::Lineage),
            _ => {}
        }
        if self.serial != state.serial {
            reasons.push(Staleness::Serial {
                planned: self.serial,
                current: state.serial,
            });
        }
        if self.desired_digest != desired.digest {
            reasons.push(Staleness::Desired);
        }
        let by_name: HashMap<&str, &Environment> = live
            .iter()
            .map(|environment| (environment.name.as_str(), environment))
            .collect();
        for (name, updated_at) in &self.touched {
            match by_name.get(name.as_str()) {
                None => reasons.push(Staleness::Gone { name: name.clone() }),
                Some(environment) if environment.updated_at != *updated_at => {
                    reasons.push(Staleness::Changed { name: name.clone() });
                }
                Some(_) => {}
            }
        }
        for name in &self.absent {
            if by_name.contains_key(name.as_str()) {
                reasons.push(Staleness::Taken { name: name.clone() });
            }
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(StalePlan { reasons })
        }
    }
}

/// A saved plan whose base has moved: it must be made again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("the saved plan is stale: {}", self.reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
#[diagnostic(
    code(envform::plan::stale),
    help("run `envform plan` again and review the new plan")
)]
pub struct StalePlan {
    /// Everything that moved.
    pub reasons: Vec<Staleness>,
}

/// One thing that moved since a plan was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staleness {
    /// State is another history.
    Lineage,
    /// State was written since.
    Serial {
        /// The serial the plan saw.
        planned: u64,
        /// The serial now.
        current: u64,
    },
    /// The desired files changed.
    Desired,
    /// A touched environment changed live.
    Changed {
        /// Its name.
        name: String,
    },
    /// A touched environment is gone live.
    Gone {
        /// Its name.
        name: String,
    },
    /// A name the plan creates is taken.
    Taken {
        /// The name.
        name: String,
    },
}

impl fmt::Display for Staleness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Staleness::Lineage => f.write_str("state belongs to another lineage"),
            Staleness::Serial { planned, current } => {
                write!(
                    f,
                    "state serial is {current}, the plan was made at {planned}"
                )
            }
            Staleness::Desired => f.write_str("the desired-state files changed"),
            Staleness::Changed { name } => write!(f, "`{name}` changed live"),
            Staleness::Gone { name } => write!(f, "`{name}` is gone live"),
            Staleness::Taken { name } => write!(f, "`{name}` now exists live"),
        }
    }
}
