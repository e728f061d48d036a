//! Media: multipart upload with Meta's per-kind size limits, lookup, download and delete.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    error::GraphError,
    state::{Media, Shared},
    wire::parse_multipart,
};

const MB: usize = 1024 * 1024;

/// The media kind and size limit for a MIME type Meta accepts, or `None`.
fn limit(mime: &str) -> Option<(&'static str, usize)> {
    let base = mime.split(';').next().unwrap_or("").trim();
    Some(match base {
        "image/jpeg" | "image/png" => ("image", 5 * MB),
        "image/webp" => ("sticker", 500 * 1024),
        "video/mp4" | "video/3gpp" => ("video", 16 * MB),
        "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => ("audio", 16 * MB),
        "text/plain"
        | "application/pdf"
        | "application/msword"
        | "application/vnd.ms-excel"
        | "application/vnd.ms-powerpoint"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
            ("document", 100 * MB)
        }
        _ => return None,
    })
}

/// `POST /{pnid}/media` (multipart: `messaging_product`, `type`, `file`).
pub(crate) fn upload(
    sh: &Shared,
    pnid: &str,
    content_type: &str,
    body: &Bytes,
) -> Result<Value, GraphError> {
    if !content_type.starts_with("multipart/form-data") {
        return Err(GraphError::invalid(
            "media upload must be multipart/form-data",
        ));
    }
    let parts = parse_multipart(content_type, body).map_err(GraphError::invalid)?;
    let field = |name: &str| parts.iter().find(|p| p.name == name);
    let text = |name: &str| -> Result<String, GraphError> {
        let p = field(name).ok_or_else(|| GraphError::invalid(format!("{name} is required")))?;
        String::from_utf8(p.data.to_vec())
            .map_err(|_| GraphError::invalid(format!("{name} must be text")))
    };
    if let Some(p) = parts
        .iter()
        .find(|p| !["messaging_product", "type", "file"].contains(&p.name.as_str()))
    {
        return Err(GraphError::invalid(format!(
            "{} is not a valid parameter",
            p.name
        )));
    }
    if text("messaging_product")? != "whatsapp" {
        return Err(GraphError::invalid(
            "messaging_product must be \"whatsapp\"",
        ));
    }
    let mime = text("type")?;
    let file = field("file").ok_or_else(|| GraphError::invalid("file is required"))?;
    if file.filename.is_none() {
        return Err(GraphError::invalid(
            "file must be a file part (with a filename)",
        ));
    }
    let (kind, max) = limit(&mime).ok_or_else(|| {
        GraphError::invalid(format!("type {mime:?} is not a supported media type"))
    })?;
    if file.data.is_empty() {
        return Err(GraphError::invalid("file must not be empty"));
    }
    if file.data.len() > max {
        return Err(GraphError::code(
            131_053,
            format!(
                "{kind} file too large: {} bytes, the limit is {max} bytes",
                file.data.len()
            ),
        ));
    }
    let id = sh.next_id();
    let media = Media {
        owner: pnid.to_owned(),
        mime,
        sha256: hex::encode(Sha256::digest(&file.data)),
        bytes: file.data.clone(),
    };
    sh.lock().media.insert(id.clone(), media);
    Ok(json!({ "id": id }))
}

/// Stores bytes as if `pnid` had uploaded them; returns the media id.
pub(crate) fn add(sh: &Shared, pnid: &str, mime: &str, bytes: Vec<u8>) -> String {
    let id = sh.next_id();
    let media = Media {
        owner: pnid.to_owned(),
        mime: mime.to_owned(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        bytes: Bytes::from(bytes),
    };
    sh.lock().media.insert(id.clone(), media);
    id
}

/// `GET /{media-id}[?phone_number_id=…]`.
pub(crate) fn get(sh: &Shared, id: &str, q: &HashMap<String, String>) -> Result<Value, GraphError> {
    let st = sh.lock();
    let m = st
        .media
        .get(id)
        .filter(|m| q.get("phone_number_id").is_none_or(|p| *p == m.owner))
        .ok_or_else(|| GraphError::no_object("GET", id))?;
    Ok(json!({
        "url": format!("{}/media-download/{id}", sh.base_url),
        "mime_type": m.mime,
        "sha256": m.sha256,
        "file_size": m.bytes.len(),
        "id": id,
        "messaging_product": "whatsapp",
    }))
}

/// `DELETE /{media-id}`.
pub(crate) fn delete(sh: &Shared, id: &str) -> Result<Value, GraphError> {
    match sh.lock().media.remove(id) {
        Some(_) => Ok(json!({"success": true})),
        None => Err(GraphError::no_object("DELETE", id)),
    }
}

/// `GET /media-download/{media-id}`: the bytes, with their content type.
pub(crate) fn download(sh: &Shared, id: &str) -> Result<Response, GraphError> {
    let st = sh.lock();
    let m = st
        .media
        .get(id)
        .ok_or_else(|| GraphError::no_object("GET", id))?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, m.mime.clone())],
        m.bytes.clone(),
    )
        .into_response())
}
