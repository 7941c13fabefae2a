//! Global settings and the target they resolve to: the embedded control plane (default) or a
//! remote service over HTTP. Flags win over environment variables, which win over defaults.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use miette::{IntoDiagnostic, WrapErr};
use secrecy::SecretString;

use crate::api::{ClientConfig, ControlPlaneClient, EnvironmentsApi, OrganizationId};
use crate::control_plane::{ControlPlane, ControlPlaneConfig};

/// The organization the embedded control plane serves.
pub(crate) const EMBEDDED_ORGANIZATION: &str = "local";

/// Flags every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Control plane URL; without it, commands run against the embedded control plane.
    #[arg(long, global = true, env = "KUBIYA_CONTROL_PLANE_URL", value_name = "URL")]
    pub api_url: Option<String>,
    /// API key for --api-url.
    #[arg(
        long,
        global = true,
        env = "KUBIYA_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// Database of the embedded control plane.
    #[arg(
        long,
        global = true,
        env = "ENVFORM_EMBEDDED_DB",
        default_value = ".envform/control-plane.db",
        value_name = "PATH"
    )]
    pub embedded_db: PathBuf,
    /// Request timeout for --api-url, e.g. 30s.
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Duration,
    /// More logging on stderr (-v info, -vv debug, -vvv trace); ENVFORM_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Where API calls go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
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
    /// Resolves the global flags into a target.
    pub(crate) fn resolve(global: &GlobalArgs) -> miette::Result<Self> {
        match &global.api_url {
            None => Ok(Target::Embedded {
                db_path: global.embedded_db.clone(),
            }),
            Some(url) => {
                let api_key = global.api_key.clone().ok_or_else(|| {
                    miette::miette!(
                        code = "envform::cli::missing_api_key",
                        help = "set KUBIYA_API_KEY or pass --api-key",
                        "--api-url {url} needs an API key"
                    )
                })?;
                Ok(Target::Http {
                    url: url.trim_end_matches('/').to_owned(),
                    api_key: SecretString::from(api_key),
                    request_timeout: global.request_timeout,
                })
            }
        }
    }

    /// A stable description of the target, recorded in state.
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Embedded { db_path } => format!("embedded:{}", db_path.display()),
            Target::Http { url, .. } => url.clone(),
        }
    }

    /// Opens the target.
    pub(crate) async fn connect(&self) -> miette::Result<Connection> {
        match self {
            Target::Embedded { db_path } => {
                let control_plane = ControlPlane::open_sqlite(db_path, ControlPlaneConfig::default())
                    .await
                    .into_diagnostic()
                    .wrap_err_with(|| {
                        format!("cannot open the embedded control plane at {}", db_path.display())
                    })?;
                let scope = control_plane
                    .organization(&OrganizationId(EMBEDDED_ORGANIZATION.to_owned()))
                    .await
                    .into_diagnostic()?
                    .with_actor(local_actor());
                Ok(Connection {
                    api: Arc::new(scope),
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
                let client = ControlPlaneClient::with_config(config).into_diagnostic()?;
                Ok(Connection {
                    api: Arc::new(client),
                    control_plane: None,
                })
            }
        }
    }
}

/// An open target: the API, and the embedded control plane to shut down when done.
pub(crate) struct Connection {
    /// The Environments API of the target.
    pub(crate) api: Arc<dyn EnvironmentsApi>,
    control_plane: Option<ControlPlane>,
}

impl Connection {
    /// Stops the embedded control plane's background work.
    pub(crate) async fn close(self) {
        if let Some(control_plane) = self.control_plane {
            control_plane.shutdown().await;
        }
    }
}

fn local_actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    format!("{user}@local")
}

/// Parses durations such as `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (examples: 500ms, 30s, 5m, 1h)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit `{other}` (use ms, s, m or h)")),
    };
    if !seconds.is_finite() || seconds < 0.0 || seconds > 366.0 * 86_400.0 {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }
}
