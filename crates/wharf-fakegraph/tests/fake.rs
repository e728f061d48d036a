//! Drives the fake Graph server over HTTP the way the Cloud API engine does.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use hmac::{Hmac, Mac};
use reqwest::Client;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wharf_fakegraph::{Failure, FakeGraph, FakeNumber};

const PNID: &str = "106540352242922";
const WABA: &str = "102290129340398";
const PNID2: &str = "106540352249999";
const WABA2: &str = "102290129349999";

struct Env {
    graph: FakeGraph,
    http: Client,
    base: String,
    token: String,
}

impl Env {
    async fn new() -> Self {
        let graph = FakeGraph::start().await;
        let mut n = FakeNumber::new(PNID, WABA, "15550783881");
        n.not_on_whatsapp = vec!["+15550009999".into()];
        graph.add_number(n.clone());
        graph.add_number(FakeNumber::new(PNID2, WABA2, "15550780000"));
        let base = format!("{}/v23.0", graph.base_url());
        Env {
            http: Client::new(),
            base,
            token: n.access_token,
            graph,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.token.clone(), method, path, body).await
    }

    async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn send(&self, body: Value) -> (u16, Value) {
        self.call("POST", &format!("/{PNID}/messages"), Some(body))
            .await
    }

    /// Creates a template and approves it.
    async fn approved_template(&self, name: &str, body_text: &str) -> String {
        let (s, v) = self
            .call(
                "POST",
                &format!("/{WABA}/message_templates"),
                Some(json!({
                    "name": name, "language": "en_US", "category": "UTILITY",
                    "components": [{"type": "BODY", "text": body_text}],
                })),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        self.graph.set_template_status(WABA, name, "APPROVED");
        v["id"].as_str().unwrap().to_owned()
    }
}

fn msg(kind: &str, payload: Value) -> Value {
    let mut m = json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                       "to": "+16505551234", "type": kind});
    m[kind] = payload;
    m
}

fn code(v: &Value) -> i64 {
    v["error"]["code"].as_i64().unwrap_or(-1)
}

#[tokio::test]
async fn auth_failures() {
    let env = Env::new().await;
    let url = format!("{}/{PNID}", env.base);

    let resp = env.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code(&v), 190);
    assert_eq!(v["error"]["type"], "OAuthException");
    assert_eq!(
        v["error"]["message"],
        "Invalid OAuth access token - Cannot parse access token"
    );
    assert!(
        v["error"]["fbtrace_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(
        env.graph.rejections().len(),
        1,
        "missing header is a client bug"
    );

    let (s, v) = env.call_as("nope", "GET", &format!("/{PNID}"), None).await;
    assert_eq!((s, code(&v)), (401, 190));

    // A real token, but for another number / WABA.
    let other = FakeNumber::new(PNID2, WABA2, "").access_token;
    let (s, v) = env.call_as(&other, "GET", &format!("/{PNID}"), None).await;
    assert_eq!((s, code(&v)), (401, 190));
    let (s, _) = env
        .call_as(&other, "GET", &format!("/{WABA}/phone_numbers"), None)
        .await;
    assert_eq!(s, 401);

    let (s, v) = env.call("GET", "/999999/phone_numbers", None).await;
    assert_eq!((s, code(&v)), (400, 100));
    assert_eq!(v["error"]["error_subcode"], 33);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'999999' does not exist")
    );

    // Version prefix is optional.
    let resp = env
        .http
        .get(format!("{}/{PNID}", env.graph.base_url()))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    env.graph.expire_token(PNID);
    let (s, v) = env.call("GET", &format!("/{PNID}"), None).await;
    assert_eq!((s, code(&v)), (401, 190));
    assert_eq!(v["error"]["error_subcode"], 463);
    let (s, _) = env.call_as(&other, "GET", &format!("/{PNID2}"), None).await;
    assert_eq!(s, 200, "other numbers keep working");

    let reqs = env.graph.requests();
    assert_eq!(reqs[0].path, format!("/{PNID}"));
    assert_eq!(reqs[0].authorization, None);
    assert_eq!(reqs[1].authorization.as_deref(), Some("Bearer nope"));
    assert_eq!(env.graph.rejections().len(), 1);
}

#[tokio::test]
async fn every_message_kind_is_accepted() {
    let env = Env::new().await;
    env.approved_template("order_update", "Hi {{1}}, order {{2}} shipped")
        .await;
    let cases = vec![
        msg(
            "text",
            json!({"body": "See https://x.io", "preview_url": true}),
        ),
        msg(
            "image",
            json!({"link": "https://x.io/a.jpg", "caption": "pic"}),
        ),
        msg("video", json!({"id": "1234567890"})),
        msg(
            "audio",
            json!({"link": "https://x.io/a.ogg", "voice": true}),
        ),
        msg(
            "document",
            json!({"link": "http://x.io/a.pdf", "filename": "a.pdf", "caption": "c"}),
        ),
        msg("sticker", json!({"id": "555"})),
        msg(
            "location",
            json!({"latitude": 37.48, "longitude": -122.14, "name": "HQ", "address": "1 Hacker Way"}),
        ),
        msg(
            "contacts",
            json!([{"name": {"formatted_name": "Jane Doe", "first_name": "Jane"},
            "phones": [{"phone": "+15551230000", "type": "CELL", "wa_id": "15551230000"}]}]),
        ),
        msg(
            "interactive",
            json!({"type": "button", "header": {"type": "text", "text": "H"},
            "body": {"text": "Pick"}, "footer": {"text": "F"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                                   {"type": "reply", "reply": {"id": "no", "title": "No"}}]}}),
        ),
        msg(
            "interactive",
            json!({"type": "list", "body": {"text": "Choose"},
            "action": {"button": "Options", "sections": [
                {"title": "S1", "rows": [{"id": "r1", "title": "Row 1", "description": "d"}]},
                {"title": "S2", "rows": [{"id": "r2", "title": "Row 2"}]}]}}),
        ),
        msg("reaction", json!({"message_id": "wamid.X", "emoji": "👍"})),
        msg("reaction", json!({"message_id": "wamid.X", "emoji": ""})),
        msg(
            "template",
            json!({"name": "order_update", "language": {"code": "en_US"}, "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.io/a.jpg"}}]},
            {"type": "BODY", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "42"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "STOP"}]},
            {"type": "button", "sub_type": "quick_reply", "index": 1}]}),
        ),
    ];
    let mut with_context = msg("text", json!({"body": "reply"}));
    with_context["context"] = json!({"message_id": "wamid.IN"});
    with_context["biz_opaque_callback_data"] = json!("tracking-1");
    let n = cases.len() + 1;
    let mut ids = std::collections::HashSet::new();
    for body in cases.into_iter().chain([with_context]) {
        let (s, v) = env.send(body.clone()).await;
        assert_eq!(s, 200, "{body} → {v}");
        assert_eq!(v["messaging_product"], "whatsapp");
        assert_eq!(v["contacts"][0]["input"], "+16505551234");
        assert_eq!(v["contacts"][0]["wa_id"], "16505551234");
        let id = v["messages"][0]["id"].as_str().unwrap();
        assert!(id.starts_with("wamid.HBgL"), "{id}");
        assert!(ids.insert(id.to_owned()));
        let is_template = body["type"] == "template";
        assert_eq!(
            v["messages"][0].get("message_status").is_some(),
            is_template
        );
    }
    assert_eq!(env.graph.rejections(), Vec::<String>::new());
    let sends = env.graph.sends();
    assert_eq!(sends.len(), n);
    assert_eq!(env.graph.send_count(PNID), n);
    assert_eq!(sends[0].kind, "text");
    assert_eq!(sends[0].to, "+16505551234");
    assert_eq!(sends[6].body["location"]["name"], "HQ");
    assert!(sends.windows(2).all(|w| w[0].at <= w[1].at));
    // Type defaults to text, as on Graph.
    let (s, _) = env
        .send(json!({"messaging_product": "whatsapp", "to": "16505551234", "text": {"body": "x"}}))
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn malformed_sends_are_rejected_and_recorded() {
    let env = Env::new().await;
    let long = "x".repeat(4097);
    let four = |id: &str| json!({"type": "reply", "reply": {"id": id, "title": "t"}});
    let rows: Vec<Value> = (0..11)
        .map(|i| json!({"id": format!("r{i}"), "title": "t"}))
        .collect();
    let bad = vec![
        (
            "messaging_product",
            json!({"to": "16505551234", "type": "text", "text": {"body": "x"}}),
        ),
        (
            "messaging_product",
            json!({"messaging_product": "sms", "to": "16505551234", "type": "text", "text": {"body": "x"}}),
        ),
        ("recipient_type", {
            let mut m = msg("text", json!({"body": "x"}));
            m["recipient_type"] = json!("group");
            m
        }),
        ("to", {
            let mut m = msg("text", json!({"body": "x"}));
            m["to"] = json!("12345");
            m
        }),
        ("to", {
            let mut m = msg("text", json!({"body": "x"}));
            m["to"] = json!("+1 555 123 4567");
            m
        }),
        ("type", msg("poll", json!({}))),
        (
            "text is required",
            json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "text"}),
        ),
        ("image is not allowed", {
            let mut m = msg("text", json!({"body": "x"}));
            m["image"] = json!({"id": "1"});
            m
        }),
        ("text.body", msg("text", json!({"body": ""}))),
        ("text.body", msg("text", json!({"body": long}))),
        (
            "text.preview_url",
            msg("text", json!({"body": "x", "preview_url": "yes"})),
        ),
        (
            "exactly one of link or id",
            msg("image", json!({"link": "https://x.io/a.jpg", "id": "1"})),
        ),
        ("exactly one of link or id", msg("image", json!({}))),
        (
            "image.link",
            msg("image", json!({"link": "ftp://x.io/a.jpg"})),
        ),
        (
            "audio.caption",
            msg("audio", json!({"id": "1", "caption": "c"})),
        ),
        (
            "image.filename",
            msg("image", json!({"id": "1", "filename": "a.jpg"})),
        ),
        (
            "video.voice",
            msg("video", json!({"id": "1", "voice": true})),
        ),
        (
            "image.caption",
            msg("image", json!({"id": "1", "caption": "c".repeat(1025)})),
        ),
        (
            "location.latitude",
            msg("location", json!({"latitude": 91.0, "longitude": 0.0})),
        ),
        (
            "location.longitude",
            msg("location", json!({"latitude": 1.0})),
        ),
        ("contacts must not be empty", msg("contacts", json!([]))),
        (
            "formatted_name",
            msg("contacts", json!([{"name": {"first_name": "J"}}])),
        ),
        (
            "buttons",
            msg(
                "interactive",
                json!({"type": "button", "body": {"text": "b"},
            "action": {"buttons": [four("a"), four("b"), four("c"), four("d")]}}),
            ),
        ),
        (
            "reply.title",
            msg(
                "interactive",
                json!({"type": "button", "body": {"text": "b"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "x".repeat(21)}}]}}),
            ),
        ),
        (
            "not unique",
            msg(
                "interactive",
                json!({"type": "button", "body": {"text": "b"},
            "action": {"buttons": [four("a"), four("a")]}}),
            ),
        ),
        (
            "interactive.body",
            msg(
                "interactive",
                json!({"type": "button",
            "action": {"buttons": [four("a")]}}),
            ),
        ),
        (
            "buttons[0].type",
            msg(
                "interactive",
                json!({"type": "button", "body": {"text": "b"},
            "action": {"buttons": [{"type": "url", "reply": {"id": "a", "title": "t"}}]}}),
            ),
        ),
        (
            "rows",
            msg(
                "interactive",
                json!({"type": "list", "body": {"text": "b"},
            "action": {"button": "B", "sections": [{"rows": rows}]}}),
            ),
        ),
        (
            "sections[1].title",
            msg(
                "interactive",
                json!({"type": "list", "body": {"text": "b"},
            "action": {"button": "B", "sections": [{"title": "a", "rows": [{"id": "1", "title": "t"}]},
                                                   {"rows": [{"id": "2", "title": "t"}]}]}}),
            ),
        ),
        (
            "action.button",
            msg(
                "interactive",
                json!({"type": "list", "body": {"text": "b"},
            "action": {"button": "x".repeat(21), "sections": [{"rows": [{"id": "1", "title": "t"}]}]}}),
            ),
        ),
        (
            "rows[0].description",
            msg(
                "interactive",
                json!({"type": "list", "body": {"text": "b"},
            "action": {"button": "B", "sections": [{"rows": [{"id": "1", "title": "t", "description": "d".repeat(73)}]}]}}),
            ),
        ),
        (
            "rows[0].title",
            msg(
                "interactive",
                json!({"type": "list", "body": {"text": "b"},
            "action": {"button": "B", "sections": [{"rows": [{"id": "1", "title": "t".repeat(25)}]}]}}),
            ),
        ),
        (
            "interactive.header.text",
            msg(
                "interactive",
                json!({"type": "button", "header": {"type": "text", "text": "h".repeat(61)},
            "body": {"text": "b"}, "action": {"buttons": [four("a")]}}),
            ),
        ),
        (
            "reaction.message_id",
            msg("reaction", json!({"message_id": "", "emoji": "👍"})),
        ),
        (
            "reaction.emoji",
            msg("reaction", json!({"message_id": "wamid.X"})),
        ),
        (
            "template.name",
            msg(
                "template",
                json!({"name": "", "language": {"code": "en_US"}}),
            ),
        ),
        ("template.language", msg("template", json!({"name": "t"}))),
        (
            "components[0].type",
            msg(
                "template",
                json!({"name": "t", "language": {"code": "en"},
            "components": [{"type": "footer"}]}),
            ),
        ),
        (
            "components[0].index",
            msg(
                "template",
                json!({"name": "t", "language": {"code": "en"},
            "components": [{"type": "button", "sub_type": "quick_reply", "index": "x"}]}),
            ),
        ),
        (
            "components[0].sub_type",
            msg(
                "template",
                json!({"name": "t", "language": {"code": "en"},
            "components": [{"type": "button", "index": 0}]}),
            ),
        ),
        ("context.message_id", {
            let mut m = msg("text", json!({"body": "x"}));
            m["context"] = json!({"message_id": ""});
            m
        }),
        ("biz_opaque_callback_data", {
            let mut m = msg("text", json!({"body": "x"}));
            m["biz_opaque_callback_data"] = json!("x".repeat(513));
            m
        }),
        ("unknown_field", {
            let mut m = msg("text", json!({"body": "x"}));
            m["unknown_field"] = json!(1);
            m
        }),
    ];
    for (field, body) in &bad {
        let (s, v) = env.send(body.clone()).await;
        assert_eq!((s, code(&v)), (400, 100), "{body} → {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{message:?} should name {field:?}");
        assert_eq!(v["error"]["error_data"]["messaging_product"], "whatsapp");
    }
    let rejections = env.graph.rejections();
    assert_eq!(rejections.len(), bad.len());
    assert!(rejections[0].starts_with(&format!("POST /{PNID}/messages: messaging_product")));
    assert!(env.graph.sends().is_empty());

    // Non-JSON body and unknown routes are rejections too.
    let resp = env
        .http
        .post(format!("{}/{PNID}/messages", env.base))
        .bearer_auth(&env.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let (s, v) = env.call("GET", &format!("/{PNID}/nonsense"), None).await;
    assert_eq!((s, code(&v)), (400, 100));
    assert_eq!(env.graph.rejections().len(), bad.len() + 2);
}

#[tokio::test]
async fn undeliverable_and_self_recipients() {
    let env = Env::new().await;
    let mut m = msg("text", json!({"body": "x"}));
    m["to"] = json!("15550009999");
    let (s, v) = env.send(m).await;
    assert_eq!((s, code(&v)), (400, 131_026));
    assert_eq!(v["error"]["message"], "(#131026) Message Undeliverable");
    let mut m = msg("text", json!({"body": "x"}));
    m["to"] = json!("+15550783881");
    let (_, v) = env.send(m).await;
    assert_eq!(code(&v), 131_021);
    assert!(env.graph.sends().is_empty());
    env.graph.assert_no_rejections();
}

#[tokio::test]
async fn queued_failures() {
    let env = Env::new().await;
    env.graph.fail_next(
        Failure::code(130_429)
            .retry_after(7)
            .on_path("/messages")
            .for_number(PNID)
            .times(2),
    );
    env.graph
        .fail_next(Failure::code(131_000).for_number(PNID2));
    assert_eq!(Failure::code(190).http_status, 401);
    assert_eq!(Failure::code(131_031).http_status, 403);
    assert_eq!(Failure::code(131_016).http_status, 503);
    assert_eq!(Failure::code(131_047).http_status, 400);

    // Path filter: a GET on the number is untouched.
    let (s, _) = env.call("GET", &format!("/{PNID}"), None).await;
    assert_eq!(s, 200);
    for _ in 0..2 {
        let resp = env
            .http
            .post(format!("{}/{PNID}/messages", env.base))
            .bearer_auth(&env.token)
            .json(&msg("text", json!({"body": "x"})))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "7");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(code(&v), 130_429);
        assert_eq!(v["error"]["message"], "(#130429) Rate limit hit");
    }
    let (s, _) = env.send(msg("text", json!({"body": "x"}))).await;
    assert_eq!(s, 200, "consumed after two");
    let other = FakeNumber::new(PNID2, WABA2, "").access_token;
    let (s, v) = env.call_as(&other, "GET", &format!("/{PNID2}"), None).await;
    assert_eq!((s, code(&v)), (500, 131_000));
    assert_eq!(env.graph.send_count(PNID), 1);
}

#[tokio::test]
async fn throughput_cap() {
    let env = Env::new().await;
    let mut n = FakeNumber::new(PNID, WABA, "15550783881");
    n.throughput_cap = Some(5);
    env.graph.add_number(n);
    let mut ok = 0;
    let mut limited = 0;
    for _ in 0..8 {
        let (s, v) = env.send(msg("text", json!({"body": "x"}))).await;
        match s {
            200 => ok += 1,
            _ => {
                assert_eq!((s, code(&v)), (400, 130_429));
                limited += 1;
            }
        }
    }
    assert_eq!((ok, limited), (5, 3));
    assert_eq!(
        env.graph.max_sends_in_window(PNID, Duration::from_secs(1)),
        5
    );
    assert_eq!(
        env.graph.max_sends_in_window(PNID, Duration::from_nanos(1)),
        1
    );
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let (s, _) = env.send(msg("text", json!({"body": "x"}))).await;
    assert_eq!(s, 200);
    assert_eq!(env.graph.send_count(PNID), 6);
    assert_eq!(
        env.graph.max_sends_in_window(PNID, Duration::from_secs(1)),
        5
    );
    assert_eq!(
        env.graph.max_sends_in_window(PNID, Duration::from_secs(10)),
        6
    );
}

#[tokio::test]
async fn template_lifecycle() {
    let env = Env::new().await;
    let path = format!("/{WABA}/message_templates");
    let create = json!({"name": "order_update", "language": "en_US", "category": "MARKETING",
        "components": [{"type": "HEADER", "format": "TEXT", "text": "Order"},
                       {"type": "BODY", "text": "Hi {{1}}, order {{2}}", "example": {"body_text": [["Ana", "42"]]}},
                       {"type": "FOOTER", "text": "Thanks"},
                       {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Stop"}]}]});
    let (s, v) = env.call("POST", &path, Some(create.clone())).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "PENDING");
    assert_eq!(v["category"], "MARKETING");
    let id = v["id"].as_str().unwrap().to_owned();

    let (s, v) = env.call("POST", &path, Some(create.clone())).await;
    assert_eq!((s, code(&v)), (400, 100));
    assert_eq!(v["error"]["error_subcode"], 2_388_023);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );

    for bad in [
        json!({"name": "Order-Update", "language": "en_US", "category": "MARKETING", "components": [{"type": "BODY", "text": "x"}]}),
        json!({"name": "x", "language": "en_US", "category": "PROMO", "components": [{"type": "BODY", "text": "x"}]}),
        json!({"name": "x", "language": "en_US", "category": "UTILITY", "components": [{"type": "FOOTER", "text": "x"}]}),
        json!({"name": "x", "category": "UTILITY", "components": [{"type": "BODY", "text": "x"}]}),
    ] {
        let (s, v) = env.call("POST", &path, Some(bad)).await;
        assert_eq!((s, code(&v)), (400, 100));
    }
    assert_eq!(env.graph.rejections().len(), 4);

    let tpl = |params: Vec<&str>, lang: &str| {
        let ps: Vec<Value> = params
            .iter()
            .map(|p| json!({"type": "text", "text": p}))
            .collect();
        msg(
            "template",
            json!({"name": "order_update", "language": {"code": lang},
            "components": [{"type": "body", "parameters": ps}]}),
        )
    };
    let (s, v) = env.send(tpl(vec!["Ana", "42"], "en_US")).await;
    assert_eq!(
        (s, code(&v)),
        (400, 132_001),
        "pending templates cannot be sent"
    );
    env.graph
        .set_template_status(WABA, "order_update", "APPROVED");
    assert_eq!(
        env.graph.template(WABA, "order_update").unwrap()["status"],
        "APPROVED"
    );
    let (s, v) = env.send(tpl(vec!["Ana", "42"], "en_US")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["messages"][0]["message_status"], "accepted");
    let (s, v) = env.send(tpl(vec!["Ana"], "en_US")).await;
    assert_eq!((s, code(&v)), (400, 132_000));
    assert_eq!(
        v["error"]["message"],
        "(#132000) Number of parameters does not match the expected number of params"
    );
    let (_, v) = env.send(tpl(vec!["Ana", "42"], "pt_BR")).await;
    assert_eq!(code(&v), 132_001);
    env.graph
        .set_template_status(WABA, "order_update", "PAUSED");
    let (_, v) = env.send(tpl(vec!["Ana", "42"], "en_US")).await;
    assert_eq!(code(&v), 132_015);
    env.graph
        .set_template_status(WABA, "order_update", "APPROVED");

    // Get with fields, edit, get again.
    let (s, v) = env
        .call("GET", &format!("/{id}?fields=name,status"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"id": id, "name": "order_update", "status": "APPROVED"})
    );
    let (s, v) = env
        .call(
            "POST",
            &format!("/{id}"),
            Some(json!({"components": [{"type": "BODY", "text": "Hi {{1}}"}]})),
        )
        .await;
    assert_eq!((s, v), (200, json!({"success": true})));
    let (s, _) = env.send(tpl(vec!["Ana"], "en_US")).await;
    assert_eq!(s, 200, "edited body takes one parameter");
    let (s, _) = env
        .call(
            "POST",
            &format!("/{id}"),
            Some(json!({"category": "UTILITY"})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, v) = env.call("GET", &format!("/{id}"), None).await;
    assert_eq!(v["category"], "UTILITY");
    assert_eq!(v["language"], "en_US");

    // Another WABA's token cannot see it.
    let other = FakeNumber::new(PNID2, WABA2, "").access_token;
    let (s, _) = env.call_as(&other, "GET", &format!("/{id}"), None).await;
    assert_eq!(s, 401);

    // Delete: unknown name → 100; by name and hsm_id → gone.
    let (s, v) = env.call("DELETE", &format!("{path}?name=nope"), None).await;
    assert_eq!((s, code(&v)), (400, 100));
    let (s, v) = env
        .call(
            "DELETE",
            &format!("{path}?name=order_update&hsm_id={id}"),
            None,
        )
        .await;
    assert_eq!((s, v), (200, json!({"success": true})));
    assert!(env.graph.template(WABA, "order_update").is_none());
    let (s, v) = env.call("GET", &format!("/{id}"), None).await;
    assert_eq!((s, v["error"]["error_subcode"].as_i64()), (400, Some(33)));
    assert_eq!(env.graph.rejections().len(), 4);
}

#[tokio::test]
async fn template_listing_pages() {
    let env = Env::new().await;
    let path = format!("/{WABA}/message_templates");
    for i in 0..30 {
        let (s, _) = env
            .call(
                "POST",
                &path,
                Some(json!({"name": format!("t_{i:02}"), "language": "en",
                "category": "UTILITY", "components": [{"type": "body", "text": "x"}]})),
            )
            .await;
        assert_eq!(s, 200);
    }
    env.graph.set_template_status(WABA, "t_03", "APPROVED");
    env.graph.set_template_status(WABA, "t_29", "APPROVED");

    let (s, v) = env.call("GET", &path, None).await;
    assert_eq!(s, 200);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 25);
    assert_eq!(data[0]["name"], "t_00");
    assert!(data[0]["components"].is_array());
    let next = v["paging"]["next"].as_str().unwrap();
    let after = v["paging"]["cursors"]["after"].as_str().unwrap().to_owned();
    assert!(v["paging"].get("previous").is_none());

    // Follow `next` verbatim.
    let v: Value = env
        .http
        .get(next)
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t_25", "t_26", "t_27", "t_28", "t_29"]);
    assert!(v["paging"].get("next").is_none());
    assert!(v["paging"]["previous"].is_string());

    let (_, v2) = env
        .call("GET", &format!("{path}?after={after}"), None)
        .await;
    assert_eq!(v2["data"], v["data"]);
    let before = v["paging"]["cursors"]["before"].as_str().unwrap();
    let (_, v3) = env
        .call(
            "GET",
            &format!("{path}?limit=2&before={before}&fields=name"),
            None,
        )
        .await;
    assert_eq!(
        v3["data"],
        json!([{"name": "t_23", "id": v3["data"][0]["id"]}, {"name": "t_24", "id": v3["data"][1]["id"]}])
    );

    let (_, v) = env
        .call(
            "GET",
            &format!("{path}?status=APPROVED&fields=name,status"),
            None,
        )
        .await;
    let names: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t_03", "t_29"]);
    let (_, v) = env.call("GET", &format!("{path}?name=t_1"), None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 10);

    let (s, v) = env.call("GET", &format!("{path}?fields=bogus"), None).await;
    assert_eq!((s, code(&v)), (400, 100));
    assert_eq!(env.graph.rejections().len(), 1);
}

#[tokio::test]
async fn phone_numbers_and_verification() {
    let env = Env::new().await;
    let mut second = FakeNumber::new("106540352240001", WABA, "15550783882");
    second.access_token = env.token.clone();
    env.graph.add_number(second);

    let (s, v) = env
        .call("GET", &format!("/{WABA}/phone_numbers"), None)
        .await;
    assert_eq!(s, 200);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(
        data[0],
        json!({"id": PNID, "display_phone_number": "15550783881", "verified_name": "Wharf Test",
               "code_verification_status": "NOT_VERIFIED", "quality_rating": "GREEN",
               "platform_type": "CLOUD_API", "throughput": {"level": "STANDARD"}})
    );
    let (_, v) = env
        .call(
            "GET",
            &format!("/{PNID}?fields=display_phone_number,quality_rating"),
            None,
        )
        .await;
    assert_eq!(
        v,
        json!({"id": PNID, "display_phone_number": "15550783881", "quality_rating": "GREEN"})
    );

    let (s, v) = env
        .call(
            "POST",
            &format!("/{PNID}/request_code?code_method=SMS&language=en_US"),
            None,
        )
        .await;
    assert_eq!((s, v), (200, json!({"success": true})));
    let (s, _) = env
        .call(
            "POST",
            &format!("/{PNID}/request_code"),
            Some(json!({"code_method": "VOICE", "language": "en_US"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = env
        .call(
            "POST",
            &format!("/{PNID}/request_code"),
            Some(json!({"code_method": "EMAIL", "language": "en_US"})),
        )
        .await;
    assert_eq!((s, code(&v)), (400, 100));

    let (s, v) = env
        .call("POST", &format!("/{PNID}/verify_code?code=000000"), None)
        .await;
    assert_eq!((s, code(&v)), (400, 136_025));
    assert_eq!(
        v["error"]["message"],
        "(#136025) Verification code is incorrect"
    );
    assert_eq!(env.graph.verification_status(PNID).unwrap(), "NOT_VERIFIED");
    let (s, _) = env
        .call(
            "POST",
            &format!("/{PNID}/verify_code"),
            Some(json!({"code": "123456"})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, v) = env.call("GET", &format!("/{PNID}"), None).await;
    assert_eq!(v["code_verification_status"], "VERIFIED");

    let (s, v) = env
        .call(
            "POST",
            &format!("/{PNID}/register"),
            Some(json!({"messaging_product": "whatsapp", "pin": "12345"})),
        )
        .await;
    assert_eq!((s, code(&v)), (400, 100));
    let (s, _) = env.call("POST", &format!("/{PNID}/deregister"), None).await;
    assert_eq!(s, 200);
    assert!(!env.graph.is_registered(PNID));
    let (s, _) = env
        .call(
            "POST",
            &format!("/{PNID}/register"),
            Some(json!({"messaging_product": "whatsapp", "pin": "123456"})),
        )
        .await;
    assert_eq!(s, 200);
    assert!(env.graph.is_registered(PNID));
    assert_eq!(env.graph.rejections().len(), 2);
}

#[tokio::test]
async fn business_profile() {
    let env = Env::new().await;
    let path = format!("/{PNID}/whatsapp_business_profile");
    let (s, v) = env
        .call("POST", &path, Some(json!({"messaging_product": "whatsapp", "about": "We sell boats",
            "address": "1 Dock St", "description": "Boats.", "email": "hi@boats.example",
            "websites": ["https://boats.example", "http://boats.example/shop"], "vertical": "RETAIL"})))
        .await;
    assert_eq!((s, v), (200, json!({"success": true})));
    let (s, v) = env
        .call("GET", &format!("{path}?fields=about,email,websites"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"data": [{"about": "We sell boats", "email": "hi@boats.example",
               "websites": ["https://boats.example", "http://boats.example/shop"],
               "messaging_product": "whatsapp"}]})
    );
    let (_, v) = env.call("GET", &path, None).await;
    assert_eq!(v["data"][0]["vertical"], "RETAIL");
    assert_eq!(v["data"][0]["address"], "1 Dock St");
    assert_eq!(env.graph.profile(PNID)["description"], "Boats.");

    let base = |k: &str, v: Value| {
        let mut b = json!({"messaging_product": "whatsapp"});
        b[k] = v;
        b
    };
    let bad = [
        json!({"about": "x"}),
        base("about", json!("")),
        base("about", json!("a".repeat(140))),
        base("address", json!("a".repeat(257))),
        base("description", json!("a".repeat(513))),
        base("email", json!("not-an-email")),
        base(
            "websites",
            json!(["https://a.io", "https://b.io", "https://c.io"]),
        ),
        base("websites", json!(["boats.example"])),
        base("vertical", json!("BOATS")),
        base("colour", json!("blue")),
    ];
    for b in &bad {
        let (s, v) = env.call("POST", &path, Some(b.clone())).await;
        assert_eq!((s, code(&v)), (400, 100), "{b}");
    }
    assert_eq!(env.graph.rejections().len(), bad.len());
    assert_eq!(env.graph.profile(PNID)["about"], "We sell boats");
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----wharfboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn media_upload_lookup_download_delete() {
    let env = Env::new().await;
    let upload = |parts: (String, Vec<u8>)| {
        env.http
            .post(format!("{}/{PNID}/media", env.base))
            .bearer_auth(&env.token)
            .header("content-type", parts.0)
            .body(parts.1)
            .send()
    };
    let png: &[u8] = b"\x89PNG\r\n\x1a\n--not-a-boundary\r\n";
    let resp = upload(multipart(&[
        ("messaging_product", None, b"whatsapp"),
        ("type", None, b"image/png"),
        ("file", Some("a.png"), png),
    ]))
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let id = v["id"].as_str().unwrap().to_owned();

    let (s, v) = env.call("GET", &format!("/{id}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(v["mime_type"], "image/png");
    assert_eq!(v["file_size"], png.len());
    assert_eq!(v["sha256"], hex::encode(Sha256::digest(png)));
    assert_eq!(v["messaging_product"], "whatsapp");
    let url = v["url"].as_str().unwrap();
    assert!(url.starts_with(&env.graph.base_url()));

    let resp = env.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 401, "download needs the bearer token");
    let resp = env
        .http
        .get(url)
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(&resp.bytes().await.unwrap()[..], png);
    let other = FakeNumber::new(PNID2, WABA2, "").access_token;
    let resp = env.http.get(url).bearer_auth(&other).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // Bad uploads.
    let rejected_before = env.graph.rejections().len();
    for parts in [
        multipart(&[("type", None, b"image/png"), ("file", Some("a.png"), png)]),
        multipart(&[
            ("messaging_product", None, b"whatsapp"),
            ("file", Some("a.png"), png),
        ]),
        multipart(&[
            ("messaging_product", None, b"whatsapp"),
            ("type", None, b"image/png"),
        ]),
        multipart(&[
            ("messaging_product", None, b"whatsapp"),
            ("type", None, b"image/gif"),
            ("file", Some("a.gif"), png),
        ]),
        ("application/json".into(), b"{}".to_vec()),
    ] {
        let resp = upload(parts).await.unwrap();
        assert_eq!(resp.status(), 400);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(code(&v), 100);
    }
    assert_eq!(env.graph.rejections().len(), rejected_before + 5);
    let big = vec![0u8; 5 * 1024 * 1024 + 1];
    let resp = upload(multipart(&[
        ("messaging_product", None, b"whatsapp"),
        ("type", None, b"image/jpeg"),
        ("file", Some("big.jpg"), &big),
    ]))
    .await
    .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code(&v), 131_053);
    let resp = upload(multipart(&[
        ("messaging_product", None, b"whatsapp"),
        ("type", None, b"application/pdf"),
        ("file", Some("big.pdf"), &big),
    ]))
    .await
    .unwrap();
    assert_eq!(resp.status(), 200, "documents may be up to 100 MB");

    let (s, v) = env.call("DELETE", &format!("/{id}"), None).await;
    assert_eq!((s, v), (200, json!({"success": true})));
    assert!(!env.graph.has_media(&id));
    let (s, v) = env.call("GET", &format!("/{id}"), None).await;
    assert_eq!((s, code(&v)), (400, 100));
    let resp = env
        .http
        .get(url)
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// A webhook receiver: records each body with its signature header.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Hit>>>);

/// A received body and its `X-Hub-Signature-256`.
type Hit = (Bytes, Option<String>);

impl Receiver {
    async fn start() -> (Self, String) {
        let rec = Receiver::default();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(rec.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (rec, url)
    }

    fn all(&self) -> Vec<Hit> {
        self.0.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.all().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.all()
    }
}

async fn receive(State(rec): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    assert_eq!(headers["content-type"], "application/json");
    let sig = headers
        .get("x-hub-signature-256")
        .map(|v| v.to_str().unwrap().to_owned());
    rec.0.lock().unwrap().push((body, sig));
    StatusCode::OK
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn verified(body: &Bytes, sig: &Option<String>, secret: &str) -> Value {
    assert_eq!(sig.as_deref(), Some(hmac_hex(secret, body).as_str()));
    serde_json::from_slice(body).unwrap()
}

#[tokio::test]
async fn mark_read_and_typing() {
    let env = Env::new().await;
    let (_rec, url) = Receiver::start().await;
    env.graph.set_webhook_url(&url);
    let (wamid, s) = env
        .graph
        .emit_inbound(
            PNID,
            "16505551234",
            "Sheena",
            json!({"text": {"body": "Hi"}}),
        )
        .await;
    assert_eq!(s, 200);
    let read = json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid});
    let (s, v) = env.send(read.clone()).await;
    assert_eq!((s, v), (200, json!({"success": true})));
    let mut typing = read.clone();
    typing["typing_indicator"] = json!({"type": "text"});
    let (s, _) = env.send(typing).await;
    assert_eq!(s, 200);

    let (s, v) = env
        .send(json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.UNKNOWN"}))
        .await;
    assert_eq!((s, code(&v)), (400, 131_009));
    assert!(
        env.graph.rejections().is_empty(),
        "131009 is a Graph error, not a malformed call"
    );
    let (s, v) = env
        .send(json!({"messaging_product": "whatsapp", "status": "delivered", "message_id": wamid}))
        .await;
    assert_eq!((s, code(&v)), (400, 100));
    assert_eq!(env.graph.rejections().len(), 1);
    assert!(env.graph.sends().is_empty(), "mark-read is not a send");
    assert_eq!(env.graph.requests().len(), 4);
}

#[tokio::test]
async fn emitted_webhooks_are_signed_and_shaped() {
    let env = Env::new().await;
    let (rec, url) = Receiver::start().await;
    env.graph.set_webhook_url(&url);
    let secret = FakeNumber::new(PNID, WABA, "").app_secret;

    // Inbound.
    let (wamid, s) = env
        .graph
        .emit_inbound(
            PNID,
            "+16505551234",
            "Sheena",
            json!({"type": "text", "text": {"body": "Hi"},
            "context": {"from": "15550783881", "id": "wamid.OUT"}}),
        )
        .await;
    assert_eq!(s, 200);
    let got = rec.wait_for(1).await;
    let v = verified(&got[0].0, &got[0].1, &secret);
    assert_eq!(v["object"], "whatsapp_business_account");
    assert_eq!(v["entry"][0]["id"], WABA);
    let change = &v["entry"][0]["changes"][0];
    assert_eq!(change["field"], "messages");
    let value = &change["value"];
    assert_eq!(value["messaging_product"], "whatsapp");
    assert_eq!(
        value["metadata"],
        json!({"display_phone_number": "15550783881", "phone_number_id": PNID})
    );
    assert_eq!(
        value["contacts"],
        json!([{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}])
    );
    let m = &value["messages"][0];
    assert_eq!(m["from"], "16505551234");
    assert_eq!(m["id"], wamid);
    assert_eq!(m["type"], "text");
    assert_eq!(m["context"]["id"], "wamid.OUT");
    assert!(m["timestamp"].as_str().unwrap().parse::<u64>().unwrap() > 1_700_000_000);

    // Auto statuses after a send, in order, with pricing on sent.
    env.graph.set_auto_statuses(true);
    let mut body = msg("text", json!({"body": "x"}));
    body["biz_opaque_callback_data"] = json!("cb-1");
    let started = Instant::now();
    let (s, v) = env.send(body).await;
    assert_eq!(s, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    let sent_id = v["messages"][0]["id"].as_str().unwrap().to_owned();
    let got = rec.wait_for(4).await;
    assert_eq!(got.len(), 4);
    let statuses: Vec<Value> = got[1..]
        .iter()
        .map(|(b, sig)| {
            verified(b, sig, &secret)["entry"][0]["changes"][0]["value"]["statuses"][0].clone()
        })
        .collect();
    let names: Vec<&str> = statuses
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sent", "delivered", "read"]);
    for s in &statuses {
        assert_eq!(s["id"], sent_id);
        assert_eq!(s["recipient_id"], "16505551234");
        assert_eq!(s["biz_opaque_callback_data"], "cb-1");
        assert!(s["timestamp"].is_string());
    }
    assert_eq!(statuses[0]["conversation"]["origin"]["type"], "service");
    assert_eq!(statuses[0]["pricing"]["billable"], true);
    assert_eq!(statuses[0]["pricing"]["category"], "service");
    assert!(statuses[2].get("pricing").is_none());
    env.graph.set_auto_statuses(false);

    // Failed status with errors.
    let errors = json!([{"code": 131047, "title": "Re-engagement message",
        "message": "Re-engagement message", "error_data": {"details": "24 hours have passed"}}]);
    let s = env
        .graph
        .emit_status(PNID, &sent_id, "failed", Some(errors.clone()))
        .await;
    assert_eq!(s, 200);
    let got = rec.wait_for(5).await;
    let v = verified(&got[4].0, &got[4].1, &secret);
    let st = &v["entry"][0]["changes"][0]["value"]["statuses"][0];
    assert_eq!(st["status"], "failed");
    assert_eq!(st["errors"], errors);

    // Template review.
    let tid = env.approved_template("promo", "Hello").await;
    env.graph.set_template_status(WABA, "promo", "PENDING");
    let s = env
        .graph
        .emit_template_status(
            WABA,
            &tid,
            "promo",
            "en_US",
            "REJECTED",
            Some("INVALID_FORMAT"),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        env.graph.template(WABA, "promo").unwrap()["status"],
        "REJECTED"
    );
    let got = rec.wait_for(6).await;
    let v = verified(&got[5].0, &got[5].1, &secret);
    assert_eq!(v["entry"][0]["id"], WABA);
    let change = &v["entry"][0]["changes"][0];
    assert_eq!(change["field"], "message_template_status_update");
    assert_eq!(
        change["value"],
        json!({"event": "REJECTED", "message_template_id": tid.parse::<u64>().unwrap(),
               "message_template_name": "promo", "message_template_language": "en_US",
               "reason": "INVALID_FORMAT"})
    );

    // Raw, unsigned and badly signed.
    let raw = br#"{"object":"whatsapp_business_account","entry":[]}"#.to_vec();
    assert_eq!(env.graph.sign(PNID, &raw), hmac_hex(&secret, &raw));
    env.graph.emit_raw(raw.clone(), None).await;
    env.graph
        .emit_raw(raw.clone(), Some("sha256=00".into()))
        .await;
    let got = rec.wait_for(8).await;
    assert_eq!(got[6], (Bytes::from(raw.clone()), None));
    assert_eq!(got[7].1.as_deref(), Some("sha256=00"));

    let emitted = env.graph.webhooks();
    assert_eq!(emitted.len(), 8);
    assert!(emitted.iter().all(|w| w.status == Some(200)));
}

#[tokio::test]
async fn latency_busy_time_and_shutdown() {
    let env = Env::new().await;
    env.graph.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    let (s, _) = env.send(msg("text", json!({"body": "x"}))).await;
    assert_eq!(s, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    let busy = env.graph.handler_busy_time();
    assert!(
        busy > Duration::ZERO && busy < Duration::from_millis(150),
        "{busy:?}"
    );

    let base = env.graph.base_url();
    let clone = env.graph.clone();
    drop(env);
    assert_eq!(clone.send_count(PNID), 1, "clones keep the fake alive");
    clone.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = Client::new();
    assert!(fresh.get(format!("{base}/{PNID}")).send().await.is_err());
}
