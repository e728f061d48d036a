//! Health, readiness and the OpenAPI document.

use wharf_testkit::TestApp;

#[wharf_testkit::dual_test]
async fn health_and_readiness(mut app: wharf_testkit::TestApp) {
    assert_eq!(
        app.get("/healthz").anonymous().expect(200).await["status"],
        "ok"
    );
    assert_eq!(
        app.get("/readyz").anonymous().expect(200).await["status"],
        "ok"
    );
}

#[wharf_testkit::dual_test]
async fn openapi_covers_every_route_with_schemas(mut app: wharf_testkit::TestApp) {
    let doc = app.get("/openapi.json").anonymous().expect(200).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("/v1/whatsapp-sessions", vec!["get", "post"]),
        ("/v1/whatsapp-sessions/{id}", vec!["get", "patch", "delete"]),
        ("/v1/whatsapp-sessions/{id}/connect", vec!["post"]),
        ("/v1/whatsapp-sessions/{id}/disconnect", vec!["post"]),
        ("/v1/whatsapp-sessions/{id}/restart", vec!["post"]),
        ("/v1/whatsapp-sessions/{id}/qrcode", vec!["get"]),
        ("/v1/whatsapp-sessions/{id}/pair-code", vec!["post"]),
        ("/v1/whatsapp-sessions/{id}/regenerate-key", vec!["post"]),
        ("/v1/whatsapp-sessions/{id}/settings", vec!["get", "patch"]),
        ("/v1/operations/{id}", vec!["get"]),
        ("/emulator/sessions/{id}/scan", vec!["post"]),
        ("/emulator/sessions/{id}/logout", vec!["post"]),
        ("/emulator/sessions/{id}/inbound", vec!["post"]),
        ("/emulator/sessions/{id}/failures", vec!["post"]),
        ("/emulator/sessions/{id}/contacts", vec!["post"]),
        ("/emulator/sessions/{id}/receipts", vec!["post"]),
        ("/emulator/sessions/{id}/chats/{chat}", vec!["get"]),
        ("/api/send-message", vec!["post"]),
        ("/api/messages/{id}/info", vec!["get"]),
        ("/api/messages/{id}", vec!["delete", "put"]),
        ("/api/messages/{id}/edit", vec!["post"]),
        ("/api/messages/{id}/resend", vec!["post"]),
        ("/api/messages/read", vec!["post"]),
        ("/api/send-presence-update", vec!["post"]),
        ("/api/whatsapp-sessions/{id}/message-logs", vec!["get"]),
        ("/api/on-whatsapp/{phone}", vec!["get"]),
        ("/api/contacts", vec!["get", "put"]),
        ("/api/contacts/{phone}", vec!["get"]),
        ("/api/contacts/{jid}/picture", vec!["get"]),
        ("/api/contacts/{phone}/block", vec!["post"]),
        ("/api/contacts/{phone}/unblock", vec!["post"]),
        ("/api/groups", vec!["get", "post"]),
        ("/api/groups/{groupJid}", vec!["get"]),
        ("/api/groups/{groupJid}/metadata", vec!["get"]),
        (
            "/api/groups/{groupJid}/participants",
            vec!["get", "post", "delete"],
        ),
        ("/api/groups/{groupJid}/participants/add", vec!["post"]),
        ("/api/groups/{groupJid}/participants/remove", vec!["post"]),
        ("/api/groups/{groupJid}/participants/promote", vec!["post"]),
        ("/api/groups/{groupJid}/participants/demote", vec!["post"]),
        ("/api/groups/{groupJid}/settings", vec!["put"]),
        ("/api/groups/{groupJid}/picture", vec!["get"]),
        ("/api/groups/{groupJid}/invite-link", vec!["get"]),
        ("/api/groups/{groupJid}/invite-link/reset", vec!["post"]),
        ("/api/groups/{groupJid}/leave", vec!["post"]),
        ("/api/groups/invite/{inviteCode}", vec!["get"]),
        ("/api/groups/invite/accept", vec!["post"]),
        ("/api/channels", vec!["get"]),
        ("/api/channels/{channelJid}", vec!["get"]),
        ("/api/channels/{channelJid}/follow", vec!["post"]),
        ("/api/channels/{channelJid}/unfollow", vec!["post"]),
        ("/api/status", vec!["get"]),
        ("/api/user", vec!["get"]),
        ("/api/decrypt-media", vec!["post"]),
        ("/emulator/sessions/{id}/channels", vec!["post"]),
        (
            "/emulator/sessions/{id}/groups/{group}/picture",
            vec!["post"],
        ),
        ("/v1/webhooks", vec!["get", "post"]),
        ("/v1/webhooks/{id}", vec!["get", "patch", "delete"]),
        ("/v1/webhooks/{id}/rotate-secret", vec!["post"]),
        ("/v1/webhooks/{id}/deliveries", vec!["get"]),
        (
            "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            vec!["post"],
        ),
        ("/v1/webhooks/{id}/recover", vec!["post"]),
        ("/v1/events", vec!["get"]),
        ("/v1/events/stream", vec!["get"]),
        ("/healthz", vec!["get"]),
        ("/readyz", vec!["get"]),
        ("/openapi.json", vec!["get"]),
        ("/metrics", vec!["get"]),
        ("/instances", vec!["get"]),
        ("/webhooks/meta", vec!["get", "post"]),
        ("/v1/whatsapp/sandbox/sessions", vec!["get", "post"]),
        ("/v1/whatsapp/sandbox/sessions/{sessionId}", vec!["delete"]),
        ("/v1/whatsapp/templates", vec!["get", "post"]),
        (
            "/v1/whatsapp/templates/{templateName}",
            vec!["get", "patch", "delete"],
        ),
        ("/v1/whatsapp/bulk", vec!["post"]),
        ("/api/v1/sandbox_sessions", vec!["get", "post"]),
        ("/api/v1/sandbox_sessions/{id}", vec!["get", "delete"]),
        ("/api/v1/agents", vec!["get", "post"]),
        ("/api/v1/agents/{id}", vec!["get", "patch", "delete"]),
        ("/v1/whatsapp/contacts", vec!["get", "post"]),
        (
            "/v1/whatsapp/contacts/{contactId}",
            vec!["get", "put", "delete"],
        ),
        ("/v1/whatsapp/contacts/import", vec!["post"]),
        ("/v1/whatsapp/contacts/bulk", vec!["post", "delete"]),
        ("/v1/whatsapp/groups", vec!["get", "post", "delete"]),
        ("/v1/whatsapp/business-profile", vec!["get", "post"]),
        ("/v1/whatsapp/broadcasts", vec!["get", "post"]),
        (
            "/v1/whatsapp/broadcasts/{broadcastId}",
            vec!["get", "delete"],
        ),
        ("/v1/whatsapp/broadcasts/{broadcastId}/send", vec!["post"]),
        (
            "/v1/whatsapp/broadcasts/{broadcastId}/schedule",
            vec!["post", "delete"],
        ),
        (
            "/v1/whatsapp/broadcasts/{broadcastId}/recipients",
            vec!["get", "patch", "delete"],
        ),
        ("/v1/whatsapp/broadcasts/{broadcastId}/cancel", vec!["post"]),
        ("/v1/whatsapp/phone-numbers", vec!["get"]),
        ("/v1/whatsapp/phone-numbers/available", vec!["get"]),
        ("/v1/whatsapp/phone-numbers/preverified", vec!["get"]),
        ("/v1/whatsapp/phone-numbers/purchase", vec!["post"]),
        (
            "/v1/whatsapp/phone-numbers/{phoneNumberId}",
            vec!["get", "delete"],
        ),
        (
            "/v1/whatsapp/phone-numbers/{phoneNumberId}/request-code",
            vec!["post"],
        ),
        (
            "/v1/whatsapp/phone-numbers/{phoneNumberId}/verify",
            vec!["post"],
        ),
        ("/api/messages/{id}/media", vec!["get"]),
        (
            "/emulator/sessions/{id}/inbound/{provider_msg_id}/edit",
            vec!["post"],
        ),
        (
            "/emulator/sessions/{id}/inbound/{provider_msg_id}/revoke",
            vec!["post"],
        ),
    ];
    assert_eq!(
        paths.len(),
        expected.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (path, methods) in expected {
        let item = paths.get(path).unwrap_or_else(|| panic!("{path} missing"));
        for method in methods {
            let op = &item[method];
            assert!(op["responses"].is_object(), "{method} {path} has responses");
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "SessionView",
        "SessionListView",
        "CreatedSessionView",
        "CreateSessionBody",
        "ErrorBody",
        "OperationView",
        "SessionSettings",
        "SendMessageBody",
        "MessageInfoView",
        "WebhookView",
        "DeliveryView",
        "EventListView",
        "CloudBody",
        "CloudView",
        "ButtonsBody",
        "ListBody",
        "TemplateBody",
        "ZernioSandboxSession",
        "ZernioErrorBody",
        "ZTemplate",
        "ZTemplateList",
        "ZBulkAnswer",
        "KapsoSandboxSession",
        "KapsoAgent",
        "KapsoErrorBody",
        "ContactView",
        "GroupView",
        "ParticipantResult",
        "ChannelView",
        "ContactList",
        "ImportAnswer",
        "BulkAnswer",
        "GroupList",
        "BusinessProfileAnswer",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn emulator_control_can_be_turned_off() {
    let app = TestApp::spawn_with(wharf_testkit::Backend::Sqlite, |c| {
        c.emulator_control = false
    })
    .await
    .unwrap();
    let created = app.create_session(serde_json::json!({})).await;
    let id = created["session"]["session_id"].as_str().unwrap();
    app.post(&format!("/v1/whatsapp-sessions/{id}/connect"))
        .expect(200)
        .await;
    app.post(&format!("/emulator/sessions/{id}/scan"))
        .expect(404)
        .await;
    let doc = app.get("/openapi.json").anonymous().expect(200).await;
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert!(
        !paths.iter().any(|p| p.starts_with("/emulator")),
        "the document lists only mounted routes: {paths:?}"
    );
}

#[tokio::test]
async fn a_default_engine_the_server_cannot_run_is_refused_at_start() {
    // On PostgreSQL without secret_key the cloud engine is off (nothing seals its tokens).
    let Some(db) = wharf_testkit::TestDb::create(wharf_testkit::Backend::Postgres).await else {
        return;
    };
    let config = wharf_testkit::Config {
        database_url: db.url().to_owned(),
        default_engine: wharf_core::EngineKind::Cloud,
        secret_key: None,
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = wharf_server::run(config, listener, Default::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("default_engine is cloud"), "{err}");
}

/// A new session's id.
async fn new_session(app: &TestApp) -> String {
    let created = app.create_session(serde_json::json!({})).await;
    created["session"]["session_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// PostgreSQL ending the server's connections while they are idle (a restart, an idle
/// timeout) costs no request an error: a connection idle for a while is checked before it is
/// lent, and a broken one is replaced. That holds for the pools and for the group commit's
/// own connection (sends).
#[tokio::test]
async fn connections_ended_under_an_idle_server_are_replaced_before_use() {
    let Some(app) = TestApp::spawn(wharf_testkit::Backend::Postgres).await else {
        return;
    };
    let id = new_session(&app).await;
    app.get(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(200)
        .await;
    let send = |text: &str| {
        app.post("/api/send-message").json(serde_json::json!({
            "session_id": id, "to": "+15551234567", "text": text
        }))
    };
    send("before").expect(202).await;
    app.db()
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await;
    // Past the pool's idle check (5 s).
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    for i in 0..20 {
        app.get(&format!("/v1/whatsapp-sessions/{id}"))
            .expect(200)
            .await;
        send(&format!("after {i}")).expect(202).await;
    }
    app.get("/readyz").anonymous().expect(200).await;
}

/// A database outage is an outage: readiness fails and requests answer 500, never 401 or 404.
#[tokio::test]
async fn a_database_outage_is_not_found_nothing() {
    let Some(app) = TestApp::spawn(wharf_testkit::Backend::Postgres).await else {
        return;
    };
    let id = new_session(&app).await;
    assert!(app.db().set_reachable(false).await);

    let ready = app.get("/readyz").anonymous().send().await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    wharf_testkit::assert_error(&ready.json, "database_unavailable");
    for path in [
        "/v1/whatsapp-sessions".to_owned(),
        format!("/v1/whatsapp-sessions/{id}"),
    ] {
        let answer = app.get(&path).send().await;
        assert_eq!(answer.status, 500, "{path}: {}", answer.text);
        wharf_testkit::assert_error(&answer.json, "internal_error");
        assert!(
            !answer.text.contains("sqlx") && !answer.text.contains("database"),
            "no internals leak: {}",
            answer.text
        );
    }

    app.db().set_reachable(true).await;
    app.get("/readyz").anonymous().expect(200).await;
    app.get(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(200)
        .await;
}
