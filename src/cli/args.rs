//! The argument groups the commands share, each declared once. They hold what was typed (and what
//! clap read from the environment variable a flag names); `settings` resolves them into what a
//! command runs with.

use std::path::PathBuf;
use std::time::Duration;

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
    /// Database of the embedded control plane [default: the one the configuration's state
    /// recorded, else .envform/control-plane.db].
    #[arg(long, global = true, env = "ENVFORM_EMBEDDED_DB", value_name = "PATH")]
    pub embedded_db: Option<PathBuf>,
    /// Request timeout for --api-url, e.g. 30s.
    #[arg(long, global = true, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Duration,
}

/// Where the desired state is.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DesiredArgs {
    /// A desired-state file, or a directory whose *.yaml / *.yml files (recursively) are read;
    /// repeat it to form one configuration of several [default: envform.yaml].
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub(crate) paths: Vec<PathBuf>,
}

/// Where state is kept (overrides the file's `state:` block). The default is no flag given.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct StateArgs {
    /// Local state file (default: .envform/state.json beside the desired-state file).
    #[arg(
        long = "state",
        env = "ENVFORM_STATE_PATH",
        value_name = "PATH",
        conflicts_with = "state_address"
    )]
    pub(crate) state_path: Option<PathBuf>,
    /// HTTP state backend address (Terraform's HTTP backend protocol).
    #[arg(long, env = "ENVFORM_STATE_ADDRESS", value_name = "URL")]
    pub(crate) state_address: Option<String>,
    /// HTTP backend lock address (default: the state address).
    #[arg(long, env = "ENVFORM_STATE_LOCK_ADDRESS", value_name = "URL")]
    pub(crate) state_lock_address: Option<String>,
    /// HTTP backend unlock address (default: the state address).
    #[arg(long, env = "ENVFORM_STATE_UNLOCK_ADDRESS", value_name = "URL")]
    pub(crate) state_unlock_address: Option<String>,
    /// HTTP backend lock method (default LOCK; GitLab: POST).
    #[arg(long, env = "ENVFORM_STATE_LOCK_METHOD", value_name = "METHOD")]
    pub(crate) state_lock_method: Option<String>,
    /// HTTP backend unlock method (default UNLOCK; GitLab: DELETE).
    #[arg(long, env = "ENVFORM_STATE_UNLOCK_METHOD", value_name = "METHOD")]
    pub(crate) state_unlock_method: Option<String>,
    /// The control plane moved: use a state last written for another one, and record the new one.
    #[arg(long)]
    pub(crate) control_plane_moved: bool,
    /// HTTP backend basic-auth user (the password comes only from ENVFORM_STATE_PASSWORD or TF_HTTP_PASSWORD).
    #[arg(long, env = "ENVFORM_STATE_USERNAME", value_name = "USER")]
    pub(crate) state_username: Option<String>,
}

/// Lock flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LockArgs {
    /// How long to wait for the state lock, e.g. 30s (0: fail at once).
    #[arg(long, default_value = "0s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) lock_timeout: Duration,
}

/// Flags that shape a plan (shared by `plan`, `apply` and `destroy`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PlanningArgs {
    /// Plan only these environments and what they depend on (repeatable).
    #[arg(long = "target", value_name = "NAME")]
    pub(crate) targets: Vec<String>,
    /// Allow deletes and updates above the safety thresholds.
    #[arg(long)]
    pub(crate) force: bool,
    /// Allow deleting or deactivating environments with active workers (they stop).
    #[arg(long)]
    pub(crate) allow_disruption: bool,
    /// Adopt live environments that no configuration owns when the file names them.
    #[arg(long)]
    pub(crate) adopt: bool,
}

/// Where a configuration is: its control plane, its desired-state files and its state. Every
/// command that reads state flattens this one group.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConfigurationArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    pub(crate) desired: DesiredArgs,
    #[command(flatten)]
    pub(crate) state: StateArgs,
}

/// What a reconcile command (`plan`, `apply`, `destroy`) is given: the configuration and how to
/// shape its plan.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReconcileArgs {
    #[command(flatten)]
    pub(crate) configuration: ConfigurationArgs,
    #[command(flatten)]
    pub(crate) planning: PlanningArgs,
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
