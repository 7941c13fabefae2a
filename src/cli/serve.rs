//! `envform serve`: flags, their resolution into a [`ServeConfig`], and running the server until
//! SIGTERM or Ctrl-C.
//!
//! On start it prints exactly one line to stdout, `envform serve listening on http://IP:PORT`
//! (`https://` with `--tls-cert`), so a script (or a test started with `--addr 127.0.0.1:0`)
//! learns the port. Logs go to stderr.
//! API keys given as flags or in `ENVFORM_API_KEYS` never appear in `Debug` output or errors.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use miette::{Diagnostic, IntoDiagnostic, WrapErr};
use secrecy::{ExposeSecret, SecretString};

use crate::api::OrganizationId;
use crate::server::{
    ApiKey, ConnectionLimits, FaultConfig, KeyGrant, KeyReloader, Role, ServeConfig, Server,
};
use crate::store::PgPoolSettings;

/// Serve the Environments API over HTTP, backed by a local SQLite database or by PostgreSQL
/// (then as one of several replicas).
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "IP:PORT")]
    pub addr: SocketAddr,

    /// SQLite database file (created if missing).
    #[arg(long = "db", default_value = ".envform/serve.db", value_name = "PATH")]
    pub db: PathBuf,

    /// PostgreSQL database instead of the SQLite file, e.g. `postgres://user:pass@host/envform`;
    /// several servers may share it.
    #[arg(
        long,
        env = "ENVFORM_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL",
        conflicts_with = "db"
    )]
    pub database_url: Option<DatabaseUrl>,

    /// Most connections to PostgreSQL this server keeps open.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub database_pool_size: u32,

    /// How long a request waits for a PostgreSQL connection before it is answered 503.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_duration)]
    pub database_connect_timeout: Duration,

    /// Longest a PostgreSQL statement may run (waiting for the write lock included).
    #[arg(long, default_value = "15s", value_name = "DURATION", value_parser = parse_duration)]
    pub database_statement_timeout: Duration,

    /// Create or update the database schema, then exit without serving (for deployments that
    /// migrate before starting replicas). Needs no API key.
    #[arg(long)]
    pub migrate_only: bool,

    /// An accepted API key, the organization it acts for and its role (viewer, editor or admin;
    /// admin when left out); repeatable. At least one key (here or in --api-keys-file) is required.
    #[arg(
        long = "api-key",
        value_name = "KEY=ORG[:ROLE]",
        env = "ENVFORM_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<ApiKeyBinding>,

    /// A YAML (or `.toml`) file of named keys, each with an organization, a role and the key's
    /// `sha256:` digest; read again on SIGHUP, so keys are added and revoked without a restart.
    #[arg(long, value_name = "PATH")]
    pub api_keys_file: Option<PathBuf>,

    /// Failed authentications a client address may make in a burst before it is answered 429;
    /// it then gets one more a second.
    #[arg(long, default_value_t = crate::server::AUTH_FAILURE_BURST, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_failure_burst: u32,

    /// Largest accepted request body: bytes, or with a KiB/MiB suffix.
    #[arg(long, default_value = "1MiB", value_name = "SIZE")]
    pub body_limit: ByteSize,

    /// Worker command template, with {token} and {environment} placeholders.
    #[arg(long, value_name = "TEMPLATE")]
    pub worker_command: Option<String>,

    /// How long namespace provisioning takes, e.g. `2s` or `500ms`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub provision_delay: Option<Duration>,

    /// How often workers send heartbeats, e.g. `10s` or `500ms`; a worker silent for three
    /// intervals no longer counts as active.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub heartbeat_interval: crate::control_plane::HeartbeatInterval,

    /// How long a worker token stays valid while no worker has registered with it, e.g. `24h`;
    /// a token that registered a worker stays valid until rotation or delete.
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = parse_positive_duration)]
    pub worker_token_ttl: Duration,

    /// Make namespace provisioning fail for this organization (repeatable).
    #[arg(long, hide = true, value_name = "ORG")]
    pub provision_fail: Vec<String>,

    /// Inject failures, e.g. `status=503,count=2,method=GET` (see `server::FaultConfig`).
    #[arg(long, hide = true, value_name = "RULES")]
    pub faults: Option<FaultConfig>,

    /// How long a state lock lasts unless its holder renews it (at least 1s).
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_lease)]
    pub state_lease: Duration,

    /// Lock events older than this are deleted, at start and then every hour (or every
    /// retention period when shorter): e.g. `30d`, `12h`, `90s`.
    #[arg(long, default_value = "30d", value_name = "DURATION", value_parser = parse_retention)]
    pub state_event_retention: Duration,

    /// Provision each organization's namespace on this Temporal server (HOST:PORT) with a
    /// workflow, instead of the built-in provisioner; workers then also serve their
    /// environment's task queue there.
    #[arg(long, env = "ENVFORM_TEMPORAL_ADDRESS", value_name = "HOST:PORT")]
    pub temporal_address: Option<String>,

    /// Organization namespaces are named PREFIX + the organization.
    #[arg(
        long,
        default_value = "envform-",
        value_name = "PREFIX",
        requires = "temporal_address"
    )]
    pub temporal_namespace_prefix: String,

    /// The namespace envform serve runs its provisioning workflows in (registered if missing).
    #[arg(
        long,
        default_value = crate::temporal::DEFAULT_SYSTEM_NAMESPACE,
        value_name = "NAMESPACE",
        requires = "temporal_address"
    )]
    pub temporal_system_namespace: String,

    /// Workflow history retention of the namespaces envform registers, e.g. `72h`.
    #[arg(
        long,
        default_value = "72h",
        value_name = "DURATION",
        value_parser = parse_duration,
        requires = "temporal_address"
    )]
    pub temporal_namespace_retention: Duration,

    /// TLS and API key towards Temporal.
    #[command(flatten)]
    pub(crate) temporal: super::temporal_args::TemporalConnectArgs,
    /// How long a request's headers may take to arrive whole; on HTTP/1.1 the clock also runs
    /// while a kept-alive connection waits for its next request. Slow senders are disconnected.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_positive_duration)]
    pub header_timeout: Duration,

    /// How long a connection may stay open with no request in flight.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_positive_duration)]
    pub idle_timeout: Duration,

    /// Longest a whole request may take (reading its body included); answered 408 after that.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_positive_duration)]
    pub request_timeout: Duration,

    /// Most open connections; at the cap the oldest idle one is closed to make room, and a new
    /// one is refused when all are busy. Default: the open-file limit less 64, at most 4096.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,

    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key. Without
    /// TLS, API keys and worker tokens cross the network in clear.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Most concurrent streams of one HTTP/2 connection.
    #[arg(long, default_value_t = crate::server::DEFAULT_HTTP2_MAX_STREAMS, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_streams: u32,
}

/// One `KEY=ORG` entry, checked after parsing so that a malformed one is reported without
/// echoing the key (clap would print the whole value).
#[derive(Clone)]
pub struct ApiKeyBinding(SecretString);

impl FromStr for ApiKeyBinding {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(SecretString::from(text.to_owned())))
    }
}

impl fmt::Debug for ApiKeyBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyBinding(<redacted>)")
    }
}

/// A database URL, which may hold a password: never shown in `Debug` output or errors.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Ok(Self(SecretString::from(text.to_owned())))
        } else {
            // Not echoed: it may hold a password.
            Err("the database URL must start with postgres:// or postgresql://".to_owned())
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseUrl(<redacted>)")
    }
}

/// A size in bytes, written as a number with an optional `KiB` or `MiB` suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let lower = text.to_ascii_lowercase();
        let (number, unit) = [("mib", 1024 * 1024), ("kib", 1024), ("b", 1)]
            .into_iter()
            .find_map(|(suffix, unit)| lower.strip_suffix(suffix).map(|number| (number, unit)))
            .unwrap_or((lower.as_str(), 1));
        number
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|number| number.checked_mul(unit))
            .filter(|bytes| *bytes > 0)
            .map(ByteSize)
            .ok_or_else(|| format!("`{text}` is not a size such as 1048576, 512KiB or 1MiB"))
    }
}

/// A duration such as `2s`, `500ms` or `1m 30s`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("`{text}` is not a duration such as 2s, 500ms or 1m");
    let duration: jiff::SignedDuration = text.trim().parse().map_err(|_| invalid())?;
    Duration::try_from(duration).map_err(|_| invalid())
}

/// A duration longer than zero.
fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("`{text}` must be longer than zero"));
    }
    Ok(duration)
}

/// A retention period: a number of days (`30d`) or a duration longer than zero.
fn parse_retention(text: &str) -> Result<Duration, String> {
    if let Some(days) = text.trim().strip_suffix('d') {
        let invalid = || format!("`{text}` is not a retention such as 30d, 12h or 90s");
        let days: u64 = days.trim().parse().map_err(|_| invalid())?;
        return match days.checked_mul(24 * 3600) {
            Some(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
            _ => Err(invalid()),
        };
    }
    parse_positive_duration(text)
}

/// A state lock lease: a duration of at least a second, since holders are told it in seconds.
fn parse_lease(text: &str) -> Result<Duration, String> {
    let lease = parse_duration(text)?;
    if lease < Duration::from_secs(1) {
        return Err(format!("`{text}` is shorter than the shortest lease, 1s"));
    }
    Ok(lease)
}

/// Why `envform serve`'s flags cannot be used.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ServeArgsError {
    /// No API key at all: the server would refuse every request.
    #[error("no API key given")]
    #[diagnostic(
        code(envform::serve::no_api_key),
        help(
            "pass --api-key KEY=ORG[:ROLE] (repeatable), set ENVFORM_API_KEYS=KEY=ORG,KEY2=ORG2:viewer or give --api-keys-file"
        )
    )]
    NoApiKeys,
    /// An entry names an unknown role.
    #[error("API key entry #{index}: {reason}")]
    #[diagnostic(
        code(envform::serve::api_key),
        help("write each entry as KEY=ORG or KEY=ORG:ROLE")
    )]
    InvalidRole {
        /// The entry's position, from 1.
        index: usize,
        /// What is wrong with the role.
        reason: String,
    },
    /// An entry is not `KEY=ORG`.
    #[error("API key entry #{index} is not KEY=ORG (its value is not shown: it holds a key)")]
    #[diagnostic(code(envform::serve::api_key), help("write each entry as KEY=ORG"))]
    NotKeyOrganization {
        /// The entry's position, from 1.
        index: usize,
    },
    /// An entry's key is unusable.
    #[error("API key entry #{index}: {reason}")]
    #[diagnostic(code(envform::serve::api_key))]
    InvalidKey {
        /// The entry's position, from 1.
        index: usize,
        /// What is wrong with the key.
        reason: crate::server::ApiKeyError,
    },
    /// An entry has an empty organization.
    #[error("API key entry #{index} has an empty organization")]
    #[diagnostic(code(envform::serve::api_key), help("write each entry as KEY=ORG"))]
    EmptyOrganization {
        /// The entry's position, from 1.
        index: usize,
    },
    /// The same key is given for two organizations.
    #[error(
        "API key entry #{index} repeats an earlier key ({fingerprint}) for another organization"
    )]
    #[diagnostic(code(envform::serve::api_key))]
    DuplicateKey {
        /// The entry's position, from 1.
        index: usize,
        /// The key's fingerprint.
        fingerprint: String,
    },
    /// The worker command template is invalid.
    #[error("invalid --worker-command: {reason}")]
    #[diagnostic(code(envform::serve::worker_command))]
    WorkerCommand {
        /// What is wrong with it.
        reason: String,
    },
}

impl ServeArgs {
    /// Checks the flags and builds the server's configuration.
    pub fn resolve(self) -> Result<ServeConfig, ServeArgsError> {
        let api_keys = if self.api_keys.is_empty() && self.api_keys_file.is_some() {
            Vec::new()
        } else {
            resolve_api_keys(&self.api_keys)?
        };
        let mut config = ServeConfig::new(self.db);
        config.database_url = self.database_url.map(|url| url.0);
        config.postgres_pool = PgPoolSettings {
            max_connections: self.database_pool_size,
            acquire_timeout: self.database_connect_timeout,
            statement_timeout: self.database_statement_timeout,
        };
        config.addr = self.addr;
        config.api_key_grants = api_keys;
        config.api_keys_file = self.api_keys_file;
        config.auth_failure_burst = self.auth_failure_burst;
        config.body_limit_bytes = self.body_limit.0;
        if let Some(template) = self.worker_command {
            config.control_plane.worker_command = template.parse().map_err(
                |error: <crate::control_plane::WorkerCommandTemplate as FromStr>::Err| {
                    ServeArgsError::WorkerCommand {
                        reason: error.to_string(),
                    }
                },
            )?;
        }
        if let Some(delay) = self.provision_delay {
            config.control_plane.provisioner.delay = delay;
        }
        config.control_plane.heartbeat_interval = self.heartbeat_interval;
        config.control_plane.worker_token_ttl =
            crate::control_plane::WorkerTokenTtl(self.worker_token_ttl);
        config
            .control_plane
            .provisioner
            .fail_organizations
            .extend(self.provision_fail.into_iter().map(OrganizationId));
        config.faults = self.faults.unwrap_or_default();
        config.state_lease = self.state_lease;
        config.state_event_retention = self.state_event_retention;
        if let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) {
            config.tls = Some(crate::server::TlsFiles { cert, key });
        }
        config.limits = ConnectionLimits {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
            max_connections: self.max_connections.map(|max| max as usize),
            http2_max_streams: self.http2_max_streams,
        };
        Ok(config)
    }
}

fn resolve_api_keys(bindings: &[ApiKeyBinding]) -> Result<Vec<KeyGrant>, ServeArgsError> {
    let mut keys: BTreeMap<ApiKey, (OrganizationId, Role)> = BTreeMap::new();
    for (position, binding) in bindings.iter().enumerate() {
        let index = position + 1;
        let text = binding.0.expose_secret().trim();
        // The last `=` splits, so keys ending in base64 padding (`abc==`) still work.
        let (key, organization) = text
            .rsplit_once('=')
            .ok_or(ServeArgsError::NotKeyOrganization { index })?;
        let key = ApiKey::new(key.trim())
            .map_err(|reason| ServeArgsError::InvalidKey { index, reason })?;
        let (organization, role) = match organization.rsplit_once(':') {
            Some((organization, role)) => (
                organization,
                role.parse::<Role>()
                    .map_err(|reason| ServeArgsError::InvalidRole { index, reason })?,
            ),
            None => (organization, Role::Admin),
        };
        let organization = organization.trim();
        if organization.is_empty() {
            return Err(ServeArgsError::EmptyOrganization { index });
        }
        let organization = OrganizationId(organization.to_owned());
        match keys.get(&key) {
            Some((existing, _)) if *existing != organization => {
                return Err(ServeArgsError::DuplicateKey {
                    index,
                    fingerprint: key.fingerprint(),
                });
            }
            _ => {
                keys.insert(key, (organization, role));
            }
        }
    }
    if keys.is_empty() {
        return Err(ServeArgsError::NoApiKeys);
    }
    Ok(keys
        .iter()
        .map(|(key, (organization, role))| KeyGrant::from_key(key, organization.clone(), *role))
        .collect())
}

/// Runs `envform serve` until SIGTERM or Ctrl-C (or, with `--migrate-only`, migrates and exits).
pub async fn execute(args: ServeArgs) -> miette::Result<()> {
    init_logging();
    if args.migrate_only {
        return migrate_only(args).await;
    }
    let temporal = temporal_config(&args)?;
    let mut config = args.resolve()?;
    config.temporal = temporal;
    if let Some(parent) = config.db_path.parent()
        && !parent.as_os_str().is_empty()
    {
        tokio::fs::create_dir_all(parent)
            .await
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot create {}", parent.display()))?;
    }
    let server = Server::bind(config).await.into_diagnostic()?;
    reload_keys_on_hangup(server.key_reloader());
    announce(server.scheme(), server.local_addr())?;
    server.run(shutdown_signal()).await.into_diagnostic()
}

/// The Temporal configuration of `--temporal-address` and its companions, if given.
fn temporal_config(args: &ServeArgs) -> miette::Result<Option<crate::temporal::TemporalConfig>> {
    let Some(address) = &args.temporal_address else {
        return Ok(None);
    };
    super::temporal_args::check_namespace_part(
        &args.temporal_namespace_prefix,
        "--temporal-namespace-prefix",
    )?;
    super::temporal_args::check_namespace_part(
        &args.temporal_system_namespace,
        "--temporal-system-namespace",
    )?;
    if args.temporal_namespace_retention < Duration::from_secs(24 * 3600) {
        return Err(miette::miette!(
            code = "envform::serve::temporal_retention",
            "--temporal-namespace-retention must be at least 24h (Temporal's minimum)"
        ));
    }
    let mut config = args.temporal.resolve(address)?;
    config.namespace_prefix = args.temporal_namespace_prefix.clone();
    config.system_namespace = args.temporal_system_namespace.clone();
    config.retention = args.temporal_namespace_retention;
    Ok(Some(config))
}

/// `--migrate-only`: brings the database's schema up to date and says so on stderr.
async fn migrate_only(args: ServeArgs) -> miette::Result<()> {
    match args.database_url {
        Some(url) => {
            let pool = PgPoolSettings {
                max_connections: 1,
                acquire_timeout: args.database_connect_timeout,
                statement_timeout: args.database_statement_timeout,
            };
            let store = crate::server::open_postgres(&url.0, pool)
                .await
                .into_diagnostic()
                .wrap_err("cannot migrate the PostgreSQL database")?;
            store.close().await;
            tracing::info!("the PostgreSQL database schema is up to date");
        }
        None => {
            let store = crate::store::SqliteStore::open(&args.db)
                .await
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot migrate {}", args.db.display()))?;
            store.close().await;
            tracing::info!(db = %args.db.display(), "the SQLite database schema is up to date");
        }
    }
    Ok(())
}

/// The one stdout line scripts wait for.
fn announce(scheme: &str, addr: SocketAddr) -> miette::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "envform serve listening on {scheme}://{addr}")
        .and_then(|()| stdout.flush())
        .into_diagnostic()
        .wrap_err("cannot write to stdout")
}

/// Request logs on stderr, `info` unless `ENVFORM_LOG` says otherwise, coloured only on a terminal
/// without `NO_COLOR`. A subscriber installed earlier by the command line wins.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENVFORM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .try_init();
}

/// On SIGHUP, reads the API keys file again; a file that cannot be used is logged and the keys
/// in force stay.
fn reload_keys_on_hangup(reloader: KeyReloader) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: the API keys file is read only at start");
            return;
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match reloader.reload() {
                    Ok(count) => tracing::info!(keys = count, "API keys read again"),
                    Err(error) => tracing::error!(
                        error = %crate::local::error_chain(&error),
                        "API keys not changed"
                    ),
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(reloader);
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No Ctrl-C handler: only SIGTERM can stop the server.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindings(entries: &[&str]) -> Vec<ApiKeyBinding> {
        entries
            .iter()
            .map(|entry| entry.parse().expect("infallible"))
            .collect()
    }

    #[test]
    fn resolves_key_bindings() {
        let keys = resolve_api_keys(&bindings(&[
            "key-a=org-a",
            "padded==org-b",
            "viewer-key=org-a:viewer",
        ]))
        .expect("valid");
        let organizations: Vec<_> = keys
            .iter()
            .map(|grant| (grant.organization.0.as_str(), grant.role))
            .collect();
        assert_eq!(
            organizations,
            [
                ("org-a", Role::Admin),
                ("org-b", Role::Admin),
                ("org-a", Role::Viewer)
            ]
        );
        let padded = KeyGrant::from_key(
            &ApiKey::new("padded=").expect("valid"),
            OrganizationId("org-b".into()),
            Role::Admin,
        );
        assert!(keys.iter().any(|grant| grant.same_key(&padded)));
        assert!(matches!(
            resolve_api_keys(&bindings(&["k=org:owner"])),
            Err(ServeArgsError::InvalidRole { index: 1, .. })
        ));
    }

    #[test]
    fn refuses_bad_bindings_without_echoing_them() {
        let error = resolve_api_keys(&bindings(&["ok=org", "secret-no-org"])).expect_err("no =");
        assert!(matches!(
            error,
            ServeArgsError::NotKeyOrganization { index: 2 }
        ));
        assert!(!error.to_string().contains("secret-no-org"));
        assert!(matches!(
            resolve_api_keys(&bindings(&["=org"])),
            Err(ServeArgsError::InvalidKey { index: 1, .. })
        ));
        assert!(matches!(
            resolve_api_keys(&bindings(&["key="])),
            Err(ServeArgsError::EmptyOrganization { index: 1 })
        ));
        assert!(matches!(
            resolve_api_keys(&bindings(&["key=a", "key=b"])),
            Err(ServeArgsError::DuplicateKey { index: 2, .. })
        ));
        assert!(matches!(
            resolve_api_keys(&[]),
            Err(ServeArgsError::NoApiKeys)
        ));
    }

    #[test]
    fn database_urls_are_postgres_and_never_shown() {
        let url: DatabaseUrl = "postgres://envform:hunter2@db:5432/envform"
            .parse()
            .expect("a PostgreSQL URL");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!("postgresql://db/envform".parse::<DatabaseUrl>().is_ok());
        let refused = "mysql://root:hunter2@db/envform"
            .parse::<DatabaseUrl>()
            .expect_err("not PostgreSQL");
        assert!(!refused.contains("hunter2"), "{refused}");
    }

    #[test]
    fn debug_hides_keys() {
        let binding: ApiKeyBinding = "sk-live-123=org".parse().expect("infallible");
        assert!(!format!("{binding:?}").contains("sk-live-123"));
    }

    #[test]
    fn parses_sizes_and_durations() {
        assert_eq!("1MiB".parse(), Ok(ByteSize(1024 * 1024)));
        assert_eq!("512kib".parse(), Ok(ByteSize(512 * 1024)));
        assert_eq!("2048".parse(), Ok(ByteSize(2048)));
        assert!("0".parse::<ByteSize>().is_err());
        assert!("lots".parse::<ByteSize>().is_err());
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-2s").is_err());
    }
}
