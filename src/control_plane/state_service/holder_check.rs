//! The lock event log's proof: no two holders ever overlapped.

use jiff::Timestamp;

use crate::state::FencingToken;
use crate::store::{LockEventKind, RecordedLockEvent, WriteRefusal};

/// Two holders at once, found in a lock event log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {sequence}: {problem}")]
pub struct HolderOverlap {
    /// The event at which it shows.
    pub sequence: i64,
    /// What is wrong.
    pub problem: String,
}

/// Each event's kind, calling key, holder's key (`-` when the log names none) and refusal: who
/// did what to a lock, as a test compares it.
pub fn key_trail(
    events: &[RecordedLockEvent],
) -> Vec<(LockEventKind, &str, &str, Option<WriteRefusal>)> {
    events
        .iter()
        .map(|recorded| {
            let event = &recorded.event;
            (
                event.kind,
                event.key.as_deref().unwrap_or("-"),
                event.holder_key.as_deref().unwrap_or("-"),
                event.refusal,
            )
        })
        .collect()
}

/// Checks a workspace's lock event log, oldest first: a lock is granted only when none is held
/// or the holder's lease has run out, renewed and released only by its holder (renewed only by
/// the key that took it, when the log names keys), with fencing tokens that only grow; and every
/// write accepted while a lease ran carried its holder's token and came from its key.
pub fn check_single_holder(events: &[RecordedLockEvent]) -> Result<(), HolderOverlap> {
    /// The holder as the log tells it: lock ID, token, end of lease.
    struct Holder<'a> {
        lock_id: &'a str,
        key: Option<&'a str>,
        token: Option<FencingToken>,
        lease_expires_at: Option<Timestamp>,
    }
    let mut holder: Option<Holder<'_>> = None;
    let mut highest_token: Option<FencingToken> = None;
    let mut previous_sequence: Option<i64> = None;
    for recorded in events {
        let event = &recorded.event;
        let overlap = |problem: String| HolderOverlap {
            sequence: recorded.sequence,
            problem,
        };
        if previous_sequence.is_some_and(|previous| previous >= recorded.sequence) {
            return Err(overlap("the log is out of order".to_owned()));
        }
        previous_sequence = Some(recorded.sequence);
        let lock_id = event.lock_id.as_deref().unwrap_or_default();
        let running = holder
            .as_ref()
            .filter(|holder| holder.lease_expires_at.is_none_or(|end| end > event.at));
        match event.kind {
            LockEventKind::Granted | LockEventKind::TakenOver => {
                if let Some(running) = running {
                    return Err(overlap(format!(
                        "lock {lock_id} was granted while lock {} held a running lease",
                        running.lock_id
                    )));
                }
                if event.fencing_token.is_none() || event.fencing_token <= highest_token {
                    return Err(overlap(format!(
                        "lock {lock_id} was granted token {:?}, not above {:?}",
                        event.fencing_token, highest_token
                    )));
                }
                highest_token = event.fencing_token;
                holder = Some(Holder {
                    lock_id,
                    key: event.key.as_deref(),
                    token: event.fencing_token,
                    lease_expires_at: event.lease_expires_at,
                });
            }
            LockEventKind::Renewed => match &mut holder {
                Some(current) if current.lock_id == lock_id => {
                    if let (Some(holder_key), Some(key)) = (current.key, event.key.as_deref())
                        && holder_key != key
                    {
                        return Err(overlap(format!(
                            "lock {lock_id} of {holder_key} was renewed by {key}"
                        )));
                    }
                    current.key = current.key.or(event.key.as_deref());
                    current.lease_expires_at = event.lease_expires_at;
                }
                _ => {
                    return Err(overlap(format!(
                        "lock {lock_id} was renewed without being the holder"
                    )));
                }
            },
            LockEventKind::Unlocked => {
                if holder.as_ref().map(|current| current.lock_id) != Some(lock_id) {
                    return Err(overlap(format!(
                        "lock {lock_id} was released without being the holder"
                    )));
                }
                holder = None;
            }
            LockEventKind::Written => {
                if let Some(running) = running
                    && (event.lock_id.as_deref() != Some(running.lock_id)
                        || event.fencing_token != running.token
                        || running
                            .key
                            .zip(event.key.as_deref())
                            .is_some_and(|(holder_key, key)| holder_key != key))
                {
                    return Err(overlap(format!(
                        "a write under lock {lock_id} was accepted while lock {} held the lease",
                        running.lock_id
                    )));
                }
            }
            LockEventKind::WriteRefused
            | LockEventKind::LockRefused
            | LockEventKind::UnlockRefused => {}
        }
    }
    Ok(())
}
