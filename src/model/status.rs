//! The lifecycle status of an environment.

super::wire_enum::wire_enum!(
    /// The lifecycle status of an environment.
    Status, unknown: UnknownStatus {
        /// The organization's Temporal namespace is being provisioned.
        Provisioning = "provisioning",
        /// The namespace is ready; the environment does not accept work yet.
        Ready = "ready",
        /// The environment accepts work.
        Active = "active",
        /// Provisioning failed, see `error_message`.
        Error = "error",
        /// Disabled by a user.
        Inactive = "inactive",
    }
);

impl Status {
    /// Whether a user may set this status (the service sets the others itself).
    pub fn is_user_settable(self) -> bool {
        matches!(self, Status::Active | Status::Inactive)
    }

    /// Whether provisioning has ended, successfully or not.
    pub fn is_settled(self) -> bool {
        !matches!(self, Status::Provisioning)
    }
}

/// A status string that is not one of [`Status::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status `{0}` (expected one of provisioning, ready, active, error, inactive)")]
pub struct UnknownStatus(pub String);
