//! The state document of DESIGN §7: which live environments this configuration manages and what
//! was last applied to each. Secret values never enter it (they are stored as digests).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::{EnvironmentId, JsonMap};

/// The current state format version.
pub const STATE_VERSION: u32 = 1;

/// Identifies one history of a state: a state file with another lineage is another history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lineage(pub Uuid);

impl std::fmt::Display for Lineage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The state document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Format version ([`STATE_VERSION`]).
    pub version: u32,
    /// The history this state belongs to.
    pub lineage: Lineage,
    /// Incremented on every write.
    pub serial: u64,
    /// The envform version that wrote it.
    pub envform_version: String,
    /// The control plane it describes (a URL, or `embedded:<path>`).
    pub target: String,
    /// Managed environments by name.
    pub resources: BTreeMap<String, ResourceState>,
}

impl State {
    /// An empty state with a fresh lineage, for a configuration never applied.
    pub fn empty(target: impl Into<String>) -> Self {
        Self {
            version: STATE_VERSION,
            lineage: Lineage(Uuid::new_v4()),
            serial: 0,
            envform_version: env!("CARGO_PKG_VERSION").to_owned(),
            target: target.into(),
            resources: BTreeMap::new(),
        }
    }
}

/// What state knows of one managed environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    /// The live environment's id.
    pub id: EnvironmentId,
    /// The managed fields as last applied (secret values as `sha256:` digests).
    pub last_applied: JsonMap,
}
