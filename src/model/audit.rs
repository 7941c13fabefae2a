//! What the audit log records: the actions, by their wire (and stored) names.

super::wire_enum::wire_enum!(
    /// What an audit event records.
    AuditAction, unknown: UnknownAuditAction {
        /// An environment was created.
        EnvironmentCreate = "environment.create",
        /// An environment was updated.
        EnvironmentUpdate = "environment.update",
        /// An environment was deleted (its workers were stopped).
        EnvironmentDelete = "environment.delete",
        /// A worker token was issued by `worker-command`.
        WorkerTokenIssue = "worker_token.issue",
        /// Every worker token of an environment was revoked and one new token issued.
        WorkerTokenRotate = "worker_token.rotate",
        /// A worker registered.
        WorkerRegister = "worker.register",
        /// A worker deregistered.
        WorkerDeregister = "worker.deregister",
    }
);

/// A name that is not one of [`AuditAction::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit action `{0}`")]
pub struct UnknownAuditAction(pub String);
