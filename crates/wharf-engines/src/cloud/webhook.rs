//! Meta's webhooks: the `X-Hub-Signature-256` check, and payloads read into engine updates
//! (messages received, statuses of messages sent) and template review outcomes.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use wharf_core::{
    EngineUpdate, Jid, Phone,
    message::{Content, Inbound, MessageKind, ProviderId, ReportedStatus},
    time::now_millis,
};

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`. The
/// comparison takes the same time wherever the first difference is.
pub fn signature_matches(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// A template's review outcome (`field: message_template_status_update`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateUpdate {
    pub waba_id: String,
    pub template_id: String,
    pub name: String,
    pub language: String,
    /// APPROVED, REJECTED, PAUSED, …
    pub event: String,
    pub reason: Option<String>,
    /// When Meta says it happened (ms).
    pub at: i64,
}

/// What a webhook payload holds.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    /// Updates by phone number id, in the payload's order.
    pub numbers: Vec<(String, Vec<EngineUpdate>)>,
    pub templates: Vec<TemplateUpdate>,
}

impl Parsed {
    fn push(&mut self, pnid: &str, update: EngineUpdate) {
        match self.numbers.iter_mut().find(|(p, _)| p == pnid) {
            Some((_, list)) => list.push(update),
            None => self.numbers.push((pnid.to_owned(), vec![update])),
        }
    }

    /// Names a number the payload is about, even when nothing of it is recorded (a change
    /// with only `errors`, or with messages Wharf cannot read): its session is found, the
    /// signature checked, and the delivery acknowledged.
    fn about(&mut self, pnid: &str) {
        if !self.numbers.iter().any(|(p, _)| p == pnid) {
            self.numbers.push((pnid.to_owned(), Vec::new()));
        }
    }

    /// The phone number ids the payload is about (messages and statuses).
    pub fn phone_number_ids(&self) -> Vec<String> {
        self.numbers.iter().map(|(p, _)| p.clone()).collect()
    }
}

/// Reads a webhook payload. `Err` when it is not a WhatsApp Business Account webhook at all;
/// fields Wharf does not use (quality updates, account updates, …) are skipped.
pub fn parse(body: &Value) -> Result<Parsed, String> {
    if body["object"] != "whatsapp_business_account" {
        return Err("object must be \"whatsapp_business_account\"".into());
    }
    let entries = body["entry"].as_array().ok_or("entry must be an array")?;
    let mut out = Parsed::default();
    for entry in entries {
        let waba = text(&entry["id"]).unwrap_or_default();
        let entry_at = entry["time"].as_i64().and_then(|t| t.checked_mul(1000));
        for change in entry["changes"].as_array().into_iter().flatten() {
            let value = &change["value"];
            match change["field"].as_str() {
                Some("messages") => messages(&mut out, value),
                Some("message_template_status_update") => {
                    if let Some(t) = template(&waba, entry_at, value) {
                        out.templates.push(t);
                    }
                }
                other => tracing::debug!(field = ?other, "cloud webhook: field not used"),
            }
        }
    }
    Ok(out)
}

/// A string or a number, as text (Meta sends some ids as numbers).
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Unix seconds (as text or number) in ms; now when absent (or too large to be a time).
fn millis(v: &Value) -> i64 {
    text(v)
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|s| s.checked_mul(1000))
        .unwrap_or_else(now_millis)
}

fn messages(out: &mut Parsed, value: &Value) {
    let Some(pnid) = text(&value["metadata"]["phone_number_id"]) else {
        tracing::warn!("cloud webhook: a messages change without metadata.phone_number_id");
        return;
    };
    out.about(&pnid);
    for m in value["messages"].as_array().into_iter().flatten() {
        match inbound(m) {
            Some(i) => out.push(&pnid, EngineUpdate::Inbound(i)),
            None => tracing::warn!(message = %m, "cloud webhook: unreadable inbound message"),
        }
    }
    for s in value["statuses"].as_array().into_iter().flatten() {
        if let Some(update) = status(s) {
            out.push(&pnid, update);
        }
    }
    for e in value["errors"].as_array().into_iter().flatten() {
        tracing::warn!(phone_number_id = %pnid, error = %e, "cloud webhook: error reported by Meta");
    }
}

/// The reason a failed status gives: `Graph error CODE: title (details)`.
fn failure_reason(errors: &Value) -> String {
    let Some(e) = errors.as_array().and_then(|a| a.first()) else {
        return "WhatsApp reported the message as failed without a reason".into();
    };
    let code = e["code"].as_i64().map_or("?".into(), |c| c.to_string());
    let title = e["title"]
        .as_str()
        .or_else(|| e["message"].as_str())
        .unwrap_or("failed");
    match e["error_data"]["details"].as_str().filter(|d| *d != title) {
        Some(d) => format!("Graph error {code}: {title} ({d})"),
        None => format!("Graph error {code}: {title}"),
    }
}

fn status(s: &Value) -> Option<EngineUpdate> {
    let provider_id = text(&s["id"])?;
    let status = match s["status"].as_str()? {
        "sent" => ReportedStatus::Sent,
        "delivered" => ReportedStatus::Delivered,
        "read" => ReportedStatus::Read,
        "played" => ReportedStatus::Played,
        "failed" => ReportedStatus::Failed {
            reason: failure_reason(&s["errors"]),
        },
        other => {
            tracing::debug!(status = other, "cloud webhook: status not used");
            return None;
        }
    };
    Some(EngineUpdate::Status {
        provider_id: provider_id.into(),
        message_id: s["biz_opaque_callback_data"]
            .as_str()
            .and_then(|c| c.parse().ok()),
        status,
        at: millis(&s["timestamp"]),
    })
}

/// A person's chat from the digits Meta sends.
fn person(digits: &str) -> Option<Jid> {
    let digits: String = digits.chars().filter(char::is_ascii_digit).collect();
    Jid::parse(&format!("{digits}@s.whatsapp.net")).ok()
}

fn opt(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// An inbound message of any type; types Wharf does not model become `unsupported`.
fn inbound(m: &Value) -> Option<Inbound> {
    let provider_id = text(&m["id"])?;
    let sender = person(m["from"].as_str()?)?;
    let kind = m["type"].as_str().unwrap_or("unsupported");
    let body = &m[kind];
    let media = |media: MessageKind| Content::Media {
        media,
        url: String::new(),
        media_id: text(&body["id"]),
        caption: opt(&body["caption"]),
        file_name: opt(&body["filename"]),
        mime_type: opt(&body["mime_type"]),
        view_once: false,
    };
    let content = match kind {
        "text" => Content::Text {
            text: body["body"].as_str().unwrap_or_default().to_owned(),
        },
        "image" => media(MessageKind::Image),
        "video" => media(MessageKind::Video),
        "audio" => media(MessageKind::Audio),
        "document" => media(MessageKind::Document),
        "sticker" => media(MessageKind::Sticker),
        "location" => Content::Location {
            latitude: body["latitude"].as_f64().unwrap_or_default(),
            longitude: body["longitude"].as_f64().unwrap_or_default(),
            name: opt(&body["name"]),
            address: opt(&body["address"]),
        },
        "contacts" => {
            let c = &body[0];
            let phone = c["phones"][0]["phone"].as_str().unwrap_or_default();
            Content::Contact {
                full_name: c["name"]["formatted_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                phone_number: Phone::parse(phone)
                    .map(|p| p.e164().to_owned())
                    .unwrap_or_else(|_| phone.to_owned()),
                organization: opt(&c["org"]["company"]),
            }
        }
        "reaction" => Content::Reaction {
            target: None,
            target_provider_id: text(&body["message_id"]).unwrap_or_default().into(),
            emoji: body["emoji"].as_str().unwrap_or_default().to_owned(),
        },
        "interactive" => {
            let reply = if body["type"] == "list_reply" {
                &body["list_reply"]
            } else {
                &body["button_reply"]
            };
            match reply["title"].as_str() {
                Some(title) => Content::InteractiveReply {
                    id: opt(&reply["id"]),
                    title: title.to_owned(),
                    description: opt(&reply["description"]),
                },
                None => Content::Unsupported {
                    provider_type: format!(
                        "interactive.{}",
                        body["type"].as_str().unwrap_or("unknown")
                    ),
                    detail: None,
                },
            }
        }
        // A template's quick-reply button.
        "button" => Content::InteractiveReply {
            id: opt(&body["payload"]),
            title: body["text"].as_str().unwrap_or_default().to_owned(),
            description: None,
        },
        other => Content::Unsupported {
            provider_type: other.to_owned(),
            detail: opt(&m["errors"][0]["error_data"]["details"])
                .or_else(|| opt(&m["errors"][0]["title"]))
                .or_else(|| opt(&m["system"]["body"])),
        },
    };
    Some(Inbound {
        provider_id: provider_id.into(),
        chat: sender.clone(),
        sender,
        chat_lid: None,
        sender_lid: None,
        content,
        sent_at: millis(&m["timestamp"]),
        // A reply names its message in `context` (a forward's context has no id).
        quoted_provider_id: text(&m["context"]["id"]).map(ProviderId::from),
    })
}

fn template(waba: &str, entry_at: Option<i64>, v: &Value) -> Option<TemplateUpdate> {
    Some(TemplateUpdate {
        waba_id: waba.to_owned(),
        template_id: text(&v["message_template_id"])?,
        name: v["message_template_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        language: v["message_template_language"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        event: v["event"].as_str()?.to_owned(),
        reason: opt(&v["reason"]).filter(|r| r != "NONE"),
        at: entry_at.unwrap_or_else(now_millis),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn wrap(value: Value) -> Value {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [
            {"field": "messages", "value": value}]}]})
    }

    #[test]
    fn signatures_are_checked() {
        let body = br#"{"a":1}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signature_matches("s3cret", body, &good));
        assert!(!signature_matches("other", body, &good));
        assert!(!signature_matches("s3cret", b"{}", &good));
        assert!(!signature_matches("s3cret", body, "sha1=00"));
        assert!(!signature_matches("s3cret", body, "sha256=zz"));
    }

    #[test]
    fn inbound_types_are_read() {
        let payload = wrap(json!({
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106"},
            "messages": [
                {"from": "16505551234", "id": "wamid.A", "timestamp": "1749416383", "type": "text", "text": {"body": "Hi"}},
                {"from": "16505551234", "id": "wamid.B", "timestamp": "1749416384", "type": "interactive",
                 "interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "Row 1", "description": "d"}}},
                {"from": "16505551234", "id": "wamid.C", "timestamp": "1749416385", "type": "button",
                 "button": {"payload": "STOP", "text": "Stop"}},
                {"from": "16505551234", "id": "wamid.D", "timestamp": "1749416386", "type": "image",
                 "image": {"id": "555", "mime_type": "image/jpeg", "sha256": "x", "caption": "c"}},
                {"from": "16505551234", "id": "wamid.E", "timestamp": "1749416387", "type": "unsupported",
                 "errors": [{"code": 131051, "title": "Message type unknown", "error_data": {"details": "Message type is currently not supported."}}]},
            ],
        }));
        let parsed = parse(&payload).unwrap();
        let (pnid, updates) = &parsed.numbers[0];
        assert_eq!(pnid, "106");
        let contents: Vec<Content> = updates
            .iter()
            .map(|u| match u {
                EngineUpdate::Inbound(i) => i.content.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(contents[0], Content::Text { text: "Hi".into() });
        assert_eq!(
            contents[1],
            Content::InteractiveReply {
                id: Some("r1".into()),
                title: "Row 1".into(),
                description: Some("d".into())
            }
        );
        assert_eq!(contents[2].kind(), MessageKind::InteractiveReply);
        assert!(
            matches!(&contents[3], Content::Media { media_id: Some(id), caption: Some(_), .. } if id == "555")
        );
        assert_eq!(
            contents[4],
            Content::Unsupported {
                provider_type: "unsupported".into(),
                detail: Some("Message type is currently not supported.".into())
            }
        );
        let EngineUpdate::Inbound(first) = &updates[0] else {
            panic!()
        };
        assert_eq!(first.sent_at, 1_749_416_383_000);
        assert_eq!(first.chat.to_string(), "16505551234@s.whatsapp.net");
    }

    #[test]
    fn statuses_carry_the_echoed_id_and_failures_their_error() {
        let payload = wrap(json!({
            "metadata": {"phone_number_id": "106"},
            "statuses": [
                {"id": "wamid.X", "status": "failed", "timestamp": "1698266945", "recipient_id": "1",
                 "biz_opaque_callback_data": "msg_01jd8y2c4e6g8j0k2m4p6r8t0v",
                 "errors": [{"code": 131026, "title": "Message Undeliverable", "error_data": {"details": "not on WhatsApp"}}]},
                {"id": "wamid.Y", "status": "deleted", "timestamp": "1698266945"},
            ],
        }));
        let parsed = parse(&payload).unwrap();
        assert_eq!(parsed.numbers[0].1.len(), 1);
        let EngineUpdate::Status {
            provider_id,
            message_id,
            status,
            at,
        } = &parsed.numbers[0].1[0]
        else {
            panic!()
        };
        assert_eq!(provider_id, "wamid.X");
        assert!(message_id.is_some());
        assert_eq!(*at, 1_698_266_945_000);
        assert_eq!(
            *status,
            ReportedStatus::Failed {
                reason: "Graph error 131026: Message Undeliverable (not on WhatsApp)".into()
            }
        );
    }

    #[test]
    fn template_updates_are_read() {
        let payload = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "time": 1700000000,
            "changes": [{"field": "message_template_status_update", "value": {
                "event": "REJECTED", "message_template_id": 594425479261596_u64,
                "message_template_name": "order_update", "message_template_language": "en_US",
                "reason": "INVALID_FORMAT"}}]}]});
        let parsed = parse(&payload).unwrap();
        assert_eq!(
            parsed.templates,
            vec![TemplateUpdate {
                waba_id: "WABA".into(),
                template_id: "594425479261596".into(),
                name: "order_update".into(),
                language: "en_US".into(),
                event: "REJECTED".into(),
                reason: Some("INVALID_FORMAT".into()),
                at: 1_700_000_000_000,
            }]
        );
        assert!(parse(&json!({"object": "page"})).is_err());
    }
}
