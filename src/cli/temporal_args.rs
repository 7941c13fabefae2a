//! The flags that say how to reach Temporal, shared by `envform serve` and `envform worker
//! start`, and their resolution into a [`TemporalConfig`] (reading the TLS files).

use std::path::{Path, PathBuf};

use miette::{IntoDiagnostic, WrapErr};
use secrecy::SecretString;

use crate::temporal::{TemporalConfig, TemporalTls};

/// TLS and API key towards Temporal (self-hosted clusters with TLS, Temporal Cloud).
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct TemporalConnectArgs {
    /// PEM file of the CA that signed the Temporal server's certificate (turns TLS on; the
    /// system's roots when TLS is on without it).
    #[arg(long, value_name = "PATH")]
    pub(crate) temporal_tls_ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --temporal-tls-key).
    #[arg(long, value_name = "PATH", requires = "temporal_tls_key")]
    pub(crate) temporal_tls_cert: Option<PathBuf>,
    /// PEM private key of --temporal-tls-cert.
    #[arg(long, value_name = "PATH", requires = "temporal_tls_cert")]
    pub(crate) temporal_tls_key: Option<PathBuf>,
    /// The server name to verify, when it is not the address's host.
    #[arg(long, value_name = "NAME")]
    pub(crate) temporal_tls_server_name: Option<String>,
    /// Temporal Cloud API key (or ENVFORM_TEMPORAL_API_KEY, which keeps it out of the process
    /// list); implies TLS.
    #[arg(
        long,
        env = "ENVFORM_TEMPORAL_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub(crate) temporal_api_key: Option<SecretString>,
}

impl TemporalConnectArgs {
    /// A configuration for `address` with these TLS settings and API key.
    pub(crate) fn resolve(&self, address: &str) -> miette::Result<TemporalConfig> {
        let address = address.trim();
        if address.is_empty() || address.contains("://") || !address.contains(':') {
            return Err(miette::miette!(
                code = "envform::temporal::address",
                help = "write it as HOST:PORT, e.g. 127.0.0.1:7233",
                "`{address}` is not a Temporal address"
            ));
        }
        let mut config = TemporalConfig::new(address);
        let tls_wanted = self.temporal_tls_ca.is_some()
            || self.temporal_tls_cert.is_some()
            || self.temporal_tls_server_name.is_some();
        if tls_wanted {
            let client_cert = match (&self.temporal_tls_cert, &self.temporal_tls_key) {
                (Some(cert), Some(key)) => Some((
                    read(cert, "--temporal-tls-cert")?,
                    SecretString::from(
                        String::from_utf8(read(key, "--temporal-tls-key")?)
                            .into_diagnostic()
                            .wrap_err("--temporal-tls-key is not a PEM text file")?,
                    ),
                )),
                _ => None,
            };
            config.tls = Some(TemporalTls {
                server_ca: self
                    .temporal_tls_ca
                    .as_deref()
                    .map(|path| read(path, "--temporal-tls-ca"))
                    .transpose()?,
                client_cert,
                domain: self.temporal_tls_server_name.clone(),
            });
        }
        config.api_key = self.temporal_api_key.clone();
        Ok(config)
    }
}

fn read(path: &Path, flag: &str) -> miette::Result<Vec<u8>> {
    std::fs::read(path)
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot read {flag} {}", path.display()))
}

/// Whether `name` can be the start of a Temporal namespace name: letters, digits, `-`, `_`
/// and `.`, starting with a letter or digit.
pub(crate) fn check_namespace_part(name: &str, flag: &str) -> miette::Result<()> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(miette::miette!(
            code = "envform::temporal::namespace",
            help = "use letters, digits, `-`, `_` and `.`, starting with a letter or digit",
            "{flag} `{name}` is not a valid Temporal namespace name"
        ))
    }
}
