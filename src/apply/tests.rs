//! The executor against the in-process control plane and a real local state file.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::*;
use crate::api::{EnvironmentsApi, OrganizationId, Status};
use crate::control_plane::{ControlPlane, ControlPlaneConfig};
use crate::desired::{Desired, SourceFile, Sources};
use crate::plan::{Action, PlanOptions, Step, diff};
use crate::state::{LocalBackend, State, StateBackend};

fn desired(yaml: &str) -> Desired {
    crate::desired::parse(Sources {
        files: vec![SourceFile {
            path: PathBuf::from("envform.yaml"),
            text: yaml.to_owned(),
        }],
    })
    .expect("valid desired state")
}

struct Fixture {
    control_plane: ControlPlane,
    api: Arc<dyn EnvironmentsApi>,
    backend: LocalBackend,
    _directory: tempfile::TempDir,
}

async fn fixture(config: ControlPlaneConfig) -> Fixture {
    let control_plane = ControlPlane::open_in_memory(config).await.unwrap();
    let scope = control_plane
        .organization(&OrganizationId("org".into()))
        .await
        .unwrap();
    let directory = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(directory.path().join("state.json"));
    Fixture {
        control_plane,
        api: Arc::new(scope),
        backend,
        _directory: directory,
    }
}

/// Records what the executor reports, in order.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

impl Progress for Recorder {
    fn started(&self, step: &Step) {
        self.events
            .lock()
            .unwrap()
            .push(format!("start {}", step.name));
    }
    fn waiting(&self, step: &Step, elapsed: std::time::Duration, waiting: Waiting) {
        self.events.lock().unwrap().push(format!(
            "waiting {} {:?} {}ms",
            step.name,
            waiting,
            elapsed.as_millis()
        ));
    }
    fn finished(&self, step: &Step, outcome: &StepOutcome) {
        self.events
            .lock()
            .unwrap()
            .push(format!("{} {}", outcome.label(), step.name));
    }
    fn note(&self, message: &str) {
        self.events.lock().unwrap().push(format!("note {message}"));
    }
}

impl Fixture {
    async fn state(&self) -> State {
        self.backend
            .load()
            .await
            .unwrap()
            .unwrap_or_else(|| State::empty("test"))
    }

    async fn apply(&self, desired: &Desired, progress: &dyn Progress) -> ApplyReport {
        self.apply_with(desired, &ApplyOptions::default(), progress)
            .await
    }

    async fn apply_with(
        &self,
        desired: &Desired,
        options: &ApplyOptions,
        progress: &dyn Progress,
    ) -> ApplyReport {
        let state = self.state().await;
        let live = self.api.list(None).await.unwrap();
        let plan = diff(desired, &live, &state, &PlanOptions::default()).unwrap();
        let bound = plan.bind(desired, &live, state, false).unwrap();
        execute(
            bound,
            self.api.clone(),
            Journal {
                backend: &self.backend,
                lock: None,
            },
            options,
            CancellationToken::new(),
            progress,
        )
        .await
    }

    async fn replan(&self, desired: &Desired) -> crate::plan::Plan {
        let state = self.state().await;
        let live = self.api.list(None).await.unwrap();
        diff(desired, &live, &state, &PlanOptions::default()).unwrap()
    }
}

const STAGES: &str = r#"
version: 1
environments:
  - name: development
    configuration: {max_workers: 5}
  - name: staging
    depends_on: [development]
    metadata: {stage: staging}
  - name: production
    status: inactive
    depends_on: [staging]
    execution_environment:
      env_vars: {API_TOKEN: "s3cr3t-value"}
"#;

#[tokio::test]
async fn applies_in_dependency_order_and_converges() {
    let fixture = fixture(ControlPlaneConfig::default()).await;
    let desired = desired(STAGES);
    let recorder = Recorder::default();
    let report = fixture.apply(&desired, &recorder).await;
    assert!(report.succeeded(), "{}", report.table());
    let events = recorder.events.lock().unwrap().clone();
    let position = |event: &str| events.iter().position(|e| e == event).unwrap();
    assert!(position("done development") < position("start staging"));
    assert!(position("done staging") < position("start production"));

    let state = fixture.state().await;
    assert_eq!(
        state.resources.keys().cloned().collect::<BTreeSet<_>>(),
        ["development", "production", "staging"]
            .map(String::from)
            .into()
    );
    assert!(state.intents.is_empty());
    assert_eq!(state.serial, report.state.serial);
    // Secrets reach the service but never the state file.
    let text = std::fs::read_to_string(fixture._directory.path().join("state.json")).unwrap();
    assert!(!text.contains("s3cr3t-value"));
    let live = fixture.api.list(None).await.unwrap();
    let production = live.iter().find(|env| env.name == "production").unwrap();
    assert_eq!(production.status, Status::Inactive);
    assert_eq!(
        production.execution_environment.as_ref().unwrap().env_vars["API_TOKEN"],
        "s3cr3t-value"
    );

    let again = fixture.replan(&desired).await;
    assert!(!again.has_changes(), "second plan: {:?}", again.steps());
    fixture.control_plane.shutdown().await;
}

/// The real API, except that creating `refused` is answered with a validation error.
struct RefuseOneCreate {
    inner: Arc<dyn EnvironmentsApi>,
}

#[async_trait::async_trait]
impl EnvironmentsApi for RefuseOneCreate {
    async fn list(
        &self,
        status_filter: Option<Status>,
    ) -> Result<Vec<crate::api::Environment>, crate::api::EnvironmentError> {
        self.inner.list(status_filter).await
    }
    async fn get(
        &self,
        id: crate::api::EnvironmentId,
    ) -> Result<crate::api::Environment, crate::api::EnvironmentError> {
        self.inner.get(id).await
    }
    async fn create(
        &self,
        data: &crate::api::CreateEnvironment,
    ) -> Result<crate::api::Environment, crate::api::EnvironmentError> {
        if data.name == "refused" {
            return Err(crate::api::EnvironmentError::Validation {
                errors: vec![crate::api::FieldError::body(
                    &["name"],
                    "refused",
                    "value_error",
                )],
            });
        }
        self.inner.create(data).await
    }
    async fn update(
        &self,
        id: crate::api::EnvironmentId,
        patch: &crate::api::UpdateEnvironment,
    ) -> Result<crate::api::Environment, crate::api::EnvironmentError> {
        self.inner.update(id, patch).await
    }
    async fn delete(
        &self,
        id: crate::api::EnvironmentId,
    ) -> Result<(), crate::api::EnvironmentError> {
        self.inner.delete(id).await
    }
    async fn get_worker_command(
        &self,
        id: crate::api::EnvironmentId,
    ) -> Result<crate::api::WorkerCommand, crate::api::EnvironmentError> {
        self.inner.get_worker_command(id).await
    }
}

#[tokio::test]
async fn dependents_of_a_failed_step_are_skipped_and_others_continue() {
    let mut fixture = fixture(ControlPlaneConfig::default()).await;
    fixture.api = Arc::new(RefuseOneCreate {
        inner: fixture.api.clone(),
    });
    let desired = desired(
        "version: 1\nenvironments:\n  - name: refused\n  - name: child\n    depends_on: [refused]\n  - name: grandchild\n    depends_on: [child]\n  - name: independent\n",
    );
    let recorder = Recorder::default();
    let report = fixture.apply(&desired, &recorder).await;
    // The failure is reported before the skips it causes.
    let events = recorder.events.lock().unwrap().clone();
    let failed = events.iter().position(|event| event == "failed refused");
    let skipped = events.iter().position(|event| event == "skipped child");
    assert!(failed.is_some() && failed < skipped, "{events:?}");
    assert!(!report.succeeded());
    let labels: Vec<(String, &str)> = report
        .results
        .iter()
        .map(|result| (result.name.clone(), result.outcome.label()))
        .collect();
    for (name, label) in [
        ("refused", "failed"),
        ("child", "skipped"),
        ("grandchild", "skipped"),
        ("independent", "done"),
    ] {
        assert!(
            labels.contains(&(name.to_owned(), label)),
            "{name} should be {label}: {labels:?}"
        );
    }
    let state = fixture.state().await;
    assert!(state.resources.contains_key("independent"));
    assert!(!state.resources.contains_key("refused"));
    // A failed create that certainly did not happen leaves no intent behind.
    assert!(state.intents.is_empty());
    fixture.control_plane.shutdown().await;
}

#[tokio::test]
async fn provisioning_failure_fails_the_create_and_skips_its_dependents() {
    let mut config = ControlPlaneConfig::default();
    config
        .provisioner
        .fail_organizations
        .insert(OrganizationId("org".into()));
    let fixture = fixture(config).await;
    let desired = desired(
        "version: 1\nenvironments:\n  - name: base\n  - name: dependent\n    depends_on: [base]\n",
    );
    let report = fixture.apply(&desired, &SilentProgress).await;
    assert!(!report.succeeded());
    let outcome = |name: &str| {
        report
            .results
            .iter()
            .find(|result| result.name == name)
            .unwrap()
            .outcome
            .clone()
    };
    match outcome("base") {
        StepOutcome::Failed { message } => {
            assert!(message.contains("provisioning failed"), "{message}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(matches!(outcome("dependent"), StepOutcome::Skipped { .. }));
    assert!(report.table().contains("skipped"));
    fixture.control_plane.shutdown().await;
}

#[tokio::test]
async fn an_interrupt_before_start_runs_nothing_and_saves_nothing() {
    let fixture = fixture(ControlPlaneConfig::default()).await;
    let desired = desired(STAGES);
    let state = fixture.state().await;
    let live = fixture.api.list(None).await.unwrap();
    let plan = diff(&desired, &live, &state, &PlanOptions::default()).unwrap();
    let cancel = CancellationToken::new();
    cancel.cancel();
    assert!(
        plan.steps()
            .iter()
            .any(|step| step.action == Action::Create)
    );
    let bound = plan.bind(&desired, &live, state, false).unwrap();
    let report = execute(
        bound,
        fixture.api.clone(),
        Journal {
            backend: &fixture.backend,
            lock: None,
        },
        &ApplyOptions {
            parallelism: 1,
            ..ApplyOptions::default()
        },
        cancel,
        &SilentProgress,
    )
    .await;
    assert!(report.interrupted);
    // The first batch may have been scheduled before the interrupt was seen; nothing after it.
    let done = report
        .results
        .iter()
        .filter(|result| result.outcome.is_done())
        .count();
    assert!(done <= 1, "{}", report.table());
    assert!(
        report
            .results
            .iter()
            .any(|result| result.outcome == StepOutcome::Interrupted)
    );
    // Intents written ahead for creates that never started are taken back.
    assert!(
        report.state.intents.is_empty(),
        "{:?}",
        report.state.intents
    );
    fixture.control_plane.shutdown().await;
}

#[tokio::test]
async fn steps_that_change_nothing_are_neither_saved_nor_listed() {
    let fixture = fixture(ControlPlaneConfig::default()).await;
    let report = fixture.apply(&desired(STAGES), &Recorder::default()).await;
    assert!(report.succeeded(), "{}", report.table());
    let serial = fixture.state().await.serial;

    // One environment changes; the other two are no-op steps whose records are current.
    let changed = desired(&STAGES.replace("max_workers: 5", "max_workers: 6"));
    let recorder = Recorder::default();
    let report = fixture.apply(&changed, &recorder).await;
    assert!(report.succeeded(), "{}", report.table());
    assert_eq!(fixture.state().await.serial, serial + 1, "one save");
    let table = report.table();
    let listed: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(listed, ["development"], "{table}");
    assert_eq!(report.counts()[0], ("done", 1));
    fixture.control_plane.shutdown().await;
}

#[tokio::test]
async fn a_step_that_waits_is_reported_at_each_interval_with_what_it_waits_for() {
    let mut config = ControlPlaneConfig::default();
    config.provisioner.delay = std::time::Duration::from_millis(400);
    let fixture = fixture(config).await;
    let desired = desired("version: 1\nenvironments:\n  - name: slow\n");
    let recorder = Recorder::default();
    let options = ApplyOptions {
        wait_report_interval: std::time::Duration::from_millis(100),
        ..ApplyOptions::default()
    };
    let report = fixture.apply_with(&desired, &options, &recorder).await;
    assert!(report.succeeded(), "{}", report.table());
    let events = recorder.events.lock().unwrap().clone();
    let waits: Vec<&String> = events
        .iter()
        .filter(|event| event.starts_with("waiting slow Provisioning"))
        .collect();
    assert!(waits.len() >= 2, "{events:?}");
    // Reports come between the start and the end, with growing elapsed times.
    let start = events.iter().position(|event| event == "start slow");
    let end = events.iter().position(|event| event == "done slow");
    let first = events.iter().position(|event| event.starts_with("waiting"));
    assert!(start < first && first < end, "{events:?}");
    fixture.control_plane.shutdown().await;
}

#[tokio::test]
async fn a_quick_apply_reports_no_wait() {
    let fixture = fixture(ControlPlaneConfig::default()).await;
    let recorder = Recorder::default();
    let report = fixture.apply(&desired(STAGES), &recorder).await;
    assert!(report.succeeded(), "{}", report.table());
    let events = recorder.events.lock().unwrap().clone();
    assert!(
        !events.iter().any(|event| event.starts_with("waiting")),
        "{events:?}"
    );
    fixture.control_plane.shutdown().await;
}
