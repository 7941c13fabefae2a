//! State (docs/src/concepts/state.md): the document of what was applied, the backends that keep it (a local file,
//! a server speaking Terraform's HTTP backend protocol) and their locks. Knows nothing of the API.
//!
//! The rest of envform goes through [`StateBackend`] only. Every write is checked against the
//! stored state (same lineage, higher serial) on top of the lock, so two configurations sharing
//! one state, or a write based on an outdated read, are refused rather than lose work.

mod backend;
mod document;
mod http;
mod local;
mod lock;

pub use backend::{StateBackend, StateError};
pub use document::*;
pub use http::{HttpBackend, HttpBackendSettings, PASSWORD_VARIABLES};
pub use local::{LocalBackend, STATE_DIRECTORY, STATE_FILE};
pub use lock::{
    FENCING_TOKEN_HEADER, FencingToken, LockGrant, LockHandle, LockInfo, check_lock_log,
    lock_with_timeout,
};
