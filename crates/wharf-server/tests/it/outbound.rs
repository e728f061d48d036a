//! The outbound policy: URLs a tenant gives (webhook and agent endpoints, media) may not
//! reach loopback, private, link-local or other non-public addresses, in any spelling, nor
//! through a name resolving to one, at registration or when connecting (DNS rebinding).

use std::{
    future::Future,
    io,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use wharf_server::outbound::Lookup;
use wharf_testkit::{TestApp, TestReceiver, assert_error};

/// A resolver whose answer the test changes: every name resolves to its current addresses,
/// except `localhost`, left to the system.
#[derive(Clone, Default)]
struct Dns(Arc<Mutex<Vec<IpAddr>>>);

impl Dns {
    fn answer(&self, addrs: &[&str]) {
        *self.0.lock().unwrap() = addrs.iter().map(|a| a.parse().unwrap()).collect();
    }
}

impl Lookup for Dns {
    fn lookup(
        &self,
        host: &str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'static>> {
        let addrs = self.0.lock().unwrap().clone();
        let system = host == "localhost";
        let host = host.to_owned();
        Box::pin(async move {
            if system {
                return Ok(tokio::net::lookup_host((host.as_str(), 0))
                    .await?
                    .map(|a| a.ip())
                    .collect());
            }
            Ok(addrs)
        })
    }
}

/// Every spelling of a refused address, and names resolving to one.
const REFUSED: &[&str] = &[
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://0177.0.0.1/hook",
    "http://0.0.0.0/hook",
    "http://0/hook",
    "http://10.0.0.8/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:a9fe:a9fe]/hook",
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",
    "http://[64:ff9b::7f00:1]/hook",
    "http://user@127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://metadata.internal.test/hook",
];

async fn policy_app(backend: wharf_testkit::Backend, dns: &Dns) -> Option<TestApp> {
    let dns = dns.clone();
    TestApp::spawn_with(backend, move |c| {
        c.outbound_allow = Vec::new();
        c.outbound_lookup = Some(Arc::new(dns));
    })
    .await
}

fn refused_naming(body: &Value, field: &str) {
    let errors = assert_error(body, "url_not_allowed");
    assert!(errors[field].is_array(), "{body}");
}

#[wharf_testkit::dual_test]
async fn registration_refuses_every_spelling_of_a_refused_address(backend: wharf_testkit::Backend) {
    let dns = Dns::default();
    let Some(app) = policy_app(backend, &dns).await else {
        return;
    };
    // Names resolve to a private address (the system's `localhost`, to loopback).
    dns.answer(&["10.1.2.3"]);
    for url in REFUSED {
        let answer = app
            .post("/v1/webhooks")
            .json(json!({"target_url": url}))
            .expect(422)
            .await;
        refused_naming(&answer, "target_url");
    }
    // Any refused address among a name's answers is enough.
    dns.answer(&["93.184.215.14", "127.0.0.1"]);
    let answer = app
        .post("/v1/webhooks")
        .json(json!({"target_url": "http://mixed.test/hook"}))
        .expect(422)
        .await;
    refused_naming(&answer, "target_url");
    // A public answer is accepted; a change to a refused URL is not.
    dns.answer(&["93.184.215.14"]);
    let hook = app
        .post("/v1/webhooks")
        .json(json!({"target_url": "https://hooks.example.test/wharf"}))
        .expect(201)
        .await;
    let id = hook["id"].as_str().unwrap();
    let answer = app
        .patch(&format!("/v1/webhooks/{id}"))
        .json(json!({"target_url": "http://0x7f.1:9000/"}))
        .expect(422)
        .await;
    refused_naming(&answer, "target_url");
    let kept = app.get(&format!("/v1/webhooks/{id}")).expect(200).await;
    assert_eq!(kept["target_url"], "https://hooks.example.test/wharf");
    // Kapso agents' endpoints follow the same policy.
    let answer = app
        .post("/api/v1/agents")
        .api_key(&app.pat)
        .json(json!({"agent": {"name": "Bot", "webhook_url": "http://169.254.169.254/"}}))
        .expect(422)
        .await;
    assert!(answer["errors"]["webhook_url"].is_array(), "{answer}");
    let agent = app
        .post("/api/v1/agents")
        .api_key(&app.pat)
        .json(json!({"agent": {"name": "Bot"}}))
        .expect(201)
        .await;
    let agent = agent["data"]["id"].as_str().unwrap();
    let answer = app
        .patch(&format!("/api/v1/agents/{agent}"))
        .api_key(&app.pat)
        .json(json!({"agent": {"webhook_url": "http://[::1]:8080/"}}))
        .expect(422)
        .await;
    assert!(answer["errors"]["webhook_url"].is_array(), "{answer}");
}

#[wharf_testkit::dual_test]
async fn media_urls_refused_at_acceptance(backend: wharf_testkit::Backend) {
    let dns = Dns::default();
    let Some(app) = policy_app(backend, &dns).await else {
        return;
    };
    dns.answer(&["192.168.0.10"]);
    let (session, _) = app.connected_session().await;
    for (body, field) in [
        (
            json!({"imageUrl": "http://169.254.169.254/a.png"}),
            "imageUrl",
        ),
        (
            json!({"kind": "document", "url": "http://[::ffff:127.0.0.1]/a.pdf"}),
            "url",
        ),
        (
            json!({"videoUrl": "https://cdn.internal.test/v.mp4"}),
            "videoUrl",
        ),
        (
            json!({"kind": "template", "template": {"name": "promo", "language": "en_US", "components": [
                {"type": "header", "parameters": [{"type": "image", "image": {"link": "http://2130706433/x.png"}}]}
            ]}}),
            "template.components[0].parameters[0].image.link",
        ),
    ] {
        let mut body = body;
        body["session_id"] = json!(session);
        body["to"] = json!("+15550102030");
        let answer = app.post("/api/send-message").json(body).expect(422).await;
        refused_naming(&answer, field);
    }
    // Nothing was queued.
    let logs = app
        .get(&format!("/api/whatsapp-sessions/{session}/message-logs"))
        .expect(200)
        .await;
    assert_eq!(logs["data"].as_array().map(Vec::len), Some(0), "{logs}");
    // A public address is fine.
    dns.answer(&["93.184.215.14"]);
    app.post("/api/send-message")
        .json(json!({"session_id": session, "to": "+15550102030", "imageUrl": "https://cdn.example.test/a.png"}))
        .expect(202)
        .await;
}

/// The attempts of the only delivery of endpoint `id`, once it has `n`.
async fn attempts(app: &TestApp, id: &str, n: usize) -> Vec<Value> {
    let found = app
        .eventually(&format!("/v1/webhooks/{id}/deliveries"), |d| {
            d["data"][0]["attempt_log"]
                .as_array()
                .is_some_and(|a| a.len() >= n)
        })
        .await;
    found["data"][0]["attempt_log"].as_array().unwrap().clone()
}

#[wharf_testkit::dual_test]
async fn a_rebound_name_is_refused_at_connect_time(backend: wharf_testkit::Backend) {
    let dns = Dns::default();
    let Some(app) = policy_app(backend, &dns).await else {
        return;
    };
    let mut receiver = TestReceiver::start().await;
    // Public at registration…
    dns.answer(&["93.184.215.14"]);
    let url = format!("http://rebound.test:{}/hook", receiver.addr.port());
    let hook = app
        .post("/v1/webhooks")
        .json(json!({"target_url": url, "subscribed_events": ["session.status"]}))
        .expect(201)
        .await;
    let id = hook["id"].as_str().unwrap().to_owned();
    // …loopback when delivering, where something listens.
    dns.answer(&["127.0.0.1"]);
    app.create_session(json!({})).await;
    app.connected_session().await;
    let log = attempts(&app, &id, 1).await;
    assert_eq!(log[0]["status_code"], Value::Null, "{log:?}");
    assert_eq!(
        log[0]["error"], "not sent: refused by the outbound policy",
        "{log:?}"
    );
    assert!(
        receiver.quiet_for(Duration::from_millis(500)).await,
        "no connection was made"
    );
}

#[wharf_testkit::dual_test]
async fn an_allowed_range_is_delivered(backend: wharf_testkit::Backend) {
    // The test kit allows 127.0.0.0/8: the same name, resolved by the same hook, is delivered
    // (so the refusal above is the policy's, not a failed lookup).
    let dns = Dns::default();
    let hook_dns = dns.clone();
    let Some(app) = TestApp::spawn_with(backend, move |c| {
        c.outbound_lookup = Some(Arc::new(hook_dns));
    })
    .await
    else {
        return;
    };
    let mut receiver = TestReceiver::start().await;
    dns.answer(&["127.0.0.1"]);
    let url = format!("http://rebound.test:{}/hook", receiver.addr.port());
    app.post("/v1/webhooks")
        .json(json!({"target_url": url, "subscribed_events": ["session.status"]}))
        .expect(201)
        .await;
    app.create_session(json!({})).await;
    app.connected_session().await;
    receiver.next_of("session.status").await;
}
