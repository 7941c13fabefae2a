//! Who is calling: the API key of a request, the organization it acts for, and the actor recorded
//! on changes (a fingerprint of the key, never the key).
//!
//! Keys are held as SHA-256 digests and looked up by digest, so a request's key is never compared
//! byte by byte against a stored secret, and no key is kept in plain text after start.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
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

type KeyDigest = [u8; 32];

fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

fn fingerprint(digest: &KeyDigest) -> String {
    format!("key:{}", hex::encode(&digest[..4]))
}

/// One accepted key: its organization, and the organization's scope once first used.
struct KeyEntry {
    organization: OrganizationId,
    actor: String,
    // Opening a scope creates the organization on first access; it is done once per key.
    scope: OnceCell<OrganizationScope>,
}

/// The accepted keys, by digest.
pub(crate) struct KeyRing {
    entries: HashMap<KeyDigest, KeyEntry>,
}

impl KeyRing {
    /// The ring of `keys`.
    pub(crate) fn new(keys: BTreeMap<ApiKey, OrganizationId>) -> Self {
        let entries = keys
            .into_iter()
            .map(|(key, organization)| {
                let digest = digest(key.expose());
                let entry = KeyEntry {
                    organization,
                    actor: fingerprint(&digest),
                    scope: OnceCell::new(),
                };
                (digest, entry)
            })
            .collect();
        Self { entries }
    }

    /// The organization an accepted key acts for, without opening its scope.
    pub(crate) fn organization_of(&self, key: &str) -> Option<&OrganizationId> {
        self.entries
            .get(&digest(key))
            .map(|entry| &entry.organization)
    }
}

/// The key of an `Authorization: Bearer <key>` or `Authorization: UserKey <key>` header.
pub(crate) fn presented_key(parts: &Parts) -> Result<&str, EnvironmentError> {
    let unauthorized = |detail: &str| EnvironmentError::Unauthorized {
        detail: detail.to_owned(),
    };
    // Two headers would leave it to the order which key is used: refused, not guessed.
    if parts.headers.get_all(AUTHORIZATION).iter().count() > 1 {
        return Err(EnvironmentError::Api {
            status: 400,
            detail: "more than one Authorization header".to_owned(),
        });
    }
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing Authorization header"))?;
    let value = header
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?;
    let (scheme, key) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| unauthorized("expected `Authorization: Bearer <key>` or `UserKey <key>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("userkey") {
        return Err(unauthorized(
            "expected `Authorization: Bearer <key>` or `UserKey <key>`",
        ));
    }
    let key = key.trim();
    if key.is_empty() {
        return Err(unauthorized("empty API key"));
    }
    Ok(key)
}

/// The organization scope of an authenticated request, with the caller recorded as its actor.
pub(crate) struct Caller {
    /// The Environments API of the key's organization.
    pub(crate) scope: OrganizationScope,
}

// Generic over the router's state (through `FromRef`) so that this module need not know it.
impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<KeyRing>: FromRef<S>,
    ControlPlane: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let key = presented_key(parts)?;
        let keys = Arc::<KeyRing>::from_ref(state);
        let control_plane = ControlPlane::from_ref(state);
        let entry =
            keys.entries
                .get(&digest(key))
                .ok_or_else(|| EnvironmentError::Unauthorized {
                    detail: "invalid API key".to_owned(),
                })?;
        let scope = entry
            .scope
            .get_or_try_init(|| async {
                let scope = control_plane.organization(&entry.organization).await?;
                Ok::<_, EnvironmentError>(scope.with_actor(entry.actor.clone()))
            })
            .await?;
        Ok(Caller {
            scope: scope.clone(),
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
        for header in [None, Some("Basic abc"), Some("Bearer"), Some("Bearer   ")] {
            assert!(matches!(
                presented_key(&parts_with(header)),
                Err(EnvironmentError::Unauthorized { .. })
            ));
        }
    }
}
