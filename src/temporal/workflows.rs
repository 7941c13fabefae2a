//! envform's workflows and activities: `envform.provision_namespace` (run by `envform serve` in
//! its system namespace) and `envform.ping` (run by `envform worker start` on its environment's
//! task queue).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use temporalio_client::tonic::{Code, Request};
use temporalio_client::{Connection, RegisterNamespaceOptions};
use temporalio_common::RetryPolicy;
use temporalio_common::protos::temporal::api::enums::v1::NamespaceState;
use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeNamespaceRequest;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, ApplicationFailure, WorkflowContext, WorkflowResult};

/// The provisioning workflow's type name.
pub const PROVISIONING_WORKFLOW: &str = "envform.provision_namespace";

/// The ping workflow's type name.
pub const PING_WORKFLOW: &str = "envform.ping";

/// How often a namespace that is not registered yet is described again.
const DESCRIBE_INTERVAL: Duration = Duration::from_millis(200);

/// The key of the namespace data naming the organization a namespace was registered for.
const ORGANIZATION_DATA_KEY: &str = "envform.organization";

/// What the provisioning workflow is asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceRequest {
    /// The organization the namespace is for.
    pub organization: String,
    /// The namespace to register (or adopt).
    pub namespace: String,
    /// Workflow execution retention, in seconds.
    pub retention_seconds: u64,
}

/// A namespace Temporal describes as registered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RegisteredNamespace {
    /// Its name.
    pub namespace: String,
    /// Temporal's id of it.
    pub namespace_id: String,
}

/// The provisioning workflow: registers the organization's namespace (adopting one that
/// exists), then waits until Temporal describes it as registered.
#[workflow]
#[derive(Default)]
pub struct ProvisionNamespaceWorkflow;

#[workflow_methods]
impl ProvisionNamespaceWorkflow {
    /// Registers, then waits; a failed activity is retried a few times, then fails the workflow.
    #[run(name = PROVISIONING_WORKFLOW)]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        request: NamespaceRequest,
    ) -> WorkflowResult<RegisteredNamespace> {
        ctx.execute_activity(
            NamespaceActivities::register_namespace,
            request.clone(),
            activity_options(Duration::from_secs(30)),
        )
        .await?;
        let registered = ctx
            .execute_activity(
                NamespaceActivities::wait_until_registered,
                request.namespace,
                activity_options(Duration::from_secs(120)),
            )
            .await?;
        Ok(registered)
    }
}

/// Activities are retried a few times only: a workflow that fails puts its environments in
/// `error` with Temporal's message, and envform serve starts a new one with its own backoff, so
/// users see why provisioning waits instead of an endless `provisioning`.
fn activity_options(start_to_close: Duration) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(start_to_close)
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .maximum_interval(Duration::from_secs(4))
                .maximum_attempts(ACTIVITY_ATTEMPTS)
                .build(),
        )
        .build()
}

/// How many times an activity runs before its workflow fails.
const ACTIVITY_ATTEMPTS: u32 = 4;

/// Codes by which Temporal refuses a request for good: retrying the same request cannot help.
fn is_refusal(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::FailedPrecondition
            | Code::OutOfRange
    )
}

/// A Temporal call failed: its message, shown to users as the environments' `error_message`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TemporalCallError(pub String);

/// The provisioning activities, on envform serve's connection to Temporal.
pub struct NamespaceActivities {
    /// envform serve's connection.
    pub connection: Connection,
}

#[activities]
impl NamespaceActivities {
    /// Registers the namespace; one that exists already is adopted.
    #[activity]
    pub async fn register_namespace(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: NamespaceRequest,
    ) -> Result<(), ActivityError> {
        let mut service = self.connection.workflow_service();
        let options = RegisterNamespaceOptions::builder()
            .namespace(request.namespace.clone())
            .description(format!(
                "envform: namespace of organization {}",
                request.organization
            ))
            .workflow_execution_retention_period(Duration::from_secs(request.retention_seconds))
            .data(HashMap::from([(
                ORGANIZATION_DATA_KEY.to_owned(),
                request.organization.clone(),
            )]))
            .build();
        match service
            .register_namespace(Request::new(options.into()))
            .await
        {
            Ok(_) => {
                tracing::info!(namespace = %request.namespace, "namespace registered");
                Ok(())
            }
            // A restored database or a second deployment: the namespace is adopted, unless
            // envform registered it for another organization (two organizations whose ids
            // sanitize to one name must not share a namespace).
            Err(status) if status.code() == Code::AlreadyExists => {
                let describe = DescribeNamespaceRequest {
                    namespace: request.namespace.clone(),
                    ..DescribeNamespaceRequest::default()
                };
                let owner = service
                    .describe_namespace(Request::new(describe))
                    .await
                    .map_err(|status| {
                        TemporalCallError(format!(
                            "Temporal cannot describe namespace `{}`: {}",
                            request.namespace,
                            status.message()
                        ))
                    })?
                    .into_inner()
                    .namespace_info
                    .and_then(|info| info.data.get(ORGANIZATION_DATA_KEY).cloned());
                match owner {
                    Some(owner) if owner != request.organization => {
                        Err(ApplicationFailure::non_retryable(TemporalCallError(format!(
                            "namespace `{}` exists on Temporal for organization `{owner}` \
                             (its data `{ORGANIZATION_DATA_KEY}`); it is not adopted",
                            request.namespace
                        )))
                        .into())
                    }
                    _ => {
                        tracing::info!(namespace = %request.namespace, "namespace exists; adopted");
                        Ok(())
                    }
                }
            }
            Err(status) => {
                let error = TemporalCallError(format!(
                    "Temporal refused to register namespace `{}`: {}",
                    request.namespace,
                    status.message()
                ));
                if is_refusal(status.code()) {
                    Err(ApplicationFailure::non_retryable(error).into())
                } else {
                    Err(error.into())
                }
            }
        }
    }

    /// Describes the namespace until Temporal says it is registered; its id.
    #[activity]
    pub async fn wait_until_registered(
        self: Arc<Self>,
        _ctx: ActivityContext,
        namespace: String,
    ) -> Result<RegisteredNamespace, ActivityError> {
        let mut service = self.connection.workflow_service();
        loop {
            let request = DescribeNamespaceRequest {
                namespace: namespace.clone(),
                ..DescribeNamespaceRequest::default()
            };
            match service.describe_namespace(Request::new(request)).await {
                Ok(response) => {
                    let info = response.into_inner().namespace_info.unwrap_or_default();
                    if info.state == NamespaceState::Registered as i32 {
                        return Ok(RegisteredNamespace {
                            namespace,
                            namespace_id: info.id,
                        });
                    }
                }
                Err(status) if status.code() == Code::NotFound => {}
                Err(status) => {
                    return Err(TemporalCallError(format!(
                        "Temporal cannot describe namespace `{namespace}`: {}",
                        status.message()
                    ))
                    .into());
                }
            }
            tokio::time::sleep(DESCRIBE_INTERVAL).await;
        }
    }
}

/// What `envform.ping` answers: who ran it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PingReply {
    /// The envform worker id the service gave the worker.
    pub worker_id: String,
    /// The worker's host name.
    pub hostname: String,
    /// The environment's name.
    pub environment: String,
}

/// `envform.ping`: completes at once with the worker's identity (made per worker by a factory,
/// so the answer says which worker ran it).
#[workflow]
pub struct PingWorkflow {
    /// This worker's answer.
    pub reply: PingReply,
}

#[workflow_methods(factory_only)]
impl PingWorkflow {
    /// Answers with the worker's identity.
    #[run(name = PING_WORKFLOW)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<PingReply> {
        Ok(ctx.state(|workflow| workflow.reply.clone()))
    }
}
