//! The body of `POST /api/send-message` (and of the emulator's inbound injection): every
//! message kind of the Wapio collection, parsed into Wharf's content model at the edge.

use serde::Deserialize;
use utoipa::ToSchema;
use wharf_core::{
    Jid, MessageId, Phone, ProviderId, SessionId,
    jid::JidServer,
    message::{Content, MAX_CAPTION_CHARS, MAX_TEXT_CHARS, MessageKind},
};

use super::interactive::{ButtonsBody, ListBody, TemplateBody};
use crate::{ServiceError, services::messages::SessionChoice};

/// A location pin.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationBody {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
}

/// A contact card.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    #[serde(rename = "fullName", alias = "full_name")]
    pub full_name: String,
    #[serde(rename = "phoneNumber", alias = "phone_number")]
    pub phone_number: String,
    pub organization: Option<String>,
}

/// A poll.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PollBody {
    pub question: String,
    pub options: Vec<String>,
    #[serde(default, rename = "multiSelect", alias = "multi_select")]
    pub multi_select: bool,
}

/// `POST /api/send-message`. Which fields apply depends on `kind` (which may be left out when
/// the body makes it obvious).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageBody {
    /// The session to send from; required with a PAT, implied by a session key.
    pub session_id: Option<String>,
    /// A phone number in any common format, or a JID (`…@s.whatsapp.net`, `…@g.us`, `…@lid`).
    pub to: Option<String>,
    /// A channel JID (`…@newsletter`), instead of `to`.
    pub channel_id: Option<String>,
    /// text, image, video, document, audio, sticker, location, contact, poll, reaction,
    /// buttons, list or template.
    pub kind: Option<String>,
    /// The text of a text message (up to 4,096 characters).
    pub text: Option<String>,
    #[serde(rename = "imageUrl", alias = "image_url")]
    pub image_url: Option<String>,
    #[serde(rename = "videoUrl", alias = "video_url")]
    pub video_url: Option<String>,
    #[serde(rename = "documentUrl", alias = "document_url")]
    pub document_url: Option<String>,
    #[serde(rename = "audioUrl", alias = "audio_url")]
    pub audio_url: Option<String>,
    #[serde(rename = "stickerUrl", alias = "sticker_url")]
    pub sticker_url: Option<String>,
    /// The media URL, for any media kind.
    pub url: Option<String>,
    /// Media caption (up to 1,024 characters).
    pub caption: Option<String>,
    #[serde(alias = "fileName")]
    pub file_name: Option<String>,
    #[serde(alias = "mimeType")]
    pub mime_type: Option<String>,
    /// View-once media.
    #[serde(rename = "viewOnce", alias = "view_once")]
    pub view_once: Option<bool>,
    pub location: Option<LocationBody>,
    pub contact: Option<ContactBody>,
    pub poll: Option<PollBody>,
    /// The message (`msg_…`) this one replies to.
    pub quoted_message_id: Option<String>,
    /// For reactions: the emoji ("" removes the reaction).
    pub emoji: Option<String>,
    /// For reactions: the message (`msg_…`) reacted to.
    pub message_id: Option<String>,
    /// Reply buttons (Cloud API).
    pub buttons: Option<ButtonsBody>,
    /// A list menu (Cloud API).
    pub list: Option<ListBody>,
    /// An approved template (Cloud API; the only kind allowed outside the 24-hour window).
    pub template: Option<TemplateBody>,
}

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(field, message)
}

/// A recipient: a phone in any common format or a JID.
pub fn parse_recipient(field: &str, text: &str) -> Result<Jid, ServiceError> {
    if text.contains('@') {
        return Jid::parse(text).map_err(|e| invalid(field, e.to_string()));
    }
    Phone::parse(text)
        .map(|p| Jid::from_phone(&p))
        .map_err(|e| invalid(field, format!("not a phone number or JID: {e}")))
}

fn check_url(field: &str, url: &str) -> Result<String, ServiceError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid(field, "must be an http:// or https:// URL"))?;
    if rest.split(['/', '?', '#']).next().unwrap_or("").is_empty()
        || url.chars().any(char::is_whitespace)
    {
        return Err(invalid(
            field,
            "must be an absolute URL with a host and no spaces",
        ));
    }
    Ok(url.to_owned())
}

fn bounded(field: &str, text: &str, max: usize, required: bool) -> Result<String, ServiceError> {
    let count = text.chars().count();
    if required && text.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if count > max {
        return Err(invalid(
            field,
            format!("must be at most {max} characters (got {count})"),
        ));
    }
    Ok(text.to_owned())
}

impl SendMessageBody {
    /// The media URLs of `content` (parsed from this body), each with the field that gave
    /// it, for the outbound policy's check.
    pub fn media_urls(&self, content: &Content) -> Vec<(String, String)> {
        use wharf_core::message::TemplateParameter as P;
        match content {
            Content::Media { media, url, .. } if !url.is_empty() => {
                let field = match (self.url.is_some(), media) {
                    (true, _) => "url",
                    (false, MessageKind::Image) => "imageUrl",
                    (false, MessageKind::Video) => "videoUrl",
                    (false, MessageKind::Document) => "documentUrl",
                    (false, MessageKind::Audio) => "audioUrl",
                    (false, _) => "stickerUrl",
                };
                vec![(field.to_owned(), url.clone())]
            }
            Content::Template { components, .. } => {
                let mut urls = Vec::new();
                for (i, c) in components.iter().enumerate() {
                    for (j, p) in c.parameters.iter().enumerate() {
                        let path = format!("template.components[{i}].parameters[{j}]");
                        match p {
                            P::Image { image } => {
                                urls.push((format!("{path}.image.link"), image.link.clone()))
                            }
                            P::Video { video } => {
                                urls.push((format!("{path}.video.link"), video.link.clone()))
                            }
                            P::Document { document } => {
                                urls.push((format!("{path}.document.link"), document.link.clone()))
                            }
                            _ => {}
                        }
                    }
                }
                urls
            }
            _ => Vec::new(),
        }
    }

    /// The kind asked for, or the one the fields make obvious.
    fn kind(&self) -> Result<MessageKind, ServiceError> {
        if let Some(kind) = &self.kind {
            return MessageKind::parse(kind)
                .filter(|k| MessageKind::SENDABLE.contains(k))
                .ok_or_else(|| {
                    let known: Vec<&str> =
                        MessageKind::SENDABLE.iter().map(|k| k.as_str()).collect();
                    invalid("kind", format!("must be one of {}", known.join(", ")))
                });
        }
        let inferred = [
            (self.emoji.is_some(), MessageKind::Reaction),
            (self.image_url.is_some(), MessageKind::Image),
            (self.video_url.is_some(), MessageKind::Video),
            (self.document_url.is_some(), MessageKind::Document),
            (self.audio_url.is_some(), MessageKind::Audio),
            (self.sticker_url.is_some(), MessageKind::Sticker),
            (self.location.is_some(), MessageKind::Location),
            (self.contact.is_some(), MessageKind::Contact),
            (self.poll.is_some(), MessageKind::Poll),
            (self.buttons.is_some(), MessageKind::Buttons),
            (self.list.is_some(), MessageKind::List),
            (self.template.is_some(), MessageKind::Template),
            (self.text.is_some(), MessageKind::Text),
        ];
        let found: Vec<MessageKind> = inferred
            .iter()
            .filter(|(present, _)| *present)
            .map(|(_, k)| *k)
            .collect();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(invalid(
                "kind",
                "required: the body does not say what kind of message this is",
            )),
            _ => Err(invalid(
                "kind",
                "required: the body has fields of several kinds",
            )),
        }
    }

    /// Refuses fields that do not belong to `kind`.
    fn only(&self, kind: MessageKind) -> Result<(), ServiceError> {
        let media = kind.is_media();
        let fields: [(&str, bool, bool); 17] = [
            ("text", self.text.is_some(), kind == MessageKind::Text),
            (
                "imageUrl",
                self.image_url.is_some(),
                kind == MessageKind::Image,
            ),
            (
                "videoUrl",
                self.video_url.is_some(),
                kind == MessageKind::Video,
            ),
            (
                "documentUrl",
                self.document_url.is_some(),
                kind == MessageKind::Document,
            ),
            (
                "audioUrl",
                self.audio_url.is_some(),
                kind == MessageKind::Audio,
            ),
            (
                "stickerUrl",
                self.sticker_url.is_some(),
                kind == MessageKind::Sticker,
            ),
            ("url", self.url.is_some(), media),
            (
                "caption",
                self.caption.is_some(),
                matches!(
                    kind,
                    MessageKind::Image | MessageKind::Video | MessageKind::Document
                ),
            ),
            (
                "file_name",
                self.file_name.is_some(),
                kind == MessageKind::Document,
            ),
            ("mime_type", self.mime_type.is_some(), media),
            (
                "viewOnce",
                self.view_once.is_some(),
                matches!(
                    kind,
                    MessageKind::Image | MessageKind::Video | MessageKind::Audio
                ),
            ),
            (
                "location",
                self.location.is_some(),
                kind == MessageKind::Location,
            ),
            (
                "contact",
                self.contact.is_some(),
                kind == MessageKind::Contact,
            ),
            ("poll", self.poll.is_some(), kind == MessageKind::Poll),
            (
                "buttons",
                self.buttons.is_some(),
                kind == MessageKind::Buttons,
            ),
            ("list", self.list.is_some(), kind == MessageKind::List),
            (
                "template",
                self.template.is_some(),
                kind == MessageKind::Template,
            ),
        ];
        for (name, present, allowed) in fields {
            if present && !allowed {
                return Err(invalid(
                    name,
                    format!("does not apply to {} messages", kind.as_str()),
                ));
            }
        }
        if kind != MessageKind::Reaction && (self.emoji.is_some() || self.message_id.is_some()) {
            let name = if self.emoji.is_some() {
                "emoji"
            } else {
                "message_id"
            };
            return Err(invalid(
                name,
                format!("does not apply to {} messages", kind.as_str()),
            ));
        }
        Ok(())
    }

    /// The content this body describes.
    pub fn content(&self) -> Result<Content, ServiceError> {
        let kind = self.kind()?;
        self.only(kind)?;
        Ok(match kind {
            MessageKind::Text => {
                let text = self
                    .text
                    .as_deref()
                    .ok_or_else(|| invalid("text", "required for text messages"))?;
                Content::Text {
                    text: bounded("text", text, MAX_TEXT_CHARS, true)?,
                }
            }
            MessageKind::Image
            | MessageKind::Video
            | MessageKind::Document
            | MessageKind::Audio
            | MessageKind::Sticker => {
                let (field, specific) = match kind {
                    MessageKind::Image => ("imageUrl", &self.image_url),
                    MessageKind::Video => ("videoUrl", &self.video_url),
                    MessageKind::Document => ("documentUrl", &self.document_url),
                    MessageKind::Audio => ("audioUrl", &self.audio_url),
                    _ => ("stickerUrl", &self.sticker_url),
                };
                let (field, url) = match (specific, &self.url) {
                    (Some(u), None) => (field, u),
                    (None, Some(u)) => ("url", u),
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            "url",
                            format!("give the URL once, in {field} or url"),
                        ));
                    }
                    (None, None) => {
                        return Err(invalid(
                            field,
                            format!("required for {} messages (or url)", kind.as_str()),
                        ));
                    }
                };
                Content::Media {
                    media: kind,
                    url: check_url(field, url)?,
                    media_id: None,
                    caption: self
                        .caption
                        .as_deref()
                        .map(|c| bounded("caption", c, MAX_CAPTION_CHARS, false))
                        .transpose()?,
                    file_name: self
                        .file_name
                        .as_deref()
                        .map(|f| bounded("file_name", f, 255, true))
                        .transpose()?,
                    mime_type: self.mime_type.as_deref().map(check_mime).transpose()?,
                    view_once: self.view_once.unwrap_or(false),
                }
            }
            MessageKind::Location => {
                let l = self
                    .location
                    .as_ref()
                    .ok_or_else(|| invalid("location", "required for location messages"))?;
                if !(l.latitude.is_finite() && (-90.0..=90.0).contains(&l.latitude)) {
                    return Err(invalid("location.latitude", "must be between -90 and 90"));
                }
                if !(l.longitude.is_finite() && (-180.0..=180.0).contains(&l.longitude)) {
                    return Err(invalid(
                        "location.longitude",
                        "must be between -180 and 180",
                    ));
                }
                Content::Location {
                    latitude: l.latitude,
                    longitude: l.longitude,
                    name: l
                        .name
                        .as_deref()
                        .map(|n| bounded("location.name", n, 1000, false))
                        .transpose()?,
                    address: l
                        .address
                        .as_deref()
                        .map(|a| bounded("location.address", a, 1000, false))
                        .transpose()?,
                }
            }
            MessageKind::Contact => {
                let c = self
                    .contact
                    .as_ref()
                    .ok_or_else(|| invalid("contact", "required for contact messages"))?;
                let phone = Phone::parse(&c.phone_number)
                    .map_err(|e| invalid("contact.phoneNumber", e.to_string()))?;
                Content::Contact {
                    full_name: bounded("contact.fullName", &c.full_name, 256, true)?,
                    phone_number: phone.e164().to_owned(),
                    organization: c
                        .organization
                        .as_deref()
                        .map(|o| bounded("contact.organization", o, 256, false))
                        .transpose()?,
                }
            }
            MessageKind::Poll => {
                let p = self
                    .poll
                    .as_ref()
                    .ok_or_else(|| invalid("poll", "required for poll messages"))?;
                let question = bounded("poll.question", &p.question, 255, true)?;
                if !(2..=12).contains(&p.options.len()) {
                    return Err(invalid(
                        "poll.options",
                        format!("must have 2 to 12 options (got {})", p.options.len()),
                    ));
                }
                let mut seen = std::collections::HashSet::new();
                for (i, o) in p.options.iter().enumerate() {
                    bounded(&format!("poll.options[{i}]"), o, 100, true)?;
                    if !seen.insert(o.trim().to_lowercase()) {
                        return Err(invalid(
                            &format!("poll.options[{i}]"),
                            "options must be different from each other",
                        ));
                    }
                }
                Content::Poll {
                    question,
                    options: p.options.clone(),
                    multi_select: p.multi_select,
                }
            }
            MessageKind::Reaction => {
                let target = self.message_id.as_deref().ok_or_else(|| {
                    invalid(
                        "message_id",
                        "required for reactions: the message reacted to",
                    )
                })?;
                let target: MessageId = target
                    .parse()
                    .map_err(|_| invalid("message_id", "must be a message id (msg_…)"))?;
                let emoji = self
                    .emoji
                    .as_deref()
                    .ok_or_else(|| invalid("emoji", "required for reactions (\"\" removes one)"))?;
                if !emoji.is_empty() && !wharf_core::message::is_one_emoji(emoji) {
                    return Err(invalid(
                        "emoji",
                        "must be one emoji, or \"\" to remove the reaction",
                    ));
                }
                Content::Reaction {
                    target: Some(target),
                    target_provider_id: ProviderId::default(),
                    emoji: emoji.to_owned(),
                }
            }
            MessageKind::Buttons => self
                .buttons
                .as_ref()
                .ok_or_else(|| invalid("buttons", "required for buttons messages"))?
                .content()?,
            MessageKind::List => self
                .list
                .as_ref()
                .ok_or_else(|| invalid("list", "required for list messages"))?
                .content()?,
            MessageKind::Template => self
                .template
                .as_ref()
                .ok_or_else(|| invalid("template", "required for template messages"))?
                .content()?,
            MessageKind::InteractiveReply | MessageKind::PollVote | MessageKind::Unsupported => {
                return Err(invalid("kind", "this kind of message cannot be sent"));
            }
        })
    }

    /// The recipient: `to`, or `channel_id` for channels.
    pub fn recipient(&self) -> Result<Jid, ServiceError> {
        match (&self.to, &self.channel_id) {
            (Some(_), Some(_)) => Err(invalid(
                "channel_id",
                "give either to or channel_id, not both",
            )),
            (Some(to), None) => parse_recipient("to", to),
            (None, Some(channel)) => {
                let jid = Jid::parse(channel).map_err(|e| invalid("channel_id", e.to_string()))?;
                if jid.server() != JidServer::Newsletter {
                    return Err(invalid(
                        "channel_id",
                        "must be a channel JID ending in @newsletter",
                    ));
                }
                Ok(jid)
            }
            (None, None) => Err(invalid("to", "required (or channel_id for a channel)")),
        }
    }

    /// The session named, if any.
    pub fn session(&self) -> Result<SessionChoice, ServiceError> {
        match self.session_id.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(SessionChoice::Implied),
            Some("sandbox") => Ok(SessionChoice::Sandbox),
            Some(raw) => raw
                .parse::<SessionId>()
                .map(SessionChoice::Named)
                .map_err(|_| invalid("session_id", "must be a session id (sess_…) or \"sandbox\"")),
        }
    }

    /// The replied-to message, if any.
    pub fn quoted(&self) -> Result<Option<MessageId>, ServiceError> {
        self.quoted_message_id
            .as_deref()
            .filter(|q| !q.is_empty())
            .map(|q| {
                q.parse()
                    .map_err(|_| invalid("quoted_message_id", "must be a message id (msg_…)"))
            })
            .transpose()
    }
}

fn check_mime(mime: &str) -> Result<String, ServiceError> {
    let ok = mime.split_once('/').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && mime.len() <= 255
            && !mime.chars().any(char::is_whitespace)
    });
    if ok {
        Ok(mime.to_owned())
    } else {
        Err(invalid("mime_type", "must look like type/subtype"))
    }
}
