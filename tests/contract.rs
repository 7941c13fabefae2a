//! The contract of docs/src/concepts/service.md, written once and run against two implementations of
//! `EnvironmentsApi`: the embedded control plane on a temporary SQLite file, and the SDK
//! (`ControlPlaneClient`) talking to a real `envform serve` process on 127.0.0.1:0, itself run
//! on each store (a SQLite file, and a database of the run's PostgreSQL cluster). A third part
//! checks what only the wire shows: exact status codes, the three error body shapes, auth, body
//! limits, malformed ids, and that a restart keeps everything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use envform::api::{
    CreateEnvironment, Environment, EnvironmentError, EnvironmentId, EnvironmentsApi,
    ExecutionEnvironment, JsonMap, OrganizationId, Patch, Status, UpdateEnvironment,
};
use envform::control_plane::{ControlPlane, ControlPlaneConfig};
use serde_json::json;
use tempfile::TempDir;

use crate::openapi::CheckingProxy;
use crate::support::{Scenario, Server, ServerOptions, sdk_client};

pub(crate) use crate::support::{KEY_A, KEY_B};
pub(crate) const KEY_FAIL: &str = "contract-key-fail";
pub(crate) const ORG_A: &str = "org-a";
pub(crate) const ORG_B: &str = "org-b";
pub(crate) const ORG_FAIL: &str = "org-fail";

// ---------------------------------------------------------------------------------------------
// A real `envform serve` process.

/// Options of an `envform serve` with keys for org-a, org-b and org-fail (whose provisioning
/// fails).
pub(crate) fn serve_options() -> ServerOptions {
    Server::options()
        .key(KEY_FAIL, ORG_FAIL)
        .args(["--provision-fail", ORG_FAIL])
}

/// A plain HTTP client (no SDK), for what only the wire shows.
pub(crate) struct Wire {
    http: reqwest::Client,
    base: String,
}

/// One raw answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) text: String,
}

impl Answer {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {:?}", self.text))
    }

    /// Asserts the status and that the body is `{"detail": <string>}`.
    fn assert_string_detail(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(self.json()["detail"].is_string(), "{}", self.text);
    }
}

impl Wire {
    pub(crate) fn new(base: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            http: reqwest::Client::builder().build().expect("http client"),
            base: base.to_owned(),
        }
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let method_of = method.clone();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        // Every answer is what the OpenAPI document says it is.
        crate::openapi::check_answer(&method_of, path, status, &text);
        Answer { status, text }
    }

    pub(crate) async fn get(&self, path: &str, key: &str) -> Answer {
        self.send(
            reqwest::Method::GET,
            path,
            Some(&format!("Bearer {key}")),
            None,
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// The two targets of the contract suite.

/// How the service under test is set up.
#[derive(Clone, Copy, Default)]
struct Options {
    provision_delay: Option<Duration>,
}

/// The database behind a served target.
#[derive(Clone, Copy)]
enum Database {
    /// A SQLite file, the default.
    Sqlite,
    /// A fresh database of the test run's PostgreSQL cluster.
    Postgres,
}

/// The API of three organizations on one service: two ordinary ones and one whose namespace
/// provisioning fails.
struct Target {
    a: Arc<dyn EnvironmentsApi>,
    b: Arc<dyn EnvironmentsApi>,
    failing: Arc<dyn EnvironmentsApi>,
    backend: Backend,
    _dir: TempDir,
}

enum Backend {
    Embedded(ControlPlane),
    /// The SDK talks to the server through a proxy that checks each answer against the OpenAPI
    /// document.
    Http(Box<Server>, CheckingProxy),
}

impl Target {
    async fn embedded(options: Options) -> Self {
        let dir = TempDir::new().expect("temp dir");
        let mut config = ControlPlaneConfig::default();
        if let Some(delay) = options.provision_delay {
            config.provisioner.delay = delay;
        }
        config
            .provisioner
            .fail_organizations
            .insert(OrganizationId(ORG_FAIL.to_owned()));
        let control_plane = ControlPlane::open_sqlite(&dir.path().join("embedded.db"), config)
            .await
            .expect("open the embedded control plane");
        let scope = |org: &str| {
            let control_plane = control_plane.clone();
            let org = OrganizationId(org.to_owned());
            async move {
                let scope = control_plane
                    .organization(&org)
                    .await
                    .expect("organization scope")
                    .with_actor("contract-suite".to_owned());
                Arc::new(scope) as Arc<dyn EnvironmentsApi>
            }
        };
        Self {
            a: scope(ORG_A).await,
            b: scope(ORG_B).await,
            failing: scope(ORG_FAIL).await,
            backend: Backend::Embedded(control_plane),
            _dir: dir,
        }
    }

    async fn http(options: Options, database: Database) -> Self {
        let dir = TempDir::new().expect("temp dir");
        let mut serve = serve_options();
        if let Database::Postgres = database {
            serve = serve.postgres(&crate::postgres::database());
        }
        if let Some(delay) = options.provision_delay {
            serve = serve.args(["--provision-delay", &format!("{}ms", delay.as_millis())]);
        }
        let server = serve.start(&dir.path().join("serve.db"));
        let proxy = CheckingProxy::start(server.url()).await;
        Self {
            a: Arc::new(sdk_client(proxy.url(), KEY_A)),
            b: Arc::new(sdk_client(proxy.url(), KEY_B)),
            failing: Arc::new(sdk_client(proxy.url(), KEY_FAIL)),
            backend: Backend::Http(Box::new(server), proxy),
            _dir: dir,
        }
    }

    async fn finish(self) {
        match self.backend {
            Backend::Embedded(control_plane) => control_plane.shutdown().await,
            Backend::Http(mut server, proxy) => {
                assert!(
                    proxy.finish() > 0,
                    "the SDK's answers went through the proxy"
                );
                let status = server.terminate();
                assert!(status.success(), "envform serve exited with {status}");
            }
        }
    }
}

/// Runs each check against both targets, as its own test.
macro_rules! contract {
    ($($check:ident $(($options:expr))?;)*) => {
        mod embedded {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    let target = Target::embedded(contract!(@options $($options)?)).await;
                    checks::$check(&target).await;
                    target.finish().await;
                }
            )*
        }
        mod http {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    let options = contract!(@options $($options)?);
                    let target = Target::http(options, Database::Sqlite).await;
                    checks::$check(&target).await;
                    target.finish().await;
                }
            )*
        }
        mod http_postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    let options = contract!(@options $($options)?);
                    let target = Target::http(options, Database::Postgres).await;
                    checks::$check(&target).await;
                    target.finish().await;
                }
            )*
        }
    };
    (@options) => { Options::default() };
    (@options $options:expr) => { $options };
}

contract! {
    default_environment_exists;
    create_get_and_list;
    update_is_partial_and_replaces_fields_whole;
    delete_then_not_found;
    default_cannot_be_deleted;
    duplicate_names_conflict;
    organizations_are_isolated;
    unknown_id_is_not_found;
    status_filter;
    worker_command_and_token_secrecy;
    invalid_bodies_are_rejected;
    provisioning_then_active(Options { provision_delay: Some(Duration::from_millis(1500)) });
    provisioning_failure;
}

// ---------------------------------------------------------------------------------------------
// Helpers of the checks.

fn map(value: serde_json::Value) -> JsonMap {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn by_name<'a>(environments: &'a [Environment], name: &str) -> &'a Environment {
    environments
        .iter()
        .find(|environment| environment.name == name)
        .unwrap_or_else(|| panic!("no environment named {name}"))
}

/// Waits until no environment of the organization is provisioning.
async fn settle(api: &dyn EnvironmentsApi) -> Vec<Environment> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let environments = api.list(None).await.expect("list");
        if environments.iter().all(|env| env.status.is_settled()) {
            return environments;
        }
        assert!(
            Instant::now() < deadline,
            "still provisioning: {environments:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, EnvironmentError>) {
    assert!(
        matches!(result, Err(EnvironmentError::NotFound { .. })),
        "expected 404, got {result:?}"
    );
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, EnvironmentError>) {
    assert!(
        matches!(result, Err(EnvironmentError::Conflict { .. })),
        "expected 409, got {result:?}"
    );
}

/// Asserts a 422 naming the field at `path` (dotted, without `body`).
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, EnvironmentError>, path: &str) {
    match result {
        Err(EnvironmentError::Validation { errors }) => assert!(
            errors.iter().any(|error| error.path() == path),
            "no error at {path}: {errors:?}"
        ),
        other => panic!("expected 422 at {path}, got {other:?}"),
    }
}

fn full_environment(name: &str) -> CreateEnvironment {
    CreateEnvironment {
        name: name.to_owned(),
        display_name: None,
        description: Some("Staging environment for testing".to_owned()),
        status: Some(Status::Active),
        configuration: Some(map(
            json!({"max_workers": 10, "timeout_seconds": 3600, "region": "eu"}),
        )),
        metadata: Some(map(
            json!({"team": "platform", "cost_center": "engineering"}),
        )),
        tags: Some(vec!["stage".to_owned(), "eu".to_owned()]),
        settings: Some(map(json!({"retention_days": 7}))),
        execution_environment: Some(ExecutionEnvironment {
            env_vars: map(json!({"LOG_LEVEL": "debug"})),
            secrets: vec!["db-password".to_owned()],
            integration_ids: vec!["github".to_owned()],
            mcp_servers: JsonMap::new(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The checks.

mod checks {
    use super::*;

    pub(super) async fn default_environment_exists(target: &Target) {
        let environments = settle(target.a.as_ref()).await;
        assert_eq!(environments.len(), 1, "{environments:?}");
        let default = &environments[0];
        assert_eq!(default.name, "default");
        assert_eq!(default.status, Status::Active);
        assert_eq!(
            default.organization_id,
            Some(OrganizationId(ORG_A.to_owned()))
        );
        assert_eq!(
            &target.a.get(default.id).await.expect("get default"),
            default
        );
    }

    pub(super) async fn create_get_and_list(target: &Target) {
        settle(target.a.as_ref()).await;
        let data = full_environment("staging");
        let created = target.a.create(&data).await.expect("create");
        assert_eq!(created.name, "staging");
        assert_eq!(created.display_name.as_deref(), Some("staging"));
        assert_eq!(created.description, data.description);
        assert_eq!(created.status, Status::Active);
        assert_eq!(created.configuration, data.configuration);
        assert_eq!(created.metadata, data.metadata);
        assert_eq!(created.tags, data.tags);
        assert_eq!(created.settings, data.settings);
        assert_eq!(
            created.execution_environment.as_deref(),
            data.execution_environment.as_ref()
        );
        assert_eq!(
            created.organization_id,
            Some(OrganizationId(ORG_A.to_owned()))
        );
        let (Some(created_at), Some(updated_at)) = (created.created_at, created.updated_at) else {
            panic!("timestamps missing: {created:?}");
        };
        assert!(created_at <= updated_at);
        assert_eq!(target.a.get(created.id).await.expect("get"), created);

        let mut named = CreateEnvironment::named("production");
        named.display_name = Some("Production".to_owned());
        let production = target.a.create(&named).await.expect("create production");
        assert_eq!(production.display_name.as_deref(), Some("Production"));

        let names: Vec<String> = target
            .a
            .list(None)
            .await
            .expect("list")
            .into_iter()
            .map(|environment| environment.name)
            .collect();
        assert_eq!(
            names,
            ["default", "staging", "production"],
            "ordered by created_at"
        );
    }

    pub(super) async fn update_is_partial_and_replaces_fields_whole(target: &Target) {
        settle(target.a.as_ref()).await;
        let created = target
            .a
            .create(&full_environment("staging"))
            .await
            .expect("create");
        let patch = UpdateEnvironment {
            configuration: Patch::Set(map(json!({"max_workers": 20}))),
            description: Patch::Clear,
            status: Patch::Set(Status::Inactive),
            ..UpdateEnvironment::default()
        };
        let updated = target.a.update(created.id, &patch).await.expect("update");
        assert_eq!(
            updated.configuration,
            Some(map(json!({"max_workers": 20}))),
            "a field sent replaces the stored value whole"
        );
        assert_eq!(updated.description, None);
        assert_eq!(updated.status, Status::Inactive);
        assert_eq!(
            updated.metadata, created.metadata,
            "absent fields are untouched"
        );
        assert_eq!(updated.tags, created.tags);
        assert_eq!(updated.name, "staging");
        assert_eq!(updated.created_at, created.created_at);
        assert!(updated.updated_at >= created.updated_at);
        assert_eq!(target.a.get(created.id).await.expect("get"), updated);

        let renamed = target
            .a
            .update(
                created.id,
                &UpdateEnvironment {
                    name: Patch::Set("stage".to_owned()),
                    ..UpdateEnvironment::default()
                },
            )
            .await
            .expect("rename");
        assert_eq!(renamed.name, "stage");
        assert_eq!(renamed.id, created.id);
    }

    pub(super) async fn delete_then_not_found(target: &Target) {
        settle(target.a.as_ref()).await;
        let created = target
            .a
            .create(&CreateEnvironment::named("ephemeral"))
            .await
            .expect("create");
        target.a.delete(created.id).await.expect("delete");
        assert_not_found(target.a.get(created.id).await);
        assert_not_found(target.a.delete(created.id).await);
        assert_not_found(
            target
                .a
                .update(
                    created.id,
                    &UpdateEnvironment {
                        description: Patch::Set("x".to_owned()),
                        ..UpdateEnvironment::default()
                    },
                )
                .await,
        );
        assert_not_found(target.a.get_worker_command(created.id).await);
        let names: Vec<String> = target
            .a
            .list(None)
            .await
            .expect("list")
            .into_iter()
            .map(|environment| environment.name)
            .collect();
        assert_eq!(names, ["default"]);
        // The name is free again.
        target
            .a
            .create(&CreateEnvironment::named("ephemeral"))
            .await
            .expect("create again");
    }

    pub(super) async fn default_cannot_be_deleted(target: &Target) {
        let environments = settle(target.a.as_ref()).await;
        let default = by_name(&environments, "default");
        let result = target.a.delete(default.id).await;
        assert!(
            matches!(result, Err(EnvironmentError::Api { status: 400, .. })),
            "expected 400, got {result:?}"
        );
        assert_eq!(
            target.a.get(default.id).await.expect("still there").name,
            "default"
        );
    }

    pub(super) async fn duplicate_names_conflict(target: &Target) {
        settle(target.a.as_ref()).await;
        target
            .a
            .create(&CreateEnvironment::named("staging"))
            .await
            .expect("create");
        assert_conflict(target.a.create(&CreateEnvironment::named("staging")).await);
        assert_conflict(target.a.create(&CreateEnvironment::named("default")).await);
        let production = target
            .a
            .create(&CreateEnvironment::named("production"))
            .await
            .expect("create");
        let rename = UpdateEnvironment {
            name: Patch::Set("staging".to_owned()),
            ..UpdateEnvironment::default()
        };
        assert_conflict(target.a.update(production.id, &rename).await);
        assert_eq!(
            target.a.get(production.id).await.expect("get").name,
            "production",
            "a refused rename changes nothing"
        );
    }

    pub(super) async fn organizations_are_isolated(target: &Target) {
        settle(target.a.as_ref()).await;
        let created = target
            .a
            .create(&CreateEnvironment::named("staging"))
            .await
            .expect("create in a");
        let of_b = settle(target.b.as_ref()).await;
        assert!(of_b.iter().all(|environment| environment.id != created.id));
        assert_eq!(of_b.len(), 1, "b sees only its own default: {of_b:?}");
        assert_ne!(
            of_b[0].id,
            by_name(&settle(target.a.as_ref()).await, "default").id
        );
        assert_not_found(target.b.get(created.id).await);
        assert_not_found(target.b.get_worker_command(created.id).await);
        assert_not_found(
            target
                .b
                .update(
                    created.id,
                    &UpdateEnvironment {
                        description: Patch::Set("taken over".to_owned()),
                        ..UpdateEnvironment::default()
                    },
                )
                .await,
        );
        assert_not_found(target.b.delete(created.id).await);
        // Names are unique per organization only.
        let in_b = target
            .b
            .create(&CreateEnvironment::named("staging"))
            .await
            .expect("same name in b");
        assert_ne!(in_b.id, created.id);
        assert_eq!(
            target.a.get(created.id).await.expect("a's is intact"),
            created
        );
    }

    pub(super) async fn unknown_id_is_not_found(target: &Target) {
        settle(target.a.as_ref()).await;
        let id = EnvironmentId::new_random();
        assert_not_found(target.a.get(id).await);
        assert_not_found(target.a.delete(id).await);
        assert_not_found(target.a.get_worker_command(id).await);
    }

    pub(super) async fn status_filter(target: &Target) {
        settle(target.a.as_ref()).await;
        let mut paused = CreateEnvironment::named("paused");
        paused.status = Some(Status::Inactive);
        let paused = target.a.create(&paused).await.expect("create inactive");
        assert_eq!(paused.status, Status::Inactive);
        target
            .a
            .create(&CreateEnvironment::named("running"))
            .await
            .expect("create active");

        let names = |environments: Vec<Environment>| -> Vec<String> {
            environments.into_iter().map(|env| env.name).collect()
        };
        let inactive = target.a.list(Some(Status::Inactive)).await.expect("list");
        assert_eq!(names(inactive), ["paused"]);
        let active = target.a.list(Some(Status::Active)).await.expect("list");
        assert_eq!(names(active), ["default", "running"]);
        for status in [Status::Error, Status::Provisioning, Status::Ready] {
            assert!(target.a.list(Some(status)).await.expect("list").is_empty());
        }
    }

    pub(super) async fn worker_command_and_token_secrecy(target: &Target) {
        settle(target.a.as_ref()).await;
        let created = target
            .a
            .create(&CreateEnvironment::named("workers"))
            .await
            .expect("create");
        let command = target
            .a
            .get_worker_command(created.id)
            .await
            .expect("worker command");
        let token = command.worker_token.expose().to_owned();
        assert!(token.len() >= 16, "a token worth its name");
        assert_eq!(command.environment_name, "workers");
        assert!(
            command.command.contains(&token),
            "{}",
            command.masked_command()
        );
        assert!(command.command.contains("workers"));
        assert_eq!(command.command_parts.flags["--environment"], "workers");
        assert!(!command.command_parts.binary.is_empty());
        assert!(command.temporal_namespace.is_some());
        assert!(
            command.can_register,
            "an active environment accepts workers"
        );
        assert!(
            !format!("{:?}", command.worker_token).contains(&token),
            "Debug hides the token"
        );

        // No other call ever returns the token.
        let listed = target.a.list(None).await.expect("list");
        let fetched = target.a.get(created.id).await.expect("get");
        let updated = target
            .a
            .update(
                created.id,
                &UpdateEnvironment {
                    description: Patch::Set("with workers".to_owned()),
                    ..UpdateEnvironment::default()
                },
            )
            .await
            .expect("update");
        let another = target
            .a
            .create(&CreateEnvironment::named("more-workers"))
            .await
            .expect("create");
        let shown = serde_json::to_string(&(listed, fetched, updated, another)).expect("json");
        assert!(!shown.contains(&token));
        assert!(!shown.contains("worker_token"));
    }

    pub(super) async fn invalid_bodies_are_rejected(target: &Target) {
        settle(target.a.as_ref()).await;
        assert_invalid(
            target.a.create(&CreateEnvironment::named("x")).await,
            "name",
        );
        assert_invalid(
            target
                .a
                .create(&CreateEnvironment::named("n".repeat(101)))
                .await,
            "name",
        );
        let mut zero_workers = CreateEnvironment::named("zero");
        zero_workers.configuration = Some(map(json!({"max_workers": 0})));
        assert_invalid(
            target.a.create(&zero_workers).await,
            "configuration.max_workers",
        );
        let mut service_status = CreateEnvironment::named("early");
        service_status.status = Some(Status::Ready);
        assert_invalid(target.a.create(&service_status).await, "status");

        let created = target
            .a
            .create(&CreateEnvironment::named("valid"))
            .await
            .expect("create");
        let patch = UpdateEnvironment {
            status: Patch::Set(Status::Provisioning),
            ..UpdateEnvironment::default()
        };
        assert_invalid(target.a.update(created.id, &patch).await, "status");
        let patch = UpdateEnvironment {
            configuration: Patch::Set(map(json!({"timeout_seconds": 0}))),
            ..UpdateEnvironment::default()
        };
        assert_invalid(
            target.a.update(created.id, &patch).await,
            "configuration.timeout_seconds",
        );
        assert_eq!(
            target.a.get(created.id).await.expect("get"),
            created,
            "refused updates change nothing"
        );
        let names: Vec<String> = target
            .a
            .list(None)
            .await
            .expect("list")
            .into_iter()
            .map(|environment| environment.name)
            .collect();
        assert_eq!(
            names,
            ["default", "valid"],
            "refused creates create nothing"
        );
    }

    pub(super) async fn provisioning_then_active(target: &Target) {
        let environments = target.a.list(None).await.expect("list");
        assert_eq!(
            by_name(&environments, "default").status,
            Status::Provisioning,
            "the default environment starts the namespace provisioning"
        );
        let early = target
            .a
            .create(&CreateEnvironment::named("early"))
            .await
            .expect("create while provisioning");
        assert_eq!(early.status, Status::Provisioning);
        let mut paused = CreateEnvironment::named("early-paused");
        paused.status = Some(Status::Inactive);
        let paused = target.a.create(&paused).await.expect("create inactive");
        assert_eq!(paused.status, Status::Provisioning);
        let command = target
            .a
            .get_worker_command(early.id)
            .await
            .expect("worker command while provisioning");
        assert!(
            !command.can_register,
            "no worker registers before the namespace"
        );

        let environments = settle(target.a.as_ref()).await;
        let default = by_name(&environments, "default");
        assert_eq!(default.status, Status::Active);
        assert!(default.provisioned_at.is_some());
        assert_eq!(by_name(&environments, "early").status, Status::Active);
        assert_eq!(
            by_name(&environments, "early-paused").status,
            Status::Inactive,
            "after provisioning an environment takes the status it was created with"
        );
        let later = target
            .a
            .create(&CreateEnvironment::named("later"))
            .await
            .expect("create after provisioning");
        assert_eq!(later.status, Status::Active);
    }

    pub(super) async fn provisioning_failure(target: &Target) {
        let environments = settle(target.failing.as_ref()).await;
        let default = by_name(&environments, "default");
        assert_eq!(default.status, Status::Error);
        assert!(
            default
                .error_message
                .as_deref()
                .is_some_and(|message| !message.is_empty()),
            "a failed provisioning says why: {default:?}"
        );
        let listed = target
            .failing
            .list(Some(Status::Error))
            .await
            .expect("list");
        assert_eq!(listed.len(), 1);
        // Another organization is not affected.
        let of_a = settle(target.a.as_ref()).await;
        assert_eq!(by_name(&of_a, "default").status, Status::Active);
    }
}

// ---------------------------------------------------------------------------------------------
// What only the wire shows.

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// A temporary directory with a server whose bodies are limited to 4 KiB.
fn wire_scenario() -> Scenario {
    Scenario::with(serve_options().args(["--body-limit", "4KiB"]))
}

#[tokio::test]
async fn wire_status_codes_and_error_shapes() {
    use reqwest::Method;
    let scenario = wire_scenario();
    let server = &scenario.server;
    let wire = Wire::new(server.url());
    let auth = bearer(KEY_A);
    let auth = Some(auth.as_str());
    let base = "/api/v1/environments";

    let health = wire.send(Method::GET, "/health", None, None).await;
    assert_eq!(health.status, 200);

    let list = wire.send(Method::GET, base, auth, None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json().as_array().expect("bare array").len(), 1);

    let created = wire
        .send(
            Method::POST,
            base,
            auth,
            Some(r#"{"name": "staging", "unknown_to_nobody": null}"#),
        )
        .await;
    assert_eq!(
        created.status, 422,
        "unknown fields are refused: {}",
        created.text
    );

    let created = wire
        .send(Method::POST, base, auth, Some(r#"{"name": "staging"}"#))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let item = format!("{base}/{id}");

    let fetched = wire.send(Method::GET, &item, auth, None).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json()["name"], "staging");

    let patched = wire
        .send(Method::PATCH, &item, auth, Some(r#"{"description": "d"}"#))
        .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json()["description"], "d");

    let command = wire
        .send(Method::GET, &format!("{item}/worker-command"), auth, None)
        .await;
    assert_eq!(command.status, 200);
    let command = command.json();
    for field in [
        "command",
        "worker_token",
        "temporal_namespace",
        "environment_name",
        "command_parts",
        "namespace_status",
        "can_register",
        "provisioning_workflow_id",
    ] {
        assert!(
            command.get(field).is_some(),
            "worker-command lacks {field}: {command}"
        );
    }

    wire.send(Method::POST, base, auth, Some(r#"{"name": "production"}"#))
        .await;
    wire.send(Method::POST, base, auth, Some(r#"{"name": "production"}"#))
        .await
        .assert_string_detail(409);
    let default_id = list.json()[0]["id"].as_str().expect("id").to_owned();
    wire.send(Method::DELETE, &format!("{base}/{default_id}"), auth, None)
        .await
        .assert_string_detail(400);

    // Malformed and unknown ids: 404 with a string detail, on every route.
    for path in [
        format!("{base}/not-a-uuid"),
        format!("{base}/{}", EnvironmentId::new_random()),
        format!("{base}/%FF%FE"),
    ] {
        for method in [Method::GET, Method::DELETE] {
            wire.send(method, &path, auth, None)
                .await
                .assert_string_detail(404);
        }
        wire.send(Method::GET, &format!("{path}/worker-command"), auth, None)
            .await
            .assert_string_detail(404);
    }
    wire.send(
        Method::PATCH,
        &format!("{base}/not-a-uuid"),
        auth,
        Some("{}"),
    )
    .await
    .assert_string_detail(404);

    // Invalid bodies: 422 with {loc, msg, type} entries, never axum's plain-text answers.
    for body in [
        "{not json",
        "",
        "[]",
        r#"{"name": 5}"#,
        r#"{"name": "ok", "tags": "not-a-list"}"#,
        r#"{"name": "ok", "status": "paused"}"#,
    ] {
        let answer = wire.send(Method::POST, base, auth, Some(body)).await;
        assert_eq!(answer.status, 422, "{body}: {}", answer.text);
        let detail = answer.json()["detail"].clone();
        let entries = detail.as_array().expect("an array of field errors");
        assert!(!entries.is_empty());
        for entry in entries {
            assert!(
                entry["loc"].is_array() && entry["msg"].is_string() && entry["type"].is_string()
            );
        }
    }
    let no_content_type = wire
        .http
        .post(format!("{}{base}", server.url()))
        .header("authorization", bearer(KEY_A))
        .body(r#"{"name": "no-content-type"}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(
        no_content_type.status().as_u16(),
        201,
        "no 415 for a missing content type"
    );
    let answer = wire
        .send(
            Method::GET,
            &format!("{base}?status_filter=paused"),
            auth,
            None,
        )
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    assert_eq!(
        answer.json()["detail"][0]["loc"],
        json!(["query", "status_filter"])
    );

    // Oversized bodies: 413 with a JSON detail.
    let big = format!(
        r#"{{"name": "big", "description": "{}"}}"#,
        "x".repeat(8 * 1024)
    );
    wire.send(Method::POST, base, auth, Some(&big))
        .await
        .assert_string_detail(413);

    // Auth: 401 with an object detail; both header schemes work.
    for authorization in [
        None,
        Some("Bearer wrong-key"),
        Some("Basic abc"),
        Some("Bearer "),
    ] {
        let answer = wire.send(Method::GET, base, authorization, None).await;
        assert_eq!(answer.status, 401, "{authorization:?}");
        assert!(answer.json()["detail"].is_object(), "{}", answer.text);
    }
    let user_key = format!("UserKey {KEY_A}");
    let answer = wire.send(Method::GET, base, Some(&user_key), None).await;
    assert_eq!(answer.status, 200);
    // Auth comes before anything else: a bad key with a bad body or id is still 401.
    let answer = wire
        .send(Method::POST, base, Some("Bearer wrong"), Some("{not json"))
        .await;
    assert_eq!(answer.status, 401);

    let deleted = wire.send(Method::DELETE, &item, auth, None).await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.text.is_empty());

    let unknown = wire.send(Method::GET, "/api/v1/nothing", auth, None).await;
    unknown.assert_string_detail(404);
    let not_allowed = wire.send(Method::PUT, base, auth, Some("{}")).await;
    not_allowed.assert_string_detail(405);
}

#[tokio::test]
async fn wire_bodies_and_logs_never_carry_secrets() {
    use reqwest::Method;
    let scenario = wire_scenario();
    let server = &scenario.server;
    let wire = Wire::new(server.url());
    let auth = bearer(KEY_A);
    let base = "/api/v1/environments";

    let created = wire
        .send(
            Method::POST,
            base,
            Some(&auth),
            Some(r#"{"name": "staging"}"#),
        )
        .await;
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let item = format!("{base}/{id}");
    let command = wire
        .get(&format!("{item}/worker-command"), KEY_A)
        .await
        .json();
    let token = command["worker_token"].as_str().expect("token").to_owned();
    assert!(!token.is_empty());

    let answers = [
        created,
        wire.get(base, KEY_A).await,
        wire.get(&item, KEY_A).await,
        wire.send(
            Method::PATCH,
            &item,
            Some(&auth),
            Some(r#"{"tags": ["a"]}"#),
        )
        .await,
        wire.send(
            Method::POST,
            base,
            Some(&auth),
            Some(r#"{"name": "other"}"#),
        )
        .await,
    ];
    for answer in &answers {
        assert!(answer.status < 300, "{answer:?}");
        assert!(
            !answer.text.contains(&token),
            "token leaked: {}",
            answer.text
        );
        assert!(!answer.text.contains("worker_token"), "{}", answer.text);
    }

    let log = server.log();
    assert!(
        log.contains("GET") && log.contains(base),
        "requests are logged: {log}"
    );
    assert!(!log.contains(KEY_A), "the API key is never logged");
    assert!(!log.contains(&token), "the worker token is never logged");
}

#[tokio::test]
async fn restart_keeps_everything() {
    let mut scenario = wire_scenario();
    let client = scenario.server.client(KEY_A);
    let environments = client.environments();
    let created = environments
        .create(&full_environment("staging"))
        .await
        .expect("create");
    environments
        .update(
            created.id,
            &UpdateEnvironment {
                description: Patch::Set("kept across restarts".to_owned()),
                ..UpdateEnvironment::default()
            },
        )
        .await
        .expect("update");
    let deleted = environments
        .create(&CreateEnvironment::named("gone"))
        .await
        .expect("create");
    environments.delete(deleted.id).await.expect("delete");
    let before = settle(&client).await;
    let of_b = settle(&scenario.server.client(KEY_B)).await;

    scenario.server.restart_gracefully();
    let server = &scenario.server;
    let after = server
        .client(KEY_A)
        .environments()
        .list(None)
        .await
        .expect("list");
    assert_eq!(after, before);
    assert_eq!(
        server
            .client(KEY_B)
            .environments()
            .list(None)
            .await
            .expect("list"),
        of_b
    );
    let command = server
        .client(KEY_A)
        .environments()
        .get_worker_command(created.id)
        .await
        .expect("worker command after restart");
    assert_eq!(command.environment_name, "staging");
    // The name of the deleted environment stays free, the other one stays taken.
    let client = server.client(KEY_A);
    client
        .environments()
        .create(&CreateEnvironment::named("gone"))
        .await
        .expect("recreate");
    assert_conflict(
        client
            .environments()
            .create(&CreateEnvironment::named("staging"))
            .await,
    );
}

/// Runs `envform serve` with no key of its own and `args`, and expects it to refuse to start.
fn refused_start(args: &[&str]) -> String {
    let dir = TempDir::new().expect("temp dir");
    let output = Server::options()
        .without_keys()
        .args(args)
        .refused(&dir.path().join("serve.db"));
    assert!(output.stdout.is_empty(), "nothing announced on stdout");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn serve_refuses_bad_or_missing_keys() {
    let stderr = refused_start(&[]);
    assert!(stderr.contains("no API key"), "{stderr}");
    let stderr = refused_start(&["--api-key", "secret-without-org"]);
    assert!(stderr.contains("KEY=ORG"), "{stderr}");
    assert!(
        !stderr.contains("secret-without-org"),
        "the key is not echoed: {stderr}"
    );
    let stderr = refused_start(&["--api-key", "=org"]);
    assert!(stderr.contains("empty"), "{stderr}");
    let stderr = refused_start(&["--api-key", "k=a", "--faults", "colour=red"]);
    assert!(stderr.contains("colour"), "{stderr}");
}

#[test]
fn serve_takes_keys_from_the_environment() {
    let dir = TempDir::new().expect("temp dir");
    let server = Server::options()
        .without_keys()
        .env("ENVFORM_API_KEYS", "env-key-1=org-x,env-key-2=org-y")
        .start(&dir.path().join("serve.db"));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let organizations = runtime.block_on(async {
        let wire = Wire::new(server.url());
        let mut organizations = Vec::new();
        for key in ["env-key-1", "env-key-2"] {
            let answer = wire.get("/api/v1/environments", key).await;
            assert_eq!(answer.status, 200, "{}", answer.text);
            organizations.push(answer.json()[0]["organization_id"].clone());
        }
        organizations
    });
    assert_eq!(organizations, [json!("org-x"), json!("org-y")]);
}
