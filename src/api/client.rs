//! [`ControlPlaneClient`]: the Environments API over HTTP, the SDK.
//!
//! It owns what only a network client needs: the base URL and key, timeouts, retries of idempotent
//! calls with jittered exponential backoff (honouring `Retry-After`), and turning HTTP answers into
//! [`EnvironmentError`]. A POST is never retried here: whether a failed create happened is for the
//! caller to find out (docs/src/concepts/plans.md#apply), not for a blind second attempt. The API key never reaches
//! `Debug` output, logs or errors.

use std::fmt;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::array_stream::{ArrayError, ArrayStream};
use super::{
    CreateEnvironment, Environment, EnvironmentError, EnvironmentId, EnvironmentsApi, Status,
    UpdateEnvironment, WorkerCommand,
};

/// The production control plane.
pub const DEFAULT_BASE_URL: &str = "https://control-plane.kubiya.ai";

/// The environment variable holding the API key.
pub const API_KEY_VARIABLE: &str = "KUBIYA_API_KEY";

/// The environment variable holding the control plane's base URL.
pub const BASE_URL_VARIABLE: &str = "KUBIYA_CONTROL_PLANE_URL";

/// Where the Environments API lives under the base URL.
const ENVIRONMENTS_PATH: &str = "/api/v1/environments";

/// Statuses worth another try: the service said "not now" rather than "no".
const RETRYABLE_STATUSES: [StatusCode; 4] = [
    StatusCode::TOO_MANY_REQUESTS,
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
    StatusCode::GATEWAY_TIMEOUT,
];

/// Everything a [`ControlPlaneClient`] is built from.
#[derive(Clone)]
pub struct ClientConfig {
    /// Scheme, host and optional path prefix of the control plane, e.g. [`DEFAULT_BASE_URL`].
    pub base_url: String,
    /// The key sent as `Authorization: Bearer <key>`.
    pub api_key: SecretString,
    /// How long to wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// How long one attempt of a call may take, connection included.
    pub request_timeout: Duration,
    /// Further attempts of an idempotent call after a retryable failure (0 disables retries).
    pub max_retries: usize,
    /// The first backoff delay; later ones grow exponentially, with jitter.
    pub retry_base_delay: Duration,
    /// The longest backoff delay; a `Retry-After` longer than this ends the retries.
    pub retry_max_delay: Duration,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl ClientConfig {
    /// The defaults for `api_key` against [`DEFAULT_BASE_URL`].
    pub fn new(api_key: impl Into<SecretString>) -> Self {
        Self {
            api_key: api_key.into(),
            ..Self::default()
        }
    }
}

impl Default for ClientConfig {
    /// The defaults against [`DEFAULT_BASE_URL`], with an empty key that must be replaced:
    /// [`ControlPlaneClient::with_config`] refuses it.
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: SecretString::from(String::new()),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
            retry_base_delay: Duration::from_millis(500),
            retry_max_delay: Duration::from_secs(30),
            user_agent: concat!("envform/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

/// Why a [`ControlPlaneClient`] could not be built.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ClientError {
    /// `KUBIYA_API_KEY` is not set.
    #[error("no API key: set {API_KEY_VARIABLE}")]
    #[diagnostic(
        code(envform::api::missing_api_key),
        help("set KUBIYA_API_KEY or pass --api-key")
    )]
    MissingApiKey,
    /// The key is empty or cannot be sent in a header.
    #[error("the API key is empty or contains characters not allowed in an HTTP header")]
    #[diagnostic(code(envform::api::invalid_api_key))]
    InvalidApiKey,
    /// The base URL is not an `http` or `https` URL.
    #[error("invalid control plane URL `{url}`: {reason}")]
    #[diagnostic(code(envform::api::invalid_url))]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be set up (TLS, user agent).
    #[error("cannot set up the HTTP client")]
    #[diagnostic(code(envform::api::client))]
    Build(#[source] reqwest::Error),
}

/// A client of the Environments API of one organization (the one the API key belongs to).
///
/// Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct ControlPlaneClient {
    http: reqwest::Client,
    base_url: String,
    environments_url: String,
    request_timeout: Duration,
    max_retries: usize,
    retry_base_delay: Duration,
    retry_max_delay: Duration,
}

impl fmt::Debug for ControlPlaneClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key lives only inside the reqwest client's default headers, marked sensitive.
        f.debug_struct("ControlPlaneClient")
            .field("base_url", &self.base_url)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl ControlPlaneClient {
    /// A client for [`DEFAULT_BASE_URL`] with default timeouts and retries.
    pub fn new(api_key: impl Into<SecretString>) -> Result<Self, ClientError> {
        Self::with_config(ClientConfig::new(api_key))
    }

    /// A client from `KUBIYA_API_KEY` and, when set, `KUBIYA_CONTROL_PLANE_URL`.
    pub fn from_env() -> Result<Self, ClientError> {
        let api_key = std::env::var(API_KEY_VARIABLE).map_err(|_| ClientError::MissingApiKey)?;
        let mut config = ClientConfig::new(api_key);
        if let Ok(url) = std::env::var(BASE_URL_VARIABLE)
            && !url.trim().is_empty()
        {
            config.base_url = url.trim().to_owned();
        }
        Self::with_config(config)
    }

    /// A client from an explicit configuration.
    pub fn with_config(config: ClientConfig) -> Result<Self, ClientError> {
        let base_url = normalize_base_url(&config.base_url)?;
        let key = config.api_key.expose_secret().trim();
        if key.is_empty() {
            return Err(ClientError::InvalidApiKey);
        }
        let mut authorization = HeaderValue::try_from(format!("Bearer {key}"))
            .map_err(|_| ClientError::InvalidApiKey)?;
        // Keeps the value out of HTTP/2 header compression tables and out of `Debug`.
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, authorization);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));

        crate::local::install_crypto_provider();
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(config.user_agent)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(ClientError::Build)?;
        Ok(Self {
            http,
            environments_url: format!("{base_url}{ENVIRONMENTS_PATH}"),
            base_url,
            request_timeout: config.request_timeout,
            max_retries: config.max_retries,
            retry_base_delay: config.retry_base_delay,
            retry_max_delay: config.retry_max_delay,
        })
    }

    /// The base URL calls go to, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The Environments API.
    pub fn environments(&self) -> Environments<'_> {
        Environments { client: self }
    }

    pub(super) fn environment_url(&self, id: EnvironmentId) -> String {
        format!("{}/{id}", self.environments_url)
    }

    async fn list(
        &self,
        status_filter: Option<Status>,
    ) -> Result<Vec<Environment>, EnvironmentError> {
        let query = status_filter.map(|status| ("status_filter", status.as_str()));
        // Decoded as it arrives: a large list is never held whole beside its environments.
        self.call_reading(Method::GET, &self.environments_url, query, None, read_list)
            .await
    }

    async fn get(&self, id: EnvironmentId) -> Result<Environment, EnvironmentError> {
        let body = self
            .call(Method::GET, &self.environment_url(id), None, None)
            .await?;
        decode(&body)
    }

    async fn create(&self, data: &CreateEnvironment) -> Result<Environment, EnvironmentError> {
        let request = encode(data)?;
        let body = self
            .call(Method::POST, &self.environments_url, None, Some(request))
            .await?;
        let environment: Environment = decode(&body)?;
        warn_on_dropped_fields(data, &environment);
        Ok(environment)
    }

    async fn update(
        &self,
        id: EnvironmentId,
        patch: &UpdateEnvironment,
    ) -> Result<Environment, EnvironmentError> {
        let request = encode(patch)?;
        let body = self
            .call(
                Method::PATCH,
                &self.environment_url(id),
                None,
                Some(request),
            )
            .await?;
        let environment: Environment = decode(&body)?;
        warn_on_dropped_fields(patch, &environment);
        Ok(environment)
    }

    async fn delete(&self, id: EnvironmentId) -> Result<(), EnvironmentError> {
        self.call(Method::DELETE, &self.environment_url(id), None, None)
            .await
            .map(drop)
    }

    async fn get_worker_command(
        &self,
        id: EnvironmentId,
    ) -> Result<WorkerCommand, EnvironmentError> {
        let url = format!("{}/worker-command", self.environment_url(id));
        let body = self.call(Method::GET, &url, None, None).await?;
        decode(&body)
    }

    /// Sends one call, retrying it when it is idempotent, and returns the body of its 2xx answer.
    pub(super) async fn call(
        &self,
        method: Method,
        url: &str,
        query: Option<(&str, &str)>,
        body: Option<Bytes>,
    ) -> Result<Bytes, EnvironmentError> {
        self.call_reading(method, url, query, body, read_bytes)
            .await
    }

    /// [`Self::call`], with the body of the 2xx answer read by `read` (again on each attempt).
    async fn call_reading<T, Read, Reading>(
        &self,
        method: Method,
        url: &str,
        query: Option<(&str, &str)>,
        body: Option<Bytes>,
        read: Read,
    ) -> Result<T, EnvironmentError>
    where
        Read: Fn(reqwest::Response) -> Reading,
        Reading: Future<Output = Result<T, ReadFailure>>,
    {
        let attempt = || self.attempt(method.clone(), url, query, body.clone(), &read);
        if method == Method::POST {
            return attempt().await.map_err(|failure| failure.error);
        }
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.retry_base_delay)
            .with_max_delay(self.retry_max_delay)
            .with_max_times(self.max_retries);
        let retry_max_delay = self.retry_max_delay;
        attempt
            .retry(backoff)
            .when(|failure: &Failure| failure.retryable)
            .adjust(
                move |failure: &Failure, next| match (next, failure.retry_after) {
                    // The service knows best when it can answer again; waiting longer than the
                    // configured ceiling would stall the caller, so that ends the retries instead.
                    (Some(_), Some(retry_after)) if retry_after > retry_max_delay => None,
                    (Some(delay), Some(retry_after)) => Some(delay.max(retry_after)),
                    (next, _) => next,
                },
            )
            .notify(|failure: &Failure, delay| {
                tracing::debug!(
                    method = %method,
                    error = %failure.error,
                    delay_ms = delay.as_millis() as u64,
                    "retrying Environments API call"
                );
            })
            .await
            .map_err(|failure| failure.error)
    }

    /// One attempt of a call.
    async fn attempt<T, Reading: Future<Output = Result<T, ReadFailure>>>(
        &self,
        method: Method,
        url: &str,
        query: Option<(&str, &str)>,
        body: Option<Bytes>,
        read: impl Fn(reqwest::Response) -> Reading,
    ) -> Result<T, Failure> {
        let mut request = self.http.request(method.clone(), url);
        if let Some(pair) = query {
            request = request.query(&[pair]);
        }
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        // Only the method, the path and the answer's status are logged: never the host's user
        // information, a query value, a header or a body, which may hold secrets.
        let path = log_path(url);
        let started = std::time::Instant::now();
        let response = request.send().await.map_err(|error| {
            tracing::debug!(
                %method,
                path,
                latency_ms = started.elapsed().as_millis() as u64,
                error = %crate::local::error_chain(&error),
                "API call failed"
            );
            Failure::transport(error, self.request_timeout)
        })?;
        let status = response.status();
        tracing::debug!(
            %method,
            path,
            status = status.as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "API call"
        );
        if status.is_success() {
            return read(response).await.map_err(|failure| match failure {
                ReadFailure::Transport(error) => Failure::transport(error, self.request_timeout),
                ReadFailure::Answer(error) => Failure {
                    error,
                    retry_after: None,
                    retryable: false,
                },
            });
        }
        let retry_after = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|error| Failure::transport(error, self.request_timeout))?;
        Err(Failure {
            error: EnvironmentError::from_response(status.as_u16(), &body),
            retry_after,
            retryable: RETRYABLE_STATUSES.contains(&status),
        })
    }
}

/// Why the body of a 2xx answer could not be read.
enum ReadFailure {
    /// The connection failed while it arrived (retried like any transport failure).
    Transport(reqwest::Error),
    /// It arrived but is not what the call answers.
    Answer(EnvironmentError),
}

/// The whole body.
async fn read_bytes(response: reqwest::Response) -> Result<Bytes, ReadFailure> {
    response.bytes().await.map_err(ReadFailure::Transport)
}

/// Batches of a list answer decoded in the pool at once, at most; past that the reader decodes
/// the next one itself, so the text waiting to be decoded stays bounded.
const DECODING_AHEAD: usize = 8;

/// A batch of a list answer being decoded.
enum Decoding {
    /// Decoded by the reader itself.
    Done(Result<Vec<Environment>, ArrayError>),
    /// Being decoded in the pool.
    Started(tokio::sync::oneshot::Receiver<Result<Vec<Environment>, ArrayError>>),
}

/// The environments of a list answer, each batch decoded in the pool as soon as its bytes are
/// in, while the rest arrives; in the answer's order.
async fn read_list(mut response: reqwest::Response) -> Result<Vec<Environment>, ReadFailure> {
    let unexpected = |error: ArrayError| {
        ReadFailure::Answer(EnvironmentError::Transport {
            message: format!("unexpected answer from the control plane: {error}"),
            cause: Some(Box::new(error)),
        })
    };
    let stopped = || {
        ReadFailure::Answer(EnvironmentError::Transport {
            message: "decoding the list answer stopped".to_owned(),
            cause: None,
        })
    };
    let mut stream = ArrayStream::new();
    let mut decoding = std::collections::VecDeque::new();
    let mut environments = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadFailure::Transport)? {
        let Some(batch) = stream.push(&chunk).map_err(unexpected)? else {
            continue;
        };
        // What is decoded at the front is taken, so an error stops the read early.
        while let Some(front) = decoding.pop_front() {
            match front {
                Decoding::Done(decoded) => environments.extend(decoded.map_err(unexpected)?),
                Decoding::Started(mut receiver) => match receiver.try_recv() {
                    Ok(decoded) => environments.extend(decoded.map_err(unexpected)?),
                    Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                        decoding.push_front(Decoding::Started(receiver));
                        break;
                    }
                    Err(tokio::sync::oneshot::error::TryRecvError::Closed) => return Err(stopped()),
                },
            }
        }
        decoding.push_back(if decoding.len() < DECODING_AHEAD {
            Decoding::Started(crate::parallel::start(move || batch.decode()))
        } else {
            Decoding::Done(batch.decode())
        });
    }
    // The reader would only wait: it decodes the last batch itself.
    let last = stream
        .finish()
        .map_err(unexpected)?
        .map(|batch| batch.decode());
    decoding.extend(last.map(Decoding::Done));
    for batch in decoding {
        let decoded = match batch {
            Decoding::Done(decoded) => decoded,
            Decoding::Started(receiver) => receiver.await.map_err(|_| stopped())?,
        };
        environments.extend(decoded.map_err(unexpected)?);
    }
    // The list lives as long as the plan: the growth's slack is given back.
    environments.shrink_to_fit();
    Ok(environments)
}

/// A failed attempt, with what the retry policy needs to know about it.
struct Failure {
    error: EnvironmentError,
    retry_after: Option<Duration>,
    retryable: bool,
}

impl Failure {
    fn transport(error: reqwest::Error, request_timeout: Duration) -> Self {
        // A connect timeout never reached the service, so it is a (retryable) transport error;
        // any other timeout leaves the outcome unknown.
        if error.is_timeout() && !error.is_connect() {
            return Self {
                error: EnvironmentError::Timeout {
                    seconds: request_timeout.as_secs_f64(),
                },
                retry_after: None,
                retryable: false,
            };
        }
        Self {
            error: EnvironmentError::Transport {
                message: crate::local::error_chain(&error),
                cause: Some(Box::new(error)),
            },
            retry_after: None,
            retryable: true,
        }
    }
}

/// The path of `url`, for a log line (the whole text if it does not parse).
fn log_path(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(
        |_| "(unparsable URL)".to_owned(),
        |url| url.path().to_owned(),
    )
}

/// `Retry-After` in seconds; the HTTP-date form is not used by the control plane.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn normalize_base_url(url: &str) -> Result<String, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidBaseUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = reqwest::Url::parse(url.trim()).map_err(|error| invalid(&error.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("a query or fragment is not allowed"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("credentials belong in the API key, not the URL"));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Bytes, EnvironmentError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|error| EnvironmentError::Transport {
            message: format!("cannot encode the request body: {error}"),
            cause: Some(Box::new(error)),
        })
}

pub(super) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, EnvironmentError> {
    serde_json::from_slice(body).map_err(|error| EnvironmentError::Transport {
        message: format!("unexpected answer from the control plane: {error}"),
        cause: Some(Box::new(error)),
    })
}

/// Warns about each field that was sent with a value but came back empty: the production service
/// drops some fields silently (the reconciler records that in state; this warns SDK users).
fn warn_on_dropped_fields<T: Serialize>(sent: &T, returned: &Environment) {
    let (Ok(serde_json::Value::Object(sent)), Ok(serde_json::Value::Object(returned))) =
        (serde_json::to_value(sent), serde_json::to_value(returned))
    else {
        return;
    };
    for (field, value) in &sent {
        let kept = returned.get(field).is_some_and(|value| !is_empty(value));
        if !is_empty(value) && !kept {
            tracing::warn!(
                field = %field,
                environment = %returned.get("name").and_then(|name| name.as_str()).unwrap_or_default(),
                "the control plane did not keep `{field}`"
            );
        }
    }
}

fn is_empty(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Object(object) => object.is_empty(),
        serde_json::Value::Array(items) => items.is_empty(),
        serde_json::Value::String(text) => text.is_empty(),
        serde_json::Value::Bool(_) | serde_json::Value::Number(_) => false,
    }
}

/// The Environments API of a [`ControlPlaneClient`]: `client.environments().list(None)`.
#[derive(Debug, Clone, Copy)]
pub struct Environments<'client> {
    client: &'client ControlPlaneClient,
}

impl Environments<'_> {
    /// Every environment of the organization, ordered by creation time, optionally by status.
    pub async fn list(
        &self,
        status_filter: Option<Status>,
    ) -> Result<Vec<Environment>, EnvironmentError> {
        self.client.list(status_filter).await
    }

    /// One environment by id.
    pub async fn get(&self, id: EnvironmentId) -> Result<Environment, EnvironmentError> {
        self.client.get(id).await
    }

    /// Creates an environment (never retried: see the module documentation).
    pub async fn create(&self, data: &CreateEnvironment) -> Result<Environment, EnvironmentError> {
        self.client.create(data).await
    }

    /// Partially updates an environment: each field sent replaces the stored one whole.
    pub async fn update(
        &self,
        id: EnvironmentId,
        patch: &UpdateEnvironment,
    ) -> Result<Environment, EnvironmentError> {
        self.client.update(id, patch).await
    }

    /// Deletes an environment.
    pub async fn delete(&self, id: EnvironmentId) -> Result<(), EnvironmentError> {
        self.client.delete(id).await
    }

    /// The command workers run to register with the environment, with its token.
    pub async fn get_worker_command(
        &self,
        id: EnvironmentId,
    ) -> Result<WorkerCommand, EnvironmentError> {
        self.client.get_worker_command(id).await
    }
}

#[async_trait::async_trait]
impl EnvironmentsApi for ControlPlaneClient {
    async fn list(
        &self,
        status_filter: Option<Status>,
    ) -> Result<Vec<Environment>, EnvironmentError> {
        ControlPlaneClient::list(self, status_filter).await
    }
    async fn get(&self, id: EnvironmentId) -> Result<Environment, EnvironmentError> {
        ControlPlaneClient::get(self, id).await
    }
    async fn create(&self, data: &CreateEnvironment) -> Result<Environment, EnvironmentError> {
        ControlPlaneClient::create(self, data).await
    }
    async fn update(
        &self,
        id: EnvironmentId,
        patch: &UpdateEnvironment,
    ) -> Result<Environment, EnvironmentError> {
        ControlPlaneClient::update(self, id, patch).await
    }
    async fn delete(&self, id: EnvironmentId) -> Result<(), EnvironmentError> {
        ControlPlaneClient::delete(self, id).await
    }
    async fn get_worker_command(
        &self,
        id: EnvironmentId,
    ) -> Result<WorkerCommand, EnvironmentError> {
        ControlPlaneClient::get_worker_command(self, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_key() {
        let config = ClientConfig::new("sk-very-secret-key");
        assert!(!format!("{config:?}").contains("sk-very-secret-key"));
        let client = ControlPlaneClient::with_config(config).expect("client builds");
        assert!(!format!("{client:?}").contains("sk-very-secret-key"));
    }

    #[test]
    fn base_url_is_normalized() {
        let mut config = ClientConfig::new("key");
        config.base_url = "http://127.0.0.1:8080/".into();
        let client = ControlPlaneClient::with_config(config).expect("client builds");
        assert_eq!(client.base_url(), "http://127.0.0.1:8080");
        assert_eq!(
            client.environments_url,
            "http://127.0.0.1:8080/api/v1/environments"
        );
    }

    #[test]
    fn rejects_bad_base_urls_and_keys() {
        for url in [
            "ftp://example.com",
            "not a url",
            "https://user:pw@example.com",
        ] {
            let mut config = ClientConfig::new("key");
            config.base_url = url.into();
            assert!(
                matches!(
                    ControlPlaneClient::with_config(config),
                    Err(ClientError::InvalidBaseUrl { .. })
                ),
                "{url} should be refused"
            );
        }
        assert!(matches!(
            ControlPlaneClient::new("  "),
            Err(ClientError::InvalidApiKey)
        ));
        assert!(matches!(
            ControlPlaneClient::new("line\nbreak"),
            Err(ClientError::InvalidApiKey)
        ));
    }

    #[test]
    fn parses_retry_after_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn emptiness_of_returned_fields() {
        assert!(is_empty(&serde_json::json!(null)));
        assert!(is_empty(&serde_json::json!({})));
        assert!(!is_empty(&serde_json::json!({"max_workers": 1})));
        assert!(!is_empty(&serde_json::json!(false)));
    }
}
