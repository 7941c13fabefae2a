//! The records the store keeps: plain data, no rules.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;

use crate::model::{EnvironmentId, ExecutionEnvironment, JsonMap, OrganizationId, Status};

/// Where an organization's Temporal namespace is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamespaceState {
    /// The provisioning workflow is running.
    Provisioning,
    /// The namespace exists.
    Ready,
    /// The provisioning workflow failed.
    Error,
}

impl NamespaceState {
    /// The stored (and wire) name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            NamespaceState::Provisioning => "provisioning",
            NamespaceState::Ready => "ready",
            NamespaceState::Error => "error",
        }
    }
}

impl fmt::Display for NamespaceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A namespace state name that is not one of provisioning, ready, error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown namespace state `{0}`")]
pub struct UnknownNamespaceState(pub String);

impl FromStr for NamespaceState {
    type Err = UnknownNamespaceState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "provisioning" => Ok(NamespaceState::Provisioning),
            "ready" => Ok(NamespaceState::Ready),
            "error" => Ok(NamespaceState::Error),
            other => Err(UnknownNamespaceState(other.to_owned())),
        }
    }
}

/// An organization's Temporal namespace and its provisioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRecord {
    /// Lifecycle state.
    pub state: NamespaceState,
    /// The current (or last) provisioning workflow.
    pub provisioning_workflow_id: Option<String>,
    /// The namespace's name, once ready.
    pub temporal_namespace: Option<String>,
    /// The namespace's identifier, once ready.
    pub temporal_namespace_id: Option<String>,
    /// When provisioning succeeded.
    pub provisioned_at: Option<Timestamp>,
    /// Why provisioning failed.
    pub error_message: Option<String>,
}

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationRecord {
    /// Its identifier.
    pub id: OrganizationId,
    /// Its Temporal namespace.
    pub namespace: NamespaceRecord,
    /// When it was first seen.
    pub created_at: Timestamp,
}

#[cfg(test)]
impl OrganizationRecord {
    /// An organization whose namespace is ready, with nothing else recorded: a store test's fixture.
    pub(crate) fn ready(id: OrganizationId, created_at: Timestamp) -> Self {
        Self {
            id,
            namespace: NamespaceRecord {
                state: NamespaceState::Ready,
                provisioning_workflow_id: None,
                temporal_namespace: None,
                temporal_namespace_id: None,
                provisioned_at: None,
                error_message: None,
            },
            created_at,
        }
    }
}

/// An environment as stored.
#[derive(Clone, PartialEq)]
pub struct EnvironmentRecord {
    /// Its identifier.
    pub id: EnvironmentId,
    /// The owning organization.
    pub organization_id: OrganizationId,
    /// Unique name within the organization.
    pub name: String,
    /// Human-facing name.
    pub display_name: Option<String>,
    /// Free-form description.
    pub description: Option<String>,
    /// The status clients see.
    pub status: Status,
    /// The status a user asked for (`active` or `inactive`), taken once the namespace is ready.
    pub requested_status: Status,
    /// Configuration object.
    pub configuration: Option<JsonMap>,
    /// Metadata object.
    pub metadata: Option<JsonMap>,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Settings object.
    pub settings: Option<JsonMap>,
    /// Worker execution environment (its `env_vars` values are secrets).
    pub execution_environment: Option<ExecutionEnvironment>,
    /// The organization's Temporal namespace.
    pub temporal_namespace: Option<String>,
    /// The namespace's identifier.
    pub temporal_namespace_id: Option<String>,
    /// The provisioning workflow's identifier.
    pub provisioning_workflow_id: Option<String>,
    /// When provisioning succeeded.
    pub provisioned_at: Option<Timestamp>,
    /// Why provisioning failed.
    pub error_message: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last modification time.
    pub updated_at: Timestamp,
    /// Who created it.
    pub created_by: Option<String>,
}

impl EnvironmentRecord {
    /// A new environment named `name` at `now`: displayed as its name, `active` requested and
    /// set, every optional field empty, a fresh id.
    pub fn new(organization: OrganizationId, name: &str, now: Timestamp) -> Self {
        Self {
            id: EnvironmentId::new_random(),
            organization_id: organization,
            name: name.to_owned(),
            display_name: Some(name.to_owned()),
            description: None,
            status: Status::Active,
            requested_status: Status::Active,
            configuration: None,
            metadata: None,
            tags: None,
            settings: None,
            execution_environment: None,
            temporal_namespace: None,
            temporal_namespace_id: None,
            provisioning_workflow_id: None,
            provisioned_at: None,
            error_message: None,
            created_at: now,
            updated_at: now,
            created_by: None,
        }
    }
}

impl fmt::Debug for EnvironmentRecord {
    // Written by hand so `execution_environment.env_vars` values never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvironmentRecord")
            .field("id", &self.id)
            .field("organization_id", &self.organization_id)
            .field("name", &self.name)
            .field("display_name", &self.display_name)
            .field("description", &self.description)
            .field("status", &self.status)
            .field("requested_status", &self.requested_status)
            .field("configuration", &self.configuration)
            .field("metadata", &self.metadata)
            .field("tags", &self.tags)
            .field("settings", &self.settings)
            .field(
                "execution_environment",
                &self.execution_environment.as_ref().map(|_| "<redacted>"),
            )
            .field("temporal_namespace", &self.temporal_namespace)
            .field("temporal_namespace_id", &self.temporal_namespace_id)
            .field("provisioning_workflow_id", &self.provisioning_workflow_id)
            .field("provisioned_at", &self.provisioned_at)
            .field("error_message", &self.error_message)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("created_by", &self.created_by)
            .finish()
    }
}

/// The hex SHA-256 digest of a worker token; the token itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkerTokenHash(pub String);

/// A worker token's digest and what it grants access to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerTokenRecord {
    /// The token's digest.
    pub hash: WorkerTokenHash,
    /// The organization of the environment.
    pub organization_id: OrganizationId,
    /// The environment workers register with.
    pub environment_id: EnvironmentId,
    /// When the token was minted.
    pub created_at: Timestamp,
    /// When a worker first registered with it; a token never used expires.
    pub registered_at: Option<Timestamp>,
}
