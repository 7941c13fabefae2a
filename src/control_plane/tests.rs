//! Tests of the control plane rules, on in-memory and temporary-file databases.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;

use super::*;
use crate::api::{
    CreateEnvironment, Environment, EnvironmentsApi, ExecutionEnvironment, JsonMap, Patch, Status,
    UpdateEnvironment,
};
use crate::model::DEFAULT_ENVIRONMENT;

/// A provisioner that waits for the test to release it, and fails its first `failures` calls.
struct GatedProvisioner {
    gate: Semaphore,
    calls: AtomicUsize,
    failures: AtomicUsize,
}

impl GatedProvisioner {
    fn new(failures: usize) -> Arc<Self> {
        Arc::new(Self {
            gate: Semaphore::new(0),
            calls: AtomicUsize::new(0),
            failures: AtomicUsize::new(failures),
        })
    }

    fn release(&self) {
        self.gate.add_permits(1);
    }
}

#[async_trait::async_trait]
impl NamespaceProvisioner for GatedProvisioner {
    async fn provision(
        &self,
        organization: &OrganizationId,
        _workflow_id: &str,
    ) -> Result<ProvisionedNamespace, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.gate
            .acquire()
            .await
            .map_err(|error| error.to_string())?
            .forget();
        let failed = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if failed {
            return Err("namespace quota exceeded".to_owned());
        }
        Ok(ProvisionedNamespace {
            temporal_namespace: format!("ns-{organization}"),
            temporal_namespace_id: format!("ns-{organization}.test"),
        })
    }
}

fn org(name: &str) -> OrganizationId {
    OrganizationId(name.to_owned())
}

async fn in_memory() -> ControlPlane {
    ControlPlane::open_in_memory(ControlPlaneConfig::default())
        .await
        .unwrap()
}

async fn gated(provisioner: Arc<GatedProvisioner>) -> ControlPlane {
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    ControlPlane::new(store, provisioner, ControlPlaneConfig::default())
}

/// Polls until the environment's status is no longer `provisioning`.
async fn settled(scope: &OrganizationScope, id: EnvironmentId) -> Environment {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let environment = scope.get(id).await.unwrap();
        if environment.status.is_settled() {
            return environment;
        }
        assert!(
            Instant::now() < deadline,
            "still provisioning: {environment:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn default_environment(scope: &OrganizationScope) -> Environment {
    scope
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .find(|environment| environment.name == DEFAULT_ENVIRONMENT)
        .unwrap()
}

fn object(value: serde_json::Value) -> JsonMap {
    value.as_object().unwrap().clone()
}

#[tokio::test]
async fn first_access_creates_the_default_environment_once_and_list_writes_nothing() {
    let control_plane = in_memory().await;
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    let first = scope.list(None).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].name, "default");
    assert_eq!(
        first[0].display_name.as_deref(),
        Some("Default Environment")
    );
    assert_eq!(
        first[0].description.as_deref(),
        Some("Default environment for all workers")
    );
    assert_eq!(first[0].organization_id, Some(org("acme")));

    let again = control_plane.organization(&org("acme")).await.unwrap();
    let second = again.list(None).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, first[0].id);
    let settled = settled(&scope, first[0].id).await;
    // Listing again changes nothing.
    let listed = scope.list(None).await.unwrap();
    assert_eq!(listed, vec![settled]);
}

#[tokio::test]
async fn empty_organization_id_is_refused() {
    let control_plane = in_memory().await;
    let error = control_plane.organization(&org(" ")).await.unwrap_err();
    assert_eq!(error.status_code(), Some(400));
}

#[tokio::test]
async fn default_environment_cannot_be_deleted_or_renamed() {
    let control_plane = in_memory().await;
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    let default = default_environment(&scope).await;

    let error = scope.delete(default.id).await.unwrap_err();
    assert!(
        matches!(&error, EnvironmentError::Api { status: 400, detail } if detail == "The default environment cannot be deleted"),
        "{error:?}"
    );
    let rename = UpdateEnvironment {
        name: Patch::Set("main".into()),
        ..UpdateEnvironment::default()
    };
    let error = scope.update(default.id, &rename).await.unwrap_err();
    assert!(
        matches!(&error, EnvironmentError::Api { status: 400, detail } if detail.contains("cannot be renamed")),
        "{error:?}"
    );
    // Other fields of the default environment can change.
    let describe = UpdateEnvironment {
        description: Patch::Set("shared".into()),
        ..UpdateEnvironment::default()
    };
    let updated = scope.update(default.id, &describe).await.unwrap();
    assert_eq!(updated.description.as_deref(), Some("shared"));
    assert_eq!(scope.list(None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn duplicate_names_conflict_on_create_and_on_rename() {
    let control_plane = in_memory().await;
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    let staging = scope
        .create(&CreateEnvironment::named("staging"))
        .await
        .unwrap();
    let production = scope
        .create(&CreateEnvironment::named("production"))
        .await
        .unwrap();

    let error = scope
        .create(&CreateEnvironment::named("staging"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, EnvironmentError::Conflict { detail } if detail.contains("'staging'")),
        "{error:?}"
    );
    let error = scope
        .create(&CreateEnvironment::named("default"))
        .await
        .unwrap_err();
    assert_eq!(error.status_code(), Some(409));

    let rename = UpdateEnvironment {
        name: Patch::Set("staging".into()),
        ..UpdateEnvironment::default()
    };
    let error = scope.update(production.id, &rename).await.unwrap_err();
    assert_eq!(error.status_code(), Some(409), "{error:?}");
    // The failed rename changed nothing.
    assert_eq!(scope.get(production.id).await.unwrap().name, "production");
    // Renaming to its own name, or to a free one, works.
    scope.update(staging.id, &rename).await.unwrap();
    let free = UpdateEnvironment {
        name: Patch::Set("stage".into()),
        ..UpdateEnvironment::default()
    };
    assert_eq!(scope.update(staging.id, &free).await.unwrap().name, "stage");
    // The freed name can be taken.
    scope
        .create(&CreateEnvironment::named("staging"))
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_creates_of_one_name_admit_exactly_one() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("envform.db");
    let first = ControlPlane::open_sqlite(&path, ControlPlaneConfig::default())
        .await
        .unwrap();
    let second = ControlPlane::open_sqlite(&path, ControlPlaneConfig::default())
        .await
        .unwrap();
    let mut attempts = tokio::task::JoinSet::new();
    for index in 0..8 {
        let control_plane = if index % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        attempts.spawn(async move {
            let scope = control_plane.organization(&org("race")).await.unwrap();
            scope.create(&CreateEnvironment::named("contested")).await
        });
    }
    let mut created = 0;
    let mut conflicts = 0;
    while let Some(result) = attempts.join_next().await {
        match result.unwrap() {
            Ok(_) => created += 1,
            Err(EnvironmentError::Conflict { .. }) => conflicts += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((created, conflicts), (1, 7));
    let scope = first.organization(&org("race")).await.unwrap();
    let names: Vec<_> = scope
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .map(|environment| environment.name)
        .collect();
    assert_eq!(names, ["default", "contested"]);
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn invalid_bodies_report_every_problem_and_write_nothing() {
    let control_plane = in_memory().await;
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    let data = CreateEnvironment {
        name: "x".into(),
        status: Some(Status::Error),
        configuration: Some(object(json!({"max_workers": 0, "timeout_seconds": 1.5}))),
        ..CreateEnvironment::default()
    };
    let EnvironmentError::Validation { errors } = scope.create(&data).await.unwrap_err() else {
        panic!("expected a validation error");
    };
    let paths: Vec<_> = errors.iter().map(|error| error.path()).collect();
    assert_eq!(
        paths,
        [
            "name",
            "status",
            "configuration.max_workers",
            "configuration.timeout_seconds"
        ]
    );
    assert!(
        errors[1]
            .msg
            .contains("the service sets `provisioning`, `ready` and `error`")
    );
    assert_eq!(scope.list(None).await.unwrap().len(), 1);

    let staging = scope
        .create(&CreateEnvironment::named("staging"))
        .await
        .unwrap();
    let patch = UpdateEnvironment {
        name: Patch::Clear,
        status: Patch::Set(Status::Ready),
        ..UpdateEnvironment::default()
    };
    let error = scope.update(staging.id, &patch).await.unwrap_err();
    let EnvironmentError::Validation { errors } = error else {
        panic!("expected a validation error");
    };
    assert_eq!(errors.len(), 2);
    assert_eq!(
        errors[0].msg,
        "name cannot be null: every environment has a name"
    );
    let too_long = UpdateEnvironment {
        name: Patch::Set("n".repeat(101)),
        ..UpdateEnvironment::default()
    };
    assert_eq!(
        scope
            .update(staging.id, &too_long)
            .await
            .unwrap_err()
            .status_code(),
        Some(422)
    );
    assert_eq!(scope.get(staging.id).await.unwrap(), staging);
}

/// A create body with every optional field set.
fn full_create() -> CreateEnvironment {
    CreateEnvironment {
        name: "full".into(),
        display_name: Some("Full".into()),
        description: Some("everything set".into()),
        status: Some(Status::Active),
        configuration: Some(object(json!({"max_workers": 2, "custom": "kept"}))),
        metadata: Some(object(json!({"team": "platform"}))),
        tags: Some(vec!["one".into(), "two".into()]),
        settings: Some(object(json!({"retention": 7}))),
        execution_environment: Some(ExecutionEnvironment {
            env_vars: object(json!({"LOG_LEVEL": "debug"})),
            secrets: vec!["db-password".into()],
            integration_ids: vec!["github".into()],
            mcp_servers: JsonMap::new(),
        }),
    }
}

#[tokio::test]
async fn partial_update_sets_leaves_and_clears_each_field() {
    let control_plane = in_memory().await;
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    let original = scope.create(&full_create()).await.unwrap();
    let original = settled(&scope, original.id).await;
    assert_eq!(original.display_name.as_deref(), Some("Full"));
    assert_eq!(original.configuration, full_create().configuration);

    let new_execution = ExecutionEnvironment {
        secrets: vec!["other".into()],
        ..ExecutionEnvironment::default()
    };
    type Case = (
        &'static str,
        UpdateEnvironment,
        UpdateEnvironment,
        fn(&mut Environment, bool),
    );
    let cases: Vec<Case> = vec![
        (
            "display_name",
            UpdateEnvironment {
                display_name: Patch::Set("Shown".into()),
                ..Default::default()
            },
            UpdateEnvironment {
                display_name: Patch::Clear,
                ..Default::default()
            },
            |environment, set| {
                environment.display_name = set.then(|| "Shown".into());
            },
        ),
        (
            "description",
            UpdateEnvironment {
                description: Patch::Set("new".into()),
                ..Default::default()
            },
            UpdateEnvironment {
                description: Patch::Clear,
                ..Default::default()
            },
            |environment, set| environment.description = set.then(|| "new".into()),
        ),
        (
            "configuration",
            UpdateEnvironment {
                // Replaces the whole object: `custom` goes away.
                configuration: Patch::Set(object(json!({"timeout_seconds": 60}))),
                ..Default::default()
            },
            UpdateEnvironment {
                configuration: Patch::Clear,
                ..Default::default()
            },
            |environment, set| {
                environment.configuration = set.then(|| object(json!({"timeout_seconds": 60})));
            },
        ),
        (
            "metadata",
            UpdateEnvironment {
                metadata: Patch::Set(object(json!({"stage": "prod"}))),
                ..Default::default()
            },
            UpdateEnvironment {
                metadata: Patch::Clear,
                ..Default::default()
            },
            |environment, set| {
                environment.metadata = set.then(|| object(json!({"stage": "prod"})));
            },
        ),
        (
            "tags",
            UpdateEnvironment {
                tags: Patch::Set(vec!["three".into()]),
                ..Default::default()
            },
            UpdateEnvironment {
                tags: Patch::Clear,
                ..Default::default()
            },
            |environment, set| environment.tags = set.then(|| vec!["three".into()]),
        ),
        (
            "settings",
            UpdateEnvironment {
                settings: Patch::Set(object(json!({"retention": 30}))),
                ..Default::default()
            },
            UpdateEnvironment {
                settings: Patch::Clear,
                ..Default::default()
            },
            |environment, set| {
                environment.settings = set.then(|| object(json!({"retention": 30})));
            },
        ),
        (
            "execution_environment",
            UpdateEnvironment {
                execution_environment: Patch::Set(new_execution.clone()),
                ..Default::default()
            },
            UpdateEnvironment {
                execution_environment: Patch::Clear,
                ..Default::default()
            },
            |environment, set| {
                environment.execution_environment = set.then(|| {
                    Box::new(ExecutionEnvironment {
                        secrets: vec!["other".into()],
                        ..ExecutionEnvironment::default()
                    })
                });
            },
        ),
    ];
    for (field, set, clear, expect) in cases {
        // Each case starts from the full environment; fields not sent stay as they were.
        let data = CreateEnvironment {
            name: format!("case-{field}"),
            ..full_create()
        };
        let created = scope.create(&data).await.unwrap();
        let base = settled(&scope, created.id).await;

        let after_set = scope.update(base.id, &set).await.unwrap();
        let mut expected = base.clone();
        expect(&mut expected, true);
        expected.updated_at = after_set.updated_at;
        assert_eq!(after_set, expected, "set {field}");
        assert_eq!(
            scope.get(base.id).await.unwrap(),
            after_set,
            "stored {field}"
        );

        let after_clear = scope.update(base.id, &clear).await.unwrap();
        let mut expected = base.clone();
        expect(&mut expected, false);
        expected.updated_at = after_clear.updated_at;
        assert_eq!(after_clear, expected, "clear {field}");
        assert_eq!(
            scope.get(base.id).await.unwrap(),
            after_clear,
            "stored {field}"
        );
    }

    // Name and status: set changes them, absent leaves them.
    let renamed = scope
        .update(
            original.id,
            &UpdateEnvironment {
                name: Patch::Set("renamed".into()),
                status: Patch::Set(Status::Inactive),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.status),
        ("renamed", Status::Inactive)
    );
    assert_eq!(renamed.display_name.as_deref(), Some("Full"));
    let untouched = scope
        .update(original.id, &UpdateEnvironment::default())
        .await
        .unwrap();
    assert_eq!(
        (untouched.name.as_str(), untouched.status),
        ("renamed", Status::Inactive)
    );
    assert!(untouched.updated_at > renamed.updated_at);
}

#[tokio::test]
async fn display_name_defaults_to_name_and_actor_is_recorded() {
    let control_plane = in_memory().await;
    let scope = control_plane
        .organization(&org("acme"))
        .await
        .unwrap()
        .with_actor("alice@example.com");
    let created = scope.create(&CreateEnvironment::named("qa")).await.unwrap();
    assert_eq!(created.display_name.as_deref(), Some("qa"));
    assert_eq!(created.created_by.as_deref(), Some("alice@example.com"));
    assert_eq!(created.active_workers, Some(0));
    assert_eq!(
        scope.get(created.id).await.unwrap().created_by,
        created.created_by
    );
    assert_eq!(scope.organization_id(), &org("acme"));
}

#[tokio::test]
async fn organizations_are_isolated() {
    let control_plane = in_memory().await;
    let acme = control_plane.organization(&org("acme")).await.unwrap();
    let globex = control_plane.organization(&org("globex")).await.unwrap();
    let mine = acme
        .create(&CreateEnvironment::named("shared-name"))
        .await
        .unwrap();
    // The same name in another organization is not a conflict.
    let theirs = globex
        .create(&CreateEnvironment::named("shared-name"))
        .await
        .unwrap();
    assert_ne!(mine.id, theirs.id);

    assert_eq!(
        globex.get(mine.id).await.unwrap_err().status_code(),
        Some(404)
    );
    let patch = UpdateEnvironment {
        description: Patch::Set("hijacked".into()),
        ..UpdateEnvironment::default()
    };
    assert_eq!(
        globex
            .update(mine.id, &patch)
            .await
            .unwrap_err()
            .status_code(),
        Some(404)
    );
    assert_eq!(
        globex.delete(mine.id).await.unwrap_err().status_code(),
        Some(404)
    );
    assert_eq!(
        globex
            .get_worker_command(mine.id)
            .await
            .unwrap_err()
            .status_code(),
        Some(404)
    );
    assert_eq!(acme.get(mine.id).await.unwrap().description, None);

    let acme_ids: BTreeSet<_> = acme
        .list(None)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let globex_ids: BTreeSet<_> = globex
        .list(None)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(acme_ids.len(), 2);
    assert_eq!(globex_ids.len(), 2);
    assert!(acme_ids.is_disjoint(&globex_ids));
}

#[tokio::test]
async fn unknown_ids_are_not_found_and_delete_removes() {
    let control_plane = in_memory().await;
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    let unknown = EnvironmentId::new_random();
    let error = scope.get(unknown).await.unwrap_err();
    assert!(
        matches!(&error, EnvironmentError::NotFound { detail } if detail == "Environment not found")
    );
    assert_eq!(
        scope.delete(unknown).await.unwrap_err().status_code(),
        Some(404)
    );
    let temporary = scope
        .create(&CreateEnvironment::named("temporary"))
        .await
        .unwrap();
    scope.delete(temporary.id).await.unwrap();
    assert_eq!(
        scope.get(temporary.id).await.unwrap_err().status_code(),
        Some(404)
    );
    assert_eq!(
        scope.delete(temporary.id).await.unwrap_err().status_code(),
        Some(404)
    );
}

#[tokio::test]
async fn list_is_in_creation_order_and_filters_by_status() {
    let control_plane = in_memory().await;
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    settled(&scope, default_environment(&scope).await.id).await;
    // Names out of alphabetical order, created within the same millisecond.
    for name in ["zulu", "alpha", "mike"] {
        let status = (name == "alpha").then_some(Status::Inactive);
        scope
            .create(&CreateEnvironment {
                status,
                ..CreateEnvironment::named(name)
            })
            .await
            .unwrap();
    }
    let all = scope.list(None).await.unwrap();
    let names: Vec<_> = all
        .iter()
        .map(|environment| environment.name.as_str())
        .collect();
    assert_eq!(names, ["default", "zulu", "alpha", "mike"]);
    assert!(
        all.windows(2)
            .all(|pair| pair[0].created_at < pair[1].created_at)
    );

    let inactive = scope.list(Some(Status::Inactive)).await.unwrap();
    assert_eq!(inactive.len(), 1);
    assert_eq!(inactive[0].name, "alpha");
    assert_eq!(scope.list(Some(Status::Active)).await.unwrap().len(), 3);
    assert!(scope.list(Some(Status::Error)).await.unwrap().is_empty());
}

#[tokio::test]
async fn provisioning_with_a_delay_shows_provisioning_then_the_requested_status() {
    let config = ControlPlaneConfig {
        provisioner: BuiltinProvisionerConfig {
            delay: Duration::from_millis(300),
            ..BuiltinProvisionerConfig::default()
        },
        ..ControlPlaneConfig::default()
    };
    let control_plane = ControlPlane::open_in_memory(config).await.unwrap();
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    let default = default_environment(&scope).await;
    assert_eq!(default.status, Status::Provisioning);
    assert!(default.provisioning_workflow_id.is_some());
    assert_eq!(default.temporal_namespace, None);
    let paused = scope
        .create(&CreateEnvironment {
            status: Some(Status::Inactive),
            ..CreateEnvironment::named("paused")
        })
        .await
        .unwrap();
    assert_eq!(paused.status, Status::Provisioning);
    assert_eq!(paused.requested_status, Some(Status::Inactive));
    assert_eq!(
        scope.list(Some(Status::Provisioning)).await.unwrap().len(),
        2
    );
    let command = scope.get_worker_command(paused.id).await.unwrap();
    assert_eq!(command.namespace_status.as_deref(), Some("provisioning"));
    assert!(!command.can_register);

    let default = settled(&scope, default.id).await;
    let paused = settled(&scope, paused.id).await;
    assert_eq!(default.status, Status::Active);
    assert_eq!(paused.status, Status::Inactive);
    for environment in [&default, &paused] {
        assert_eq!(
            environment.temporal_namespace.as_deref(),
            Some("envform-acme")
        );
        assert!(
            environment
                .temporal_namespace_id
                .as_deref()
                .is_some_and(|id| id.starts_with("envform-acme."))
        );
        assert!(environment.provisioned_at.is_some());
        assert_eq!(environment.error_message, None);
    }
    assert_eq!(
        default.provisioning_workflow_id,
        paused.provisioning_workflow_id
    );
    // Environments created after provisioning take their status at once.
    let late = scope
        .create(&CreateEnvironment::named("late"))
        .await
        .unwrap();
    assert_eq!(late.status, Status::Active);
    assert_eq!(late.temporal_namespace.as_deref(), Some("envform-acme"));
    let command = scope.get_worker_command(late.id).await.unwrap();
    // The environment's status, as the production service reports it.
    assert_eq!(command.namespace_status.as_deref(), Some("active"));
    assert!(command.can_register);
    assert_eq!(
        command.provisioning_workflow_id,
        late.provisioning_workflow_id
    );
}

#[tokio::test]
async fn injected_failure_puts_every_environment_in_error() {
    let config = ControlPlaneConfig {
        provisioner: BuiltinProvisionerConfig {
            delay: Duration::from_millis(50),
            fail_organizations: BTreeSet::from([org("doomed")]),
        },
        ..ControlPlaneConfig::default()
    };
    let control_plane = ControlPlane::open_in_memory(config).await.unwrap();
    let scope = control_plane.organization(&org("doomed")).await.unwrap();
    let other = scope
        .create(&CreateEnvironment::named("other"))
        .await
        .unwrap();
    for id in [default_environment(&scope).await.id, other.id] {
        let environment = settled(&scope, id).await;
        assert_eq!(environment.status, Status::Error);
        let message = environment.error_message.unwrap();
        assert!(message.contains("provisioning failed"), "{message}");
        assert_eq!(environment.temporal_namespace, None);
    }
    let command = scope.get_worker_command(other.id).await.unwrap();
    assert_eq!(command.namespace_status.as_deref(), Some("error"));
    assert!(!command.can_register);
    // A healthy organization beside it is unaffected.
    let healthy = control_plane.organization(&org("healthy")).await.unwrap();
    let default = settled(&healthy, default_environment(&healthy).await.id).await;
    assert_eq!(default.status, Status::Active);
}

#[tokio::test]
async fn create_after_a_failure_retries_provisioning() {
    let provisioner = GatedProvisioner::new(1);
    let control_plane = gated(Arc::clone(&provisioner)).await;
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    let default_id = default_environment(&scope).await.id;
    provisioner.release();
    let failed = settled(&scope, default_id).await;
    assert_eq!(failed.status, Status::Error);
    assert_eq!(
        failed.error_message.as_deref(),
        Some("namespace quota exceeded")
    );
    let failed_workflow = failed.provisioning_workflow_id.clone();

    // A status set while the namespace is in error is remembered, not shown.
    let deactivate = UpdateEnvironment {
        status: Patch::Set(Status::Inactive),
        ..UpdateEnvironment::default()
    };
    assert_eq!(
        scope.update(default_id, &deactivate).await.unwrap().status,
        Status::Error
    );

    let retry = scope
        .create(&CreateEnvironment::named("second"))
        .await
        .unwrap();
    assert_eq!(retry.status, Status::Provisioning);
    let default = scope.get(default_id).await.unwrap();
    assert_eq!(default.status, Status::Provisioning);
    assert_eq!(default.error_message, None);
    assert_ne!(default.provisioning_workflow_id, failed_workflow);

    provisioner.release();
    assert_eq!(settled(&scope, default_id).await.status, Status::Inactive);
    let second = settled(&scope, retry.id).await;
    assert_eq!(second.status, Status::Active);
    assert_eq!(second.temporal_namespace.as_deref(), Some("ns-acme"));
    assert_eq!(provisioner.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn status_set_during_provisioning_applies_once_ready() {
    let provisioner = GatedProvisioner::new(0);
    let control_plane = gated(Arc::clone(&provisioner)).await;
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    let default = default_environment(&scope).await;
    let staging = scope
        .create(&CreateEnvironment::named("staging"))
        .await
        .unwrap();
    let deactivate = UpdateEnvironment {
        status: Patch::Set(Status::Inactive),
        ..UpdateEnvironment::default()
    };
    let during = scope.update(default.id, &deactivate).await.unwrap();
    assert_eq!(during.status, Status::Provisioning);
    assert_eq!(
        scope.get(default.id).await.unwrap().status,
        Status::Provisioning
    );

    provisioner.release();
    let default = settled(&scope, default.id).await;
    assert_eq!(default.status, Status::Inactive);
    assert!(default.updated_at > during.updated_at);
    assert_eq!(settled(&scope, staging.id).await.status, Status::Active);
    // Once ready, a status update shows at once.
    let activate = UpdateEnvironment {
        status: Patch::Set(Status::Active),
        ..UpdateEnvironment::default()
    };
    assert_eq!(
        scope.update(default.id, &activate).await.unwrap().status,
        Status::Active
    );
}

#[tokio::test]
async fn shutdown_stops_provisioning_and_reopening_resumes_it() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("state/envform.db");
    let slow = ControlPlaneConfig {
        provisioner: BuiltinProvisionerConfig {
            delay: Duration::from_secs(3600),
            ..BuiltinProvisionerConfig::default()
        },
        ..ControlPlaneConfig::default()
    };
    let control_plane = ControlPlane::open_sqlite(&path, slow).await.unwrap();
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    let created = scope
        .create(&CreateEnvironment {
            status: Some(Status::Inactive),
            ..CreateEnvironment::named("paused")
        })
        .await
        .unwrap();
    let started = Instant::now();
    control_plane.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        scope.get(created.id).await.unwrap().status,
        Status::Provisioning
    );
    drop(scope);
    drop(control_plane);

    let reopened = ControlPlane::open_sqlite(&path, ControlPlaneConfig::default())
        .await
        .unwrap();
    let scope = reopened.organization(&org("acme")).await.unwrap();
    // The built-in provisioner without delay finishes within `open_sqlite`.
    assert_eq!(
        scope.get(created.id).await.unwrap().status,
        Status::Inactive
    );
    let default = settled(&scope, default_environment(&scope).await.id).await;
    assert_eq!(default.status, Status::Active);
    assert_eq!(default.temporal_namespace.as_deref(), Some("envform-acme"));
    // Nothing is left to resume.
    assert_eq!(reopened.resume_provisioning().await.unwrap(), 0);
    reopened.shutdown().await;
}

#[tokio::test]
async fn worker_token_comes_only_from_worker_command_and_only_its_hash_is_stored() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("envform.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let config = ControlPlaneConfig {
        worker_command: WorkerCommandTemplate::kubiya(),
        ..ControlPlaneConfig::default()
    };
    let provisioner = Arc::new(BuiltinProvisioner::new(BuiltinProvisionerConfig::default()));
    let control_plane = ControlPlane::new(store.clone(), provisioner, config);
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    let created = scope
        .create(&CreateEnvironment::named("prod east"))
        .await
        .unwrap();
    let created = settled(&scope, created.id).await;

    let first = scope.get_worker_command(created.id).await.unwrap();
    let second = scope.get_worker_command(created.id).await.unwrap();
    let token = first.worker_token.expose().to_owned();
    assert!(token.starts_with("efw_"));
    assert_ne!(first.worker_token, second.worker_token);
    assert_eq!(
        first.command,
        format!("kubiya worker start --token {token} --environment 'prod east'")
    );
    assert_eq!(
        serde_json::to_value(&first.command_parts).unwrap(),
        serde_json::json!({
            "binary": "kubiya",
            "subcommand": "worker start",
            "flags": {"--token": token, "--environment": "prod east"}
        })
    );
    assert_eq!(first.environment_name, "prod east");
    assert_eq!(first.temporal_namespace.as_deref(), Some("envform-acme"));
    assert!(first.can_register);
    assert!(!format!("{:?}", first.worker_token).contains(&token));

    // No other call returns it.
    let everything = serde_json::to_string(&(
        scope.list(None).await.unwrap(),
        scope.get(created.id).await.unwrap(),
        created,
    ))
    .unwrap();
    assert!(!everything.contains("efw_"));

    // Both tokens authenticate; anything else does not.
    let expected = Some((org("acme"), first_id(&scope, "prod east").await));
    assert_eq!(control_plane.verify_worker_token(&token).await, expected);
    assert_eq!(
        control_plane
            .verify_worker_token(second.worker_token.expose())
            .await,
        expected
    );
    assert_eq!(control_plane.verify_worker_token("efw_forged").await, None);

    // The database holds the digest, never the token: not in any column, not in any file byte.
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM worker_tokens")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.contains(&token::hash(&token).0));
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        let file = directory.path().join(format!("envform.db{suffix}"));
        if let Ok(content) = std::fs::read(file) {
            bytes.extend(content);
        }
    }
    assert!(!bytes.is_empty());
    let secret = &token.as_bytes()["efw_".len()..];
    assert!(!bytes.windows(secret.len()).any(|window| window == secret));

    // Deleting the environment revokes its tokens.
    scope.delete(expected.clone().unwrap().1).await.unwrap();
    assert_eq!(control_plane.verify_worker_token(&token).await, None);
}

async fn first_id(scope: &OrganizationScope, name: &str) -> EnvironmentId {
    scope
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .find(|environment| environment.name == name)
        .unwrap()
        .id
}

#[tokio::test]
async fn updated_at_strictly_increases_within_one_millisecond() {
    let control_plane = in_memory().await;
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    let created = scope
        .create(&CreateEnvironment::named("busy"))
        .await
        .unwrap();
    let mut previous = settled(&scope, created.id).await.updated_at.unwrap();
    for round in 0..50 {
        let patch = UpdateEnvironment {
            description: Patch::Set(format!("round {round}")),
            ..UpdateEnvironment::default()
        };
        let updated = scope.update(created.id, &patch).await.unwrap();
        let updated_at = updated.updated_at.unwrap();
        assert!(
            updated_at > previous,
            "round {round}: {updated_at} <= {previous}"
        );
        assert_eq!(
            scope.get(created.id).await.unwrap().updated_at,
            Some(updated_at)
        );
        previous = updated_at;
    }
}

#[tokio::test]
async fn store_failures_are_500_without_internals() {
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let provisioner = Arc::new(BuiltinProvisioner::default());
    let control_plane =
        ControlPlane::new(store.clone(), provisioner, ControlPlaneConfig::default());
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    control_plane.shutdown().await;
    store.close().await;
    let error = scope.list(None).await.unwrap_err();
    assert!(
        matches!(&error, EnvironmentError::Api { status: 500, detail } if detail == "Internal error in the environments service"),
        "{error:?}"
    );
    let error = scope
        .create(&CreateEnvironment::named("anything"))
        .await
        .unwrap_err();
    assert_eq!(error.status_code(), Some(500));
    assert!(control_plane.organization(&org("new")).await.is_err());
    assert_eq!(control_plane.verify_worker_token("efw_x").await, None);
}

#[tokio::test]
async fn opening_an_unusable_path_is_an_open_error() {
    let directory = tempfile::tempdir().unwrap();
    let blocker = directory.path().join("file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let error =
        ControlPlane::open_sqlite(&blocker.join("envform.db"), ControlPlaneConfig::default())
            .await
            .unwrap_err();
    assert!(
        matches!(&error, ControlPlaneError::Open { path, .. } if path.ends_with("file/envform.db"))
    );
}

#[tokio::test]
async fn an_immediate_provisioner_settles_within_the_call_that_started_it() {
    let config = ControlPlaneConfig {
        provisioner: BuiltinProvisionerConfig {
            fail_organizations: BTreeSet::from([org("doomed")]),
            ..BuiltinProvisionerConfig::default()
        },
        ..ControlPlaneConfig::default()
    };
    let control_plane = ControlPlane::open_in_memory(config).await.unwrap();
    // No polling: the first list already sees the outcome.
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    assert_eq!(default_environment(&scope).await.status, Status::Active);

    let doomed = control_plane.organization(&org("doomed")).await.unwrap();
    assert_eq!(default_environment(&doomed).await.status, Status::Error);
    // The retry a create starts has failed again by the time the create returns.
    let created = doomed
        .create(&CreateEnvironment::named("again"))
        .await
        .unwrap();
    assert_eq!(created.status, Status::Error);
    assert!(created.error_message.is_some());
    assert_ne!(
        created.provisioning_workflow_id, None,
        "the retry's workflow is recorded"
    );
    // A shutdown right after access leaves nothing half-provisioned.
    let fresh = control_plane.organization(&org("fresh")).await.unwrap();
    control_plane.shutdown().await;
    assert_eq!(default_environment(&fresh).await.status, Status::Active);
}

/// A provisioner that derives its workflow id, retries failures by itself, and fails its first
/// `failures` calls (as a Temporal server that is down, then back).
struct RetryingProvisioner {
    calls: AtomicUsize,
    failures: usize,
}

#[async_trait::async_trait]
impl NamespaceProvisioner for RetryingProvisioner {
    async fn provision(
        &self,
        organization: &OrganizationId,
        workflow_id: &str,
    ) -> Result<ProvisionedNamespace, String> {
        assert_eq!(workflow_id, format!("provision-{organization}"));
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if call < self.failures {
            return Err(format!("Temporal unreachable (attempt {})", call + 1));
        }
        Ok(ProvisionedNamespace {
            temporal_namespace: format!("ns-{organization}"),
            temporal_namespace_id: "ns-id".to_owned(),
        })
    }

    fn workflow_id(&self, organization: &OrganizationId) -> Option<String> {
        Some(format!("provision-{organization}"))
    }

    fn retry_backoff(&self) -> Option<backon::ExponentialBuilder> {
        Some(
            backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(20))
                .with_max_delay(Duration::from_millis(40))
                .without_max_times(),
        )
    }
}

#[tokio::test]
async fn a_provisioner_that_retries_heals_errored_environments_without_another_request() {
    let provisioner = Arc::new(RetryingProvisioner {
        calls: AtomicUsize::new(0),
        failures: 3,
    });
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let control_plane = ControlPlane::new(
        store,
        Arc::clone(&provisioner) as Arc<dyn NamespaceProvisioner>,
        ControlPlaneConfig::default(),
    );
    let scope = control_plane.organization(&org("acme")).await.unwrap();
    let id = default_environment(&scope).await.id;
    // The first attempt fails at once: `error`, with the provisioner's message.
    let failed = scope.get(id).await.unwrap();
    assert_eq!(failed.status, Status::Error, "{failed:?}");
    assert!(
        failed
            .error_message
            .as_deref()
            .is_some_and(|message| message.starts_with("Temporal unreachable")),
        "{failed:?}"
    );
    assert_eq!(
        failed.provisioning_workflow_id.as_deref(),
        Some("provision-acme")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let healed = loop {
        let current = scope.get(id).await.unwrap();
        if current.status == Status::Active {
            break current;
        }
        assert!(Instant::now() < deadline, "never healed: {current:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(healed.temporal_namespace.as_deref(), Some("ns-acme"));
    assert_eq!(healed.error_message, None);
    assert_eq!(provisioner.calls.load(Ordering::SeqCst), 4);
    control_plane.shutdown().await;
}
