//! Injected failures, so clients' retry and recovery paths can be tested against a real server.
//!
//! Off unless configured (`envform serve --faults`, hidden). A configuration is a list of rules
//! separated by `;`; each rule is `key=value` pairs separated by `,`:
//!
//! | key | meaning |
//! |---|---|
//! | `status` | answer with this status and a `{"detail": "injected fault"}` body |
//! | `reset` | `reset=true`: cut the connection instead of answering (the client sees a reset) |
//! | `latency_ms` | delay the request by this many milliseconds, then let it through |
//! | `count` | fail only the first N matching requests (default: every one) |
//! | `rate` | fail this share of matching requests, `0.0`–`1.0`, deterministically spread |
//! | `method` | match only this method |
//! | `path` | match only paths starting with this prefix |
//! | `retry_after` | add `Retry-After: <seconds>` to the answer |
//! | `drop_fields` | forget these body fields (`+`-separated, e.g. `configuration+metadata`) of matching requests before the service reads them, as a service that silently drops fields does |
//! | `when` | `before` (default): the request never reaches the service; `after`: the service handles it (a write is committed), then the answer is replaced, as when a proxy fails on the way back |
//!
//! Each rule has one effect: `status`, `reset`, `latency_ms` or `drop_fields`.
//! Example: `status=503,count=2,method=GET;status=500,method=POST,when=after,count=1`.
//! Rules are tried in order: latency rules that fire add their delay and go on; the first failing
//! rule that fires decides. `GET /_faults` reports, per rule, how many requests matched and how
//! many were affected; it is never failed itself.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The path of the fault report.
pub(crate) const REPORT_PATH: &str = "/_faults";

/// The failures a server injects; empty (no failures) by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultConfig {
    /// The rules, in order: the first one that matches a request decides.
    pub rules: Vec<FaultRule>,
}

impl FaultConfig {
    /// Whether no failure is configured.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Which requests fail, how often and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// Only requests with this method (any when `None`).
    pub method: Option<Method>,
    /// Only requests whose path starts with this prefix (any when `None`).
    pub path_prefix: Option<String>,
    /// Which of the matching requests fail.
    pub trigger: FaultTrigger,
    /// What a failed request gets.
    pub effect: FaultEffect,
    /// Whether the failure happens before or after the service handled the request.
    pub phase: FaultPhase,
}

/// Which of the matching requests fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultTrigger {
    /// Every matching request.
    Always,
    /// The first N matching requests; later ones pass.
    First(u64),
    /// This many of every 1000 matching requests, spread by a fixed hash of their number.
    PerMille(u32),
}

/// What a failed request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultEffect {
    /// An error answer with this status and, if set, `Retry-After` in seconds.
    Status {
        /// The answer's status.
        status: StatusCode,
        /// The `Retry-After` header's value.
        retry_after_seconds: Option<u64>,
    },
    /// The connection is cut: headers go out, then the body fails.
    Reset,
    /// The request waits this long, then goes on.
    Latency(std::time::Duration),
    /// These top-level fields of the JSON body are removed, then the request goes on.
    DropFields(Vec<String>),
}

/// When the failure happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultPhase {
    /// The request never reaches the service.
    #[default]
    Before,
    /// The service handles the request, then its answer is replaced by the failure.
    After,
}

/// Why a fault configuration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultConfigError {
    /// A part is not `key=value`.
    #[error("`{0}` is not key=value")]
    NotKeyValue(String),
    /// A key is not one of the documented ones.
    #[error(
        "unknown fault key `{0}` (expected status, reset, latency_ms, drop_fields, count, rate, method, path, retry_after, when)"
    )]
    UnknownKey(String),
    /// A value does not fit its key.
    #[error("invalid value `{value}` for `{key}`: {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// A rule has no effect.
    #[error("fault rule `{0}` has no status, reset, latency_ms or drop_fields")]
    MissingStatus(String),
    /// A rule has more than one effect.
    #[error("fault rule `{0}` has more than one of status, reset, latency_ms and drop_fields")]
    SeveralEffects(String),
}

impl FromStr for FaultConfig {
    type Err = FaultConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rules = text
            .split(';')
            .map(str::trim)
            .filter(|rule| !rule.is_empty())
            .map(FaultRule::from_str)
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }
}

impl FromStr for FaultRule {
    type Err = FaultConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut status = None;
        let mut reset = false;
        let mut latency = None;
        let mut drop_fields: Option<Vec<String>> = None;
        let mut retry_after_seconds = None;
        let mut rule = FaultRule {
            method: None,
            path_prefix: None,
            trigger: FaultTrigger::Always,
            // Replaced below once `status` is read.
            effect: FaultEffect::Status {
                status: StatusCode::SERVICE_UNAVAILABLE,
                retry_after_seconds: None,
            },
            phase: FaultPhase::Before,
        };
        for part in text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| FaultConfigError::NotKeyValue(part.to_owned()))?;
            let (key, value) = (key.trim(), value.trim());
            let invalid = |reason| FaultConfigError::InvalidValue {
                key: key.to_owned(),
                value: value.to_owned(),
                reason,
            };
            match key {
                "status" => {
                    let code = value
                        .parse::<u16>()
                        .ok()
                        .and_then(|code| StatusCode::from_u16(code).ok())
                        .filter(|code| code.is_client_error() || code.is_server_error())
                        .ok_or_else(|| invalid("expected an error status, 400 to 599"))?;
                    status = Some(code);
                }
                "reset" => {
                    reset = value
                        .parse::<bool>()
                        .map_err(|_| invalid("expected true or false"))?;
                }
                "latency_ms" => {
                    let milliseconds = value
                        .parse::<u64>()
                        .ok()
                        .filter(|milliseconds| *milliseconds <= 60_000)
                        .ok_or_else(|| invalid("expected milliseconds, at most 60000"))?;
                    latency = Some(std::time::Duration::from_millis(milliseconds));
                }
                "drop_fields" => {
                    let fields: Vec<String> = value
                        .split('+')
                        .map(str::trim)
                        .filter(|field| !field.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if fields.is_empty() {
                        return Err(invalid("expected field names separated by +"));
                    }
                    drop_fields = Some(fields);
                }
                "rate" => {
                    let rate = value
                        .parse::<f64>()
                        .ok()
                        .filter(|rate| (0.0..=1.0).contains(rate))
                        .ok_or_else(|| invalid("expected a share from 0.0 to 1.0"))?;
                    rule.trigger = FaultTrigger::PerMille((rate * 1000.0).round() as u32);
                }
                "count" => {
                    let count = value
                        .parse::<u64>()
                        .map_err(|_| invalid("expected a number of requests"))?;
                    rule.trigger = FaultTrigger::First(count);
                }
                "method" => {
                    let method = Method::from_str(&value.to_ascii_uppercase())
                        .map_err(|_| invalid("expected an HTTP method"))?;
                    rule.method = Some(method);
                }
                "path" => {
                    if !value.starts_with('/') {
                        return Err(invalid("expected a path starting with /"));
                    }
                    rule.path_prefix = Some(value.to_owned());
                }
                "retry_after" => {
                    let seconds = value
                        .parse::<u64>()
                        .map_err(|_| invalid("expected a number of seconds"))?;
                    retry_after_seconds = Some(seconds);
                }
                "when" => {
                    rule.phase = match value {
                        "before" => FaultPhase::Before,
                        "after" => FaultPhase::After,
                        _ => return Err(invalid("expected before or after")),
                    };
                }
                other => return Err(FaultConfigError::UnknownKey(other.to_owned())),
            }
        }
        rule.effect = match (status, reset, latency, drop_fields) {
            (Some(status), false, None, None) => FaultEffect::Status {
                status,
                retry_after_seconds,
            },
            (None, true, None, None) => FaultEffect::Reset,
            (None, false, Some(latency), None) => FaultEffect::Latency(latency),
            (None, false, None, Some(fields)) => FaultEffect::DropFields(fields),
            (None, false, None, None) => {
                return Err(FaultConfigError::MissingStatus(text.to_owned()));
            }
            _ => return Err(FaultConfigError::SeveralEffects(text.to_owned())),
        };
        Ok(rule)
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut retry_after = None;
        match &self.effect {
            FaultEffect::Status {
                status,
                retry_after_seconds,
            } => {
                write!(f, "status={}", status.as_u16())?;
                retry_after = *retry_after_seconds;
            }
            FaultEffect::Reset => f.write_str("reset=true")?,
            FaultEffect::Latency(latency) => write!(f, "latency_ms={}", latency.as_millis())?,
            FaultEffect::DropFields(fields) => write!(f, "drop_fields={}", fields.join("+"))?,
        }
        match self.trigger {
            FaultTrigger::Always => {}
            FaultTrigger::First(count) => write!(f, ",count={count}")?,
            FaultTrigger::PerMille(per_mille) => {
                write!(f, ",rate={}", f64::from(per_mille) / 1000.0)?;
            }
        }
        if let Some(method) = &self.method {
            write!(f, ",method={method}")?;
        }
        if let Some(prefix) = &self.path_prefix {
            write!(f, ",path={prefix}")?;
        }
        if let Some(seconds) = retry_after {
            write!(f, ",retry_after={seconds}")?;
        }
        if self.phase == FaultPhase::After {
            f.write_str(",when=after")?;
        }
        Ok(())
    }
}

impl FaultRule {
    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|wanted| wanted == method)
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| path.starts_with(prefix))
    }

    fn failure(&self) -> Response {
        let (status, retry_after_seconds) = match self.effect {
            FaultEffect::Status {
                status,
                retry_after_seconds,
            } => (status, retry_after_seconds),
            FaultEffect::Reset => return reset_response(),
            // Latency and field rules never fail a request; `decide` does not return them.
            FaultEffect::Latency(_) | FaultEffect::DropFields(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, None)
            }
        };
        let body = serde_json::json!({ "detail": "injected fault" });
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// An answer whose body fails after the headers: the client sees the connection cut mid-answer.
fn reset_response() -> Response {
    let failing = failing_stream();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from_stream(failing))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// A body stream whose first item is an error.
fn failing_stream()
-> impl futures_core::Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Send {
    struct Failing(bool);
    impl futures_core::Stream for Failing {
        type Item = Result<axum::body::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.0 {
                return std::task::Poll::Ready(None);
            }
            self.0 = true;
            std::task::Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected reset",
            ))))
        }
    }
    Failing(false)
}

/// Spreads request numbers evenly but not in a pattern (splitmix64), so a rate fires on a fixed,
/// reproducible subset.
fn per_mille_of(sequence: u64) -> u32 {
    let mut value = sequence.wrapping_add(0x9E37_79B9_7F4A_7C15);
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^= value >> 31;
    (value % 1000) as u32
}

/// A rule and how often it fired.
struct ArmedRule {
    rule: FaultRule,
    matched: AtomicU64,
    injected: AtomicU64,
}

/// The configured rules with their counters, shared by every request.
pub(crate) struct Faults {
    rules: Vec<ArmedRule>,
}

impl Faults {
    /// Arms `config`'s rules with zeroed counters.
    pub(crate) fn new(config: FaultConfig) -> Self {
        let rules = config
            .rules
            .into_iter()
            .map(|rule| ArmedRule {
                rule,
                matched: AtomicU64::new(0),
                injected: AtomicU64::new(0),
            })
            .collect();
        Self { rules }
    }

    /// What happens to this request: the delay of the latency rules that fire, the body fields
    /// to forget, and the first failing rule that fires, if any. Every matching rule counts the
    /// match.
    fn decide(&self, method: &Method, path: &str) -> Decision<'_> {
        let mut delay = std::time::Duration::ZERO;
        let mut dropped: Vec<&str> = Vec::new();
        for armed in &self.rules {
            if !armed.rule.matches(method, path) {
                continue;
            }
            let seen = armed.matched.fetch_add(1, Ordering::SeqCst);
            let fires = match armed.rule.trigger {
                FaultTrigger::Always => true,
                FaultTrigger::First(count) => seen < count,
                FaultTrigger::PerMille(per_mille) => per_mille_of(seen) < per_mille,
            };
            if !fires {
                continue;
            }
            armed.injected.fetch_add(1, Ordering::SeqCst);
            match &armed.rule.effect {
                FaultEffect::Latency(latency) => delay += *latency,
                FaultEffect::DropFields(fields) => {
                    dropped.extend(fields.iter().map(String::as_str))
                }
                FaultEffect::Status { .. } | FaultEffect::Reset => {
                    return Decision {
                        delay,
                        dropped,
                        failure: Some(&armed.rule),
                    };
                }
            }
        }
        Decision {
            delay,
            dropped,
            failure: None,
        }
    }

    fn report(&self) -> serde_json::Value {
        let rules: Vec<_> = self
            .rules
            .iter()
            .map(|armed| {
                serde_json::json!({
                    "rule": armed.rule.to_string(),
                    "matched": armed.matched.load(Ordering::SeqCst),
                    "injected": armed.injected.load(Ordering::SeqCst),
                })
            })
            .collect();
        serde_json::json!({ "rules": rules })
    }
}

/// What the rules make of one request.
struct Decision<'a> {
    /// How long it waits first.
    delay: std::time::Duration,
    /// The body fields the service never sees.
    dropped: Vec<&'a str>,
    /// The rule that fails it.
    failure: Option<&'a FaultRule>,
}

/// The largest body whose fields are dropped; a larger one goes on as it is.
const DROP_FIELDS_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// `request` without the top-level `fields` of its JSON object body; any other body is left alone.
async fn without_fields(request: Request, fields: &[&str]) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, DROP_FIELDS_BODY_LIMIT)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
    let bytes = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut object)) => {
            for field in fields {
                object.remove(*field);
            }
            serde_json::to_vec(&object).map_or(bytes, axum::body::Bytes::from)
        }
        _ => bytes,
    };
    let mut parts = parts;
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

/// Middleware: fails requests as the rules say.
pub(crate) async fn inject(
    State(faults): State<Arc<Faults>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == REPORT_PATH {
        return next.run(request).await;
    }
    let Decision {
        delay,
        dropped,
        failure: rule,
    } = faults.decide(request.method(), request.uri().path());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let request = if dropped.is_empty() {
        request
    } else {
        match without_fields(request, &dropped).await {
            Ok(request) => request,
            Err(response) => return response,
        }
    };
    let Some(rule) = rule else {
        return next.run(request).await;
    };
    tracing::warn!(rule = %rule, "injecting a fault");
    match rule.phase {
        FaultPhase::Before => rule.failure(),
        FaultPhase::After => {
            // The answer is dropped on purpose: the caller must not learn the outcome.
            let _ = next.run(request).await;
            rule.failure()
        }
    }
}

/// `GET /_faults`: the rules and their counters.
pub(crate) async fn report(State(faults): State<Arc<Faults>>) -> Response {
    (StatusCode::OK, axum::Json(faults.report())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_and_round_trips() {
        let config: FaultConfig =
            "status=503,count=2,method=get,path=/api/v1/environments,retry_after=1; status=500,when=after"
                .parse()
                .expect("valid faults");
        assert_eq!(config.rules.len(), 2);
        let first = &config.rules[0];
        assert_eq!(first.method, Some(Method::GET));
        assert_eq!(first.trigger, FaultTrigger::First(2));
        assert_eq!(
            first.effect,
            FaultEffect::Status {
                status: StatusCode::SERVICE_UNAVAILABLE,
                retry_after_seconds: Some(1)
            }
        );
        assert_eq!(
            first.to_string(),
            "status=503,count=2,method=GET,path=/api/v1/environments,retry_after=1"
        );
        assert_eq!(config.rules[1].phase, FaultPhase::After);
        assert_eq!(config.rules[1].trigger, FaultTrigger::Always);
        assert_eq!(
            config.rules[1].to_string().parse::<FaultRule>(),
            Ok(config.rules[1].clone())
        );
    }

    #[test]
    fn refuses_bad_rules() {
        assert!(matches!(
            "count=2".parse::<FaultConfig>(),
            Err(FaultConfigError::MissingStatus(_))
        ));
        assert!(matches!(
            "status=200".parse::<FaultConfig>(),
            Err(FaultConfigError::InvalidValue { .. })
        ));
        assert!(matches!(
            "status=503,colour=red".parse::<FaultConfig>(),
            Err(FaultConfigError::UnknownKey(key)) if key == "colour"
        ));
        assert!(matches!(
            "status".parse::<FaultConfig>(),
            Err(FaultConfigError::NotKeyValue(_))
        ));
        assert!(matches!(
            "status=503,path=api".parse::<FaultConfig>(),
            Err(FaultConfigError::InvalidValue { .. })
        ));
    }

    #[test]
    fn drop_fields_rules_collect_fields_and_round_trip() {
        let faults = Faults::new(
            "drop_fields=configuration+metadata,method=PATCH;drop_fields=tags"
                .parse()
                .expect("valid"),
        );
        let decision = faults.decide(&Method::PATCH, "/api/v1/environments/x");
        assert_eq!(decision.dropped, ["configuration", "metadata", "tags"]);
        assert!(decision.failure.is_none());
        assert_eq!(faults.decide(&Method::POST, "/").dropped, ["tags"]);
        let rule: FaultRule = "drop_fields=configuration+metadata,method=POST"
            .parse()
            .expect("valid");
        assert_eq!(
            rule.to_string(),
            "drop_fields=configuration+metadata,method=POST"
        );
        assert!("drop_fields=+".parse::<FaultRule>().is_err());
    }

    #[test]
    fn fails_only_the_first_matching_requests() {
        let faults = Faults::new("status=503,count=2,method=GET".parse().expect("valid"));
        let path = "/api/v1/environments";
        assert!(faults.decide(&Method::POST, path).failure.is_none());
        assert!(faults.decide(&Method::GET, path).failure.is_some());
        assert!(faults.decide(&Method::GET, path).failure.is_some());
        assert!(faults.decide(&Method::GET, path).failure.is_none());
        let report = faults.report();
        assert_eq!(report["rules"][0]["matched"], 3);
        assert_eq!(report["rules"][0]["injected"], 2);
    }

    #[test]
    fn rates_fire_on_about_their_share_and_latency_adds_up() {
        let faults = Faults::new(
            "latency_ms=5;latency_ms=7,method=GET;status=503,rate=0.2;reset=true,rate=0.5"
                .parse()
                .expect("valid"),
        );
        let mut failed = 0;
        let mut resets = 0;
        for _ in 0..1000 {
            let decision = faults.decide(&Method::GET, "/x");
            assert_eq!(decision.delay, std::time::Duration::from_millis(12));
            match decision.failure.map(|rule| &rule.effect) {
                Some(FaultEffect::Status { .. }) => failed += 1,
                Some(FaultEffect::Reset) => resets += 1,
                _ => {}
            }
        }
        assert!((150..250).contains(&failed), "{failed}");
        // Half of the remaining 800.
        assert!((320..480).contains(&resets), "{resets}");
        let round_trip: FaultConfig = "reset=true,rate=0.5,when=after;latency_ms=20"
            .parse()
            .expect("valid");
        assert_eq!(
            round_trip.rules[0].to_string(),
            "reset=true,rate=0.5,when=after"
        );
        assert_eq!(round_trip.rules[1].to_string(), "latency_ms=20");
        assert!(matches!(
            "status=503,reset=true".parse::<FaultConfig>(),
            Err(FaultConfigError::SeveralEffects(_))
        ));
        assert!("status=503,rate=1.5".parse::<FaultConfig>().is_err());
    }
}
