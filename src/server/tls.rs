//! TLS for `envform serve` (`--tls-cert`, `--tls-key`): rustls with the ring provider, HTTP/2
//! or HTTP/1.1 chosen by ALPN. The certificate and key are read once, at start, so a missing or
//! unusable file stops the server before it listens, with the file named.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use super::listen::Acceptor;

/// The PEM files of the server's certificate chain and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key of the leaf certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file cannot be read or holds no PEM certificate.
    #[error("cannot use the TLS certificate file {}: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file cannot be read or holds no PEM private key.
    #[error("cannot use the TLS key file {}: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key does not belong to the certificate, or rustls refuses the pair.
    #[error(
        "the TLS key {} does not fit the certificate {}: {reason}",
        key.display(),
        cert.display()
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
}

/// Accepts TLS connections with one certificate; HTTP/2 or HTTP/1.1 by ALPN.
#[derive(Clone)]
pub(crate) struct Tls(TlsAcceptor);

impl Tls {
    /// Reads and checks `files`.
    pub(crate) fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let chain = read_chain(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|error| TlsError::Key {
            path: files.key.clone(),
            reason: pem_reason(&error, "PRIVATE KEY"),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mismatch = |error: rustls::Error| TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason: error.to_string(),
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(mismatch)?
            .with_no_client_auth()
            // Checks that the key's public half is the leaf certificate's.
            .with_single_cert(chain, key)
            .map_err(mismatch)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self(TlsAcceptor::from(Arc::new(config))))
    }
}

/// The certificates of a PEM file, at least one.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let invalid = |reason: String| TlsError::Certificate {
        path: path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|error| invalid(pem_reason(&error, "CERTIFICATE")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(pem_reason(&error, "CERTIFICATE")))?;
    if chain.is_empty() {
        return Err(invalid("it holds no PEM `CERTIFICATE` block".to_owned()));
    }
    Ok(chain)
}

/// A PEM reading error in words; `kind` names the block that was looked for.
fn pem_reason(error: &rustls::pki_types::pem::Error, kind: &str) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::Io(error) => error.to_string(),
        Error::NoItemsFound => format!("it holds no PEM `{kind}` block"),
        other => format!("it is not valid PEM: {other}"),
    }
}

impl Acceptor for Tls {
    type Stream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

    async fn accept(&self, stream: tokio::net::TcpStream) -> Option<Self::Stream> {
        match self.0.accept(stream).await {
            Ok(stream) => Some(stream),
            Err(error) => {
                // Plain HTTP to the TLS port, a scanner, an untrusted certificate: the client's
                // problem, not the server's.
                tracing::debug!(%error, "TLS handshake failed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").unwrap();
        let missing = dir.path().join("missing.pem");
        let error = Tls::load(&TlsFiles {
            cert: missing.clone(),
            key: empty.clone(),
        })
        .err()
        .unwrap()
        .to_string();
        assert!(
            error.contains("certificate file") && error.contains("missing.pem"),
            "{error}"
        );
        let error = Tls::load(&TlsFiles {
            cert: empty.clone(),
            key: empty,
        })
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("no PEM `CERTIFICATE` block"), "{error}");
    }
}
