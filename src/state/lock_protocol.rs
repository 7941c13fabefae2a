//! The lock protocol's data: who holds a lock ([`LockInfo`], Terraform's JSON names), the fencing
//! token an envform server grants, and the grant's body. Plain values with no I/O, so the error
//! type, the backends and the lock handle can all name them.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The header that carries a lock's fencing token on state writes, when the server issued one.
pub const FENCING_TOKEN_HEADER: &str = "X-Envform-Fencing-Token";

/// The `Operation` of an unlock that breaks a lock (`envform force-unlock`) rather than releases
/// the caller's own: an envform server then answers 403 naming the role a break needs.
pub const FORCE_UNLOCK_OPERATION: &str = "force-unlock";

/// Who holds a lock, for what and since when; the JSON names are Terraform's, so HTTP state
/// servers written for Terraform store and return it unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Unique ID of this lock (a UUID); state writes and unlocks name it.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// The command that holds it, e.g. `apply`.
    #[serde(rename = "Operation", default)]
    pub operation: String,
    /// Free-form extra information.
    #[serde(rename = "Info", default)]
    pub info: String,
    /// `user@host` of the holder.
    #[serde(rename = "Who", default)]
    pub who: String,
    /// The holder's envform version.
    #[serde(rename = "Version", default)]
    pub version: String,
    /// When the lock was taken.
    #[serde(rename = "Created", default)]
    pub created: jiff::Timestamp,
    /// The state the lock protects (a file path or an address).
    #[serde(rename = "Path", default)]
    pub path: String,
}

impl LockInfo {
    /// Lock information for `operation` on the state at `path`, with a fresh ID, this user and
    /// host, this envform version and the current time.
    pub fn new(operation: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            id: Uuid::new_v4().to_string(),
            operation: operation.into(),
            info: String::new(),
            who: crate::local::user_and_host(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            created: jiff::Timestamp::now(),
            path: path.into(),
        }
    }

    /// The same information with `Info` set.
    pub fn with_info(mut self, info: impl Into<String>) -> Self {
        self.info = info.into();
        self
    }
}

impl fmt::Display for LockInfo {
    /// One line: `alice@laptop (apply, ID 5f0c…, since 2026-01-02T03:04:05Z)`; no `ID` part
    /// when the ID is not known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = if self.who.is_empty() {
            "an unknown holder"
        } else {
            &self.who
        };
        write!(f, "{who} (")?;
        if !self.operation.is_empty() {
            write!(f, "{}, ", self.operation)?;
        }
        // A server may withhold the ID from anyone but the key that took the lock.
        if !self.id.is_empty() {
            write!(f, "ID {}, ", self.id)?;
        }
        write!(f, "since {})", self.created.strftime("%Y-%m-%dT%H:%M:%SZ"))
    }
}

/// A number that grows with every lock an envform server grants. A server that issued one
/// refuses state writes carrying an older one, so a holder whose lease ran out while it was
/// paused cannot overwrite the work of the next holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FencingToken(pub u64);

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The body of a granted LOCK beyond Terraform's protocol, whose servers may answer 200 with any
/// body: a fencing token every state write must carry (in [`FENCING_TOKEN_HEADER`]), and a lease
/// the holder renews by sending the same LOCK (same ID) again before it runs out. Both optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockGrant {
    /// The token state writes under this lock must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<FencingToken>,
    /// How long the lock lasts unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_seconds: Option<u64>,
}
