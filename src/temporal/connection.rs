//! How envform reaches a Temporal server: address, TLS, API key, and the names it uses there.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use temporalio_client::{
    Client, ClientOptions, ClientTlsOptions, Connection, ConnectionOptions, TlsOptions, Url,
};

/// How long one connection attempt may take before it counts as Temporal unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS towards Temporal (self-hosted clusters with their own CA, mTLS, Temporal Cloud).
#[derive(Clone, Default)]
pub struct TemporalTls {
    /// PEM of the CA that signed the server's certificate; the system roots when `None`.
    pub server_ca: Option<Vec<u8>>,
    /// PEM client certificate and key, for mTLS.
    pub client_cert: Option<(Vec<u8>, SecretString)>,
    /// The server name to verify, when it differs from the address's host.
    pub domain: Option<String>,
}

/// Everything `envform serve --temporal-address` and `envform worker start` need to reach
/// Temporal.
#[derive(Clone)]
pub struct TemporalConfig {
    /// `HOST:PORT` of the frontend.
    pub address: String,
    /// Organization namespaces are `<prefix><organization>`.
    pub namespace_prefix: String,
    /// The namespace envform serve runs its provisioning workflows in (registered if missing).
    pub system_namespace: String,
    /// Workflow execution retention of the namespaces envform registers.
    pub retention: Duration,
    /// TLS; plain text when `None` and no API key is given.
    pub tls: Option<TemporalTls>,
    /// Temporal Cloud API key (sent as a bearer token; implies TLS).
    pub api_key: Option<SecretString>,
    /// The identity envform reports to Temporal (pollers and workflow starts).
    pub identity: String,
}

impl fmt::Debug for TemporalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemporalConfig")
            .field("address", &self.address)
            .field("namespace_prefix", &self.namespace_prefix)
            .field("system_namespace", &self.system_namespace)
            .field("retention", &self.retention)
            .field("tls", &self.tls.is_some())
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The namespace envform serve uses for itself by default: a dot never appears in an
/// organization's namespace, so no organization can collide with it.
pub const DEFAULT_SYSTEM_NAMESPACE: &str = "envform.system";

impl TemporalConfig {
    /// A plain-text configuration for `address` with the default prefix, system namespace and
    /// retention.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            namespace_prefix: "envform-".to_owned(),
            system_namespace: DEFAULT_SYSTEM_NAMESPACE.to_owned(),
            retention: Duration::from_secs(3 * 24 * 3600),
            tls: None,
            api_key: None,
            identity: format!("envform@{}", crate::local::host_name()),
        }
    }

    /// The organization's namespace name.
    pub fn organization_namespace(&self, organization: &crate::api::OrganizationId) -> String {
        crate::control_plane::namespace_name_with_prefix(&self.namespace_prefix, organization)
    }

    /// The URL the SDK connects to: `https` when TLS or an API key is configured.
    fn url(&self) -> Result<Url, String> {
        let scheme = if self.tls.is_some() || self.api_key.is_some() {
            "https"
        } else {
            "http"
        };
        let text = format!("{scheme}://{}", self.address);
        Url::parse(&text)
            .map_err(|error| format!("`{}` is not a Temporal address: {error}", self.address))
    }

    /// Connects to Temporal; the error is Temporal's (or the network's) message.
    pub async fn connect(&self) -> Result<Connection, String> {
        let tls = self.tls.as_ref().map(|tls| {
            let client = tls.client_cert.as_ref().map(|(cert, key)| {
                ClientTlsOptions::builder()
                    .client_cert(cert.clone())
                    .client_private_key(key.expose_secret().as_bytes().to_vec())
                    .build()
            });
            TlsOptions::builder()
                .maybe_server_root_ca_cert(tls.server_ca.clone())
                .maybe_domain(tls.domain.clone())
                .maybe_client_tls_options(client)
                .build()
        });
        // An API key turns TLS on by itself (with the system roots).
        let options = ConnectionOptions::new(self.url()?)
            .identity(self.identity.clone())
            .maybe_tls_options(tls)
            .maybe_api_key(
                self.api_key
                    .as_ref()
                    .map(|key| key.expose_secret().to_owned()),
            )
            .connect_timeout(CONNECT_TIMEOUT)
            .build();
        Connection::connect(options).await.map_err(|error| {
            format!(
                "cannot reach Temporal at {}: {}",
                self.address,
                crate::local::error_chain(&error)
            )
        })
    }

    /// A client of `namespace` on `connection`.
    pub(crate) fn client(connection: &Connection, namespace: &str) -> Result<Client, String> {
        Client::new(connection.clone(), ClientOptions::new(namespace).build())
            .map_err(|error| format!("cannot make a Temporal client for `{namespace}`: {error}"))
    }
}
