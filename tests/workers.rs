//! Worker pools end to end: real `envform worker start` processes against a real `envform serve`
//! with a short heartbeat interval — `max_workers`, deletion, token rotation, `kill -9` expiry,
//! SIGTERM deregistration, plans that stop workers, the audit log, and the two credentials
//! never standing in for each other.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use envform::api::{
    ClientConfig, ControlPlaneClient, EnvironmentError, EnvironmentsApi, Heartbeat, RegisterWorker,
    WorkerClient, WorkerId, WorkerToken, WorkersApi,
};
use serde_json::Value;

use crate::support::{KEY_A, Scenario, Server, envform, worker_start_command};

/// The servers' heartbeat interval: short, so expiry (three intervals) is quick to observe.
const INTERVAL: Duration = Duration::from_millis(400);

/// A scenario whose server has the heartbeat interval [`INTERVAL`].
fn scenario() -> Scenario {
    Scenario::with(Server::options().args(["--heartbeat-interval", "400ms"]))
}

/// A running `envform worker start`; killed when dropped.
struct WorkerProcess {
    child: Child,
    log: PathBuf,
}

impl WorkerProcess {
    fn start(scenario: &Scenario, token: &str, environment: &str) -> WorkerProcess {
        let log = scenario
            .path()
            .join(format!("worker-{}.log", uuid::Uuid::new_v4()));
        let child = worker_start_command(&scenario.server.url, token, environment, &log)
            .spawn()
            .unwrap();
        WorkerProcess { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn registered(&self) -> bool {
        self.log()
            .contains("registered; this worker runs no agent tasks")
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the process to end; panics after `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker still running after {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after `timeout`.
fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Text with the report's line wrapping undone: `│` gutters removed, whitespace collapsed.
fn flat(text: &str) -> String {
    text.replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn json_of(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn create_pool(scenario: &Scenario, name: &str, max_workers: u32) {
    let output = scenario
        .envform()
        .args(["env", "create", "--name", name, "-o", "json"])
        .args(["--max-workers", &max_workers.to_string()])
        .output()
        .unwrap();
    json_of(&output);
}

/// A fresh worker token of `name`, from `env worker-command --reveal`.
fn token(scenario: &Scenario, name: &str) -> String {
    let output = scenario
        .envform()
        .args(["env", "worker-command", name, "--reveal", "-o", "json"])
        .output()
        .unwrap();
    let command = json_of(&output);
    assert_eq!(command["can_register"], true, "{command}");
    command["worker_token"].as_str().unwrap().to_owned()
}

/// `active_workers` of `name`, or `None` when it does not exist.
fn active_workers(scenario: &Scenario, name: &str) -> Option<u64> {
    let output = scenario
        .envform()
        .args(["env", "get", name, "-o", "json"])
        .output()
        .unwrap();
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice::<Value>(&output.stdout).unwrap()["active_workers"].as_u64()
}

/// The whole audit log of organization A, as `GET /api/v1/audit` returns it.
fn audit_log(server: &Server) -> Vec<Value> {
    let client = client(server, KEY_A);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let events = runtime.block_on(client.audit_events(None)).unwrap();
    serde_json::from_value(serde_json::to_value(events).unwrap()).unwrap()
}

/// `(action, environment_name)` of each event, in order.
fn actions(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|event| {
            (
                event["action"].as_str().unwrap().to_owned(),
                event["environment_name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// No token is in the audit log, the server's log or its database files.
fn assert_no_token_in_clear(scenario: &Scenario, tokens: &[&str]) {
    let server = &scenario.server;
    let audit = serde_json::to_string(&audit_log(server)).unwrap();
    assert!(!audit.contains("efw_"), "a token in the audit log: {audit}");
    let mut haystacks = vec![("server log".to_owned(), server.log().into_bytes())];
    for entry in std::fs::read_dir(scenario.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("serve.db") {
            haystacks.push((name, std::fs::read(&path).unwrap()));
        }
    }
    for token in tokens {
        let secret = &token.as_bytes()["efw_".len()..];
        for (name, bytes) in &haystacks {
            assert!(
                !bytes.windows(secret.len()).any(|window| window == secret),
                "a worker token in clear in {name}"
            );
        }
    }
}

fn client(server: &Server, key: &str) -> ControlPlaneClient {
    let mut config = ClientConfig::new(key.to_owned());
    config.base_url = server.url.clone();
    config.max_retries = 0;
    ControlPlaneClient::with_config(config).unwrap()
}

#[test]
fn max_workers_admits_two_and_deleting_the_environment_stops_them() {
    let scenario = scenario();
    create_pool(&scenario, "pool", 2);
    let token = token(&scenario, "pool");

    let mut workers: Vec<WorkerProcess> = (0..3)
        .map(|_| WorkerProcess::start(&scenario, &token, "pool"))
        .collect();
    // Exactly one of the three is refused, whichever lost the race.
    wait_until(Duration::from_secs(20), "one worker is refused", || {
        workers.iter_mut().any(|worker| worker.exited().is_some())
    });
    let refused = workers
        .iter_mut()
        .position(|worker| worker.exited().is_some())
        .unwrap();
    let mut refused = workers.remove(refused);
    assert_eq!(refused.wait_exit(Duration::from_secs(1)).code(), Some(1));
    let message = flat(&refused.log());
    assert!(
        message.contains(
            "environment 'pool' already has 2 active workers: its max_workers limit is 2"
        ),
        "{message}"
    );
    wait_until(Duration::from_secs(20), "two workers registered", || {
        workers.iter().all(WorkerProcess::registered)
    });
    assert_eq!(active_workers(&scenario, "pool"), Some(2));
    // They keep their places past the expiry window by sending heartbeats.
    std::thread::sleep(INTERVAL * 4);
    assert_eq!(active_workers(&scenario, "pool"), Some(2));
    assert!(workers.iter_mut().all(|worker| worker.exited().is_none()));

    scenario
        .envform()
        .args(["env", "delete", "pool", "--yes", "--force"])
        .assert()
        .success();
    let deleted = Instant::now();
    for worker in &mut workers {
        let status = worker.wait_exit(Duration::from_secs(10));
        assert_eq!(status.code(), Some(0), "{}", worker.log());
        assert!(
            worker
                .log()
                .contains("stopping: environment 'pool' was deleted"),
            "{}",
            worker.log()
        );
    }
    let elapsed = deleted.elapsed();
    assert!(
        elapsed <= INTERVAL * 2,
        "workers took {elapsed:?} to stop, more than two heartbeat intervals"
    );

    let log = audit_log(&scenario.server);
    let pool: Vec<(String, String)> = actions(&log)
        .into_iter()
        .filter(|(_, name)| name == "pool")
        .collect();
    let expected: Vec<(String, String)> = [
        "environment.create",
        "worker_token.issue",
        "worker.register",
        "worker.register",
        "environment.delete",
    ]
    .iter()
    .map(|action| ((*action).to_owned(), "pool".to_owned()))
    .collect();
    assert_eq!(pool, expected);
    let create = &log[1];
    assert_eq!(create["actor"].as_str().unwrap().len(), "key:".len() + 8);
    assert_eq!(create["after"]["configuration"]["max_workers"], 2);
    assert_no_token_in_clear(&scenario, &[&token]);

    // The history outlives the environment.
    let history = json_of(
        &scenario
            .envform()
            .args(["env", "history", "pool", "-o", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(history.as_array().unwrap().len(), 5);
}

#[test]
fn rotation_stops_old_workers_and_the_new_token_registers() {
    let scenario = scenario();
    create_pool(&scenario, "rotating", 5);
    let old_token = token(&scenario, "rotating");
    let mut old_workers: Vec<WorkerProcess> = (0..2)
        .map(|_| WorkerProcess::start(&scenario, &old_token, "rotating"))
        .collect();
    wait_until(Duration::from_secs(20), "two workers registered", || {
        old_workers.iter().all(WorkerProcess::registered)
    });

    let output = scenario
        .envform()
        .args([
            "env",
            "rotate-token",
            "rotating",
            "--yes",
            "--reveal",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let rotated = json_of(&output);
    let new_token = rotated["worker_token"].as_str().unwrap().to_owned();
    assert_ne!(new_token, old_token);
    assert!(rotated["command"].as_str().unwrap().contains(&new_token));
    // Without --reveal the token is masked.
    let masked = scenario
        .envform()
        .args(["env", "rotate-token", "rotating", "--yes"])
        .output()
        .unwrap();
    assert!(masked.status.success());
    assert!(!String::from_utf8_lossy(&masked.stdout).contains("efw_0"));
    // That second rotation revoked the first new token too; take the current one.
    let new_token = token(&scenario, "rotating");

    for worker in &mut old_workers {
        let status = worker.wait_exit(INTERVAL * 5);
        assert_eq!(status.code(), Some(0), "{}", worker.log());
        assert!(worker.log().contains("was rotated"), "{}", worker.log());
    }
    assert_eq!(active_workers(&scenario, "rotating"), Some(0));

    let mut stale = WorkerProcess::start(&scenario, &old_token, "rotating");
    assert_eq!(stale.wait_exit(Duration::from_secs(10)).code(), Some(1));
    assert!(
        flat(&stale.log()).contains("unknown, expired or revoked worker token"),
        "{}",
        stale.log()
    );

    let fresh = WorkerProcess::start(&scenario, &new_token, "rotating");
    wait_until(Duration::from_secs(20), "the new worker registered", || {
        fresh.registered()
    });
    assert_eq!(active_workers(&scenario, "rotating"), Some(1));

    // SIGTERM deregisters at once: no waiting for the expiry window.
    let mut fresh = fresh;
    fresh.signal("-TERM");
    assert_eq!(fresh.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(fresh.log().contains("deregistered"), "{}", fresh.log());
    assert_eq!(active_workers(&scenario, "rotating"), Some(0));

    let rotating: Vec<String> = actions(&audit_log(&scenario.server))
        .into_iter()
        .filter(|(_, name)| name == "rotating")
        .map(|(action, _)| action)
        .collect();
    for expected in [
        "worker_token.rotate",
        "worker.register",
        "worker.deregister",
    ] {
        assert!(
            rotating.iter().any(|action| action == expected),
            "{expected} missing from {rotating:?}"
        );
    }
    assert_eq!(
        rotating
            .iter()
            .filter(|action| *action == "worker_token.rotate")
            .count(),
        2
    );
    let rotation = audit_log(&scenario.server)
        .into_iter()
        .find(|event| event["action"] == "worker_token.rotate")
        .unwrap();
    assert_eq!(rotation["after"]["worker_token"], "rotated");
    assert_no_token_in_clear(&scenario, &[&old_token, &new_token]);
}

#[test]
fn a_killed_worker_stops_counting_after_the_expiry_window() {
    let scenario = scenario();
    create_pool(&scenario, "crashy", 3);
    let token = token(&scenario, "crashy");
    let mut worker = WorkerProcess::start(&scenario, &token, "crashy");
    wait_until(Duration::from_secs(20), "the worker registered", || {
        worker.registered()
    });
    assert_eq!(active_workers(&scenario, "crashy"), Some(1));

    worker.signal("-KILL");
    worker.wait_exit(Duration::from_secs(5));
    let killed = Instant::now();
    // Its last heartbeat is at most one interval old: it still counts for a while.
    assert_eq!(active_workers(&scenario, "crashy"), Some(1));
    wait_until(Duration::from_secs(20), "the count drops", || {
        active_workers(&scenario, "crashy") == Some(0)
    });
    let elapsed = killed.elapsed();
    assert!(
        elapsed >= INTERVAL * 2 - Duration::from_millis(100),
        "dropped after {elapsed:?}, before the expiry window"
    );
    assert!(
        elapsed <= INTERVAL * 3 + Duration::from_secs(2),
        "{elapsed:?}"
    );
    let listed = json_of(
        &scenario
            .envform()
            .args(["env", "workers", "crashy", "-o", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(listed[0]["status"], "stale", "{listed}");
}

#[test]
fn apply_refuses_to_stop_active_workers_without_allow_disruption() {
    let scenario = scenario()
        .with_file("envform.yaml")
        .with_state("state.json");
    scenario.write(
        "version: 1\nenvironments:\n  - name: service\n  - name: batch\n    status: active\n",
    );
    scenario.apply().assert().success();
    let service_token = token(&scenario, "service");
    let batch_token = token(&scenario, "batch");
    let mut service = WorkerProcess::start(&scenario, &service_token, "service");
    let mut batch = WorkerProcess::start(&scenario, &batch_token, "batch");
    wait_until(Duration::from_secs(20), "both workers registered", || {
        service.registered() && batch.registered()
    });

    // `service` leaves the file (deleted), `batch` is made inactive.
    scenario.write("version: 1\nenvironments:\n  - name: batch\n    status: inactive\n");
    let plan = scenario
        .plan()
        .args(["--out", "plan.json"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("# service will be destroyed (1 active worker will stop)"),
        "{shown}"
    );
    assert!(
        shown.contains("Disruption: 2 active workers will stop."),
        "{shown}"
    );
    // The warning wraps at 80 columns.
    assert!(
        flat(&shown).contains("apply and destroy need --allow-disruption"),
        "{shown}"
    );
    let json_plan = json_of(&scenario.plan().args(["--format", "json"]).output().unwrap());
    assert_eq!(json_plan["disruptions"].as_array().unwrap().len(), 2);

    let refused = scenario.apply().output().unwrap();
    let stderr = flat(&String::from_utf8_lossy(&refused.stderr));
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("envform::plan::disruption"), "{stderr}");
    assert!(
        stderr.contains("deleting `service`: 1 active worker will stop"),
        "{stderr}"
    );
    assert!(
        stderr.contains("deactivating `batch`: 1 active worker will stop"),
        "{stderr}"
    );
    // The saved plan is refused the same way.
    let saved = scenario.apply().arg("plan.json").output().unwrap();
    assert_eq!(saved.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&saved.stderr).contains("envform::plan::disruption"));
    // Nothing was applied: both environments are there, active, with their workers.
    assert_eq!(active_workers(&scenario, "service"), Some(1));
    assert_eq!(active_workers(&scenario, "batch"), Some(1));
    assert!(service.exited().is_none() && batch.exited().is_none());

    scenario
        .apply()
        .arg("--allow-disruption")
        .assert()
        .success();
    assert_eq!(active_workers(&scenario, "service"), None);
    for (worker, reason) in [
        (&mut service, "environment 'service' was deleted"),
        (&mut batch, "environment 'batch' is inactive"),
    ] {
        assert_eq!(worker.wait_exit(INTERVAL * 5).code(), Some(0));
        assert!(worker.log().contains(reason), "{}", worker.log());
    }
    let log = actions(&audit_log(&scenario.server));
    assert!(log.contains(&("environment.delete".to_owned(), "service".to_owned())));
    assert!(log.contains(&("environment.update".to_owned(), "batch".to_owned())));
    assert_no_token_in_clear(&scenario, &[&service_token, &batch_token]);
}

#[test]
fn worker_tokens_and_api_keys_never_stand_in_for_each_other() {
    let scenario = scenario();
    create_pool(&scenario, "guarded", 2);
    let token = token(&scenario, "guarded");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // A worker token is no API key.
        let as_key = client(&scenario.server, &token);
        assert!(matches!(
            as_key.list(None).await,
            Err(EnvironmentError::Unauthorized { .. })
        ));
        // An API key is no worker token.
        let as_token = WorkerClient::new(
            &scenario.server.url,
            &WorkerToken::new(KEY_A),
            Duration::from_secs(5),
        )
        .unwrap();
        let request = RegisterWorker {
            environment: "guarded".to_owned(),
            hostname: "test".to_owned(),
            version: "test".to_owned(),
        };
        assert!(matches!(
            as_token.register(&request).await,
            Err(EnvironmentError::Unauthorized { .. })
        ));
        let worker = WorkerClient::new(
            &scenario.server.url,
            &WorkerToken::new(&token),
            Duration::from_secs(5),
        )
        .unwrap();
        let registration = worker.register(&request).await.unwrap();
        assert_eq!(registration.heartbeat_interval(), INTERVAL);
        // The right worker with the wrong credential is refused, and not stopped.
        assert!(matches!(
            as_token
                .heartbeat(registration.worker_id, &Heartbeat::default())
                .await,
            Err(EnvironmentError::Unauthorized { .. })
        ));
        worker
            .heartbeat(registration.worker_id, &Heartbeat { busy: true })
            .await
            .unwrap();
        let environment = client(&scenario.server, KEY_A)
            .get(registration.environment_id)
            .await
            .unwrap();
        assert_eq!(
            (
                environment.active_workers,
                environment.busy_workers,
                environment.idle_workers
            ),
            (Some(1), Some(1), Some(0))
        );
        // An unknown worker is told to stop.
        let unknown = worker
            .heartbeat(WorkerId::new_random(), &Heartbeat::default())
            .await
            .unwrap_err();
        assert_eq!(unknown.status_code(), Some(410));
        // The wrong environment name is refused.
        let elsewhere = RegisterWorker {
            environment: "default".to_owned(),
            ..request.clone()
        };
        assert_eq!(
            worker.register(&elsewhere).await.unwrap_err().status_code(),
            Some(400)
        );
        // API-key calls: the worker list, and a 404 for another environment id.
        let keyed = client(&scenario.server, KEY_A);
        let listed = keyed
            .list_workers(registration.environment_id)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].busy);
        let missing = keyed
            .list_workers(envform::api::EnvironmentId::new_random())
            .await
            .unwrap_err();
        assert_eq!(missing.status_code(), Some(404));
        worker.deregister(registration.worker_id).await.unwrap();
        assert_eq!(
            worker
                .deregister(registration.worker_id)
                .await
                .unwrap_err()
                .status_code(),
            Some(404)
        );
    });
    // A malformed audit filter is a 422 naming the query parameter.
    let answer = runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/audit?environment_id=nope",
                scenario.server.url
            ))
            .bearer_auth(KEY_A)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    });
    assert_eq!(answer.0, 422, "{}", answer.1);
    assert!(answer.1.contains("environment_id"), "{}", answer.1);
}

#[test]
fn embedded_target_rotates_and_shows_history() {
    let dir = tempfile::tempdir().unwrap();
    envform(dir.path())
        .args(["env", "create", "--name", "local-pool"])
        .assert()
        .success();
    let output = envform(dir.path())
        .args(["env", "rotate-token", "local-pool", "--yes", "-o", "json"])
        .output()
        .unwrap();
    let rotated = json_of(&output);
    assert!(
        rotated["worker_token"]
            .as_str()
            .unwrap()
            .contains("(masked)")
    );
    // Without --yes and without a terminal, nothing is rotated.
    envform(dir.path())
        .args(["env", "rotate-token", "local-pool"])
        .assert()
        .failure();
    let history = envform(dir.path())
        .args(["env", "history", "local-pool"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&history.stdout);
    assert!(history.status.success(), "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("AT"), "{table}");
    assert!(lines[1].contains("environment.create"), "{table}");
    assert!(lines[2].contains("worker_token.rotate"), "{table}");
    assert_eq!(lines.len(), 3, "{table}");
    // Recorded as the local user, never as a key.
    assert!(lines[1].contains('@'), "{table}");
    envform(dir.path())
        .args(["env", "history", "never-existed"])
        .assert()
        .failure();
}
