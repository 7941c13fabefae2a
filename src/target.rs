//! Where API calls go: the embedded control plane on a local SQLite file (the default, no server
//! and no account needed) or a remote service over HTTP. Used by the CLI and by SDK users alike.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::api::{
    ClientConfig, ClientError, ControlPlaneClient, EnvironmentError, EnvironmentsApi,
    OrganizationId, WorkersApi,
};
use crate::control_plane::{ControlPlane, ControlPlaneConfig, ControlPlaneError};

/// The organization the embedded control plane serves.
pub const EMBEDDED_ORGANIZATION: &str = "local";

/// How a state's `target` names an embedded control plane: this, then the database's path.
const EMBEDDED_PREFIX: &str = "embedded:";

/// The embedded control plane's database when nothing else is configured.
pub const DEFAULT_EMBEDDED_DB: &str = ".envform/control-plane.db";

/// Why a target could not be opened.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TargetError {
    /// The embedded database could not be opened.
    #[error("cannot open the embedded control plane at {path}")]
    #[diagnostic(code(envform::target::embedded))]
    Embedded {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ControlPlaneError,
    },
    /// The API answered with an error while opening.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Api(#[from] EnvironmentError),
    /// The HTTP client could not be built (a bad URL or key).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Client(#[from] ClientError),
    /// A URL was given without an API key.
    #[error("{url} needs an API key (KUBIYA_API_KEY)")]
    #[diagnostic(
        code(envform::target::missing_api_key),
        help("set KUBIYA_API_KEY or pass --api-key")
    )]
    MissingApiKey {
        /// The URL.
        url: String,
    },
}

/// Where API calls go.
#[derive(Debug, Clone)]
pub enum Target {
    /// The in-process control plane on a local SQLite file.
    Embedded {
        /// The database file.
        db_path: PathBuf,
    },
    /// A remote service.
    Http {
        /// Base URL.
        url: String,
        /// The API key.
        api_key: SecretString,
        /// Per-request timeout.
        request_timeout: Duration,
    },
}

impl Target {
    /// The target `KUBIYA_CONTROL_PLANE_URL` and `KUBIYA_API_KEY` name, else the embedded default.
    pub fn from_env() -> Result<Self, TargetError> {
        let url = std::env::var("KUBIYA_CONTROL_PLANE_URL").ok();
        let api_key = std::env::var("KUBIYA_API_KEY").ok();
        Self::new(
            url,
            api_key,
            PathBuf::from(DEFAULT_EMBEDDED_DB),
            Duration::from_secs(30),
        )
    }

    /// HTTP when `url` is given (then `api_key` is required), else embedded on `embedded_db`.
    pub fn new(
        url: Option<String>,
        api_key: Option<String>,
        embedded_db: PathBuf,
        request_timeout: Duration,
    ) -> Result<Self, TargetError> {
        match url.filter(|url| !url.trim().is_empty()) {
            None => Ok(Target::Embedded {
                db_path: embedded_db,
            }),
            Some(url) => {
                let url = url.trim().trim_end_matches('/').to_owned();
                let api_key =
                    api_key.ok_or_else(|| TargetError::MissingApiKey { url: url.clone() })?;
                Ok(Target::Http {
                    url,
                    api_key: SecretString::from(api_key),
                    request_timeout,
                })
            }
        }
    }

    /// A stable description of the target, recorded in state.
    pub fn describe(&self) -> String {
        match self {
            // By absolute path: the same relative path from another directory is another database.
            Target::Embedded { db_path } => format!(
                "{EMBEDDED_PREFIX}{}",
                std::path::absolute(db_path)
                    .unwrap_or_else(|_| db_path.clone())
                    .display()
            ),
            Target::Http { url, .. } => url.clone(),
        }
    }

    /// The database file of an embedded target's description (the inverse of [`Self::describe`]).
    pub fn embedded_database(description: &str) -> Option<PathBuf> {
        description
            .strip_prefix(EMBEDDED_PREFIX)
            .filter(|path| !path.is_empty())
            .map(PathBuf::from)
    }

    /// Opens the target; `actor` is recorded as `created_by` by the embedded control plane.
    pub async fn connect(&self, actor: &str) -> Result<Connection, TargetError> {
        match self {
            Target::Embedded { db_path } => {
                let control_plane =
                    ControlPlane::open_sqlite(db_path, ControlPlaneConfig::default())
                        .await
                        .map_err(|source| TargetError::Embedded {
                            path: db_path.clone(),
                            source,
                        })?;
                let scope = control_plane
                    .organization(&OrganizationId(EMBEDDED_ORGANIZATION.to_owned()))
                    .await?
                    .with_actor(actor);
                let scope = Arc::new(scope);
                Ok(Connection {
                    api: scope.clone(),
                    workers: scope,
                    control_plane: Some(control_plane),
                })
            }
            Target::Http {
                url,
                api_key,
                request_timeout,
            } => {
                let config = ClientConfig {
                    base_url: url.clone(),
                    api_key: api_key.clone(),
                    request_timeout: *request_timeout,
                    ..ClientConfig::default()
                };
                let client = Arc::new(ControlPlaneClient::with_config(config)?);
                Ok(Connection {
                    api: client.clone(),
                    workers: client,
                    control_plane: None,
                })
            }
        }
    }
}

/// An open target: the API, and the embedded control plane to shut down when done.
pub struct Connection {
    /// The Environments API of the target.
    pub api: Arc<dyn EnvironmentsApi>,
    workers: Arc<dyn WorkersApi>,
    control_plane: Option<ControlPlane>,
}

impl Connection {
    /// The worker and audit calls of the target (workers, token rotation, audit log).
    pub fn workers(&self) -> &dyn WorkersApi {
        self.workers.as_ref()
    }

    /// Stops the embedded control plane's background work.
    pub async fn close(self) {
        if let Some(control_plane) = self.control_plane {
            control_plane.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_embedded_description_gives_back_its_absolute_database() {
        let target = Target::Embedded {
            db_path: PathBuf::from("configs/.envform/control-plane.db"),
        };
        let database = Target::embedded_database(&target.describe()).expect("embedded");
        assert!(database.is_absolute(), "{}", database.display());
        assert!(database.ends_with("configs/.envform/control-plane.db"));
        assert_eq!(Target::embedded_database("https://cp.example"), None);
        assert_eq!(Target::embedded_database("embedded:"), None);
    }
}
