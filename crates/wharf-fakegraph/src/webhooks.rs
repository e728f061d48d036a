//! Webhooks the fake sends (statuses, inbound messages, template reviews), signed like Meta.

use std::{sync::Arc, time::Duration};

use axum::http::header;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{
    state::{Shared, State, digits, now_unix},
    types::{EmittedWebhook, FakeNumber},
};

/// The pause before each automatic status (sent, delivered, read).
const AUTO_GAP: Duration = Duration::from_millis(5);

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs `body` to the webhook URL; `None` when no URL is set or the transport failed.
pub(crate) async fn post(
    sh: &Shared,
    body: Vec<u8>,
    signature: Option<String>,
) -> Option<StatusCode> {
    let url = sh.lock().webhook_url.clone()?;
    let mut req = sh
        .client
        .post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "facebookexternalua");
    if let Some(sig) = &signature {
        req = req.header("X-Hub-Signature-256", sig);
    }
    let recorded = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = match req.body(body).send().await {
        Ok(resp) => {
            let status = resp.status();
            let _ = resp.bytes().await;
            Some(status)
        }
        Err(e) => {
            tracing::warn!(error = %e, "fake graph: webhook delivery failed");
            None
        }
    };
    sh.lock().webhooks.push(EmittedWebhook {
        body: recorded,
        signature,
        status: status.map(|s| s.as_u16()),
    });
    status
}

/// Serializes and signs a `messages`-field webhook about number `n`.
fn messages_webhook(n: &FakeNumber, value: Value) -> (Vec<u8>, String) {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({
        "display_phone_number": n.display_phone_number,
        "phone_number_id": n.phone_number_id,
    });
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": n.waba_id, "changes": [{"field": "messages", "value": value}]}],
    });
    let bytes = serde_json::to_vec(&body).expect("JSON values serialize");
    let sig = sign(&n.app_secret, &bytes);
    (bytes, sig)
}

/// A signed statuses webhook for `wamid` (recipient, pricing category and callback data come
/// from the recorded send when the fake knows it).
pub(crate) fn status_webhook(
    st: &State,
    pnid: Option<&str>,
    wamid: &str,
    status: &str,
    errors: Option<Value>,
) -> Option<(Vec<u8>, String)> {
    let meta = st.send_meta.get(wamid);
    let pnid = pnid.or(meta.map(|m| m.pnid.as_str()))?;
    let n = &st.numbers.get(pnid)?.cfg;
    let ts = now_unix();
    let mut s = json!({
        "id": wamid,
        "status": status,
        "timestamp": ts.to_string(),
        "recipient_id": meta.map(|m| m.recipient.as_str()).unwrap_or(""),
    });
    if let Some(m) = meta {
        if status == "sent" || status == "delivered" {
            let mut conversation = json!({"id": m.conversation, "origin": {"type": m.category}});
            if status == "sent" {
                conversation["expiration_timestamp"] = json!((ts + 86_400).to_string());
            }
            s["conversation"] = conversation;
            s["pricing"] =
                json!({"billable": true, "pricing_model": "CBP", "category": m.category});
        }
        if let Some(cb) = &m.callback {
            s["biz_opaque_callback_data"] = json!(cb);
        }
    }
    match errors {
        Some(Value::Array(list)) => s["errors"] = Value::Array(list),
        Some(Value::Null) | None if status == "failed" => {
            s["errors"] = json!([{
                "code": 131000,
                "title": "Something went wrong",
                "message": "Something went wrong",
                "error_data": {"details": "Message failed to send because of an unknown error."},
            }]);
        }
        Some(Value::Null) | None => {}
        Some(one) => s["errors"] = json!([one]),
    }
    Some(messages_webhook(n, json!({ "statuses": [s] })))
}

/// A signed inbound-message webhook; fills `from`, `id`, `timestamp` (and `type` when the
/// message holds exactly one known kind) and returns the message id.
pub(crate) fn inbound_webhook(
    sh: &Shared,
    st: &State,
    pnid: &str,
    from: &str,
    profile_name: &str,
    mut message: Value,
) -> Option<(String, Vec<u8>, String)> {
    let n = &st.numbers.get(pnid)?.cfg;
    let from = digits(from);
    let m = message.as_object_mut()?;
    m.entry("from").or_insert_with(|| json!(from));
    m.entry("timestamp")
        .or_insert_with(|| json!(now_unix().to_string()));
    if !m.contains_key("type") {
        const KINDS: [&str; 13] = [
            "text",
            "image",
            "video",
            "audio",
            "document",
            "sticker",
            "location",
            "contacts",
            "interactive",
            "reaction",
            "button",
            "order",
            "system",
        ];
        let found: Vec<&str> = KINDS
            .iter()
            .copied()
            .filter(|k| m.contains_key(*k))
            .collect();
        if let [only] = found[..] {
            m.insert("type".into(), json!(only));
        }
    }
    let id = match m.get("id").and_then(Value::as_str) {
        Some(id) => id.to_owned(),
        None => {
            let id = sh.wamid(&from, false);
            m.insert("id".into(), json!(id));
            id
        }
    };
    let value = json!({
        "contacts": [{"profile": {"name": profile_name}, "wa_id": from}],
        "messages": [message],
    });
    let (bytes, sig) = messages_webhook(n, value);
    Some((id, bytes, sig))
}

/// A signed `message_template_status_update` webhook.
pub(crate) fn template_webhook(
    st: &State,
    waba: &str,
    template_id: &str,
    name: &str,
    language: &str,
    event: &str,
    reason: Option<&str>,
) -> (Vec<u8>, String) {
    let id = template_id
        .parse::<u64>()
        .map(|n| json!(n))
        .unwrap_or_else(|_| json!(template_id));
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": waba,
            "time": now_unix(),
            "changes": [{
                "field": "message_template_status_update",
                "value": {
                    "event": event,
                    "message_template_id": id,
                    "message_template_name": name,
                    "message_template_language": language,
                    "reason": reason.unwrap_or("NONE"),
                },
            }],
        }],
    });
    let bytes = serde_json::to_vec(&body).expect("JSON values serialize");
    let sig = sign(st.waba_secret(waba).unwrap_or(""), &bytes);
    (bytes, sig)
}

/// Emits sent → delivered → read for an accepted send, in order, off the request path.
pub(crate) fn spawn_auto_statuses(sh: Arc<Shared>, wamid: String) {
    tokio::spawn(async move {
        for status in ["sent", "delivered", "read"] {
            tokio::time::sleep(AUTO_GAP).await;
            let Some((body, sig)) = status_webhook(&sh.lock(), None, &wamid, status, None) else {
                return;
            };
            post(&sh, body, Some(sig)).await;
        }
    });
}
