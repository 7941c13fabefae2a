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

use super::worker_command::can_register;
use super::{ControlPlane, OrganizationScope, audit, clock, internal, token};
use crate::api::{
    AuditAction, AuditPage, EnvironmentError, EnvironmentId, Heartbeat, HeartbeatAck, PageRequest,
    RegisterWorker, Worker, WorkerCommand, WorkerId, WorkerRegistration, WorkerStatus, WorkerToken,
    WorkersApi,
};
use crate::store::{
    EnvironmentRecord, StoreTransaction, WorkerCounts, WorkerRecord, WorkerTokenHash,
    WorkerTokenRecord,
};

/// Most tokens per environment that no worker has registered with; issuing one more revokes
/// the oldest of them, so tokens fetched and never used do not pile up.
pub const MAX_UNUSED_WORKER_TOKENS: u32 = 10;

/// Heartbeat intervals without a heartbeat after which a worker no longer counts as active.
pub const EXPIRY_INTERVALS: u32 = 3;

/// Expiry windows after which a silent worker's registration is removed (when another worker of
/// its organization registers), so crashed workers do not accumulate.
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

/// [`ControlPlane::now`] inside a transaction.
async fn now_in(transaction: &mut dyn StoreTransaction) -> Result<Timestamp, EnvironmentError> {
    Ok(transaction
        .database_now()
        .await
        .map_err(internal)?
        .unwrap_or_else(clock::now))
}

impl ControlPlane {
    /// How often workers must send heartbeats.
    pub fn heartbeat_interval(&self) -> HeartbeatInterval {
        self.inner().config.heartbeat_interval
    }

    /// The time heartbeats are stored at and judged by: the database's clock when the store is
    /// shared by replicas (so every replica counts expiry alike), else this process's.
    pub(crate) async fn now(&self) -> Result<Timestamp, EnvironmentError> {
        Ok(self
            .inner()
            .store
            .database_now()
            .await
            .map_err(internal)?
            .unwrap_or_else(clock::now))
    }

    /// The oldest last heartbeat of a worker that is still active, seen from `now`.
    pub(crate) fn alive_since(&self, now: Timestamp) -> Timestamp {
        before(now, self.heartbeat_interval().expiry())
    }

    /// Whether a stored token may be used at `now`: it registered a worker, or it is younger
    /// than the worker-token TTL.
    pub(super) fn token_usable(&self, issued: &WorkerTokenRecord, now: Timestamp) -> bool {
        issued.registered_at.is_some()
            || issued.created_at >= before(now, self.inner().config.worker_token_ttl.0)
    }

    /// Issues a new token for `environment` within `transaction`, and revokes the environment's
    /// tokens no worker has registered with that are past the TTL or beyond the newest
    /// [`MAX_UNUSED_WORKER_TOKENS`] (the new one included). The insert and the revocation share
    /// the transaction, so concurrent issues (from any replica) cannot leave more.
    pub(super) async fn issue_worker_token(
        &self,
        transaction: &mut dyn StoreTransaction,
        organization: &crate::api::OrganizationId,
        environment: EnvironmentId,
    ) -> Result<WorkerToken, EnvironmentError> {
        let now = now_in(transaction).await?;
        let worker_token = token::mint().map_err(internal)?;
        transaction
            .insert_worker_token(&WorkerTokenRecord {
                hash: token::hash(worker_token.expose()),
                organization_id: organization.clone(),
                environment_id: environment,
                created_at: now,
                registered_at: None,
            })
            .await
            .map_err(internal)?;
        let revoked = transaction
            .revoke_unused_worker_tokens(
                environment,
                before(now, self.inner().config.worker_token_ttl.0),
                MAX_UNUSED_WORKER_TOKENS,
            )
            .await
            .map_err(internal)?;
        if revoked > 0 {
            tracing::debug!(%environment, revoked, "unused worker tokens revoked");
        }
        Ok(worker_token)
    }

    /// The worker counts of an organization's environments (or one of them), as of now.
    pub(crate) async fn worker_counts(
        &self,
        organization: &crate::api::OrganizationId,
        environment: Option<EnvironmentId>,
    ) -> Result<BTreeMap<EnvironmentId, WorkerCounts>, EnvironmentError> {
        self.inner()
            .store
            .worker_counts(
                organization,
                environment,
                self.alive_since(self.now().await?),
            )
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
        check_hostname(&request.hostname)?;
        let hash = token::hash(token.expose());
        let mut transaction = self.inner().store.begin().await.map_err(internal)?;
        let now = now_in(transaction.as_mut()).await?;
        let issued = transaction
            .worker_token(&hash)
            .await
            .map_err(internal)?
            .filter(|issued| self.token_usable(issued, now))
            .ok_or_else(|| {
                unauthorized(
                    "unknown, expired or revoked worker token: get a current one with \
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
        let interval = self.heartbeat_interval();
        transaction
            .delete_silent_workers(
                &record.organization_id,
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
        transaction.insert_worker(&worker).await.map_err(internal)?;
        // From now on the token is in use: it no longer expires or counts against the cap.
        transaction
            .mark_worker_token_registered(&hash, now)
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
            // Filled in by `envform serve` when it runs on a real Temporal server.
            temporal_address: None,
            temporal_task_queue: None,
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
        let now = now_in(transaction.as_mut()).await?;
        let record = self
            .registered(transaction.as_mut(), worker, &hash, now)
            .await?;
        let stop = self.stop_reason(transaction.as_mut(), &record, now).await?;
        if let Some(stop) = stop {
            // The worker is told to go: it no longer counts, whether or not it hears the answer.
            transaction.delete_worker(worker).await.map_err(internal)?;
            transaction.commit().await.map_err(internal)?;
            let reason = match stop {
                Stop::Because(reason) => reason,
                // Looked up once the transaction is over: the log is read outside it.
                Stop::EnvironmentDeleted(environment) => format!(
                    "environment {} was deleted: its workers stop",
                    self.deleted_name(&record.organization_id, environment)
                        .await
                ),
            };
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
    ) -> Result<Option<Stop>, EnvironmentError> {
        let Some(environment) = transaction
            .environment(&record.organization_id, record.environment_id)
            .await
            .map_err(internal)?
        else {
            return Ok(Some(Stop::EnvironmentDeleted(record.environment_id)));
        };
        if transaction
            .worker_token(&record.token_hash)
            .await
            .map_err(internal)?
            .is_none()
        {
            return Ok(Some(Stop::Because(format!(
                "the worker token of environment '{}' was rotated: start workers with the new token",
                environment.name
            ))));
        }
        if !can_register(environment.status) {
            return Ok(Some(Stop::Because(format!(
                "environment '{}' is {}: its workers stop",
                environment.name, environment.status
            ))));
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
                return Ok(Some(Stop::Because(format!(
                    "worker {} missed its heartbeats for longer than {:?}, and environment '{}' \
                     has no room left (max_workers {max})",
                    record.id,
                    self.heartbeat_interval().expiry(),
                    environment.name
                ))));
            }
        }
        Ok(None)
    }

    /// How the log names a deleted environment: `'name'` from its last audit entry, else its id.
    async fn deleted_name(
        &self,
        organization: &crate::api::OrganizationId,
        environment: EnvironmentId,
    ) -> String {
        let records = self
            .inner()
            .store
            .audit_records(organization, Some(environment), 0, None)
            .await;
        match records {
            Ok(records) => records
                .into_iter()
                .rev()
                .find_map(|record| record.entry.environment_name)
                .map_or_else(|| environment.to_string(), |name| format!("'{name}'")),
            Err(error) => {
                tracing::warn!(error = %crate::local::error_chain(&error), "audit log lookup failed");
                environment.to_string()
            }
        }
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
        let now = now_in(transaction.as_mut()).await?;
        let record = self
            .registered(transaction.as_mut(), worker, &hash, now)
            .await
            .map_err(|error| match error {
                EnvironmentError::Api { status: 410, .. } => EnvironmentError::NotFound {
                    detail: format!("worker {worker} is not registered"),
                },
                other => other,
            })?;
        transaction.delete_worker(worker).await.map_err(internal)?;
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

/// Why a worker must stop.
enum Stop {
    /// Its environment is gone; the answer names it from the audit log.
    EnvironmentDeleted(EnvironmentId),
    /// Any other reason, said in full.
    Because(String),
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

/// Most characters in a worker's hostname (a DNS name is at most 253).
const MAX_HOSTNAME_CHARS: usize = 255;

/// A hostname is logged and shown in tables: no control or invisible characters, and bounded.
fn check_hostname(hostname: &str) -> Result<(), EnvironmentError> {
    let problem = if hostname.chars().count() > MAX_HOSTNAME_CHARS {
        Some(format!(
            "hostname is longer than {MAX_HOSTNAME_CHARS} characters"
        ))
    } else {
        crate::model::text_problem(hostname).map(|_| {
            "hostname cannot hold control or invisible characters or outer whitespace".to_owned()
        })
    };
    match problem {
        None => Ok(()),
        Some(message) => Err(EnvironmentError::Validation {
            errors: vec![crate::api::FieldError::body(
                &["hostname"],
                message,
                "string_pattern_mismatch",
            )],
        }),
    }
}

impl ControlPlane {
    /// The registered worker `id`, if `hash` is the digest of the token it registered with.
    async fn registered(
        &self,
        transaction: &mut dyn StoreTransaction,
        id: WorkerId,
        hash: &WorkerTokenHash,
        now: Timestamp,
    ) -> Result<WorkerRecord, EnvironmentError> {
        // One answer for a token that is not this worker's, whether or not the worker exists, so
        // a bad token cannot tell which worker ids are registered.
        let wrong_token = || unauthorized("invalid worker token for this worker");
        match transaction.worker(id).await.map_err(internal)? {
            Some(record) if &record.token_hash == hash => Ok(record),
            Some(_) => Err(wrong_token()),
            None => {
                // A worker holding a token that is still usable learns it must stop; any other
                // token gets the 401 a registered worker's wrong token gets.
                let usable = transaction
                    .worker_token(hash)
                    .await
                    .map_err(internal)?
                    .is_some_and(|issued| self.token_usable(&issued, now));
                if usable {
                    Err(gone(format!(
                        "worker {id} is not registered (it deregistered, or was silent too long \
                         and removed)"
                    )))
                } else {
                    Err(wrong_token())
                }
            }
        }
    }
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
        let alive_since = control_plane.alive_since(control_plane.now().await?);
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
        let mut transaction = control_plane
            .inner()
            .store
            .begin()
            .await
            .map_err(internal)?;
        let record = transaction
            .environment(organization, environment)
            .await
            .map_err(internal)?
            .ok_or_else(super::scope::not_found)?;
        let revoked = transaction
            .delete_worker_tokens(organization, environment)
            .await
            .map_err(internal)?;
        let worker_token = control_plane
            .issue_worker_token(transaction.as_mut(), organization, environment)
            .await?;
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
        Ok(super::worker_command::worker_command(
            control_plane,
            record,
            worker_token,
        ))
    }

    async fn audit_page(
        &self,
        environment: Option<EnvironmentId>,
        page: &PageRequest,
    ) -> Result<AuditPage, EnvironmentError> {
        // A cursor belongs to one list: the organization's, or one environment's.
        let scope = environment.map_or_else(|| "audit".to_owned(), |id| format!("audit/{id}"));
        let after = page.after(&scope)?;
        let records = self
            .control_plane()
            .inner()
            .store
            .audit_records(
                self.organization_id(),
                environment,
                after,
                Some(page.limit.saturating_add(1)),
            )
            .await
            .map_err(internal)?;
        let (records, next_cursor) = page.page(records, &scope, |record| record.id);
        Ok(AuditPage {
            events: records.into_iter().map(audit::to_event).collect(),
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;

    use super::*;
    use crate::api::{
        CreateEnvironment, EnvironmentsApi, OrganizationId, Patch, UpdateEnvironment,
    };
    use crate::control_plane::{BuiltinProvisionerConfig, ControlPlaneConfig};
    use crate::model::Status;

    const INTERVAL: Duration = Duration::from_millis(60);

    async fn control_plane(delay: Duration) -> ControlPlane {
        let config = ControlPlaneConfig {
            heartbeat_interval: HeartbeatInterval::new(INTERVAL).unwrap(),
            provisioner: BuiltinProvisionerConfig {
                delay,
                ..BuiltinProvisionerConfig::default()
            },
            ..ControlPlaneConfig::default()
        };
        ControlPlane::open_in_memory(config).await.unwrap()
    }

    async fn scope(control_plane: &ControlPlane) -> OrganizationScope {
        control_plane
            .organization(&OrganizationId("acme".to_owned()))
            .await
            .unwrap()
            .with_actor("key:0a1b2c3d")
    }

    async fn pool(scope: &OrganizationScope, name: &str, max_workers: u64) -> EnvironmentId {
        let mut data = CreateEnvironment::named(name);
        data.configuration = Some(
            json!({"max_workers": max_workers})
                .as_object()
                .unwrap()
                .clone(),
        );
        let id = scope.create(&data).await.unwrap().id;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !scope.get(id).await.unwrap().status.is_settled() {
            assert!(Instant::now() < deadline, "still provisioning");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        id
    }

    fn request(environment: &str, hostname: &str) -> RegisterWorker {
        RegisterWorker {
            environment: environment.to_owned(),
            hostname: hostname.to_owned(),
            version: "test".to_owned(),
        }
    }

    fn status(error: &EnvironmentError) -> Option<u16> {
        error.status_code()
    }

    #[tokio::test]
    async fn registration_waits_for_the_environment_and_checks_token_and_name() {
        let control_plane = control_plane(Duration::from_millis(300)).await;
        let scope = scope(&control_plane).await;
        let id = scope
            .create(&CreateEnvironment::named("early"))
            .await
            .unwrap()
            .id;
        let command = scope.get_worker_command(id).await.unwrap();
        assert!(!command.can_register);
        let refused = control_plane
            .register_worker(&command.worker_token, &request("early", "h"))
            .await
            .unwrap_err();
        assert_eq!(status(&refused), Some(409));
        assert!(refused.to_string().contains("provisioning"), "{refused}");

        let deadline = Instant::now() + Duration::from_secs(10);
        while !scope.get(id).await.unwrap().status.is_settled() {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let wrong_name = control_plane
            .register_worker(&command.worker_token, &request("other", "h"))
            .await
            .unwrap_err();
        assert_eq!(status(&wrong_name), Some(400));
        assert!(wrong_name.to_string().contains("'early'"), "{wrong_name}");
        let forged = WorkerToken::new("efw_forged");
        let unknown = control_plane
            .register_worker(&forged, &request("early", "h"))
            .await
            .unwrap_err();
        assert_eq!(status(&unknown), Some(401));
        let registration = control_plane
            .register_worker(&command.worker_token, &request("early", "h"))
            .await
            .unwrap();
        assert_eq!(registration.environment_id, id);
        assert_eq!(registration.heartbeat_interval(), INTERVAL);
        control_plane.shutdown().await;
    }

    #[tokio::test]
    async fn a_hostname_that_would_forge_a_log_line_is_refused() {
        let control_plane = control_plane(Duration::ZERO).await;
        let scope = scope(&control_plane).await;
        let id = pool(&scope, "pool", 5).await;
        let token = scope.get_worker_command(id).await.unwrap().worker_token;
        let long = "h".repeat(256);
        for hostname in [
            "eve\n2026-01-01T00:00:00Z INFO fake",
            "\u{1b}[2Jhost",
            " host",
            &long,
        ] {
            let refused = control_plane
                .register_worker(&token, &request("pool", hostname))
                .await
                .unwrap_err();
            assert_eq!(status(&refused), Some(422), "{hostname:?}");
        }
        assert!(scope.list_workers(id).await.unwrap().is_empty());
        control_plane.shutdown().await;
    }

    #[tokio::test]
    async fn max_workers_caps_the_pool_and_expiry_frees_room() {
        let control_plane = control_plane(Duration::ZERO).await;
        let scope = scope(&control_plane).await;
        let id = pool(&scope, "pool", 2).await;
        let token = scope.get_worker_command(id).await.unwrap().worker_token;
        let first = control_plane
            .register_worker(&token, &request("pool", "one"))
            .await
            .unwrap();
        control_plane
            .register_worker(&token, &request("pool", "two"))
            .await
            .unwrap();
        let third = control_plane
            .register_worker(&token, &request("pool", "three"))
            .await
            .unwrap_err();
        assert_eq!(status(&third), Some(409));
        assert_eq!(
            third.to_string(),
            "conflict: environment 'pool' already has 2 active workers: its max_workers limit is 2"
        );
        let environment = scope.get(id).await.unwrap();
        assert_eq!(
            (
                environment.active_workers,
                environment.idle_workers,
                environment.busy_workers
            ),
            (Some(2), Some(2), Some(0))
        );
        control_plane
            .worker_heartbeat(&token, first.worker_id, &Heartbeat { busy: true })
            .await
            .unwrap();
        let listed = scope.list(None).await.unwrap();
        let environment = listed.iter().find(|env| env.id == id).unwrap();
        assert_eq!(environment.busy_workers, Some(1));
        assert_eq!(environment.idle_workers, Some(1));

        // Three silent intervals later nobody counts, and there is room again.
        tokio::time::sleep(INTERVAL * EXPIRY_INTERVALS + INTERVAL).await;
        assert_eq!(scope.get(id).await.unwrap().active_workers, Some(0));
        let workers = scope.list_workers(id).await.unwrap();
        assert_eq!(workers.len(), 2);
        assert!(
            workers
                .iter()
                .all(|worker| worker.status == WorkerStatus::Stale)
        );
        // A stale worker coming back rejoins while there is room...
        control_plane
            .worker_heartbeat(&token, first.worker_id, &Heartbeat::default())
            .await
            .unwrap();
        control_plane
            .register_worker(&token, &request("pool", "four"))
            .await
            .unwrap();
        // ...and is told to stop when there is none.
        let second = workers
            .iter()
            .find(|worker| worker.id != first.worker_id)
            .unwrap();
        let refused = control_plane
            .worker_heartbeat(&token, second.id, &Heartbeat::default())
            .await
            .unwrap_err();
        assert_eq!(status(&refused), Some(410));
        assert!(refused.to_string().contains("no room left"), "{refused}");
        control_plane.shutdown().await;
    }

    #[tokio::test]
    async fn heartbeats_are_told_to_stop_on_rotation_deactivation_and_deletion() {
        let control_plane = control_plane(Duration::ZERO).await;
        let scope = scope(&control_plane).await;
        let rotated = pool(&scope, "rotated", 5).await;
        let deactivated = pool(&scope, "deactivated", 5).await;
        let deleted = pool(&scope, "deleted", 5).await;
        let mut workers = Vec::new();
        for (id, name) in [
            (rotated, "rotated"),
            (deactivated, "deactivated"),
            (deleted, "deleted"),
        ] {
            let token = scope.get_worker_command(id).await.unwrap().worker_token;
            let registration = control_plane
                .register_worker(&token, &request(name, "h"))
                .await
                .unwrap();
            workers.push((token, registration.worker_id));
        }
        // Someone else's token is refused without stopping the worker.
        let intruder = control_plane
            .worker_heartbeat(&workers[1].0, workers[0].1, &Heartbeat::default())
            .await
            .unwrap_err();
        assert_eq!(status(&intruder), Some(401));

        let new_command = scope.rotate_worker_token(rotated).await.unwrap();
        assert_ne!(new_command.worker_token, workers[0].0);
        assert!(
            new_command
                .command
                .contains(new_command.worker_token.expose())
        );
        scope
            .update(
                deactivated,
                &UpdateEnvironment {
                    status: Patch::Set(Status::Inactive),
                    ..UpdateEnvironment::default()
                },
            )
            .await
            .unwrap();
        scope.delete(deleted).await.unwrap();

        let mut reasons = Vec::new();
        for (token, worker) in &workers {
            let error = control_plane
                .worker_heartbeat(token, *worker, &Heartbeat::default())
                .await
                .unwrap_err();
            assert_eq!(status(&error), Some(410), "{error}");
            reasons.push(error.to_string());
        }
        assert!(reasons[0].contains("was rotated"), "{}", reasons[0]);
        assert!(reasons[1].contains("is inactive"), "{}", reasons[1]);
        assert_eq!(
            reasons[2],
            "API error 410: environment 'deleted' was deleted: its workers stop"
        );
        // A stopped worker no longer counts.
        assert_eq!(scope.get(rotated).await.unwrap().active_workers, Some(0));

        // The old token cannot register again; the new one can.
        let old = control_plane
            .register_worker(&workers[0].0, &request("rotated", "h"))
            .await
            .unwrap_err();
        assert_eq!(status(&old), Some(401));
        control_plane
            .register_worker(&new_command.worker_token, &request("rotated", "h"))
            .await
            .unwrap();
        control_plane.shutdown().await;
    }

    #[tokio::test]
    async fn rotation_revokes_every_token_including_extra_worker_command_ones() {
        let control_plane = control_plane(Duration::ZERO).await;
        let scope = scope(&control_plane).await;
        let id = pool(&scope, "pool", 5).await;
        let first = scope.get_worker_command(id).await.unwrap().worker_token;
        let second = scope.get_worker_command(id).await.unwrap().worker_token;
        let rotated = scope.rotate_worker_token(id).await.unwrap().worker_token;
        assert_eq!(
            control_plane.verify_worker_token(first.expose()).await,
            None
        );
        assert_eq!(
            control_plane.verify_worker_token(second.expose()).await,
            None
        );
        assert!(
            control_plane
                .verify_worker_token(rotated.expose())
                .await
                .is_some()
        );
        let missing = scope
            .rotate_worker_token(EnvironmentId::new_random())
            .await
            .unwrap_err();
        assert_eq!(status(&missing), Some(404));
        control_plane.shutdown().await;
    }

    #[tokio::test]
    async fn deregistration_removes_the_worker_at_once() {
        let control_plane = control_plane(Duration::ZERO).await;
        let scope = scope(&control_plane).await;
        let id = pool(&scope, "pool", 1).await;
        let token = scope.get_worker_command(id).await.unwrap().worker_token;
        let registration = control_plane
            .register_worker(&token, &request("pool", "h"))
            .await
            .unwrap();
        assert_eq!(scope.get(id).await.unwrap().active_workers, Some(1));
        control_plane
            .deregister_worker(&token, registration.worker_id)
            .await
            .unwrap();
        assert_eq!(scope.get(id).await.unwrap().active_workers, Some(0));
        let again = control_plane
            .deregister_worker(&token, registration.worker_id)
            .await
            .unwrap_err();
        assert_eq!(status(&again), Some(404));
        // The pool (max_workers 1) has room again without waiting for expiry.
        control_plane
            .register_worker(&token, &request("pool", "h"))
            .await
            .unwrap();
        control_plane.shutdown().await;
    }

    #[tokio::test]
    async fn every_change_is_audited_with_its_actor_and_no_secret() {
        let control_plane = control_plane(Duration::ZERO).await;
        let scope = scope(&control_plane).await;
        let mut data = CreateEnvironment::named("audited");
        let mut execution = crate::api::ExecutionEnvironment::default();
        execution
            .env_vars
            .insert("API_KEY".to_owned(), json!("value-that-must-not-leak"));
        data.execution_environment = Some(execution);
        let id = scope.create(&data).await.unwrap().id;
        scope
            .update(
                id,
                &UpdateEnvironment {
                    description: Patch::Set("described".to_owned()),
                    ..UpdateEnvironment::default()
                },
            )
            .await
            .unwrap();
        let issued = scope.get_worker_command(id).await.unwrap().worker_token;
        let registration = control_plane
            .register_worker(&issued, &request("audited", "host-9"))
            .await
            .unwrap();
        control_plane
            .deregister_worker(&issued, registration.worker_id)
            .await
            .unwrap();
        let rotated = scope.rotate_worker_token(id).await.unwrap().worker_token;
        scope.delete(id).await.unwrap();

        let events = scope.audit_events(Some(id)).await.unwrap();
        let actions: Vec<AuditAction> = events.iter().map(|event| event.action).collect();
        assert_eq!(
            actions,
            [
                AuditAction::EnvironmentCreate,
                AuditAction::EnvironmentUpdate,
                AuditAction::WorkerTokenIssue,
                AuditAction::WorkerRegister,
                AuditAction::WorkerDeregister,
                AuditAction::WorkerTokenRotate,
                AuditAction::EnvironmentDelete,
            ]
        );
        assert!(events.windows(2).all(|pair| pair[0].id < pair[1].id));
        assert_eq!(events[0].actor, "key:0a1b2c3d");
        assert!(events[3].actor.starts_with("worker-token:"));
        assert_eq!(
            events[1].before.as_ref().unwrap()["description"],
            json!(null)
        );
        assert_eq!(
            events[1].after.as_ref().unwrap()["description"],
            json!("described")
        );
        assert_eq!(
            events[0].after.as_ref().unwrap()["execution_environment"]["env_vars"]["API_KEY"],
            json!("(sensitive)")
        );
        assert_eq!(
            events[3].after.as_ref().unwrap()["hostname"],
            json!("host-9")
        );
        assert!(events.iter().all(|event| event.environment_id == Some(id)));
        let text = serde_json::to_string(&events).unwrap();
        for secret in [
            "value-that-must-not-leak",
            issued.expose(),
            rotated.expose(),
            &token::hash(issued.expose()).0,
            "efw_",
        ] {
            assert!(!text.contains(secret), "{secret} in the audit log: {text}");
        }
        // The organization's log also holds the default environment's creation.
        let all = scope.audit_events(None).await.unwrap();
        assert_eq!(all.len(), events.len() + 1);
        assert_eq!(all[0].environment_name.as_deref(), Some("default"));
        assert_eq!(all[0].actor, "envform");
        control_plane.shutdown().await;
    }

    #[test]
    fn heartbeat_intervals_parse_and_are_bounded() {
        assert_eq!(
            "500ms".parse::<HeartbeatInterval>().unwrap().as_duration(),
            Duration::from_millis(500)
        );
        assert_eq!(
            HeartbeatInterval::default().expiry(),
            Duration::from_secs(30)
        );
        assert!("1ms".parse::<HeartbeatInterval>().is_err());
        assert!("2h".parse::<HeartbeatInterval>().is_err());
        assert!("soon".parse::<HeartbeatInterval>().is_err());
    }
}
