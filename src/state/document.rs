//! The state document (docs/src/reference/state-document.md): which live environments this configuration manages and what
//! was last applied to each. Secret values never enter it (they are stored as digests).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{AppliedFields, StateError};
pub use crate::model::Lineage;
use crate::model::{DigestSalt, EnvironmentId};

/// The current state format version.
pub const STATE_VERSION: u32 = 1;

/// The state document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Format version ([`STATE_VERSION`]).
    pub version: u32,
    /// The history this state belongs to.
    pub lineage: Lineage,
    /// The key of the digests that stand in for `env_vars` values, made with the lineage; `None`
    /// in a state written before digests were salted (its digests are plain SHA-256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_salt: Option<DigestSalt>,
    /// Whether `digest_salt` was made for this run and is not stored yet (a state written before
    /// digests were salted): the next save writes it, and a saved plan carries it till then.
    #[serde(skip)]
    pub digest_salt_unsaved: bool,
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
    /// Fields a control plane was sent and did not keep, by target, then by wire name: the plan
    /// stops managing them there rather than showing the same change forever. Dropped when the
    /// target changes or the control plane is seen keeping the field.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unkept_fields: BTreeMap<String, BTreeSet<String>>,
}

/// A create that was about to be sent (docs/src/concepts/plans.md#apply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateIntent {
    /// When the create was sent.
    pub started_at: jiff::Timestamp,
}

impl State {
    /// The state as loaded, or an empty one for `target` when none was written. A state that
    /// manages environments on another control plane is refused (its plan would re-create them
    /// all), unless the caller says the control plane moved (`moved`); then it takes the new
    /// target with its next write.
    pub fn for_target(
        stored: Option<State>,
        target: &str,
        moved: bool,
    ) -> Result<State, StateError> {
        let Some(mut state) = stored else {
            return Ok(State::empty(target));
        };
        if !state.resources.is_empty() && !same_target(&state.target, target) && !moved {
            return Err(StateError::TargetChanged {
                recorded: state.target,
                target: target.to_owned(),
            });
        }
        state.target = target.to_owned();
        if state.digest_salt.is_none() {
            // Written before digests were salted: salted from now on, with a salt made now.
            state.digest_salt = Some(DigestSalt::random());
            state.digest_salt_unsaved = true;
        }
        // What another control plane did not keep says nothing about this one.
        state
            .unkept_fields
            .retain(|recorded, _| same_target(recorded, target));
        Ok(state)
    }

    /// An empty state with a fresh lineage, for a configuration never applied.
    pub fn empty(target: impl Into<String>) -> Self {
        Self {
            version: STATE_VERSION,
            lineage: Lineage::new_random(),
            digest_salt: Some(DigestSalt::random()),
            digest_salt_unsaved: false,
            serial: 0,
            envform_version: env!("CARGO_PKG_VERSION").to_owned(),
            target: target.into(),
            resources: BTreeMap::new(),
            intents: BTreeMap::new(),
            unkept_fields: BTreeMap::new(),
        }
    }

    /// Whether the salt is not stored yet: the state was never written, or was written before
    /// digests were salted. A plan made against it carries the salt, for `apply` to store.
    pub fn digest_salt_is_new(&self) -> bool {
        let never_written = self.serial == 0 && self.resources.is_empty();
        self.digest_salt_unsaved || never_written
    }

    /// The fields this state's target was sent and did not keep.
    pub fn unkept_here(&self) -> Option<&BTreeSet<String>> {
        self.unkept_fields
            .iter()
            .find(|(recorded, _)| same_target(recorded, &self.target))
            .map(|(_, fields)| fields)
            .filter(|fields| !fields.is_empty())
    }

    /// Records what the target did (`kept`) and did not keep (`unkept`) of what it was sent.
    /// Returns whether the record changed.
    pub fn note_kept_fields(&mut self, kept: &[String], unkept: &[String]) -> bool {
        let key = self
            .unkept_fields
            .keys()
            .find(|recorded| same_target(recorded, &self.target))
            .cloned()
            .unwrap_or_else(|| self.target.clone());
        let fields = self.unkept_fields.entry(key.clone()).or_default();
        let before = fields.clone();
        fields.extend(unkept.iter().cloned());
        for field in kept {
            fields.remove(field);
        }
        let changed = *fields != before;
        if fields.is_empty() {
            self.unkept_fields.remove(&key);
        }
        changed
    }
}

/// What state knows of one managed environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    /// The live environment's id.
    pub id: EnvironmentId,
    /// The managed fields as last applied (secret values as `hmac-sha256:` digests keyed
    /// with the state's salt; `sha256:` in a state written before digests were salted).
    pub last_applied: AppliedFields,
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

/// Whether two target descriptions name one control plane: URLs up to a trailing slash, embedded
/// databases by absolute path (a path recorded relative, as older versions did, is read from the
/// working directory, as they meant it).
fn same_target(recorded: &str, target: &str) -> bool {
    let normalize = |text: &str| match text.strip_prefix("embedded:") {
        Some(path) => format!(
            "embedded:{}",
            std::path::absolute(path)
                .unwrap_or_else(|_| path.into())
                .display()
        ),
        None => text.trim_end_matches('/').to_owned(),
    };
    normalize(recorded) == normalize(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn managing(target: &str) -> State {
        let mut state = State::empty(target);
        state.resources.insert(
            "app".to_owned(),
            ResourceState {
                id: EnvironmentId(uuid::Uuid::from_u128(1)),
                last_applied: AppliedFields::default(),
                prevent_destroy: false,
                depends_on: Vec::new(),
                renamed_from: None,
            },
        );
        state
    }

    #[test]
    fn a_state_for_another_control_plane_is_refused_unless_it_moved() {
        let refused = State::for_target(
            Some(managing("https://a.example")),
            "https://b.example",
            false,
        )
        .expect_err("another control plane");
        assert!(
            matches!(&refused, StateError::TargetChanged { recorded, target }
                if recorded == "https://a.example" && target == "https://b.example"),
            "{refused:?}"
        );
        let moved = State::for_target(
            Some(managing("https://a.example")),
            "https://b.example",
            true,
        )
        .expect("moved on purpose");
        assert_eq!(moved.target, "https://b.example");
        assert!(
            State::for_target(
                Some(managing("https://a.example/")),
                "https://a.example",
                false
            )
            .is_ok()
        );
        // An empty state may point anywhere.
        assert!(
            State::for_target(
                Some(State::empty("https://a.example")),
                "https://b.example",
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn unkept_fields_are_per_target_and_dropped_when_kept_or_moved() {
        let mut state = managing("https://a.example");
        let fields = |names: &[&str]| {
            names
                .iter()
                .map(|name| (*name).to_owned())
                .collect::<Vec<_>>()
        };
        assert!(state.note_kept_fields(&[], &fields(&["configuration", "metadata"])));
        assert!(!state.note_kept_fields(&[], &fields(&["metadata"])));
        assert_eq!(
            state.unkept_here().map(|set| set.len()),
            Some(2),
            "{:?}",
            state.unkept_fields
        );
        let text = serde_json::to_string(&state).expect("serializes");
        let read: State = serde_json::from_str(&text).expect("reads back");
        assert_eq!(read, state);
        // Kept again: the record shrinks, then goes.
        assert!(state.note_kept_fields(&fields(&["configuration"]), &[]));
        assert!(state.note_kept_fields(&fields(&["metadata"]), &[]));
        assert!(state.unkept_fields.is_empty());
        // Another control plane's record does not follow the state there.
        state.note_kept_fields(&[], &fields(&["metadata"]));
        let moved = State::for_target(Some(state), "https://b.example", true).expect("moved");
        assert!(moved.unkept_here().is_none());
        assert!(moved.unkept_fields.is_empty());
    }

    #[test]
    fn embedded_targets_compare_by_absolute_path() {
        let absolute = std::path::absolute(".envform/control-plane.db").expect("absolute");
        let target = format!("embedded:{}", absolute.display());
        assert!(
            State::for_target(
                Some(managing("embedded:.envform/control-plane.db")),
                &target,
                false
            )
            .is_ok()
        );
        assert!(
            State::for_target(
                Some(managing("embedded:/elsewhere/control-plane.db")),
                &target,
                false
            )
            .is_err()
        );
    }
}
