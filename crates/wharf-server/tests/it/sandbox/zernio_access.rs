//! The Zernio dialect's sandbox sessions: who may see and do what (deletion of foreign,
//! missing and malformed ids, accounts kept apart, credentials, the rate limit), all in
//! Zernio's envelope.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use wharf_core::SandboxId;

use super::{zernio::*, *};

#[wharf_testkit::dual_test]
async fn delete_answers_foreign_missing_and_malformed_ids_identically(
    mut app: wharf_testkit::TestApp,
) {
    // Zernio's seed: a sandbox delete answers 400 for an id that is someone else's, one
    // that does not exist and one that is not an id at all, byte for byte the same, so
    // the answer tells nothing about other accounts.
    emulator_number(&app).await;
    let other = other_account(&app).await;
    let theirs = app
        .post(SESSIONS)
        .token(&other)
        .json(json!({"phone": DEV_PHONE}))
        .expect(200)
        .await;
    let foreign = theirs["session"]["id"].as_str().expect("id").to_owned();
    let missing = SandboxId::generate().to_string();
    let mut seen = Vec::new();
    for id in [foreign.as_str(), missing.as_str(), "not-an-id"] {
        let answer = app.delete(&format!("{SESSIONS}/{id}")).send().await;
        seen.push((
            answer.status.as_u16(),
            answer.header("content-type").map(str::to_owned),
            answer.text,
        ));
    }
    assert_eq!(seen[0].0, 400, "{seen:?}");
    assert_eq!(seen[0], seen[1], "foreign and missing ids answer alike");
    assert_eq!(seen[1], seen[2], "missing and malformed ids answer alike");
    // The foreign session is untouched.
    let their_list = app.get(SESSIONS).token(&other).expect(200).await;
    assert_eq!(their_list["sessions"][0]["id"], foreign.as_str());
}

#[wharf_testkit::dual_test]
async fn delete_revokes_and_answers_unknown_foreign_and_malformed_ids_alike(
    mut app: wharf_testkit::TestApp,
) {
    let (number, _) = emulator_number(&app).await;
    let mine = create(&app, DEV_PHONE, 200).await;
    let id = mine["session"]["id"].as_str().expect("id").to_owned();
    let other = other_account(&app).await;
    let theirs = app
        .post(SESSIONS)
        .token(&other)
        .json(json!({"phone": "+44 7700 900123"}))
        .expect(200)
        .await;
    let their_id = theirs["session"]["id"].as_str().expect("id").to_owned();

    let unknown = SandboxId::generate().to_string();
    let mut answers = Vec::new();
    for (path, token) in [
        (format!("{SESSIONS}/{unknown}"), app.pat.clone()),
        (format!("/api{SESSIONS}/{unknown}"), app.pat.clone()),
        (format!("{SESSIONS}/nope"), app.pat.clone()),
        (format!("{SESSIONS}/sbx_"), app.pat.clone()),
        (
            format!("{SESSIONS}/{}", id.replace("sbx_", "sess_")),
            app.pat.clone(),
        ),
        // Someone else's: for us, theirs; for them, ours.
        (format!("{SESSIONS}/{their_id}"), app.pat.clone()),
        (format!("/api{SESSIONS}/{their_id}"), app.pat.clone()),
        (format!("{SESSIONS}/{id}"), other.clone()),
    ] {
        let answer = app.delete(&path).token(&token).expect(400).await;
        zernio_error(
            &answer,
            "invalid_request_error",
            "invalid_field_value",
            Some("sessionId"),
        );
        answers.push(answer);
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]),
        "the same answer: {answers:?}"
    );
    // Both sessions survived.
    assert_eq!(listed(&app).await.len(), 1);
    let their_list = app.get(SESSIONS).token(&other).expect(200).await;
    assert_eq!(their_list["sessions"][0]["id"], their_id.as_str());

    // Activated, then revoked: sends to the phone stop, and the id is gone.
    phone_writes(&app, &number, DEV_PHONE, "me").await;
    wait_events(&app, &app.pat, "sandbox.activated").await;
    let sent = app.send_text("sandbox", DEV_PHONE, "before").await;
    app.wait_status(&sent, "sent").await;
    let deleted = app
        .delete(&format!("/api{SESSIONS}/{id}"))
        .expect(200)
        .await;
    assert_eq!(deleted, json!({"success": true}));
    assert!(listed(&app).await.is_empty());
    let refused = app
        .post("/api/send-message")
        .json(json!({"session_id": "sandbox", "to": DEV_PHONE, "text": "after"}))
        .expect(422)
        .await;
    assert_eq!(refused["reason_code"], "sandbox_recipient_not_activated");
    // The message sent before is untouched.
    assert_eq!(
        app.get(&format!("/api/messages/{sent}/info"))
            .expect(200)
            .await["status"],
        "sent"
    );
    let again = app.delete(&format!("{SESSIONS}/{id}")).expect(400).await;
    assert_eq!(again, answers[0], "a revoked id is unknown");
    // Their session is still theirs.
    let their_list = app.get(SESSIONS).token(&other).expect(200).await;
    assert_eq!(their_list["sessions"].as_array().map(Vec::len), Some(1));
    app.delete(&format!("{SESSIONS}/{their_id}"))
        .token(&other)
        .expect(200)
        .await;
    assert_eq!(
        app.get(SESSIONS).token(&other).expect(200).await["sessions"],
        json!([])
    );
}

#[wharf_testkit::dual_test]
async fn accounts_see_and_touch_only_their_own_sessions(mut app: wharf_testkit::TestApp) {
    let (number, number_phone) = emulator_number(&app).await;
    let mine = create(&app, DEV_PHONE, 200).await;
    let other = other_account(&app).await;
    // They see the number, not my session.
    let theirs = app.get(SESSIONS).token(&other).expect(200).await;
    assert_eq!(
        theirs,
        json!({"sessions": [], "sandboxNumber": number_phone})
    );
    // My phone is taken: they cannot claim it (and nothing is sent for them).
    for written in [DEV_PHONE, "34 688 246 216"] {
        let refused = app
            .post(SESSIONS)
            .token(&other)
            .json(json!({"phone": written}))
            .expect(400)
            .await;
        let error = zernio_error(
            &refused,
            "invalid_request_error",
            "invalid_field_value",
            Some("phone"),
        );
        assert!(error.contains("another account"), "{error}");
    }
    assert!(events_of(&app, &other, "message.sent").await.is_empty());
    // Their own phone works, and its verification is theirs, not mine.
    let created = app
        .post(&format!("/api{SESSIONS}"))
        .token(&other)
        .json(json!({"phone": "+44 7700 900123"}))
        .expect(200)
        .await;
    assert_eq!(created["sandboxNumber"], number_phone.as_str());
    let their_sent = events_of(&app, &other, "message.sent").await;
    assert_eq!(their_sent.len(), 1);
    assert_eq!(
        their_sent[0]["data"]["chat_jid"],
        "447700900123@s.whatsapp.net"
    );
    let my_sent = events_of(&app, &app.pat, "message.sent").await;
    assert_eq!(my_sent.len(), 1);
    assert_eq!(
        my_sent[0]["data"]["chat_jid"],
        format!("{DEV_DIGITS}@s.whatsapp.net")
    );
    // Each lists its own.
    assert_eq!(listed(&app).await, vec![mine["session"].clone()]);
    let theirs = app.get(SESSIONS).token(&other).expect(200).await;
    assert_eq!(theirs["sessions"], json!([created["session"]]));

    // Their phone replies: their session activates, the event is theirs.
    phone_writes(&app, &number, "+447700900123", "hello").await;
    let activated = wait_events(&app, &other, "sandbox.activated").await;
    assert_eq!(
        activated[0]["data"]["sandbox_session_id"],
        created["session"]["id"]
    );
    assert!(
        events_of(&app, &app.pat, "sandbox.activated")
            .await
            .is_empty()
    );
    assert_eq!(
        listed(&app).await[0]["status"],
        "pending",
        "mine is still pending"
    );
    // Their phone's messages are theirs from now on, not the number's owner's.
    phone_writes(&app, &number, "+447700900123", "second").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events_of(&app, &other, "message.received").await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "their phone's message never reached them"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let received = events_of(&app, &other, "message.received").await;
    assert_eq!(
        received[0]["data"]["sandbox"]["sandbox_session_id"],
        created["session"]["id"]
    );
    assert!(
        events_of(&app, &app.pat, "message.received")
            .await
            .iter()
            .all(|e| e["data"]["chat_jid"] != "447700900123@s.whatsapp.net"),
        "the number's owner does not see them"
    );
    // They cannot send to my phone through the sandbox; I cannot send to theirs.
    let refused = app
        .post("/api/send-message")
        .token(&other)
        .json(json!({"session_id": "sandbox", "to": DEV_PHONE, "text": "hi"}))
        .expect(422)
        .await;
    assert_eq!(refused["reason_code"], "sandbox_recipient_not_activated");
    let refused = app
        .post("/api/send-message")
        .json(json!({"session_id": "sandbox", "to": "+447700900123", "text": "hi"}))
        .expect(422)
        .await;
    assert_eq!(refused["reason_code"], "sandbox_recipient_not_activated");
    let sent = app
        .post("/api/send-message")
        .token(&other)
        .json(json!({"session_id": "sandbox", "to": "+447700900123", "text": "hi from them"}))
        .expect(202)
        .await;
    assert_eq!(sent["status"], "queued");
}

#[wharf_testkit::dual_test]
async fn credentials_are_checked_in_zernios_envelope(mut app: wharf_testkit::TestApp) {
    let (_, session_key) = app.connected_session().await;
    emulator_number(&app).await;
    let unknown_pat = format!("wh_pat_{}", "0".repeat(64));
    let sid = SandboxId::generate().to_string();
    for prefix in ["", "/api"] {
        let collection = format!("{prefix}{SESSIONS}");
        let item = format!("{prefix}{SESSIONS}/{sid}");
        let calls = [
            (Method::GET, collection.clone()),
            (Method::POST, collection.clone()),
            (Method::DELETE, item.clone()),
        ];
        for (method, path) in &calls {
            let call = || {
                let call = app.call(method.clone(), path);
                if *method == Method::POST {
                    call.json(json!({"phone": DEV_PHONE}))
                } else {
                    call
                }
            };
            let what = format!("{method} {path}");
            // No credentials at all, or a scheme that is not Bearer.
            for answer in [
                call().anonymous().send().await,
                call()
                    .anonymous()
                    .header("authorization", "Basic dXNlcjpwYXNz")
                    .send()
                    .await,
                call()
                    .anonymous()
                    .header("authorization", "Bearer ")
                    .send()
                    .await,
            ] {
                assert_eq!(answer.status.as_u16(), 401, "{what}: {}", answer.text);
                let error = zernio_error(
                    &answer.json,
                    "authentication_error",
                    "missing_credentials",
                    None,
                );
                assert!(error.contains("Bearer"), "{what}: {error}");
            }
            // A token that is not one, or no longer / never was.
            for token in ["nonsense", unknown_pat.as_str()] {
                let answer = call().token(token).send().await;
                assert_eq!(answer.status.as_u16(), 401, "{what}: {}", answer.text);
                zernio_error(
                    &answer.json,
                    "authentication_error",
                    "invalid_credentials",
                    None,
                );
            }
            // A session-scoped key authenticates, but the sandbox is for the account.
            let answer = call().token(&session_key).send().await;
            assert_eq!(answer.status.as_u16(), 403, "{what}: {}", answer.text);
            let error = zernio_error(&answer.json, "permission_error", "forbidden", None);
            assert!(error.contains("personal access token"), "{what}: {error}");
            // The same key in X-API-Key is no better.
            let answer = call().api_key(&session_key).send().await;
            assert_eq!(answer.status.as_u16(), 403, "{what}: {}", answer.text);
        }
    }
    // The credential is judged before the request: a session key with a broken body or
    // id is still 403.
    for prefix in ["", "/api"] {
        let answer = app
            .post(&format!("{prefix}{SESSIONS}"))
            .token(&session_key)
            .raw("{\"phone\": ", "application/json")
            .send()
            .await;
        assert_eq!(answer.status.as_u16(), 403, "{}", answer.text);
        zernio_error(&answer.json, "permission_error", "forbidden", None);
        let answer = app
            .delete(&format!("{prefix}{SESSIONS}/not-an-id"))
            .token(&session_key)
            .send()
            .await;
        assert_eq!(answer.status.as_u16(), 403, "{}", answer.text);
    }
    // None of that created or sent anything.
    assert!(listed(&app).await.is_empty());
    assert!(events_of(&app, &app.pat, "message.sent").await.is_empty());
    // The personal access token works on both mounts.
    app.get(SESSIONS).expect(200).await;
    app.get(&format!("/api{SESSIONS}")).expect(200).await;
}

#[wharf_testkit::dual_test(|c: &mut wharf_testkit::Config| {
    c.rate_limit_per_minute = std::num::NonZeroU32::new(3).expect("non-zero");
})]
async fn the_rate_limit_answers_in_zernios_envelope(mut app: wharf_testkit::TestApp) {
    for path in [
        SESSIONS.to_owned(),
        format!("/api{SESSIONS}"),
        SESSIONS.to_owned(),
    ] {
        let answer = app.get(&path).send().await;
        assert_eq!(answer.status.as_u16(), 200, "{}", answer.text);
        assert_eq!(answer.header("x-ratelimit-limit"), Some("3"));
    }
    // The allowance is the account's, whichever mount is called.
    for path in [SESSIONS.to_owned(), format!("/api{SESSIONS}")] {
        let answer = app
            .post(&path)
            .json(json!({"phone": DEV_PHONE}))
            .send()
            .await;
        assert_eq!(answer.status.as_u16(), 429, "{}", answer.text);
        let error = zernio_error(&answer.json, "rate_limit_error", "rate_limited", None);
        assert!(error.contains("rate limit"), "{error}");
        assert!(
            answer
                .header("retry-after")
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|s| s >= 1)
        );
        assert_eq!(answer.header("x-ratelimit-remaining"), Some("0"));
    }
    // Another account has its own allowance.
    let other = other_account(&app).await;
    app.get(SESSIONS).token(&other).expect(200).await;
}
