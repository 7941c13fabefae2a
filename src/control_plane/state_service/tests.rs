//! The state service's rules over a real SQLite store, with a clock that moves when told.

use std::sync::Mutex;

use super::*;
use crate::store::SqliteStore;

/// A clock that moves only when told to.
struct FakeClock(Mutex<Timestamp>);

impl FakeClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(
            Timestamp::from_second(1_800_000_000).unwrap(),
        )))
    }

    fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap();
        *now = Timestamp::from_microsecond(
            now.as_microsecond() + i64::try_from(by.as_micros()).unwrap(),
        )
        .unwrap();
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

const LEASE: Duration = Duration::from_secs(30);

async fn service() -> (StateService, Arc<FakeClock>) {
    let clock = FakeClock::new();
    let store = SqliteStore::in_memory().await.unwrap();
    let service = StateService::new(Arc::new(store), clock.clone(), LEASE);
    (service, clock)
}

fn workspace(organization: &str, name: &str) -> Workspace {
    Workspace {
        organization: organization.to_owned(),
        name: WorkspaceName::parse(name).unwrap(),
    }
}

fn info(id: &str, who: &str) -> LockInfo {
    LockInfo {
        id: id.to_owned(),
        who: who.to_owned(),
        ..LockInfo::new("apply", "ws")
    }
}

fn write(document: &str, lock_id: Option<&str>, token: Option<u64>) -> StateWrite {
    StateWrite {
        document: document.to_owned(),
        lock_id: lock_id.map(str::to_owned),
        fencing_token: token.map(FencingToken),
    }
}

/// The editor key every test acts with unless it tells keys apart.
fn ci() -> LockKey {
    LockKey::new("key:ci", false)
}

fn kinds(events: &[RecordedLockEvent]) -> Vec<LockEventKind> {
    events.iter().map(|recorded| recorded.event.kind).collect()
}

#[tokio::test]
async fn grants_renews_and_refuses_others_with_the_holder() {
    let (service, clock) = service().await;
    let main = workspace("org-a", "main");

    let granted = service
        .lock(&main, &ci(), info("one", "alice@a"))
        .await
        .unwrap();
    assert_eq!(granted.kind, GrantKind::New);
    assert_eq!(granted.fencing_token, FencingToken(1));
    assert_eq!(granted.lease, LEASE);
    assert_eq!(
        granted.lease_expires_at.as_second(),
        clock.now().as_second() + 30
    );

    clock.advance(Duration::from_secs(20));
    let renewed = service
        .lock(&main, &ci(), info("one", "alice@a"))
        .await
        .unwrap();
    assert_eq!(renewed.kind, GrantKind::Renewed);
    assert_eq!(renewed.fencing_token, FencingToken(1), "same token");
    assert_eq!(
        renewed.lease_expires_at.as_second(),
        clock.now().as_second() + 30,
        "the lease is extended from now"
    );

    // 40 s after the grant, but only 20 s after the renewal: still held.
    clock.advance(Duration::from_secs(20));
    let error = service
        .lock(&main, &ci(), info("two", "bob@b"))
        .await
        .unwrap_err();
    match error {
        StateServiceError::Locked { holder } => {
            assert_eq!(holder.info.id, "one");
            assert_eq!(holder.info.who, "alice@a");
            assert!(holder.caller_holds);
        }
        other => panic!("unexpected {other:?}"),
    }
    let events = service.events(&main).await.unwrap();
    assert_eq!(
        kinds(&events),
        [LockEventKind::Granted, LockEventKind::Renewed],
        "a refused lock changes nothing"
    );
    check_single_holder(&events).unwrap();
}

#[tokio::test]
async fn an_expired_lock_is_taken_over_with_a_higher_token_and_its_writes_are_refused() {
    let (service, clock) = service().await;
    let main = workspace("org-a", "main");
    let first = service
        .lock(&main, &ci(), info("one", "alice@a"))
        .await
        .unwrap();
    service
        .write(&main, &ci(), write("{\"serial\":1}", Some("one"), Some(1)))
        .await
        .unwrap();

    clock.advance(LEASE);
    let second = service
        .lock(&main, &ci(), info("two", "bob@b"))
        .await
        .unwrap();
    assert_eq!(second.kind, GrantKind::TakenOver);
    assert!(second.fencing_token > first.fencing_token);
    assert_eq!(second.fencing_token, FencingToken(2));

    // The first holder wakes up: its write is refused, whatever ID it names.
    for lock_id in [Some("one"), Some("two"), None] {
        let error = service
            .write(&main, &ci(), write("{\"serial\":2}", lock_id, Some(1)))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                StateServiceError::StaleFencingToken {
                    presented: Some(FencingToken(1)),
                    current: Some(FencingToken(2)),
                }
            ),
            "{error:?}"
        );
    }
    // Its renewal is refused too: someone else holds the lock now.
    assert!(matches!(
        service.lock(&main, &ci(), info("one", "alice@a")).await,
        Err(StateServiceError::Locked { holder }) if holder.info.id == "two"
    ));
    // And so is its unlock.
    assert!(matches!(
        service.unlock(&main, &ci(), &info("one", "alice@a"), false).await,
        Err(StateServiceError::HeldByAnother { holder, .. }) if holder.info.id == "two"
    ));
    assert_eq!(
        service.get(&main).await.unwrap().unwrap().document,
        "{\"serial\":1}"
    );
    service
        .write(&main, &ci(), write("{\"serial\":2}", Some("two"), Some(2)))
        .await
        .unwrap();
    assert_eq!(
        service.get(&main).await.unwrap().unwrap().document,
        "{\"serial\":2}"
    );

    let events = service.events(&main).await.unwrap();
    assert_eq!(
        kinds(&events),
        [
            LockEventKind::Granted,
            LockEventKind::Written,
            LockEventKind::TakenOver,
            LockEventKind::WriteRefused,
            LockEventKind::WriteRefused,
            LockEventKind::WriteRefused,
            LockEventKind::Written,
        ]
    );
    assert_eq!(events[2].event.holder_lock_id.as_deref(), Some("one"));
    assert!(
        events[3..6]
            .iter()
            .all(|recorded| recorded.event.refusal == Some(WriteRefusal::StaleToken))
    );
    check_single_holder(&events).unwrap();
}

#[tokio::test]
async fn a_holder_renewing_after_its_lease_ran_out_keeps_its_token_if_nobody_took_it() {
    let (service, clock) = service().await;
    let main = workspace("org-a", "main");
    service
        .lock(&main, &ci(), info("one", "alice@a"))
        .await
        .unwrap();
    clock.advance(LEASE * 2);
    let renewed = service
        .lock(&main, &ci(), info("one", "alice@a"))
        .await
        .unwrap();
    assert_eq!(renewed.kind, GrantKind::Renewed);
    assert_eq!(renewed.fencing_token, FencingToken(1));
    service
        .write(&main, &ci(), write("{}", Some("one"), Some(1)))
        .await
        .unwrap();
}

#[tokio::test]
async fn writes_under_a_lock_must_name_it_and_carry_its_token() {
    let (service, _clock) = service().await;
    let main = workspace("org-a", "main");
    // Unlocked and never locked: a plain write goes through (Terraform's clients do that).
    service
        .write(&main, &ci(), write("{\"v\":0}", None, None))
        .await
        .unwrap();
    // A token that was never issued is not current.
    assert!(matches!(
        service
            .write(&main, &ci(), write("{}", None, Some(1)))
            .await,
        Err(StateServiceError::StaleFencingToken { current: None, .. })
    ));

    service
        .lock(&main, &ci(), info("one", "alice@a"))
        .await
        .unwrap();
    let refusals = [
        (write("{}", None, None), WriteRefusal::Locked),
        (write("{}", Some("other"), Some(1)), WriteRefusal::Locked),
        (write("{}", Some("one"), None), WriteRefusal::MissingToken),
        (write("{}", Some("one"), Some(7)), WriteRefusal::StaleToken),
    ];
    for (request, expected) in refusals.iter().cloned() {
        let error = service.write(&main, &ci(), request).await.unwrap_err();
        let status_like = match error {
            StateServiceError::Locked { holder } => {
                assert_eq!(holder.info.id, "one");
                WriteRefusal::Locked
            }
            StateServiceError::StaleFencingToken {
                presented: None, ..
            } => WriteRefusal::MissingToken,
            StateServiceError::StaleFencingToken { .. } => WriteRefusal::StaleToken,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(status_like, expected);
    }
    assert_eq!(
        service.get(&main).await.unwrap().unwrap().document,
        "{\"v\":0}",
        "no refused write got through"
    );
    service
        .write(&main, &ci(), write("{\"v\":1}", Some("one"), Some(1)))
        .await
        .unwrap();
    service
        .unlock(&main, &ci(), &info("one", "alice@a"), false)
        .await
        .unwrap();
    // Unlocked again: the last token is still current, a stale one is not.
    service
        .write(&main, &ci(), write("{\"v\":2}", None, Some(1)))
        .await
        .unwrap();
    service
        .write(&main, &ci(), write("{\"v\":3}", None, None))
        .await
        .unwrap();
    assert!(matches!(
        service.write(&main, &ci(), write("", None, None)).await,
        Err(StateServiceError::EmptyDocument)
    ));

    let events = service.events(&main).await.unwrap();
    let refused: Vec<_> = events
        .iter()
        .filter_map(|recorded| recorded.event.refusal)
        .collect();
    assert_eq!(
        refused,
        [
            WriteRefusal::StaleToken,
            WriteRefusal::Locked,
            WriteRefusal::Locked,
            WriteRefusal::MissingToken,
            WriteRefusal::StaleToken,
        ]
    );
    check_single_holder(&events).unwrap();
}

#[tokio::test]
async fn unlock_by_the_holder_by_another_and_force_unlock() {
    let (service, clock) = service().await;
    let main = workspace("org-a", "main");
    assert_eq!(
        service
            .unlock(&main, &ci(), &info("none", "x"), false)
            .await
            .unwrap(),
        Unlocked::NotLocked
    );

    service
        .lock(&main, &ci(), info("one", "alice@a"))
        .await
        .unwrap();
    let error = service
        .unlock(&main, &ci(), &info("other", "bob@b"), false)
        .await
        .unwrap_err();
    match error {
        StateServiceError::HeldByAnother { holder, requested } => {
            assert_eq!(holder.info.id, "one");
            assert_eq!(requested, "other");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        service
            .unlock(&main, &ci(), &info("one", "alice@a"), false)
            .await
            .unwrap(),
        Unlocked::Released
    );
    let next = service
        .lock(&main, &ci(), info("two", "bob@b"))
        .await
        .unwrap();
    assert_eq!(next.kind, GrantKind::New);
    assert_eq!(
        next.fencing_token,
        FencingToken(2),
        "tokens are never reused"
    );

    // force-unlock: someone else names the holder's ID (with its own information).
    let breaker = LockInfo {
        id: "two".to_owned(),
        ..LockInfo::new("force-unlock", "ws")
    };
    assert_eq!(
        service.unlock(&main, &ci(), &breaker, false).await.unwrap(),
        Unlocked::Released
    );
    let third = service
        .lock(&main, &ci(), info("three", "carol@c"))
        .await
        .unwrap();
    assert_eq!(third.fencing_token, FencingToken(3));

    // Another ID on an expired lock: nothing is in force, so nothing to refuse.
    clock.advance(LEASE);
    assert_eq!(
        service
            .unlock(&main, &ci(), &info("other", "bob@b"), false)
            .await
            .unwrap(),
        Unlocked::NotLocked
    );

    assert!(matches!(
        service.lock(&main, &ci(), info("", "x")).await,
        Err(StateServiceError::MissingLockId)
    ));
    // A `Who` that forges a log line, and an `Info` that would fill every 423: refused, and
    // neither is recorded as an event.
    let forged = info(
        "forged",
        "eve\n2026-01-01T00:00:00Z  INFO envform::server: FAKE",
    );
    let mut huge = info("huge", "x");
    huge.info = "i".repeat(5000);
    for refused in [forged, huge] {
        assert!(matches!(
            service.lock(&main, &ci(), refused).await,
            Err(StateServiceError::InvalidLockInfo { .. })
        ));
    }
    let events = service.events(&main).await.unwrap();
    assert_eq!(
        kinds(&events),
        [
            LockEventKind::Granted,
            LockEventKind::Unlocked,
            LockEventKind::Granted,
            LockEventKind::Unlocked,
            LockEventKind::Granted,
        ]
    );
    assert_eq!(events[3].event.operation.as_deref(), Some("force-unlock"));
    check_single_holder(&events).unwrap();
}

#[tokio::test]
async fn organizations_and_workspaces_are_separate() {
    let (service, _clock) = service().await;
    let a_main = workspace("org-a", "main");
    let b_main = workspace("org-b", "main");
    let a_other = workspace("org-a", "other");
    service
        .lock(&a_main, &ci(), info("a", "alice@a"))
        .await
        .unwrap();
    service
        .write(&a_main, &ci(), write("{\"org\":\"a\"}", Some("a"), Some(1)))
        .await
        .unwrap();
    assert_eq!(service.get(&b_main).await.unwrap(), None);
    assert_eq!(service.get(&a_other).await.unwrap(), None);
    let b = service
        .lock(&b_main, &ci(), info("b", "bob@b"))
        .await
        .unwrap();
    assert_eq!(
        b.fencing_token,
        FencingToken(1),
        "each workspace counts its own"
    );
    service
        .lock(&a_other, &ci(), info("c", "carol@c"))
        .await
        .unwrap();
    assert!(service.events(&b_main).await.unwrap().len() == 1);
}

#[tokio::test]
async fn fencing_tokens_are_never_reused_across_restarts() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("serve.db");
    let main = workspace("org-a", "main");
    let mut tokens = Vec::new();
    for round in 0..3 {
        let store = SqliteStore::open(&path).await.unwrap();
        let service = StateService::new(Arc::new(store.clone()), FakeClock::new(), LEASE);
        let id = format!("lock-{round}");
        let granted = service
            .lock(&main, &ci(), info(&id, "alice@a"))
            .await
            .unwrap();
        tokens.push(granted.fencing_token.0);
        service
            .unlock(&main, &ci(), &info(&id, "alice@a"), false)
            .await
            .unwrap();
        store.close().await;
    }
    assert_eq!(tokens, [1, 2, 3]);
    let store = SqliteStore::open(&path).await.unwrap();
    let service = StateService::new(Arc::new(store), FakeClock::new(), LEASE);
    check_single_holder(&service.events(&main).await.unwrap()).unwrap();
}

#[tokio::test]
async fn racing_lock_requests_on_one_database_grant_exactly_one() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("serve.db");
    // Two stores on one file, as two server processes would have.
    let stores = [
        SqliteStore::open(&path).await.unwrap(),
        SqliteStore::open(&path).await.unwrap(),
    ];
    let main = workspace("org-a", "main");
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..16 {
        let store = stores[index % 2].clone();
        let main = main.clone();
        tasks.spawn(async move {
            let service = StateService::new(Arc::new(store), Arc::new(SystemClock), LEASE);
            service
                .lock(&main, &ci(), info(&format!("lock-{index}"), "racer@test"))
                .await
        });
    }
    let mut granted = 0;
    let mut refused = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(grant) => {
                assert_eq!(grant.fencing_token, FencingToken(1));
                granted += 1;
            }
            Err(StateServiceError::Locked { .. }) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((granted, refused), (1, 15));
}

#[tokio::test]
async fn the_event_log_check_finds_overlapping_holders() {
    let (service, clock) = service().await;
    let main = workspace("org-a", "main");
    service
        .lock(&main, &ci(), info("one", "alice@a"))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let mut events = service.events(&main).await.unwrap();
    check_single_holder(&events).unwrap();

    // A second grant while the first lease runs, as a broken server would log it.
    let mut intruder = events[0].clone();
    intruder.sequence += 1;
    intruder.event.lock_id = Some("two".to_owned());
    intruder.event.fencing_token = Some(FencingToken(2));
    intruder.event.at = clock.now();
    events.push(intruder.clone());
    let overlap = check_single_holder(&events).unwrap_err();
    assert_eq!(overlap.sequence, intruder.sequence);
    assert!(overlap.problem.contains("two"), "{overlap}");

    // The same grant after the lease ran out is a takeover, and fine.
    events.pop();
    intruder.event.kind = LockEventKind::TakenOver;
    intruder.event.at =
        Timestamp::from_microsecond(events[0].event.lease_expires_at.unwrap().as_microsecond() + 1)
            .unwrap();
    events.push(intruder.clone());
    check_single_holder(&events).unwrap();

    // A token that does not grow is a fault too.
    events.pop();
    intruder.event.fencing_token = Some(FencingToken(1));
    events.push(intruder);
    assert!(check_single_holder(&events).is_err());
}

#[test]
fn workspace_names_are_checked() {
    for name in [
        "main",
        "a",
        "prod.eu-1_b",
        &"x".repeat(MAX_WORKSPACE_NAME_LENGTH),
    ] {
        assert_eq!(WorkspaceName::parse(name).unwrap().as_str(), name);
    }
    assert_eq!(WorkspaceName::parse(""), Err(InvalidWorkspaceName::Empty));
    assert_eq!(
        WorkspaceName::parse(".."),
        Err(InvalidWorkspaceName::DotSegment)
    );
    assert_eq!(
        WorkspaceName::parse("."),
        Err(InvalidWorkspaceName::DotSegment)
    );
    assert_eq!(
        WorkspaceName::parse("a/b"),
        Err(InvalidWorkspaceName::Character { character: '/' })
    );
    assert_eq!(
        WorkspaceName::parse("a\\b"),
        Err(InvalidWorkspaceName::Character { character: '\\' })
    );
    assert_eq!(
        WorkspaceName::parse("é"),
        Err(InvalidWorkspaceName::Character { character: 'é' })
    );
    assert_eq!(
        WorkspaceName::parse(&"x".repeat(200)),
        Err(InvalidWorkspaceName::TooLong { length: 200 })
    );
}

#[test]
fn event_kinds_and_refusals_round_trip_their_names() {
    for kind in LockEventKind::ALL {
        assert_eq!(LockEventKind::parse(kind.as_str()), Some(kind));
        assert_eq!(
            serde_json::to_value(kind).unwrap(),
            serde_json::json!(kind.as_str())
        );
    }
    for refusal in [
        WriteRefusal::Locked,
        WriteRefusal::StaleToken,
        WriteRefusal::MissingToken,
        WriteRefusal::OtherKey,
        WriteRefusal::AdminRequired,
    ] {
        assert_eq!(WriteRefusal::parse(refusal.as_str()), Some(refusal));
    }
    assert_eq!(LockEventKind::parse("stolen"), None);
}

/// Keys of one organization: the holder, another editor, an admin.
fn alice() -> LockKey {
    LockKey::new("key:alice", false)
}
fn bob() -> LockKey {
    LockKey::new("key:bob", false)
}
fn carol() -> LockKey {
    LockKey::new("key:carol", true)
}

#[tokio::test]
async fn a_lock_is_bound_to_the_key_that_took_it() {
    let (service, _clock) = service().await;
    let main = workspace("org-a", "main");
    let granted = service
        .lock(&main, &alice(), info("one", "alice@a"))
        .await
        .unwrap();

    // Bob copies Alice's ID: no renewal, no token, and he is told her key, not her ID.
    match service.lock(&main, &bob(), info("one", "bob@b")).await {
        Err(StateServiceError::Locked { holder }) => {
            assert!(!holder.caller_holds);
            assert_eq!(holder.key.as_deref(), Some("key:alice"));
            let text = holder.to_string();
            assert!(
                text.contains("key:alice") && !text.contains("one"),
                "{text}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // Her ID and token (both readable in the event log) do not let him write or release.
    let error = service
        .write(&main, &bob(), write("{\"v\":1}", Some("one"), Some(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StateServiceError::Locked { holder } if holder.key.as_deref() == Some("key:alice"))
    );
    assert!(matches!(
        service.unlock(&main, &bob(), &info("one", "bob@b"), false).await,
        Err(StateServiceError::HeldByAnother { holder, .. }) if !holder.caller_holds
    ));
    match service
        .unlock(&main, &bob(), &info("one", "bob@b"), true)
        .await
    {
        Err(error @ StateServiceError::AdminRequired { .. }) => {
            let text = error.to_string();
            assert!(
                text.contains("admin") && text.contains("key:alice") && text.contains("key:bob"),
                "{text}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(service.get(&main).await.unwrap(), None, "nothing written");

    // Alice still holds it: she renews with her token and writes.
    let renewed = service
        .lock(&main, &alice(), info("one", "alice@a"))
        .await
        .unwrap();
    assert_eq!(renewed.kind, GrantKind::Renewed);
    assert_eq!(renewed.fencing_token, granted.fencing_token);
    service
        .write(&main, &alice(), write("{\"v\":2}", Some("one"), Some(1)))
        .await
        .unwrap();
    // Carol, an admin, breaks it.
    assert_eq!(
        service
            .unlock(&main, &carol(), &info("one", "carol@c"), true)
            .await
            .unwrap(),
        Unlocked::Released
    );

    let events = service.events(&main).await.unwrap();
    check_single_holder(&events).unwrap();
    let summary = key_trail(&events);
    assert_eq!(
        summary,
        [
            (LockEventKind::Granted, "key:alice", "-", None),
            (
                LockEventKind::LockRefused,
                "key:bob",
                "key:alice",
                Some(WriteRefusal::OtherKey)
            ),
            (
                LockEventKind::WriteRefused,
                "key:bob",
                "key:alice",
                Some(WriteRefusal::OtherKey)
            ),
            (
                LockEventKind::UnlockRefused,
                "key:bob",
                "key:alice",
                Some(WriteRefusal::OtherKey)
            ),
            (
                LockEventKind::UnlockRefused,
                "key:bob",
                "key:alice",
                Some(WriteRefusal::AdminRequired)
            ),
            (LockEventKind::Renewed, "key:alice", "key:alice", None),
            (LockEventKind::Written, "key:alice", "key:alice", None),
            (LockEventKind::Unlocked, "key:carol", "key:alice", None),
        ]
    );
}

#[tokio::test]
async fn a_key_releases_its_own_lock_and_another_id_of_the_same_key_waits() {
    let (service, _clock) = service().await;
    let main = workspace("org-a", "main");
    service
        .lock(&main, &bob(), info("one", "bob@b"))
        .await
        .unwrap();
    // One key, two runs: the second waits like anyone, but sees the ID (its own key's).
    match service.lock(&main, &bob(), info("two", "bob@b")).await {
        Err(StateServiceError::Locked { holder }) => {
            assert!(holder.caller_holds);
            assert_eq!(holder.info.id, "one");
        }
        other => panic!("unexpected {other:?}"),
    }
    // An editor breaks its own key's lock without the admin role.
    assert_eq!(
        service
            .unlock(&main, &bob(), &info("one", "bob@b"), true)
            .await
            .unwrap(),
        Unlocked::Released
    );
    check_single_holder(&service.events(&main).await.unwrap()).unwrap();
}

#[tokio::test]
async fn a_lock_taken_before_keys_were_bound_is_claimed_by_its_first_renewal() {
    let clock = FakeClock::new();
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    let service = StateService::new(store.clone(), clock.clone(), LEASE);
    let main = workspace("org-a", "main");
    let legacy = |id: &str| LockRecord {
        info: info(id, "old@client"),
        fencing_token: FencingToken(7),
        lease_expires_at: Timestamp::from_second(clock.now().as_second() + 30).unwrap(),
        acquired_at: clock.now(),
        holder_key: None,
    };
    let put = |record: LockRecord| {
        let store = store.clone();
        let main = main.clone();
        async move {
            let mut transaction = store.begin_state().await.unwrap();
            transaction.put_lock(&main, &record).await.unwrap();
            transaction.commit().await.unwrap();
        }
    };
    put(legacy("old")).await;
    // Owned by no key: an editor cannot release it, not even by naming its ID...
    assert!(matches!(
        service.unlock(&main, &bob(), &info("old", "bob@b"), true).await,
        Err(StateServiceError::AdminRequired { holder, .. }) if holder.key.is_none()
    ));
    // ...but the same ID renews it, once, and binds it to the renewing key.
    let renewed = service
        .lock(&main, &alice(), info("old", "old@client"))
        .await
        .unwrap();
    assert_eq!(renewed.kind, GrantKind::Renewed);
    assert_eq!(renewed.fencing_token, FencingToken(7));
    assert!(matches!(
        service.lock(&main, &bob(), info("old", "old@client")).await,
        Err(StateServiceError::Locked { holder }) if holder.key.as_deref() == Some("key:alice")
    ));
    // Another legacy lock: only an admin breaks it.
    service
        .unlock(&main, &alice(), &info("old", "old@client"), false)
        .await
        .unwrap();
    put(legacy("older")).await;
    assert_eq!(
        service
            .unlock(&main, &carol(), &info("older", "carol@c"), true)
            .await
            .unwrap(),
        Unlocked::Released
    );
}
