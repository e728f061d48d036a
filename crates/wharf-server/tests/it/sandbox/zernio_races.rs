//! The Zernio dialect's sandbox sessions under races and timing: a refresh racing the
//! activating reply, creations racing for one phone, late replies and replies elsewhere.

use std::time::Duration;

use serde_json::{Value, json};

use super::{zernio::*, *};

#[wharf_testkit::dual_test]
async fn a_refresh_racing_the_reply_never_undoes_the_activation(mut app: wharf_testkit::TestApp) {
    let (number, _) = emulator_number(&app).await;
    for round in 0..10 {
        let created = create(&app, DEV_PHONE, 200).await;
        let id = created["session"]["id"].as_str().expect("id").to_owned();
        let refreshes = async {
            for _ in 0..20 {
                create(&app, DEV_PHONE, 200).await;
            }
        };
        let reply = phone_writes(&app, &number, DEV_PHONE, "me");
        tokio::join!(refreshes, reply);
        // Activated (the event says so): the session must say so too, for good.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while events_of(&app, &app.pat, "sandbox.activated").await.len() < round + 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: never activated"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let sessions = listed(&app).await;
        assert_eq!(sessions.len(), 1);
        assert_eq!(
            sessions[0]["status"], "active",
            "round {round}: the activation was undone: {}",
            sessions[0]
        );
        assert!(sessions[0]["activatedAt"].is_string());
        app.delete(&format!("{SESSIONS}/{id}")).expect(200).await;
    }
}

#[wharf_testkit::dual_test]
async fn racing_creations_keep_one_phone_per_account_and_one_owner_per_phone(
    mut app: wharf_testkit::TestApp,
) {
    emulator_number(&app).await;
    // Five phones at once: exactly one is stored, the others are told which.
    let phones: Vec<String> = (1..=5).map(|i| format!("+44 7700 90010{i}")).collect();
    let answers = futures::future::join_all(
        phones
            .iter()
            .map(|p| app.post(SESSIONS).json(json!({"phone": p})).send()),
    )
    .await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|a| a.status.as_u16() == 200)
        .map(|a| &a.json)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    let winner = won[0]["session"]["phoneE164"]
        .as_str()
        .expect("phoneE164")
        .to_owned();
    for a in answers.iter().filter(|a| a.status.as_u16() != 200) {
        assert_eq!(a.status.as_u16(), 400, "{}", a.text);
        let error = zernio_error(
            &a.json,
            "invalid_request_error",
            "invalid_field_value",
            Some("phone"),
        );
        assert!(error.contains(&format!("+{winner}")), "{error}");
    }
    let sessions = listed(&app).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["phoneE164"], winner.as_str());

    // The same phone twice at once (a double click): one session.
    let id = sessions[0]["id"].as_str().expect("id").to_owned();
    app.delete(&format!("{SESSIONS}/{id}")).expect(200).await;
    let (a, b) = tokio::join!(create(&app, DEV_PHONE, 200), create(&app, DEV_PHONE, 200));
    assert_eq!(a["session"]["id"], b["session"]["id"]);
    assert_eq!(listed(&app).await.len(), 1);

    // Two accounts racing for one phone: one owner.
    app.delete(&format!(
        "{SESSIONS}/{}",
        a["session"]["id"].as_str().unwrap()
    ))
    .expect(200)
    .await;
    let other = other_account(&app).await;
    let (mine, theirs) = tokio::join!(
        app.post(SESSIONS).json(json!({"phone": DEV_PHONE})).send(),
        app.post(SESSIONS)
            .token(&other)
            .json(json!({"phone": DEV_PHONE}))
            .send(),
    );
    let statuses = [mine.status.as_u16(), theirs.status.as_u16()];
    assert!(
        statuses.contains(&200) && statuses.contains(&400),
        "{statuses:?}: {} / {}",
        mine.text,
        theirs.text
    );
    let loser = if mine.status.as_u16() == 400 {
        &mine
    } else {
        &theirs
    };
    assert!(
        zernio_error(
            &loser.json,
            "invalid_request_error",
            "invalid_field_value",
            Some("phone")
        )
        .contains("another account")
    );
    let mine_listed = listed(&app).await.len();
    let theirs_listed = app.get(SESSIONS).token(&other).expect(200).await["sessions"]
        .as_array()
        .map(Vec::len);
    assert_eq!(mine_listed + theirs_listed.unwrap_or_default(), 1);
}

#[wharf_testkit::dual_test]
async fn a_late_reply_does_not_activate_an_expired_session(mut app: wharf_testkit::TestApp) {
    let (number, _) = emulator_number(&app).await;
    create(&app, DEV_PHONE, 200).await;
    app.config.clock.advance(Duration::from_secs(24 * 3600 + 1));
    phone_writes(&app, &number, DEV_PHONE, "sorry, I was away").await;
    // The reply arrives as an ordinary message of the number's account...
    let received = wait_events(&app, &app.pat, "message.received").await;
    assert!(
        received[0]["data"].get("sandbox").is_none(),
        "{}",
        received[0]
    );
    // ...and activates nothing.
    assert!(
        events_of(&app, &app.pat, "sandbox.activated")
            .await
            .is_empty()
    );
    assert!(listed(&app).await.is_empty());
    let refused = app
        .post("/api/send-message")
        .json(json!({"session_id": "sandbox", "to": DEV_PHONE, "text": "hi"}))
        .expect(422)
        .await;
    assert_eq!(refused["reason_code"], "sandbox_recipient_not_activated");
    // A new POST starts over: a new session, pending.
    let again = create(&app, DEV_PHONE, 200).await;
    assert_eq!(again["session"]["status"], "pending");
}

#[wharf_testkit::dual_test]
async fn only_a_reply_to_the_sandbox_number_activates(mut app: wharf_testkit::TestApp) {
    emulator_number(&app).await;
    let (elsewhere, _) = app.connected_session().await;
    create(&app, DEV_PHONE, 200).await;
    // The phone writes to another session of the server: not a reply to the sandbox.
    phone_writes(&app, &elsewhere, DEV_PHONE, "hello other number").await;
    wait_events(&app, &app.pat, "message.received").await;
    assert!(
        events_of(&app, &app.pat, "sandbox.activated")
            .await
            .is_empty()
    );
    assert_eq!(listed(&app).await[0]["status"], "pending");
}
