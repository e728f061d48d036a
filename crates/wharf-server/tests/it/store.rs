//! The store under the API: what the group commit of sends guarantees when a request in a
//! group is bad.

use wharf_core::{MessageId, SessionId};

/// A new session that is not connected: it keeps its outbox (nothing dispatches it).
async fn unconnected_session(app: &wharf_testkit::TestApp) -> SessionId {
    let created = app.create_session(serde_json::json!({})).await;
    created["session"]["session_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Rows numbered `g` from 1 to `n` (a `FROM` item) and `g` as 26 digits (an id's length), in
/// the app's SQL, to fill tables with as many rows as a test needs in one statement.
pub(crate) fn numbers(app: &wharf_testkit::TestApp, n: u32) -> (String, &'static str) {
    match app.db().backend() {
        wharf_testkit::Backend::Postgres => (
            format!("generate_series(1, {n}) AS s(g)"),
            "lpad(g::text, 26, '0')",
        ),
        wharf_testkit::Backend::Sqlite => (
            format!(
                "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n}) \
                 SELECT g FROM s) AS s"
            ),
            "printf('%026d', g)",
        ),
    }
}

/// A session that is not connected (it keeps its outbox, so its jobs can be read) and the
/// stored row of a first text sent through the API.
async fn session_and_first_message(
    app: &wharf_testkit::TestApp,
) -> (SessionId, wharf_store::MessageRow) {
    let session = unconnected_session(app).await;
    let first: MessageId = app
        .send_text(&session.to_string(), "+15550102030", "first")
        .await
        .parse()
        .unwrap();
    let row = app
        .store
        .get_message(app.account_id.parse().unwrap(), first)
        .await
        .unwrap()
        .expect("the first message");
    (session, row)
}

#[wharf_testkit::dual_test]
async fn a_bad_send_in_a_group_commit_fails_alone(mut app: wharf_testkit::TestApp) {
    let (session, template) = session_and_first_message(&app).await;
    // Many sends at once, so they share group commits; one reuses the first's id.
    let mut rows = Vec::new();
    for i in 0..40 {
        let mut m = template.clone();
        if i != 20 {
            m.id = MessageId::generate();
            m.provider_msg_id = Some(format!("3EB0{i:020X}").into());
        }
        rows.push(m);
    }
    let results = futures::future::join_all(rows.iter().map(|m| {
        let store = app.store.clone();
        let m = m.clone();
        async move { store.accept_outgoing(&m, None, None).await }
    }))
    .await;
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.is_ok(), i != 20, "send {i}: {result:?}");
    }
    for (i, m) in rows.iter().enumerate() {
        if i != 20 {
            let stored = app.store.get_message(m.account_id, m.id).await.unwrap();
            assert!(stored.is_some(), "send {i} was committed");
        }
    }
    assert_eq!(
        app.store.outbox_len(session).await.unwrap(),
        40,
        "the first and 39 good ones: each queued message is a send job"
    );
    // The writer is usable afterwards (no transaction was left open).
    app.send_text(&session.to_string(), "+15550102030", "after")
        .await;
    assert_eq!(app.store.outbox_len(session).await.unwrap(), 41);
}

/// A group commit writes every field of a send exactly as given: text that needs escaping
/// (quotes, a backslash, a new line, a NUL: kept in the content, U+FFFD in the plain text
/// columns on both backends, as PostgreSQL's text cannot hold it) and the timestamps a queued
/// send does not have; each queued message is then its send job, named after it.
#[wharf_testkit::dual_test]
async fn a_group_commit_writes_each_field_as_given(mut app: wharf_testkit::TestApp) {
    let (session, template) = session_and_first_message(&app).await;
    let first = template.id;
    let text = "a \"quote\", a \\ backslash,\na new line, é ☃ 😀, a NUL \u{0}.";
    let mut plain = template.clone();
    (plain.id, plain.provider_msg_id) = (MessageId::generate(), None);
    plain.content = wharf_core::message::Content::Text { text: text.into() };
    let mut full = plain.clone();
    full.id = MessageId::generate();
    full.sender_jid = Some("15550009999@s.whatsapp.net".into());
    full.provider_msg_id = Some("3EB0FULL\u{0}".into());
    full.quoted_message_id = Some(first);
    full.failure_reason = Some("why \"not\"".into());
    (full.attempts, full.sent_at, full.delivered_at, full.read_at) = (3, Some(5), Some(6), Some(7));
    (
        full.played_at,
        full.failed_at,
        full.deleted_at,
        full.edited_at,
    ) = (Some(8), Some(9), Some(10), Some(11));
    let mut third = plain.clone();
    third.id = MessageId::generate();
    let sends = [plain.clone(), full.clone(), third.clone()];
    let results = futures::future::join_all(sends.iter().map(|m| {
        let (store, m) = (app.store.clone(), m.clone());
        async move { store.accept_outgoing(&m, None, None).await }
    }))
    .await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    let nul = |s: &str| s.replace('\0', "\u{FFFD}");
    let account = app.account_id.parse().unwrap();
    for sent in &sends {
        let stored = app.store.get_message(account, sent.id).await.unwrap();
        let mut expected = sent.clone();
        expected.provider_msg_id = sent
            .provider_msg_id
            .as_ref()
            .map(|p| nul(p.as_str()).into());
        assert_eq!(stored, Some(expected), "message {}", sent.id);
    }
    let jobs = app.store.ready_jobs(session, i64::MAX, 100).await.unwrap();
    for sent in &sends {
        let expected = wharf_store::OutboxJob::send(sent);
        assert_eq!(expected.id.to_string()[4..], sent.id.to_string()[4..]);
        let stored = jobs.iter().find(|j| j.message_id == Some(sent.id));
        assert_eq!(stored, Some(&expected), "the job of {}", sent.id);
    }
}

#[wharf_testkit::dual_test]
async fn an_agent_and_its_webhook_are_written_together_or_not_at_all(
    mut app: wharf_testkit::TestApp,
) {
    use wharf_store::{AgentRow, WebhookRow};
    let account: wharf_core::AccountId = app.account_id.parse().unwrap();
    let now = wharf_core::time::now_millis();
    let agent = AgentRow {
        id: wharf_core::AgentId::generate(),
        account_id: account,
        name: "Support".into(),
        description: None,
        webhook_url: Some("http://127.0.0.1:9/hook".into()),
        webhook_id: None,
        created_at: now,
        updated_at: now,
    };
    let hook = |agent: &AgentRow| WebhookRow {
        id: wharf_core::WebhookId::generate(),
        account_id: account,
        target_url: "http://127.0.0.1:9/hook".into(),
        subscribed_events: vec![],
        session_id: None,
        agent_id: Some(agent.id),
        is_active: true,
        signing_secret: "whsec_x".into(),
        description: None,
        event_cursor: 0,
        created_at: now,
        updated_at: now,
        failing_since: None,
        disabled_at: None,
    };
    let first = hook(&agent);
    let mut stored = agent.clone();
    stored.webhook_id = Some(first.id);
    app.store
        .create_agent(&stored, Some(first.clone()))
        .await
        .expect("create");
    assert!(
        app.store
            .get_webhook(account, first.id)
            .await
            .unwrap()
            .is_some()
    );

    // The same agent id again fails, and takes its new endpoint with it.
    let second = hook(&agent);
    assert!(
        app.store
            .create_agent(&stored, Some(second.clone()))
            .await
            .is_err()
    );
    assert!(
        app.store
            .get_webhook(account, second.id)
            .await
            .unwrap()
            .is_none(),
        "no orphan endpoint"
    );

    // Removing the endpoint and saving the agent is one change.
    let remove = wharf_store::AgentEdit {
        webhook_url: Some(None),
        ..Default::default()
    };
    let (edited, secret) = app
        .store
        .edit_agent(account, agent.id, remove, now, |_, _| unreachable!())
        .await
        .unwrap()
        .expect("the agent");
    assert!(secret.is_none());
    assert_eq!(edited.webhook_id, None);
    assert!(
        app.store
            .get_webhook(account, first.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        app.store
            .get_agent(account, agent.id)
            .await
            .unwrap()
            .unwrap()
            .webhook_id,
        None
    );

    // Two edits that each add a URL: the second finds the first's endpoint and retargets
    // it, so no endpoint is orphaned.
    let add = |url: &str| wharf_store::AgentEdit {
        webhook_url: Some(Some(url.into())),
        ..Default::default()
    };
    let (once, secret) = app
        .store
        .edit_agent(
            account,
            agent.id,
            add("http://127.0.0.1:9/a"),
            now,
            |a, _| hook(a),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(secret.is_some());
    let (twice, secret) = app
        .store
        .edit_agent(
            account,
            agent.id,
            add("http://127.0.0.1:9/b"),
            now,
            |a, _| hook(a),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        secret.is_none(),
        "the endpoint was retargeted, not created again"
    );
    assert_eq!(once.webhook_id, twice.webhook_id);
    let third = app
        .store
        .get_webhook(account, twice.webhook_id.unwrap())
        .await
        .unwrap()
        .expect("the endpoint");
    assert_eq!(third.target_url, "http://127.0.0.1:9/b");
    // An unknown agent is not edited, and nothing is created for it.
    let ghost = wharf_core::AgentId::generate();
    assert!(
        app.store
            .edit_agent(
                account,
                ghost,
                add("http://127.0.0.1:9/c"),
                now,
                |_, _| unreachable!()
            )
            .await
            .unwrap()
            .is_none()
    );

    // Deleting the agent deletes its endpoint.
    assert!(app.store.delete_agent(account, agent.id).await.unwrap());
    assert!(
        app.store
            .get_webhook(account, third.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!app.store.delete_agent(account, agent.id).await.unwrap());
}

/// An edit writes only what it names: the deliverer disabling an endpoint between an edit's
/// read and its write is not undone by it (the whole row read before used to be written back).
#[wharf_testkit::dual_test]
async fn an_edit_does_not_undo_a_concurrent_disable(app: wharf_testkit::TestApp) {
    let hook = app
        .post("/v1/webhooks")
        .json(serde_json::json!({"target_url": "http://127.0.0.1:9/hook"}))
        .expect(201)
        .await;
    let id: wharf_core::WebhookId = hook["id"].as_str().unwrap().parse().unwrap();
    let account: wharf_core::AccountId = app.account_id.parse().unwrap();
    let before = app.store.get_webhook(account, id).await.unwrap().unwrap();
    // The deliverer disables it meanwhile.
    app.db()
        .execute(&format!(
            "UPDATE webhooks SET is_active = 0, failing_since = 1, disabled_at = 2 WHERE id = '{id}'"
        ))
        .await;
    let edit = wharf_store::WebhookEdit {
        description: Some(Some("renamed".into())),
        ..Default::default()
    };
    assert!(app.store.edit_webhook(account, id, &edit, 3).await.unwrap());
    let after = app.store.get_webhook(account, id).await.unwrap().unwrap();
    assert_eq!(after.description.as_deref(), Some("renamed"));
    assert!(!after.is_active, "still disabled");
    assert_eq!((after.failing_since, after.disabled_at), (Some(1), Some(2)));
    assert_eq!(after.signing_secret, before.signing_secret);
    // Enabling it starts its failures afresh.
    let enable = wharf_store::WebhookEdit {
        is_active: Some(true),
        ..Default::default()
    };
    assert!(
        app.store
            .edit_webhook(account, id, &enable, 4)
            .await
            .unwrap()
    );
    let enabled = app.store.get_webhook(account, id).await.unwrap().unwrap();
    assert!(enabled.is_active);
    assert_eq!((enabled.failing_since, enabled.disabled_at), (None, None));
    assert_eq!(enabled.description.as_deref(), Some("renamed"));
}

/// The dispatcher's read of ready jobs on a large backlog that nothing has analyzed (no
/// statistics; PostgreSQL planned the statement while the outbox was almost empty): FIFO per
/// chat, a waiting job holding back its chat's later jobs while the other chat goes on, and a
/// whole backlog held behind one waiting job read without a per-job scan. The `timeout`s are
/// hang guards with margins of ten and more, not measurements.
#[wharf_testkit::dual_test]
async fn ready_jobs_on_a_backlog_without_statistics(mut app: wharf_testkit::TestApp) {
    // Not connected: nothing dispatches these jobs while the test reads them.
    let session = unconnected_session(&app).await;
    let now = wharf_core::time::now_millis();
    let (series, pad) = numbers(&app, 100_000);
    let account = &app.account_id;
    // First on an almost empty outbox, as a server starts: PostgreSQL keeps the generic plan
    // it makes now, and a plan that suits ten jobs can loop over the session for every job
    // once there are tens of thousands.
    let insert = |range: &str| {
        format!(
            "INSERT INTO outbox (id, account_id, session_id, chat_jid, message_id, action, payload, \
             available_at, attempts, created_at) \
             SELECT 'job_' || {pad}, '{account}', '{session}', \
             CASE WHEN g % 10 = 5 THEN '15550100002@s.whatsapp.net' ELSE '15550100001@s.whatsapp.net' END, \
             NULL, 'send', '{{}}', CASE WHEN g = 5 THEN {later} ELSE {now} END, 0, {now} FROM {series} \
             WHERE {range}",
            later = now + 3_600_000,
        )
    };
    // PostgreSQL picks its plans' shape from estimates, and with no statistics any shape can
    // come out; the worst for this query is a generic plan made on the almost empty outbox,
    // so the reads below go through a store whose connections are made to keep that one.
    let generic;
    let store = match app.db().backend() {
        wharf_testkit::Backend::Postgres => {
            app.db()
                .execute(
                    "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET plan_cache_mode = \
                     force_generic_plan', current_database()); END $$",
                )
                .await;
            generic = wharf_store::Store::open(&app.config.database_url)
                .await
                .unwrap();
            &generic
        }
        wharf_testkit::Backend::Sqlite => &app.store,
    };
    app.db().execute(&insert("g <= 10")).await;
    for _ in 0..100 {
        store.ready_jobs(session, now, 200).await.unwrap();
    }
    // Job `g` is for chat A, but every tenth is for chat B; B's job 5 waits for an hour.
    app.db().execute(&insert("g > 10")).await;
    let ready = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        let mut last = Vec::new();
        for _ in 0..10 {
            last = store.ready_jobs(session, now, 200).await.unwrap();
        }
        last
    })
    .await
    .expect("ready_jobs answered");
    let ids: Vec<String> = ready.iter().map(|j| j.id.to_string()).collect();
    // Chat B's jobs from 5 on are held; chat A goes on, in order.
    let expected: Vec<String> = (1..)
        .filter(|g| g % 10 != 5)
        .take(200)
        .map(|g| format!("job_{g:026}"))
        .collect();
    assert_eq!(ids, expected);
    // Once B's job is due, its chat comes back in order.
    let later = store.ready_jobs(session, now + 3_600_000, 6).await.unwrap();
    let ids: Vec<String> = later.iter().map(|j| j.id.to_string()).collect();
    let expected: Vec<String> = (1..=6).map(|g| format!("job_{g:026}")).collect();
    assert_eq!(ids, expected);
    // Chat A's first job waits too (its pace, as when every send goes to one number): no job
    // is ready, and finding that out probes each job's chat once. PostgreSQL's generic plan of
    // a `NOT EXISTS` read the session's index entries for each job instead: 2-3 s a call here
    // (quadratic in the backlog), over 20 s with a bench's dead rows, a dispatcher stalled for
    // minutes. Done right it takes a fraction of a second, so 5 s for three calls is a wide
    // margin both ways.
    app.db()
        .execute(&format!(
            "UPDATE outbox SET available_at = {} WHERE id = 'job_{:026}'",
            now + 3_600_000,
            1
        ))
        .await;
    let ready = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut last = Vec::new();
        for _ in 0..3 {
            last = store.ready_jobs(session, now, 200).await.unwrap();
        }
        last
    })
    .await
    .expect("ready_jobs answered, reading each job once");
    assert!(ready.is_empty(), "{} jobs ready", ready.len());
}

/// A send's job: on SQLite its queued message alone (no outbox row), on PostgreSQL an outbox
/// row too; named after the message on both. Withdrawing the message ends the job.
#[wharf_testkit::dual_test]
async fn a_send_s_job_is_named_after_its_message(mut app: wharf_testkit::TestApp) {
    let (session, first) = session_and_first_message(&app).await;
    let rows = app
        .db()
        .count(&format!(
            "SELECT COUNT(*) FROM outbox WHERE session_id = '{session}'"
        ))
        .await;
    let expected = match app.db().backend() {
        wharf_testkit::Backend::Sqlite => 0,
        wharf_testkit::Backend::Postgres => 1,
    };
    assert_eq!(rows, expected, "outbox rows of one send");
    let jobs = app.store.ready_jobs(session, i64::MAX, 10).await.unwrap();
    assert_eq!(jobs, vec![wharf_store::OutboxJob::send(&first)]);
    assert_eq!(jobs[0].id.to_string()[4..], first.id.to_string()[4..]);
    assert_eq!(app.store.outbox_len(session).await.unwrap(), 1);
    assert_eq!(app.store.sessions_with_jobs().await.unwrap(), vec![session]);
    app.delete(&format!("/api/messages/{}", first.id))
        .expect(200)
        .await;
    assert!(
        app.store
            .ready_jobs(session, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(app.store.outbox_len(session).await.unwrap(), 0);
    assert!(app.store.sessions_with_jobs().await.unwrap().is_empty());
}

/// A failed message queued again (`resend`) gets a full set of attempts and its place by the
/// time it was first accepted: before the sends accepted after it.
#[wharf_testkit::dual_test]
async fn a_resent_message_goes_before_later_sends(mut app: wharf_testkit::TestApp) {
    let (session, first) = session_and_first_message(&app).await;
    let later: MessageId = app
        .send_text(&session.to_string(), "+15550102030", "later")
        .await
        .parse()
        .unwrap();
    let job = wharf_store::OutboxJob::send(&first);
    app.store
        .record_outcomes(&[wharf_store::JobOutcome::Retry {
            job: job.clone(),
            available_at: i64::MAX / 2,
            error: "busy".into(),
        }])
        .await
        .unwrap();
    let jobs = app
        .store
        .ready_jobs(session, i64::MAX / 4, 10)
        .await
        .unwrap();
    assert!(jobs.is_empty(), "the retried send holds back its chat");
    let mut retried = job.clone();
    retried.attempts = 1;
    retried.available_at = i64::MAX / 2;
    app.store
        .record_outcomes(&[wharf_store::JobOutcome::Failed {
            job: retried,
            reason: "gave up".into(),
            at: 1,
        }])
        .await
        .unwrap();
    let account = app.account_id.parse().unwrap();
    app.store
        .requeue_failed(account, first.id)
        .await
        .unwrap()
        .expect("a failed message");
    let jobs = app.store.ready_jobs(session, i64::MAX, 10).await.unwrap();
    let order: Vec<_> = jobs.iter().map(|j| j.message_id).collect();
    assert_eq!(order, vec![Some(first.id), Some(later)]);
    assert_eq!(jobs[0].attempts, 0, "a full set of attempts again");
    assert_eq!(jobs[0], wharf_store::OutboxJob::send(&first));
}

/// On SQLite the sends are the queued messages (`messages_queued`), a send told to wait has
/// its `send_after` (`messages_waiting`): a backlog of 100,000 of them is read as the outbox
/// is (`ready_jobs_on_a_backlog_without_statistics`), FIFO per chat with the hold-back in the
/// query, and merged in id order with the outbox's actions. The `timeout`s are hang guards:
/// a read that walked the chat's messages for each job would take minutes.
#[tokio::test]
async fn sqlite_reads_a_backlog_of_queued_messages_as_jobs() {
    let app = wharf_testkit::TestApp::spawn_with(wharf_testkit::Backend::Sqlite, |_| {})
        .await
        .unwrap();
    let session = unconnected_session(&app).await;
    let now = wharf_core::time::now_millis();
    let (series, _) = numbers(&app, 100_000);
    // Message `g`'s id ends in `g` then a 0, so an action can sort between two messages.
    let id = |g: u32| format!("{g:025}0");
    let account = &app.account_id;
    let later = now + 3_600_000;
    // Message `g` is for chat A, but every tenth is for chat B; B's message 5 waits an hour.
    app.db()
        .execute(&format!(
            "INSERT INTO messages (id, account_id, session_id, direction, chat_jid, kind, content, \
             status, attempts, accepted_at, updated_at, send_after) \
             SELECT 'msg_' || printf('%025d0', g), '{account}', '{session}', 'out', \
             CASE WHEN g % 10 = 5 THEN '15550100002@s.whatsapp.net' ELSE '15550100001@s.whatsapp.net' END, \
             'text', '{{\"text\":\"x\"}}', 'queued', 0, {now}, {now}, \
             CASE WHEN g = 5 THEN {later} END FROM {series}"
        ))
        .await;
    // An action of chat A between messages 2 and 3 (a read mark, due now).
    app.db()
        .execute(&format!(
            "INSERT INTO outbox (id, account_id, session_id, chat_jid, message_id, action, payload, \
             available_at, attempts, created_at) VALUES ('job_{:025}5', '{account}', '{session}', \
             '15550100001@s.whatsapp.net', NULL, 'mark_read', '{{\"message_ids\":[]}}', {now}, 0, {now})",
            2
        ))
        .await;
    let read = |at: i64, limit: i64| {
        let store = app.store.clone();
        async move {
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                store.ready_jobs(session, at, limit),
            )
            .await
            .expect("ready_jobs answered")
            .unwrap()
        }
    };
    let ready = read(now, 200).await;
    let ids: Vec<String> = ready
        .iter()
        .map(|j| j.id.to_string()[4..].to_owned())
        .collect();
    let mut expected: Vec<String> = (1..).filter(|g| g % 10 != 5).take(199).map(id).collect();
    expected.insert(2, format!("{:025}5", 2));
    assert_eq!(ids, expected);
    assert_eq!(ready[2].action, wharf_store::JobAction::MarkRead);
    assert!(
        ready
            .iter()
            .filter(|j| j.action == wharf_store::JobAction::Send)
            .all(|j| j.available_at == now && j.attempts == 0)
    );
    // Once B's message is due, its chat comes back in order.
    let ids: Vec<String> = read(later, 6)
        .await
        .iter()
        .map(|j| j.id.to_string()[4..].to_owned())
        .collect();
    assert_eq!(ids[..2], [id(1), id(2)]);
    assert_eq!(ids[3..], [3, 4, 5].map(id));
    // Chat A's first message waits too: no send is ready, only the action.
    app.db()
        .execute(&format!(
            "UPDATE messages SET send_after = {later} WHERE id = 'msg_{}'",
            id(1)
        ))
        .await;
    let ready = read(now, 200).await;
    assert_eq!(ready.len(), 1, "only the read mark");
    assert_eq!(ready[0].action, wharf_store::JobAction::MarkRead);
    assert_eq!(app.store.outbox_len(session).await.unwrap(), 100_001);
}

/// Sends accepted while the dispatcher reads are not waiting jobs: they must not cost its
/// read anything. On PostgreSQL a read does see their index entries (only their rows are
/// invisible to it), and the hold-back probe of `available_at > now` walked every one of
/// them for each due job, so one read under a burst of sends to one chat took 39 s while the
/// burst went on (a dispatcher stalled for the whole load). Here the burst is visible (jobs
/// stamped a minute after the read's `now`, as an instance whose clock is ahead writes
/// them), which costs the same index work. The `timeout` is a hang guard.
#[wharf_testkit::dual_test]
async fn ready_jobs_skip_jobs_accepted_after_now(app: wharf_testkit::TestApp) {
    let session = unconnected_session(&app).await;
    let now = wharf_core::time::now_millis();
    let (series, pad) = numbers(&app, 60_000);
    let account = &app.account_id;
    // Jobs 1-1,000 are due; 1,001-60,000 were accepted "after now", all to the same chat.
    app.db()
        .execute(&format!(
            "INSERT INTO outbox (id, account_id, session_id, chat_jid, message_id, action, payload, \
             available_at, attempts, created_at) \
             SELECT 'job_' || {pad}, '{account}', '{session}', '15550100001@s.whatsapp.net', \
             NULL, 'send', '{{}}', CASE WHEN g <= 1000 THEN {now} ELSE {later} END, 0, \
             CASE WHEN g <= 1000 THEN {now} ELSE {later} END FROM {series}",
            later = now + 60_000,
        ))
        .await;
    let ready = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut last = Vec::new();
        for _ in 0..3 {
            last = app.store.ready_jobs(session, now, 200).await.unwrap();
        }
        last
    })
    .await
    .expect("ready_jobs answered without reading the later jobs for each job");
    let ids: Vec<String> = ready.iter().map(|j| j.id.to_string()).collect();
    let expected: Vec<String> = (1..=200).map(|g| format!("job_{g:026}")).collect();
    assert_eq!(ids, expected);
}

/// `GET /v1/messages/{id}/events` reads one message's events through `events_by_message`
/// alone, whatever the statistics. Asking for the account too let PostgreSQL, planning with
/// no statistics, `BitmapAnd` that index with the whole account's range of the primary key:
/// 835 buffers and 8-13 ms for one event at 116,000 events, growing with the account's log.
#[wharf_testkit::dual_test]
async fn a_message_s_events_are_read_by_message_alone(app: wharf_testkit::TestApp) {
    let session = unconnected_session(&app).await;
    let account = &app.account_id;
    let message = MessageId::generate();
    let (series, pad) = numbers(&app, 30_000);
    // 30,000 events of the account, the message's two among them (the 10,000th and 20,000th).
    app.db()
        .execute(&format!(
            "INSERT INTO events (account_id, seq, id, session_id, message_id, type, payload, created_at) \
             SELECT '{account}', 1000000 + g, 'evt_' || {pad}, '{session}', \
             CASE WHEN g % 10000 = 0 AND g < 30000 THEN '{message}' ELSE NULL END, \
             'session.status', '{{}}', 0 FROM {series}"
        ))
        .await;
    let account_id: wharf_core::AccountId = account.parse().unwrap();
    let events = app.store.message_events(account_id, message).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1_010_000, 1_020_000]);
    let other = wharf_core::AccountId::generate();
    assert!(
        app.store
            .message_events(other, message)
            .await
            .unwrap()
            .is_empty(),
        "another account sees none of them"
    );
    if app.db().backend() != wharf_testkit::Backend::Postgres {
        return;
    }
    use sqlx::{Connection, Executor, Row};
    let mut conn = sqlx::PgConnection::connect(&app.config.database_url)
        .await
        .unwrap();
    conn.execute("SET plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!(
        "PREPARE q AS {}",
        wharf_store::MESSAGE_EVENTS_SQL
    )))
    .await
    .unwrap();
    let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "EXPLAIN EXECUTE q('{message}')"
    )))
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("events_by_message") && !plan.contains("events_pkey"),
        "{plan}"
    );
}

/// A send that timed out but did go out: its receipt moved the message on while its job
/// waited for a retry. The retry's end (a failure, or a success) leaves the message where
/// the receipt put it, and on PostgreSQL the job is not carried out again. Before, a failure
/// moved a delivered message back to `failed`.
#[wharf_testkit::dual_test]
async fn a_receipt_for_a_send_being_retried_is_not_undone_by_its_retry(
    mut app: wharf_testkit::TestApp,
) {
    let (session, first) = session_and_first_message(&app).await;
    let job = wharf_store::OutboxJob::send(&first);
    app.store
        .record_outcomes(&[wharf_store::JobOutcome::Retry {
            job: job.clone(),
            available_at: 1,
            error: "timed out".into(),
        }])
        .await
        .unwrap();
    // The engine had named the message; WhatsApp says it was delivered.
    app.db()
        .execute(&format!(
            "UPDATE messages SET provider_msg_id = 'WAMID.1' WHERE id = '{}'",
            first.id
        ))
        .await;
    app.store
        .apply_receipts(
            session,
            &[(
                "WAMID.1".into(),
                wharf_core::message::ReceiptKind::Delivered,
                wharf_core::time::now_millis(),
            )],
        )
        .await
        .unwrap();
    let account = app.account_id.parse().unwrap();
    let status = |m: wharf_store::MessageRow| serde_json::to_value(m.status).unwrap();
    let row = app.store.get_message(account, first.id).await.unwrap();
    assert_eq!(status(row.expect("the message")), "delivered");
    let mut retried = job.clone();
    retried.attempts = 1;
    app.store
        .record_outcomes(&[wharf_store::JobOutcome::Failed {
            job: retried,
            reason: "gave up".into(),
            at: wharf_core::time::now_millis(),
        }])
        .await
        .unwrap();
    let row = app.store.get_message(account, first.id).await.unwrap();
    let row = row.expect("the message");
    assert_eq!(status(row.clone()), "delivered", "{row:?}");
    assert_eq!(row.failure_reason, None);
    assert!(
        app.store
            .ready_jobs(session, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing left to send"
    );
}
