//! Strict input: NUL characters, trailing data after a JSON body, and errors answered below
//! the handlers (unreadable paths, oversized URIs and headers, unknown routes and methods,
//! body limits, request ids), each in the dialect's envelope. On SQLite and PostgreSQL.

use serde_json::{Value, json};
use wharf_testkit::{TestApp, assert_error};

/// Asserts a Wapio 422 naming `field`.
async fn refused(call: wharf_testkit::Call<'_>, field: &str) -> Value {
    let answer = call.send().await;
    assert_eq!(answer.status.as_u16(), 422, "{}", answer.text);
    let errors = assert_error(&answer.json, "validation_error");
    assert!(
        errors[field].is_array(),
        "no error for {field}: {}",
        answer.text
    );
    answer.json
}

/// Asserts Kapso's envelope (`{error, errors}`) with `status`, naming `field` when given.
fn assert_kapso(answer: &wharf_testkit::Answer, status: u16, field: Option<&str>) {
    assert_eq!(answer.status.as_u16(), status, "{}", answer.text);
    assert!(
        answer.json["error"].is_string(),
        "not Kapso's envelope: {}",
        answer.text
    );
    assert!(answer.json.get("success").is_none(), "{}", answer.text);
    if let Some(field) = field {
        assert!(
            answer.json["errors"][field].is_array(),
            "no error for {field}: {}",
            answer.text
        );
    }
}

/// Asserts Zernio's envelope (`{error, type, code, param}`) with `status` and `code`.
fn assert_zernio(answer: &wharf_testkit::Answer, status: u16, code: &str) {
    assert_eq!(answer.status.as_u16(), status, "{}", answer.text);
    assert!(
        answer.json["error"].is_string(),
        "not Zernio's envelope: {}",
        answer.text
    );
    assert!(answer.json["type"].is_string(), "{}", answer.text);
    assert_eq!(answer.json["code"], code, "{}", answer.text);
}

fn assert_json(answer: &wharf_testkit::Answer) {
    assert!(
        answer
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        answer.headers
    );
}

/// A GET with exactly `headers` (and the PAT).
async fn raw_get(
    app: &TestApp,
    path: &str,
    headers: reqwest::header::HeaderMap,
) -> wharf_testkit::Answer {
    let resp = reqwest::Client::new()
        .get(app.url(path))
        .headers(headers)
        .bearer_auth(&app.pat)
        .send()
        .await
        .expect("an answer");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("a body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    wharf_testkit::Answer {
        status,
        headers,
        json,
        text,
    }
}

/// Writes `request` on a new connection and reads the answer until the server closes it:
/// its head and its body as JSON.
async fn raw_request(app: &TestApp, request: &str) -> (String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    // The server may answer and close before it read everything; that is fine.
    let _ = conn.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (
        head.to_ascii_lowercase()
            .replacen("http/1.1", "HTTP/1.1", 1),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

async fn count(app: &TestApp, path: &str, key: &str) -> usize {
    let body = app.get(path).expect(200).await;
    body[key].as_array().map_or(0, Vec::len)
}

#[wharf_testkit::dual_test]
async fn a_nul_character_is_refused_naming_the_field_and_nothing_is_written(
    mut app: wharf_testkit::TestApp,
) {
    let (id, _) = app.connected_session().await;
    let sessions = count(&app, "/v1/whatsapp-sessions", "data").await;
    refused(
        app.post("/v1/whatsapp-sessions")
            .json(json!({"label": "a\u{0}b"})),
        "label",
    )
    .await;
    refused(
        app.patch(&format!("/v1/whatsapp-sessions/{id}"))
            .json(json!({"label": "\u{0}"})),
        "label",
    )
    .await;
    refused(
        app.post("/v1/webhooks")
            .json(json!({"target_url": "https://example.com/\u{0}", "description": "ok"})),
        "target_url",
    )
    .await;
    refused(
        app.post("/v1/webhooks")
            .json(json!({"target_url": "https://example.com/hook", "description": "x\u{0}"})),
        "description",
    )
    .await;
    refused(
        app.post(&format!("/emulator/sessions/{id}/failures"))
            .json(json!({"mode": "permanent", "reason": "boom\u{0}"})),
        "reason",
    )
    .await;
    refused(
        app.post("/api/send-message")
            .json(json!({"session_id": id, "to": "+15551234567", "text": "hi\u{0}"})),
        "text",
    )
    .await;
    refused(
        app.post(&format!("/emulator/sessions/{id}/inbound"))
            .json(json!({"from": "+15551234567", "text": "\u{0}"})),
        "text",
    )
    .await;
    // At any depth, and in a key.
    refused(app.post("/v1/whatsapp-sessions").json(json!({"settings": {"typing": true}, "label": "ok", "cloud": {"access_token": "t\u{0}"}})), "cloud.access_token").await;
    refused(
        app.post("/v1/whatsapp-sessions").json(json!({"x\u{0}": 1})),
        "x\u{FFFD}",
    )
    .await;
    // In the query string and the path.
    refused(app.get("/v1/whatsapp-sessions?status=%00"), "status").await;
    refused(app.get("/v1/webhooks/whk_%00"), "path").await;
    // Kapso names the agent's field; Zernio answers 400 with the param.
    let agents = count(&app, "/api/v1/agents", "data").await;
    let answer = app
        .post("/api/v1/agents")
        .api_key(&app.pat)
        .json(json!({"agent": {"name": "A\u{0}"}}))
        .send()
        .await;
    assert_kapso(&answer, 422, Some("name"));
    let answer = app
        .post("/v1/whatsapp/sandbox/sessions")
        .json(json!({"phone": "+1555\u{0}"}))
        .send()
        .await;
    assert_zernio(&answer, 400, "invalid_field_value");
    assert_eq!(answer.json["param"], "phone");
    // Nothing was written.
    assert_eq!(count(&app, "/v1/whatsapp-sessions", "data").await, sessions);
    assert_eq!(count(&app, "/v1/webhooks", "data").await, 0);
    assert_eq!(count(&app, "/api/v1/agents", "data").await, agents);
    let logs = app
        .get(&format!("/api/whatsapp-sessions/{id}/message-logs"))
        .expect(200)
        .await;
    assert_eq!(logs["data"], json!([]), "no message stored");
    // An escaped backslash before `u0000` is no NUL.
    let ok = app
        .post("/v1/whatsapp-sessions")
        .raw(r#"{"label": "a\\u0000"}"#, "application/json")
        .expect(201)
        .await;
    assert_eq!(ok["session"]["label"], "a\\u0000");
}

#[wharf_testkit::dual_test]
async fn trailing_data_after_a_json_body_is_malformed(mut app: wharf_testkit::TestApp) {
    let (id, _) = app.connected_session().await;
    let sessions = count(&app, "/v1/whatsapp-sessions", "data").await;
    for body in [
        r#"{"label":"a"} xx"#,
        r#"{"label":"a"}{"label":"b"}"#,
        r#"{"label":"a"}}"#,
    ] {
        let answer = refused(
            app.post("/v1/whatsapp-sessions")
                .raw(body, "application/json"),
            "body",
        )
        .await;
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("malformed JSON"),
            "{answer}"
        );
    }
    // Whitespace after the body is fine.
    app.post("/v1/whatsapp-sessions")
        .raw("{\"label\":\"a\"} \n", "application/json")
        .expect(201)
        .await;
    refused(
        app.post("/v1/webhooks").raw(
            r#"{"target_url":"https://example.com/h"} 1"#,
            "application/json",
        ),
        "body",
    )
    .await;
    let send = format!(r#"{{"session_id":"{id}","to":"+15551234567","text":"hi"}} {{}}"#);
    refused(
        app.post("/api/send-message").raw(&send, "application/json"),
        "body",
    )
    .await;
    refused(
        app.post(&format!("/emulator/sessions/{id}/inbound"))
            .raw(r#"{"from":"+15551234567","text":"x"}x"#, "application/json"),
        "body",
    )
    .await;
    refused(
        app.patch(&format!("/v1/whatsapp-sessions/{id}/settings"))
            .raw(r#"{"typing":true} []"#, "application/json"),
        "body",
    )
    .await;
    let answer = app
        .post("/api/v1/agents")
        .api_key(&app.pat)
        .raw(r#"{"agent":{"name":"A"}} xx"#, "application/json")
        .send()
        .await;
    assert_kapso(&answer, 422, Some("body"));
    let answer = app
        .post("/v1/whatsapp/sandbox/sessions")
        .raw(r#"{"phone":"+15551234567"}{}"#, "application/json")
        .send()
        .await;
    assert_zernio(&answer, 400, "invalid_field_value");
    assert_eq!(answer.json["param"], "body");
    assert_eq!(
        count(&app, "/v1/whatsapp-sessions", "data").await,
        sessions + 1
    );
    assert_eq!(count(&app, "/v1/webhooks", "data").await, 0);
    assert_eq!(count(&app, "/api/v1/agents", "data").await, 0);
    let logs = app
        .get(&format!("/api/whatsapp-sessions/{id}/message-logs"))
        .expect(200)
        .await;
    assert_eq!(logs["data"], json!([]), "no message stored");
}

#[wharf_testkit::dual_test]
async fn unreadable_paths_and_oversized_requests_answer_in_the_envelope(
    mut app: wharf_testkit::TestApp,
) {
    // A path segment that is not UTF-8 once decoded.
    let answer = app.get("/v1/whatsapp-sessions/%FF%FE").send().await;
    assert_eq!(answer.status.as_u16(), 400, "{}", answer.text);
    assert_json(&answer);
    assert!(
        assert_error(&answer.json, "bad_request")["path"].is_array(),
        "{}",
        answer.text
    );
    let answer = app
        .delete("/api/v1/agents/%C3%28")
        .api_key(&app.pat)
        .send()
        .await;
    assert_kapso(&answer, 400, Some("path"));
    // A URI over hyper's limit (too long for an HTTP client library to send).
    let (head, body) = raw_request(
        &app,
        &format!(
            "GET /v1/whatsapp-sessions/{} HTTP/1.1\r\nhost: x\r\n\r\n",
            "a".repeat(100_000)
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 414 "), "{head}");
    assert!(
        head.contains("content-type: application/json") && head.contains("x-request-id: req_"),
        "{head}"
    );
    assert_error(&body, "uri_too_long");
    let (head, body) = raw_request(
        &app,
        &format!(
            "DELETE /api/v1/agents/{} HTTP/1.1\r\nhost: x\r\n\r\n",
            "a".repeat(100_000)
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 414 "), "{head}");
    assert!(
        body["error"].is_string() && body.get("success").is_none(),
        "{body}"
    );
    // A request line hyper cannot parse.
    let (head, body) = raw_request(
        &app,
        "GET /v1/whatsapp-sessions HTTP/1.1\r\nbad header\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    assert_error(&body, "bad_request");
    // Headers too large in all (ours: 64 KiB), or too many (hyper's: 100).
    app.get("/v1/whatsapp-sessions")
        .header("x-big", &"b".repeat(60 * 1024))
        .expect(200)
        .await;
    let answer = app
        .get("/v1/whatsapp-sessions")
        .header("x-big", &"b".repeat(64 * 1024))
        .send()
        .await;
    assert_eq!(answer.status.as_u16(), 431, "{}", answer.text);
    assert_json(&answer);
    assert_error(&answer.json, "headers_too_large");
    let mut headers = reqwest::header::HeaderMap::new();
    for i in 0..120 {
        let name = reqwest::header::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap();
        headers.insert(name, i.into());
    }
    let answer = raw_get(&app, "/v1/whatsapp/sandbox/sessions", headers).await;
    assert_zernio(&answer, 431, "headers_too_large");
    // The server still serves.
    app.get("/v1/whatsapp-sessions").expect(200).await;
}

#[wharf_testkit::dual_test]
async fn every_error_answer_is_in_its_dialects_envelope(mut app: wharf_testkit::TestApp) {
    // Unknown routes and methods.
    let answer = app.get("/v1/nothing").send().await;
    assert_eq!(answer.status.as_u16(), 404);
    assert_error(&answer.json, "not_found");
    let answer = app.get("/api/v1/agents/x/y").api_key(&app.pat).send().await;
    assert_kapso(&answer, 404, None);
    let answer = app.get("/v1/whatsapp/sandbox/sessions/x/y").send().await;
    assert_zernio(&answer, 404, "not_found");
    let answer = app
        .get("/api/v1/whatsapp/sandbox/sessions/x/y")
        .send()
        .await;
    assert_zernio(&answer, 404, "not_found");
    let answer = app
        .call(reqwest::Method::PUT, "/api/v1/agents")
        .api_key(&app.pat)
        .send()
        .await;
    assert_kapso(&answer, 405, None);
    let answer = app
        .call(reqwest::Method::PUT, "/v1/whatsapp/sandbox/sessions")
        .send()
        .await;
    assert_zernio(&answer, 405, "method_not_allowed");
    let answer = app
        .call(reqwest::Method::PUT, "/api/v1/whatsapp/sandbox/sessions")
        .send()
        .await;
    assert_zernio(&answer, 405, "method_not_allowed");
    let answer = app.call(reqwest::Method::PATCH, "/healthz").send().await;
    assert_eq!(answer.status.as_u16(), 405);
    assert_error(&answer.json, "method_not_allowed");
    // Body too large and not JSON.
    let huge = format!(
        "{{\"agent\": {{\"name\": \"{}\"}}}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let answer = app
        .post("/api/v1/agents")
        .api_key(&app.pat)
        .raw(&huge, "application/json")
        .send()
        .await;
    assert_kapso(&answer, 413, None);
    let answer = app
        .post("/api/v1/agents")
        .api_key(&app.pat)
        .raw("name=x", "text/plain")
        .send()
        .await;
    assert_kapso(&answer, 415, None);
    let huge = format!("{{\"phone\": \"{}\"}}", "1".repeat(2 * 1024 * 1024));
    let answer = app
        .post("/v1/whatsapp/sandbox/sessions")
        .raw(&huge, "application/json")
        .send()
        .await;
    assert_zernio(&answer, 413, "payload_too_large");
    let answer = app
        .post("/v1/whatsapp/sandbox/sessions")
        .raw("phone=1", "text/plain")
        .send()
        .await;
    assert_zernio(&answer, 415, "unsupported_media_type");
    let answer = app
        .post("/emulator/sessions/sess_x/inbound")
        .raw(&"x".repeat(2 * 1024 * 1024), "application/json")
        .send()
        .await;
    assert_eq!(answer.status.as_u16(), 413);
    assert_error(&answer.json, "payload_too_large");
}

#[wharf_testkit::dual_test]
async fn unsafe_request_ids_are_replaced(mut app: wharf_testkit::TestApp) {
    let kept = app
        .get("/healthz")
        .header("x-request-id", "Ab9._:-z")
        .send()
        .await;
    assert_eq!(kept.header("x-request-id"), Some("Ab9._:-z"));
    let max = "i".repeat(128);
    let kept = app
        .get("/healthz")
        .header("x-request-id", &max)
        .send()
        .await;
    assert_eq!(kept.header("x-request-id"), Some(max.as_str()));
    for bad in [
        "i".repeat(129),
        "has space".into(),
        "semi;colon".into(),
        "é".into(),
        "<script>".into(),
        "a/b".into(),
    ] {
        for answer in [
            app.get("/healthz")
                .header("x-request-id", &bad)
                .send()
                .await,
            app.get("/v1/whatsapp-sessions")
                .header("x-request-id", &bad)
                .send()
                .await,
            app.get("/v1/nope")
                .header("x-request-id", &bad)
                .send()
                .await,
        ] {
            let id = answer.header("x-request-id").unwrap_or_default().to_owned();
            assert!(id.starts_with("req_") && id != bad, "{bad:?} gave {id:?}");
        }
    }
}

#[wharf_testkit::dual_test]
async fn engine_text_with_a_nul_is_stored_not_refused(mut app: wharf_testkit::TestApp) {
    use crate::cloud::{PNID, USER, connected, send, user_writes};
    let (graph, cloud) = connected(&app).await;
    // Meta's payloads are not ours to refuse: a NUL in a text, a name, or an error is
    // stored (as U+FFFD where a column holds plain text) and acknowledged.
    let (_, status) = graph
        .emit_inbound(
            PNID,
            USER,
            "She\u{0}ena",
            json!({"type": "text", "text": {"body": "hi\u{0}there"}}),
        )
        .await;
    assert_eq!(status.as_u16(), 200);
    let logs = app
        .get(&format!(
            "/api/whatsapp-sessions/{}/message-logs?direction=in",
            cloud.session
        ))
        .expect(200)
        .await;
    let text = logs["data"][0]["content"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        text == "hi\u{0}there" || text == "hi\u{FFFD}there",
        "{logs}"
    );
    user_writes(&graph, PNID, USER, "Hi").await;
    let id = send(&app, &cloud.session, json!({"text": "promo"})).await;
    let wamid = app.wait_status(&id, "sent").await["provider_msg_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let error = json!({"code": 131049, "title": "not\u{0}delivered", "message": "not\u{0}delivered",
                       "error_data": {"details": "bad\u{0}luck"}});
    assert_eq!(
        graph
            .emit_status(PNID, &wamid, "failed", Some(error))
            .await
            .as_u16(),
        200
    );
    let info = app.wait_status(&id, "failed").await;
    let reason = info["failure_reason"].as_str().unwrap();
    assert!(
        reason.contains("not\u{FFFD}delivered") && !reason.contains('\u{0}'),
        "{reason}"
    );
    // A send Graph refuses with a NUL in its error fails once, with the reason.
    let mut failure = wharf_testkit::fakegraph::Failure::code(131026);
    failure.message = "(#131026) Message\u{0}undeliverable".into();
    graph.fail_next(failure);
    let id = send(&app, &cloud.session, json!({"text": "again"})).await;
    let info = app.wait_status(&id, "failed").await;
    let reason = info["failure_reason"].as_str().unwrap();
    assert!(reason.contains("Message\u{FFFD}undeliverable"), "{reason}");
    graph.assert_no_rejections();
}

/// Every parameter named `name` of every operation of `doc`, with its operation.
fn params_named<'a>(doc: &'a Value, name: &str) -> Vec<(String, &'a Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["name"] == name {
                    found.push((format!("{method} {path}"), p));
                }
            }
        }
    }
    found
}

#[wharf_testkit::dual_test]
async fn the_openapi_document_states_what_the_server_accepts(mut app: wharf_testkit::TestApp) {
    use wharf_server::http::extract::{LIMIT_MAX, LIMIT_MIN};
    let doc = app.get("/openapi.json").anonymous().expect(200).await;
    // Page sizes: the bounds the server checks, on every `limit`.
    let limits = params_named(&doc, "limit");
    assert_eq!(limits.len(), 9, "{limits:?}");
    for (op, p) in &limits {
        assert_eq!(p["schema"]["minimum"], json!(LIMIT_MIN), "{op}");
        // Zernio's pages (its contacts, broadcasts and a broadcast's recipients) set no
        // maximum: a larger `limit` reads as the largest page.
        let max = if op.contains("/v1/whatsapp/contacts") || op.contains("/v1/whatsapp/broadcasts")
        {
            Value::Null
        } else {
            json!(LIMIT_MAX)
        };
        assert_eq!(p["schema"]["maximum"], max, "{op}");
    }
    for (op, p) in params_named(&doc, "after") {
        assert_eq!(p["schema"]["minimum"], json!(0), "{op}");
    }
    let (id, _) = app.connected_session().await;
    app.get(&format!("/v1/whatsapp-sessions?limit={LIMIT_MAX}"))
        .expect(200)
        .await;
    refused(
        app.get(&format!("/v1/whatsapp-sessions?limit={}", LIMIT_MAX + 1)),
        "limit",
    )
    .await;
    refused(
        app.get(&format!("/v1/events?limit={}", LIMIT_MIN - 1)),
        "limit",
    )
    .await;
    refused(app.get("/v1/events?after=-1"), "after").await;
    // The QR format: exactly the values the server takes.
    let format = &params_named(&doc, "format")[0].1["schema"];
    assert_eq!(format["pattern"], "^(text|string|image|png)$", "{format}");
    refused(
        app.get(&format!("/v1/whatsapp-sessions/{id}/qrcode?format=svg")),
        "format",
    )
    .await;
    // The idempotency key's shape.
    let key = &params_named(&doc, "Idempotency-Key")[0].1["schema"];
    assert_eq!(
        (key["minLength"].clone(), key["maxLength"].clone()),
        (json!(1), json!(255)),
        "{key}"
    );
    refused(
        app.post("/api/send-message")
            .header("idempotency-key", &"k".repeat(256))
            .json(json!({"session_id": id, "to": "+15551234567", "text": "x"})),
        "Idempotency-Key",
    )
    .await;
    // Bodies the server takes absent are not required; the others are.
    let body = |method: &str, path: &str| doc["paths"][path][method]["requestBody"].clone();
    for (method, path) in [
        ("post", "/v1/whatsapp-sessions"),
        ("patch", "/v1/whatsapp-sessions/{id}"),
        ("patch", "/v1/whatsapp-sessions/{id}/settings"),
        ("post", "/emulator/sessions/{id}/scan"),
        ("patch", "/v1/webhooks/{id}"),
    ] {
        assert_ne!(
            body(method, path)["required"],
            json!(true),
            "{method} {path}"
        );
    }
    app.post("/v1/whatsapp-sessions").expect(201).await;
    app.patch(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(200)
        .await;
    app.patch(&format!("/v1/whatsapp-sessions/{id}/settings"))
        .expect(200)
        .await;
    for (method, path) in [
        ("post", "/api/send-message"),
        ("post", "/v1/webhooks"),
        ("post", "/api/v1/agents"),
        ("post", "/v1/whatsapp/sandbox/sessions"),
        ("post", "/emulator/sessions/{id}/failures"),
    ] {
        assert_eq!(
            body(method, path)["required"],
            json!(true),
            "{method} {path}"
        );
    }
    // Fields the server refuses as null are not nullable.
    let schemas = &doc["components"]["schemas"];
    let zernio_phone = &schemas["ZernioCreateBody"]["properties"]["phone"];
    assert_eq!(zernio_phone["type"], "string", "{zernio_phone}");
    assert_eq!(schemas["ZernioCreateBody"]["required"], json!(["phone"]));
    let agent_name = &schemas["KapsoAgentFields"]["properties"]["name"];
    assert_eq!(agent_name["type"], "string", "{agent_name}");
    assert_eq!(
        (
            agent_name["pattern"].clone(),
            agent_name["maxLength"].clone()
        ),
        (json!("\\S"), json!(200)),
        "{agent_name}"
    );
    let answer = app
        .post("/api/v1/agents")
        .api_key(&app.pat)
        .json(json!({"agent": {"name": "  "}}))
        .send()
        .await;
    assert_kapso(&answer, 422, Some("name"));
    let answer = app
        .post("/api/v1/agents")
        .api_key(&app.pat)
        .json(json!({"agent": {"name": null}}))
        .send()
        .await;
    assert_kapso(&answer, 422, Some("name"));
    // Lists and enumerations the server bounds.
    let ids = &schemas["ReadBody"]["properties"]["message_ids"];
    assert_eq!(
        (ids["minItems"].clone(), ids["maxItems"].clone()),
        (json!(1), json!(100)),
        "{ids}"
    );
    let failures = &schemas["FailuresBody"]["properties"];
    assert_eq!(failures["mode"]["pattern"], "^(retryable|permanent|none)$");
    assert_eq!(failures["count"]["minimum"], json!(1));
    refused(
        app.post(&format!("/emulator/sessions/{id}/failures"))
            .json(json!({"mode": "permanent", "count": 0})),
        "count",
    )
    .await;
    assert_eq!(
        schemas["ReceiptBody"]["properties"]["status"]["pattern"],
        "^(delivered|read|played)$"
    );
}

/// `POST /webhooks/meta` is public: ids with a NUL in a payload whose signature is not even
/// checked yet must not reach PostgreSQL (a 500 anyone could repeat).
#[wharf_testkit::dual_test]
async fn a_meta_webhook_with_nul_ids_is_refused_not_a_500(app: wharf_testkit::TestApp) {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"\u0000","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"\u0000"}}},{"field":"message_template_status_update","value":{"event":"APPROVED","message_template_id":1,"message_template_name":"x","message_template_language":"en"}}]}]}"#;
    let answer = app
        .post("/webhooks/meta")
        .raw(body, "application/json")
        .header("x-hub-signature-256", &format!("sha256={}", "0".repeat(64)))
        .send()
        .await;
    assert!(
        answer.status.is_client_error(),
        "{} {}",
        answer.status,
        answer.json
    );
}

/// A bad chat in the message log's query names the parameter the caller used.
#[wharf_testkit::dual_test]
async fn a_bad_chat_filter_names_its_parameter(mut app: wharf_testkit::TestApp) {
    let (id, _) = app.connected_session().await;
    for name in ["chat", "chat_jid"] {
        let bad = app
            .get(&format!(
                "/api/whatsapp-sessions/{id}/message-logs?{name}=xyz"
            ))
            .expect(422)
            .await;
        let errors = assert_error(&bad, "validation_error");
        assert!(errors[name].is_array(), "{name}: {bad}");
    }
}
