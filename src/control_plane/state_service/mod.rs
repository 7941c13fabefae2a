//! [`StateService`]: the rules of the state server `envform serve` offers (docs/src/concepts/state.md), over a
//! [`StateStore`]. It speaks Terraform's HTTP backend protocol in meaning, not in HTTP: the
//! server maps requests onto it, and a store (SQLite) keeps what it decides.
//!
//! Every lock has a lease: its holder renews it by locking again with the same ID, and once it
//! runs out anyone may take the lock over. Every grant to a new holder comes with a fencing
//! token, one higher than any token the workspace ever issued, and a write must carry the token
//! of the lock in force, so a holder that was paused past its lease cannot overwrite the work of
//! the next one. Every grant, renewal, takeover, release and write (accepted or refused) is
//! appended to a lock event log, from which [`check_single_holder`] proves that no two holders
//! ever overlapped.
//!
//! Every lock is bound to the API key that took it ([`LockKey`]): only that key renews it,
//! writes under it and releases it, and only it or an `admin` key breaks it. Another key, even
//! of the same organization, is refused and told the holder's key, never the lock's ID; a
//! refused attempt that named the holder's ID is logged with both keys. A lock taken before
//! locks were bound to keys has no key: the first key that renews it binds it, and only an
//! `admin` key releases it before that.
//!
//! Each operation is one store transaction (read, decide, write), so two servers on one
//! database, or two requests at once, cannot both win a lock. The clock is injected
//! ([`Clock`]) so expiry can be tested without waiting; a store that several replicas share
//! (PostgreSQL) supplies its own clock instead, so every replica judges a lease alike.

mod holder_check;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

pub use super::clock::{Clock, SystemClock};
pub use crate::store::{
    InvalidWorkspaceName, LockEvent, LockEventKind, LockRecord, MAX_WORKSPACE_NAME_LENGTH,
    RecordedLockEvent, StateStore, StateStoreError, StateTransaction, StoredDocument, Workspace,
    WorkspaceName, WriteRefusal,
};
pub use holder_check::{HolderOverlap, check_single_holder, key_trail};

use crate::state::{FencingToken, LockInfo};

/// The API key a state request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockKey {
    /// The key's name as the audit log writes it: `key:<name>`.
    pub name: String,
    /// Whether the key has the `admin` role, which breaks another key's lock.
    pub admin: bool,
}

impl LockKey {
    /// The key named `name` (`key:<name>`), an `admin` key or not.
    pub fn new(name: impl Into<String>, admin: bool) -> Self {
        Self {
            name: name.into(),
            admin,
        }
    }

    /// Whether this key took the lock `record`.
    fn holds(&self, record: &LockRecord) -> bool {
        record.holder_key.as_deref() == Some(self.name.as_str())
    }
}

/// The holder of a lock, as a refusal tells it to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// The holder's lock information. Its ID is for the holder's key only: a server shows it
    /// only when [`LockHolder::caller_holds`].
    pub info: LockInfo,
    /// The key that took the lock (`key:<name>`); `None` for a lock taken before locks were
    /// bound to keys.
    pub key: Option<String>,
    /// Whether the caller's own key took the lock.
    pub caller_holds: bool,
}

impl LockHolder {
    fn of(record: &LockRecord, caller: &LockKey) -> Box<Self> {
        Box::new(Self {
            info: record.info.clone(),
            key: record.holder_key.clone(),
            caller_holds: caller.holds(record),
        })
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.key.as_deref().unwrap_or("no key");
        if self.caller_holds {
            write!(f, "{} as {key}", self.info)
        } else {
            let who = if self.info.who.is_empty() {
                "an unknown holder"
            } else {
                &self.info.who
            };
            write!(f, "{key} ({who}")?;
            if !self.info.operation.is_empty() {
                write!(f, ", {}", self.info.operation)?;
            }
            write!(
                f,
                ", since {})",
                self.info.created.strftime("%Y-%m-%dT%H:%M:%SZ")
            )
        }
    }
}

/// Why a state operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StateServiceError {
    /// Someone else holds the lock, or another key does and the request named its lock
    /// (HTTP 423).
    #[error("the state is locked by {holder}")]
    Locked {
        /// The holder.
        holder: Box<LockHolder>,
    },
    /// An unlock named a lock other than the one held, or the held one from another key
    /// (HTTP 409).
    #[error(
        "the state is locked by {holder}; the unlock named {}",
        requested_text(holder, requested)
    )]
    HeldByAnother {
        /// The holder.
        holder: Box<LockHolder>,
        /// The lock ID the unlock named.
        requested: String,
    },
    /// A force-unlock of another key's lock by a key without the `admin` role (HTTP 403).
    #[error(
        "breaking the lock of {} needs the admin role or that key; {caller} is not admin",
        holder.key.as_deref().unwrap_or("no key (taken before locks were bound to keys)")
    )]
    AdminRequired {
        /// The holder.
        holder: Box<LockHolder>,
        /// The key that asked (`key:<name>`).
        caller: String,
    },
    /// A write carried a stale fencing token, or none while a lock is held (HTTP 412).
    #[error("{}", stale_text(*presented, *current))]
    StaleFencingToken {
        /// The token the write carried.
        presented: Option<FencingToken>,
        /// The token of the lock in force (or the last issued, when unlocked).
        current: Option<FencingToken>,
    },
    /// Lock information without an ID (HTTP 400).
    #[error("the lock information has no ID")]
    MissingLockId,
    /// Lock information that would forge log lines or fill every 423 answer (HTTP 422).
    #[error("lock information `{field}` {problem}")]
    InvalidLockInfo {
        /// The field, as the protocol spells it (`ID`, `Who`, …).
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// An empty state document (HTTP 400).
    #[error("the state document is empty")]
    EmptyDocument,
    /// The store failed (HTTP 500).
    #[error(transparent)]
    Storage(#[from] StateStoreError),
}

fn requested_text(holder: &LockHolder, requested: &str) -> String {
    if holder.caller_holds || holder.info.id != requested {
        format!("lock {requested}")
    } else {
        "its lock from another key".to_owned()
    }
}

fn stale_text(presented: Option<FencingToken>, current: Option<FencingToken>) -> String {
    let current = current.map_or_else(|| "none".to_owned(), |token| token.to_string());
    match presented {
        Some(token) => format!(
            "fencing token {token} is stale (the current one is {current}): the lock it was granted with was lost"
        ),
        None => format!("the state is locked: a write must carry fencing token {current}"),
    }
}

/// A state write: the document, and the lock it is made under, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    /// The new document, stored byte for byte.
    pub document: String,
    /// The lock ID the write names (`?ID=`).
    pub lock_id: Option<String>,
    /// The fencing token the write carries.
    pub fencing_token: Option<FencingToken>,
}

/// How a lock was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    /// The lock was free.
    New,
    /// The caller already held it: its lease is extended, its token unchanged.
    Renewed,
    /// The previous holder's lease had run out.
    TakenOver,
}

/// A granted lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockGranted {
    /// How it was granted.
    pub kind: GrantKind,
    /// The token writes under it must carry.
    pub fencing_token: FencingToken,
    /// How long the lease lasts from now.
    pub lease: Duration,
    /// When the lease ends unless renewed.
    pub lease_expires_at: Timestamp,
}

/// What an unlock did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlocked {
    /// The named lock was held and is released.
    Released,
    /// No lock was in force.
    NotLocked,
}

/// The state server's rules over a [`StateStore`]. Cheap to clone.
#[derive(Clone)]
pub struct StateService {
    store: Arc<dyn StateStore>,
    clock: Arc<dyn Clock>,
    lease: Duration,
}

impl fmt::Debug for StateService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateService")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl StateService {
    /// The service over `store`, reading the time from `clock`, granting leases of `lease`.
    pub fn new(store: Arc<dyn StateStore>, clock: Arc<dyn Clock>, lease: Duration) -> Self {
        Self {
            store,
            clock,
            lease,
        }
    }

    /// How long a lease lasts unless renewed.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The workspace's document, if one was written.
    pub async fn get(
        &self,
        workspace: &Workspace,
    ) -> Result<Option<StoredDocument>, StateServiceError> {
        Ok(self.store.state_document(workspace).await?)
    }

    /// Writes the document, unless the lock in force forbids it: while a workspace is locked, a
    /// write must name the holder's lock and carry its fencing token. Unlocked, a write without
    /// a lock is allowed (Terraform's clients do that), but a token it carries must still be
    /// the last one issued. A refusal is logged like a write.
    pub async fn write(
        &self,
        workspace: &Workspace,
        caller: &LockKey,
        write: StateWrite,
    ) -> Result<(), StateServiceError> {
        if write.document.is_empty() {
            return Err(StateServiceError::EmptyDocument);
        }
        let mut transaction = self.store.begin_state().await?;
        let now = self.now(transaction.as_mut()).await?;
        let lock = transaction.lock(workspace).await?;
        let last_issued = transaction.fencing_token(workspace).await?;
        let active = lock.as_ref().filter(|lock| !lock.is_expired(now));
        let mut event = LockEvent::new(now, LockEventKind::Written).by(&caller.name);
        event.lock_id.clone_from(&write.lock_id);
        event.fencing_token = write.fencing_token;
        event.holder_lock_id = active.map(|lock| lock.info.id.clone());
        event.holder_key = active.and_then(|lock| lock.holder_key.clone());
        match check_write(&write, caller, active, last_issued) {
            Ok(()) => {
                transaction
                    .write_document(workspace, &write.document, now)
                    .await?;
                transaction.append_event(workspace, &event).await?;
                transaction.commit().await?;
                Ok(())
            }
            Err((refusal, error)) => {
                event.kind = LockEventKind::WriteRefused;
                event.refusal = Some(refusal);
                transaction.append_event(workspace, &event).await?;
                transaction.commit().await?;
                Err(error)
            }
        }
    }

    /// Takes the lock, renews it (the same ID from the same key), or takes it over once its
    /// lease has run out; [`StateServiceError::Locked`] with the holder while someone else's
    /// lease runs, or when another key names the holder's ID (that refusal is logged).
    pub async fn lock(
        &self,
        workspace: &Workspace,
        caller: &LockKey,
        info: LockInfo,
    ) -> Result<LockGranted, StateServiceError> {
        if info.id.is_empty() {
            return Err(StateServiceError::MissingLockId);
        }
        check_lock_info(&info)?;
        let mut transaction = self.store.begin_state().await?;
        let now = self.now(transaction.as_mut()).await?;
        let lease_expires_at = self.lease_end(now);
        let held = transaction.lock(workspace).await?;
        // The lock and key in place before, as the event names them: the one taken over, or the
        // one renewed (no key when taken before locks were bound to keys).
        let (kind, record, (holder_lock_id, holder_key)) = match held {
            // The holder's ID from another key: a copied or guessed ID is no credential. A lock
            // taken before locks were bound to keys has no key; its first renewal binds it.
            Some(held)
                if held.info.id == info.id && held.holder_key.is_some() && !caller.holds(&held) =>
            {
                let mut event = LockEvent::new(now, LockEventKind::LockRefused)
                    .naming(&info)
                    .by(&caller.name);
                event.holder_lock_id = Some(held.info.id.clone());
                event.holder_key.clone_from(&held.holder_key);
                event.refusal = Some(WriteRefusal::OtherKey);
                transaction.append_event(workspace, &event).await?;
                transaction.commit().await?;
                return Err(StateServiceError::Locked {
                    holder: LockHolder::of(&held, caller),
                });
            }
            // The holder again: a renewal, or a retried LOCK whose answer was lost. Even after
            // its lease ran out, nobody took the lock meanwhile, so its token is still current.
            Some(held) if held.info.id == info.id => {
                let before = (None, held.holder_key.clone());
                let record = LockRecord {
                    lease_expires_at,
                    holder_key: Some(caller.name.clone()),
                    ..held
                };
                (GrantKind::Renewed, record, before)
            }
            Some(held) if !held.is_expired(now) => {
                // Nothing changed: the transaction is dropped, rolled back. Not logged: a
                // client waiting for the lock asks again and again.
                return Err(StateServiceError::Locked {
                    holder: LockHolder::of(&held, caller),
                });
            }
            previous => {
                let kind = match previous {
                    Some(_) => GrantKind::TakenOver,
                    None => GrantKind::New,
                };
                let record = LockRecord {
                    info,
                    fencing_token: transaction.next_fencing_token(workspace).await?,
                    lease_expires_at,
                    acquired_at: now,
                    holder_key: Some(caller.name.clone()),
                };
                let before = previous.map_or((None, None), |previous| {
                    (Some(previous.info.id), previous.holder_key)
                });
                (kind, record, before)
            }
        };
        let mut event = LockEvent::new(now, event_kind(kind))
            .naming(&record.info)
            .by(&caller.name);
        event.fencing_token = Some(record.fencing_token);
        event.lease_expires_at = Some(lease_expires_at);
        event.holder_lock_id = holder_lock_id;
        event.holder_key = holder_key;
        transaction.append_event(workspace, &event).await?;
        transaction.put_lock(workspace, &record).await?;
        transaction.commit().await?;
        Ok(LockGranted {
            kind,
            fencing_token: record.fencing_token,
            lease: self.lease,
            lease_expires_at,
        })
    }

    /// Releases the lock `info` names. The key that took it releases it; an `admin` key breaks
    /// another key's lock by naming its ID (`force-unlock ID`). Another key naming the
    /// holder's ID is refused, and logged: [`StateServiceError::AdminRequired`] when `force`
    /// (a force-unlock), else [`StateServiceError::HeldByAnother`]. Another ID while a lease
    /// runs is [`StateServiceError::HeldByAnother`]; with no lock in force there is nothing to
    /// do.
    pub async fn unlock(
        &self,
        workspace: &Workspace,
        caller: &LockKey,
        info: &LockInfo,
        force: bool,
    ) -> Result<Unlocked, StateServiceError> {
        if info.id.is_empty() {
            return Err(StateServiceError::MissingLockId);
        }
        let mut transaction = self.store.begin_state().await?;
        let now = self.now(transaction.as_mut()).await?;
        match transaction.lock(workspace).await? {
            Some(held) if held.info.id == info.id => {
                let allowed = caller.holds(&held) || caller.admin;
                let kind = if allowed {
                    LockEventKind::Unlocked
                } else {
                    LockEventKind::UnlockRefused
                };
                let mut event = LockEvent::new(now, kind).naming(info).by(&caller.name);
                event.fencing_token = Some(held.fencing_token);
                event.holder_key.clone_from(&held.holder_key);
                if !allowed {
                    event.holder_lock_id = Some(held.info.id.clone());
                    event.refusal = Some(if force {
                        WriteRefusal::AdminRequired
                    } else {
                        WriteRefusal::OtherKey
                    });
                    transaction.append_event(workspace, &event).await?;
                    transaction.commit().await?;
                    let holder = LockHolder::of(&held, caller);
                    return Err(if force {
                        StateServiceError::AdminRequired {
                            holder,
                            caller: caller.name.clone(),
                        }
                    } else {
                        StateServiceError::HeldByAnother {
                            holder,
                            requested: info.id.clone(),
                        }
                    });
                }
                transaction.delete_lock(workspace).await?;
                transaction.append_event(workspace, &event).await?;
                transaction.commit().await?;
                Ok(Unlocked::Released)
            }
            Some(held) if !held.is_expired(now) => Err(StateServiceError::HeldByAnother {
                holder: LockHolder::of(&held, caller),
                requested: info.id.clone(),
            }),
            // No lock, or one whose lease ran out: the next LOCK may take it anyway.
            None | Some(_) => Ok(Unlocked::NotLocked),
        }
    }

    /// The workspace's whole lock event log, oldest first.
    pub async fn events(
        &self,
        workspace: &Workspace,
    ) -> Result<Vec<RecordedLockEvent>, StateServiceError> {
        Ok(self.store.lock_events(workspace, 0, None).await?)
    }

    /// At most `limit` of the workspace's lock events with a sequence above `after`, oldest first.
    pub async fn events_after(
        &self,
        workspace: &Workspace,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RecordedLockEvent>, StateServiceError> {
        Ok(self
            .store
            .lock_events(workspace, after, Some(limit))
            .await?)
    }

    /// Deletes the lock events of every workspace older than `retention`; how many.
    pub async fn prune_events(&self, retention: Duration) -> Result<u64, StateServiceError> {
        let now = self.clock.now();
        let cutoff = jiff::SignedDuration::try_from(retention)
            .ok()
            .and_then(|retention| now.checked_sub(retention).ok())
            .unwrap_or(Timestamp::MIN);
        Ok(self.store.prune_lock_events(cutoff).await?)
    }

    /// The time a decision in `transaction` is made at: the database's clock when the store has
    /// one every replica shares (leases then mean the same on all of them), else the service's.
    /// Read after the transaction began, so time spent waiting for the write lock counts.
    async fn now(
        &self,
        transaction: &mut dyn StateTransaction,
    ) -> Result<Timestamp, StateServiceError> {
        Ok(transaction
            .database_now()
            .await?
            .unwrap_or_else(|| self.clock.now()))
    }

    fn lease_end(&self, now: Timestamp) -> Timestamp {
        let microseconds = i64::try_from(self.lease.as_micros()).unwrap_or(i64::MAX);
        Timestamp::from_microsecond(now.as_microsecond().saturating_add(microseconds))
            .unwrap_or(Timestamp::MAX)
    }
}

fn event_kind(kind: GrantKind) -> LockEventKind {
    match kind {
        GrantKind::New => LockEventKind::Granted,
        GrantKind::Renewed => LockEventKind::Renewed,
        GrantKind::TakenOver => LockEventKind::TakenOver,
    }
}

/// Whether `write` may go through with `active` (the lock whose lease runs, if any) in force and
/// `last_issued` the workspace's last fencing token.
fn check_write(
    write: &StateWrite,
    caller: &LockKey,
    active: Option<&LockRecord>,
    last_issued: Option<FencingToken>,
) -> Result<(), (WriteRefusal, StateServiceError)> {
    let current = active.map(|lock| lock.fencing_token).or(last_issued);
    // A token other than the current one means its lock was lost, locked or not right now.
    if let Some(token) = write.fencing_token
        && Some(token) != current
    {
        return Err((
            WriteRefusal::StaleToken,
            StateServiceError::StaleFencingToken {
                presented: Some(token),
                current,
            },
        ));
    }
    let Some(lock) = active else {
        return Ok(());
    };
    if write.lock_id.as_deref() != Some(lock.info.id.as_str()) {
        return Err((
            WriteRefusal::Locked,
            StateServiceError::Locked {
                holder: LockHolder::of(lock, caller),
            },
        ));
    }
    // The holder's ID (and even its token) from another key: both can be read off the event
    // log, so neither is a credential. A lock taken before locks were bound to keys has none.
    if lock.holder_key.is_some() && !caller.holds(lock) {
        return Err((
            WriteRefusal::OtherKey,
            StateServiceError::Locked {
                holder: LockHolder::of(lock, caller),
            },
        ));
    }
    if write.fencing_token.is_none() {
        return Err((
            WriteRefusal::MissingToken,
            StateServiceError::StaleFencingToken {
                presented: None,
                current: Some(lock.fencing_token),
            },
        ));
    }
    Ok(())
}

/// Largest `Info` a lock may carry: it is echoed in every 423 answer.
const MAX_LOCK_INFO_BYTES: usize = 4096;
/// Largest value of the other lock fields.
const MAX_LOCK_FIELD_CHARS: usize = 512;

/// Lock fields are logged and shown to other clients: no control or invisible characters in the
/// one-line fields, and bounded sizes.
fn check_lock_info(info: &LockInfo) -> Result<(), StateServiceError> {
    let invalid = |field, problem: &str| StateServiceError::InvalidLockInfo {
        field,
        problem: problem.to_owned(),
    };
    if info.info.len() > MAX_LOCK_INFO_BYTES {
        return Err(invalid("Info", "is longer than 4 KiB"));
    }
    if info
        .info
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(invalid("Info", "holds control characters"));
    }
    let one_line = [
        ("ID", &info.id),
        ("Operation", &info.operation),
        ("Who", &info.who),
        ("Version", &info.version),
        ("Path", &info.path),
    ];
    for (field, value) in one_line {
        if value.chars().count() > MAX_LOCK_FIELD_CHARS {
            return Err(invalid(field, "is longer than 512 characters"));
        }
        if value
            .chars()
            .any(|c| c.is_control() || crate::model::is_invisible(c))
        {
            return Err(invalid(field, "holds control or invisible characters"));
        }
    }
    Ok(())
}
