//! [`HttpBackend`]: state on a server that speaks Terraform's HTTP backend protocol, so
//! GitLab-managed Terraform state, Gitea and similar servers can keep envform's state, and so
//! can `envform serve`.
//!
//! The protocol: GET the address → 200 with the state, or 204/404 when there is none; POST (the
//! update method) the state to the address, with `?ID=<lock id>` while locked; LOCK (the lock
//! method) the lock address with the lock information → 200, or 423/409 with the holder's
//! information; UNLOCK (the unlock method) the unlock address with the same information. Bodies
//! carry `Content-MD5` as Terraform sends it; basic auth is used when a user name is set.
//!
//! Two extensions for servers that offer them (`envform serve`), harmless with the others: a
//! granted LOCK may answer a [`LockGrant`]. Its fencing token goes back on every state write in
//! [`FENCING_TOKEN_HEADER`], and a server refusing a stale one answers 412. Its lease is renewed
//! by sending the same LOCK (same ID) again every third of the lease.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use md5::{Digest, Md5};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};

use super::backend::{check_successor, check_successor_of, decode_state, encode_state};
use super::lock::{Held, LeaseRenewal};
use super::{
    FENCING_TOKEN_HEADER, FORCE_UNLOCK_OPERATION, FencingToken, LockGrant, LockHandle, LockInfo,
    State, StateBackend, StateError,
};
use crate::model::HttpBackendConfig;

/// The environment variables the password may come from, first found wins.
pub const PASSWORD_VARIABLES: [&str; 2] = ["ENVFORM_STATE_PASSWORD", "TF_HTTP_PASSWORD"];

/// Statuses worth another try: the server said "not now" rather than "no".
const RETRYABLE_STATUSES: [StatusCode; 5] = [
    StatusCode::TOO_MANY_REQUESTS,
    StatusCode::INTERNAL_SERVER_ERROR,
    StatusCode::BAD_GATEWAY,
    StatusCode::SERVICE_UNAVAILABLE,
    StatusCode::GATEWAY_TIMEOUT,
];

/// How much of an unexpected answer's body an error quotes.
const ERROR_BODY_LIMIT: usize = 512;

/// How long an apply gathers finished steps before saving them (each save sends the whole
/// state): a create still saves its intent before it is sent, whatever the interval.
pub const SAVE_INTERVAL: Duration = Duration::from_millis(500);

/// Everything an [`HttpBackend`] is built from; the names are Terraform's.
#[derive(Clone)]
pub struct HttpBackendSettings {
    /// The state's address (GET, and the update method).
    pub address: String,
    /// The method that writes the state; `POST`.
    pub update_method: String,
    /// Where locks are taken; the state's address when `None`.
    pub lock_address: Option<String>,
    /// Where locks are released; the state's address when `None`.
    pub unlock_address: Option<String>,
    /// The method that takes a lock; `LOCK` (GitLab: `POST`).
    pub lock_method: String,
    /// The method that releases a lock; `UNLOCK` (GitLab: `DELETE`).
    pub unlock_method: String,
    /// Basic-auth user name; no authentication when `None`.
    pub username: Option<String>,
    /// Basic-auth password (from [`PASSWORD_VARIABLES`]).
    pub password: Option<SecretString>,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// Further attempts after a connection error or a 429/5xx answer.
    pub retry_max: usize,
    /// The first pause between attempts; later ones grow exponentially, with jitter.
    pub retry_wait_min: Duration,
    /// The longest pause between attempts.
    pub retry_wait_max: Duration,
}

impl HttpBackendSettings {
    /// Terraform's defaults for the state at `address`: POST, LOCK and UNLOCK on the address
    /// itself, two retries waiting 1 s to 30 s.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            update_method: "POST".to_owned(),
            lock_address: None,
            unlock_address: None,
            lock_method: "LOCK".to_owned(),
            unlock_method: "UNLOCK".to_owned(),
            username: None,
            password: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry_max: 2,
            retry_wait_min: Duration::from_secs(1),
            retry_wait_max: Duration::from_secs(30),
        }
    }

    /// The settings of a file's `state:` block, with the password the command line resolved.
    pub fn from_config(config: &HttpBackendConfig, password: Option<SecretString>) -> Self {
        let defaults = Self::new(config.address.clone());
        Self {
            lock_address: config.lock_address.clone(),
            unlock_address: config.unlock_address.clone(),
            lock_method: config
                .lock_method
                .clone()
                .unwrap_or(defaults.lock_method.clone()),
            unlock_method: config
                .unlock_method
                .clone()
                .unwrap_or(defaults.unlock_method.clone()),
            username: config.username.clone(),
            password,
            ..defaults
        }
    }
}

impl fmt::Debug for HttpBackendSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBackendSettings")
            .field("address", &redact_text(&self.address))
            .field("update_method", &self.update_method)
            .field(
                "lock_address",
                &self.lock_address.as_deref().map(redact_text),
            )
            .field(
                "unlock_address",
                &self.unlock_address.as_deref().map(redact_text),
            )
            .field("lock_method", &self.lock_method)
            .field("unlock_method", &self.unlock_method)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry_max", &self.retry_max)
            .field("retry_wait_min", &self.retry_wait_min)
            .field("retry_wait_max", &self.retry_wait_max)
            .finish()
    }
}

/// State on a server speaking Terraform's HTTP backend protocol. Cheap to clone.
#[derive(Clone)]
pub struct HttpBackend {
    client: Arc<Client>,
    /// The lock ID, lineage and serial of this backend's last write under a lock: while that
    /// lock is held nobody else writes, so the next write under it need not GET the whole state
    /// back to check them.
    written: Arc<std::sync::Mutex<Option<(String, super::Lineage, u64)>>>,
}

impl fmt::Debug for HttpBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBackend")
            .field("address", &redact(&self.client.address))
            .finish_non_exhaustive()
    }
}

/// The resolved settings and the connection pool, shared with lease renewals.
struct Client {
    http: reqwest::Client,
    address: Url,
    lock_address: Url,
    unlock_address: Url,
    update_method: Method,
    lock_method: Method,
    unlock_method: Method,
    username: Option<String>,
    password: Option<SecretString>,
    retry_max: usize,
    retry_wait_min: Duration,
    retry_wait_max: Duration,
}

/// A server's answer, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// A failed attempt: the retry policy tries again for both.
enum Failure {
    /// The server was not reached, or the answer was cut.
    Transport(StateError),
    /// The server answered a status worth another try.
    Retryable(Answer),
}

impl HttpBackend {
    /// A backend for `settings`; fails on an address that is not an http(s) URL or a method name
    /// HTTP does not allow.
    pub fn new(settings: HttpBackendSettings) -> Result<Self, StateError> {
        let address = parse_address("address", &settings.address)?;
        let lock_address = match &settings.lock_address {
            Some(text) => parse_address("lock_address", text)?,
            None => address.clone(),
        };
        let unlock_address = match &settings.unlock_address {
            Some(text) => parse_address("unlock_address", text)?,
            None => address.clone(),
        };
        crate::local::install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("envform/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .build()
            .map_err(|error| StateError::InvalidSettings {
                message: format!(
                    "cannot set up the HTTP client: {}",
                    crate::local::error_chain(&error)
                ),
            })?;
        Ok(Self {
            written: Arc::default(),
            client: Arc::new(Client {
                http,
                address,
                lock_address,
                unlock_address,
                update_method: parse_method("update_method", &settings.update_method)?,
                lock_method: parse_method("lock_method", &settings.lock_method)?,
                unlock_method: parse_method("unlock_method", &settings.unlock_method)?,
                username: settings.username.filter(|name| !name.is_empty()),
                password: settings.password,
                retry_max: settings.retry_max,
                retry_wait_min: settings.retry_wait_min,
                retry_wait_max: settings.retry_wait_max,
            }),
        })
    }

    /// The document stored at the address, as stored (its checksum checked); `None` when there
    /// is none. For a document that is not envform's state: a Terraform state being migrated.
    pub async fn load_document(&self) -> Result<Option<Bytes>, StateError> {
        self.client.load_document().await
    }

    /// The state's address without its password, for messages.
    pub fn address(&self) -> String {
        redact(&self.client.address)
    }

    /// Renews the lease of the lock described by `body` every third of `lease` until dropped.
    fn renew_lease(&self, lock_id: String, body: Bytes, lease: Duration) -> LeaseRenewal {
        let lost = Arc::new(AtomicBool::new(false));
        let client = Arc::clone(&self.client);
        let flag = Arc::clone(&lost);
        let period = (lease / 3).max(Duration::from_millis(100));
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let answer = client
                    .send(&client.lock_method, &client.lock_address, Some(&body), None)
                    .await;
                match answer {
                    Ok(answer) if answer.status.is_success() => {
                        tracing::debug!(lock_id, "renewed the state lock's lease");
                    }
                    Ok(answer) if is_conflict(answer.status) => {
                        // The server answering with our own ID still counts the lock as ours.
                        if holder(&answer.body).is_some_and(|holder| holder.id == lock_id) {
                            continue;
                        }
                        tracing::warn!(
                            lock_id,
                            "the state lock's lease was refused: the lock is lost"
                        );
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                    Ok(answer) => {
                        let error = client.unexpected(&client.lock_address, &answer);
                        tracing::warn!(lock_id, %error, "cannot renew the state lock's lease");
                    }
                    Err(error) => {
                        tracing::warn!(lock_id, %error, "cannot renew the state lock's lease");
                    }
                }
            }
        });
        LeaseRenewal::new(task, lost)
    }

    /// Sends UNLOCK with `info` and reads the answer.
    async fn send_unlock(&self, info: &LockInfo) -> Result<(), StateError> {
        let client = &self.client;
        let body = Bytes::from(serde_json::to_vec(info).map_err(StateError::Encode)?);
        let answer = client
            .send(
                &client.unlock_method,
                &client.unlock_address,
                Some(&body),
                None,
            )
            .await?;
        match answer.status {
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            status if is_conflict(status) => Err(StateError::Locked {
                holder: holder(&answer.body),
            }),
            // An envform server refusing to let this key break another key's lock: its answer
            // names the role needed, which says more than "check the credentials".
            StatusCode::FORBIDDEN if info.operation == FORCE_UNLOCK_OPERATION => {
                Err(StateError::Http {
                    address: redact(&client.unlock_address),
                    status: answer.status.as_u16(),
                    body: excerpt(&answer.body),
                })
            }
            _ => Err(client.unexpected(&client.unlock_address, &answer)),
        }
    }
}

#[async_trait::async_trait]
impl StateBackend for HttpBackend {
    async fn load(&self) -> Result<Option<State>, StateError> {
        self.client.load().await
    }

    async fn save(&self, state: &State, lock: Option<&LockHandle>) -> Result<(), StateError> {
        let client = &self.client;
        if let Some(handle) = lock {
            if handle.file_lock().is_some() {
                return Err(StateError::ForeignLock {
                    lock_id: handle.id().to_owned(),
                    backend: self.describe(),
                });
            }
            if handle.is_lost() {
                return Err(StateError::LeaseLost {
                    lock_id: handle.id().to_owned(),
                });
            }
        }
        let known = lock.and_then(|handle| {
            self.written
                .lock()
                .ok()
                .and_then(|written| written.clone())
                .filter(|(lock_id, _, _)| lock_id == handle.id())
        });
        match known {
            Some((_, lineage, serial)) => {
                check_successor_of(lineage, serial, state, &redact(&client.address))?;
            }
            None => {
                let stored = client.load().await?;
                check_successor(stored.as_ref(), state, &redact(&client.address))?;
            }
        }
        let result = self.post(state, lock).await;
        if let Ok(mut written) = self.written.lock() {
            *written = match (&result, lock) {
                (Ok(()), Some(handle)) => {
                    Some((handle.id().to_owned(), state.lineage, state.serial))
                }
                _ => None,
            };
        }
        result
    }

    async fn lock(&self, info: LockInfo) -> Result<LockHandle, StateError> {
        self.forget_written();
        let client = &self.client;
        let body = Bytes::from(serde_json::to_vec(&info).map_err(StateError::Encode)?);
        let answer = client
            .send(&client.lock_method, &client.lock_address, Some(&body), None)
            .await?;
        match answer.status {
            StatusCode::OK | StatusCode::CREATED | StatusCode::NO_CONTENT => {
                // Terraform's servers answer anything; only an envform server answers a grant.
                let grant: LockGrant = serde_json::from_slice(&answer.body).unwrap_or_default();
                let handle = match grant.lease_seconds.filter(|seconds| *seconds > 0) {
                    Some(seconds) => {
                        let renewal =
                            self.renew_lease(info.id.clone(), body, Duration::from_secs(seconds));
                        LockHandle::holding_lease(info, renewal)
                    }
                    None => LockHandle::new(info),
                };
                Ok(match grant.fencing_token {
                    Some(token) => handle.with_fencing_token(token),
                    None => handle,
                })
            }
            status if is_conflict(status) => match holder(&answer.body) {
                // A retried LOCK whose first attempt was granted but whose answer was lost.
                Some(holder) if holder.id == info.id => Ok(LockHandle::new(info)),
                holder => Err(StateError::Locked { holder }),
            },
            _ => Err(client.unexpected(&client.lock_address, &answer)),
        }
    }

    async fn unlock(&self, handle: LockHandle) -> Result<(), StateError> {
        self.forget_written();
        if handle.file_lock().is_some() {
            return Err(StateError::ForeignLock {
                lock_id: handle.id().to_owned(),
                backend: self.describe(),
            });
        }
        let (info, held) = handle.into_parts();
        // Stop renewing first, so no renewal can take the lock again after it is released.
        if let Held::Lease(renewal) = held {
            drop(renewal);
        }
        self.send_unlock(&info).await
    }

    async fn force_unlock(&self, lock_id: &str) -> Result<(), StateError> {
        self.forget_written();
        let info = LockInfo {
            id: lock_id.to_owned(),
            ..LockInfo::new(FORCE_UNLOCK_OPERATION, redact(&self.client.address))
        };
        self.send_unlock(&info).await
    }

    fn describe(&self) -> String {
        format!("http state {}", redact(&self.client.address))
    }

    fn save_interval(&self) -> Duration {
        SAVE_INTERVAL
    }
}

impl HttpBackend {
    fn forget_written(&self) {
        if let Ok(mut written) = self.written.lock() {
            *written = None;
        }
    }

    /// Sends `state` with the update method, under `lock` when held.
    async fn post(&self, state: &State, lock: Option<&LockHandle>) -> Result<(), StateError> {
        let client = &self.client;
        let body = Bytes::from(encode_state(state)?);
        let mut url = client.address.clone();
        if let Some(handle) = lock {
            url.query_pairs_mut().append_pair("ID", handle.id());
        }
        let token = lock.and_then(LockHandle::fencing_token);
        let answer = client
            .send(&client.update_method, &url, Some(&body), token)
            .await?;
        match answer.status {
            StatusCode::OK | StatusCode::CREATED | StatusCode::NO_CONTENT => Ok(()),
            status if is_conflict(status) => Err(StateError::Locked {
                holder: holder(&answer.body),
            }),
            StatusCode::PRECONDITION_FAILED => Err(StateError::StaleFencingToken {
                address: redact(&client.address),
                token,
            }),
            _ => Err(client.unexpected(&client.address, &answer)),
        }
    }
}

impl Client {
    async fn load(&self) -> Result<Option<State>, StateError> {
        let Some(body) = self.load_document().await? else {
            return Ok(None);
        };
        decode_state(&body, &redact(&self.address)).map(Some)
    }

    /// The stored document, its checksum checked; `None` when there is none.
    async fn load_document(&self) -> Result<Option<Bytes>, StateError> {
        let answer = self.send(&Method::GET, &self.address, None, None).await?;
        match answer.status {
            StatusCode::OK if answer.body.is_empty() => Ok(None),
            StatusCode::OK => {
                if let Some(expected) = answer.headers.get("content-md5") {
                    let expected = BASE64.decode(expected.as_bytes()).ok();
                    let actual = Md5::digest(&answer.body);
                    if expected.as_deref() != Some(actual.as_slice()) {
                        return Err(StateError::ChecksumMismatch {
                            address: redact(&self.address),
                        });
                    }
                }
                Ok(Some(answer.body))
            }
            StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.unexpected(&self.address, &answer)),
        }
    }

    /// Sends one request, retrying connection errors and 429/5xx answers with backoff, and
    /// returns the last answer.
    async fn send(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Bytes>,
        fencing_token: Option<FencingToken>,
    ) -> Result<Answer, StateError> {
        let attempt = || self.attempt(method, url, body, fencing_token);
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.retry_wait_min)
            .with_max_delay(self.retry_wait_max)
            .with_max_times(self.retry_max);
        let result = attempt
            .retry(backoff)
            .notify(|failure: &Failure, delay| {
                let reason = match failure {
                    Failure::Transport(error) => error.to_string(),
                    Failure::Retryable(answer) => answer.status.to_string(),
                };
                tracing::debug!(%method, %reason, delay_ms = delay.as_millis() as u64, "retrying a state request");
            })
            .await;
        match result {
            Ok(answer) | Err(Failure::Retryable(answer)) => Ok(answer),
            Err(Failure::Transport(error)) => Err(error),
        }
    }

    /// One attempt of a request.
    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Bytes>,
        fencing_token: Option<FencingToken>,
    ) -> Result<Answer, Failure> {
        let mut request = self.http.request(method.clone(), url.clone());
        if let Some(username) = &self.username {
            let password = self.password.as_ref().map(ExposeSecret::expose_secret);
            request = request.basic_auth(username, password);
        }
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .header("Content-MD5", BASE64.encode(Md5::digest(body)))
                .body(body.clone());
        }
        if let Some(token) = fencing_token {
            request = request.header(FENCING_TOKEN_HEADER, token.to_string());
        }
        let started = std::time::Instant::now();
        let response = request.send().await.map_err(|error| {
            let error = self.transport(url, error);
            tracing::debug!(
                %method,
                path = url.path(),
                latency_ms = started.elapsed().as_millis() as u64,
                %error,
                "state request failed"
            );
            Failure::Transport(error)
        })?;
        let status = response.status();
        // The path only: the address's user information and query may hold credentials.
        tracing::debug!(
            %method,
            path = url.path(),
            status = status.as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "state request"
        );
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|error| Failure::Transport(self.transport(url, error)))?;
        let answer = Answer {
            status,
            headers,
            body,
        };
        if RETRYABLE_STATUSES.contains(&status) {
            return Err(Failure::Retryable(answer));
        }
        Ok(answer)
    }

    fn transport(&self, url: &Url, error: reqwest::Error) -> StateError {
        // The URL may carry credentials: it is named in redacted form instead.
        let error = error.without_url();
        StateError::Transport {
            address: redact(url),
            message: crate::local::error_chain(&error),
            cause: error,
        }
    }

    /// What to do about a 401 or 403, from the credentials that were sent. Basic auth is sent
    /// only with a user, so a password alone is the likeliest slip.
    fn credentials_help(&self, status: StatusCode) -> String {
        let password = format!("{} or {}", PASSWORD_VARIABLES[0], PASSWORD_VARIABLES[1]);
        let user = "--state-username, ENVFORM_STATE_USERNAME or `state.username` in the file";
        match (&self.username, &self.password) {
            (None, _) => format!(
                "no credentials were sent: set the user ({user}) and the password ({password}); the password is sent only with a user"
            ),
            (Some(_), None) => format!("no password was sent: set {password}"),
            (Some(_), Some(_)) if status == StatusCode::FORBIDDEN => format!(
                "these credentials may not use this state: check the user ({user}), the password ({password}) and the state address"
            ),
            (Some(_), Some(_)) => format!(
                "the user or the password was refused: check the user ({user}) and the password ({password})"
            ),
        }
    }

    /// The error for an answer the protocol does not expect.
    fn unexpected(&self, url: &Url, answer: &Answer) -> StateError {
        let address = redact(url);
        match answer.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => StateError::Unauthorized {
                address,
                status: answer.status.as_u16(),
                help: self.credentials_help(answer.status),
            },
            status => StateError::Http {
                address,
                status: status.as_u16(),
                body: excerpt(&answer.body),
            },
        }
    }
}

/// 409 and 423 both mean "locked by someone else" in Terraform's protocol.
fn is_conflict(status: StatusCode) -> bool {
    status == StatusCode::CONFLICT || status == StatusCode::LOCKED
}

/// The holder's information from a 409/423 body, when it has some. An envform server shows
/// the lock's ID only to the key that took it; to others it names that key (`holder_key`),
/// which is then shown with `Who`.
fn holder(body: &[u8]) -> Option<Box<LockInfo>> {
    #[derive(serde::Deserialize)]
    struct Holder {
        #[serde(flatten)]
        info: LockInfo,
        #[serde(default)]
        holder_key: Option<String>,
    }
    let Holder {
        mut info,
        holder_key,
    } = serde_json::from_slice::<Holder>(body).ok()?;
    match holder_key {
        Some(key) if info.id.is_empty() => {
            info.who = if info.who.is_empty() {
                key
            } else {
                format!("{} as {key}", info.who)
            };
            Some(Box::new(info))
        }
        _ if info.id.is_empty() => None,
        _ => Some(Box::new(info)),
    }
}

/// The start of a body, for an error message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(ERROR_BODY_LIMIT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None if text.is_empty() => "(empty body)".to_owned(),
        None => text.to_owned(),
    }
}

fn parse_address(field: &str, text: &str) -> Result<Url, StateError> {
    // The text is not quoted back: it may hold a password.
    let url = Url::parse(text.trim()).map_err(|error| StateError::InvalidSettings {
        message: format!("`{field}` is not a URL ({error})"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(StateError::InvalidSettings {
            message: format!("`{field}` must be an http or https URL"),
        });
    }
    Ok(url)
}

fn parse_method(field: &str, name: &str) -> Result<Method, StateError> {
    Method::from_bytes(name.trim().as_bytes()).map_err(|_| StateError::InvalidSettings {
        message: format!("`{field}` `{name}` is not an HTTP method name"),
    })
}

/// The URL without its password, for messages.
fn redact(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        // Fails only for URLs that cannot have credentials, which then have none to hide.
        let _ = url.set_password(None);
    }
    url.to_string()
}

/// [`redact`] for settings not yet parsed; text that is not a URL is hidden whole.
fn redact_text(text: &str) -> String {
    match Url::parse(text) {
        Ok(url) => redact(&url),
        Err(_) => "<not a URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use axum::Router;
    use axum::extract::{Query, State as Shared};
    use axum::http::{HeaderMap as AxumHeaders, Method as AxumMethod, StatusCode as AxumStatus};
    use axum::response::{IntoResponse, Response};
    use axum::routing::any;

    use super::*;
    use crate::state::lock_with_timeout;

    /// One state write as the server saw it.
    #[derive(Debug, Clone)]
    struct Write {
        lock_id: Option<String>,
        fencing_token: Option<String>,
        content_md5_matches: bool,
        content_type: Option<String>,
    }

    /// An in-memory server of Terraform's HTTP backend protocol, with envform's extensions
    /// (fencing tokens, leases) switched on by its fields.
    #[derive(Default)]
    struct Fake {
        state: Option<Vec<u8>>,
        lock: Option<LockInfo>,
        /// The status for "locked": 423 unless set to 409.
        conflict_status: Option<u16>,
        /// Basic-auth credentials required, if any.
        credentials: Option<(String, String)>,
        /// Issue fencing tokens and refuse writes with a stale one.
        fencing: bool,
        current_token: u64,
        lease_seconds: Option<u64>,
        /// Statuses to answer the next GETs with, first first.
        failing_gets: Vec<u16>,
        /// Send a wrong `Content-MD5` with the state.
        wrong_md5: bool,
        gets: usize,
        locks: usize,
        renewals: usize,
        unlocks: Vec<(String, String)>,
        writes: Vec<Write>,
    }

    type Server = Arc<Mutex<Fake>>;

    async fn serve(fake: Fake) -> (String, Server) {
        let shared = Arc::new(Mutex::new(fake));
        let app = Router::new()
            .route("/state/{name}", any(state_route))
            .route("/state/{name}/lock", any(lock_route))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{address}/state/main"), shared)
    }

    async fn state_route(
        Shared(server): Shared<Server>,
        method: AxumMethod,
        Query(query): Query<HashMap<String, String>>,
        headers: AxumHeaders,
        body: Bytes,
    ) -> Response {
        let mut fake = server.lock().unwrap();
        if let Some(refusal) = fake.refuse_credentials(&headers) {
            return refusal;
        }
        match method.as_str() {
            "GET" => fake.get(),
            "POST" => fake.write(&query, &headers, body),
            "LOCK" => fake.take_lock(&body),
            "UNLOCK" => fake.release_lock(method.as_str(), &body),
            _ => AxumStatus::METHOD_NOT_ALLOWED.into_response(),
        }
    }

    /// GitLab's shape: POST and DELETE on `<address>/lock`.
    async fn lock_route(
        Shared(server): Shared<Server>,
        method: AxumMethod,
        headers: AxumHeaders,
        body: Bytes,
    ) -> Response {
        let mut fake = server.lock().unwrap();
        if let Some(refusal) = fake.refuse_credentials(&headers) {
            return refusal;
        }
        match method.as_str() {
            "POST" => fake.take_lock(&body),
            "DELETE" => fake.release_lock(method.as_str(), &body),
            _ => AxumStatus::METHOD_NOT_ALLOWED.into_response(),
        }
    }

    impl Fake {
        fn refuse_credentials(&self, headers: &AxumHeaders) -> Option<Response> {
            let (user, password) = self.credentials.as_ref()?;
            let expected = format!("Basic {}", BASE64.encode(format!("{user}:{password}")));
            let sent = headers
                .get("authorization")
                .and_then(|value| value.to_str().ok());
            (sent != Some(expected.as_str())).then(|| AxumStatus::UNAUTHORIZED.into_response())
        }

        fn locked(&self) -> Response {
            let status = AxumStatus::from_u16(self.conflict_status.unwrap_or(423)).unwrap();
            (status, serde_json::to_vec(&self.lock).unwrap()).into_response()
        }

        fn get(&mut self) -> Response {
            self.gets += 1;
            if !self.failing_gets.is_empty() {
                let status = self.failing_gets.remove(0);
                return AxumStatus::from_u16(status).unwrap().into_response();
            }
            match &self.state {
                None => AxumStatus::NO_CONTENT.into_response(),
                Some(state) => {
                    let digest = if self.wrong_md5 {
                        Md5::digest(b"something else")
                    } else {
                        Md5::digest(state)
                    };
                    let md5 = BASE64.encode(digest);
                    ([("Content-MD5", md5)], state.clone()).into_response()
                }
            }
        }

        fn write(
            &mut self,
            query: &HashMap<String, String>,
            headers: &AxumHeaders,
            body: Bytes,
        ) -> Response {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned)
            };
            let write = Write {
                lock_id: query.get("ID").cloned(),
                fencing_token: header(FENCING_TOKEN_HEADER),
                content_md5_matches: header("content-md5")
                    == Some(BASE64.encode(Md5::digest(&body))),
                content_type: header("content-type"),
            };
            self.writes.push(write.clone());
            if let Some(lock) = &self.lock
                && write.lock_id.as_deref() != Some(lock.id.as_str())
            {
                return self.locked();
            }
            if self.fencing && write.fencing_token != Some(self.current_token.to_string()) {
                return AxumStatus::PRECONDITION_FAILED.into_response();
            }
            self.state = Some(body.to_vec());
            AxumStatus::OK.into_response()
        }

        fn take_lock(&mut self, body: &[u8]) -> Response {
            let Ok(info) = serde_json::from_slice::<LockInfo>(body) else {
                return AxumStatus::BAD_REQUEST.into_response();
            };
            match &self.lock {
                Some(held) if held.id == info.id && self.lease_seconds.is_some() => {
                    self.renewals += 1;
                    return self.grant();
                }
                Some(_) => return self.locked(),
                None => {}
            }
            self.locks += 1;
            self.lock = Some(info);
            self.current_token += 1;
            self.grant()
        }

        fn grant(&self) -> Response {
            if !self.fencing && self.lease_seconds.is_none() {
                return AxumStatus::OK.into_response();
            }
            let grant = LockGrant {
                fencing_token: self.fencing.then_some(FencingToken(self.current_token)),
                lease_seconds: self.lease_seconds,
            };
            axum::Json(grant).into_response()
        }

        fn release_lock(&mut self, method: &str, body: &[u8]) -> Response {
            let Ok(info) = serde_json::from_slice::<LockInfo>(body) else {
                return AxumStatus::BAD_REQUEST.into_response();
            };
            self.unlocks.push((method.to_owned(), info.id.clone()));
            match &self.lock {
                Some(held) if held.id != info.id => self.locked(),
                _ => {
                    self.lock = None;
                    AxumStatus::OK.into_response()
                }
            }
        }
    }

    fn settings(address: &str) -> HttpBackendSettings {
        HttpBackendSettings {
            retry_wait_min: Duration::from_millis(10),
            retry_wait_max: Duration::from_millis(50),
            request_timeout: Duration::from_secs(5),
            ..HttpBackendSettings::new(address)
        }
    }

    fn backend(address: &str) -> HttpBackend {
        HttpBackend::new(settings(address)).unwrap()
    }

    fn first_state() -> State {
        State {
            serial: 1,
            ..State::empty("embedded:test.db")
        }
    }

    fn next(state: &State) -> State {
        State {
            serial: state.serial + 1,
            ..state.clone()
        }
    }

    #[tokio::test]
    async fn state_round_trips_under_a_lock_with_its_id_and_checksum() {
        let (address, server) = serve(Fake::default()).await;
        let backend = backend(&address);
        assert_eq!(backend.load().await.unwrap(), None);
        assert_eq!(backend.describe(), format!("http state {address}"));

        let handle = backend
            .lock(LockInfo::new("apply", &address))
            .await
            .unwrap();
        assert_eq!(
            handle.fencing_token(),
            None,
            "a Terraform server grants no token"
        );
        let state = first_state();
        backend.save(&state, Some(&handle)).await.unwrap();
        assert_eq!(backend.load().await.unwrap(), Some(state.clone()));
        {
            let fake = server.lock().unwrap();
            let write = fake.writes.last().unwrap();
            assert_eq!(write.lock_id.as_deref(), Some(handle.id()));
            assert!(write.content_md5_matches);
            assert_eq!(write.content_type.as_deref(), Some("application/json"));
            assert_eq!(write.fencing_token, None);
            assert_eq!(fake.lock.as_ref().unwrap(), handle.info());
        }

        let id = handle.id().to_owned();
        backend.unlock(handle).await.unwrap();
        {
            let fake = server.lock().unwrap();
            assert!(fake.lock.is_none());
            assert_eq!(fake.unlocks, [("UNLOCK".to_owned(), id)]);
        }
        // Unlocked, a write without a lock goes through (the server allows it).
        backend.save(&next(&state), None).await.unwrap();
        assert_eq!(server.lock().unwrap().writes.last().unwrap().lock_id, None);
    }

    #[tokio::test]
    async fn saves_that_follow_one_another_under_a_lock_read_the_state_once() {
        let (address, server) = serve(Fake::default()).await;
        let backend = backend(&address);
        let handle = backend
            .lock(LockInfo::new("apply", &address))
            .await
            .unwrap();
        let first = first_state();
        backend.save(&first, Some(&handle)).await.unwrap();
        let second = next(&first);
        backend.save(&second, Some(&handle)).await.unwrap();
        let third = next(&second);
        backend.save(&third, Some(&handle)).await.unwrap();
        assert_eq!(server.lock().unwrap().gets, 1, "only the first save reads");
        assert_eq!(server.lock().unwrap().writes.len(), 3);
        // A stale serial is still refused without a read.
        assert!(matches!(
            backend.save(&second, Some(&handle)).await,
            Err(StateError::SerialNotIncreased { .. })
        ));
        backend.unlock(handle).await.unwrap();
        // Under a new lock the stored state is read again first.
        let handle = backend
            .lock(LockInfo::new("apply", &address))
            .await
            .unwrap();
        backend.save(&next(&third), Some(&handle)).await.unwrap();
        assert_eq!(server.lock().unwrap().gets, 2);
        assert_eq!(backend.load().await.unwrap(), Some(next(&third)));
        backend.unlock(handle).await.unwrap();
    }

    #[tokio::test]
    async fn a_held_lock_is_reported_with_its_holder_on_423_and_409() {
        for conflict_status in [423, 409] {
            let (address, _server) = serve(Fake {
                conflict_status: Some(conflict_status),
                ..Fake::default()
            })
            .await;
            let first = backend(&address);
            let second = backend(&address);
            let holder_info = LockInfo::new("apply", &address);
            let handle = first.lock(holder_info.clone()).await.unwrap();

            let error = second
                .lock(LockInfo::new("plan", &address))
                .await
                .unwrap_err();
            assert!(
                matches!(&error, StateError::Locked { holder: Some(holder) } if **holder == holder_info),
                "{conflict_status}: {error:?}"
            );
            // A write without the lock's ID is refused with the holder too.
            let error = second.save(&first_state(), None).await.unwrap_err();
            assert!(
                matches!(&error, StateError::Locked { holder: Some(holder) } if holder.id == holder_info.id),
                "{conflict_status}: {error:?}"
            );
            first.unlock(handle).await.unwrap();
            let handle = second.lock(LockInfo::new("plan", &address)).await.unwrap();
            second.unlock(handle).await.unwrap();
        }
    }

    #[tokio::test]
    async fn waiting_for_a_remote_lock_ends_when_its_holder_unlocks() {
        let (address, _server) = serve(Fake::default()).await;
        let first = backend(&address);
        let second = backend(&address);
        let holder_info = LockInfo::new("apply", &address);
        let handle = first.lock(holder_info.clone()).await.unwrap();
        let releaser = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            first.unlock(handle).await.unwrap();
        });
        let mut seen = Vec::new();
        let handle = lock_with_timeout(
            &second,
            LockInfo::new("plan", &address),
            Duration::from_secs(10),
            |holder| seen.push(holder.map(|holder| holder.id.clone())),
        )
        .await
        .unwrap();
        releaser.await.unwrap();
        assert_eq!(seen, [Some(holder_info.id)]);
        second.unlock(handle).await.unwrap();
    }

    #[tokio::test]
    async fn force_unlock_breaks_a_lock_by_its_id() {
        let (address, server) = serve(Fake::default()).await;
        let holder = backend(&address);
        let handle = holder.lock(LockInfo::new("apply", &address)).await.unwrap();
        let id = handle.id().to_owned();
        // The holder crashes: its handle is gone without an unlock.
        drop(handle);

        let other = backend(&address);
        let error = other.force_unlock("another-id").await.unwrap_err();
        assert!(
            matches!(&error, StateError::Locked { holder: Some(holder) } if holder.id == id),
            "{error:?}"
        );
        other.force_unlock(&id).await.unwrap();
        assert!(server.lock().unwrap().lock.is_none());
        let handle = other.lock(LockInfo::new("apply", &address)).await.unwrap();
        other.unlock(handle).await.unwrap();
    }

    #[tokio::test]
    async fn gitlab_style_lock_address_and_methods_are_used() {
        let (address, server) = serve(Fake::default()).await;
        let config = HttpBackendConfig {
            address: address.clone(),
            lock_address: Some(format!("{address}/lock")),
            unlock_address: Some(format!("{address}/lock")),
            lock_method: Some("POST".to_owned()),
            unlock_method: Some("DELETE".to_owned()),
            username: None,
        };
        let backend = HttpBackend::new(HttpBackendSettings {
            retry_wait_min: Duration::from_millis(10),
            ..HttpBackendSettings::from_config(&config, None)
        })
        .unwrap();
        let handle = backend
            .lock(LockInfo::new("apply", &address))
            .await
            .unwrap();
        assert_eq!(server.lock().unwrap().locks, 1);
        backend.save(&first_state(), Some(&handle)).await.unwrap();
        let id = handle.id().to_owned();
        backend.unlock(handle).await.unwrap();
        assert_eq!(server.lock().unwrap().unlocks, [("DELETE".to_owned(), id)]);
    }

    #[tokio::test]
    async fn basic_auth_is_sent_and_the_password_never_shows() {
        let password = "s3cret-Passw0rd";
        let (address, _server) = serve(Fake {
            credentials: Some(("envform".to_owned(), password.to_owned())),
            ..Fake::default()
        })
        .await;

        let anonymous = backend(&address);
        let error = anonymous.load().await.unwrap_err();
        assert!(
            matches!(error, StateError::Unauthorized { status: 401, .. }),
            "{error:?}"
        );

        let wrong = HttpBackend::new(HttpBackendSettings {
            username: Some("envform".to_owned()),
            password: Some(SecretString::from("wrong")),
            ..settings(&address)
        })
        .unwrap();
        assert!(matches!(
            wrong.lock(LockInfo::new("apply", &address)).await,
            Err(StateError::Unauthorized { status: 401, .. })
        ));

        let right_settings = HttpBackendSettings {
            username: Some("envform".to_owned()),
            password: Some(SecretString::from(password)),
            ..settings(&address)
        };
        assert!(!format!("{right_settings:?}").contains(password));
        let right = HttpBackend::new(right_settings).unwrap();
        assert!(!format!("{right:?}").contains(password));
        let handle = right.lock(LockInfo::new("apply", &address)).await.unwrap();
        let state = first_state();
        right.save(&state, Some(&handle)).await.unwrap();
        right.unlock(handle).await.unwrap();
        assert_eq!(right.load().await.unwrap(), Some(state));
    }

    #[tokio::test]
    async fn credentials_in_the_address_are_redacted() {
        let backend = backend("https://user:hunter2@state.example/state/main");
        assert_eq!(
            backend.describe(),
            "http state https://user@state.example/state/main"
        );
        assert!(!format!("{backend:?}").contains("hunter2"));
        let with_password = settings("https://user:hunter2@state.example/state/main");
        assert!(!format!("{with_password:?}").contains("hunter2"));

        // Nothing listens on a port just freed: a transport error, named without the password.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let unreachable = HttpBackend::new(HttpBackendSettings {
            retry_max: 1,
            ..settings(&format!("http://user:hunter2@127.0.0.1:{port}/state/main"))
        })
        .unwrap();
        let error = unreachable.load().await.unwrap_err();
        assert!(matches!(error, StateError::Transport { .. }), "{error:?}");
        let text = format!("{error} {error:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    }

    #[tokio::test]
    async fn writes_carry_the_fencing_token_and_a_stale_one_is_refused() {
        let (address, server) = serve(Fake {
            fencing: true,
            ..Fake::default()
        })
        .await;
        let backend = backend(&address);
        let handle = backend
            .lock(LockInfo::new("apply", &address))
            .await
            .unwrap();
        assert_eq!(handle.fencing_token(), Some(FencingToken(1)));
        let state = first_state();
        backend.save(&state, Some(&handle)).await.unwrap();
        assert_eq!(
            server
                .lock()
                .unwrap()
                .writes
                .last()
                .unwrap()
                .fencing_token
                .as_deref(),
            Some("1")
        );

        // The lock expired and was granted again meanwhile: token 1 is stale now.
        server.lock().unwrap().current_token = 2;
        let error = backend
            .save(&next(&state), Some(&handle))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                StateError::StaleFencingToken {
                    token: Some(FencingToken(1)),
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(backend.load().await.unwrap(), Some(state));
    }

    #[tokio::test]
    async fn a_leased_lock_is_renewed_until_unlocked_and_a_refused_renewal_loses_it() {
        let (address, server) = serve(Fake {
            lease_seconds: Some(1),
            ..Fake::default()
        })
        .await;
        let backend = backend(&address);
        let handle = backend
            .lock(LockInfo::new("apply", &address))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let renewals = server.lock().unwrap().renewals;
        // Every third of the lease: four times in 1.5 s; two leaves room for a slow machine.
        assert!(
            renewals >= 2,
            "renewed {renewals} times in 1.5 s of a 1 s lease"
        );
        assert!(!handle.is_lost());
        backend.unlock(handle).await.unwrap();
        let after_unlock = server.lock().unwrap().renewals;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            server.lock().unwrap().renewals,
            after_unlock,
            "renewals stop"
        );

        // Someone else takes the lock (the lease ran out): the next renewal is refused.
        let handle = backend
            .lock(LockInfo::new("apply", &address))
            .await
            .unwrap();
        server.lock().unwrap().lock = Some(LockInfo::new("apply", "elsewhere"));
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(handle.is_lost());
        let error = backend
            .save(&first_state(), Some(&handle))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StateError::LeaseLost { lock_id } if lock_id == handle.id()),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn remote_state_is_checked_like_local_state() {
        let (address, server) = serve(Fake::default()).await;
        let backend = backend(&address);
        let stored = first_state();
        backend.save(&stored, None).await.unwrap();

        let stranger = State {
            serial: 5,
            ..State::empty("t")
        };
        assert!(matches!(
            backend.save(&stranger, None).await,
            Err(StateError::LineageMismatch { .. })
        ));
        assert!(matches!(
            backend.save(&stored, None).await,
            Err(StateError::SerialNotIncreased {
                stored: 1,
                new: 1,
                ..
            })
        ));

        server.lock().unwrap().wrong_md5 = true;
        assert!(matches!(
            backend.load().await,
            Err(StateError::ChecksumMismatch { .. })
        ));

        {
            let mut fake = server.lock().unwrap();
            fake.wrong_md5 = false;
            fake.state = Some(b"{\"version\": 1,\n \"serial\": }".to_vec());
        }
        let error = backend.load().await.unwrap_err();
        match error {
            StateError::Corrupt {
                path, line, column, ..
            } => {
                assert_eq!(path, address);
                assert_eq!((line, column), (2, 12));
            }
            other => panic!("unexpected {other:?}"),
        }
        // A corrupt remote state is not overwritten either.
        assert!(matches!(
            backend.save(&next(&stored), None).await,
            Err(StateError::Corrupt { .. })
        ));
    }

    #[tokio::test]
    async fn unavailable_answers_are_retried_then_reported() {
        let (address, server) = serve(Fake {
            failing_gets: vec![503, 502],
            ..Fake::default()
        })
        .await;
        let backend = backend(&address);
        assert_eq!(backend.load().await.unwrap(), None);
        assert_eq!(server.lock().unwrap().gets, 3);

        server.lock().unwrap().failing_gets = vec![503, 503, 503, 503];
        let error = backend.load().await.unwrap_err();
        assert!(
            matches!(&error, StateError::Http { status: 503, .. }),
            "{error:?}"
        );
        // Two retries after the first attempt: three more GETs.
        assert_eq!(server.lock().unwrap().gets, 6);

        // A 404 means "no state yet", like 204.
        server.lock().unwrap().failing_gets = vec![404];
        assert_eq!(backend.load().await.unwrap(), None);
    }

    #[test]
    fn unusable_settings_are_refused_without_quoting_the_address() {
        let error = HttpBackend::new(HttpBackendSettings::new("not a url :pass@")).unwrap_err();
        assert!(
            matches!(error, StateError::InvalidSettings { .. }),
            "{error:?}"
        );
        assert!(!error.to_string().contains("pass@"), "{error}");

        let error = HttpBackend::new(HttpBackendSettings::new("ftp://host/state")).unwrap_err();
        assert!(error.to_string().contains("http or https"), "{error}");

        let error = HttpBackend::new(HttpBackendSettings {
            lock_method: "LO CK".to_owned(),
            ..HttpBackendSettings::new("https://host/state")
        })
        .unwrap_err();
        assert!(error.to_string().contains("lock_method"), "{error}");
    }

    #[test]
    fn settings_from_a_state_block_keep_terraform_defaults() {
        let config = HttpBackendConfig {
            address: "https://gitlab.example/api/v4/projects/1/terraform/state/envform".to_owned(),
            username: Some("ci".to_owned()),
            ..HttpBackendConfig::default()
        };
        let settings = HttpBackendSettings::from_config(&config, Some(SecretString::from("x")));
        assert_eq!(settings.address, config.address);
        assert_eq!(settings.update_method, "POST");
        assert_eq!(settings.lock_method, "LOCK");
        assert_eq!(settings.unlock_method, "UNLOCK");
        assert_eq!(settings.lock_address, None);
        assert_eq!(settings.username.as_deref(), Some("ci"));
        assert!(settings.password.is_some());
    }
}
