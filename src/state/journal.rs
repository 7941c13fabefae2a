//! The local state's journal: `state.json.journal`, one JSON line per save made under a lock,
//! holding only what that save changed. A save then costs what changed instead of the whole
//! document; the document is rewritten whole (compacted) when the lock is released and when it
//! is next taken.
//!
//! Reading replays the journal over the document: records at or below the document's serial (or
//! of another lineage) were written before its last compaction and are skipped; a line cut short
//! by a crash (no newline yet) was never acknowledged and is ignored. So `kill -9` at any point
//! leaves a state that reads back as it was last saved.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{CreateIntent, Lineage, ResourceState, State, StateError};
use crate::model::DigestSalt;

/// Names whose entries changed since the last save: each is written as it now is in the state
/// (or as removed, when the state no longer has it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateChanges {
    /// Names in `resources` set, changed or removed.
    pub resources: BTreeSet<String>,
    /// Names in `intents` set or removed.
    pub intents: BTreeSet<String>,
    /// Whether `unkept_fields` changed (a small map: written whole when it does).
    pub unkept_fields: bool,
    /// Whether the digest salt is not stored yet (made for a state written before digests were
    /// salted): the record carries it once, as the lineage does not change.
    pub digest_salt: bool,
}

impl StateChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
            && self.intents.is_empty()
            && !self.unkept_fields
            && !self.digest_salt
    }

    /// Forgets every name, after a save.
    pub fn clear(&mut self) {
        self.resources.clear();
        self.intents.clear();
        self.unkept_fields = false;
        self.digest_salt = false;
    }
}

/// One save's line in the journal.
#[derive(Debug, Serialize, Deserialize)]
struct Record<'a> {
    lineage: Lineage,
    /// The serial this record continues.
    previous: u64,
    serial: u64,
    #[serde(borrow)]
    envform_version: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    target: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    resources: BTreeMap<String, ResourceState>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    removed: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    intents: BTreeMap<String, CreateIntent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    intents_removed: Vec<String>,
    /// The whole `unkept_fields` map, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unkept_fields: Option<BTreeMap<String, BTreeSet<String>>>,
    /// The digest salt, in the record that first stores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest_salt: Option<DigestSalt>,
}

/// Borrowed form of [`Record`] for writing, so a save copies nothing but what changed.
#[derive(Serialize)]
struct RecordOut<'a> {
    lineage: Lineage,
    previous: u64,
    serial: u64,
    envform_version: &'a str,
    target: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    resources: BTreeMap<&'a str, &'a ResourceState>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    removed: Vec<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    intents: BTreeMap<&'a str, &'a CreateIntent>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    intents_removed: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unkept_fields: Option<&'a BTreeMap<String, BTreeSet<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest_salt: Option<DigestSalt>,
}

/// The line that records `changes` of `state`, which continues the state saved at `previous`:
/// compact JSON ending with a newline.
pub(crate) fn encode_record(
    state: &State,
    previous: u64,
    changes: &StateChanges,
) -> Result<Vec<u8>, StateError> {
    let mut record = RecordOut {
        lineage: state.lineage,
        previous,
        serial: state.serial,
        envform_version: &state.envform_version,
        target: &state.target,
        resources: BTreeMap::new(),
        removed: Vec::new(),
        intents: BTreeMap::new(),
        intents_removed: Vec::new(),
        unkept_fields: changes.unkept_fields.then_some(&state.unkept_fields),
        digest_salt: state.digest_salt.filter(|_| changes.digest_salt),
    };
    for name in &changes.resources {
        match state.resources.get(name) {
            Some(resource) => {
                record.resources.insert(name, resource);
            }
            None => record.removed.push(name),
        }
    }
    for name in &changes.intents {
        match state.intents.get(name) {
            Some(intent) => {
                record.intents.insert(name, intent);
            }
            None => record.intents_removed.push(name),
        }
    }
    let mut bytes = serde_json::to_vec(&record).map_err(StateError::Encode)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Why a journal could not be replayed.
pub(crate) enum ReplayError {
    /// A record does not continue the state before it: the document was compacted between
    /// reading it and reading the journal. Reading both again resolves it.
    Gap,
    /// A line is not a record.
    Corrupt(StateError),
}

/// Applies the records of `journal` (read from `path`) that continue `state`.
pub(crate) fn replay(state: &mut State, journal: &[u8], path: &str) -> Result<(), ReplayError> {
    // What follows the last newline was being written when the writer stopped: never saved.
    let complete = match journal.iter().rposition(|byte| *byte == b'\n') {
        Some(end) => &journal[..=end],
        None => return Ok(()),
    };
    for (index, line) in complete.split(|byte| *byte == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let record: Record<'_> = serde_json::from_slice(line).map_err(|error| {
            ReplayError::Corrupt(StateError::Corrupt {
                path: path.to_owned(),
                line: index + 1,
                column: error.column(),
                message: error.to_string(),
            })
        })?;
        if record.lineage != state.lineage || record.serial <= state.serial {
            // Written before the document was last compacted (or replaced).
            continue;
        }
        if record.previous != state.serial {
            return Err(ReplayError::Gap);
        }
        state.serial = record.serial;
        state.envform_version = record.envform_version.into_owned();
        state.target = record.target.into_owned();
        state.resources.extend(record.resources);
        for name in record.removed {
            state.resources.remove(&name);
        }
        state.intents.extend(record.intents);
        for name in record.intents_removed {
            state.intents.remove(&name);
        }
        if let Some(unkept_fields) = record.unkept_fields {
            state.unkept_fields = unkept_fields;
        }
        if let Some(salt) = record.digest_salt {
            state.digest_salt = Some(salt);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EnvironmentId, JsonMap};

    fn resource(id: u128, description: &str) -> ResourceState {
        let mut last_applied = JsonMap::new();
        last_applied.insert("description".to_owned(), description.into());
        ResourceState {
            id: EnvironmentId(uuid::Uuid::from_u128(id)),
            last_applied: last_applied.into(),
            prevent_destroy: id.is_multiple_of(2),
            depends_on: vec!["base".to_owned()],
            renamed_from: None,
        }
    }

    #[test]
    fn every_state_field_is_in_a_record() {
        // A new field of the state document must be journaled too: this lists what is.
        let mut state = State::empty("t");
        state.intents.insert(
            "i".to_owned(),
            CreateIntent {
                started_at: jiff::Timestamp::UNIX_EPOCH,
            },
        );
        state
            .unkept_fields
            .insert("t".to_owned(), ["metadata".to_owned()].into());
        let value = serde_json::to_value(&state).unwrap();
        let mut fields: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "digest_salt",
                "envform_version",
                "intents",
                "lineage",
                "resources",
                "serial",
                "target",
                "unkept_fields",
                "version"
            ]
        );
    }

    #[test]
    fn records_replayed_over_the_document_give_the_whole_state() {
        let mut document = State::empty("http://a");
        document.serial = 3;
        document
            .resources
            .insert("a".to_owned(), resource(1, "one"));
        document
            .resources
            .insert("b".to_owned(), resource(2, "two"));

        let mut live = document.clone();
        document.digest_salt = None;
        let mut journal = Vec::new();
        // A save: an intent for `c`, `a` changed.
        let previous = live.serial;
        live.serial += 1;
        live.intents.insert(
            "c".to_owned(),
            CreateIntent {
                started_at: jiff::Timestamp::UNIX_EPOCH,
            },
        );
        live.resources
            .insert("a".to_owned(), resource(1, "changed"));
        live.unkept_fields
            .insert("http://a".to_owned(), ["configuration".to_owned()].into());
        let changes = StateChanges {
            resources: ["a".to_owned()].into(),
            intents: ["c".to_owned()].into(),
            unkept_fields: true,
            // The document was written before digests were salted: the first record stores it.
            digest_salt: true,
        };
        journal.extend(encode_record(&live, previous, &changes).unwrap());
        // Another: `c` made, `b` gone, the target moved.
        let previous = live.serial;
        live.serial += 1;
        live.intents.remove("c");
        live.resources.insert("c".to_owned(), resource(3, "three"));
        live.resources.remove("b");
        live.target = "http://b".to_owned();
        let changes = StateChanges {
            resources: ["b".to_owned(), "c".to_owned()].into(),
            intents: ["c".to_owned()].into(),
            unkept_fields: false,
            digest_salt: false,
        };
        journal.extend(encode_record(&live, previous, &changes).unwrap());

        let mut replayed = document.clone();
        assert!(replay(&mut replayed, &journal, "j").is_ok());
        assert_eq!(replayed, live);

        // A document compacted at the last record skips them all.
        let mut compacted = live.clone();
        assert!(replay(&mut compacted, &journal, "j").is_ok());
        assert_eq!(compacted, live);
        // Only the record that first stores the salt carries it.
        let lines: Vec<&[u8]> = journal.split(|byte| *byte == b'\n').collect();
        assert!(String::from_utf8_lossy(lines[0]).contains("\"digest_salt\""));
        assert!(!String::from_utf8_lossy(lines[1]).contains("\"digest_salt\""));

        // A cut-short last line is ignored: the state is as of the record before it.
        let cut = &journal[..journal.len() - 5];
        let mut partial = document.clone();
        assert!(replay(&mut partial, cut, "j").is_ok());
        assert_eq!(partial.serial, 4);
        assert_eq!(partial.resources["a"], resource(1, "changed"));
        assert!(partial.intents.contains_key("c"));
    }

    #[test]
    fn a_gap_and_a_broken_line_are_told_apart() {
        let mut document = State::empty("t");
        document.serial = 2;
        let mut ahead = document.clone();
        ahead.serial = 9;
        let line = encode_record(&ahead, 8, &StateChanges::default()).unwrap();
        assert!(matches!(
            replay(&mut document.clone(), &line, "j"),
            Err(ReplayError::Gap)
        ));
        let broken = b"{\"lineage\": 1\n";
        match replay(&mut document, broken, "state.json.journal") {
            Err(ReplayError::Corrupt(StateError::Corrupt { path, line, .. })) => {
                assert_eq!(path, "state.json.journal");
                assert_eq!(line, 1);
            }
            _ => panic!("a broken line is corrupt"),
        }
    }
}
