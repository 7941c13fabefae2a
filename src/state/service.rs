//! [`StateService`]: the rules of the state server `envform serve` offers (DESIGN §7), over a
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
//! Each operation is one store transaction (read, decide, write), so two servers on one
//! database, or two requests at once, cannot both win a lock. The clock is injected
//! ([`Clock`]) so expiry can be tested without waiting.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{FencingToken, LockInfo};

/// The longest workspace name.
pub const MAX_WORKSPACE_NAME_LENGTH: usize = 128;

/// The name of one state in an organization: 1 to 128 characters of `A-Z a-z 0-9 . _ -`, and
/// not `.` or `..`, so it can never name a path outside its own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkspaceName(String);

/// Why a text is not a workspace name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWorkspaceName {
    /// The name is empty.
    #[error("the workspace name is empty")]
    Empty,
    /// The name is longer than [`MAX_WORKSPACE_NAME_LENGTH`].
    #[error(
        "the workspace name is {length} characters long; at most {MAX_WORKSPACE_NAME_LENGTH} are allowed"
    )]
    TooLong {
        /// Its length in characters.
        length: usize,
    },
    /// The name holds a character outside `A-Z a-z 0-9 . _ -`.
    #[error("the workspace name may only hold letters, digits, `.`, `_` and `-`, not {character:?}")]
    Character {
        /// The first character refused.
        character: char,
    },
    /// The name is `.` or `..`.
    #[error("the workspace name cannot be `.` or `..`")]
    DotSegment,
}

impl WorkspaceName {
    /// Checks `text` and wraps it.
    pub fn parse(text: &str) -> Result<Self, InvalidWorkspaceName> {
        if text.is_empty() {
            return Err(InvalidWorkspaceName::Empty);
        }
        let length = text.chars().count();
        if length > MAX_WORKSPACE_NAME_LENGTH {
            return Err(InvalidWorkspaceName::TooLong { length });
        }
        if let Some(character) = text
            .chars()
            .find(|character| !(character.is_ascii_alphanumeric() || "._-".contains(*character)))
        {
            return Err(InvalidWorkspaceName::Character { character });
        }
        if text == "." || text == ".." {
            return Err(InvalidWorkspaceName::DotSegment);
        }
        Ok(Self(text.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkspaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One state: a workspace of an organization. Organizations are separate namespaces: the same
/// workspace name in two organizations names two states.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Workspace {
    /// The organization the caller's key acts for.
    pub organization: String,
    /// The workspace's name within it.
    pub name: WorkspaceName,
}

/// Where the service reads the time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's clock, truncated to microseconds (the precision the store keeps).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let now = Timestamp::now();
        Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
    }
}

/// The lock of a workspace as stored: who holds it, its fencing token and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRecord {
    /// The holder's lock information, as sent when it was taken.
    pub info: LockInfo,
    /// The token writes under this lock must carry.
    pub fencing_token: FencingToken,
    /// When the lease ends unless renewed; from then on anyone may take the lock.
    pub lease_expires_at: Timestamp,
    /// When this holder took it.
    pub acquired_at: Timestamp,
}

impl LockRecord {
    /// Whether the lease has run out at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.lease_expires_at <= now
    }
}

/// A workspace's state document as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// The document, byte for byte as written.
    pub document: String,
    /// When it was written.
    pub updated_at: Timestamp,
}

/// What happened to a workspace's lock, or to a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockEventKind {
    /// A free lock was granted.
    Granted,
    /// The holder extended its lease.
    Renewed,
    /// A lock whose lease had run out was granted to someone else.
    TakenOver,
    /// The lock was released (by its holder, or broken by naming its ID).
    Unlocked,
    /// The state was written.
    Written,
    /// A write was refused.
    WriteRefused,
}

impl LockEventKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            LockEventKind::Granted => "granted",
            LockEventKind::Renewed => "renewed",
            LockEventKind::TakenOver => "taken_over",
            LockEventKind::Unlocked => "unlocked",
            LockEventKind::Written => "written",
            LockEventKind::WriteRefused => "write_refused",
        }
    }

    /// The kind stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        [
            LockEventKind::Granted,
            LockEventKind::Renewed,
            LockEventKind::TakenOver,
            LockEventKind::Unlocked,
            LockEventKind::Written,
            LockEventKind::WriteRefused,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteRefusal {
    /// The workspace is locked and the write named another lock, or none.
    Locked,
    /// The write carried a fencing token that is not the current one.
    StaleToken,
    /// The workspace is locked and the write carried no fencing token.
    MissingToken,
}

impl WriteRefusal {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteRefusal::Locked => "locked",
            WriteRefusal::StaleToken => "stale_token",
            WriteRefusal::MissingToken => "missing_token",
        }
    }

    /// The refusal stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        [
            WriteRefusal::Locked,
            WriteRefusal::StaleToken,
            WriteRefusal::MissingToken,
        ]
        .into_iter()
        .find(|refusal| refusal.as_str() == text)
    }
}

/// One entry of the lock event log. Never holds the state document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEvent {
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: LockEventKind,
    /// The lock the request named (the holder's, for grants, renewals and releases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_id: Option<String>,
    /// `Who` of the request's lock information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<String>,
    /// `Operation` of the request's lock information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The fencing token granted, renewed, or carried by the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<FencingToken>,
    /// The end of the lease granted or renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<Timestamp>,
    /// The lock in place before: the expired one taken over, or the one a write was refused for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_lock_id: Option<String>,
    /// Why a write was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<WriteRefusal>,
}

impl LockEvent {
    fn new(at: Timestamp, kind: LockEventKind) -> Self {
        Self {
            at,
            kind,
            lock_id: None,
            who: None,
            operation: None,
            fencing_token: None,
            lease_expires_at: None,
            holder_lock_id: None,
            refusal: None,
        }
    }

    fn naming(mut self, info: &LockInfo) -> Self {
        self.lock_id = Some(info.id.clone());
        self.who = Some(info.who.clone()).filter(|who| !who.is_empty());
        self.operation = Some(info.operation.clone()).filter(|operation| !operation.is_empty());
        self
    }
}

/// A [`LockEvent`] with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedLockEvent {
    /// Its position in the log: strictly increasing, in the order the events happened.
    pub sequence: i64,
    /// The event.
    #[serde(flatten)]
    pub event: LockEvent,
}

/// Why the store failed; the service passes it on.
#[derive(Debug, thiserror::Error)]
#[error("state storage failed: {message}")]
pub struct StateStoreError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StateStoreError {
    /// An error with a message and the error that caused it.
    pub fn new(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Stored data that cannot be read back.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }
}

/// Where the state server keeps documents, locks, fencing counters and the event log.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync {
    /// Starts a write transaction; writers are serialized, so what it reads stays current
    /// until it commits.
    async fn begin_state(&self) -> Result<Box<dyn StateTransaction>, StateStoreError>;
    /// A workspace's document, if one was written.
    async fn state_document(
        &self,
        workspace: &Workspace,
    ) -> Result<Option<StoredDocument>, StateStoreError>;
    /// A workspace's lock event log, oldest first.
    async fn lock_events(
        &self,
        workspace: &Workspace,
    ) -> Result<Vec<RecordedLockEvent>, StateStoreError>;
}

/// One write transaction of a [`StateStore`]: everything done through it commits together, or
/// not at all when it is dropped without [`StateTransaction::commit`].
#[async_trait::async_trait]
pub trait StateTransaction: Send {
    /// The workspace's lock record, expired or not.
    async fn lock(&mut self, workspace: &Workspace) -> Result<Option<LockRecord>, StateStoreError>;
    /// Replaces the workspace's lock record.
    async fn put_lock(
        &mut self,
        workspace: &Workspace,
        record: &LockRecord,
    ) -> Result<(), StateStoreError>;
    /// Removes the workspace's lock record.
    async fn delete_lock(&mut self, workspace: &Workspace) -> Result<(), StateStoreError>;
    /// The last fencing token the workspace issued, if any.
    async fn fencing_token(
        &mut self,
        workspace: &Workspace,
    ) -> Result<Option<FencingToken>, StateStoreError>;
    /// Issues the workspace's next fencing token: one more than any it issued before.
    async fn next_fencing_token(
        &mut self,
        workspace: &Workspace,
    ) -> Result<FencingToken, StateStoreError>;
    /// Replaces the workspace's document.
    async fn write_document(
        &mut self,
        workspace: &Workspace,
        document: &str,
        at: Timestamp,
    ) -> Result<(), StateStoreError>;
    /// Appends to the workspace's lock event log.
    async fn append_event(
        &mut self,
        workspace: &Workspace,
        event: &LockEvent,
    ) -> Result<(), StateStoreError>;
    /// Commits everything done in the transaction.
    async fn commit(self: Box<Self>) -> Result<(), StateStoreError>;
}

/// Why a state operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StateServiceError {
    /// Someone else holds the lock (HTTP 423).
    #[error("the state is locked by {holder}")]
    Locked {
        /// The holder's lock information.
        holder: Box<LockInfo>,
    },
    /// An unlock named a lock other than the one held (HTTP 409).
    #[error("the state is locked by {holder}, not by lock {requested}")]
    HeldByAnother {
        /// The holder's lock information.
        holder: Box<LockInfo>,
        /// The lock ID the unlock named.
        requested: String,
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
    /// An empty state document (HTTP 400).
    #[error("the state document is empty")]
    EmptyDocument,
    /// The store failed (HTTP 500).
    #[error(transparent)]
    Storage(#[from] StateStoreError),
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
        write: StateWrite,
    ) -> Result<(), StateServiceError> {
        if write.document.is_empty() {
            return Err(StateServiceError::EmptyDocument);
        }
        let now = self.clock.now();
        let mut transaction = self.store.begin_state().await?;
        let lock = transaction.lock(workspace).await?;
        let last_issued = transaction.fencing_token(workspace).await?;
        let active = lock.as_ref().filter(|lock| !lock.is_expired(now));
        let mut event = LockEvent::new(now, LockEventKind::Written);
        event.lock_id.clone_from(&write.lock_id);
        event.fencing_token = write.fencing_token;
        event.holder_lock_id = active.map(|lock| lock.info.id.clone());
        match check_write(&write, active, last_issued) {
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

    /// Takes the lock, renews it (the same ID), or takes it over once its lease has run out;
    /// [`StateServiceError::Locked`] with the holder while someone else's lease runs.
    pub async fn lock(
        &self,
        workspace: &Workspace,
        info: LockInfo,
    ) -> Result<LockGranted, StateServiceError> {
        if info.id.is_empty() {
            return Err(StateServiceError::MissingLockId);
        }
        let now = self.clock.now();
        let lease_expires_at = self.lease_end(now);
        let mut transaction = self.store.begin_state().await?;
        let held = transaction.lock(workspace).await?;
        let (kind, record, previous_holder) = match held {
            // The holder again: a renewal, or a retried LOCK whose answer was lost. Even after
            // its lease ran out, nobody took the lock meanwhile, so its token is still current.
            Some(held) if held.info.id == info.id => (
                GrantKind::Renewed,
                LockRecord {
                    lease_expires_at,
                    ..held
                },
                None,
            ),
            Some(held) if !held.is_expired(now) => {
                // Nothing changed: the transaction is dropped, rolled back.
                return Err(StateServiceError::Locked {
                    holder: Box::new(held.info),
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
                };
                (kind, record, previous.map(|previous| previous.info.id))
            }
        };
        let mut event = LockEvent::new(now, event_kind(kind)).naming(&record.info);
        event.fencing_token = Some(record.fencing_token);
        event.lease_expires_at = Some(lease_expires_at);
        event.holder_lock_id = previous_holder;
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

    /// Releases the lock `info` names. Naming the holder's ID releases it whoever asks: that is
    /// how a lock is broken (`force-unlock ID`). Another ID while a lease runs is
    /// [`StateServiceError::HeldByAnother`]; with no lock in force there is nothing to do.
    pub async fn unlock(
        &self,
        workspace: &Workspace,
        info: &LockInfo,
    ) -> Result<Unlocked, StateServiceError> {
        if info.id.is_empty() {
            return Err(StateServiceError::MissingLockId);
        }
        let now = self.clock.now();
        let mut transaction = self.store.begin_state().await?;
        match transaction.lock(workspace).await? {
            Some(held) if held.info.id == info.id => {
                transaction.delete_lock(workspace).await?;
                let mut event = LockEvent::new(now, LockEventKind::Unlocked).naming(info);
                event.fencing_token = Some(held.fencing_token);
                transaction.append_event(workspace, &event).await?;
                transaction.commit().await?;
                Ok(Unlocked::Released)
            }
            Some(held) if !held.is_expired(now) => Err(StateServiceError::HeldByAnother {
                holder: Box::new(held.info),
                requested: info.id.clone(),
            }),
            // No lock, or one whose lease ran out: the next LOCK may take it anyway.
            None | Some(_) => Ok(Unlocked::NotLocked),
        }
    }

    /// The workspace's lock event log, oldest first.
    pub async fn events(
        &self,
        workspace: &Workspace,
    ) -> Result<Vec<RecordedLockEvent>, StateServiceError> {
        Ok(self.store.lock_events(workspace).await?)
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
                holder: Box::new(lock.info.clone()),
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

/// Two holders at once, found in a lock event log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {sequence}: {problem}")]
pub struct HolderOverlap {
    /// The event at which it shows.
    pub sequence: i64,
    /// What is wrong.
    pub problem: String,
}

/// Checks a workspace's lock event log, oldest first: a lock is granted only when none is held
/// or the holder's lease has run out, renewed and released only by its holder, with fencing
/// tokens that only grow; and every write accepted while a lease ran carried its holder's token.
pub fn check_single_holder(events: &[RecordedLockEvent]) -> Result<(), HolderOverlap> {
    /// The holder as the log tells it: lock ID, token, end of lease.
    struct Holder<'a> {
        lock_id: &'a str,
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
                    token: event.fencing_token,
                    lease_expires_at: event.lease_expires_at,
                });
            }
            LockEventKind::Renewed => match &mut holder {
                Some(current) if current.lock_id == lock_id => {
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
                        || event.fencing_token != running.token)
                {
                    return Err(overlap(format!(
                        "a write under lock {lock_id} was accepted while lock {} held the lease",
                        running.lock_id
                    )));
                }
            }
            LockEventKind::WriteRefused => {}
        }
    }
    Ok(())
}
