//! The command a worker runs to register with an environment, and whether it may register now.
//! Shared by the environments' scope (which issues the command) and the worker rules.

use super::ControlPlane;
use crate::api::{WorkerCommand, WorkerToken};
use crate::model::Status;
use crate::store::EnvironmentRecord;

/// Whether workers may register with (and stay in) an environment of this status.
pub(crate) fn can_register(status: Status) -> bool {
    matches!(status, Status::Ready | Status::Active)
}

/// The worker command of `record` with `token`.
pub(crate) fn worker_command(
    control_plane: &ControlPlane,
    record: EnvironmentRecord,
    worker_token: WorkerToken,
) -> WorkerCommand {
    let (command, command_parts) = control_plane
        .inner()
        .config
        .worker_command
        .render(worker_token.expose(), &record.name);
    WorkerCommand {
        command,
        worker_token,
        temporal_namespace: record.temporal_namespace,
        environment_name: record.name,
        command_parts,
        // The production service's meaning: the environment's status, not the namespace's.
        namespace_status: Some(record.status.as_str().to_owned()),
        can_register: can_register(record.status),
        provisioning_workflow_id: record.provisioning_workflow_id,
    }
}
