//! `/v1/events` catch-up and the SSE stream with resume.

use std::time::Duration;

use serde_json::{Value, json};

const TO: &str = "+15550102030";

#[wharf_testkit::dual_test]
async fn catch_up_reads_after_a_cursor(mut app: wharf_testkit::TestApp) {
    let (s, key) = app.connected_session().await;
    let id = app.send_text(&s, TO, "log me").await;
    app.wait_status(&id, "sent").await;
    let all = app.get("/v1/events?limit=100").expect(200).await;
    let events = all["data"].as_array().unwrap();
    let cursors: Vec<i64> = events
        .iter()
        .map(|e| e["cursor"].as_i64().unwrap())
        .collect();
    assert!(
        cursors.windows(2).all(|w| w[1] == w[0] + 1),
        "gap-free: {cursors:?}"
    );
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(
        types.contains(&"session.qr") && types.contains(&"message.sent"),
        "{types:?}"
    );
    let sent = events.iter().find(|e| e["type"] == "message.sent").unwrap();
    assert_eq!(sent["message_id"], id.as_str());
    assert!(sent["timestamp"].as_str().unwrap().ends_with('Z'));

    let after = cursors[1];
    let rest = app
        .get(&format!("/v1/events?after={after}&limit=2"))
        .expect(200)
        .await;
    assert_eq!(rest["data"][0]["cursor"], after + 1);
    assert_eq!(rest["next_cursor"], after + 2);
    let end = app
        .get(&format!("/v1/events?after={}", cursors.last().unwrap()))
        .expect(200)
        .await;
    assert_eq!(end["data"], json!([]));
    assert_eq!(end["next_cursor"], *cursors.last().unwrap());

    // A session key sees its session's events only.
    let other = app.create_session(json!({})).await;
    let other_id = other["session"]["session_id"].as_str().unwrap().to_owned();
    app.post(&format!("/v1/whatsapp-sessions/{other_id}/connect"))
        .expect(200)
        .await;
    let mine = app
        .get("/v1/events?limit=100")
        .token(&key)
        .expect(200)
        .await;
    assert!(
        mine["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["session_id"] == s.as_str())
    );
    for bad in ["after=-1", "after=x", "limit=1000", "since=1"] {
        app.get(&format!("/v1/events?{bad}")).expect(422).await;
    }
}

#[wharf_testkit::dual_test]
async fn the_stream_delivers_live_and_resumes_from_last_event_id(mut app: wharf_testkit::TestApp) {
    let (s, _) = app.connected_session().await;
    let client = reqwest::Client::new();
    let mut stream = sse(&client, &app.url("/v1/events/stream"), &app.pat, None).await;
    let first = stream.next_event().await;
    assert_eq!(first.0, "1");
    let id = app.send_text(&s, TO, "live").await;
    let last = loop {
        let event = stream.next_event().await;
        if event.1["type"] == "message.sent" {
            break event;
        }
    };
    assert_eq!(last.1["message_id"], id.as_str());
    drop(stream);

    // Events while disconnected arrive after reconnecting with Last-Event-ID.
    app.post(&format!("/emulator/sessions/{s}/inbound"))
        .json(json!({"from": TO, "text": "while away"}))
        .expect(202)
        .await;
    // A reconnect repeats the URL (here with ?after=0); Last-Event-ID is the newer position.
    let mut resumed = sse(
        &client,
        &app.url("/v1/events/stream?after=0"),
        &app.pat,
        Some(&last.0),
    )
    .await;
    let next = resumed.next_event().await;
    assert_eq!(
        next.0.parse::<i64>().unwrap(),
        last.0.parse::<i64>().unwrap() + 1,
        "no gap, no repeat"
    );
    assert_eq!(next.1["type"], "message.received");

    // An open stream does not hold up a graceful shutdown.
    app.stop().await;
    drop(resumed);
}

#[wharf_testkit::dual_test]
async fn a_revoked_key_ends_its_stream(mut app: wharf_testkit::TestApp) {
    let account = app.account_id.parse().unwrap();
    let (key, token) = app
        .store
        .create_pat(account, Some("stream".into()))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let mut stream = sse(&client, &app.url("/v1/events/stream"), &token.raw, None).await;
    let (s, _) = app.connected_session().await;
    stream.next_event().await;
    app.store
        .revoke_key(&key.fingerprint)
        .await
        .unwrap()
        .expect("revoked");
    // Events keep coming, but the stream closes within a couple of seconds.
    app.send_text(&s, TO, "after revocation").await;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.response.chunk().await.unwrap_or(None) {
            let _ = chunk;
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the stream was still open 5 s after its key was revoked"
    );
    // And the key opens nothing any more.
    let again = client
        .get(app.url("/v1/events/stream"))
        .bearer_auth(&token.raw)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
}

/// A minimal SSE reader over a streaming response.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

async fn sse(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    last_event_id: Option<&str>,
) -> SseReader {
    let mut req = client.get(url).bearer_auth(token);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    SseReader {
        response: resp,
        buffer: String::new(),
    }
}

impl SseReader {
    /// The next event's id and data (keep-alive comments skipped), within 10 s.
    async fn next_event(&mut self) -> (String, Value) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut id = None;
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            id = Some(v.trim().to_owned());
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if let Some(id) = id {
                        return (id, serde_json::from_str(&data).unwrap());
                    }
                    continue;
                }
                let chunk = self
                    .response
                    .chunk()
                    .await
                    .unwrap()
                    .expect("the stream stays open");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("an event within 10 s")
    }
}
