//! The lifecycle status of an environment.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The lifecycle status of an environment.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The organization's Temporal namespace is being provisioned.
    Provisioning,
    /// The namespace is ready; the environment does not accept work yet.
    Ready,
    /// The environment accepts work.
    Active,
    /// Provisioning failed, see `error_message`.
    Error,
    /// Disabled by a user.
    Inactive,
}

impl Status {
    /// All statuses, in lifecycle order.
    pub const ALL: [Status; 5] = [
        Status::Provisioning,
        Status::Ready,
        Status::Active,
        Status::Error,
        Status::Inactive,
    ];

    /// The wire name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Provisioning => "provisioning",
            Status::Ready => "ready",
            Status::Active => "active",
            Status::Error => "error",
            Status::Inactive => "inactive",
        }
    }

    /// Whether a user may set this status (the service sets the others itself).
    pub fn is_user_settable(self) -> bool {
        matches!(self, Status::Active | Status::Inactive)
    }

    /// Whether provisioning has ended, successfully or not.
    pub fn is_settled(self) -> bool {
        !matches!(self, Status::Provisioning)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// A status string that is not one of [`Status::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status `{0}` (expected one of provisioning, ready, active, error, inactive)")]
pub struct UnknownStatus(pub String);
