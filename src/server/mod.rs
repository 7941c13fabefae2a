//! `envform serve`: the Environments API (docs/src/concepts/service.md) over HTTP, on top of [`crate::control_plane`].
//!
//! This module owns what only an HTTP service needs: binding, routing, authentication (an API key
//! maps to an organization), the three error body shapes, body limits, request logs and graceful
//! shutdown. It holds no business rules: every decision about environments is the control
//! plane's, so the embedded service and the served one behave the same.

mod app_state;
mod auth;
mod error_schemas;
mod faults;
mod json;
mod keys_file;
mod list_body;
mod listen;
mod openapi;
mod request_log;
mod routes;
mod state;
mod temporal;
mod tls;
mod workers;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::normalize_path::NormalizePathLayer;

use crate::api::OrganizationId;
use crate::control_plane::state_service::StateStore;
use crate::control_plane::{
    BuiltinProvisioner, ControlPlane, ControlPlaneConfig, ControlPlaneError, NamespaceProvisioner,
};
use crate::store::{PgPoolSettings, PgStore, SqliteStore, StoreError};

pub use auth::{AUTH_FAILURE_BURST, ApiKey, ApiKeyError, KeyGrant, Role, key_digest_text};
pub use faults::{FaultConfig, FaultConfigError, FaultEffect, FaultPhase, FaultRule, FaultTrigger};
pub use json::{read_create_body, read_update_body};
pub use keys_file::KeysFileError;
pub use listen::{
    ConnectionLimits, DEFAULT_HEADER_TIMEOUT, DEFAULT_HTTP2_MAX_STREAMS, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT, MAX_CONNECTIONS_CEILING, RESERVED_FDS,
};
pub use openapi::openapi_json;
pub use tls::{TlsError, TlsFiles};

/// The default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// How long a state lock lasts unless its holder renews it, by default.
pub const DEFAULT_STATE_LEASE: Duration = Duration::from_secs(60);

/// How long lock events are kept by default: 30 days.
pub const DEFAULT_STATE_EVENT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The longest time between two prunings of the lock event log.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// How long the server answers a repeated list from memory (never across one of its writes).
pub const LIST_CACHE_TTL: Duration = Duration::from_millis(250);

/// Everything `envform serve` runs with.
pub struct ServeConfig {
    /// Where to listen; port 0 picks a free port (see [`Server::local_addr`]).
    pub addr: SocketAddr,
    /// The SQLite database file of the control plane, unless `database_url` is set.
    pub db_path: PathBuf,
    /// A PostgreSQL database (`postgres://…`) instead of the SQLite file: several servers may
    /// share it.
    pub database_url: Option<SecretString>,
    /// The PostgreSQL connection pool's size and timeouts.
    pub postgres_pool: PgPoolSettings,
    /// API keys given in full and the organization each one acts for, with the admin role.
    pub api_keys: BTreeMap<ApiKey, OrganizationId>,
    /// Keys with a name and a role (from `--api-key KEY=ORG:ROLE`).
    pub api_key_grants: Vec<KeyGrant>,
    /// A keys file (`--api-keys-file`) read at start and again on [`KeyReloader::reload`].
    pub api_keys_file: Option<PathBuf>,
    /// Failed authentications allowed per client address before 429 (then one a second).
    pub auth_failure_burst: u32,
    /// Requests with a larger body are refused with 413.
    pub body_limit_bytes: usize,
    /// The control plane's settings (worker command, provisioner).
    pub control_plane: ControlPlaneConfig,
    /// Injected failures, for tests of clients; empty (off) by default.
    pub faults: FaultConfig,
    /// How long a state lock lasts unless its holder renews it.
    pub state_lease: Duration,
    /// Lock events older than this are deleted (at start, then every hour or every retention
    /// period, whichever is shorter).
    pub state_event_retention: Duration,
    /// Provision namespaces on this Temporal server instead of the built-in provisioner.
    pub temporal: Option<crate::temporal::TemporalConfig>,
    /// Timeouts and the connection cap.
    pub limits: ConnectionLimits,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<TlsFiles>,
}

impl ServeConfig {
    /// Defaults (`127.0.0.1:8080`, 1 MiB bodies, no faults) over `db_path`, with no API key yet.
    pub fn new(db_path: impl Into<PathBuf>) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            db_path: db_path.into(),
            database_url: None,
            postgres_pool: PgPoolSettings::default(),
            api_keys: BTreeMap::new(),
            api_key_grants: Vec::new(),
            api_keys_file: None,
            auth_failure_burst: AUTH_FAILURE_BURST,
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            // The server is its database's one writer: repeated lists come from memory for a
            // moment, and never across one of its own writes.
            control_plane: ControlPlaneConfig {
                list_cache: Some(LIST_CACHE_TTL),
                ..ControlPlaneConfig::default()
            },
            faults: FaultConfig::default(),
            state_lease: DEFAULT_STATE_LEASE,
            state_event_retention: DEFAULT_STATE_EVENT_RETENTION,
            temporal: None,
            limits: ConnectionLimits::default(),
            tls: None,
        }
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are listed by fingerprint only.
        let api_keys: BTreeMap<String, &OrganizationId> = self
            .api_keys
            .iter()
            .map(|(key, organization)| (key.fingerprint(), organization))
            .collect();
        f.debug_struct("ServeConfig")
            .field("addr", &self.addr)
            .field("db_path", &self.db_path)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "<redacted>"),
            )
            .field("api_keys", &api_keys)
            .field("api_key_grants", &self.api_key_grants)
            .field("api_keys_file", &self.api_keys_file)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("faults", &self.faults)
            .field("tls", &self.tls)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No API key is configured, so no request could ever be served.
    #[error("no API key is configured")]
    NoApiKeys,
    /// The control plane's database could not be opened.
    #[error("cannot open the control plane database {path}")]
    ControlPlane {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: ControlPlaneError,
    },
    /// The state backend's database could not be opened.
    #[error("cannot open the state database {}", path.display())]
    StateStore {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: crate::store::StoreError,
    },
    /// The PostgreSQL database could not be reached or migrated.
    #[error("cannot open the PostgreSQL database")]
    Postgres(#[source] ControlPlaneError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The Temporal provisioner's worker could not be started.
    #[error("cannot start the Temporal worker")]
    Temporal(#[source] std::io::Error),
    /// The API keys file cannot be used.
    #[error(transparent)]
    KeysFile(#[from] KeysFileError),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Serving failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// A bound, not yet running server: its address is known before the first request.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: axum::Router,
    control_plane: ControlPlane,
    store: OpenStore,
    temporal: Option<Arc<crate::temporal::TemporalProvisioner>>,
    limits: ConnectionLimits,
    keys: KeyReloader,
    state_service: crate::control_plane::state_service::StateService,
    state_event_retention: Duration,
    tls: Option<tls::Tls>,
}

/// Reads the keys file again and puts its keys (with those given as flags) in force, without
/// dropping a connection. Cheap to clone.
#[derive(Clone)]
pub struct KeyReloader {
    keys: Arc<auth::Keys>,
    fixed: Arc<Vec<KeyGrant>>,
    file: Option<PathBuf>,
}

impl KeyReloader {
    /// The keys in force after reading the file: those of the flags, then the file's.
    fn read(&self) -> Result<Vec<KeyGrant>, KeysFileError> {
        let mut grants = self.fixed.as_ref().clone();
        if let Some(path) = &self.file {
            grants.extend(keys_file::load(path)?);
        }
        Ok(grants)
    }

    /// Reads the keys file again; on an error the keys in force stay. The number of keys now.
    pub fn reload(&self) -> Result<usize, KeysFileError> {
        let ring = auth::KeyRing::new(self.read()?);
        let count = ring.len();
        self.keys.replace(ring);
        Ok(count)
    }
}

/// The database a server runs on, closed when it stops.
enum OpenStore {
    /// A SQLite file (the state backend's pool; the control plane keeps its own).
    Sqlite(SqliteStore),
    /// A PostgreSQL database, shared by the control plane and the state backend.
    Postgres(PgStore),
}

impl OpenStore {
    async fn close(&self) {
        match self {
            OpenStore::Sqlite(store) => store.close().await,
            OpenStore::Postgres(store) => store.close().await,
        }
    }
}

/// Opens and migrates the PostgreSQL database at `url`.
pub async fn open_postgres(
    url: &SecretString,
    pool: PgPoolSettings,
) -> Result<PgStore, StoreError> {
    let store = PgStore::connect(url.expose_secret(), pool)?;
    store.migrate().await?;
    Ok(store)
}

impl Server {
    /// Opens the database and binds the address.
    pub async fn bind(config: ServeConfig) -> Result<Self, ServerError> {
        // Before anything is opened: a bad certificate or key stops the start at once.
        let tls = config.tls.as_ref().map(tls::Tls::load).transpose()?;
        let mut fixed: Vec<KeyGrant> = config
            .api_keys
            .iter()
            .map(|(key, organization)| KeyGrant::from_key(key, organization.clone(), Role::Admin))
            .collect();
        fixed.extend(config.api_key_grants.iter().cloned());
        let keys = Arc::new(auth::Keys::new(
            auth::KeyRing::new([]),
            config.auth_failure_burst,
        ));
        let reloader = KeyReloader {
            keys: Arc::clone(&keys),
            fixed: Arc::new(fixed),
            file: config.api_keys_file.clone(),
        };
        if reloader.reload()? == 0 && config.api_keys_file.is_none() {
            return Err(ServerError::NoApiKeys);
        }
        let temporal = match config.temporal.clone() {
            Some(temporal) => Some(Arc::new(
                crate::temporal::TemporalProvisioner::start(temporal)
                    .map_err(ServerError::Temporal)?,
            )),
            None => None,
        };
        let provisioner: Arc<dyn NamespaceProvisioner> = match &temporal {
            Some(temporal) => Arc::clone(temporal) as Arc<dyn NamespaceProvisioner>,
            None => Arc::new(BuiltinProvisioner::new(
                config.control_plane.provisioner.clone(),
            )),
        };
        let (control_plane, state_store, store) = match &config.database_url {
            None => Self::open_sqlite(&config.db_path, config.control_plane, provisioner).await?,
            Some(url) => {
                let store = open_postgres(url, config.postgres_pool)
                    .await
                    .map_err(|source| ServerError::Postgres(source.into()))?;
                // Other replicas write to the same database: a list must always be read afresh.
                let control_plane_config = ControlPlaneConfig {
                    list_cache: None,
                    ..config.control_plane
                };
                let control_plane = ControlPlane::open_shared_with(
                    Arc::new(store.clone()),
                    control_plane_config,
                    provisioner,
                )
                .await
                .map_err(ServerError::Postgres)?;
                let state_store: Arc<dyn StateStore> = Arc::new(store.clone());
                (control_plane, state_store, OpenStore::Postgres(store))
            }
        };
        let listener = match TcpListener::bind(config.addr).await {
            Ok(listener) => listener,
            Err(source) => {
                control_plane.shutdown().await;
                return Err(ServerError::Bind {
                    addr: config.addr,
                    source,
                });
            }
        };
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.addr,
            source,
        })?;
        let state_service = crate::control_plane::state_service::StateService::new(
            state_store,
            Arc::new(crate::control_plane::clock::SystemClock),
            config.state_lease,
        );
        let state = app_state::AppState {
            control_plane: control_plane.clone(),
            keys,
            state_service: state_service.clone(),
            temporal: temporal.clone(),
            openapi: Arc::from(openapi::openapi_json()),
        };
        let router = routes::router(
            state,
            config.body_limit_bytes,
            config.faults,
            config.limits.request_timeout,
        );
        Ok(Self {
            listener,
            local_addr,
            router,
            control_plane,
            store,
            temporal,
            limits: config.limits,
            keys: reloader,
            state_service,
            state_event_retention: config.state_event_retention,
            tls,
        })
    }

    /// The control plane on a SQLite file, and a second pool on it for the state backend.
    async fn open_sqlite(
        path: &std::path::Path,
        config: ControlPlaneConfig,
        provisioner: Arc<dyn NamespaceProvisioner>,
    ) -> Result<(ControlPlane, Arc<dyn StateStore>, OpenStore), ServerError> {
        let control_plane = ControlPlane::open_sqlite_with(path, config, provisioner)
            .await
            .map_err(|source| ServerError::ControlPlane {
                path: path.to_path_buf(),
                source,
            })?;
        // A second pool on the same file: the control plane keeps its store to itself.
        match SqliteStore::open(path).await {
            Ok(store) => Ok((
                control_plane,
                Arc::new(store.clone()),
                OpenStore::Sqlite(store),
            )),
            Err(source) => {
                control_plane.shutdown().await;
                Err(ServerError::StateStore {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }

    /// What reads the keys file again (on SIGHUP).
    pub fn key_reloader(&self) -> KeyReloader {
        self.keys.clone()
    }

    /// The address the server listens on (the actual port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https` when the server speaks TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and closes the database.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        tracing::info!(addr = %self.local_addr, "envform serve started");
        // `/api/v1/environments/` is answered as `/api/v1/environments`, as clients that add a
        // slash expect; the path is trimmed before routing, so every route gets it.
        let app = axum::Router::new()
            .fallback_service(NormalizePathLayer::trim_trailing_slash().layer(self.router));
        let pruning = tokio::spawn(prune_lock_events(
            self.state_service.clone(),
            self.state_event_retention,
        ));
        match self.tls {
            Some(tls) => listen::serve(self.listener, tls, app, self.limits, shutdown).await,
            None => {
                listen::serve(self.listener, listen::PlainTcp, app, self.limits, shutdown).await;
            }
        }
        pruning.abort();
        self.control_plane.shutdown().await;
        if let Some(temporal) = &self.temporal {
            temporal.shutdown().await;
        }
        self.store.close().await;
        tracing::info!("envform serve stopped");
        Ok(())
    }
}

/// Deletes lock events older than `retention` now, then every hour or every `retention`,
/// whichever is shorter, until aborted. A failed pruning is logged and tried again next time.
async fn prune_lock_events(
    service: crate::control_plane::state_service::StateService,
    retention: Duration,
) {
    let mut ticks = tokio::time::interval(retention.clamp(Duration::from_secs(1), PRUNE_INTERVAL));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match service.prune_events(retention).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, ?retention, "old lock events pruned"),
            Err(error) => {
                tracing::warn!(error = %crate::local::error_chain(&error), "pruning lock events failed");
            }
        }
    }
}

/// Binds and serves until `shutdown` completes.
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Server::bind(config).await?.run(shutdown).await
}
