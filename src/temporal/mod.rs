//! Temporal at the edge: `envform serve --temporal-address` provisions each organization's
//! namespace with a workflow on a real Temporal server ([`TemporalProvisioner`], behind the
//! control plane's [`crate::control_plane::NamespaceProvisioner`] seam), and `envform worker
//! start` serves the built-in `envform.ping` workflow on its environment's task queue
//! ([`run_ping_worker`]).
//!
//! Everything that speaks to Temporal lives here, on the official Rust SDK (`temporalio-*`
//! crates); the control plane only knows the provisioner trait.

mod connection;
mod ping;
mod provisioner;
mod worker;
mod workflows;

pub use connection::{DEFAULT_SYSTEM_NAMESPACE, TemporalConfig, TemporalTls};
pub use ping::{PingOutcome, ping_environment};
pub use provisioner::TemporalProvisioner;
pub use worker::{PingWorkerSettings, run_ping_worker};
pub use workflows::{PING_WORKFLOW, PROVISIONING_WORKFLOW, PingReply};

/// The task queue of the provisioning workflow in the system namespace.
pub const PROVISIONING_TASK_QUEUE: &str = "envform-provisioning";

/// The task queue an environment's workers serve: derived from its id, so a rename keeps it.
pub fn environment_task_queue(environment_id: &crate::api::EnvironmentId) -> String {
    format!("envform-env-{}", environment_id.0)
}

/// The provisioning workflow's id for an organization: the same from every replica, so that
/// starting it twice starts one workflow.
pub fn provisioning_workflow_id(organization: &crate::api::OrganizationId) -> String {
    format!("envform-provision-namespace-{}", organization.0)
}
