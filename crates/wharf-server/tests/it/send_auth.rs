//! The send path takes its key and session from memory (the auth epoch makes that exact):
//! a change made by another process (here: the test's own `Store`, which the server does
//! not share) takes effect for the very next send, and nothing is committed after it.

use serde_json::json;
use sqlx::{Connection, Executor};
use wharf_core::{MessageId, SessionId, TokenHash};
use wharf_store::{OutboxJob, StoreError};
use wharf_testkit::{assert_error, session_and_key};

/// A new session's id.
async fn new_session(app: &wharf_testkit::TestApp) -> String {
    session_and_key(&app.create_session(json!({})).await).0
}

/// The messages of `session`, as the API lists them.
async fn logged(app: &wharf_testkit::TestApp, session: &str) -> usize {
    let page = app
        .get(&format!(
            "/api/whatsapp-sessions/{session}/message-logs?limit=100"
        ))
        .expect(200)
        .await;
    page["data"].as_array().expect("a page").len()
}

/// Marks `session` for deletion through the test's own store (another process, for the
/// server).
async fn mark_for_deletion(app: &wharf_testkit::TestApp, session: &str) {
    let id: SessionId = session.parse().unwrap();
    app.store
        .modify_session::<StoreError>(Some(app.account_id.parse().unwrap()), id, |row| {
            row.status = wharf_core::SessionStatus::PendingDeletion;
            Ok(Vec::new())
        })
        .await
        .unwrap()
        .expect("the session");
}

/// A session with one message (the template of the rows below), and the auth epoch read
/// before and after an unrelated revocation moved it.
async fn around_a_revocation(
    app: &wharf_testkit::TestApp,
) -> (SessionId, wharf_store::MessageRow, i64, i64) {
    let session: SessionId = new_session(app).await.parse().unwrap();
    let first: MessageId = app
        .send_text(&session.to_string(), "+15550102030", "first")
        .await
        .parse()
        .unwrap();
    let account = app.account_id.parse().unwrap();
    let template = app
        .store
        .get_message(account, first)
        .await
        .unwrap()
        .expect("the first message");
    let hash = TokenHash::of(&app.pat);
    let (_, before) = app
        .store
        .key_for_send(&hash, true)
        .await
        .unwrap()
        .expect("the PAT");
    let (other, _) = app.store.create_pat(account, None).await.unwrap();
    app.store.revoke_key(&other.fingerprint).await.unwrap();
    let (_, now) = app
        .store
        .key_for_send(&hash, true)
        .await
        .unwrap()
        .expect("the PAT");
    assert!(now > before, "the epoch moved: {before} -> {now}");
    (session, template, before, now)
}

/// A new message like `template`, to `chat` when given.
fn like(
    template: &wharf_store::MessageRow,
    chat: Option<wharf_core::Jid>,
) -> wharf_store::MessageRow {
    let mut m = template.clone();
    m.id = MessageId::generate();
    m.provider_msg_id = Some(wharf_core::message::new_provider_id());
    if let Some(chat) = chat {
        m.chat_jid = chat;
    }
    m
}

/// Accepts `sends` concurrently (so they share group commits) and checks each outcome: those
/// decided at `stale` are refused and wrote nothing, the others are stored as given. Returns
/// how many were written.
async fn accept_and_check(
    app: &wharf_testkit::TestApp,
    sends: &[(wharf_store::MessageRow, Option<i64>)],
    stale: i64,
) -> usize {
    let results = futures::future::join_all(sends.iter().map(|(m, verify)| {
        let store = app.store.clone();
        let (m, verify) = (m.clone(), *verify);
        async move { store.accept_outgoing(&m, None, verify).await }
    }))
    .await;
    let mut written = 0;
    for ((m, verify), result) in sends.iter().zip(&results) {
        let stored = app.store.get_message(m.account_id, m.id).await.unwrap();
        if *verify == Some(stale) {
            assert!(matches!(result, Err(StoreError::Stale)), "{result:?}");
            assert!(stored.is_none(), "a stale send wrote its message");
        } else {
            assert!(result.is_ok(), "{result:?}");
            let stored = stored.expect("an accepted send was not written");
            assert_eq!(
                stored.provider_msg_id, m.provider_msg_id,
                "columns bound in order"
            );
            assert_eq!(stored.chat_jid, m.chat_jid);
            written += 1;
        }
    }
    written
}

#[wharf_testkit::dual_test]
async fn a_key_revoked_elsewhere_stops_the_next_send(mut app: wharf_testkit::TestApp) {
    let session = new_session(&app).await;
    let account = app.account_id.parse().unwrap();
    let (key, token) = app
        .store
        .create_pat(account, Some("sender".into()))
        .await
        .unwrap();
    let send = |text: &str| json!({"session_id": session, "to": "+15550102030", "text": text});
    // Two sends: the second is served from the cache the first filled.
    for text in ["one", "two"] {
        app.post("/api/send-message")
            .token(&token.raw)
            .json(send(text))
            .expect(202)
            .await;
    }
    app.store
        .revoke_key(&key.fingerprint)
        .await
        .unwrap()
        .expect("revoked");
    let refused = app
        .post("/api/send-message")
        .token(&token.raw)
        .json(send("three"))
        .expect(401)
        .await;
    assert_error(&refused, "invalid_token");
    assert_eq!(
        logged(&app, &session).await,
        2,
        "nothing was committed after the revocation"
    );
    // Other keys of the account still send (the cache was emptied, not poisoned).
    app.post("/api/send-message")
        .json(send("four"))
        .expect(202)
        .await;
    assert_eq!(logged(&app, &session).await, 3);
}

#[wharf_testkit::dual_test]
async fn a_key_revoked_elsewhere_gets_401_for_a_bad_body_too(mut app: wharf_testkit::TestApp) {
    let session = new_session(&app).await;
    let account = app.account_id.parse().unwrap();
    let (key, token) = app.store.create_pat(account, None).await.unwrap();
    app.post("/api/send-message")
        .token(&token.raw)
        .json(json!({"session_id": session, "to": "+15550102030", "text": "one"}))
        .expect(202)
        .await;
    app.store
        .revoke_key(&key.fingerprint)
        .await
        .unwrap()
        .expect("revoked");
    // Still cached (no send has committed since), and the body is refused before any
    // commit: the answer is 401 all the same, never the body's 422.
    for body in [
        json!({"session_id": session, "to": "garbage", "text": "x"}),
        json!({"session_id": "sess_00000000000000000000000000", "to": "+15550102030", "text": "x"}),
    ] {
        let refused = app
            .post("/api/send-message")
            .token(&token.raw)
            .json(body)
            .expect(401)
            .await;
        assert_error(&refused, "invalid_token");
    }
    assert_eq!(logged(&app, &session).await, 1);
}

#[wharf_testkit::dual_test]
async fn a_session_key_revoked_elsewhere_stops_the_next_send(mut app: wharf_testkit::TestApp) {
    let created = app.create_session(json!({})).await;
    let (session, raw) = session_and_key(&created);
    let fingerprint = created["session_api_key"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post("/api/send-message")
        .token(&raw)
        .json(json!({"to": "+15550102030", "text": "one"}))
        .expect(202)
        .await;
    app.store
        .revoke_key(&fingerprint)
        .await
        .unwrap()
        .expect("revoked");
    let refused = app
        .post("/api/send-message")
        .token(&raw)
        .json(json!({"to": "+15550102030", "text": "two"}))
        .expect(401)
        .await;
    assert_error(&refused, "invalid_token");
    assert_eq!(logged(&app, &session).await, 1);
}

#[wharf_testkit::dual_test]
async fn a_session_being_deleted_takes_no_more_sends(mut app: wharf_testkit::TestApp) {
    let session = new_session(&app).await;
    let send = |text: &str| json!({"session_id": session, "to": "+15550102030", "text": text});
    app.post("/api/send-message")
        .json(send("one"))
        .expect(202)
        .await;
    app.post("/api/send-message")
        .json(send("two"))
        .expect(202)
        .await;
    // Marked for deletion by another process: the cached session must not be used.
    mark_for_deletion(&app, &session).await;
    let refused = app
        .post("/api/send-message")
        .json(send("three"))
        .expect(409)
        .await;
    assert_error(&refused, "invalid_state");
    assert_eq!(logged(&app, &session).await, 2);
}

#[wharf_testkit::dual_test]
async fn a_new_key_does_not_see_a_session_cached_before_it_changed(
    mut app: wharf_testkit::TestApp,
) {
    let session = new_session(&app).await;
    let send = json!({"session_id": session, "to": "+15550102030", "text": "x"});
    app.post("/api/send-message")
        .json(send.clone())
        .expect(202)
        .await;
    mark_for_deletion(&app, &session).await;
    // A key read now is at the new epoch; the session cached at the old one is not used.
    let account = app.account_id.parse().unwrap();
    let (_, token) = app.store.create_pat(account, None).await.unwrap();
    let refused = app
        .post("/api/send-message")
        .token(&token.raw)
        .json(send)
        .expect(409)
        .await;
    assert_error(&refused, "invalid_state");
}

#[wharf_testkit::dual_test]
async fn the_send_path_reads_keys_from_memory_until_asked_for_fresh(
    mut app: wharf_testkit::TestApp,
) {
    let account = app.account_id.parse().unwrap();
    let (key, token) = app.store.create_pat(account, None).await.unwrap();
    let hash = TokenHash::of(&token.raw);
    let (_, epoch) = app
        .store
        .key_for_send(&hash, false)
        .await
        .unwrap()
        .expect("live");
    app.store
        .revoke_key(&key.fingerprint)
        .await
        .unwrap()
        .expect("revoked");
    // Cached: the same answer at the old epoch (a commit with it would be refused)...
    let (_, cached) = app
        .store
        .key_for_send(&hash, false)
        .await
        .unwrap()
        .expect("from memory");
    assert_eq!(cached, epoch);
    // ... until read again.
    assert!(app.store.key_for_send(&hash, true).await.unwrap().is_none());
    assert!(
        app.store
            .key_for_send(&hash, false)
            .await
            .unwrap()
            .is_none()
    );
}

#[wharf_testkit::dual_test]
async fn large_mixed_groups_bind_every_row_in_order(mut app: wharf_testkit::TestApp) {
    let (session, template, before, now) = around_a_revocation(&app).await;
    let mut total = 1;
    // More than 100 of each kind, so groups have several chunks of each; at the current
    // epoch every send is written, at an old one only those without an epoch.
    for epoch in [now, before] {
        let sends: Vec<_> = (0..430)
            .map(|i| {
                let chat =
                    wharf_core::Jid::parse(&format!("1555010{i:04}@s.whatsapp.net")).unwrap();
                (like(&template, Some(chat)), (i % 2 == 1).then_some(epoch))
            })
            .collect();
        total += accept_and_check(&app, &sends, before).await;
        assert_eq!(app.store.outbox_len(session).await.unwrap(), total as i64);
    }
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.rate_limit_per_minute = 3.try_into().unwrap();
})]
async fn a_revoked_cached_key_over_its_limit_gets_401_not_429(mut app: wharf_testkit::TestApp) {
    let session = new_session(&app).await;
    let send = json!({"session_id": session, "to": "+15550102030", "text": "x"});
    let account = app.account_id.parse().unwrap();
    let (key, token) = app.store.create_pat(account, None).await.unwrap();
    for _ in 0..2 {
        app.post("/api/send-message")
            .token(&token.raw)
            .json(send.clone())
            .expect(202)
            .await;
    }
    app.store
        .revoke_key(&key.fingerprint)
        .await
        .unwrap()
        .expect("revoked");
    let refused = app
        .post("/api/send-message")
        .token(&token.raw)
        .json(send)
        .expect(401)
        .await;
    assert_error(&refused, "invalid_token");
}

#[wharf_testkit::dual_test]
async fn a_send_decided_at_an_old_epoch_writes_nothing(mut app: wharf_testkit::TestApp) {
    let (session, template, before, now) = around_a_revocation(&app).await;
    let account = app.account_id.parse().unwrap();
    // Concurrent sends share group commits: those decided at the old epoch are refused,
    // the others (current epoch, or read from the database) are written.
    let sends: Vec<_> = (0..30)
        .map(|i| {
            (
                like(&template, None),
                [Some(before), Some(now), None][i % 3],
            )
        })
        .collect();
    assert_eq!(accept_and_check(&app, &sends, before).await, 20);
    assert_eq!(
        app.store.outbox_len(session).await.unwrap(),
        21,
        "the first and 20 current ones"
    );

    // With an idempotency key (committed on its own), the same rule.
    let m = like(&template, None);
    let answer = json!({"status": "queued"});
    let stale = app
        .store
        .accept_outgoing(&m, Some(("k1", "h", 202, &answer)), Some(before))
        .await;
    assert!(matches!(stale, Err(StoreError::Stale)), "{stale:?}");
    assert!(
        app.store
            .get_message(account, m.id)
            .await
            .unwrap()
            .is_none()
    );
    app.store
        .accept_outgoing(&m, Some(("k1", "h", 202, &answer)), Some(now))
        .await
        .unwrap();
    assert!(
        app.store
            .get_message(account, m.id)
            .await
            .unwrap()
            .is_some()
    );
}

/// A send that breaks a rule of the database (here: a provider id the session used already)
/// fails alone: the others of its group are written, it leaves no message (so no send job),
/// and every column of the others is stored as given (NUL in reported text as U+FFFD).
#[wharf_testkit::dual_test]
async fn a_bad_send_fails_alone_and_the_rest_of_its_group_is_stored_whole(
    mut app: wharf_testkit::TestApp,
) {
    let (session, template, _, now) = around_a_revocation(&app).await;
    let account = app.account_id.parse().unwrap();
    let mut full = like(
        &template,
        Some(wharf_core::Jid::parse("15550109999@s.whatsapp.net").unwrap()),
    );
    full.sender_jid = Some("15550100000@s.whatsapp.net".into());
    full.quoted_message_id = Some(template.id);
    full.failure_reason = Some("said \0 this".into());
    full.attempts = 3;
    (
        full.sent_at,
        full.delivered_at,
        full.read_at,
        full.played_at,
    ) = (Some(11), Some(12), Some(13), Some(14));
    (
        full.failed_at,
        full.deleted_at,
        full.edited_at,
        full.updated_at,
    ) = (Some(15), Some(16), Some(17), 18);
    let mut clash = like(&template, None);
    clash.provider_msg_id = template.provider_msg_id.clone();
    let mut sends: Vec<(wharf_store::MessageRow, Option<i64>)> = (0..10)
        .map(|i| (like(&template, None), [None, Some(now)][i % 2]))
        .collect();
    sends.insert(4, (full.clone(), Some(now)));
    sends.insert(7, (clash.clone(), None));
    let results = futures::future::join_all(sends.iter().map(|(m, verify)| {
        let store = app.store.clone();
        async move { store.accept_outgoing(m, None, *verify).await }
    }))
    .await;
    for ((m, _), result) in sends.iter().zip(&results) {
        if m.id == clash.id {
            assert!(
                matches!(result, Err(e) if !matches!(e, StoreError::Stale)),
                "the clash: {result:?}"
            );
        } else {
            assert!(result.is_ok(), "{result:?}");
        }
    }
    assert!(
        app.store
            .get_message(account, clash.id)
            .await
            .unwrap()
            .is_none(),
        "the failed send wrote its message"
    );
    assert_eq!(
        app.store.outbox_len(session).await.unwrap(),
        12,
        "the first send's job and the 11 good ones"
    );
    let mut expected = full.clone();
    expected.failure_reason = Some("said \u{FFFD} this".into());
    let stored = app.store.get_message(account, full.id).await.unwrap();
    assert_eq!(stored, Some(expected), "every column as given");
    let jobs = app.store.ready_jobs(session, i64::MAX, 100).await.unwrap();
    let job = jobs.iter().find(|j| j.message_id == Some(full.id));
    assert_eq!(
        job,
        Some(&OutboxJob::send(&full)),
        "the queued message is its send job"
    );
}

/// PostgreSQL only: runs `sql` on the test's database.
async fn pg(app: &wharf_testkit::TestApp, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(&app.config.database_url)
        .await
        .expect("connect");
    conn.execute(sqlx::AssertSqlSafe(sql.to_owned()))
        .await
        .expect("sql");
    let _ = conn.close().await;
}

/// Makes every insert into `table` take a second, so a change can land in the middle.
async fn slow_inserts(app: &wharf_testkit::TestApp, table: &str) {
    pg(app, &format!(
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END; $$; \
         CREATE TRIGGER slow AFTER INSERT ON {table} FOR EACH STATEMENT EXECUTE FUNCTION slow();"
    ))
    .await;
}

/// PostgreSQL only (`None` without it): a test app and a send to a new session of it.
async fn postgres_app_and_send() -> Option<(wharf_testkit::TestApp, serde_json::Value)> {
    let app = wharf_testkit::TestApp::spawn(wharf_testkit::Backend::Postgres).await?;
    let session = new_session(&app).await;
    let send = json!({"session_id": session, "to": "+15550102030", "text": "x"});
    Some((app, send))
}

// PostgreSQL runs statements at READ COMMITTED: without a lock, a revocation could commit
// in the middle of a send's transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_revocation_waits_for_a_send_in_flight() {
    let Some((app, send)) = postgres_app_and_send().await else {
        return;
    };
    let account = app.account_id.parse().unwrap();
    let (key, token) = app.store.create_pat(account, None).await.unwrap();
    app.post("/api/send-message")
        .token(&token.raw)
        .json(send.clone())
        .expect(202)
        .await;
    slow_inserts(&app, "outbox").await;
    let call = app
        .post("/api/send-message")
        .token(&token.raw)
        .json(send.clone())
        .send();
    let revoke = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        app.store
            .revoke_key(&key.fingerprint)
            .await
            .unwrap()
            .expect("revoked");
        started.elapsed()
    };
    let (answer, took) = tokio::join!(call, revoke);
    // The send's transaction lasts about a second (the slow trigger) and the revocation
    // starts 300 ms into it: either the send was refused, or the revocation waited for its
    // commit. (The clients' own clocks cannot order the two: the send's answer still has to
    // travel after its commit.)
    assert!(
        answer.status.as_u16() != 202 || took >= std::time::Duration::from_millis(400),
        "the revocation ({took:?}) did not wait for the send accepted meanwhile: {}",
        answer.json
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_an_unrelated_change_during_a_send_does_not_fail_it() {
    let Some((app, send)) = postgres_app_and_send().await else {
        return;
    };
    app.post("/api/send-message")
        .json(send.clone())
        .expect(202)
        .await;
    slow_inserts(&app, "messages").await;
    let account = app.account_id.parse().unwrap();
    let call = app.post("/api/send-message").json(send.clone()).send();
    let bump = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let (other, _) = app.store.create_pat(account, None).await.unwrap();
        app.store.revoke_key(&other.fingerprint).await.unwrap();
    };
    let (answer, ()) = tokio::join!(call, bump);
    assert_eq!(answer.status.as_u16(), 202, "{}", answer.json);
}

// PostgreSQL lets a row lock for share go to a transaction that asks while an update of the
// row waits, so sends that overlap (the group commits of several instances, a send with an
// idempotency key beside a group) could hold the epoch's row for share without a gap and
// keep a revocation waiting as long as they come. A change of the epoch now queues for the
// epoch's table first, and every send that asks after it waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_revocation_is_not_kept_waiting_by_sends_that_overlap() {
    let Some((app, _)) = postgres_app_and_send().await else {
        return;
    };
    let account = app.account_id.parse().unwrap();
    let (other, _) = app.store.create_pat(account, None).await.unwrap();
    let hold = "SELECT n FROM auth_epoch WHERE id = 1 FOR SHARE";
    let open = || async {
        let mut conn = sqlx::PgConnection::connect(&app.config.database_url)
            .await
            .expect("connect");
        conn.execute("BEGIN").await.expect("begin");
        conn
    };
    // A send in flight holds the epoch.
    let mut first = open().await;
    let before: i64 = sqlx::query_scalar(hold)
        .fetch_one(&mut first)
        .await
        .expect("the epoch");
    // A revocation waits for it.
    let revoke = tokio::spawn({
        let store = app.store.clone();
        async move { store.revoke_key(&other.fingerprint).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !revoke.is_finished(),
        "the revocation waits for the send in flight"
    );
    // A send that begins after the revocation asked.
    let mut later = open().await;
    let later_read = tokio::spawn(async move {
        let n: i64 = sqlx::query_scalar(hold)
            .fetch_one(&mut later)
            .await
            .expect("the epoch");
        (later, n)
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    first.execute("COMMIT").await.expect("commit");
    let revoked = tokio::time::timeout(std::time::Duration::from_secs(5), revoke).await;
    let revoked = revoked.expect("the revocation waited for a send that began after it");
    assert!(revoked.expect("the task").expect("revoked").is_some());
    // The later send read the epoch the revocation left: its sends would be refused.
    let (mut later, n) = tokio::time::timeout(std::time::Duration::from_secs(5), later_read)
        .await
        .expect("the later send read the epoch once the revocation committed")
        .expect("the task");
    assert!(
        n > before,
        "the later send read the new epoch: {before} -> {n}"
    );
    later.execute("COMMIT").await.expect("commit");
}
