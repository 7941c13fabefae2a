//! What the state server keeps, and the store trait behind it: workspace names, stored documents,
//! locks, fencing counters and the lock event log. The rules that decide over them are
//! [`crate::control_plane::state_service::StateService`]'s; [`super::SqliteStore`] keeps them.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::state::{FencingToken, LockInfo};

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
    /// The API key that took it (`key:<name>`): only it renews, releases and writes under it.
    /// `None` for a lock taken before locks were bound to keys.
    pub holder_key: Option<String>,
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
    /// A LOCK naming the holder's lock ID was refused: it came from another key.
    LockRefused,
    /// An UNLOCK naming the holder's lock ID was refused: it came from another key.
    UnlockRefused,
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
            LockEventKind::LockRefused => "lock_refused",
            LockEventKind::UnlockRefused => "unlock_refused",
        }
    }

    /// Every kind.
    pub const ALL: [LockEventKind; 8] = [
        LockEventKind::Granted,
        LockEventKind::Renewed,
        LockEventKind::TakenOver,
        LockEventKind::Unlocked,
        LockEventKind::Written,
        LockEventKind::WriteRefused,
        LockEventKind::LockRefused,
        LockEventKind::UnlockRefused,
    ];

    /// The kind stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// Why a write, a LOCK or an UNLOCK was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteRefusal {
    /// The workspace is locked and the write named another lock, or none.
    Locked,
    /// The write carried a fencing token that is not the current one.
    StaleToken,
    /// The workspace is locked and the write carried no fencing token.
    MissingToken,
    /// The request named the holder's lock, but came from another API key than the one that
    /// took it.
    OtherKey,
    /// A force-unlock of another key's lock by a key without the `admin` role.
    AdminRequired,
}

impl WriteRefusal {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteRefusal::Locked => "locked",
            WriteRefusal::StaleToken => "stale_token",
            WriteRefusal::MissingToken => "missing_token",
            WriteRefusal::OtherKey => "other_key",
            WriteRefusal::AdminRequired => "admin_required",
        }
    }

    /// The refusal stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        [
            WriteRefusal::Locked,
            WriteRefusal::StaleToken,
            WriteRefusal::MissingToken,
            WriteRefusal::OtherKey,
            WriteRefusal::AdminRequired,
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
    /// Why a write, LOCK or UNLOCK was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<WriteRefusal>,
    /// The API key that made the request (`key:<name>`); absent on events logged before locks
    /// were bound to keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The API key holding the lock the event concerns: the one in force for renewals, writes,
    /// releases and refusals; the one taken over for takeovers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_key: Option<String>,
}

impl LockEvent {
    /// An event of `kind` at `at`, naming no lock yet.
    pub(crate) fn new(at: Timestamp, kind: LockEventKind) -> Self {
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
            key: None,
            holder_key: None,
        }
    }

    /// The event, made by the API key `key`.
    pub(crate) fn by(mut self, key: &str) -> Self {
        self.key = Some(key.to_owned());
        self
    }

    /// The event, naming the lock `info` describes.
    pub(crate) fn naming(mut self, info: &LockInfo) -> Self {
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
    /// A workspace's lock events with a sequence above `after`, oldest first, at most `limit` of
    /// them (all without).
    async fn lock_events(
        &self,
        workspace: &Workspace,
        after: i64,
        limit: Option<u32>,
    ) -> Result<Vec<RecordedLockEvent>, StateStoreError>;
    /// Deletes the lock events (of every workspace) that happened before `before`; how many.
    async fn prune_lock_events(&self, before: Timestamp) -> Result<u64, StateStoreError>;
}

/// One write transaction of a [`StateStore`]: everything done through it commits together, or
/// not at all when it is dropped without [`StateTransaction::commit`].
#[async_trait::async_trait]
pub trait StateTransaction: Send {
    /// The database's clock, for stores shared by several processes whose clocks may differ;
    /// `None` when the service's own clock is to be used.
    async fn database_now(&mut self) -> Result<Option<Timestamp>, StateStoreError> {
        Ok(None)
    }
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
