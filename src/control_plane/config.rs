//! How a control plane is set up: the worker command it hands out and its built-in provisioner.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::api::CommandParts;

use super::provisioner::BuiltinProvisionerConfig;
use super::workers::HeartbeatInterval;

/// The placeholder replaced by the worker token.
const TOKEN_PLACEHOLDER: &str = "{token}";
/// The placeholder replaced by the environment's name.
const ENVIRONMENT_PLACEHOLDER: &str = "{environment}";

/// envform's own worker command: the token travels in an environment variable, so it never
/// shows in the worker's argument vector (`ps`, `/proc/PID/cmdline`).
pub const DEFAULT_WORKER_COMMAND_TEMPLATE: &str =
    "ENVFORM_WORKER_TOKEN={token} envform worker start --environment {environment}";
/// The command the production control plane hands out, for wire-compatible setups.
pub const KUBIYA_WORKER_COMMAND_TEMPLATE: &str =
    "kubiya worker start --token {token} --environment {environment}";

/// Everything a [`super::ControlPlane`] is configured with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlPlaneConfig {
    /// The command `worker-command` returns.
    pub worker_command: WorkerCommandTemplate,
    /// How the built-in namespace provisioner behaves.
    pub provisioner: BuiltinProvisionerConfig,
    /// How often workers send heartbeats; three missed intervals and a worker is not active.
    pub heartbeat_interval: HeartbeatInterval,
    /// How long a worker token no worker has registered with stays valid.
    pub worker_token_ttl: WorkerTokenTtl,
    /// Serve repeated list calls from memory for at most this long, unless a write was committed
    /// meanwhile (`envform serve`; off for the embedded control plane, whose database other
    /// processes share).
    pub list_cache: Option<std::time::Duration>,
}

/// How long a worker token stays valid while no worker has registered with it (24 hours by
/// default); a token that registered a worker stays valid until rotation or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerTokenTtl(pub std::time::Duration);

impl Default for WorkerTokenTtl {
    fn default() -> Self {
        Self(DEFAULT_WORKER_TOKEN_TTL)
    }
}

/// [`WorkerTokenTtl`]'s default: a day.
pub const DEFAULT_WORKER_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A worker command with `{token}` and `{environment}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkerCommandTemplate(String);

impl WorkerCommandTemplate {
    /// The production control plane's command ([`KUBIYA_WORKER_COMMAND_TEMPLATE`]).
    pub fn kubiya() -> Self {
        Self(KUBIYA_WORKER_COMMAND_TEMPLATE.to_owned())
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The command line (values shell-quoted where needed) and its parts (values as they are),
    /// for one token and environment.
    pub(crate) fn render(&self, token: &str, environment: &str) -> (String, CommandParts) {
        let command = substitute(&self.0, &shell_quote(token), &shell_quote(environment));
        let parts = CommandParts::from_words(
            self.0
                .split_whitespace()
                .map(|part| substitute(part, token, environment)),
        );
        (command, parts)
    }
}

impl Default for WorkerCommandTemplate {
    fn default() -> Self {
        Self(DEFAULT_WORKER_COMMAND_TEMPLATE.to_owned())
    }
}

impl fmt::Display for WorkerCommandTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A worker command template without both placeholders.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("worker command template `{template}` lacks {}", missing.join(" and "))]
pub struct InvalidWorkerCommandTemplate {
    /// The template as given.
    pub template: String,
    /// The placeholders it lacks.
    pub missing: Vec<&'static str>,
}

impl FromStr for WorkerCommandTemplate {
    type Err = InvalidWorkerCommandTemplate;
    fn from_str(template: &str) -> Result<Self, Self::Err> {
        let missing: Vec<&'static str> = [TOKEN_PLACEHOLDER, ENVIRONMENT_PLACEHOLDER]
            .into_iter()
            .filter(|placeholder| !template.contains(placeholder))
            .collect();
        if missing.is_empty() {
            Ok(Self(template.trim().to_owned()))
        } else {
            Err(InvalidWorkerCommandTemplate {
                template: template.to_owned(),
                missing,
            })
        }
    }
}

impl TryFrom<String> for WorkerCommandTemplate {
    type Error = InvalidWorkerCommandTemplate;
    fn try_from(template: String) -> Result<Self, Self::Error> {
        template.parse()
    }
}

impl From<WorkerCommandTemplate> for String {
    fn from(template: WorkerCommandTemplate) -> Self {
        template.0
    }
}

/// Replaces both placeholders in one pass, so a value that itself contains a placeholder is
/// inserted literally.
fn substitute(template: &str, token: &str, environment: &str) -> String {
    let mut output = String::with_capacity(template.len() + token.len() + environment.len());
    let mut rest = template;
    loop {
        let next = [
            (TOKEN_PLACEHOLDER, token),
            (ENVIRONMENT_PLACEHOLDER, environment),
        ]
        .into_iter()
        .filter_map(|(placeholder, value)| {
            rest.find(placeholder)
                .map(|index| (index, placeholder, value))
        })
        .min_by_key(|(index, _, _)| *index);
        match next {
            Some((index, placeholder, value)) => {
                output.push_str(&rest[..index]);
                output.push_str(value);
                rest = &rest[index + placeholder.len()..];
            }
            None => {
                output.push_str(rest);
                return output;
            }
        }
    }
}

/// The value as one POSIX shell word.
fn shell_quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,:/@%+=".contains(c));
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_needs_both_placeholders() {
        let error = "run --token {token}"
            .parse::<WorkerCommandTemplate>()
            .unwrap_err();
        assert_eq!(error.missing, ["{environment}"]);
        assert_eq!(
            error.to_string(),
            "worker command template `run --token {token}` lacks {environment}"
        );
        let error = "run".parse::<WorkerCommandTemplate>().unwrap_err();
        assert_eq!(error.missing, ["{token}", "{environment}"]);
        let template: WorkerCommandTemplate = KUBIYA_WORKER_COMMAND_TEMPLATE.parse().unwrap();
        assert_eq!(template, WorkerCommandTemplate::kubiya());
    }

    #[test]
    fn render_quotes_the_command_but_not_the_parts() {
        let template = WorkerCommandTemplate::default();
        let (command, parts) = template.render("efw_abc", "it's prod");
        assert_eq!(
            command,
            r"ENVFORM_WORKER_TOKEN=efw_abc envform worker start --environment 'it'\''s prod'"
        );
        assert_eq!(
            serde_json::to_value(&parts).unwrap(),
            serde_json::json!({
                "binary": "envform",
                "subcommand": "worker start",
                "flags": {"--environment": "it's prod"}
            })
        );
        let (_, parts) = WorkerCommandTemplate::kubiya().render("efw_abc", "prod");
        assert_eq!(
            serde_json::to_value(&parts).unwrap(),
            serde_json::json!({
                "binary": "kubiya",
                "subcommand": "worker start",
                "flags": {"--token": "efw_abc", "--environment": "prod"}
            })
        );
    }

    #[test]
    fn values_containing_placeholders_are_inserted_literally() {
        let template: WorkerCommandTemplate = "w --environment={environment} --token={token}"
            .parse()
            .unwrap();
        let (_, parts) = template.render("secret", "{token}");
        assert_eq!(parts.flags["--environment"], "{token}");
        assert_eq!(parts.flags["--token"], "secret");
    }

    #[test]
    fn template_deserializes_with_validation() {
        let template: WorkerCommandTemplate =
            serde_json::from_str(r#""x {token} {environment}""#).unwrap();
        assert_eq!(template.as_str(), "x {token} {environment}");
        assert!(serde_json::from_str::<WorkerCommandTemplate>(r#""x {token}""#).is_err());
    }
}
