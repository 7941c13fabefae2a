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
    #[error(
        "the workspace name may only hold letters, digits, `.`, `_` and `-`, not {character:?}"
    )]
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::store::SqliteStore;

    /// A clock that moves only when told to.
    struct FakeClock(Mutex<Timestamp>);

    impl FakeClock {
        fn new() -> Arc<Self> {
            Arc::new(Self(Mutex::new(
                Timestamp::from_second(1_800_000_000).unwrap(),
            )))
        }

        fn advance(&self, by: Duration) {
            let mut now = self.0.lock().unwrap();
            *now = Timestamp::from_microsecond(
                now.as_microsecond() + i64::try_from(by.as_micros()).unwrap(),
            )
            .unwrap();
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Timestamp {
            *self.0.lock().unwrap()
        }
    }

    const LEASE: Duration = Duration::from_secs(30);

    async fn service() -> (StateService, Arc<FakeClock>) {
        let clock = FakeClock::new();
        let store = SqliteStore::in_memory().await.unwrap();
        let service = StateService::new(Arc::new(store), clock.clone(), LEASE);
        (service, clock)
    }

    fn workspace(organization: &str, name: &str) -> Workspace {
        Workspace {
            organization: organization.to_owned(),
            name: WorkspaceName::parse(name).unwrap(),
        }
    }

    fn info(id: &str, who: &str) -> LockInfo {
        LockInfo {
            id: id.to_owned(),
            who: who.to_owned(),
            ..LockInfo::new("apply", "ws")
        }
    }

    fn write(document: &str, lock_id: Option<&str>, token: Option<u64>) -> StateWrite {
        StateWrite {
            document: document.to_owned(),
            lock_id: lock_id.map(str::to_owned),
            fencing_token: token.map(FencingToken),
        }
    }

    fn kinds(events: &[RecordedLockEvent]) -> Vec<LockEventKind> {
        events.iter().map(|recorded| recorded.event.kind).collect()
    }

    #[tokio::test]
    async fn grants_renews_and_refuses_others_with_the_holder() {
        let (service, clock) = service().await;
        let main = workspace("org-a", "main");

        let granted = service.lock(&main, info("one", "alice@a")).await.unwrap();
        assert_eq!(granted.kind, GrantKind::New);
        assert_eq!(granted.fencing_token, FencingToken(1));
        assert_eq!(granted.lease, LEASE);
        assert_eq!(
            granted.lease_expires_at.as_second(),
            clock.now().as_second() + 30
        );

        clock.advance(Duration::from_secs(20));
        let renewed = service.lock(&main, info("one", "alice@a")).await.unwrap();
        assert_eq!(renewed.kind, GrantKind::Renewed);
        assert_eq!(renewed.fencing_token, FencingToken(1), "same token");
        assert_eq!(
            renewed.lease_expires_at.as_second(),
            clock.now().as_second() + 30,
            "the lease is extended from now"
        );

        // 40 s after the grant, but only 20 s after the renewal: still held.
        clock.advance(Duration::from_secs(20));
        let error = service.lock(&main, info("two", "bob@b")).await.unwrap_err();
        match error {
            StateServiceError::Locked { holder } => {
                assert_eq!(holder.id, "one");
                assert_eq!(holder.who, "alice@a");
            }
            other => panic!("unexpected {other:?}"),
        }
        let events = service.events(&main).await.unwrap();
        assert_eq!(
            kinds(&events),
            [LockEventKind::Granted, LockEventKind::Renewed],
            "a refused lock changes nothing"
        );
        check_single_holder(&events).unwrap();
    }

    #[tokio::test]
    async fn an_expired_lock_is_taken_over_with_a_higher_token_and_its_writes_are_refused() {
        let (service, clock) = service().await;
        let main = workspace("org-a", "main");
        let first = service.lock(&main, info("one", "alice@a")).await.unwrap();
        service
            .write(&main, write("{\"serial\":1}", Some("one"), Some(1)))
            .await
            .unwrap();

        clock.advance(LEASE);
        let second = service.lock(&main, info("two", "bob@b")).await.unwrap();
        assert_eq!(second.kind, GrantKind::TakenOver);
        assert!(second.fencing_token > first.fencing_token);
        assert_eq!(second.fencing_token, FencingToken(2));

        // The first holder wakes up: its write is refused, whatever ID it names.
        for lock_id in [Some("one"), Some("two"), None] {
            let error = service
                .write(&main, write("{\"serial\":2}", lock_id, Some(1)))
                .await
                .unwrap_err();
            assert!(
                matches!(
                    error,
                    StateServiceError::StaleFencingToken {
                        presented: Some(FencingToken(1)),
                        current: Some(FencingToken(2)),
                    }
                ),
                "{error:?}"
            );
        }
        // Its renewal is refused too: someone else holds the lock now.
        assert!(matches!(
            service.lock(&main, info("one", "alice@a")).await,
            Err(StateServiceError::Locked { holder }) if holder.id == "two"
        ));
        // And so is its unlock.
        assert!(matches!(
            service.unlock(&main, &info("one", "alice@a")).await,
            Err(StateServiceError::HeldByAnother { holder, .. }) if holder.id == "two"
        ));
        assert_eq!(
            service.get(&main).await.unwrap().unwrap().document,
            "{\"serial\":1}"
        );
        service
            .write(&main, write("{\"serial\":2}", Some("two"), Some(2)))
            .await
            .unwrap();
        assert_eq!(
            service.get(&main).await.unwrap().unwrap().document,
            "{\"serial\":2}"
        );

        let events = service.events(&main).await.unwrap();
        assert_eq!(
            kinds(&events),
            [
                LockEventKind::Granted,
                LockEventKind::Written,
                LockEventKind::TakenOver,
                LockEventKind::WriteRefused,
                LockEventKind::WriteRefused,
                LockEventKind::WriteRefused,
                LockEventKind::Written,
            ]
        );
        assert_eq!(events[2].event.holder_lock_id.as_deref(), Some("one"));
        assert!(
            events[3..6]
                .iter()
                .all(|recorded| recorded.event.refusal == Some(WriteRefusal::StaleToken))
        );
        check_single_holder(&events).unwrap();
    }

    #[tokio::test]
    async fn a_holder_renewing_after_its_lease_ran_out_keeps_its_token_if_nobody_took_it() {
        let (service, clock) = service().await;
        let main = workspace("org-a", "main");
        service.lock(&main, info("one", "alice@a")).await.unwrap();
        clock.advance(LEASE * 2);
        let renewed = service.lock(&main, info("one", "alice@a")).await.unwrap();
        assert_eq!(renewed.kind, GrantKind::Renewed);
        assert_eq!(renewed.fencing_token, FencingToken(1));
        service
            .write(&main, write("{}", Some("one"), Some(1)))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn writes_under_a_lock_must_name_it_and_carry_its_token() {
        let (service, _clock) = service().await;
        let main = workspace("org-a", "main");
        // Unlocked and never locked: a plain write goes through (Terraform's clients do that).
        service
            .write(&main, write("{\"v\":0}", None, None))
            .await
            .unwrap();
        // A token that was never issued is not current.
        assert!(matches!(
            service.write(&main, write("{}", None, Some(1))).await,
            Err(StateServiceError::StaleFencingToken { current: None, .. })
        ));

        service.lock(&main, info("one", "alice@a")).await.unwrap();
        let refusals = [
            (write("{}", None, None), WriteRefusal::Locked),
            (write("{}", Some("other"), Some(1)), WriteRefusal::Locked),
            (write("{}", Some("one"), None), WriteRefusal::MissingToken),
            (write("{}", Some("one"), Some(7)), WriteRefusal::StaleToken),
        ];
        for (request, expected) in refusals.iter().cloned() {
            let error = service.write(&main, request).await.unwrap_err();
            let status_like = match error {
                StateServiceError::Locked { holder } => {
                    assert_eq!(holder.id, "one");
                    WriteRefusal::Locked
                }
                StateServiceError::StaleFencingToken {
                    presented: None, ..
                } => WriteRefusal::MissingToken,
                StateServiceError::StaleFencingToken { .. } => WriteRefusal::StaleToken,
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(status_like, expected);
        }
        assert_eq!(
            service.get(&main).await.unwrap().unwrap().document,
            "{\"v\":0}",
            "no refused write got through"
        );
        service
            .write(&main, write("{\"v\":1}", Some("one"), Some(1)))
            .await
            .unwrap();
        service
            .unlock(&main, &info("one", "alice@a"))
            .await
            .unwrap();
        // Unlocked again: the last token is still current, a stale one is not.
        service
            .write(&main, write("{\"v\":2}", None, Some(1)))
            .await
            .unwrap();
        service
            .write(&main, write("{\"v\":3}", None, None))
            .await
            .unwrap();
        assert!(matches!(
            service.write(&main, write("", None, None)).await,
            Err(StateServiceError::EmptyDocument)
        ));

        let events = service.events(&main).await.unwrap();
        let refused: Vec<_> = events
            .iter()
            .filter_map(|recorded| recorded.event.refusal)
            .collect();
        assert_eq!(
            refused,
            [
                WriteRefusal::StaleToken,
                WriteRefusal::Locked,
                WriteRefusal::Locked,
                WriteRefusal::MissingToken,
                WriteRefusal::StaleToken,
            ]
        );
        check_single_holder(&events).unwrap();
    }

    #[tokio::test]
    async fn unlock_by_the_holder_by_another_and_force_unlock() {
        let (service, clock) = service().await;
        let main = workspace("org-a", "main");
        assert_eq!(
            service.unlock(&main, &info("none", "x")).await.unwrap(),
            Unlocked::NotLocked
        );

        service.lock(&main, info("one", "alice@a")).await.unwrap();
        let error = service
            .unlock(&main, &info("other", "bob@b"))
            .await
            .unwrap_err();
        match error {
            StateServiceError::HeldByAnother { holder, requested } => {
                assert_eq!(holder.id, "one");
                assert_eq!(requested, "other");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            service
                .unlock(&main, &info("one", "alice@a"))
                .await
                .unwrap(),
            Unlocked::Released
        );
        let next = service.lock(&main, info("two", "bob@b")).await.unwrap();
        assert_eq!(next.kind, GrantKind::New);
        assert_eq!(
            next.fencing_token,
            FencingToken(2),
            "tokens are never reused"
        );

        // force-unlock: someone else names the holder's ID (with its own information).
        let breaker = LockInfo {
            id: "two".to_owned(),
            ..LockInfo::new("force-unlock", "ws")
        };
        assert_eq!(
            service.unlock(&main, &breaker).await.unwrap(),
            Unlocked::Released
        );
        let third = service.lock(&main, info("three", "carol@c")).await.unwrap();
        assert_eq!(third.fencing_token, FencingToken(3));

        // Another ID on an expired lock: nothing is in force, so nothing to refuse.
        clock.advance(LEASE);
        assert_eq!(
            service
                .unlock(&main, &info("other", "bob@b"))
                .await
                .unwrap(),
            Unlocked::NotLocked
        );

        assert!(matches!(
            service.lock(&main, info("", "x")).await,
            Err(StateServiceError::MissingLockId)
        ));
        let events = service.events(&main).await.unwrap();
        assert_eq!(
            kinds(&events),
            [
                LockEventKind::Granted,
                LockEventKind::Unlocked,
                LockEventKind::Granted,
                LockEventKind::Unlocked,
                LockEventKind::Granted,
            ]
        );
        assert_eq!(events[3].event.operation.as_deref(), Some("force-unlock"));
        check_single_holder(&events).unwrap();
    }

    #[tokio::test]
    async fn organizations_and_workspaces_are_separate() {
        let (service, _clock) = service().await;
        let a_main = workspace("org-a", "main");
        let b_main = workspace("org-b", "main");
        let a_other = workspace("org-a", "other");
        service.lock(&a_main, info("a", "alice@a")).await.unwrap();
        service
            .write(&a_main, write("{\"org\":\"a\"}", Some("a"), Some(1)))
            .await
            .unwrap();
        assert_eq!(service.get(&b_main).await.unwrap(), None);
        assert_eq!(service.get(&a_other).await.unwrap(), None);
        let b = service.lock(&b_main, info("b", "bob@b")).await.unwrap();
        assert_eq!(
            b.fencing_token,
            FencingToken(1),
            "each workspace counts its own"
        );
        service.lock(&a_other, info("c", "carol@c")).await.unwrap();
        assert!(service.events(&b_main).await.unwrap().len() == 1);
    }

    #[tokio::test]
    async fn fencing_tokens_are_never_reused_across_restarts() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("serve.db");
        let main = workspace("org-a", "main");
        let mut tokens = Vec::new();
        for round in 0..3 {
            let store = SqliteStore::open(&path).await.unwrap();
            let service = StateService::new(Arc::new(store.clone()), FakeClock::new(), LEASE);
            let id = format!("lock-{round}");
            let granted = service.lock(&main, info(&id, "alice@a")).await.unwrap();
            tokens.push(granted.fencing_token.0);
            service.unlock(&main, &info(&id, "alice@a")).await.unwrap();
            store.close().await;
        }
        assert_eq!(tokens, [1, 2, 3]);
        let store = SqliteStore::open(&path).await.unwrap();
        let service = StateService::new(Arc::new(store), FakeClock::new(), LEASE);
        check_single_holder(&service.events(&main).await.unwrap()).unwrap();
    }

    #[tokio::test]
    async fn racing_lock_requests_on_one_database_grant_exactly_one() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("serve.db");
        // Two stores on one file, as two server processes would have.
        let stores = [
            SqliteStore::open(&path).await.unwrap(),
            SqliteStore::open(&path).await.unwrap(),
        ];
        let main = workspace("org-a", "main");
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..16 {
            let store = stores[index % 2].clone();
            let main = main.clone();
            tasks.spawn(async move {
                let service = StateService::new(Arc::new(store), Arc::new(SystemClock), LEASE);
                service
                    .lock(&main, info(&format!("lock-{index}"), "racer@test"))
                    .await
            });
        }
        let mut granted = 0;
        let mut refused = 0;
        while let Some(result) = tasks.join_next().await {
            match result.unwrap() {
                Ok(grant) => {
                    assert_eq!(grant.fencing_token, FencingToken(1));
                    granted += 1;
                }
                Err(StateServiceError::Locked { .. }) => refused += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((granted, refused), (1, 15));
    }

    #[tokio::test]
    async fn the_event_log_check_finds_overlapping_holders() {
        let (service, clock) = service().await;
        let main = workspace("org-a", "main");
        service.lock(&main, info("one", "alice@a")).await.unwrap();
        clock.advance(Duration::from_secs(1));
        let mut events = service.events(&main).await.unwrap();
        check_single_holder(&events).unwrap();

        // A second grant while the first lease runs, as a broken server would log it.
        let mut intruder = events[0].clone();
        intruder.sequence += 1;
        intruder.event.lock_id = Some("two".to_owned());
        intruder.event.fencing_token = Some(FencingToken(2));
        intruder.event.at = clock.now();
        events.push(intruder.clone());
        let overlap = check_single_holder(&events).unwrap_err();
        assert_eq!(overlap.sequence, intruder.sequence);
        assert!(overlap.problem.contains("two"), "{overlap}");

        // The same grant after the lease ran out is a takeover, and fine.
        events.pop();
        intruder.event.kind = LockEventKind::TakenOver;
        intruder.event.at = Timestamp::from_microsecond(
            events[0].event.lease_expires_at.unwrap().as_microsecond() + 1,
        )
        .unwrap();
        events.push(intruder.clone());
        check_single_holder(&events).unwrap();

        // A token that does not grow is a fault too.
        events.pop();
        intruder.event.fencing_token = Some(FencingToken(1));
        events.push(intruder);
        assert!(check_single_holder(&events).is_err());
    }

    #[test]
    fn workspace_names_are_checked() {
        for name in [
            "main",
            "a",
            "prod.eu-1_b",
            &"x".repeat(MAX_WORKSPACE_NAME_LENGTH),
        ] {
            assert_eq!(WorkspaceName::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(WorkspaceName::parse(""), Err(InvalidWorkspaceName::Empty));
        assert_eq!(
            WorkspaceName::parse(".."),
            Err(InvalidWorkspaceName::DotSegment)
        );
        assert_eq!(
            WorkspaceName::parse("."),
            Err(InvalidWorkspaceName::DotSegment)
        );
        assert_eq!(
            WorkspaceName::parse("a/b"),
            Err(InvalidWorkspaceName::Character { character: '/' })
        );
        assert_eq!(
            WorkspaceName::parse("a\\b"),
            Err(InvalidWorkspaceName::Character { character: '\\' })
        );
        assert_eq!(
            WorkspaceName::parse("é"),
            Err(InvalidWorkspaceName::Character { character: 'é' })
        );
        assert_eq!(
            WorkspaceName::parse(&"x".repeat(200)),
            Err(InvalidWorkspaceName::TooLong { length: 200 })
        );
    }

    #[test]
    fn event_kinds_and_refusals_round_trip_their_names() {
        for kind in [
            LockEventKind::Granted,
            LockEventKind::Renewed,
            LockEventKind::TakenOver,
            LockEventKind::Unlocked,
            LockEventKind::Written,
            LockEventKind::WriteRefused,
        ] {
            assert_eq!(LockEventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        for refusal in [
            WriteRefusal::Locked,
            WriteRefusal::StaleToken,
            WriteRefusal::MissingToken,
        ] {
            assert_eq!(WriteRefusal::parse(refusal.as_str()), Some(refusal));
        }
        assert_eq!(LockEventKind::parse("stolen"), None);
    }
}
