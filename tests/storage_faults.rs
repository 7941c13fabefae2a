//! Storage faults survived without a restart: a full disk under SQLite (a 2 MiB tmpfs) is
//! answered 507 with a `detail` that says so, and writes work again as soon as space is freed;
//! PostgreSQL stopped under a running replica is answered 503 with `Retry-After` quickly, and the
//! replica serves again by itself once PostgreSQL is back; an apply cut by a PostgreSQL restart
//! loses no acknowledged write, and a rerun converges.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{KEY_A, Server};

/// A 2 MiB tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    mount_point: PathBuf,
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = tempfile::tempdir().expect("temp dir");
        let mount_point = dir.path().join("disk");
        std::fs::create_dir(&mount_point).expect("create the mount point");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&mount_point)
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "this test mounts a 2 MiB tmpfs to fill it, which needs root (or CAP_SYS_ADMIN): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        SmallDisk { mount_point, dir }
    }

    fn path(&self) -> &Path {
        &self.mount_point
    }

    /// A log file beside the small disk, not on it.
    fn log(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

/// Fills the disk with one file until the file system refuses more.
fn fill(path: &Path) {
    use std::io::Write;
    let mut filler = std::fs::File::create(path).expect("create the filler");
    let block = vec![0u8; 16 * 1024];
    loop {
        if let Err(error) = filler.write_all(&block).and_then(|()| filler.flush()) {
            assert_eq!(
                error.raw_os_error(),
                Some(28),
                "the filler stops on ENOSPC, not on {error}"
            );
            return;
        }
    }
}

async fn create(http: &reqwest::Client, server: &Server, name: &str) -> (u16, Value) {
    let response = http
        .post(format!("{}/api/v1/environments", server.url))
        .bearer_auth(KEY_A)
        .json(&json!({ "name": name, "description": "x".repeat(20_000) }))
        .send()
        .await
        .unwrap_or_else(|error| panic!("a create: {error}\n{}", server.log()));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_507_and_writes_resume_once_space_is_freed_without_a_restart() {
    envform::api::install_crypto_provider();
    let disk = SmallDisk::mount();
    let server = Server::options()
        .log_file(&disk.log())
        .start(&disk.path().join("serve.db"));
    let http = reqwest::Client::new();
    assert_eq!(create(&http, &server, "before").await.0, 201);

    let filler = disk.path().join("filler");
    fill(&filler);
    for attempt in 0..3 {
        let (status, body) = create(&http, &server, &format!("while-full-{attempt}")).await;
        assert_eq!(status, 507, "attempt {attempt}: {body}");
        let detail = body["detail"].as_str().expect("a string detail");
        assert!(detail.contains("Storage is full"), "{detail}");
    }
    let ready = http
        .get(format!("{}/ready", server.url))
        .send()
        .await
        .expect("/ready");
    assert_eq!(
        ready.status().as_u16(),
        503,
        "not ready while the disk is full"
    );
    let ready: Value = ready.json().await.expect("a JSON body");
    assert!(
        ready["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("Storage is full")),
        "{ready}"
    );
    // Reads still work while the disk is full.
    let listed = http
        .get(format!("{}/api/v1/environments", server.url))
        .bearer_auth(KEY_A)
        .send()
        .await
        .expect("a list");
    assert_eq!(listed.status().as_u16(), 200);

    std::fs::remove_file(&filler).expect("free the space");
    for attempt in 0..5 {
        let (status, body) = create(&http, &server, &format!("after-{attempt}")).await;
        assert_eq!(
            status, 201,
            "attempt {attempt} after space was freed: {body}"
        );
    }
    let log = server.log();
    assert!(
        !log.contains("non-zero transaction depth"),
        "no connection was left inside a failed transaction:\n{log}"
    );
    let started = Instant::now();
    let ready = http
        .get(format!("{}/ready", server.url))
        .send()
        .await
        .expect("/ready");
    assert_eq!(ready.status().as_u16(), 200);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// One answer: status, `Retry-After`, body.
async fn answer(request: reqwest::RequestBuilder) -> (u16, Option<String>, Value) {
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_is_a_quick_503_and_the_replica_recovers_by_itself() {
    envform::api::install_crypto_provider();
    let cluster = crate::postgres::private_cluster();
    let database = cluster.database();
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::options()
        .postgres(&database)
        .args(["--database-connect-timeout", "1s"])
        .start(&dir.path().join("replica.db"));
    let http = reqwest::Client::new();
    let list = || {
        http.get(format!("{}/api/v1/environments", server.url))
            .bearer_auth(KEY_A)
    };
    assert_eq!(create(&http, &server, "before").await.0, 201);

    cluster.stop();
    for request in [
        list(),
        http.post(format!("{}/api/v1/environments", server.url))
            .bearer_auth(KEY_A)
            .json(&json!({ "name": "while-down" })),
    ] {
        let started = Instant::now();
        let (status, retry_after, body) = answer(request).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert!(body["detail"].is_string(), "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "answered after {:?}",
            started.elapsed()
        );
    }
    let (status, _, _) = answer(http.get(format!("{}/ready", server.url))).await;
    assert_eq!(status, 503, "not ready without the database");
    let (status, _, _) = answer(http.get(format!("{}/health", server.url))).await;
    assert_eq!(status, 200, "alive all the same");

    cluster.start_again();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, body) = answer(list()).await;
        if status == 200 {
            let names: Vec<&str> = body
                .as_array()
                .expect("a list")
                .iter()
                .filter_map(|environment| environment["name"].as_str())
                .collect();
            assert!(names.contains(&"before"), "{names:?}");
            assert!(!names.contains(&"while-down"), "{names:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never recovered: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(create(&http, &server, "after").await.0, 201);
    let (status, _, _) = answer(http.get(format!("{}/ready", server.url))).await;
    assert_eq!(status, 200);
}

#[test]
fn postgres_restarted_mid_apply_loses_no_acknowledged_write_and_a_rerun_converges() {
    let cluster = crate::postgres::private_cluster();
    let database = cluster.database();
    let dir = tempfile::tempdir().expect("temp dir");
    // Creates take 100 ms each, so PostgreSQL goes away in the middle of the apply.
    let server = Server::options()
        .postgres(&database)
        .args(["--database-connect-timeout", "1s", "--state-lease", "3s"])
        .args([
            "--faults",
            "latency_ms=100,method=POST,path=/api/v1/environments",
        ])
        .start(&dir.path().join("replica.db"));
    let work = tempfile::tempdir().expect("temp dir");
    let names = crate::http_state::chain(work.path(), 12);
    let url = server.url.clone();
    let mut first = crate::replicas::apply_through(&server, &url, work.path())
        .spawn()
        .expect("spawn envform apply");
    let deadline = Instant::now() + Duration::from_secs(20);
    while database
        .query("SELECT id FROM environments WHERE name LIKE 'link-%'")
        .len()
        < 3
    {
        assert!(Instant::now() < deadline, "the apply never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.stop();
    // Longer than the connect timeout: requests meanwhile are answered 503.
    std::thread::sleep(Duration::from_secs(2));
    cluster.start_again();
    let _ = first.wait();
    crate::replicas::apply_until_it_succeeds(
        || crate::replicas::apply_through(&server, &url, work.path()),
        5,
    );
    crate::replicas::assert_converged(&server, &database, work.path(), &names);
    // Every create the server acknowledged is one of the live environments: none was lost, and
    // none was made twice.
    let log = server.log();
    assert!(
        log.contains("status=503"),
        "the apply met the outage (503 answers)"
    );
    let acknowledged = log
        .lines()
        .filter(|line| {
            line.contains("method=POST path=/api/v1/environments ") && line.contains("status=201")
        })
        .count();
    assert!(
        acknowledged <= names.len(),
        "{acknowledged} creates acknowledged for {} environments",
        names.len()
    );
}
