//! Media on the web engine: files given by URL are fetched (through the server's outbound
//! policy, with a size limit) and uploaded when the message is dispatched, never at
//! acceptance, so the accepted message is durable before any download and a retry after a
//! crash fetches again under the same fixed message id. Received files are kept as a
//! reference (direct path, media key, hashes, length) in the message's `media_id`, which
//! [`decode_reference`] reads back to download and decrypt the file on demand.

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD},
};
use serde_json::{Value, json};
use wharf_core::{Capabilities, EngineError, message::MessageKind};

use super::{
    map_port_error,
    port::{FetchError, MediaFetch, MediaRef, PortMessage, WebPort},
};

/// What the web engine can do once it can fetch media URLs: every media kind and view-once
/// on top of [`super::WEB_CAPABILITIES`].
pub const WEB_MEDIA_CAPABILITIES: Capabilities = Capabilities {
    kinds: &[
        MessageKind::Text,
        MessageKind::Image,
        MessageKind::Video,
        MessageKind::Document,
        MessageKind::Audio,
        MessageKind::Sticker,
        MessageKind::Location,
        MessageKind::Contact,
        MessageKind::Poll,
        MessageKind::Reaction,
    ],
    view_once: true,
    ..super::WEB_CAPABILITIES
};

/// The prefix of a web media reference stored as a message's `media_id`.
const PREFIX: &str = "wa1.";

/// The largest file a media send downloads unless the operator says otherwise.
pub const DEFAULT_MEDIA_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// A received file's reference as the opaque text kept in `media_id`.
pub fn encode_reference(media: &MediaRef) -> String {
    let body = json!({
        "kind": media.kind.as_str(),
        "direct_path": media.direct_path,
        "media_key": STANDARD.encode(&media.media_key),
        "file_sha256": STANDARD.encode(&media.file_sha256),
        "file_enc_sha256": STANDARD.encode(&media.file_enc_sha256),
        "file_length": media.file_length,
    });
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(body.to_string()))
}

/// Reads a `media_id` written by [`encode_reference`].
pub fn decode_token(token: &str) -> Result<MediaRef, String> {
    let bad = || "media_id is not a WhatsApp Web media reference".to_owned();
    let body = token.strip_prefix(PREFIX).ok_or_else(bad)?;
    let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    from_fields(&value)
}

/// A media reference as `/api/decrypt-media` takes it: `{"media_id"}` as stored with a
/// received message, or the media object of a WhatsApp message (`directPath`, `mediaKey`,
/// `fileSha256`, `fileEncSha256`, `fileLength`, `mediaType` or `type`, base64 fields,
/// snake_case also accepted), possibly inside `{"message": …}`.
pub fn decode_reference(reference: &Value) -> Result<(MediaRef, Option<String>), String> {
    let reference = match reference.get("message") {
        Some(inner) if inner.is_object() => inner,
        _ => reference,
    };
    let mime = ["mimetype", "mime_type", "mimeType"]
        .iter()
        .find_map(|k| reference.get(*k).and_then(Value::as_str))
        .map(str::to_owned);
    if let Some(token) = reference.get("media_id").and_then(Value::as_str) {
        return Ok((decode_token(token)?, mime));
    }
    Ok((from_fields(reference)?, mime))
}

fn field<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| v.get(*n))
        .filter(|v| !v.is_null())
}

fn from_fields(v: &Value) -> Result<MediaRef, String> {
    let bytes = |names: &[&str]| -> Result<Vec<u8>, String> {
        let text = field(v, names)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{} is required (base64)", names[0]))?;
        STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE.decode(text))
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| format!("{} must be base64", names[0]))
    };
    let kind_text = field(v, &["kind", "mediaType", "media_type", "type"])
        .and_then(Value::as_str)
        .ok_or("mediaType is required (image, video, audio, document or sticker)")?;
    let kind = match kind_text {
        "ptt" | "voice" => MessageKind::Audio,
        other => MessageKind::parse(other)
            .filter(|k| k.is_media())
            .ok_or_else(|| {
                format!("mediaType {other} is not image, video, audio, document or sticker")
            })?,
    };
    let direct_path = field(v, &["direct_path", "directPath"])
        .and_then(Value::as_str)
        .filter(|p| p.starts_with('/'))
        .ok_or("directPath is required (a path starting with /)")?
        .to_owned();
    let file_length = match field(v, &["file_length", "fileLength"]) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or("fileLength is required (a number of bytes)")?;
    let media_key = bytes(&["media_key", "mediaKey"])?;
    if media_key.len() != 32 {
        return Err("mediaKey must be 32 bytes".into());
    }
    Ok(MediaRef {
        kind,
        direct_path,
        media_key,
        file_sha256: bytes(&["file_sha256", "fileSha256"])?,
        file_enc_sha256: bytes(&["file_enc_sha256", "fileEncSha256"])?,
        file_length,
    })
}

/// The MIME type of a file of `kind` when nothing better is known.
pub fn default_mime(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Image => "image/jpeg",
        MessageKind::Video => "video/mp4",
        MessageKind::Audio => "audio/ogg; codecs=opus",
        MessageKind::Sticker => "image/webp",
        _ => "application/octet-stream",
    }
}

/// Maps a fetch failure: the URL's own faults are permanent, network trouble is not.
fn map_fetch_error(url_field: &str, e: FetchError) -> EngineError {
    match e {
        FetchError::Transient(why) => {
            EngineError::Transient(format!("downloading the {url_field}: {why}"))
        }
        other => EngineError::Permanent(format!("the {url_field} could not be used: {other}")),
    }
}

/// Fetches the file of a media message, uploads it and sends the message with its fixed id.
pub(super) async fn send(
    fetch: &dyn MediaFetch,
    limit: u64,
    port: &dyn WebPort,
    message: &PortMessage,
) -> Result<(), EngineError> {
    let wharf_core::message::Content::Media {
        media,
        url,
        mime_type,
        ..
    } = &message.content
    else {
        return Err(EngineError::Permanent("not a media message".into()));
    };
    if url.is_empty() {
        return Err(EngineError::Permanent(
            "the web engine sends media given by URL only".into(),
        ));
    }
    let fetched = fetch
        .fetch(url, limit)
        .await
        .map_err(|e| map_fetch_error("media URL", e))?;
    if fetched.bytes.is_empty() {
        return Err(EngineError::Permanent(
            "the media URL answered an empty file".into(),
        ));
    }
    let mut message = message.clone();
    if mime_type.is_none()
        && let (Some(served), wharf_core::message::Content::Media { mime_type, .. }) =
            (fetched.mime_type, &mut message.content)
    {
        // The type the server answered beats a guess from the kind.
        let served = served.trim().to_owned();
        if !served.is_empty() && !served.starts_with("application/octet-stream") {
            *mime_type = Some(served);
        }
    }
    let uploaded = port
        .upload(*media, fetched.bytes)
        .await
        .map_err(map_port_error)?;
    port.send_media(&message, &uploaded)
        .await
        .map_err(map_port_error)
}

#[cfg(test)]
mod tests;
