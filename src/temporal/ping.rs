//! `envform env ping`'s work on Temporal: runs `envform.ping` on an environment's task queue and
//! times each answer.

use std::time::{Duration, Instant};

use temporalio_client::errors::WorkflowStartError;
use temporalio_client::tonic::Code;
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};

use super::connection::TemporalConfig;
use super::provisioner::TemporalProvisioner;
use super::workflows::{PingReply, PingWorkflow};

/// One ping: who answered and how long the round trip took, or why nobody did.
#[derive(Debug, Clone)]
pub struct PingOutcome {
    /// The answering worker, when one answered.
    pub reply: Result<PingReply, String>,
    /// From starting the workflow to having its result.
    pub elapsed: Duration,
}

/// Runs `envform.ping` `count` times, one after the other, on `task_queue` of `namespace`; each
/// waits at most `timeout` for a worker (the workflow then times out on Temporal too).
pub async fn ping_environment(
    provisioner: &TemporalProvisioner,
    namespace: &str,
    task_queue: &str,
    count: u32,
    timeout: Duration,
) -> Result<Vec<PingOutcome>, String> {
    let connection = provisioner.connection().await?;
    let client = TemporalConfig::client(&connection, namespace)?;
    let mut outcomes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let workflow_id = format!("envform-ping-{}", uuid::Uuid::new_v4());
        let options = WorkflowStartOptions::new(task_queue, workflow_id)
            .execution_timeout(timeout)
            .build();
        let started = Instant::now();
        let reply = async {
            // A namespace provisioned a moment ago may not be known to the frontend yet.
            let handle = loop {
                match client
                    .start_workflow(PingWorkflow::run, (), options.clone())
                    .await
                {
                    Ok(handle) => break handle,
                    Err(WorkflowStartError::Rpc(status))
                        if status.code() == Code::NotFound && started.elapsed() < timeout =>
                    {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(error) => {
                        return Err(format!(
                            "Temporal did not start envform.ping: {}",
                            crate::local::error_chain(&error)
                        ));
                    }
                }
            };
            handle
                .get_result(WorkflowGetResultOptions::default())
                .await
                .map_err(|error| {
                    format!(
                        "no worker answered within {timeout:?}: {}",
                        crate::local::error_chain(&error)
                    )
                })
        }
        .await;
        outcomes.push(PingOutcome {
            reply,
            elapsed: started.elapsed(),
        });
    }
    Ok(outcomes)
}
