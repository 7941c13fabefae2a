//! The organization's Temporal namespace lifecycle and how it shows on its environments.
//!
//! One rule drives every environment status: while the namespace is provisioning every
//! environment is `provisioning`; once it is ready each takes its requested status; if it failed
//! each is `error` with the namespace's `error_message`. Each transition rewrites the namespace
//! record and every environment of the organization in one transaction.

use std::task::Poll;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::clock;
use super::provisioner::ProvisionedNamespace;
use crate::api::{OrganizationId, Status};
use crate::store::{
    EnvironmentRecord, NamespaceRecord, NamespaceState, StoreError, StoreTransaction,
};

/// How many times recording a provisioning outcome is attempted before it is left for the next
/// start of the service to resume.
const RECORD_ATTEMPTS: u32 = 5;

/// How long a claim on an organization's provisioning holds unless renewed: a process that
/// died mid-provisioning delays another's takeover by at most this.
pub(crate) const CLAIM_LEASE: Duration = Duration::from_secs(15);

/// How often a running provisioning renews its claim.
const CLAIM_RENEWAL: Duration = Duration::from_secs(5);

/// A fresh provisioning workflow identifier.
pub(crate) fn new_workflow_id() -> String {
    format!("namespace-provisioning-{}", Uuid::new_v4())
}

/// The organization's provisioning workflow id: the provisioner's, else a fresh one.
pub(crate) fn workflow_id(
    provisioner: &dyn super::NamespaceProvisioner,
    organization: &OrganizationId,
) -> String {
    provisioner
        .workflow_id(organization)
        .unwrap_or_else(new_workflow_id)
}

/// The namespace record of a workflow that just started.
pub(crate) fn started(workflow_id: &str) -> NamespaceRecord {
    NamespaceRecord {
        state: NamespaceState::Provisioning,
        provisioning_workflow_id: Some(workflow_id.to_owned()),
        temporal_namespace: None,
        temporal_namespace_id: None,
        provisioned_at: None,
        error_message: None,
    }
}

/// The namespace record once the workflow ended.
pub(crate) fn finished(
    workflow_id: &str,
    outcome: &Result<ProvisionedNamespace, String>,
    now: Timestamp,
) -> NamespaceRecord {
    match outcome {
        Ok(namespace) => NamespaceRecord {
            state: NamespaceState::Ready,
            provisioning_workflow_id: Some(workflow_id.to_owned()),
            temporal_namespace: Some(namespace.temporal_namespace.clone()),
            temporal_namespace_id: Some(namespace.temporal_namespace_id.clone()),
            provisioned_at: Some(now),
            error_message: None,
        },
        Err(message) => NamespaceRecord {
            state: NamespaceState::Error,
            provisioning_workflow_id: Some(workflow_id.to_owned()),
            temporal_namespace: None,
            temporal_namespace_id: None,
            provisioned_at: None,
            error_message: Some(message.clone()),
        },
    }
}

/// The status an environment shows, given its namespace and the status asked for it.
pub(crate) fn environment_status(namespace: NamespaceState, requested: Status) -> Status {
    match namespace {
        NamespaceState::Provisioning => Status::Provisioning,
        NamespaceState::Ready => requested,
        NamespaceState::Error => Status::Error,
    }
}

/// Brings an environment's status and namespace fields in line with its namespace; whether
/// anything changed.
pub(crate) fn apply_namespace(
    environment: &mut EnvironmentRecord,
    namespace: &NamespaceRecord,
) -> bool {
    let before = environment.clone();
    environment.status = environment_status(namespace.state, environment.requested_status);
    environment.temporal_namespace = namespace.temporal_namespace.clone();
    environment.temporal_namespace_id = namespace.temporal_namespace_id.clone();
    environment.provisioning_workflow_id = namespace.provisioning_workflow_id.clone();
    environment.provisioned_at = namespace.provisioned_at;
    environment.error_message = namespace.error_message.clone();
    *environment != before
}

/// Records a namespace transition and applies it to every environment of the organization, in
/// the caller's transaction.
pub(crate) async fn transition(
    transaction: &mut dyn StoreTransaction,
    organization: &OrganizationId,
    namespace: &NamespaceRecord,
    now: Timestamp,
) -> Result<(), StoreError> {
    transaction
        .update_namespace(organization, namespace)
        .await?;
    for mut environment in transaction.environments(organization).await? {
        if apply_namespace(&mut environment, namespace) {
            environment.updated_at = clock::after(environment.updated_at, now);
            transaction.update_environment(&environment).await?;
        }
    }
    Ok(())
}

/// Runs one provisioning workflow to its end and records the outcome, unless the service shuts
/// down first (the organization then stays `provisioning` and is resumed on the next start).
/// With a provisioner that retries by itself, a recorded failure is tried again after a backoff
/// (the environments stay `error` meanwhile) until it succeeds, the organization moves on to
/// another workflow, or the service shuts down.
pub(crate) async fn run(
    inner: &super::Inner,
    organization: OrganizationId,
    workflow_id: String,
    first_step: oneshot::Sender<()>,
) {
    let mut failed = run_once(inner, &organization, &workflow_id, first_step).await;
    let Some(backoff) = inner.provisioner.retry_backoff() else {
        return;
    };
    let mut delays = backon::BackoffBuilder::build(backoff);
    while failed {
        let Some(delay) = delays.next() else { return };
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        match still_waiting(inner, &organization, &workflow_id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(
                    organization = %organization,
                    error = %crate::local::error_chain(&error),
                    "cannot read the organization before retrying its provisioning"
                );
                continue;
            }
        }
        tracing::info!(organization = %organization, %workflow_id, "retrying namespace provisioning");
        let (first_step, _) = oneshot::channel();
        failed = run_once(inner, &organization, &workflow_id, first_step).await;
    }
}

/// Whether the organization still waits for this workflow (not ready, same workflow id).
async fn still_waiting(
    inner: &super::Inner,
    organization: &OrganizationId,
    workflow_id: &str,
) -> Result<bool, StoreError> {
    let record = inner.store.organization(organization).await?;
    Ok(record.is_some_and(|record| {
        record.namespace.state != NamespaceState::Ready
            && record.namespace.provisioning_workflow_id.as_deref() == Some(workflow_id)
    }))
}

/// One attempt of [`run`]; whether it recorded a failure.
///
/// `first_step` is dropped as soon as the provisioner has been polled once and is still pending,
/// or else once its immediate outcome is recorded: a caller awaiting it sees a provisioner that
/// completes at once (the built-in one without delay) as already settled, deterministically.
async fn run_once(
    inner: &super::Inner,
    organization: &OrganizationId,
    workflow_id: &str,
    first_step: oneshot::Sender<()>,
) -> bool {
    let organization = organization.clone();
    let workflow_id = workflow_id.to_owned();
    // Processes sharing a database (replicas on PostgreSQL) all resume the same organizations:
    // only the one that holds the claim provisions.
    match claim(inner, &organization).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(organization = %organization, "another process provisions this namespace");
            return false;
        }
        Err(error) => {
            tracing::warn!(
                organization = %organization,
                error = %crate::local::error_chain(&error),
                "cannot claim the namespace provisioning; it is resumed later"
            );
            return false;
        }
    }
    tracing::info!(organization = %organization, %workflow_id, "provisioning the namespace");
    let mut provision = inner.provisioner.provision(&organization, &workflow_id);
    let first_poll =
        std::future::poll_fn(|context| Poll::Ready(provision.as_mut().poll(context))).await;
    let outcome = match first_poll {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => {
            drop(first_step);
            let mut renewal = tokio::time::interval(CLAIM_RENEWAL);
            renewal.tick().await;
            loop {
                tokio::select! {
                    biased;
                    () = inner.shutdown.cancelled() => {
                        release(inner, &organization).await;
                        return false;
                    }
                    outcome = &mut provision => break outcome,
                    _ = renewal.tick() => {
                        if let Err(error) = claim(inner, &organization).await {
                            tracing::warn!(
                                organization = %organization,
                                error = %crate::local::error_chain(&error),
                                "cannot renew the claim on the namespace provisioning"
                            );
                        }
                    }
                }
            }
        }
    };
    for attempt in 1..=RECORD_ATTEMPTS {
        match record_outcome(inner, &organization, &workflow_id, &outcome).await {
            // Released with the outcome; when the outcome was not recorded (another workflow
            // moved on), the claim must not keep that workflow's process waiting.
            Ok(Recorded::Yes) => return outcome.is_err(),
            Ok(Recorded::NotWaitedFor) => break,
            Err(error) => {
                tracing::warn!(
                    organization = %organization,
                    attempt,
                    error = %crate::local::error_chain(&error),
                    "recording the namespace provisioning outcome failed"
                );
            }
        }
        let backoff = Duration::from_millis(100 * 2u64.pow(attempt));
        tokio::select! {
            () = inner.shutdown.cancelled() => break,
            () = tokio::time::sleep(backoff) => {}
        }
    }
    release(inner, &organization).await;
    false
}

/// Whether [`record_outcome`] recorded the outcome.
enum Recorded {
    /// Recorded, and the claim released with it.
    Yes,
    /// The organization no longer waits for this workflow: nothing was written.
    NotWaitedFor,
}

/// Claims (or renews this process's claim on) the organization's provisioning.
async fn claim(inner: &super::Inner, organization: &OrganizationId) -> Result<bool, StoreError> {
    let mut transaction = inner.store.begin().await?;
    let claimed = transaction
        .claim_provisioning(organization, &inner.claimant, CLAIM_LEASE)
        .await?;
    transaction.commit().await?;
    Ok(claimed)
}

/// Gives up this process's claim, so that the next process to start resumes at once; on failure
/// the claim simply runs out.
async fn release(inner: &super::Inner, organization: &OrganizationId) {
    let released = async {
        let mut transaction = inner.store.begin().await?;
        transaction
            .release_provisioning(organization, &inner.claimant)
            .await?;
        transaction.commit().await
    };
    if let Ok(Err(error)) = tokio::time::timeout(Duration::from_secs(2), released).await {
        tracing::debug!(error = %crate::local::error_chain(&error), "cannot release a provisioning claim");
    }
}

/// Applies the workflow's outcome, if the organization is still waiting for this workflow (a
/// retry or another process may have moved on).
async fn record_outcome(
    inner: &super::Inner,
    organization: &OrganizationId,
    workflow_id: &str,
    outcome: &Result<ProvisionedNamespace, String>,
) -> Result<Recorded, StoreError> {
    let mut transaction = inner.store.begin().await?;
    let Some(record) = transaction.organization(organization).await? else {
        return Ok(Recorded::NotWaitedFor);
    };
    let current = &record.namespace;
    // `error` still waits when the provisioner retries failures by itself.
    if current.state == NamespaceState::Ready
        || (current.state == NamespaceState::Error && inner.provisioner.retry_backoff().is_none())
        || current.provisioning_workflow_id.as_deref() != Some(workflow_id)
    {
        return Ok(Recorded::NotWaitedFor);
    }
    let now = clock::now();
    let namespace = finished(workflow_id, outcome, now);
    transition(transaction.as_mut(), organization, &namespace, now).await?;
    transaction
        .release_provisioning(organization, &inner.claimant)
        .await?;
    transaction.commit().await?;
    match outcome {
        Ok(_) => tracing::info!(organization = %organization, "namespace provisioned"),
        Err(message) => {
            tracing::warn!(organization = %organization, %message, "namespace provisioning failed");
        }
    }
    Ok(Recorded::Yes)
}
