//! The state document (docs/src/reference/state-document.md): which live environments this configuration manages and what
//! was last applied to each. Secret values never enter it (they are stored as digests).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::model::Lineage;
use crate::model::{EnvironmentId, JsonMap};

/// The current state format version.
pub const STATE_VERSION: u32 = 1;

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
    /// Creates started but not confirmed, by name: if a run dies mid-create, the next plan adopts
    /// what the service made instead of creating it twice.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub intents: BTreeMap<String, CreateIntent>,
}

/// A create that was about to be sent (docs/src/concepts/plans.md#apply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateIntent {
    /// When the create was sent.
    pub started_at: jiff::Timestamp,
}

impl State {
    /// An empty state with a fresh lineage, for a configuration never applied.
    pub fn empty(target: impl Into<String>) -> Self {
        Self {
            version: STATE_VERSION,
            lineage: Lineage::new_random(),
            serial: 0,
            envform_version: env!("CARGO_PKG_VERSION").to_owned(),
            target: target.into(),
            resources: BTreeMap::new(),
            intents: BTreeMap::new(),
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
    /// `lifecycle.prevent_destroy` as last applied: it protects the environment even after its
    /// entry leaves the file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prevent_destroy: bool,
    /// The names it depended on when last applied, so that deleting it and them runs in reverse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// The `renamed_from` in effect when last applied: a rename once recorded is not made again,
    /// even when both names exist (as after a swap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
}
