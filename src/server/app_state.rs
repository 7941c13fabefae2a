//! What every handler shares: the router's state and the extractor of an environment's `{id}`.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Path};
use axum::http::request::Parts;

use super::auth::Keys;
use super::json::ApiError;
use crate::api::{EnvironmentError, EnvironmentId};
use crate::control_plane::ControlPlane;
use crate::control_plane::state_service::StateService;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    /// The service's rules.
    pub(crate) control_plane: ControlPlane,
    /// The accepted API keys.
    pub(crate) keys: Arc<Keys>,
    /// The HTTP state backend's rules.
    pub(crate) state_service: StateService,
    /// The Temporal server namespaces are provisioned on (`--temporal-address`), if any.
    pub(crate) temporal: Option<Arc<crate::temporal::TemporalProvisioner>>,
    /// The OpenAPI document, rendered once.
    pub(crate) openapi: Arc<str>,
}

impl FromRef<AppState> for Arc<Keys> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.keys)
    }
}

impl FromRef<AppState> for ControlPlane {
    fn from_ref(state: &AppState) -> Self {
        state.control_plane.clone()
    }
}

/// The `{id}` of an environment route; a malformed id is the same 404 as an unknown one.
pub(super) struct EnvironmentPath(pub(super) EnvironmentId);

impl<S: Send + Sync> FromRequestParts<S> for EnvironmentPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let not_found = || {
            ApiError(EnvironmentError::NotFound {
                detail: "Environment not found".to_owned(),
            })
        };
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| not_found())?;
        id.parse().map(EnvironmentPath).map_err(|_| not_found())
    }
}
