//! `GET /api/messages/{id}/media`: the file of a received media message, fetched and
//! decrypted on demand by the session's engine from the reference stored with the message.

use serde_json::json;
use wharf_core::{
    EngineError, MessageId,
    message::{Content, Direction},
};

use super::MessageService;
use crate::{ServiceError, services::Caller};

/// A media message's file.
#[derive(Debug)]
pub struct MediaFile {
    pub bytes: Vec<u8>,
    pub mime_type: String,
    /// The name to offer it under.
    pub file_name: String,
}

impl MessageService {
    /// The decrypted file of media message `id` of the caller's (404 for anyone else's).
    /// Engines that keep no media reference answer `unsupported_by_engine`.
    pub async fn media(&self, caller: &Caller, id: MessageId) -> Result<MediaFile, ServiceError> {
        let row = self.message(caller, id).await?;
        let Content::Media {
            media_id,
            mime_type,
            file_name,
            ..
        } = &row.content
        else {
            return Err(ServiceError::invalid(
                "id",
                format!("a {} message has no file", row.kind.as_str()),
            ));
        };
        let session = self.session_of(caller, row.session_id).await?;
        let engine = self.engines.get(session.engine)?;
        let Some(media_id) = media_id else {
            if row.direction == Direction::In {
                // The engine kept no way to fetch it (the emulator has no media servers).
                return Err(ServiceError::Engine(EngineError::Unsupported(
                    session.engine,
                )));
            }
            return Err(ServiceError::invalid(
                "id",
                "this message keeps no downloadable file (a sent file stays at the URL it was sent from)",
            ));
        };
        let (bytes, mime) = engine
            .decrypt_media(
                session.id,
                &json!({"media_id": media_id, "mimetype": mime_type}),
            )
            .await?;
        let file_name = file_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("{}{}", row.id, extension(&mime)));
        Ok(MediaFile {
            bytes,
            mime_type: mime,
            file_name,
        })
    }
}

/// A file name extension for common WhatsApp media types.
fn extension(mime: &str) -> &'static str {
    match mime.split(';').next().unwrap_or("").trim() {
        "image/jpeg" => ".jpg",
        "image/png" => ".png",
        "image/webp" => ".webp",
        "video/mp4" => ".mp4",
        "audio/ogg" => ".ogg",
        "audio/mpeg" => ".mp3",
        "audio/mp4" => ".m4a",
        "application/pdf" => ".pdf",
        _ => "",
    }
}
