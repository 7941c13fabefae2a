//! Global settings: flags win over environment variables, which win over defaults.

use std::path::PathBuf;
use std::time::Duration;

pub(crate) use crate::local::error_chain;
use crate::target::{Connection, Target};

/// Where the control plane is: flags of every command that talks to one.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Control plane URL; without it, commands run against the embedded control plane.
    #[arg(
        long,
        global = true,
        env = "KUBIYA_CONTROL_PLANE_URL",
        value_name = "URL"
    )]
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
}

impl TargetArgs {
    /// Resolves the flags into a target.
    pub(crate) fn target(&self) -> miette::Result<Target> {
        Target::new(
            self.api_url.clone(),
            self.api_key.clone(),
            self.embedded_db.clone(),
            self.request_timeout,
        )
        .map_err(|error| {
            miette::miette!(
                code = "envform::cli::target",
                help = "set KUBIYA_API_KEY or pass --api-key",
                "{error}"
            )
        })
    }

    /// Resolves and opens the target.
    pub(crate) async fn connect(&self) -> miette::Result<(Target, Connection)> {
        let target = self.target()?;
        let connection = target
            .connect(&crate::local::user_and_host())
            .await
            .map_err(|error| {
                miette::miette!(code = "envform::cli::target", "{}", error_chain(&error))
            })?;
        Ok((target, connection))
    }
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
        other => {
            return Err(format!(
                "unknown duration unit `{other}` (use ms, s, m or h)"
            ));
        }
    };
    if !(0.0..=366.0 * 86_400.0).contains(&seconds) {
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
