//! Workers and the audit log on the wire: registration, heartbeats, the worker list, token
//! rotation and audit events. [`WorkersApi`] is the API-key side (implemented in process by the
//! control plane and over HTTP by [`ControlPlaneClient`]); [`WorkerClient`] is the worker-token
//! side, the calls a worker process makes to join and stay in its environment's pool.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::{ClientConfig, ClientError, ControlPlaneClient, decode, encode};
use super::page::PageRequest;
use super::{EnvironmentError, EnvironmentId, WorkerCommand, WorkerToken};
pub use crate::model::{AuditAction, UnknownAuditAction, WorkerId};

/// Where the worker endpoints live under the base URL.
const WORKERS_PATH: &str = "/api/v1/workers";
/// Where the audit log lives under the base URL.
const AUDIT_PATH: &str = "/api/v1/audit";

/// The body of `POST /api/v1/workers/register`; the worker token travels in `Authorization`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegisterWorker {
    /// The environment's name, as in the worker command (checked against the token's).
    pub environment: String,
    /// The machine the worker runs on.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff](?:[^\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff])?$"
    )]
    pub hostname: String,
    /// The worker's software version.
    pub version: String,
}

/// The answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerRegistration {
    /// The worker's identifier, for its heartbeats and its deregistration.
    pub worker_id: WorkerId,
    /// The environment it joined.
    pub environment_id: EnvironmentId,
    /// The environment's name.
    pub environment_name: String,
    /// The organization's Temporal namespace.
    #[serde(default)]
    pub temporal_namespace: Option<String>,
    /// The Temporal frontend (`HOST:PORT`) the worker joins, when the service provisions on a
    /// real Temporal server (`envform serve --temporal-address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_address: Option<String>,
    /// The environment's task queue on that server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_task_queue: Option<String>,
    /// How often the worker must send a heartbeat, in milliseconds.
    pub heartbeat_interval_ms: u64,
}

impl WorkerRegistration {
    /// How often the worker must send a heartbeat.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }
}

/// The body of `POST /api/v1/workers/{id}/heartbeat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Heartbeat {
    /// Whether the worker is running a task (the `busy_workers` count).
    #[serde(default)]
    pub busy: bool,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeartbeatAck {
    /// The worker.
    pub worker_id: WorkerId,
    /// How often the worker must send a heartbeat, in milliseconds (it may change).
    pub heartbeat_interval_ms: u64,
}

/// Whether a registered worker still counts as a member of its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkerStatus {
    /// Its last heartbeat is within the expiry window (three heartbeat intervals).
    Active,
    /// No heartbeat for three intervals: not counted; a heartbeat revives it if the pool has room.
    Stale,
}

impl WorkerStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Active => "active",
            WorkerStatus::Stale => "stale",
        }
    }
}

impl fmt::Display for WorkerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registered worker, as `GET /api/v1/environments/{id}/workers` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Worker {
    /// Its identifier.
    pub id: WorkerId,
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// The machine it runs on.
    pub hostname: String,
    /// Its software version.
    pub version: String,
    /// Whether it is alive.
    pub status: WorkerStatus,
    /// Whether its last heartbeat said it runs a task.
    pub busy: bool,
    /// When it registered.
    #[serde(serialize_with = "super::wire::timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub registered_at: Timestamp,
    /// When its last heartbeat arrived.
    #[serde(serialize_with = "super::wire::timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub last_heartbeat_at: Timestamp,
}

/// A page of the audit log: `GET /api/v1/audit?limit=…&cursor=…`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// The entries, oldest first.
    pub events: Vec<AuditEvent>,
    /// Pass it back as `cursor` for the next page; `null` on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// What `GET /api/v1/audit` answers: a page, or the whole log from a server without paging.
#[derive(Deserialize)]
#[serde(untagged)]
enum AuditAnswer {
    Page(AuditPage),
    Whole(Vec<AuditEvent>),
}

/// One entry of the audit log: who did what to which environment, when, and the environment
/// before and after (secret values replaced by `(sensitive)`; tokens never recorded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    /// Increasing within the service.
    pub id: u64,
    /// When it happened.
    #[serde(serialize_with = "super::wire::timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Who: an API key's fingerprint, the local user of the embedded control plane, or a worker.
    pub actor: String,
    /// What.
    pub action: AuditAction,
    /// The environment concerned.
    #[serde(default)]
    pub environment_id: Option<EnvironmentId>,
    /// Its name at the time.
    #[serde(default)]
    pub environment_name: Option<String>,
    /// The environment (or the worker) before, redacted.
    #[serde(default)]
    pub before: Option<serde_json::Value>,
    /// After, redacted.
    #[serde(default)]
    pub after: Option<serde_json::Value>,
}

/// The worker and audit calls made with an API key, for one organization.
///
/// Implemented by the in-process control plane and by [`ControlPlaneClient`], so `envform env
/// rotate-token` and `envform env history` work against either target.
#[async_trait::async_trait]
pub trait WorkersApi: Send + Sync {
    /// The workers registered with an environment, active and stale.
    async fn list_workers(
        &self,
        environment: EnvironmentId,
    ) -> Result<Vec<Worker>, EnvironmentError>;
    /// Revokes every worker token of the environment and returns the one new token (shown once)
    /// in its worker command. Workers on the old tokens are told to stop at their next heartbeat.
    async fn rotate_worker_token(
        &self,
        environment: EnvironmentId,
    ) -> Result<WorkerCommand, EnvironmentError>;
    /// One page of the audit log, oldest first, of one environment or of the whole organization.
    async fn audit_page(
        &self,
        environment: Option<EnvironmentId>,
        page: &PageRequest,
    ) -> Result<AuditPage, EnvironmentError>;
    /// The whole audit log, oldest first, of one environment or of the whole organization: every
    /// page, following `next_cursor`.
    async fn audit_events(
        &self,
        environment: Option<EnvironmentId>,
    ) -> Result<Vec<AuditEvent>, EnvironmentError> {
        let mut events = Vec::new();
        let mut request = PageRequest::default();
        loop {
            let page = self.audit_page(environment, &request).await?;
            events.extend(page.events);
            match page.next_cursor {
                // A cursor that does not move would loop forever.
                Some(next) if request.cursor.as_ref() == Some(&next) => {
                    return Err(EnvironmentError::Api {
                        status: 502,
                        detail: "the audit log answered the same `next_cursor` twice".to_owned(),
                    });
                }
                Some(next) => request.cursor = Some(next),
                None => return Ok(events),
            }
        }
    }
    /// Runs `envform.ping` `count` times on the environment's Temporal task queue; only a service
    /// on a real Temporal server (`envform serve --temporal-address`) can.
    async fn ping_environment(
        &self,
        _environment: EnvironmentId,
        _count: u32,
    ) -> Result<super::PingReport, EnvironmentError> {
        Err(EnvironmentError::Api {
            status: 409,
            detail: "env ping needs `envform serve --temporal-address`: the embedded control \
                     plane runs no Temporal server"
                .to_owned(),
        })
    }
}

#[async_trait::async_trait]
impl<T: WorkersApi + ?Sized> WorkersApi for std::sync::Arc<T> {
    async fn list_workers(
        &self,
        environment: EnvironmentId,
    ) -> Result<Vec<Worker>, EnvironmentError> {
        (**self).list_workers(environment).await
    }
    async fn rotate_worker_token(
        &self,
        environment: EnvironmentId,
    ) -> Result<WorkerCommand, EnvironmentError> {
        (**self).rotate_worker_token(environment).await
    }
    async fn audit_page(
        &self,
        environment: Option<EnvironmentId>,
        page: &PageRequest,
    ) -> Result<AuditPage, EnvironmentError> {
        (**self).audit_page(environment, page).await
    }
    async fn audit_events(
        &self,
        environment: Option<EnvironmentId>,
    ) -> Result<Vec<AuditEvent>, EnvironmentError> {
        (**self).audit_events(environment).await
    }
    async fn ping_environment(
        &self,
        environment: EnvironmentId,
        count: u32,
    ) -> Result<super::PingReport, EnvironmentError> {
        (**self).ping_environment(environment, count).await
    }
}

#[async_trait::async_trait]
impl WorkersApi for ControlPlaneClient {
    async fn list_workers(
        &self,
        environment: EnvironmentId,
    ) -> Result<Vec<Worker>, EnvironmentError> {
        let url = format!("{}/workers", self.environment_url(environment));
        let body = self.call(Method::GET, &url, None, None).await?;
        decode(&body)
    }

    async fn rotate_worker_token(
        &self,
        environment: EnvironmentId,
    ) -> Result<WorkerCommand, EnvironmentError> {
        let url = format!("{}/worker-token/rotate", self.environment_url(environment));
        let body = self.call(Method::POST, &url, None, None).await?;
        decode(&body)
    }

    async fn audit_page(
        &self,
        environment: Option<EnvironmentId>,
        page: &PageRequest,
    ) -> Result<AuditPage, EnvironmentError> {
        let mut url =
            reqwest::Url::parse(&format!("{}{AUDIT_PATH}", self.base_url())).map_err(|error| {
                EnvironmentError::Api {
                    status: 0,
                    detail: format!("invalid base URL: {error}"),
                }
            })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(environment) = environment {
                query.append_pair("environment_id", &environment.to_string());
            }
            query.append_pair("limit", &page.limit.to_string());
            if let Some(cursor) = &page.cursor {
                query.append_pair("cursor", cursor);
            }
        }
        let body = self.call(Method::GET, url.as_str(), None, None).await?;
        // A server from before paging answers the whole log as an array.
        match decode::<AuditAnswer>(&body)? {
            AuditAnswer::Page(page) => Ok(page),
            AuditAnswer::Whole(events) => Ok(AuditPage {
                events,
                next_cursor: None,
            }),
        }
    }

    async fn ping_environment(
        &self,
        environment: EnvironmentId,
        count: u32,
    ) -> Result<super::PingReport, EnvironmentError> {
        ControlPlaneClient::ping_environment(self, environment, count).await
    }
}

/// The calls of a worker process, authenticated by its worker token: register, heartbeat,
/// deregister. No call is retried here; the worker's loop decides what to do about failures.
#[derive(Debug, Clone)]
pub struct WorkerClient {
    client: ControlPlaneClient,
}

impl WorkerClient {
    /// A client of the service at `base_url` for the worker holding `token`.
    pub fn new(
        base_url: &str,
        token: &WorkerToken,
        request_timeout: Duration,
    ) -> Result<Self, ClientError> {
        let config = ClientConfig {
            base_url: base_url.to_owned(),
            api_key: token.expose().to_owned().into(),
            request_timeout,
            max_retries: 0,
            ..ClientConfig::default()
        };
        Ok(Self {
            client: ControlPlaneClient::with_config(config)?,
        })
    }

    /// The base URL calls go to.
    pub fn base_url(&self) -> &str {
        self.client.base_url()
    }

    /// Joins the environment's pool (409 when the pool is full or the environment cannot take
    /// workers yet, 401 for an unknown or revoked token).
    pub async fn register(
        &self,
        request: &RegisterWorker,
    ) -> Result<WorkerRegistration, EnvironmentError> {
        let url = format!("{}{WORKERS_PATH}/register", self.base_url());
        let body = self
            .client
            .call(Method::POST, &url, None, Some(encode(request)?))
            .await?;
        decode(&body)
    }

    /// Says the worker is alive; 410 Gone means it must stop (environment deleted or inactive,
    /// token rotated, or registration expired with no room left).
    pub async fn heartbeat(
        &self,
        worker: WorkerId,
        heartbeat: &Heartbeat,
    ) -> Result<HeartbeatAck, EnvironmentError> {
        let url = format!("{}{WORKERS_PATH}/{worker}/heartbeat", self.base_url());
        let body = self
            .client
            .call(Method::POST, &url, None, Some(encode(heartbeat)?))
            .await?;
        decode(&body)
    }

    /// Leaves the pool.
    pub async fn deregister(&self, worker: WorkerId) -> Result<(), EnvironmentError> {
        let url = format!("{}{WORKERS_PATH}/{worker}", self.base_url());
        self.client
            .call(Method::DELETE, &url, None, None)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_log_reads_as_a_page_or_as_the_bare_array_of_older_servers() {
        let event = serde_json::json!({
            "id": 7, "at": "2026-01-02T03:04:05Z", "actor": "key:ci",
            "action": "environment.update", "environment_name": "pool"
        });
        let page = serde_json::json!({"events": [event], "next_cursor": "abc"});
        match serde_json::from_value::<AuditAnswer>(page).unwrap() {
            AuditAnswer::Page(page) => {
                assert_eq!(page.events[0].id, 7);
                assert_eq!(page.next_cursor.as_deref(), Some("abc"));
            }
            AuditAnswer::Whole(_) => panic!("a page read as an array"),
        }
        let whole = serde_json::json!([event, event]);
        match serde_json::from_value::<AuditAnswer>(whole).unwrap() {
            AuditAnswer::Whole(events) => assert_eq!(events.len(), 2),
            AuditAnswer::Page(_) => panic!("an array read as a page"),
        }
    }

    #[test]
    fn audit_actions_round_trip_through_their_names() {
        for action in AuditAction::ALL {
            assert_eq!(action.as_str().parse::<AuditAction>(), Ok(action));
            let json = serde_json::to_value(action).unwrap();
            assert_eq!(json, serde_json::json!(action.as_str()));
        }
        assert!("environment.explode".parse::<AuditAction>().is_err());
    }

    #[test]
    fn worker_client_debug_never_shows_the_token() {
        let token = WorkerToken::new("efw_00112233445566778899aabbccddeeff");
        let client =
            WorkerClient::new("http://127.0.0.1:1", &token, Duration::from_secs(1)).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains(token.expose()), "{debug}");
    }

    #[test]
    fn registration_gives_the_interval_as_a_duration() {
        let registration: WorkerRegistration = serde_json::from_value(serde_json::json!({
            "worker_id": "550e8400-e29b-41d4-a716-446655440000",
            "environment_id": "550e8400-e29b-41d4-a716-446655440001",
            "environment_name": "prod",
            "heartbeat_interval_ms": 250,
            "new_field": true
        }))
        .unwrap();
        assert_eq!(
            registration.heartbeat_interval(),
            Duration::from_millis(250)
        );
        assert_eq!(registration.temporal_namespace, None);
    }
}
