//! Wharf's content model mapped to the Cloud API's send payloads
//! (`POST /{phone-number-id}/messages`).

use serde_json::{Map, Value, json};
use wharf_core::{
    EngineError, Jid, ProviderId,
    jid::JidServer,
    message::{Content, MessageKind, Outbound},
};

/// The body that sends `message`.
pub fn message(message: &Outbound) -> Result<Value, EngineError> {
    let to = recipient(&message.to)?;
    let (kind, payload) = content(&message.content)?;
    let mut body = Map::new();
    body.insert("messaging_product".into(), json!("whatsapp"));
    body.insert("recipient_type".into(), json!("individual"));
    body.insert("to".into(), json!(to));
    body.insert("type".into(), json!(kind));
    body.insert(kind.into(), payload);
    if let Some(quoted) = &message.quoted_provider_id
        && kind != "reaction"
    {
        body.insert("context".into(), json!({ "message_id": quoted }));
    }
    // Echoed in every status webhook: a status that beats the recording of the send still
    // finds its message.
    body.insert(
        "biz_opaque_callback_data".into(),
        json!(message.message_id.to_string()),
    );
    Ok(Value::Object(body))
}

/// A read mark for a received message; with `typing`, also a typing indicator.
pub fn mark_read(provider_id: &ProviderId, typing: bool) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": provider_id,
    });
    if typing {
        body["typing_indicator"] = json!({ "type": "text" });
    }
    body
}

/// The `to` of a send: the digits of a person's JID.
pub fn recipient(to: &Jid) -> Result<String, EngineError> {
    match to.server() {
        JidServer::User => Ok(to.user().to_owned()),
        _ => Err(EngineError::Permanent(format!(
            "the Cloud API only sends to people's numbers, not to {to}"
        ))),
    }
}

/// Whether a text holds a link worth previewing.
fn has_link(text: &str) -> bool {
    text.contains("https://") || text.contains("http://")
}

fn put(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        map.insert(key.into(), json!(v));
    }
}

/// The message `type` and its object.
fn content(content: &Content) -> Result<(&'static str, Value), EngineError> {
    Ok(match content {
        Content::Text { text } => {
            let mut t = json!({ "body": text });
            if has_link(text) {
                t["preview_url"] = json!(true);
            }
            ("text", t)
        }
        Content::Media {
            media,
            url,
            media_id,
            caption,
            file_name,
            ..
        } => {
            let kind = match media {
                MessageKind::Image => "image",
                MessageKind::Video => "video",
                MessageKind::Document => "document",
                MessageKind::Audio => "audio",
                MessageKind::Sticker => "sticker",
                other => {
                    return Err(EngineError::Permanent(format!(
                        "{} is not a media kind",
                        other.as_str()
                    )));
                }
            };
            let mut m = Map::new();
            match (url.is_empty(), media_id) {
                (false, _) => m.insert("link".into(), json!(url)),
                (true, Some(id)) => m.insert("id".into(), json!(id)),
                (true, None) => {
                    return Err(EngineError::Permanent(
                        "the media has neither a URL nor a media id".into(),
                    ));
                }
            };
            if matches!(kind, "image" | "video" | "document") {
                put(&mut m, "caption", caption);
            }
            if kind == "document" {
                put(&mut m, "filename", file_name);
            }
            (kind, Value::Object(m))
        }
        Content::Location {
            latitude,
            longitude,
            name,
            address,
        } => {
            let mut l = Map::new();
            l.insert("latitude".into(), json!(latitude));
            l.insert("longitude".into(), json!(longitude));
            put(&mut l, "name", name);
            put(&mut l, "address", address);
            ("location", Value::Object(l))
        }
        Content::Contact {
            full_name,
            phone_number,
            organization,
        } => {
            let full_name = full_name.trim();
            let (first, last) = match full_name.split_once(char::is_whitespace) {
                Some((f, l)) => (f, Some(l.trim())),
                None => (full_name, None),
            };
            let mut name = json!({ "formatted_name": full_name, "first_name": first });
            if let Some(last) = last.filter(|l| !l.is_empty()) {
                name["last_name"] = json!(last);
            }
            let digits: String = phone_number.chars().filter(char::is_ascii_digit).collect();
            let mut card = json!({
                "name": name,
                "phones": [{ "phone": phone_number, "type": "CELL", "wa_id": digits }],
            });
            if let Some(org) = organization {
                card["org"] = json!({ "company": org });
            }
            ("contacts", json!([card]))
        }
        Content::Reaction {
            target_provider_id,
            emoji,
            ..
        } => (
            "reaction",
            json!({ "message_id": target_provider_id, "emoji": emoji }),
        ),
        Content::Buttons {
            body,
            header,
            footer,
            buttons,
        } => {
            let buttons: Vec<Value> = buttons
                .iter()
                .map(|b| json!({"type": "reply", "reply": {"id": b.id, "title": b.title}}))
                .collect();
            let mut i = json!({
                "type": "button",
                "body": { "text": body },
                "action": { "buttons": buttons },
            });
            decorate(&mut i, header, footer);
            ("interactive", i)
        }
        Content::List {
            body,
            header,
            footer,
            button,
            sections,
        } => {
            let sections: Vec<Value> = sections
                .iter()
                .map(|s| {
                    let rows: Vec<Value> = s
                        .rows
                        .iter()
                        .map(|r| {
                            let mut row = json!({ "id": r.id, "title": r.title });
                            if let Some(d) = &r.description {
                                row["description"] = json!(d);
                            }
                            row
                        })
                        .collect();
                    let mut section = json!({ "rows": rows });
                    if let Some(t) = &s.title {
                        section["title"] = json!(t);
                    }
                    section
                })
                .collect();
            let mut i = json!({
                "type": "list",
                "body": { "text": body },
                "action": { "button": button, "sections": sections },
            });
            decorate(&mut i, header, footer);
            ("interactive", i)
        }
        Content::Template {
            name,
            language,
            components,
        } => {
            let mut t = json!({ "name": name, "language": { "code": language } });
            if !components.is_empty() {
                t["components"] = serde_json::to_value(components)
                    .map_err(|e| EngineError::Permanent(format!("template components: {e}")))?;
            }
            ("template", t)
        }
        other => {
            return Err(EngineError::Permanent(format!(
                "the Cloud API cannot send {} messages",
                other.kind().as_str()
            )));
        }
    })
}

fn decorate(interactive: &mut Value, header: &Option<String>, footer: &Option<String>) {
    if let Some(h) = header {
        interactive["header"] = json!({ "type": "text", "text": h });
    }
    if let Some(f) = footer {
        interactive["footer"] = json!({ "text": f });
    }
}

#[cfg(test)]
mod tests {
    use wharf_core::{MessageId, message::ReplyButton};

    use super::*;

    fn outbound(content: Content, quoted: Option<&str>) -> Outbound {
        Outbound {
            message_id: MessageId::generate(),
            provider_id: None,
            to: Jid::parse("15551234567@s.whatsapp.net").unwrap(),
            content,
            quoted_provider_id: quoted.map(ProviderId::from),
            attempt: 0,
        }
    }

    #[test]
    fn texts_preview_links_and_replies_carry_context() {
        let m = outbound(
            Content::Text {
                text: "See https://x.io".into(),
            },
            Some("wamid.IN"),
        );
        let body = message(&m).unwrap();
        assert_eq!(
            body,
            json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                   "to": "15551234567", "type": "text",
                   "text": {"body": "See https://x.io", "preview_url": true},
                   "context": {"message_id": "wamid.IN"},
                   "biz_opaque_callback_data": m.message_id.to_string()})
        );
        let plain = message(&outbound(Content::Text { text: "hi".into() }, None)).unwrap();
        assert_eq!(plain["text"], json!({"body": "hi"}));
        assert!(plain.get("context").is_none());
    }

    #[test]
    fn buttons_become_interactive_replies() {
        let m = outbound(
            Content::Buttons {
                body: "Pick".into(),
                header: None,
                footer: Some("f".into()),
                buttons: vec![ReplyButton {
                    id: "yes".into(),
                    title: "Yes".into(),
                }],
            },
            None,
        );
        assert_eq!(
            message(&m).unwrap()["interactive"],
            json!({"type": "button", "body": {"text": "Pick"}, "footer": {"text": "f"},
                   "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]}})
        );
    }

    #[test]
    fn groups_and_polls_are_refused() {
        let mut m = outbound(Content::Text { text: "hi".into() }, None);
        m.to = Jid::parse("120363000000000001@g.us").unwrap();
        assert!(matches!(message(&m), Err(EngineError::Permanent(_))));
        let poll = outbound(
            Content::Poll {
                question: "q".into(),
                options: vec!["a".into(), "b".into()],
                multi_select: false,
            },
            None,
        );
        assert!(matches!(message(&poll), Err(EngineError::Permanent(_))));
    }
}
