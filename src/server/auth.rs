//! Who is calling: the API key of a request, the organization it acts for, its role, and the
//! actor recorded on changes (`key:<name>`, never the key). Failed authentications are limited
//! per client address (429 with `Retry-After`), so keys cannot be guessed at speed.
//!
//! Keys are held as SHA-256 digests and looked up by digest, so a request's key is never compared
//! byte by byte against a stored secret, and no key is kept in plain text after start.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::clock::DefaultClock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::json::ApiError;
use crate::api::{EnvironmentError, OrganizationId};
use crate::control_plane::{ControlPlane, OrganizationScope};

/// An API key accepted by the server: a secret, never shown by `Debug`.
#[derive(Clone)]
pub struct ApiKey(SecretString);

/// Why a string is not a usable API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// The key is empty.
    #[error("the API key is empty")]
    Empty,
    /// The key has whitespace or characters that cannot travel in an HTTP header.
    #[error("the API key must be visible ASCII characters without spaces")]
    InvalidCharacters,
}

impl ApiKey {
    /// Wraps a key, checking that it can be sent as `Authorization: Bearer <key>`.
    pub fn new(key: impl Into<String>) -> Result<Self, ApiKeyError> {
        let key = key.into();
        if key.is_empty() {
            return Err(ApiKeyError::Empty);
        }
        if !key.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(ApiKeyError::InvalidCharacters);
        }
        Ok(Self(SecretString::from(key)))
    }

    /// The key itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// A name for the key that is safe to log and record: `key:` and 8 hex digits of its SHA-256.
    pub fn fingerprint(&self) -> String {
        fingerprint(&digest(self.expose()))
    }
}

impl FromStr for ApiKey {
    type Err = ApiKeyError;
    fn from_str(key: &str) -> Result<Self, Self::Err> {
        Self::new(key)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.fingerprint())
    }
}

impl PartialEq for ApiKey {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for ApiKey {}

impl PartialOrd for ApiKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ApiKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.expose().cmp(other.expose())
    }
}

/// The SHA-256 digest of a key: all the server keeps of it.
pub(crate) type KeyDigest = [u8; 32];

fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

fn fingerprint_name(digest: &KeyDigest) -> String {
    hex::encode(&digest[..4])
}

fn fingerprint(digest: &KeyDigest) -> String {
    format!("key:{}", fingerprint_name(digest))
}

/// What a key may do; each role may do all that the one before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every read: lists, environments, workers, the audit log, state documents and events.
    Viewer,
    /// Writes: environments, worker commands, state documents and locks.
    Editor,
    /// Token rotation and breaking another key's state lock.
    Admin,
}

impl Role {
    /// The role's name as written in flags and key files.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(format!("`{other}` is not a role (viewer, editor or admin)")),
        }
    }
}

/// One accepted key as the server keeps it: a name, an organization, a role and the key's
/// SHA-256 digest (never the key).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyGrant {
    /// The name the audit log and lock holders show (`key:<name>`).
    pub name: String,
    /// The organization the key acts for.
    pub organization: OrganizationId,
    /// What the key may do.
    pub role: Role,
    digest: KeyDigest,
}

impl fmt::Debug for KeyGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyGrant")
            .field("name", &self.name)
            .field("organization", &self.organization)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl KeyGrant {
    /// The grant of a key given in full (`--api-key`), named by its fingerprint.
    pub fn from_key(key: &ApiKey, organization: OrganizationId, role: Role) -> Self {
        let digest = digest(key.expose());
        Self {
            name: fingerprint_name(&digest),
            organization,
            role,
            digest,
        }
    }

    /// The grant of a key known by its digest, written `sha256:<64 hex digits>`.
    pub fn from_digest(
        name: String,
        organization: OrganizationId,
        role: Role,
        digest_text: &str,
    ) -> Result<Self, String> {
        let hex_digits = digest_text
            .trim()
            .strip_prefix("sha256:")
            .ok_or_else(|| "the digest must start with `sha256:`".to_owned())?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut digest)
            .map_err(|_| "the digest must be `sha256:` and 64 hex digits".to_owned())?;
        Ok(Self {
            name,
            organization,
            role,
            digest,
        })
    }

    /// Whether two grants are for the same key.
    pub fn same_key(&self, other: &KeyGrant) -> bool {
        self.digest == other.digest
    }
}

/// `sha256:` and the hex SHA-256 of `key`: what a keys file stores.
pub fn key_digest_text(key: &str) -> String {
    format!("sha256:{}", hex::encode(digest(key)))
}

/// One accepted key: its grant, and the organization's scope once first used.
struct KeyEntry {
    grant: KeyGrant,
    actor: String,
    // Opening a scope creates the organization on first access; it is done once per key.
    scope: OnceCell<OrganizationScope>,
}

/// The accepted keys, by digest.
pub(crate) struct KeyRing {
    entries: HashMap<KeyDigest, KeyEntry>,
}

impl KeyRing {
    /// The ring of `grants` (a later grant of the same key wins).
    pub(crate) fn new(grants: impl IntoIterator<Item = KeyGrant>) -> Self {
        let entries = grants
            .into_iter()
            .map(|grant| {
                let entry = KeyEntry {
                    actor: format!("key:{}", grant.name),
                    grant,
                    scope: OnceCell::new(),
                };
                (entry.grant.digest, entry)
            })
            .collect();
        Self { entries }
    }

    /// How many keys are accepted.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Failed authentications allowed per client address: a burst, then one per second.
pub const AUTH_FAILURE_BURST: u32 = 50;

/// The accepted keys (replaced whole when the keys file is read again) and the record of failed
/// authentications per client address.
pub(crate) struct Keys {
    ring: RwLock<Arc<KeyRing>>,
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl Keys {
    /// The keys of `ring`, with failed authentications limited to `failure_burst` and then one a
    /// second per address.
    pub(crate) fn new(ring: KeyRing, failure_burst: u32) -> Self {
        let burst = NonZeroU32::new(failure_burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(NonZeroU32::MIN).allow_burst(burst);
        Self {
            ring: RwLock::new(Arc::new(ring)),
            failures: RateLimiter::keyed(quota),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// The keys in force now.
    pub(crate) fn ring(&self) -> Arc<KeyRing> {
        Arc::clone(&self.ring.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `ring` in force; requests already authenticated finish with the old one.
    pub(crate) fn replace(&self, ring: KeyRing) {
        *self.ring.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
    }

    /// How long `address` must wait before its next try, while it is blocked.
    fn blocked_for(&self, address: IpAddr) -> Option<Duration> {
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        let until = *blocked.get(&address)?;
        let now = Instant::now();
        if until <= now {
            blocked.remove(&address);
            return None;
        }
        Some(until - now)
    }

    /// Records a failed authentication from `address`; the wait it must now observe when it went
    /// over its allowance.
    fn record_failure(&self, address: IpAddr) -> Option<Duration> {
        match self.failures.check_key(&address) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until
                    .wait_time_from(governor::clock::Clock::now(&DefaultClock::default()))
                    .max(Duration::from_secs(1));
                let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
                // Forget addresses whose wait is over, so the map stays small.
                let now = Instant::now();
                blocked.retain(|_, until| *until > now);
                blocked.insert(address, now + wait);
                Some(wait)
            }
        }
    }

    /// The grant of `key` presented from `address`; 401 for an unknown key, 429 (with
    /// `Retry-After`) once `address` has failed too often.
    pub(crate) fn authenticate(
        &self,
        key: Result<&str, EnvironmentError>,
        address: Option<IpAddr>,
    ) -> Result<(Arc<KeyRing>, KeyDigest), AuthRejection> {
        self.check_not_blocked(address)?;
        // No key, or a malformed header, is not a guess: refused without counting.
        let key = key?;
        let ring = self.ring();
        let key_digest = digest(key);
        if !ring.entries.contains_key(&key_digest) {
            return Err(self.refuse(
                address,
                EnvironmentError::Unauthorized {
                    detail: "invalid API key".to_owned(),
                },
            ));
        }
        Ok((ring, key_digest))
    }

    /// 429 (with `Retry-After`) while `address` must wait after failing too often.
    pub(crate) fn check_not_blocked(&self, address: Option<IpAddr>) -> Result<(), AuthRejection> {
        match address.and_then(|address| self.blocked_for(address)) {
            Some(wait) => Err(AuthRejection::TooManyFailures(wait)),
            None => Ok(()),
        }
    }

    /// A credential from `address` was refused with `error`: counted against the address, and
    /// answered 429 instead once it has failed too often. API keys and worker tokens share the
    /// allowance, so switching credential kinds does not buy more guesses.
    pub(crate) fn refuse(&self, address: Option<IpAddr>, error: EnvironmentError) -> AuthRejection {
        match address.and_then(|address| self.record_failure(address)) {
            Some(wait) => AuthRejection::TooManyFailures(wait),
            None => error.into(),
        }
    }
}

/// Why a request was not authenticated.
pub(crate) enum AuthRejection {
    /// 401, 400 or 500 in the API's error shape.
    Refused(ApiError),
    /// 429: the client's address failed too often; it may try again after this long.
    TooManyFailures(Duration),
}

impl From<EnvironmentError> for AuthRejection {
    fn from(error: EnvironmentError) -> Self {
        AuthRejection::Refused(ApiError(error))
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::Refused(error) => error.into_response(),
            AuthRejection::TooManyFailures(wait) => too_many_failures(wait),
        }
    }
}

/// 429 with `Retry-After` in whole seconds.
fn too_many_failures(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = ApiError(EnvironmentError::Api {
        status: StatusCode::TOO_MANY_REQUESTS.as_u16(),
        detail: format!("too many failed authentications from this address; retry in {seconds}s"),
    })
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

/// The separate key header some clients send instead of `Authorization`.
const USER_KEY: &str = "userkey";

/// The key a request presents: `Authorization: Bearer <key>`, `Authorization: UserKey <key>`,
/// `Authorization: <key>` alone, or a `UserKey: <key>` header.
pub(crate) fn presented_key(parts: &Parts) -> Result<&str, EnvironmentError> {
    let unauthorized = |detail: &str| EnvironmentError::Unauthorized {
        detail: detail.to_owned(),
    };
    // Two headers would leave it to the order which key is used: refused, not guessed.
    let authorizations = parts.headers.get_all(AUTHORIZATION).iter().count();
    let user_keys = parts.headers.get_all(USER_KEY).iter().count();
    if authorizations + user_keys > 1 {
        return Err(EnvironmentError::Api {
            status: 400,
            detail: "more than one Authorization or UserKey header".to_owned(),
        });
    }
    let (header, from_authorization) = match parts.headers.get(AUTHORIZATION) {
        Some(header) => (header, true),
        None => (
            parts
                .headers
                .get(USER_KEY)
                .ok_or_else(|| unauthorized("missing Authorization header"))?,
            false,
        ),
    };
    let value = header
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?
        .trim();
    let key = match value.split_once(' ') {
        Some((scheme, key)) if from_authorization => {
            if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("userkey") {
                return Err(unauthorized(
                    "expected `Authorization: Bearer <key>`, `UserKey <key>` or the key alone",
                ));
            }
            key.trim()
        }
        Some(_) => return Err(unauthorized("malformed UserKey header")),
        // A scheme without its key.
        None if value.eq_ignore_ascii_case("bearer") || value.eq_ignore_ascii_case("userkey") => "",
        // The key alone.
        None => value,
    };
    if key.is_empty() {
        return Err(unauthorized("empty API key"));
    }
    Ok(key)
}

/// The address a request came from, when the listener recorded it.
pub(crate) fn client_address(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

/// A 403 naming the role a call needs.
pub(crate) fn forbidden(needed: Role, grant: &KeyGrant) -> EnvironmentError {
    EnvironmentError::Api {
        status: StatusCode::FORBIDDEN.as_u16(),
        detail: format!(
            "this call needs the {needed} role; key {} has the {} role",
            grant.name, grant.role
        ),
    }
}

/// The authenticated key of a request: its grant, without opening an organization scope.
pub(crate) struct Authenticated(pub(crate) KeyGrant);

impl Authenticated {
    /// 403 unless the key has at least `role`.
    pub(crate) fn require(&self, role: Role) -> Result<(), EnvironmentError> {
        if self.0.role >= role {
            Ok(())
        } else {
            Err(forbidden(role, &self.0))
        }
    }
}

/// Authenticates `key` (from `parts`' address) against the keys in `state`.
pub(crate) fn authenticate_key<S>(
    parts: &Parts,
    key: Result<&str, EnvironmentError>,
    state: &S,
) -> Result<Authenticated, AuthRejection>
where
    Arc<Keys>: FromRef<S>,
{
    let keys = Arc::<Keys>::from_ref(state);
    let (ring, key_digest) = keys.authenticate(key, client_address(parts))?;
    let entry = ring.entries.get(&key_digest).ok_or_else(internal_error)?;
    Ok(Authenticated(entry.grant.clone()))
}

fn internal_error() -> EnvironmentError {
    EnvironmentError::Api {
        status: 500,
        detail: "the key ring changed".to_owned(),
    }
}

/// The organization scope of an authenticated request, with the caller recorded as its actor.
pub(crate) struct Caller {
    /// The Environments API of the key's organization.
    pub(crate) scope: OrganizationScope,
    /// The key's grant.
    pub(crate) grant: KeyGrant,
}

impl Caller {
    /// 403 unless the key has at least `role`.
    pub(crate) fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.grant.role >= role {
            Ok(())
        } else {
            Err(ApiError(forbidden(role, &self.grant)))
        }
    }
}

// Generic over the router's state (through `FromRef`) so that this module need not know it.
impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<Keys>: FromRef<S>,
    ControlPlane: FromRef<S>,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthRejection> {
        let keys = Arc::<Keys>::from_ref(state);
        let (ring, key_digest) = keys.authenticate(presented_key(parts), client_address(parts))?;
        let control_plane = ControlPlane::from_ref(state);
        let entry = ring.entries.get(&key_digest).ok_or_else(internal_error)?;
        let scope = entry
            .scope
            .get_or_try_init(|| async {
                let scope = control_plane
                    .organization(&entry.grant.organization)
                    .await?;
                Ok::<_, EnvironmentError>(scope.with_actor(entry.actor.clone()))
            })
            .await?;
        Ok(Caller {
            scope: scope.clone(),
            grant: entry.grant.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_fingerprint_hide_the_key() {
        let key = ApiKey::new("sk-secret-value").expect("valid key");
        let shown = format!("{key:?} {}", key.fingerprint());
        assert!(!shown.contains("sk-secret-value"));
        assert!(key.fingerprint().starts_with("key:"));
        assert_eq!(key.fingerprint().len(), "key:".len() + 8);
        // Stable: the same key always has the same fingerprint, another key another one.
        assert_eq!(
            key.fingerprint(),
            ApiKey::new("sk-secret-value").expect("valid").fingerprint()
        );
        assert_ne!(
            key.fingerprint(),
            ApiKey::new("sk-other").expect("valid").fingerprint()
        );
    }

    #[test]
    fn roles_order_and_digests_parse() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Admin);
        assert_eq!("Editor".parse::<Role>(), Ok(Role::Editor));
        assert!("owner".parse::<Role>().is_err());
        let key = ApiKey::new("sk-1").expect("valid");
        let from_key = KeyGrant::from_key(&key, OrganizationId("o".into()), Role::Viewer);
        let from_digest = KeyGrant::from_digest(
            "ci".into(),
            OrganizationId("o".into()),
            Role::Viewer,
            &key_digest_text("sk-1"),
        )
        .expect("a digest");
        assert!(from_key.same_key(&from_digest));
        assert!(!format!("{from_digest:?}").contains(&key_digest_text("sk-1")[7..]));
        for bad in ["abc", "sha256:zz", "sha256:00"] {
            assert!(
                KeyGrant::from_digest("x".into(), OrganizationId("o".into()), Role::Admin, bad)
                    .is_err()
            );
        }
    }

    #[test]
    fn failed_authentications_are_limited_per_address() {
        let keys = Keys::new(KeyRing::new([]), 3);
        let address: IpAddr = [10, 0, 0, 1].into();
        let bad = || Ok("wrong-key");
        for _ in 0..3 {
            let refused = keys
                .authenticate(bad(), Some(address))
                .err()
                .expect("401")
                .into_response();
            assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        }
        let refused = keys
            .authenticate(bad(), Some(address))
            .err()
            .expect("429")
            .into_response();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.headers().contains_key(RETRY_AFTER));
        // Blocked: even a key that would be valid waits.
        assert_eq!(
            keys.authenticate(Ok("anything"), Some(address))
                .err()
                .expect("429")
                .into_response()
                .status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        // Another address is not affected.
        let other: IpAddr = [10, 0, 0, 2].into();
        assert_eq!(
            keys.authenticate(bad(), Some(other))
                .err()
                .expect("401")
                .into_response()
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn refuses_unusable_keys() {
        assert_eq!(ApiKey::new(""), Err(ApiKeyError::Empty));
        assert_eq!(
            ApiKey::new("has space"),
            Err(ApiKeyError::InvalidCharacters)
        );
        assert_eq!(
            ApiKey::new("tab\there"),
            Err(ApiKeyError::InvalidCharacters)
        );
    }

    fn parts_with(header: Option<&str>) -> Parts {
        let mut builder = axum::http::Request::builder();
        if let Some(value) = header {
            builder = builder.header(AUTHORIZATION, value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    #[test]
    fn reads_bearer_and_userkey_headers() {
        assert_eq!(
            presented_key(&parts_with(Some("Bearer abc"))).expect("bearer"),
            "abc"
        );
        assert_eq!(
            presented_key(&parts_with(Some("UserKey abc"))).expect("userkey"),
            "abc"
        );
        assert_eq!(
            presented_key(&parts_with(Some("bearer  abc "))).expect("lenient"),
            "abc"
        );
        assert_eq!(
            presented_key(&parts_with(Some("abc"))).expect("the key alone"),
            "abc"
        );
        let mut parts = parts_with(None);
        parts
            .headers
            .insert(USER_KEY, HeaderValue::from_static("abc"));
        assert_eq!(presented_key(&parts).expect("UserKey header"), "abc");
        parts
            .headers
            .insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert!(matches!(
            presented_key(&parts),
            Err(EnvironmentError::Api { status: 400, .. })
        ));
        for header in [None, Some("Basic abc"), Some("Bearer"), Some("Bearer   ")] {
            assert!(matches!(
                presented_key(&parts_with(header)),
                Err(EnvironmentError::Unauthorized { .. })
            ));
        }
    }
}
