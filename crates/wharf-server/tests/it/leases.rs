//! Session leases: only the instance holding a session's lease runs its engine and
//! dispatches its outbox; a lease held by another live instance keeps the session off here
//! until it expires, then this instance takes it over; outcome writes are fenced by the
//! lease's generation. The other instance is played through the database (its heartbeat and
//! lease rows); real processes are in the binary's tests (`instances.rs`).

use std::time::Duration;

use serde_json::json;
use wharf_core::{SessionId, time::now_millis};
use wharf_store::{Fence, JobOutcome, StoreError};
use wharf_testkit::TestApp;

const PEER: &str = "peer-0000";

async fn app_with_short_leases(backend: wharf_testkit::Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| c.lease_ttl_ms = 1_500).await
}

fn id_of(created: &serde_json::Value) -> SessionId {
    created["session"]["session_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A live peer instance holding `session`'s lease for a minute.
async fn peer_takes(app: &TestApp, session: SessionId) {
    peer_at_takes(app, session, None).await
}

/// [`peer_takes`], the peer reachable at `address`.
async fn peer_at_takes(app: &TestApp, session: SessionId, address: Option<String>) {
    let now = now_millis();
    app.store
        .heartbeat(&wharf_store::InstanceRow {
            id: PEER.into(),
            name: "peer".into(),
            address,
            started_at: now,
            heartbeat_at: now,
            expires_at: now + 60_000,
        })
        .await
        .unwrap();
    app.db()
        .execute(&format!(
            "UPDATE session_leases SET instance_id = '{PEER}', generation = generation + 1, \
             expires_at = {} WHERE session_id = '{session}'",
            now + 60_000
        ))
        .await;
    if app.store.lease_of(session).await.unwrap().is_none() {
        app.store
            .acquire_lease(PEER, session, now, now + 60_000)
            .await
            .unwrap()
            .expect("nobody held it");
    }
}

/// The peer dies: its heartbeat and lease expire.
async fn peer_dies(app: &TestApp) {
    app.db()
        .execute(&format!(
            "UPDATE session_leases SET expires_at = 1 WHERE instance_id = '{PEER}'"
        ))
        .await;
    app.db()
        .execute(&format!(
            "UPDATE instances SET expires_at = 1 WHERE id = '{PEER}'"
        ))
        .await;
}

async fn owner(app: &TestApp, session: SessionId) -> Option<String> {
    app.store
        .lease_of(session)
        .await
        .unwrap()
        .filter(|l| l.expires_at > now_millis())
        .map(|l| l.instance_id)
}

#[wharf_testkit::dual_test]
async fn a_connected_session_is_owned_here_and_a_disconnect_gives_the_lease_up(app: TestApp) {
    let (id, _) = app.connected_session().await;
    let session: SessionId = id.parse().unwrap();
    let held = owner(&app, session).await.expect("owned while it runs");
    assert!(held.starts_with("test-instance-"), "{held}");
    let row = app
        .get(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(200)
        .await;
    assert_eq!(
        row["worker_id"],
        held.as_str(),
        "the session names its owner"
    );
    app.post(&format!("/v1/whatsapp-sessions/{id}/disconnect"))
        .expect(200)
        .await;
    assert_eq!(
        owner(&app, session).await,
        None,
        "a stopped session is owned by none"
    );
}

/// A session being connected is left to the request that connects it: the lease worker's
/// pass (woken by the session's own change) must not count the lease the request takes after
/// the pass read the running sessions as beyond this instance's share and stop the engine the
/// request just started (the scan then found no QR waiting).
#[wharf_testkit::dual_test]
async fn a_pass_racing_a_connect_leaves_its_engine_running(app: TestApp) {
    // Passes back to back: every change of a session wakes the worker.
    let store = app.store.clone();
    let nudge = tokio::spawn(async move {
        loop {
            store.signal_sessions();
            store.signal_sessions_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    for _ in 0..20 {
        let connected = futures::future::join_all((0..16).map(|_| app.connected_session())).await;
        for (id, _) in connected {
            let session: SessionId = id.parse().unwrap();
            assert!(owner(&app, session).await.is_some(), "{id} is owned");
        }
    }
    nudge.abort();
}

#[wharf_testkit::dual_test]
async fn a_session_a_live_peer_owns_runs_here_only_once_its_lease_expires(
    backend: wharf_testkit::Backend,
) {
    let Some(app) = app_with_short_leases(backend).await else {
        return;
    };
    let created = app.create_session(json!({})).await;
    let session = id_of(&created);
    peer_takes(&app, session).await;
    // Connect is accepted (the status is the database's), but the engine starts with the
    // owner, not here: the live connection's calls say where it runs.
    app.post(&format!("/v1/whatsapp-sessions/{session}/connect"))
        .expect(200)
        .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let refused = app
        .post(&format!("/emulator/sessions/{session}/scan"))
        .expect(409)
        .await;
    assert!(
        refused.to_string().contains(PEER),
        "the answer names the owner: {refused}"
    );
    assert_eq!(owner(&app, session).await.as_deref(), Some(PEER));
    // The peer dies: within the lease time this instance takes the session and starts it.
    peer_dies(&app).await;
    app.eventually(&format!("/v1/whatsapp-sessions/{session}"), |s| {
        s["status"] == "connecting"
    })
    .await;
    let scanned = app
        .post(&format!("/emulator/sessions/{session}/scan"))
        .expect(200)
        .await;
    assert_eq!(scanned["status"], "connected");
    assert!(
        owner(&app, session)
            .await
            .unwrap()
            .starts_with("test-instance-")
    );
}

#[wharf_testkit::dual_test]
async fn a_lost_lease_stops_dispatch_here_until_the_session_is_taken_back(
    backend: wharf_testkit::Backend,
) {
    let Some(app) = app_with_short_leases(backend).await else {
        return;
    };
    let (id, _) = app.connected_session().await;
    let session: SessionId = id.parse().unwrap();
    // A peer takes the session over (as if this instance had stalled past its lease).
    peer_takes(&app, session).await;
    // Within a pass this instance sees the loss and stops the session's engine and
    // dispatcher: a send accepted here waits for the owner.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let message = app.send_text(&id, "+15550100001", "for the owner").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        app.info(&message).await.status,
        wharf_core::message::MessageStatus::Queued,
        "not sent by a non-owner"
    );
    // The peer dies; this instance takes the session back, reconnects it and sends.
    peer_dies(&app).await;
    app.wait_status(&message, "sent").await;
    let sent = app
        .db()
        .count(&format!(
            "SELECT COUNT(*) FROM events WHERE type = 'message.sent' AND message_id = '{message}'"
        ))
        .await;
    assert_eq!(sent, 1);
}

#[wharf_testkit::dual_test]
async fn an_outcome_written_under_a_lost_lease_is_refused(app: TestApp) {
    let created = app.create_session(json!({})).await;
    let session = id_of(&created);
    let account: wharf_core::AccountId = app.account_id.parse().unwrap();
    let now = now_millis();
    let first = app
        .store
        .acquire_lease("stalled-1", session, now, now + 1_000)
        .await
        .unwrap()
        .expect("free");
    assert!(
        app.store
            .acquire_lease("other-1", session, now, now + 1_000)
            .await
            .unwrap()
            .is_none(),
        "held until it expires"
    );
    let again = app
        .store
        .acquire_lease("stalled-1", session, now + 10, now + 1_010)
        .await
        .unwrap()
        .expect("its holder renews it");
    assert_eq!(again.generation, first.generation);
    // It expires; another instance takes it at the next generation.
    let second = app
        .store
        .acquire_lease("other-1", session, now + 2_000, now + 3_000)
        .await
        .unwrap()
        .expect("expired: taken over");
    assert_eq!(second.generation, first.generation + 1);

    app.db()
        .execute(&format!(
            "INSERT INTO outbox (id, account_id, session_id, chat_jid, message_id, action, payload, \
             available_at, attempts, created_at) VALUES ('job_00000000000000000000000001', \
             '{account}', '{session}', '15550100001@s.whatsapp.net', NULL, 'send', '{{}}', {now}, 0, {now})"
        ))
        .await;
    let job = app
        .store
        .ready_jobs(session, now, 10)
        .await
        .unwrap()
        .remove(0);
    let defer = JobOutcome::Defer {
        job,
        available_at: now + 600_000,
    };
    let stale = Fence {
        session_id: session,
        instance_id: "stalled-1".into(),
        generation: first.generation,
    };
    let refused = app
        .store
        .record_outcomes_fenced(Some(&stale), std::slice::from_ref(&defer))
        .await;
    assert!(matches!(refused, Err(StoreError::Fenced(_))), "{refused:?}");
    assert_eq!(
        app.store.ready_jobs(session, now, 10).await.unwrap().len(),
        1,
        "nothing was written"
    );
    let current = Fence {
        session_id: session,
        instance_id: "other-1".into(),
        generation: second.generation,
    };
    app.store
        .record_outcomes_fenced(Some(&current), std::slice::from_ref(&defer))
        .await
        .unwrap();
    assert!(
        app.store
            .ready_jobs(session, now, 10)
            .await
            .unwrap()
            .is_empty(),
        "the owner's write went in"
    );
}

/// What the fake peer saw of a forwarded call.
#[derive(Default, Clone)]
struct Seen {
    path: String,
    forwarded_by: Option<String>,
    authorization: Option<String>,
}

/// A stand-in for the owning instance: answers every call with a marker and keeps the last.
async fn fake_peer() -> (String, std::sync::Arc<std::sync::Mutex<Option<Seen>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let keep = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let keep = keep.clone();
        async move {
            let header = |n: &str| {
                req.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            *keep.lock().unwrap() = Some(Seen {
                path: req.uri().to_string(),
                forwarded_by: header("x-wharf-forwarded"),
                authorization: header("authorization"),
            });
            axum::Json(
                json!({"exists": true, "jid": "answered-by-the-owner@s.whatsapp.net", "lid": null}),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| c.lease_ttl_ms = 1_500)]
async fn a_call_needing_the_live_connection_is_answered_by_the_owner(app: TestApp) {
    let (id, _) = app.connected_session().await;
    let session: SessionId = id.parse().unwrap();
    let (peer_url, seen) = fake_peer().await;
    peer_at_takes(&app, session, Some(peer_url)).await;
    // This instance sees the loss on its next pass (a third of the lease).
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let path = format!("/api/on-whatsapp/+15550100001?session_id={id}");
    match app.backend() {
        wharf_testkit::Backend::Postgres => {
            // Instances sharing PostgreSQL: the call goes to the owner, as the caller made it.
            let answer = app.get(&path).expect(200).await;
            assert_eq!(answer["jid"], "answered-by-the-owner@s.whatsapp.net");
            let seen = seen
                .lock()
                .unwrap()
                .clone()
                .expect("the owner got the call");
            assert_eq!(seen.path, path);
            assert!(
                seen.forwarded_by
                    .is_some_and(|by| by.starts_with("test-instance-")),
                "marked as forwarded, so the owner answers it itself"
            );
            assert_eq!(seen.authorization, Some(format!("Bearer {}", app.pat)));
            // A call already forwarded is answered where it lands.
            let refused = app
                .get(&path)
                .header("x-wharf-forwarded", "another-instance")
                .expect(409)
                .await;
            assert_eq!(refused["reason_code"], "owned_elsewhere");
        }
        wharf_testkit::Backend::Sqlite => {
            // One instance per SQLite file: nothing is forwarded; the answer names the owner.
            let refused = app.get(&path).expect(409).await;
            assert_eq!(refused["reason_code"], "owned_elsewhere");
            assert!(
                refused["message"].as_str().unwrap().contains(PEER),
                "{refused}"
            );
            assert!(seen.lock().unwrap().is_none());
        }
    }
}

/// A PostgreSQL app with short leases and 30 requests a minute per account, and a connected
/// session (its id as text and parsed); `None` without PostgreSQL.
async fn limited_app_with_a_session() -> Option<(TestApp, String, SessionId)> {
    let app = TestApp::spawn_with(wharf_testkit::Backend::Postgres, |c| {
        c.lease_ttl_ms = 1_500;
        c.rate_limit_per_minute = std::num::NonZeroU32::new(30).unwrap();
    })
    .await?;
    let (id, _) = app.connected_session().await;
    let session = id.parse().unwrap();
    Some((app, id, session))
}

/// A call forwarded to the session's owner counts once against the account's allowance: the
/// owner takes its token, and the instance that forwarded gives its own back. (The fake owner
/// here takes none, so the forwarded calls cost this instance nothing.) The allowance still
/// limits the calls this instance answers itself.
/// PostgreSQL only: on SQLite nothing is forwarded (see the test above).
#[tokio::test]
async fn a_forwarded_call_counts_once_against_the_rate_limit() {
    let Some((app, id, session)) = limited_app_with_a_session().await else {
        return;
    };
    let (peer_url, seen) = fake_peer().await;
    peer_at_takes(&app, session, Some(peer_url)).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let path = format!("/api/on-whatsapp/+15550100001?session_id={id}");
    // More forwarded calls than the whole allowance: each is answered by the owner.
    for n in 0..40 {
        *seen.lock().unwrap() = None;
        let answer = app.get(&path).send().await;
        assert_eq!(
            answer.status.as_u16(),
            200,
            "forwarded call {n} answered {}: {}",
            answer.status,
            answer.text
        );
        assert_eq!(answer.json["jid"], "answered-by-the-owner@s.whatsapp.net");
        assert!(seen.lock().unwrap().is_some(), "the owner got call {n}");
    }
    // Calls answered here are still limited: within the allowance (30, and a token every
    // 2 s), one of 40 quick calls is refused.
    let mut refused = false;
    for _ in 0..40 {
        let answer = app.get("/v1/whatsapp-sessions").send().await;
        if answer.status.as_u16() == 429 {
            refused = true;
            break;
        }
        assert_eq!(answer.status.as_u16(), 200, "{}", answer.text);
    }
    assert!(
        refused,
        "the allowance still limits this instance's own calls"
    );
}

/// A call whose owner cannot be reached is answered here (409, naming the owner) and counted
/// here: only a call the owner answered gives its token back.
#[tokio::test]
async fn a_call_the_owner_did_not_answer_counts_here() {
    let Some((app, id, session)) = limited_app_with_a_session().await else {
        return;
    };
    // An address nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    peer_at_takes(&app, session, Some(address)).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let path = format!("/api/on-whatsapp/+15550100001?session_id={id}");
    let mut refused = false;
    for n in 0..40 {
        let answer = app.get(&path).send().await;
        if answer.status.as_u16() == 429 {
            refused = true;
            break;
        }
        assert_eq!(answer.status.as_u16(), 409, "call {n}: {}", answer.text);
        assert_eq!(answer.json["reason_code"], "owned_elsewhere");
    }
    assert!(refused, "calls the owner did not answer are counted here");
}

/// A lease given up (a clean stop, a share handed over) stays given up: the next renewal of
/// its former holder does not take it back before another instance can take it.
#[wharf_testkit::dual_test]
async fn a_released_lease_is_not_renewed_by_its_former_holder(app: TestApp) {
    let created = app.create_session(json!({})).await;
    let session = id_of(&created);
    let now = now_millis();
    app.store
        .acquire_lease("leaving-1", session, now, now + 60_000)
        .await
        .unwrap()
        .expect("free");
    assert_eq!(
        app.store
            .release_leases("leaving-1", &[session])
            .await
            .unwrap(),
        1
    );
    let renewed = app
        .store
        .renew_leases("leaving-1", now + 120_000)
        .await
        .unwrap();
    assert!(renewed.is_empty(), "{renewed:?}");
    let taken = app
        .store
        .acquire_lease("joining-1", session, now + 1, now + 60_000)
        .await
        .unwrap();
    assert!(taken.is_some(), "another instance takes it at once");
}

/// `GET /instances` shows the live instances (this one and a peer), the sessions each owns by
/// lease, and a running session no live instance owns once its owner died; with
/// `metrics_token` set it takes the operator's token, and a tenant's key is not that token.
#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| c.metrics_token = Some("operator".into()))]
async fn the_instances_and_what_they_own_are_shown_to_the_operator(app: TestApp) {
    async fn view(app: &TestApp) -> serde_json::Value {
        let answer = app.get("/instances").token("operator").send().await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        serde_json::from_str(&answer.text).unwrap()
    }
    assert_eq!(app.get("/instances").anonymous().send().await.status, 401);
    let with_pat = app.get("/instances").send().await;
    assert_eq!(
        with_pat.status, 401,
        "a tenant's key is not the operator's token"
    );
    assert!(with_pat.text.contains("metrics_token"), "{}", with_pat.text);

    let (mine, _) = app.connected_session().await;
    let (theirs, _) = app.connected_session().await;
    let theirs_id: SessionId = theirs.parse().unwrap();
    peer_at_takes(&app, theirs_id, Some("http://10.0.0.2:8080".into())).await;
    let shown = view(&app).await;
    let instances = shown["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{shown:#}");
    let here = instances
        .iter()
        .find(|i| i["id"].as_str().unwrap().starts_with("test-instance-"))
        .unwrap_or_else(|| panic!("this instance: {shown:#}"));
    let owned: Vec<&str> = here["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(owned, vec![mine.as_str()], "{shown:#}");
    assert!(here["sessions"][0]["generation"].as_i64().unwrap() >= 1);
    assert!(here["sessions"][0]["expires_in_ms"].as_i64().unwrap() > 0);
    assert!(here["heartbeat_age_ms"].as_i64().unwrap() >= 0);
    let peer = instances.iter().find(|i| i["id"] == PEER).unwrap();
    assert_eq!(peer["address"], "http://10.0.0.2:8080");
    assert_eq!(peer["sessions"][0]["session_id"], theirs.as_str());
    assert_eq!(shown["running_sessions"], 2);
    assert_eq!(shown["unowned_sessions"], json!([]));

    // The peer dies: it leaves the view, and its session is unowned until this instance takes
    // it over (the lease worker runs every few seconds, so it may have already).
    peer_dies(&app).await;
    let shown = view(&app).await;
    let instances = shown["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{shown:#}");
    let unowned = shown["unowned_sessions"].as_array().unwrap();
    let taken = instances[0]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["session_id"] == theirs.as_str());
    assert!(
        taken || unowned == &vec![json!(theirs)],
        "the dead peer's session is unowned or taken over: {shown:#}"
    );
}

/// Without `metrics_token` the instances are not shown over HTTP (they name every tenant's
/// sessions), to a tenant or to anyone.
#[wharf_testkit::dual_test]
async fn the_instances_are_not_shown_over_http_without_an_operator_token(app: TestApp) {
    app.connected_session().await;
    for answer in [
        app.get("/instances").send().await,
        app.get("/instances").anonymous().send().await,
    ] {
        assert_eq!(answer.status, 403, "{}", answer.text);
        assert!(answer.text.contains("metrics_token"), "{}", answer.text);
        assert!(!answer.text.contains("sess_"), "{}", answer.text);
    }
}
