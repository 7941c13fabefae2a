//! Settings of a remote state backend, as the desired file states them and the backend reads them.

/// Settings of the HTTP state backend (Terraform's names). The password is never in the file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpBackendConfig {
    /// State address (GET/POST).
    pub address: String,
    /// Lock address; defaults to `address`.
    pub lock_address: Option<String>,
    /// Unlock address; defaults to `address`.
    pub unlock_address: Option<String>,
    /// Lock method; default `LOCK`.
    pub lock_method: Option<String>,
    /// Unlock method; default `UNLOCK`.
    pub unlock_method: Option<String>,
    /// Basic-auth user name.
    pub username: Option<String>,
}

impl HttpBackendConfig {
    /// The environment variable that holds the HTTP backend's basic-auth password.
    pub const PASSWORD_VARIABLE: &'static str = "ENVFORM_STATE_PASSWORD";
}
