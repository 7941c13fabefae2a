//! State (docs/src/concepts/state.md): the document of what was applied, the backends that keep it (a local file,
//! a server speaking Terraform's HTTP backend protocol) and their locks. Knows nothing of the API.
//!
//! The rest of envform goes through [`StateBackend`] only. Every write is checked against the
//! stored state (same lineage, higher serial) on top of the lock, so two configurations sharing
//! one state, or a write based on an outdated read, are refused rather than lose work.

mod applied;
mod backend;
mod document;
mod error;
mod http;
mod journal;
mod local;
mod lock;
mod lock_protocol;
mod lock_wait;

pub use applied::AppliedFields;
pub use backend::{StateBackend, decode_state};
pub use document::*;
pub use error::StateError;
pub use http::{HttpBackend, HttpBackendSettings, PASSWORD_VARIABLES};
pub use journal::StateChanges;
pub use local::{LocalBackend, STATE_DIRECTORY, STATE_FILE};
pub use lock::{LockHandle, check_lock_log};
pub use lock_protocol::{
    FENCING_TOKEN_HEADER, FORCE_UNLOCK_OPERATION, FencingToken, LockGrant, LockInfo,
};
pub use lock_wait::lock_with_timeout;
