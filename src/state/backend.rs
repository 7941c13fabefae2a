//! [`StateBackend`], the one interface through which envform reads, writes and locks state. Also
//! the checks every backend shares: decoding a state document (with the position of a JSON error)
//! and refusing a write that would replace another history or a newer version.

use std::time::Duration;

use serde::Deserialize;

use super::{Lineage, LockHandle, LockInfo, STATE_VERSION, State, StateChanges, StateError};

/// Where state is kept: a local file or a server.
///
/// Every write is checked against what is stored: same lineage, higher serial. The caller bumps
/// the serial of the state it loaded before saving it.
#[async_trait::async_trait]
pub trait StateBackend: Send + Sync {
    /// The stored state; `None` if it was never written.
    async fn load(&self) -> Result<Option<State>, StateError>;

    /// Replaces the stored state with `state`, under `lock` when the caller holds one (its ID
    /// and fencing token go with the write). Refused if the stored state has another lineage or
    /// a serial not lower than `state`'s.
    async fn save(&self, state: &State, lock: Option<&LockHandle>) -> Result<(), StateError>;

    /// Saves `state`, of which only the entries `changes` names differ from the state this
    /// backend last saved under the same `lock`. A backend that can write only those (the local
    /// journal) does; the others write the whole state.
    async fn save_changes(
        &self,
        state: &State,
        _changes: &StateChanges,
        lock: Option<&LockHandle>,
    ) -> Result<(), StateError> {
        self.save(state, lock).await
    }

    /// How long an apply may gather finished steps before saving them, when no create waits for
    /// its intent to be saved: zero saves after every round. A backend whose save is a round
    /// trip over the network batches by time as well.
    fn save_interval(&self) -> Duration {
        Duration::ZERO
    }

    /// Takes the lock once; [`StateError::Locked`] with the holder's information if it is held.
    async fn lock(&self, info: LockInfo) -> Result<LockHandle, StateError>;

    /// Releases a lock this backend granted.
    async fn unlock(&self, handle: LockHandle) -> Result<(), StateError>;

    /// Breaks the lock with ID `lock_id`, whoever holds it.
    async fn force_unlock(&self, lock_id: &str) -> Result<(), StateError>;

    /// Where the state is, for messages: `local state .envform/state.json`.
    fn describe(&self) -> String;
}

/// Just enough of a state document to know whether the rest can be read.
#[derive(Deserialize)]
struct VersionProbe {
    version: Option<u64>,
}

/// Reads a state document from `bytes` that came from `path` (a file or an address), as every
/// backend does: another format version is refused by name, a JSON error keeps its position.
pub fn decode_state(bytes: &[u8], path: &str) -> Result<State, StateError> {
    // The whole document first: the version is looked at alone only when that fails or differs,
    // so a state of thousands of environments is read once.
    let decoded = match serde_json::from_slice::<State>(bytes) {
        Ok(state) if state.version == STATE_VERSION => return Ok(state),
        other => other,
    };
    let probe: VersionProbe =
        serde_json::from_slice(bytes).map_err(|error| corrupt(path, &error))?;
    if let Some(found) = probe.version
        && found != u64::from(STATE_VERSION)
    {
        return Err(StateError::UnsupportedVersion {
            path: path.to_owned(),
            found,
            supported: STATE_VERSION,
        });
    }
    decoded.map_err(|error| corrupt(path, &error))
}

/// A state document as written: pretty JSON ending with a newline, so it diffs well.
pub(crate) fn encode_state(state: &State) -> Result<Vec<u8>, StateError> {
    let mut bytes = serde_json::to_vec_pretty(state).map_err(StateError::Encode)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn corrupt(path: &str, error: &serde_json::Error) -> StateError {
    let text = error.to_string();
    // serde_json appends the position to its message; it is kept in its own fields instead.
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
    StateError::Corrupt {
        path: path.to_owned(),
        line: error.line(),
        column: error.column(),
        message,
    }
}

/// Refuses to replace `stored` with `new` unless `new` continues the same history.
pub(crate) fn check_successor(
    stored: Option<&State>,
    new: &State,
    path: &str,
) -> Result<(), StateError> {
    match stored {
        None => Ok(()),
        Some(stored) => check_successor_of(stored.lineage, stored.serial, new, path),
    }
}

/// Refuses to replace a state of `lineage` at `serial` with `new` unless `new` continues it.
pub(crate) fn check_successor_of(
    lineage: Lineage,
    serial: u64,
    new: &State,
    path: &str,
) -> Result<(), StateError> {
    if lineage != new.lineage {
        return Err(StateError::LineageMismatch {
            path: path.to_owned(),
            stored: lineage,
            new: new.lineage,
        });
    }
    if serial >= new.serial {
        return Err(StateError::SerialNotIncreased {
            path: path.to_owned(),
            stored: serial,
            new: new.serial,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn corrupt_json_names_the_place_and_position() {
        let text = b"{\n  \"version\": 1,\n  \"lineage\": oops\n}\n";
        let error = decode_state(text, "dir/state.json").unwrap_err();
        match &error {
            StateError::Corrupt {
                path,
                line,
                column,
                message,
            } => {
                assert_eq!(path, "dir/state.json");
                assert_eq!((*line, *column), (3, 14));
                assert_eq!(message, "expected value");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "the state in dir/state.json is corrupt: expected value at line 3, column 14"
        );
    }

    #[test]
    fn missing_field_is_corrupt_too() {
        let text = br#"{"version": 1, "serial": 3}"#;
        let error = decode_state(text, "s.json").unwrap_err();
        assert!(
            matches!(&error, StateError::Corrupt { line: 1, message, .. } if message.contains("lineage")),
            "{error:?}"
        );
    }

    #[test]
    fn another_version_in_the_current_shape_is_refused_too() {
        let mut state = State::empty("embedded:test.db");
        state.version = 2;
        let text = serde_json::to_vec(&state).unwrap();
        let error = decode_state(&text, "s.json").unwrap_err();
        assert!(
            matches!(error, StateError::UnsupportedVersion { found: 2, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn other_versions_are_refused_whatever_their_shape() {
        // Version 2 may have any shape; the version alone decides.
        let text = br#"{"version": 2, "resources": "a new shape"}"#;
        let error = decode_state(text, "s.json").unwrap_err();
        assert!(
            matches!(
                error,
                StateError::UnsupportedVersion {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn encoded_state_decodes_to_itself() {
        let mut state = State::empty("embedded:test.db");
        state.serial = 4;
        let bytes = encode_state(&state).unwrap();
        assert_eq!(bytes.last(), Some(&b'\n'));
        assert_eq!(decode_state(&bytes, "s.json").unwrap(), state);
    }

    #[test]
    fn successor_must_share_the_lineage_and_raise_the_serial() {
        let stored = State {
            serial: 5,
            ..State::empty("t")
        };
        let next = State {
            serial: 6,
            ..stored.clone()
        };
        assert!(check_successor(None, &next, "p").is_ok());
        assert!(check_successor(Some(&stored), &next, "p").is_ok());

        let same = stored.clone();
        assert!(matches!(
            check_successor(Some(&stored), &same, "p"),
            Err(StateError::SerialNotIncreased {
                stored: 5,
                new: 5,
                ..
            })
        ));

        let other = State {
            serial: 9,
            ..State::empty("t")
        };
        assert!(matches!(
            check_successor(Some(&stored), &other, "p"),
            Err(StateError::LineageMismatch { stored: s, new: n, .. })
                if s == stored.lineage && n == other.lineage
        ));
    }

    #[test]
    fn messages_name_the_holder_or_say_it_is_unknown() {
        let holder = LockInfo {
            id: "abc".to_owned(),
            operation: "apply".to_owned(),
            info: String::new(),
            who: "alice@laptop".to_owned(),
            version: "0.1.0".to_owned(),
            created: "2026-01-02T03:04:05Z".parse().unwrap(),
            path: String::new(),
        };
        let locked = StateError::Locked {
            holder: Some(Box::new(holder.clone())),
        };
        assert_eq!(
            locked.to_string(),
            "the state is locked by alice@laptop (apply, ID abc, since 2026-01-02T03:04:05Z)"
        );
        let unknown = StateError::Locked { holder: None };
        assert_eq!(
            unknown.to_string(),
            "the state is locked by another process (no lock information)"
        );
        let timeout = StateError::LockTimeout {
            waited: Duration::from_millis(2500),
            holder: Some(Box::new(holder)),
        };
        assert!(
            timeout.to_string().ends_with("after waiting 2.5s"),
            "{timeout}"
        );
    }
}
