//! How an event's payload is stored. Most events are a message's status change (sent,
//! delivered, read, played, deleted), whose payload repeats the event row's own columns
//! (`message_id`, `session_id`) and its type (`status`) under long key names. Those are
//! stored as a short array of the other values, in a fixed order (the time as milliseconds),
//! and read back into the same object; any other payload (or one that does not match that shape
//! exactly) is stored as its JSON. Reading gives the same JSON either way, so the API does not
//! see the difference. (The payload of these types is always an object, so a stored array is
//! always the short form.)

use serde_json::{Map, Value};
use wharf_core::time::{parse_rfc3339, rfc3339};

/// The values kept, in their order in the array.
const KEPT: [&str; 6] = [
    "direction",
    "chat_jid",
    "kind",
    "provider_msg_id",
    "at",
    "chat_lid",
];

/// Where the time (`at`) is in [`KEPT`].
const AT: usize = 4;

/// The status a message event's type names, for the types whose payload has exactly the
/// message's base fields.
fn status_of(kind: &str) -> Option<&str> {
    match kind {
        "message.sent" | "message.delivered" | "message.read" | "message.played"
        | "message.deleted" => kind.strip_prefix("message."),
        _ => None,
    }
}

/// The text to store for `payload` of an event of type `kind` about `message` of `session`.
pub(crate) fn encode(
    kind: &str,
    message: Option<&str>,
    session: Option<&str>,
    payload: &Value,
) -> String {
    compact(kind, message, session, payload).unwrap_or_else(|| payload.to_string())
}

fn compact(
    kind: &str,
    message: Option<&str>,
    session: Option<&str>,
    payload: &Value,
) -> Option<String> {
    let status = status_of(kind)?;
    let object = payload.as_object()?;
    let derived = [
        ("message_id", message?),
        ("session_id", session?),
        ("status", status),
    ];
    if object.len() != KEPT.len() + derived.len()
        || derived
            .iter()
            .any(|(key, value)| object.get(*key).and_then(Value::as_str) != Some(value))
    {
        return None;
    }
    let mut values = KEPT
        .iter()
        .map(|key| object.get(*key).cloned())
        .collect::<Option<Vec<Value>>>()?;
    // The time is text (anything else is kept as it is), as milliseconds when they give back
    // exactly the same text.
    if !values[AT].is_string() {
        return None;
    }
    if let Some(at) = values[AT].as_str()
        && let Some(ms) = parse_rfc3339(at)
        && rfc3339(ms) == at
    {
        values[AT] = ms.into();
    }
    Some(Value::Array(values).to_string())
}

/// The payload stored as `text` for an event of type `kind` about `message` of `session`.
pub(crate) fn decode(
    kind: &str,
    message: Option<&str>,
    session: Option<&str>,
    text: &str,
) -> serde_json::Result<Value> {
    let value: Value = serde_json::from_str(text)?;
    let (Value::Array(values), Some(status), Some(message), Some(session)) =
        (&value, status_of(kind), message, session)
    else {
        return Ok(value);
    };
    if values.len() != KEPT.len() {
        return Ok(value);
    }
    let mut object = Map::new();
    for (key, v) in KEPT.iter().zip(values) {
        object.insert((*key).to_owned(), v.clone());
    }
    if let Some(ms) = values[AT].as_i64() {
        object.insert("at".into(), rfc3339(ms).into());
    }
    object.insert("message_id".into(), message.into());
    object.insert("session_id".into(), session.into());
    object.insert("status".into(), status.into());
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base(status: &str) -> Value {
        json!({
            "message_id": "msg_01", "session_id": "ses_01", "direction": "out",
            "chat_jid": "15550102030@s.whatsapp.net", "kind": "text", "status": status,
            "provider_msg_id": "3EB0AA", "at": "2026-12-01T09:30:00.120Z", "chat_lid": null,
        })
    }

    #[test]
    fn a_status_event_is_stored_short_and_read_back_the_same() {
        for kind in ["sent", "delivered", "read", "played", "deleted"] {
            let payload = base(kind);
            let event = format!("message.{kind}");
            let stored = encode(&event, Some("msg_01"), Some("ses_01"), &payload);
            assert!(stored.starts_with('['), "{stored}");
            assert!(stored.len() * 2 < payload.to_string().len(), "{stored}");
            let read = decode(&event, Some("msg_01"), Some("ses_01"), &stored).unwrap();
            assert_eq!(read, payload);
            assert_eq!(read.to_string(), payload.to_string());
        }
    }

    #[test]
    fn a_time_is_kept_as_it_was_written() {
        for at in [
            "2026-12-01T09:30:00Z",
            "2026-12-01T09:30:00.5Z",
            "2026-12-01T10:30:00+01:00",
        ] {
            let mut payload = base("read");
            payload["at"] = json!(at);
            let stored = encode("message.read", Some("msg_01"), Some("ses_01"), &payload);
            let read = decode("message.read", Some("msg_01"), Some("ses_01"), &stored).unwrap();
            assert_eq!(read, payload, "{stored}");
        }
    }

    #[test]
    fn anything_else_is_stored_as_it_is() {
        let mut extra = base("failed");
        extra["failure_reason"] = json!("no");
        let mut other_status = base("read");
        other_status["status"] = json!("delivered");
        let mut other_message = base("sent");
        other_message["message_id"] = json!("msg_02");
        for (kind, payload) in [
            ("message.failed", extra),
            ("message.read", other_status),
            ("message.sent", other_message),
            ("session.status", json!({"status": "connected"})),
            ("message.sent", json!(["not", "an", "object"])),
        ] {
            let stored = encode(kind, Some("msg_01"), Some("ses_01"), &payload);
            assert_eq!(stored, payload.to_string());
            if payload.is_object() {
                assert_eq!(
                    decode(kind, Some("msg_01"), Some("ses_01"), &stored).unwrap(),
                    payload
                );
            }
        }
        // Without the columns there is nothing to rebuild from.
        let payload = base("sent");
        let stored = encode("message.sent", None, Some("ses_01"), &payload);
        assert_eq!(stored, payload.to_string());
    }
}
