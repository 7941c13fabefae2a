//! `POST /api/v1/environments/{id}/ping`: runs the built-in `envform.ping` workflow on the
//! environment's Temporal task queue (only on `envform serve --temporal-address`) and reports
//! which workers answered and how long each round trip took.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::{ControlPlaneClient, decode, encode};
use super::{EnvironmentError, EnvironmentId};

/// The most pings one call may ask for.
pub const MAX_PINGS: u32 = 100;

/// The body of a ping call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PingRequest {
    /// How many times to run `envform.ping`, one after the other (1 to [`MAX_PINGS`]).
    #[serde(default = "one", deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 100)]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// A count written as `3` or `3.0` (JSON Schema's integers include integral floats).
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    let whole = number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|value| value.fract() == 0.0 && *value >= 0.0 && *value <= f64::from(u32::MAX))
            .map(|value| value as u64)
    });
    whole
        .and_then(|value| u32::try_from(value).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number, got {number}")))
}

/// One run of `envform.ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PingResult {
    /// The envform worker id of the worker that answered.
    #[serde(default)]
    pub worker_id: Option<String>,
    /// Its host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The environment it says it serves.
    #[serde(default)]
    pub environment: Option<String>,
    /// From starting the workflow to having its result, in milliseconds.
    pub round_trip_ms: f64,
    /// Why no worker answered, when none did.
    #[serde(default)]
    pub error: Option<String>,
}

/// The answer to a ping call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PingReport {
    /// The environment pinged.
    pub environment_id: EnvironmentId,
    /// Its name.
    pub environment_name: String,
    /// The Temporal namespace the pings ran in.
    pub temporal_namespace: String,
    /// The task queue they ran on.
    pub task_queue: String,
    /// Each ping, in order.
    pub pings: Vec<PingResult>,
}

impl ControlPlaneClient {
    /// Runs `envform.ping` `count` times on the environment's task queue (never retried: each
    /// call starts workflows).
    pub async fn ping_environment(
        &self,
        id: EnvironmentId,
        count: u32,
    ) -> Result<PingReport, EnvironmentError> {
        let url = format!("{}/ping", self.environment_url(id));
        let body = encode(&PingRequest { count })?;
        let answer = self.call(Method::POST, &url, None, Some(body)).await?;
        decode(&answer)
    }
}
