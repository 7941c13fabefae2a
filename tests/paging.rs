//! Bounded answers: `GET /api/v1/audit` and `GET /api/v1/state/{workspace}/events` answer pages
//! (`limit`, `cursor`, `next_cursor`) against a real `envform serve` on SQLite and on PostgreSQL;
//! paging through 3,000 events while more are appended returns each exactly once; bad `limit`s
//! (422) and forged cursors (400) are refused naming the parameter; `envform env history` follows the cursors;
//! lock events older than `--state-event-retention` are pruned.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use envform::api::{CreateEnvironment, EnvironmentId, EnvironmentsApi, Patch, UpdateEnvironment};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::{KEY_A, KEY_B, Server};

/// Events made before paging starts.
const EVENTS: usize = 3_000;
/// Events appended after each page is read.
const APPENDED_PER_PAGE: usize = 5;
/// Page size while paging.
const PAGE: usize = 250;
/// Concurrent writers while the events are made.
const WRITERS: usize = 8;

fn runtime() -> tokio::runtime::Runtime {
    envform::api::install_crypto_provider();
    tokio::runtime::Runtime::new().expect("runtime")
}

/// GET `url` with organization A's key: status and JSON body.
async fn get(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let answer = http
        .get(url)
        .bearer_auth(KEY_A)
        .send()
        .await
        .expect("the server answers");
    let status = answer.status().as_u16();
    let body = answer.bytes().await.expect("a body");
    let text = String::from_utf8_lossy(&body);
    // Every answer matches the OpenAPI document.
    let path = &url[url.find("/api/").expect("an API path")..];
    crate::openapi::check_answer(&reqwest::Method::GET, path, status, &text);
    let json =
        serde_json::from_slice(&body).unwrap_or_else(|error| panic!("{error}: {status} {text}"));
    (status, json)
}

/// The ids of `page.events` by `id_field`, and its `next_cursor`.
fn page_ids(page: &Value, id_field: &str) -> (Vec<u64>, Option<String>) {
    let ids = page["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no `events` array: {page}"))
        .iter()
        .map(|event| event[id_field].as_u64().expect("an id"))
        .collect();
    let next = match &page["next_cursor"] {
        Value::Null => None,
        Value::String(cursor) => Some(cursor.clone()),
        other => panic!("`next_cursor` is {other}"),
    };
    (ids, next)
}

/// Pages through `url` `PAGE` at a time, calling `append` after each page; the ids read, in order.
async fn page_through<F, Fut>(
    http: &reqwest::Client,
    url: &str,
    id_field: &str,
    append: F,
) -> Vec<u64>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let separator = if url.contains('?') { '&' } else { '?' };
    let mut read = Vec::new();
    let mut cursor: Option<String> = None;
    for page_number in 0.. {
        let page_url = match &cursor {
            None => format!("{url}{separator}limit={PAGE}"),
            Some(cursor) => format!("{url}{separator}limit={PAGE}&cursor={cursor}"),
        };
        let (status, page) = get(http, &page_url).await;
        assert_eq!(status, 200, "{page}");
        let (ids, next) = page_ids(&page, id_field);
        assert!(
            ids.len() <= PAGE,
            "page {page_number} has {} events",
            ids.len()
        );
        read.extend(ids);
        match next {
            Some(next) => {
                assert!(page_number < 100, "paging does not end");
                cursor = Some(next);
            }
            None => break,
        }
        // Events appended between two fetches land after the cursor.
        if page_number < 4 {
            append(page_number).await;
        }
    }
    read
}

/// Asserts `read` holds each id once, in increasing order, and exactly the ids of `expected`.
fn assert_each_once(read: &[u64], expected: &BTreeSet<u64>) {
    assert!(
        read.windows(2).all(|pair| pair[0] < pair[1]),
        "not in increasing order or repeated"
    );
    let read: BTreeSet<u64> = read.iter().copied().collect();
    let missing: Vec<_> = expected.difference(&read).take(5).collect();
    let extra: Vec<_> = read.difference(expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?} (of {} expected)",
        expected.len()
    );
}

/// 3,000 audit events (one environment updated 2,999 times) paged through while more updates
/// land: each read exactly once, and `envform env history` (which follows `next_cursor`) shows
/// them all.
fn audit_paging(server: &Server) {
    runtime().block_on(async {
        let client = server.client(KEY_A);
        let environment = client
            .create(&CreateEnvironment {
                name: "paged".to_owned(),
                ..CreateEnvironment::default()
            })
            .await
            .expect("create");
        let id = environment.id;
        let update = |n: usize| {
            let client = client.clone();
            async move {
                let patch = UpdateEnvironment {
                    description: Patch::Set(format!("update {n}")),
                    ..UpdateEnvironment::default()
                };
                client.update(id, &patch).await.expect("update");
            }
        };
        futures::stream::iter(0..EVENTS - 1)
            .map(&update)
            .buffer_unordered(WRITERS)
            .collect::<Vec<()>>()
            .await;
        // Another organization's events never show up.
        let other = server.client(KEY_B);
        other
            .create(&CreateEnvironment {
                name: "other".to_owned(),
                ..CreateEnvironment::default()
            })
            .await
            .expect("create in org B");

        let http = reqwest::Client::new();
        let url = format!(
            "{}/api/v1/audit?environment_id={}",
            server.url, environment.id
        );
        let (status, first) = get(&http, &url).await;
        assert_eq!(status, 200);
        let (ids, next) = page_ids(&first, "id");
        assert_eq!(ids.len(), 1_000, "the default limit");
        assert!(next.is_some(), "a full page names the next");

        let appended = std::sync::atomic::AtomicUsize::new(EVENTS);
        let read = page_through(&http, &url, "id", |_| {
            let (appended, update) = (&appended, &update);
            async move {
                for _ in 0..APPENDED_PER_PAGE {
                    let n = appended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    update(n).await;
                }
            }
        })
        .await;
        let total = appended.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(total, EVENTS + 4 * APPENDED_PER_PAGE);

        // What the log holds, told by the updates themselves: every description once.
        let all = envform::api::WorkersApi::audit_events(&client, Some(environment.id))
            .await
            .expect("the whole log through the SDK");
        assert_eq!(all.len(), total, "the SDK follows next_cursor");
        let descriptions: BTreeSet<String> = all
            .iter()
            .filter_map(|event| {
                event
                    .after
                    .as_ref()?
                    .get("description")?
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(descriptions.len(), total - 1, "each update once");
        assert!(descriptions.contains(&format!("update {}", total - 2)));
        let expected: BTreeSet<u64> = all.iter().map(|event| event.id).collect();
        assert_each_once(&read, &expected);

        // The whole organization's log pages the same way, without org B's events.
        let org_url = format!("{}/api/v1/audit", server.url);
        let read = page_through(&http, &org_url, "id", |_| async {}).await;
        let org_all = envform::api::WorkersApi::audit_events(&client, None)
            .await
            .expect("the organization's log");
        assert!(org_all.len() >= total);
        assert!(
            org_all
                .iter()
                .all(|event| event.environment_name.as_deref() != Some("other"))
        );
        assert_each_once(&read, &org_all.iter().map(|event| event.id).collect());
    });

    let dir = tempfile::tempdir().unwrap();
    let output = server
        .envform(dir.path())
        .args(["env", "history", "paged", "-o", "json"])
        .output()
        .expect("envform env history");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let history: Value = serde_json::from_slice(&output.stdout).expect("JSON history");
    assert_eq!(
        history.as_array().expect("an array").len(),
        EVENTS + 4 * APPENDED_PER_PAGE,
        "env history shows every page"
    );
}

/// LOCK and UNLOCK `cycles` times with lock IDs `{prefix}-{n}`: two events each.
async fn lock_cycles(
    http: &reqwest::Client,
    workspace_url: &str,
    prefix: &str,
    cycles: std::ops::Range<usize>,
) {
    let lock = reqwest::Method::from_bytes(b"LOCK").unwrap();
    let unlock = reqwest::Method::from_bytes(b"UNLOCK").unwrap();
    for n in cycles {
        let info = json!({"ID": format!("{prefix}-{n}"), "Operation": "apply", "Who": "test@host"});
        for method in [&lock, &unlock] {
            let answer = http
                .request(method.clone(), workspace_url)
                .bearer_auth(KEY_A)
                .json(&info)
                .send()
                .await
                .expect("the server answers");
            assert_eq!(answer.status().as_u16(), 200, "{method} {n}");
        }
    }
}

/// 3,000 lock events (1,500 LOCK/UNLOCK cycles) paged through while more cycles run: each read
/// exactly once; the events of another workspace never show up.
fn lock_event_paging(server: &Server) {
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let workspace = format!("{}/api/v1/state/paged", server.url);
        let cycles = EVENTS / 2;
        // One lock at a time is what a workspace allows, so the cycles run in sequence.
        lock_cycles(&http, &workspace, "lock", 0..cycles).await;
        lock_cycles(
            &http,
            &format!("{}/api/v1/state/elsewhere", server.url),
            "else",
            0..3,
        )
        .await;

        let events_url = format!("{workspace}/events");
        let (status, first) = get(&http, &events_url).await;
        assert_eq!(status, 200);
        let (ids, next) = page_ids(&first, "sequence");
        assert_eq!(ids.len(), 1_000, "the default limit");
        assert!(next.is_some());

        let read = page_through(&http, &events_url, "sequence", |page| {
            let http = http.clone();
            let workspace = workspace.clone();
            async move {
                let start = cycles + page * 3;
                lock_cycles(&http, &workspace, "lock", start..start + 3).await;
            }
        })
        .await;
        assert_eq!(read.len(), EVENTS + 4 * 3 * 2);

        // Every lock ID granted and released once, across the pages.
        let mut lock_ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                None => format!("{events_url}?limit=10000"),
                Some(cursor) => format!("{events_url}?limit=10000&cursor={cursor}"),
            };
            let (status, page) = get(&http, &url).await;
            assert_eq!(status, 200);
            for event in page["events"].as_array().unwrap() {
                lock_ids.push(event["lock_id"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(lock_ids.len(), read.len());
        assert!(
            lock_ids.iter().all(|id| id.starts_with("lock-")),
            "another workspace's events"
        );
        let distinct: BTreeSet<&String> = lock_ids.iter().collect();
        assert_eq!(distinct.len(), cycles + 12, "each lock twice, no more");
        let (_, all) = get(&http, &format!("{events_url}?limit=10000")).await;
        let expected = page_ids(&all, "sequence").0.into_iter().collect();
        assert_each_once(&read, &expected);
    });
}

/// Bad `limit`s (422) and cursors (400) are refused naming the parameter, on both routes, and
/// change nothing.
fn bad_paging_parameters(server: &Server) {
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let workspace = format!("{}/api/v1/state/checked", server.url);
        lock_cycles(&http, &workspace, "lock", 0..2).await;
        let client = server.client(KEY_A);
        let environment = client
            .create(&CreateEnvironment {
                name: "checked".to_owned(),
                ..CreateEnvironment::default()
            })
            .await
            .expect("create");
        for _ in 0..2 {
            let patch = UpdateEnvironment {
                description: Patch::Set("again".to_owned()),
                ..UpdateEnvironment::default()
            };
            client.update(environment.id, &patch).await.expect("update");
        }
        let audit = format!(
            "{}/api/v1/audit?environment_id={}",
            server.url, environment.id
        );
        let events = format!("{workspace}/events");
        // Real cursors of each list, to be misused on the other.
        let (_, audit_page) = get(&http, &format!("{audit}&limit=1")).await;
        let audit_cursor = audit_page["next_cursor"]
            .as_str()
            .expect("a cursor")
            .to_owned();
        let (_, events_page) = get(&http, &format!("{events}?limit=1")).await;
        let events_cursor = events_page["next_cursor"]
            .as_str()
            .expect("a cursor")
            .to_owned();
        let (_, other_workspace) = {
            lock_cycles(
                &http,
                &format!("{}/api/v1/state/other", server.url),
                "o",
                0..2,
            )
            .await;
            get(
                &http,
                &format!("{}/api/v1/state/other/events?limit=1", server.url),
            )
            .await
        };
        let other_cursor = other_workspace["next_cursor"].as_str().unwrap().to_owned();
        let forged = URL_SAFE_NO_PAD.encode("v1:audit:1");
        let other_environment = EnvironmentId::new_random();
        let cases: Vec<(String, &str)> = vec![
            (format!("{audit}&limit=0"), "limit"),
            (format!("{audit}&limit=-1"), "limit"),
            (format!("{audit}&limit=10001"), "limit"),
            (format!("{audit}&limit=ten"), "limit"),
            (format!("{audit}&cursor=%21%21%21"), "cursor"),
            (format!("{audit}&cursor="), "cursor"),
            (format!("{audit}&cursor={events_cursor}"), "cursor"),
            // The organization-wide list's cursor, on one environment's list.
            (format!("{audit}&cursor={forged}"), "cursor"),
            (
                format!(
                    "{}/api/v1/audit?environment_id={other_environment}&cursor={audit_cursor}",
                    server.url
                ),
                "cursor",
            ),
            (format!("{events}?limit=0"), "limit"),
            (format!("{events}?limit=-5"), "limit"),
            (format!("{events}?limit=99999"), "limit"),
            (format!("{events}?limit=1.5"), "limit"),
            (format!("{events}?cursor=not-a-cursor"), "cursor"),
            (format!("{events}?cursor={audit_cursor}"), "cursor"),
            (format!("{events}?cursor={other_cursor}"), "cursor"),
        ];
        for (url, parameter) in cases {
            let (status, body) = get(&http, &url).await;
            if parameter == "limit" {
                // Outside the documented bounds: an invalid field.
                assert_eq!(status, 422, "{url}: {body}");
                assert_eq!(
                    body["detail"][0]["loc"],
                    json!(["query", "limit"]),
                    "{url}: {body}"
                );
                assert!(
                    body["detail"][0]["msg"].as_str().unwrap().contains("limit"),
                    "{url}: {body}"
                );
            } else {
                // A string the list never answered: a bad request.
                assert_eq!(status, 400, "{url}: {body}");
                assert!(
                    body["detail"].as_str().unwrap().contains("`cursor`"),
                    "{url}: {body}"
                );
            }
        }
        // Nothing changed, and the real cursors still work.
        let (status, page) = get(&http, &format!("{audit}&cursor={audit_cursor}")).await;
        assert_eq!(status, 200);
        assert_eq!(page["events"].as_array().unwrap().len(), 2);
        let (status, page) = get(&http, &format!("{events}?cursor={events_cursor}")).await;
        assert_eq!(status, 200);
        assert_eq!(page["events"].as_array().unwrap().len(), 3);
    });
}

#[test]
fn paging_through_3000_audit_events_returns_each_exactly_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    audit_paging(&server);
}

#[test]
fn paging_through_3000_audit_events_returns_each_exactly_once_on_postgres() {
    let database = crate::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::options()
        .postgres(&database)
        .start(&dir.path().join("serve.db"));
    audit_paging(&server);
}

#[test]
fn paging_through_3000_lock_events_returns_each_exactly_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    lock_event_paging(&server);
}

#[test]
fn paging_through_3000_lock_events_returns_each_exactly_once_on_postgres() {
    let database = crate::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::options()
        .postgres(&database)
        .start(&dir.path().join("serve.db"));
    lock_event_paging(&server);
}

#[test]
fn bad_limits_and_forged_cursors_are_refused_naming_the_parameter_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    bad_paging_parameters(&server);
}

#[test]
fn bad_limits_and_forged_cursors_are_refused_naming_the_parameter_on_postgres() {
    let database = crate::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::options()
        .postgres(&database)
        .start(&dir.path().join("serve.db"));
    bad_paging_parameters(&server);
}

/// Lock events older than the retention are pruned while the server runs; newer ones stay.
fn retention(server: &Server) {
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let workspace = format!("{}/api/v1/state/kept", server.url);
        let events_url = format!("{workspace}/events");
        lock_cycles(&http, &workspace, "old", 0..2).await;
        let (_, page) = get(&http, &events_url).await;
        assert_eq!(page["events"].as_array().unwrap().len(), 4, "{page}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, page) = get(&http, &events_url).await;
            assert_eq!(status, 200);
            if page["events"].as_array().unwrap().is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "lock events older than 2s still there: {page}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        lock_cycles(&http, &workspace, "new", 0..1).await;
        let (_, page) = get(&http, &events_url).await;
        let ids: Vec<&str> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["lock_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            ["new-0", "new-0"],
            "new events are kept until they age"
        );
    });
    assert!(
        server.log().contains("old lock events pruned"),
        "{}",
        server.log()
    );
}

#[test]
fn lock_events_older_than_the_retention_are_pruned_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("serve.db"),
        &["--state-event-retention", "2s"],
    );
    retention(&server);
}

#[test]
fn lock_events_older_than_the_retention_are_pruned_on_postgres() {
    let database = crate::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::options()
        .postgres(&database)
        .args(["--state-event-retention", "2s"])
        .start(&dir.path().join("serve.db"));
    retention(&server);
}

#[test]
fn a_retention_that_is_not_a_duration_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0s", "0d", "soon", "1.5d"] {
        let output = Server::options()
            .args(["--state-event-retention", bad])
            .refused(&dir.path().join("serve.db"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{bad}");
        assert!(stderr.contains("state-event-retention"), "{bad}: {stderr}");
    }
}
