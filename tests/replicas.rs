//! `envform serve` as three replicas on one PostgreSQL database: every rule one process keeps
//! holds across them, enforced by the database. Requests are spread over the replicas round
//! robin and sent at once; what each test checks is what a load balancer in front of them would
//! let a client see.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use envform::control_plane::state_service::{
    LockEventKind, RecordedLockEvent, check_single_holder,
};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::http_state::chain;
use crate::postgres::{Database, SETTLE};
use crate::support::{KEY_A, KEY_B, Server, ServerOptions};

/// Three replicas on one fresh database, with their logs in a temporary directory.
struct Replicas {
    servers: Vec<Server>,
    database: Database,
    _dir: TempDir,
    http: reqwest::Client,
}

impl Replicas {
    /// Three replicas started one after another with `options`.
    fn start(options: ServerOptions) -> Replicas {
        let database = crate::postgres::database();
        let dir = tempfile::tempdir().expect("temp dir");
        let options = options.postgres(&database);
        let servers = (0..3)
            .map(|index| options.clone().start(&replica_path(dir.path(), index)))
            .collect();
        envform::api::install_crypto_provider();
        Replicas {
            servers,
            database,
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    /// The replica that serves request number `index` (round robin).
    fn replica(&self, index: usize) -> &Server {
        &self.servers[index % self.servers.len()]
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("a request to a replica");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Organization A's environment list, from replica `index`.
    async fn list(&self, index: usize) -> Vec<Value> {
        let request = self
            .http
            .get(format!("{}/api/v1/environments", self.replica(index).url))
            .bearer_auth(KEY_A);
        let (status, body) = self.send(request).await;
        assert_eq!(status, 200, "{body}");
        body.as_array().expect("a list").clone()
    }

    /// Creates an environment of organization A through replica `index`.
    async fn create(&self, index: usize, body: Value) -> Value {
        let request = self
            .http
            .post(format!("{}/api/v1/environments", self.replica(index).url))
            .bearer_auth(KEY_A)
            .json(&body);
        let (status, body) = self.send(request).await;
        assert_eq!(status, 201, "{body}");
        body
    }
}

fn replica_path(dir: &Path, index: usize) -> std::path::PathBuf {
    dir.join(format!("replica-{index}.db"))
}

fn names(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|environment| environment["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits until every environment of the list from replica 0 is settled (not provisioning).
async fn settled(replicas: &Replicas) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let list = replicas.list(0).await;
        if list
            .iter()
            .all(|environment| environment["status"] != "provisioning")
        {
            return;
        }
        assert!(Instant::now() < deadline, "still provisioning: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_on_one_replica_is_in_the_next_list_on_another() {
    let replicas = Replicas::start(Server::options());
    settled(&replicas).await;
    for round in 0..5 {
        let name = format!("seen-{round}");
        let created = replicas.create(round, json!({ "name": name })).await;
        // The very next list, on each of the other replicas.
        for other in 1..3 {
            let list = replicas.list(round + other).await;
            assert!(
                names(&list).contains(&name),
                "round {round}: replica {} does not list {name}: {:?}",
                (round + other) % 3,
                names(&list)
            );
        }
        let id = created["id"].as_str().expect("an id");
        let request = replicas
            .http
            .patch(format!(
                "{}/api/v1/environments/{id}",
                replicas.replica(round + 1).url
            ))
            .bearer_auth(KEY_A)
            .json(&json!({ "description": format!("round {round}") }));
        assert_eq!(replicas.send(request).await.0, 200);
        let list = replicas.list(round + 2).await;
        let updated = list
            .iter()
            .find(|environment| environment["name"] == name.as_str())
            .expect("listed");
        assert_eq!(updated["description"], format!("round {round}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_registrations_over_three_replicas_admit_exactly_max_workers() {
    let replicas = Replicas::start(Server::options());
    settled(&replicas).await;
    let pool = replicas
        .create(
            0,
            json!({ "name": "pool", "configuration": { "max_workers": 3 } }),
        )
        .await;
    let id = pool["id"].as_str().expect("an id");
    settled(&replicas).await;
    let request = replicas
        .http
        .get(format!(
            "{}/api/v1/environments/{id}/worker-command",
            replicas.replica(1).url
        ))
        .bearer_auth(KEY_A);
    let (status, command) = replicas.send(request).await;
    assert_eq!(status, 200, "{command}");
    let token = command["worker_token"]
        .as_str()
        .expect("a worker token")
        .to_owned();

    let registrations: Vec<_> = (0..30)
        .map(|index| {
            let request = replicas
                .http
                .post(format!(
                    "{}/api/v1/workers/register",
                    replicas.replica(index).url
                ))
                .bearer_auth(&token)
                .json(&json!({
                    "environment": "pool",
                    "hostname": format!("host-{index}"),
                    "version": "test",
                }));
            tokio::spawn(async move {
                let response = request.send().await.expect("a registration");
                response.status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for registration in registrations {
        statuses.push(registration.await.expect("a registration task"));
    }
    statuses.sort_unstable();
    let accepted = statuses.iter().filter(|status| **status == 201).count();
    assert_eq!(accepted, 3, "{statuses:?}");
    assert!(
        statuses.iter().all(|status| [201, 409].contains(status)),
        "every refusal is the max_workers conflict: {statuses:?}"
    );
    let stored = replicas.database.query(&format!(
        "SELECT count(*) FROM workers WHERE environment_id = '{id}'"
    ));
    assert_eq!(stored, ["3"]);
    let list = replicas.list(2).await;
    let pool = list
        .iter()
        .find(|environment| environment["name"] == "pool")
        .expect("listed");
    assert_eq!(pool["active_workers"], 3);
}

fn lock_info(id: &str) -> Value {
    json!({
        "ID": id,
        "Operation": "apply",
        "Info": "",
        "Who": format!("{id}@replica-test"),
        "Version": "test",
        "Created": "2026-01-02T03:04:05Z",
        "Path": "",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_locks_over_three_replicas_have_one_holder_and_growing_tokens() {
    let replicas = Replicas::start(Server::options());
    let lock = reqwest::Method::from_bytes(b"LOCK").expect("a method");
    let unlock = reqwest::Method::from_bytes(b"UNLOCK").expect("a method");
    let address =
        |index: usize| format!("{}/api/v1/state/shared/lock", replicas.replica(index).url);
    let mut last_token = 0;
    for round in 0..3 {
        let attempts: Vec<_> = (0..20)
            .map(|index| {
                let id = format!("lock-{round}-{index}");
                let request = replicas
                    .http
                    .request(lock.clone(), address(index))
                    .bearer_auth(KEY_A)
                    .json(&lock_info(&id));
                tokio::spawn(async move {
                    let response = request.send().await.expect("a LOCK");
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    (status, id, body)
                })
            })
            .collect();
        let mut granted = Vec::new();
        for attempt in attempts {
            let (status, id, body) = attempt.await.expect("a LOCK task");
            match status {
                200 => granted.push((id, body)),
                423 => {}
                other => panic!("LOCK answered {other}: {body}"),
            }
        }
        assert_eq!(granted.len(), 1, "round {round}: {granted:?}");
        let (holder, grant) = &granted[0];
        let token = grant["fencing_token"].as_u64().expect("a fencing token");
        assert!(
            token > last_token,
            "round {round}: token {token} after {last_token}"
        );
        last_token = token;
        let request = replicas
            .http
            .request(unlock.clone(), address(round + 1))
            .bearer_auth(KEY_A)
            .json(&lock_info(holder));
        assert_eq!(replicas.send(request).await.0, 200, "round {round}");
    }
    let request = replicas
        .http
        .get(format!(
            "{}/api/v1/state/shared/events",
            replicas.replica(2).url
        ))
        .bearer_auth(KEY_A);
    let (status, events) = replicas.send(request).await;
    assert_eq!(status, 200);
    let events: Vec<RecordedLockEvent> =
        serde_json::from_value(events["events"].clone()).expect("lock events");
    check_single_holder(&events).unwrap_or_else(|overlap| panic!("{overlap}: {events:#?}"));
    let grants = events
        .iter()
        .filter(|recorded| recorded.event.kind == LockEventKind::Granted)
        .count();
    assert_eq!(grants, 3, "{events:#?}");
}

/// A TCP load balancer in front of the replicas, as a deployment has: each connection goes to
/// the next replica in turn that accepts it. Runs until the test process ends.
pub(crate) fn load_balancer(servers: &[Server]) -> String {
    let backends: Vec<String> = servers
        .iter()
        .map(|server| server.url.trim_start_matches("http://").to_owned())
        .collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the balancer");
    let address = listener.local_addr().expect("its address");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the balancer's runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            let mut next = 0;
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let start = next;
                next += 1;
                let backends = backends.clone();
                tokio::spawn(async move {
                    // A replica that is down is skipped, as a balancer's health check would.
                    for offset in 0..backends.len() {
                        let backend = &backends[(start + offset) % backends.len()];
                        if let Ok(mut server) = tokio::net::TcpStream::connect(backend).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            return;
                        }
                    }
                });
            }
        });
    });
    format!("http://{address}")
}

#[test]
fn concurrent_applies_through_different_replicas_converge_without_duplicates() {
    let replicas = Replicas::start(Server::options());
    let balancer = load_balancer(&replicas.servers);
    let work = tempfile::tempdir().expect("temp dir");
    let names = chain(work.path(), 6);
    let children: Vec<_> = (0..6)
        .map(|_| {
            replicas
                .replica(0)
                .envform_process(work.path())
                .env("KUBIYA_CONTROL_PLANE_URL", &balancer)
                .env(
                    "ENVFORM_STATE_ADDRESS",
                    format!("{balancer}/api/v1/state/shared"),
                )
                .env("ENVFORM_STATE_USERNAME", "envform")
                .env("ENVFORM_STATE_PASSWORD", KEY_A)
                .args(["apply", "--auto-approve", "--lock-timeout", "120s"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn envform apply")
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().expect("envform apply");
        assert!(output.status.success(), "{output:?}");
    }
    for index in 0..3 {
        let mut live = replicas.replica(index).live_environments(work.path());
        live.remove("default");
        assert_eq!(
            live.keys().cloned().collect::<Vec<_>>(),
            names,
            "replica {index}"
        );
    }
    let duplicates = replicas.database.query(
        "SELECT name, count(*) FROM environments WHERE organization_id = 'org-a' \
         GROUP BY name HAVING count(*) > 1",
    );
    assert!(duplicates.is_empty(), "duplicates: {duplicates:?}");
    let grants = replicas.database.query(
        "SELECT kind FROM state_lock_events WHERE workspace = 'shared' AND kind = 'granted'",
    );
    assert_eq!(grants.len(), 6, "each apply held the lock once");
    // Every replica served some of the applies' requests.
    for (index, server) in replicas.servers.iter().enumerate() {
        assert!(
            server.log().contains("path=/api/v1/state/shared"),
            "replica {index} served no state request"
        );
    }
}

#[test]
fn replicas_started_together_provision_each_organization_once() {
    let database = crate::postgres::database();
    let dir = tempfile::tempdir().expect("temp dir");
    // A first server starts provisioning two organizations, slowly, and stops before it ends:
    // the organizations stay `provisioning`, for whoever starts next to resume.
    let mut first = Server::options()
        .postgres(&database)
        .args(["--provision-delay", "60s"])
        .start(&dir.path().join("first.db"));
    for key in [KEY_A, KEY_B] {
        let output = first
            .envform(dir.path())
            .env("KUBIYA_API_KEY", key)
            .args(["env", "list", "-o", "json"])
            .output()
            .expect("envform env list");
        assert!(output.status.success(), "{output:?}");
    }
    assert!(first.terminate().success());
    let provisioning = database
        .query("SELECT id FROM organizations WHERE namespace_state = 'provisioning' ORDER BY id");
    assert_eq!(provisioning, ["org-a", "org-b"]);

    // Three replicas at once.
    let options = Server::options()
        .postgres(&database)
        .args(["--provision-delay", "500ms"]);
    let starting: Vec<_> = (0..3)
        .map(|index| {
            let options = options.clone();
            let path = replica_path(dir.path(), index);
            std::thread::spawn(move || options.start(&path))
        })
        .collect();
    let servers: Vec<Server> = starting
        .into_iter()
        .map(|thread| thread.join().expect("a replica started"))
        .collect();
    let deadline = Instant::now() + SETTLE;
    while !database
        .query("SELECT id FROM organizations WHERE namespace_state <> 'ready'")
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the organizations never became ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for organization in ["org-a", "org-b"] {
        let provisioned: usize = servers
            .iter()
            .map(|server| {
                server
                    .log()
                    .lines()
                    .filter(|line| {
                        line.contains("provisioning the namespace")
                            && line.contains(&format!("organization={organization} "))
                    })
                    .count()
            })
            .sum();
        assert_eq!(
            provisioned, 1,
            "{organization} was provisioned {provisioned} times"
        );
    }
    let claimed =
        database.query("SELECT id FROM organizations WHERE provisioning_claimed_by IS NOT NULL");
    assert!(claimed.is_empty(), "claims are released: {claimed:?}");
}

/// `envform apply` in `dir` through `url`, keeping state in the served workspace `shared`.
pub(crate) fn apply_through(server: &Server, url: &str, dir: &Path) -> std::process::Command {
    let mut command = server.envform_process(dir);
    command
        .env("KUBIYA_CONTROL_PLANE_URL", url)
        .env(
            "ENVFORM_STATE_ADDRESS",
            format!("{url}/api/v1/state/shared"),
        )
        .env("ENVFORM_STATE_USERNAME", "envform")
        .env("ENVFORM_STATE_PASSWORD", KEY_A)
        .args(["apply", "--auto-approve", "--lock-timeout", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `apply` until it succeeds (at most `attempts` times); how many runs it took.
pub(crate) fn apply_until_it_succeeds(
    mut apply: impl FnMut() -> std::process::Command,
    attempts: usize,
) -> usize {
    for attempt in 1..=attempts {
        let output = apply().output().expect("envform apply");
        if output.status.success() {
            return attempt;
        }
        assert!(attempt < attempts, "apply never succeeded: {output:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    attempts
}

/// Asserts that live (through `server`) holds exactly `names` beside `default`, that the served
/// state names each with its live id, and that no name is stored twice.
pub(crate) fn assert_converged(server: &Server, database: &Database, dir: &Path, names: &[String]) {
    let mut live = server.live_environments(dir);
    live.remove("default");
    assert_eq!(
        live.keys().cloned().collect::<Vec<_>>(),
        names,
        "live environments"
    );
    let state = database.query("SELECT document FROM state_documents WHERE workspace = 'shared'");
    let state: Value =
        serde_json::from_str(state.first().expect("a state document")).expect("the state is JSON");
    let state: std::collections::BTreeMap<String, String> = state["resources"]
        .as_object()
        .expect("resources")
        .iter()
        .map(|(name, resource)| {
            (
                name.clone(),
                resource["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(state, live, "state equals live");
    let duplicates = database
        .query("SELECT name FROM environments GROUP BY organization_id, name HAVING count(*) > 1");
    assert!(duplicates.is_empty(), "duplicates: {duplicates:?}");
}

#[test]
fn a_replica_killed_mid_apply_leaves_a_rerun_through_the_others_to_converge() {
    // Creates take 100 ms each, so the apply is well under way, not over, when a replica dies.
    let mut replicas = Replicas::start(Server::options().args([
        "--state-lease",
        "3s",
        "--faults",
        "latency_ms=100,method=POST,path=/api/v1/environments",
    ]));
    let balancer = load_balancer(&replicas.servers);
    let work = tempfile::tempdir().expect("temp dir");
    let names = chain(work.path(), 12);
    let mut first = apply_through(replicas.replica(0), &balancer, work.path())
        .spawn()
        .expect("spawn envform apply");
    let deadline = Instant::now() + SETTLE;
    while replicas
        .database
        .query("SELECT id FROM environments WHERE name LIKE 'link-%'")
        .len()
        < 3
    {
        assert!(Instant::now() < deadline, "the apply never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        first.try_wait().expect("poll the apply").is_none(),
        "the apply is still running when the replica dies"
    );
    replicas.servers[1].kill();
    let _ = first.wait();
    let runs = apply_until_it_succeeds(
        || apply_through(replicas.replica(0), &balancer, work.path()),
        3,
    );
    assert!(runs >= 1);
    assert_converged(replicas.replica(0), &replicas.database, work.path(), &names);
    assert_converged(replicas.replica(2), &replicas.database, work.path(), &names);
}

#[test]
fn migrate_only_creates_the_schema_and_exits_without_keys() {
    let database = crate::postgres::database();
    let dir = tempfile::tempdir().expect("temp dir");
    for _ in 0..2 {
        let output = crate::support::envform(dir.path())
            .args(["serve", "--migrate-only"])
            .env("ENVFORM_DATABASE_URL", &database.url)
            .output()
            .expect("envform serve --migrate-only");
        assert!(output.status.success(), "{output:?}");
        assert!(output.stdout.is_empty(), "no listening line: {output:?}");
    }
    let applied = database.query("SELECT version FROM _sqlx_migrations ORDER BY version");
    assert_eq!(applied, ["1", "2", "3", "4"]);
    assert_eq!(database.query("SELECT count(*) FROM environments"), ["0"]);
    let sqlite = dir.path().join("nested/serve.db");
    let output = crate::support::envform(dir.path())
        .args(["serve", "--migrate-only", "--db"])
        .arg(&sqlite)
        .output()
        .expect("envform serve --migrate-only --db");
    assert!(output.status.success(), "{output:?}");
    assert!(sqlite.is_file());
}
