//! `envform serve --tls-cert --tls-key`: a self-signed certificate made here (rcgen), HTTP/1.1
//! and HTTP/2 (by ALPN) round trips, the real `envform` client trusting the certificate through
//! `SSL_CERT_FILE`, plain HTTP to the TLS port refused without harm, and unusable certificate
//! or key files refused at start with the file named.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{KEY_A, Server, ServerOptions, envform, write_file};

/// A self-signed certificate for `127.0.0.1` and `localhost`: its PEM file, its key's PEM file
/// and the certificate's PEM text.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("a self-signed certificate");
    let cert_pem = certified.cert.pem();
    let cert = write_file(dir, &format!("{name}.crt"), &cert_pem);
    let key = write_file(
        dir,
        &format!("{name}.key"),
        &certified.signing_key.serialize_pem(),
    );
    (cert, key, cert_pem)
}

fn tls_options(cert: &Path, key: &Path) -> ServerOptions {
    Server::options().args([
        "--tls-cert",
        &cert.display().to_string(),
        "--tls-key",
        &key.display().to_string(),
    ])
}

/// A client that trusts `cert_pem` only.
fn client(cert_pem: &str, http1_only: bool) -> reqwest::Client {
    envform::api::install_crypto_provider();
    let certificate = reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(certificate)
        .timeout(Duration::from_secs(20));
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_round_trips_over_http1_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, cert_pem) = self_signed(dir.path(), "server");
    let server = tls_options(&cert, &key).start(&dir.path().join("serve.db"));
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    let http1 = client(&cert_pem, true);
    let response = http1
        .post(format!("{}/api/v1/environments", server.url))
        .bearer_auth(KEY_A)
        .json(&json!({"name": "over-tls"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status().as_u16(), 201);

    let http2 = client(&cert_pem, false);
    let response = http2
        .get(format!("{}/api/v1/environments", server.url))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.version(),
        reqwest::Version::HTTP_2,
        "ALPN chose h2"
    );
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let names: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|environment| environment["name"].as_str())
        .collect();
    assert!(names.contains(&"over-tls"), "{body}");

    // A client that does not trust the certificate is refused by its own verifier.
    envform::api::install_crypto_provider();
    let untrusting = reqwest::Client::new();
    let refused = untrusting
        .get(format!("{}/health", server.url))
        .send()
        .await;
    assert!(refused.is_err(), "an untrusted certificate was accepted");

    // Plain HTTP to the TLS port fails at once, and the server goes on serving.
    let plain_url = server.url.replacen("https://", "http://", 1);
    let started = Instant::now();
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("{plain_url}/health"))
        .bearer_auth(KEY_A)
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "plain HTTP hung"
    );
    let response = http2
        .get(format!("{}/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        !server.log().contains("panicked"),
        "the server panicked:\n{}",
        server.log()
    );
}

#[test]
fn the_envform_client_lists_environments_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = self_signed(dir.path(), "server");
    let server = tls_options(&cert, &key).start(&dir.path().join("serve.db"));
    let created = server
        .envform(dir.path())
        .env("SSL_CERT_FILE", &cert)
        .args(["env", "create", "--name", "secure", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let listed = server
        .envform(dir.path())
        .env("SSL_CERT_FILE", &cert)
        .args(["env", "list", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let environments: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<&str> = environments
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|environment| environment["name"].as_str())
        .collect();
    assert!(names.contains(&"secure"), "{environments}");

    // Without the certificate trusted, the client refuses the server.
    let (other_cert, _, _) = self_signed(dir.path(), "other");
    let refused = server
        .envform(dir.path())
        .env("SSL_CERT_FILE", &other_cert)
        .args(["env", "list", "-o", "json"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());
}

#[test]
fn unusable_certificate_or_key_files_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = self_signed(dir.path(), "server");
    let (_, other_key, _) = self_signed(dir.path(), "other");
    let garbage = write_file(dir.path(), "garbage.pem", "not a PEM file\n");
    let missing = dir.path().join("missing.pem");
    let db = dir.path().join("serve.db");
    let cases: [(&Path, &Path, &str); 4] = [
        (&missing, &key, "cannot use the TLS certificate file"),
        (&cert, &missing, "cannot use the TLS key file"),
        (&garbage, &key, "no PEM `CERTIFICATE` block"),
        (&cert, &other_key, "does not fit the certificate"),
    ];
    for (cert_path, key_path, expected) in cases {
        let output = tls_options(cert_path, key_path).refused(&db);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let flat = stderr
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            flat.contains(expected),
            "expected {expected:?} in:\n{stderr}"
        );
        let named = if expected.contains("key file") {
            key_path
        } else {
            cert_path
        };
        let file_name = named.file_name().unwrap().to_string_lossy();
        assert!(
            flat.contains(&*file_name),
            "{file_name} not named:\n{stderr}"
        );
        assert!(output.stdout.is_empty(), "it announced a URL");
    }
    // Only one of the pair is refused by the flags themselves.
    let output = envform(dir.path())
        .args(["serve", "--api-key", "k=org", "--tls-cert"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--tls-key"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
