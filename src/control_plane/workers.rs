//! The worker pools' rules: registration (token, environment name, `can_register`,
//! `max_workers`), heartbeats and when a worker must stop (410 Gone), deregistration, token
//! rotation, and the worker counts environments show.
//!
//! A worker is alive while its last heartbeat is younger than [`EXPIRY_INTERVALS`] heartbeat
//! intervals; counts are computed from that at read time, so no background job is needed. Every
//! call is one store transaction: the `max_workers` check and the insert it guards cannot
//! interleave with another registration, even from another process on the same database.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;

use super::{ControlPlane, OrganizationScope, audit, clock, internal, token};
use crate::api::{
    AuditAction, AuditEvent, EnvironmentError, EnvironmentId, Heartbeat, HeartbeatAck,
    RegisterWorker, Status, Worker, WorkerCommand, WorkerId, WorkerRegistration, WorkerStatus,
    WorkerToken, WorkersApi,
};
use crate::store::{
    EnvironmentRecord, NamespaceState, StoreTransaction, WorkerCounts, WorkerRecord,
    WorkerTokenHash, WorkerTokenRecord,
};

/// Heartbeat intervals without a heartbeat after which a worker no longer counts as active.
pub const EXPIRY_INTERVALS: u32 = 3;

/// Expiry windows after which a silent worker's registration is removed (when another worker of
/// its environment registers), so crashed workers do not accumulate.
const FORGET_AFTER_EXPIRIES: u32 = 20;

/// How often workers send heartbeats (10 s unless configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatInterval(Duration);

/// The shortest interval accepted: below it, heartbeats would be most of the service's work.
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(50);

/// The interval when none is configured.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// A heartbeat interval outside the accepted range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a heartbeat interval must be between 50ms and 1h, not {0:?}")]
pub struct InvalidHeartbeatInterval(pub Duration);

impl HeartbeatInterval {
    /// An interval between [`MIN_HEARTBEAT_INTERVAL`] and one hour.
    pub fn new(interval: Duration) -> Result<Self, InvalidHeartbeatInterval> {
        if (MIN_HEARTBEAT_INTERVAL..=Duration::from_secs(3600)).contains(&interval) {
            Ok(Self(interval))
        } else {
            Err(InvalidHeartbeatInterval(interval))
        }
    }

    /// The interval.
    pub fn as_duration(self) -> Duration {
        self.0
    }

    /// How long a worker may stay silent and still count as active.
    pub fn expiry(self) -> Duration {
        self.0 * EXPIRY_INTERVALS
    }

    fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for HeartbeatInterval {
    fn default() -> Self {
        Self(DEFAULT_HEARTBEAT_INTERVAL)
    }
}

impl fmt::Display for HeartbeatInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl FromStr for HeartbeatInterval {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("`{text}` is not a duration such as 10s or 500ms");
        let duration: jiff::SignedDuration = text.trim().parse().map_err(|_| invalid())?;
        let duration = Duration::try_from(duration).map_err(|_| invalid())?;
        Self::new(duration).map_err(|error| error.to_string())
    }
}

/// `now` minus `duration`, clamped at the earliest timestamp.
fn before(now: Timestamp, duration: Duration) -> Timestamp {
    let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_microsecond(now.as_microsecond().saturating_sub(micros))
        .unwrap_or(Timestamp::MIN)
}

/// The 410 answer telling a worker to stop.
fn gone(detail: String) -> EnvironmentError {
    EnvironmentError::Api {
        status: 410,
        detail,
    }
}

fn unauthorized(detail: &str) -> EnvironmentError {
    EnvironmentError::Unauthorized {
        detail: detail.to_owned(),
    }
}

/// Whether workers may register with (and stay in) an environment of this status.
pub(crate) fn can_register(status: Status) -> bool {
    matches!(status, Status::Ready | Status::Active)
}

/// `configuration.max_workers`, when it is set to a positive whole number.
fn max_workers(record: &EnvironmentRecord) -> Option<u64> {
    record
        .configuration
        .as_ref()?
        .get("max_workers")?
        .as_u64()
        .filter(|max| *max >= 1)
}

fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// The worker command of `record` with `token`.
pub(crate) fn worker_command(
    control_plane: &ControlPlane,
    record: EnvironmentRecord,
    namespace_state: NamespaceState,
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
        namespace_status: Some(namespace_state.as_str().to_owned()),
        can_register: can_register(record.status),
        provisioning_workflow_id: record.provisioning_workflow_id,
    }
}

impl ControlPlane {
    /// How often workers must send heartbeats.
    pub fn heartbeat_interval(&self) -> HeartbeatInterval {
        self.inner().config.heartbeat_interval
    }

    /// The oldest last heartbeat of a worker that is still active, seen from `now`.
    pub(crate) fn alive_since(&self, now: Timestamp) -> Timestamp {
        before(now, self.heartbeat_interval().expiry())
    }

    /// The worker counts of an organization's environments (or one of them), as of now.
    pub(crate) async fn worker_counts(
        &self,
        organization: &crate::api::OrganizationId,
        environment: Option<EnvironmentId>,
    ) -> Result<BTreeMap<EnvironmentId, WorkerCounts>, EnvironmentError> {
        self.inner()
            .store
            .worker_counts(organization, environment, self.alive_since(clock::now()))
            .await
            .map_err(internal)
    }

    /// Registers a worker holding `token` with the environment the token was issued for.
    ///
    /// 401: unknown or revoked token. 400: the token is another environment's. 409: the
    /// environment cannot take workers yet (not `ready` or `active`), or already has
    /// `max_workers` active workers.
    pub async fn register_worker(
        &self,
        token: &WorkerToken,
        request: &RegisterWorker,
    ) -> Result<WorkerRegistration, EnvironmentError> {
        let hash = token::hash(token.expose());
        let mut transaction = self.inner().store.begin().await.map_err(internal)?;
        let issued = transaction
            .worker_token(&hash)
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                unauthorized(
                    "unknown or revoked worker token: get a current one with \
                     `envform env worker-command`",
                )
            })?;
        let record = issued_environment(transaction.as_mut(), &issued).await?;
        if record.name != request.environment {
            return Err(EnvironmentError::Api {
                status: 400,
                detail: format!(
                    "this worker token belongs to environment '{}', not '{}'",
                    record.name, request.environment
                ),
            });
        }
        if !can_register(record.status) {
            return Err(EnvironmentError::Conflict {
                detail: format!(
                    "environment '{}' is {}: workers can register once it is ready or active",
                    record.name, record.status
                ),
            });
        }
        let now = clock::now();
        let interval = self.heartbeat_interval();
        transaction
            .delete_silent_workers(
                record.id,
                before(now, interval.expiry() * FORGET_AFTER_EXPIRIES),
            )
            .await
            .map_err(internal)?;
        if let Some(max) = max_workers(&record) {
            let active = transaction
                .active_worker_count(record.id, self.alive_since(now))
                .await
                .map_err(internal)?;
            if u64::from(active) >= max {
                return Err(EnvironmentError::Conflict {
                    detail: format!(
                        "environment '{}' already has {}: its max_workers limit is {max}",
                        record.name,
                        plural(u64::from(active), "active worker")
                    ),
                });
            }
        }
        let worker = WorkerRecord {
            id: WorkerId::new_random(),
            organization_id: record.organization_id.clone(),
            environment_id: record.id,
            token_hash: hash.clone(),
            hostname: request.hostname.clone(),
            version: request.version.clone(),
            busy: false,
            registered_at: now,
            last_heartbeat_at: now,
        };
        transaction
            .insert_worker(&worker)
            .await
            .map_err(internal)?;
        let after = serde_json::json!({
            "worker_id": worker.id,
            "hostname": worker.hostname,
            "version": worker.version,
        });
        let entry = audit::entry(
            &record.organization_id,
            &audit::worker_actor(&hash),
            AuditAction::WorkerRegister,
            &record,
            None,
            Some(after),
        );
        audit::record(transaction.as_mut(), &entry).await?;
        transaction.commit().await.map_err(internal)?;
        tracing::info!(
            worker = %worker.id,
            environment = %record.name,
            hostname = %worker.hostname,
            "worker registered"
        );
        Ok(WorkerRegistration {
            worker_id: worker.id,
            environment_id: record.id,
            environment_name: record.name,
            temporal_namespace: record.temporal_namespace,
            heartbeat_interval_ms: interval.as_millis(),
        })
    }

    /// Records a heartbeat of `worker`, which must hold the token it registered with.
    ///
    /// 410 Gone tells the worker to stop: it is not registered (deregistered, or its environment
    /// was deleted), its token was rotated, its environment is no longer `ready` or `active`, or
    /// it was silent past the expiry window and the pool has no room left. 401: another token.
    pub async fn worker_heartbeat(
        &self,
        token: &WorkerToken,
        worker: WorkerId,
        heartbeat: &Heartbeat,
    ) -> Result<HeartbeatAck, EnvironmentError> {
        let hash = token::hash(token.expose());
        let mut transaction = self.inner().store.begin().await.map_err(internal)?;
        let record = registered(transaction.as_mut(), worker, &hash).await?;
        let now = clock::now();
        let stop = self.stop_reason(transaction.as_mut(), &record, now).await?;
        if let Some(reason) = stop {
            // The worker is told to go: it no longer counts, whether or not it hears the answer.
            transaction
                .delete_worker(worker)
                .await
                .map_err(internal)?;
            transaction.commit().await.map_err(internal)?;
            tracing::info!(worker = %worker, reason = %reason, "worker told to stop");
            return Err(gone(reason));
        }
        transaction
            .record_heartbeat(worker, now, heartbeat.busy)
            .await
            .map_err(internal)?;
        transaction.commit().await.map_err(internal)?;
        Ok(HeartbeatAck {
            worker_id: worker,
            heartbeat_interval_ms: self.heartbeat_interval().as_millis(),
        })
    }

    /// Why a registered worker must stop now, if it must.
    async fn stop_reason(
        &self,
        transaction: &mut dyn StoreTransaction,
        record: &WorkerRecord,
        now: Timestamp,
    ) -> Result<Option<String>, EnvironmentError> {
        let Some(environment) = transaction
            .environment(&record.organization_id, record.environment_id)
            .await
            .map_err(internal)?
        else {
            return Ok(Some(format!(
                "worker {} is not registered: its environment was deleted",
                record.id
            )));
        };
        if transaction
            .worker_token(&record.token_hash)
            .await
            .map_err(internal)?
            .is_none()
        {
            return Ok(Some(format!(
                "the worker token of environment '{}' was rotated: start workers with the new token",
                environment.name
            )));
        }
        if !can_register(environment.status) {
            return Ok(Some(format!(
                "environment '{}' is {}: its workers stop",
                environment.name, environment.status
            )));
        }
        let alive_since = self.alive_since(now);
        if record.last_heartbeat_at < alive_since
            && let Some(max) = max_workers(&environment)
        {
            // A worker back from silence rejoins only if the pool has room for it.
            let active = transaction
                .active_worker_count(environment.id, alive_since)
                .await
                .map_err(internal)?;
            if u64::from(active) >= max {
                return Ok(Some(format!(
                    "worker {} missed its heartbeats for longer than {:?}, and environment '{}' \
                     has no room left (max_workers {max})",
                    record.id,
                    self.heartbeat_interval().expiry(),
                    environment.name
                )));
            }
        }
        Ok(None)
    }

    /// Removes `worker`, which must hold the token it registered with (rotated or not).
    ///
    /// 404 when it is not registered, 401 for another token.
    pub async fn deregister_worker(
        &self,
        token: &WorkerToken,
        worker: WorkerId,
    ) -> Result<(), EnvironmentError> {
        let hash = token::hash(token.expose());
        let mut transaction = self.inner().store.begin().await.map_err(internal)?;
        let record = registered(transaction.as_mut(), worker, &hash)
            .await
            .map_err(|error| match error {
                EnvironmentError::Api { status: 410, .. } => EnvironmentError::NotFound {
                    detail: format!("worker {worker} is not registered"),
                },
                other => other,
            })?;
        transaction
            .delete_worker(worker)
            .await
            .map_err(internal)?;
        if let Some(environment) = transaction
            .environment(&record.organization_id, record.environment_id)
            .await
            .map_err(internal)?
        {
            let before = serde_json::json!({
                "worker_id": record.id,
                "hostname": record.hostname,
                "version": record.version,
            });
            let entry = audit::entry(
                &record.organization_id,
                &audit::worker_actor(&hash),
                AuditAction::WorkerDeregister,
                &environment,
                Some(before),
                None,
            );
            audit::record(transaction.as_mut(), &entry).await?;
        }
        transaction.commit().await.map_err(internal)?;
        tracing::info!(worker = %worker, "worker deregistered");
        Ok(())
    }
}

/// The environment a token was issued for (it exists: tokens go with their environment).
async fn issued_environment(
    transaction: &mut dyn StoreTransaction,
    issued: &WorkerTokenRecord,
) -> Result<EnvironmentRecord, EnvironmentError> {
    transaction
        .environment(&issued.organization_id, issued.environment_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| unauthorized("unknown or revoked worker token"))
}

/// The registered worker `id`, if `hash` is the digest of the token it registered with.
async fn registered(
    transaction: &mut dyn StoreTransaction,
    id: WorkerId,
    hash: &WorkerTokenHash,
) -> Result<WorkerRecord, EnvironmentError> {
    let record = transaction
        .worker(id)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            gone(format!(
                "worker {id} is not registered: its environment was deleted, or it deregistered"
            ))
        })?;
    if &record.token_hash != hash {
        return Err(unauthorized(
            "this worker token is not the one the worker registered with",
        ));
    }
    Ok(record)
}

#[async_trait::async_trait]
impl WorkersApi for OrganizationScope {
    async fn list_workers(
        &self,
        environment: EnvironmentId,
    ) -> Result<Vec<Worker>, EnvironmentError> {
        let control_plane = self.control_plane();
        let store = &control_plane.inner().store;
        store
            .environment(self.organization_id(), environment)
            .await
            .map_err(internal)?
            .ok_or_else(super::scope::not_found)?;
        let alive_since = control_plane.alive_since(clock::now());
        let records = store
            .workers(self.organization_id(), environment)
            .await
            .map_err(internal)?;
        Ok(records
            .into_iter()
            .map(|record| Worker {
                id: record.id,
                environment_id: record.environment_id,
                hostname: record.hostname,
                version: record.version,
                status: if record.last_heartbeat_at >= alive_since {
                    WorkerStatus::Active
                } else {
                    WorkerStatus::Stale
                },
                busy: record.busy,
                registered_at: record.registered_at,
                last_heartbeat_at: record.last_heartbeat_at,
            })
            .collect())
    }

    async fn rotate_worker_token(
        &self,
        environment: EnvironmentId,
    ) -> Result<WorkerCommand, EnvironmentError> {
        let control_plane = self.control_plane();
        let organization = self.organization_id();
        let mut transaction = control_plane.inner().store.begin().await.map_err(internal)?;
        let record = transaction
            .environment(organization, environment)
            .await
            .map_err(internal)?
            .ok_or_else(super::scope::not_found)?;
        let namespace = transaction
            .organization(organization)
            .await
            .map_err(internal)?
            .map_or(NamespaceState::Provisioning, |organization| {
                organization.namespace.state
            });
        let revoked = transaction
            .delete_worker_tokens(organization, environment)
            .await
            .map_err(internal)?;
        let worker_token = token::mint().map_err(internal)?;
        transaction
            .insert_worker_token(&WorkerTokenRecord {
                hash: token::hash(worker_token.expose()),
                organization_id: organization.clone(),
                environment_id: environment,
                created_at: clock::now(),
            })
            .await
            .map_err(internal)?;
        // Only the fact is recorded: neither token nor digest belongs in the log.
        let after = serde_json::json!({"worker_token": "rotated", "revoked_tokens": revoked});
        let entry = audit::entry(
            organization,
            self.actor(),
            AuditAction::WorkerTokenRotate,
            &record,
            None,
            Some(after),
        );
        audit::record(transaction.as_mut(), &entry).await?;
        transaction.commit().await.map_err(internal)?;
        tracing::info!(environment = %record.name, revoked, "worker token rotated");
        Ok(worker_command(
            control_plane,
            record,
            namespace,
            worker_token,
        ))
    }

    async fn audit_events(
        &self,
        environment: Option<EnvironmentId>,
    ) -> Result<Vec<AuditEvent>, EnvironmentError> {
        let records = self
            .control_plane()
            .inner()
            .store
            .audit_records(self.organization_id(), environment)
            .await
            .map_err(internal)?;
        Ok(records.into_iter().map(audit::to_event).collect())
    }
}
