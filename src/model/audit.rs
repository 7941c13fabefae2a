//! What the audit log records: the actions, by their wire (and stored) names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What an audit event records.
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
pub enum AuditAction {
    /// An environment was created.
    #[serde(rename = "environment.create")]
    EnvironmentCreate,
    /// An environment was updated.
    #[serde(rename = "environment.update")]
    EnvironmentUpdate,
    /// An environment was deleted (its workers were stopped).
    #[serde(rename = "environment.delete")]
    EnvironmentDelete,
    /// A worker token was issued by `worker-command`.
    #[serde(rename = "worker_token.issue")]
    WorkerTokenIssue,
    /// Every worker token of an environment was revoked and one new token issued.
    #[serde(rename = "worker_token.rotate")]
    WorkerTokenRotate,
    /// A worker registered.
    #[serde(rename = "worker.register")]
    WorkerRegister,
    /// A worker deregistered.
    #[serde(rename = "worker.deregister")]
    WorkerDeregister,
}

impl AuditAction {
    /// Every action.
    pub const ALL: [AuditAction; 7] = [
        AuditAction::EnvironmentCreate,
        AuditAction::EnvironmentUpdate,
        AuditAction::EnvironmentDelete,
        AuditAction::WorkerTokenIssue,
        AuditAction::WorkerTokenRotate,
        AuditAction::WorkerRegister,
        AuditAction::WorkerDeregister,
    ];

    /// The wire (and stored) name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::EnvironmentCreate => "environment.create",
            AuditAction::EnvironmentUpdate => "environment.update",
            AuditAction::EnvironmentDelete => "environment.delete",
            AuditAction::WorkerTokenIssue => "worker_token.issue",
            AuditAction::WorkerTokenRotate => "worker_token.rotate",
            AuditAction::WorkerRegister => "worker.register",
            AuditAction::WorkerDeregister => "worker.deregister",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`AuditAction::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit action `{0}`")]
pub struct UnknownAuditAction(pub String);

impl FromStr for AuditAction {
    type Err = UnknownAuditAction;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditAction::ALL
            .into_iter()
            .find(|action| action.as_str() == s)
            .ok_or_else(|| UnknownAuditAction(s.to_owned()))
    }
}
