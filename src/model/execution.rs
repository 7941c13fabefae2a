//! Where an environment's workers run.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::JsonMap;

/// Where an environment's workers run: environment variables, secrets, integrations, MCP servers.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutionEnvironment {
    /// Environment variables for workers; values are secret and never rendered.
    #[serde(default, skip_serializing_if = "JsonMap::is_empty")]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub env_vars: JsonMap,
    /// Names of secrets made available to workers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Integrations enabled for the environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub integration_ids: Vec<String>,
    /// MCP servers, by name.
    #[serde(default, skip_serializing_if = "JsonMap::is_empty")]
    #[schema(value_type = Object)]
    pub mcp_servers: JsonMap,
}

impl ExecutionEnvironment {
    /// The keys of its wire form, in order.
    pub const KEYS: &'static [&'static str] =
        &["env_vars", "secrets", "integration_ids", "mcp_servers"];

    /// Whether every part is empty: on the wire, `{}`, which is also how an absent one is written.
    pub fn is_empty(&self) -> bool {
        self.env_vars.is_empty()
            && self.secrets.is_empty()
            && self.integration_ids.is_empty()
            && self.mcp_servers.is_empty()
    }
}

impl fmt::Debug for ExecutionEnvironment {
    // `env_vars` values are secrets: only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutionEnvironment")
            .field("env_vars", &self.env_vars.keys().collect::<Vec<_>>())
            .field("secrets", &self.secrets)
            .field("integration_ids", &self.integration_ids)
            .field("mcp_servers", &self.mcp_servers)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_values() {
        let mut execution = ExecutionEnvironment::default();
        execution
            .env_vars
            .insert("TOKEN".into(), "hidden-value".into());
        let debug = format!("{execution:?}");
        assert!(debug.contains("TOKEN"));
        assert!(!debug.contains("hidden-value"));
    }

    #[test]
    fn keys_match_the_wire_form() {
        let mut execution = ExecutionEnvironment::default();
        execution.env_vars.insert("K".into(), "v".into());
        execution.secrets.push("s".into());
        execution.integration_ids.push("i".into());
        execution.mcp_servers.insert("m".into(), "x".into());
        let value = serde_json::to_value(&execution).expect("serializes");
        let keys: Vec<_> = value
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ExecutionEnvironment::KEYS);
    }
}
