//! The `web` engine through the API, with the real whatsapp-rust client dialing a loopback
//! port where nothing listens (tests never reach WhatsApp).

use serde_json::json;
use wharf_testkit::assert_error;

#[wharf_testkit::dual_test]
async fn a_web_session_connects_reports_why_it_cannot_and_stops(mut app: wharf_testkit::TestApp) {
    let created = app
        .create_session(json!({"engine": "web", "phone_number": "+15557654321"}))
        .await;
    let id = created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/v1/whatsapp-sessions/{id}");

    let connecting = app.post(&format!("{base}/connect")).expect(200).await;
    assert!(
        ["pending", "connecting"].contains(&connecting["status"].as_str().unwrap()),
        "{connecting}"
    );
    // The failed connects, which the client keeps silent, become the status reason.
    let session = app
        .eventually(&base, |s| {
            s["status_reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("connect failed:"))
        })
        .await;
    assert_eq!(session["status"], "connecting");

    // No QR while it cannot reach WhatsApp, so no pair code either.
    let qr = app.get(&format!("{base}/qrcode")).expect(409).await;
    assert_error(&qr, "invalid_state");
    let code = app
        .post(&format!("{base}/pair-code"))
        .json(json!({"phone_number": "+15557654321"}))
        .expect(409)
        .await;
    assert_error(&code, "invalid_state");
    let bad = app
        .post(&format!("{base}/pair-code"))
        .json(json!({"phone_number": "call me"}))
        .expect(422)
        .await;
    let errors = assert_error(&bad, "validation_error");
    assert!(errors["phone_number"].is_array(), "{bad}");

    // What the engine does not carry is refused before anything is queued.
    let buttons = json!({"session_id": id, "to": "+15550001111", "kind": "buttons",
        "buttons": {"body": "pick", "buttons": [{"id": "a", "title": "A"}]}});
    let answer = app
        .post("/api/send-message")
        .json(buttons)
        .expect(422)
        .await;
    assert_error(&answer, "unsupported_by_engine");
    // Media by URL (view-once too) is queued: its file is fetched when it is dispatched.
    for body in [
        json!({"kind": "image", "imageUrl": "https://example.com/a.jpg", "viewOnce": true}),
        json!({"kind": "audio", "audioUrl": "https://example.com/a.ogg"}),
    ] {
        let mut body = body;
        body["session_id"] = json!(id);
        body["to"] = json!("+15550001111");
        app.post("/api/send-message").json(body).expect(202).await;
    }
    let private = app
        .post("/api/send-message")
        .json(
            json!({"session_id": id, "to": "+15550001111", "kind": "document",
            "documentUrl": "http://10.0.0.5/a.pdf"}),
        )
        .expect(422)
        .await;
    let errors = assert_error(&private, "url_not_allowed");
    assert!(errors["documentUrl"].is_array(), "{private}");
    // Media references are decrypted on web sessions, once connected.
    let token = wharf_engines::web::media::encode_reference(&wharf_engines::web::MediaRef {
        kind: wharf_core::message::MessageKind::Image,
        direct_path: "/v/t62.7118-24/x.enc".into(),
        media_key: vec![1; 32],
        file_sha256: vec![2; 32],
        file_enc_sha256: vec![3; 32],
        file_length: 10,
    });
    let offline = app
        .post(&format!("/api/decrypt-media?session_id={id}"))
        .json(json!({"media_id": token}))
        .expect(409)
        .await;
    assert_error(&offline, "session_not_connected");

    let stopped = app.post(&format!("{base}/disconnect")).expect(200).await;
    assert_eq!(stopped["status"], "disconnected");
    app.stop().await;
}

#[wharf_testkit::dual_test]
async fn pair_codes_are_for_web_sessions_only(mut app: wharf_testkit::TestApp) {
    let created = app.create_session(json!({})).await;
    let id = created["session"]["session_id"].as_str().unwrap();
    let answer = app
        .post(&format!("/v1/whatsapp-sessions/{id}/pair-code"))
        .json(json!({"phone_number": "+15557654321"}))
        .expect(422)
        .await;
    assert_error(&answer, "unsupported_by_engine");
    app.stop().await;
}

/// Web sessions claim the contact, group and channel routes (so a session that is not online
/// yet is told to connect, not that its engine cannot), media decryption included.
#[wharf_testkit::dual_test]
async fn web_sessions_serve_social_routes_once_connected(app: wharf_testkit::TestApp) {
    let created = app
        .create_session(json!({"engine": "web", "phone_number": "+15557654321"}))
        .await;
    let (_, key) = wharf_testkit::session_and_key(&created);
    for path in [
        "/api/groups",
        "/api/contacts",
        "/api/on-whatsapp/+15550102030",
        "/api/channels",
        "/api/user",
        "/api/groups/120363000000000001@g.us/invite-link",
    ] {
        let answer = app.get(path).token(&key).expect(409).await;
        assert_error(&answer, "session_not_connected");
    }
    // Media decryption is claimed too (web/media.rs): offline, it is told to connect.
    let offline = app
        .post("/api/decrypt-media")
        .token(&key)
        .json(json!({"message": {"url": "https://mmg.whatsapp.net/x", "mediaKey": "AAAA"}}))
        .expect(409)
        .await;
    assert_error(&offline, "session_not_connected");
}
