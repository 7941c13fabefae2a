//! [`StateError`]: every way reading, writing or locking state can fail, each with its own code.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{FencingToken, Lineage, LockInfo};

/// Why reading, writing or locking state failed. Messages never carry passwords.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StateError {
    /// Someone else holds the lock.
    #[error("the state is locked by {}", holder_text(holder.as_deref()))]
    #[diagnostic(
        code(envform::state::locked),
        help(
            "wait for it with --lock-timeout, or, if its holder is gone, break it with `envform force-unlock ID`"
        )
    )]
    Locked {
        /// The holder's information, when the backend could read it.
        holder: Option<Box<LockInfo>>,
    },

    /// The state manages environments on another control plane than this run's.
    #[error("the state was last written for {recorded}; this run targets {target}")]
    #[diagnostic(
        code(envform::state::target_changed),
        help(
            "check --api-url (or the embedded database) and the state's location; if the control \
             plane really moved, pass --control-plane-moved to record the new one"
        )
    )]
    TargetChanged {
        /// The control plane the state was written for.
        recorded: String,
        /// The one this run targets.
        target: String,
    },

    /// The lock was still held when `--lock-timeout` ran out.
    #[error(
        "the state lock is still held by {} after waiting {}",
        holder_text(holder.as_deref()),
        duration_text(*waited)
    )]
    #[diagnostic(
        code(envform::state::lock_timeout),
        help(
            "wait longer with --lock-timeout, or, if its holder is gone, break it with `envform force-unlock ID`"
        )
    )]
    LockTimeout {
        /// How long the lock was waited for.
        waited: Duration,
        /// The last holder seen.
        holder: Option<Box<LockInfo>>,
    },

    /// A file operation failed.
    #[error("cannot {operation} {}", path.display())]
    #[diagnostic(code(envform::state::io))]
    Io {
        /// What was being done: `read`, `write`, `rename`, `lock`, ...
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The stored state is not a valid state document.
    #[error("the state in {path} is corrupt: {message} at line {line}, column {column}")]
    #[diagnostic(
        code(envform::state::corrupt),
        help(
            "envform never overwrites a corrupt state; repair it by hand (local state keeps the previous version beside it as `.backup`)"
        )
    )]
    Corrupt {
        /// The file or address it was read from.
        path: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong.
        message: String,
    },

    /// The server's `Content-MD5` does not match the state it sent.
    #[error("the state from {address} does not match its Content-MD5 header")]
    #[diagnostic(code(envform::state::checksum))]
    ChecksumMismatch {
        /// The state's address.
        address: String,
    },

    /// The state was written in a format this envform does not read.
    #[error(
        "the state in {path} has format version {found}; this envform reads version {supported}"
    )]
    #[diagnostic(
        code(envform::state::unsupported_version),
        help("use the envform version that wrote it, or a newer one")
    )]
    UnsupportedVersion {
        /// The file or address.
        path: String,
        /// The version found.
        found: u64,
        /// The version this envform reads and writes.
        supported: u32,
    },

    /// The stored state belongs to another history: two configurations share one state.
    #[error(
        "the state in {path} has lineage {stored}, not {new}: it belongs to another configuration"
    )]
    #[diagnostic(
        code(envform::state::lineage_mismatch),
        help("give each configuration its own state (`state.path`, or another address)")
    )]
    LineageMismatch {
        /// The file or address.
        path: String,
        /// The lineage stored there.
        stored: Lineage,
        /// The lineage of the state being written.
        new: Lineage,
    },

    /// The stored state is as new as or newer than the one being written: someone wrote it since
    /// it was read.
    #[error(
        "the state in {path} has serial {stored}, which is not older than the serial {new} being written: it changed since it was read"
    )]
    #[diagnostic(
        code(envform::state::serial),
        help("run the command again to start from the current state")
    )]
    SerialNotIncreased {
        /// The file or address.
        path: String,
        /// The serial stored there.
        stored: u64,
        /// The serial of the state being written.
        new: u64,
    },

    /// The server refused a write whose fencing token is no longer current: the lock expired and
    /// was taken by someone else.
    #[error("{address} refused the state write: its lock token{} is stale", token_text(*token))]
    #[diagnostic(
        code(envform::state::stale_fencing_token),
        help("the lock expired while this command ran; run it again")
    )]
    StaleFencingToken {
        /// The state's address.
        address: String,
        /// The token sent, if any.
        token: Option<FencingToken>,
    },

    /// The server refused to renew the lock's lease.
    #[error("the state lock {lock_id} was lost: the server refused to renew its lease")]
    #[diagnostic(code(envform::state::lease_lost))]
    LeaseLost {
        /// The lost lock's ID.
        lock_id: String,
    },

    /// A lock handle was given to a backend that did not grant it.
    #[error("lock {lock_id} was not granted by {backend}")]
    #[diagnostic(code(envform::state::foreign_lock))]
    ForeignLock {
        /// The handle's lock ID.
        lock_id: String,
        /// The backend it was given to.
        backend: String,
    },

    /// `force-unlock` named a lock other than the one held.
    #[error("the state lock is held by {}, not by lock {given}", holder_text(holder.as_deref()))]
    #[diagnostic(code(envform::state::lock_id_mismatch))]
    LockIdMismatch {
        /// The ID given.
        given: String,
        /// The actual holder.
        holder: Option<Box<LockInfo>>,
    },

    /// `force-unlock` of a local lock whose holder is still running: the OS lock ends only with
    /// its process.
    #[error("the local state lock is held by a running process: {}", holder_text(holder.as_deref()))]
    #[diagnostic(
        code(envform::state::held_by_running_process),
        help("a local lock is released when its process ends; stop that process instead")
    )]
    HeldByRunningProcess {
        /// The holder.
        holder: Option<Box<LockInfo>>,
    },

    /// The server refused the credentials (401 or 403).
    #[error("{address} answered {status}: the credentials are missing or refused")]
    #[diagnostic(code(envform::state::unauthorized))]
    Unauthorized {
        /// The address called.
        address: String,
        /// The status.
        status: u16,
        /// What to set, from what was sent: no user, no password, or both refused.
        #[help]
        help: String,
    },

    /// The server answered with an unexpected status.
    #[error("{address} answered {status}: {body}")]
    #[diagnostic(
        code(envform::state::http),
        help(
            "the state server refused the request (its answer ends the message); check the state address and the server's log"
        )
    )]
    Http {
        /// The address called.
        address: String,
        /// The status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },

    /// The server could not be reached.
    #[error("cannot reach {address}: {message}")]
    #[diagnostic(
        code(envform::state::transport),
        help(
            "check the state address (--state-address, ENVFORM_STATE_ADDRESS or `state.address`) and the network"
        )
    )]
    Transport {
        /// The address called.
        address: String,
        /// The error and its causes on one line.
        message: String,
        /// The client's error (without the URL, which may carry credentials). Not the error's
        /// `source`: `message` already says it, and a report would print every cause twice.
        cause: reqwest::Error,
    },

    /// The backend settings are unusable.
    #[error("invalid state backend settings: {message}")]
    #[diagnostic(code(envform::state::settings))]
    InvalidSettings {
        /// What is wrong.
        message: String,
    },

    /// The state could not be serialized.
    #[error("cannot encode the state")]
    #[diagnostic(code(envform::state::encode))]
    Encode(#[source] serde_json::Error),

    /// A blocking file task panicked or was cancelled.
    #[error("a state file task failed")]
    #[diagnostic(code(envform::state::task))]
    Task(#[source] tokio::task::JoinError),
}

impl StateError {
    /// An I/O error of `operation` on `path`.
    pub(crate) fn io(operation: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            operation,
            path: path.to_owned(),
            source,
        }
    }
}

fn holder_text(holder: Option<&LockInfo>) -> String {
    match holder {
        Some(holder) => holder.to_string(),
        None => "another process (no lock information)".to_owned(),
    }
}

fn token_text(token: Option<FencingToken>) -> String {
    match token {
        Some(token) => format!(" {token}"),
        None => String::new(),
    }
}

fn duration_text(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}
