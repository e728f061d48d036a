//! Conversions between Wharf's messages and the crate's types: [`Content`] to `wa::Message`
//! for sending, and the crate's inbound messages, receipts and events to Wharf's updates.

use std::time::Duration;

use wharf_core::{
    EngineUpdate, Jid, Phone,
    message::{Content, Inbound, MessageKind, ReceiptKind},
};
use whatsapp_rust::{
    Jid as WaJid,
    proto_helpers::MessageExt,
    types::{
        events::{Event, Receipt},
        message::MessageInfo,
    },
    waproto::{buffa::MessageField, whatsapp as wa},
};

use super::{
    media::encode_reference,
    port::{MediaRef, PortEvent},
};

pub mod social;

/// A Wharf JID as the crate's.
pub fn to_wa_jid(jid: &Jid) -> Result<WaJid, String> {
    jid.to_string()
        .parse()
        .map_err(|e| format!("invalid JID {jid}: {e}"))
}

/// The crate's JID as Wharf's, without its device; `None` for servers Wharf does not model.
pub fn from_wa_jid(jid: &WaJid) -> Option<Jid> {
    Jid::parse(&jid.to_non_ad().to_string()).ok()
}

/// A file uploaded to WhatsApp's CDN (what the crate's upload answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub url: String,
    pub direct_path: String,
    pub media_key: Vec<u8>,
    pub file_sha256: Vec<u8>,
    pub file_enc_sha256: Vec<u8>,
    pub file_length: u64,
    pub media_key_timestamp: i64,
}

/// What a reply quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub id: String,
    /// Who wrote the quoted message (needed in groups).
    pub participant: Option<String>,
}

fn context(quote: Option<&Quote>) -> MessageField<wa::ContextInfo> {
    match quote {
        None => MessageField::default(),
        Some(q) => MessageField::some(wa::ContextInfo {
            stanza_id: Some(q.id.clone()),
            participant: q.participant.clone(),
            ..Default::default()
        }),
    }
}

/// A vCard for a contact card.
pub fn vcard(full_name: &str, phone: &str, organization: Option<&str>) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let org = organization
        .map(|o| format!("ORG:{o};\n"))
        .unwrap_or_default();
    format!(
        "BEGIN:VCARD\nVERSION:3.0\nFN:{full_name}\n{org}TEL;type=CELL;type=VOICE;waid={digits}:{phone}\nEND:VCARD"
    )
}

/// Builds the protocol message for `content`. Media needs its `upload`; a reaction targets
/// `chat`; `now_ms` stamps reactions.
pub fn outbound_message(
    content: &Content,
    chat: &Jid,
    quote: Option<&Quote>,
    upload: Option<Uploaded>,
    now_ms: i64,
) -> Result<wa::Message, String> {
    let ctx = context(quote);
    let message = match content {
        Content::Text { text } if ctx.is_set() => wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some(text.clone()),
                context_info: ctx,
                ..Default::default()
            }),
            ..Default::default()
        },
        Content::Text { text } => wa::Message {
            conversation: Some(text.clone()),
            ..Default::default()
        },
        Content::Media {
            media,
            caption,
            file_name,
            mime_type,
            view_once,
            ..
        } => {
            let up = upload.ok_or_else(|| "the media file was not uploaded".to_owned())?;
            media_message(*media, up, caption, file_name, mime_type, *view_once, ctx)?
        }
        Content::Location {
            latitude,
            longitude,
            name,
            address,
        } => wa::Message {
            location_message: MessageField::some(wa::message::LocationMessage {
                degrees_latitude: Some(*latitude),
                degrees_longitude: Some(*longitude),
                name: name.clone(),
                address: address.clone(),
                context_info: ctx,
                ..Default::default()
            }),
            ..Default::default()
        },
        Content::Contact {
            full_name,
            phone_number,
            organization,
        } => wa::Message {
            contact_message: MessageField::some(wa::message::ContactMessage {
                display_name: Some(full_name.clone()),
                vcard: Some(vcard(full_name, phone_number, organization.as_deref())),
                context_info: ctx,
                ..Default::default()
            }),
            ..Default::default()
        },
        Content::Poll {
            question,
            options,
            multi_select,
        } => {
            let poll = wa::message::PollCreationMessage {
                name: Some(question.clone()),
                options: options
                    .iter()
                    .map(|o| wa::message::poll_creation_message::Option {
                        option_name: Some(o.clone()),
                        ..Default::default()
                    })
                    .collect(),
                selectable_options_count: Some(if *multi_select {
                    u32::try_from(options.len()).unwrap_or(u32::MAX)
                } else {
                    1
                }),
                context_info: ctx,
                ..Default::default()
            };
            // WhatsApp Web sends single-choice polls as v3, multiple-choice as v1.
            if *multi_select {
                wa::Message {
                    poll_creation_message: MessageField::some(poll),
                    ..Default::default()
                }
            } else {
                wa::Message {
                    poll_creation_message_v3: MessageField::some(poll),
                    ..Default::default()
                }
            }
        }
        Content::Reaction {
            target_provider_id,
            emoji,
            ..
        } => wa::Message {
            reaction_message: MessageField::some(wa::message::ReactionMessage {
                key: MessageField::some(wa::MessageKey {
                    remote_jid: Some(chat.to_string()),
                    // Reactions answer what the other side wrote.
                    from_me: Some(false),
                    id: Some(target_provider_id.to_string()),
                    ..Default::default()
                }),
                text: Some(emoji.clone()),
                sender_timestamp_ms: Some(now_ms),
                ..Default::default()
            }),
            ..Default::default()
        },
        other => return Err(format!("{} messages", other.kind().as_str())),
    };
    Ok(message)
}

fn media_message(
    kind: MessageKind,
    up: Uploaded,
    caption: &Option<String>,
    file_name: &Option<String>,
    mime_type: &Option<String>,
    view_once: bool,
    ctx: MessageField<wa::ContextInfo>,
) -> Result<wa::Message, String> {
    let mime = |default: &str| Some(mime_type.clone().unwrap_or_else(|| default.to_owned()));
    let once = view_once.then_some(true);
    let m = match kind {
        MessageKind::Image => wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                url: Some(up.url),
                direct_path: Some(up.direct_path),
                media_key: Some(up.media_key),
                file_sha256: Some(up.file_sha256),
                file_enc_sha256: Some(up.file_enc_sha256),
                file_length: Some(up.file_length),
                media_key_timestamp: Some(up.media_key_timestamp),
                mimetype: mime("image/jpeg"),
                caption: caption.clone(),
                view_once: once,
                context_info: ctx,
                ..Default::default()
            }),
            ..Default::default()
        },
        MessageKind::Video => wa::Message {
            video_message: MessageField::some(wa::message::VideoMessage {
                url: Some(up.url),
                direct_path: Some(up.direct_path),
                media_key: Some(up.media_key),
                file_sha256: Some(up.file_sha256),
                file_enc_sha256: Some(up.file_enc_sha256),
                file_length: Some(up.file_length),
                media_key_timestamp: Some(up.media_key_timestamp),
                mimetype: mime("video/mp4"),
                caption: caption.clone(),
                view_once: once,
                context_info: ctx,
                ..Default::default()
            }),
            ..Default::default()
        },
        MessageKind::Document => wa::Message {
            document_message: MessageField::some(wa::message::DocumentMessage {
                url: Some(up.url),
                direct_path: Some(up.direct_path),
                media_key: Some(up.media_key),
                file_sha256: Some(up.file_sha256),
                file_enc_sha256: Some(up.file_enc_sha256),
                file_length: Some(up.file_length),
                media_key_timestamp: Some(up.media_key_timestamp),
                mimetype: mime("application/octet-stream"),
                file_name: file_name.clone(),
                title: file_name.clone(),
                caption: caption.clone(),
                context_info: ctx,
                ..Default::default()
            }),
            ..Default::default()
        },
        MessageKind::Audio => {
            // A voice note is Opus in Ogg; anything else is an audio file.
            let voice = mime_type
                .as_deref()
                .is_none_or(|m| m.starts_with("audio/ogg"));
            wa::Message {
                audio_message: MessageField::some(wa::message::AudioMessage {
                    url: Some(up.url),
                    direct_path: Some(up.direct_path),
                    media_key: Some(up.media_key),
                    file_sha256: Some(up.file_sha256),
                    file_enc_sha256: Some(up.file_enc_sha256),
                    file_length: Some(up.file_length),
                    media_key_timestamp: Some(up.media_key_timestamp),
                    mimetype: mime("audio/ogg; codecs=opus"),
                    ptt: Some(voice),
                    view_once: once,
                    context_info: ctx,
                    ..Default::default()
                }),
                ..Default::default()
            }
        }
        MessageKind::Sticker => wa::Message {
            sticker_message: MessageField::some(wa::message::StickerMessage {
                url: Some(up.url),
                direct_path: Some(up.direct_path),
                media_key: Some(up.media_key),
                file_sha256: Some(up.file_sha256),
                file_enc_sha256: Some(up.file_enc_sha256),
                file_length: Some(up.file_length),
                media_key_timestamp: Some(up.media_key_timestamp),
                mimetype: mime("image/webp"),
                context_info: ctx,
                ..Default::default()
            }),
            ..Default::default()
        },
        other => return Err(format!("{} is not a media kind", other.as_str())),
    };
    Ok(m)
}

/// The phone-number and linked-identity forms of a JID and its alternate.
fn both_forms(jid: &WaJid, alt: Option<&WaJid>) -> (Option<Jid>, Option<Jid>) {
    let lid = [Some(jid), alt]
        .into_iter()
        .flatten()
        .find(|j| j.is_lid())
        .and_then(from_wa_jid);
    let pn = [Some(jid), alt]
        .into_iter()
        .flatten()
        .find(|j| !j.is_lid())
        .and_then(from_wa_jid);
    (pn, lid)
}

/// The download reference of a received file (kept as its `media_id`), when the message
/// carries all of it.
fn reference(
    kind: MessageKind,
    direct_path: &Option<String>,
    media_key: &Option<Vec<u8>>,
    file_sha256: &Option<Vec<u8>>,
    file_enc_sha256: &Option<Vec<u8>>,
    file_length: Option<u64>,
) -> Option<String> {
    Some(encode_reference(&MediaRef {
        kind,
        direct_path: direct_path.clone().filter(|p| !p.is_empty())?,
        media_key: media_key.clone()?,
        file_sha256: file_sha256.clone()?,
        file_enc_sha256: file_enc_sha256.clone()?,
        file_length: file_length?,
    }))
}

/// What an inbound message says, as Wharf content (`None` for protocol traffic). A media
/// file's download reference becomes its `media_id`.
pub fn inbound_content(message: &wa::Message) -> Option<Content> {
    let m = message.get_base_message();
    let media = |media: MessageKind,
                 media_id: Option<String>,
                 caption: &Option<String>,
                 file_name: Option<&String>,
                 mime: &Option<String>,
                 view_once: bool| Content::Media {
        media,
        url: String::new(),
        media_id,
        caption: caption.clone(),
        file_name: file_name.cloned(),
        mime_type: mime.clone(),
        view_once,
    };
    macro_rules! reference {
        ($kind:expr, $x:expr) => {
            reference(
                $kind,
                &$x.direct_path,
                &$x.media_key,
                &$x.file_sha256,
                &$x.file_enc_sha256,
                $x.file_length,
            )
        };
    }
    let view_once = message.is_view_once();
    if let Some(text) = &m.conversation {
        return Some(Content::Text { text: text.clone() });
    }
    if let Some(t) = m.extended_text_message.as_option() {
        return Some(Content::Text {
            text: t.text.clone().unwrap_or_default(),
        });
    }
    if let Some(i) = m.image_message.as_option() {
        let once = view_once || i.view_once == Some(true);
        return Some(media(
            MessageKind::Image,
            reference!(MessageKind::Image, i),
            &i.caption,
            None,
            &i.mimetype,
            once,
        ));
    }
    if let Some(v) = m.video_message.as_option() {
        let once = view_once || v.view_once == Some(true);
        return Some(media(
            MessageKind::Video,
            reference!(MessageKind::Video, v),
            &v.caption,
            None,
            &v.mimetype,
            once,
        ));
    }
    if let Some(d) = m.document_message.as_option() {
        return Some(media(
            MessageKind::Document,
            reference!(MessageKind::Document, d),
            &d.caption,
            d.file_name.as_ref(),
            &d.mimetype,
            false,
        ));
    }
    if let Some(a) = m.audio_message.as_option() {
        let once = view_once || a.view_once == Some(true);
        let id = reference!(MessageKind::Audio, a);
        return Some(media(
            MessageKind::Audio,
            id,
            &None,
            None,
            &a.mimetype,
            once,
        ));
    }
    if let Some(s) = m.sticker_message.as_option() {
        let id = reference!(MessageKind::Sticker, s);
        return Some(media(
            MessageKind::Sticker,
            id,
            &None,
            None,
            &s.mimetype,
            false,
        ));
    }
    if let Some(l) = m.location_message.as_option() {
        return Some(Content::Location {
            latitude: l.degrees_latitude.unwrap_or_default(),
            longitude: l.degrees_longitude.unwrap_or_default(),
            name: l.name.clone(),
            address: l.address.clone(),
        });
    }
    if let Some(c) = m.contact_message.as_option() {
        let card = c.vcard.as_deref().unwrap_or_default();
        let phone = card
            .lines()
            .find(|l| l.starts_with("TEL"))
            .and_then(|l| l.rsplit(':').next())
            .unwrap_or_default()
            .trim()
            .to_owned();
        return Some(Content::Contact {
            full_name: c.display_name.clone().unwrap_or_default(),
            phone_number: phone,
            organization: card
                .lines()
                .find_map(|l| l.strip_prefix("ORG:"))
                .map(|o| o.trim_end_matches(';').to_owned()),
        });
    }
    let poll = m
        .poll_creation_message
        .as_option()
        .or(m.poll_creation_message_v2.as_option())
        .or(m.poll_creation_message_v3.as_option());
    if let Some(p) = poll {
        return Some(Content::Poll {
            question: p.name.clone().unwrap_or_default(),
            options: p
                .options
                .iter()
                .filter_map(|o| o.option_name.clone())
                .collect(),
            multi_select: p.selectable_options_count.unwrap_or(1) != 1,
        });
    }
    if let Some(r) = m.reaction_message.as_option() {
        return Some(Content::Reaction {
            target: None,
            target_provider_id: r
                .key
                .as_option()
                .and_then(|k| k.id.clone())
                .unwrap_or_default()
                .into(),
            emoji: r.text.clone().unwrap_or_default(),
        });
    }
    if let Some(v) = m.poll_update_message.as_option() {
        // The vote is encrypted with the poll's secret, which the client's store keeps: the
        // durability hook replaces this with the decrypted vote ([`decrypt_vote`]) when it can.
        return Some(Content::Unsupported {
            provider_type: "poll_vote".into(),
            detail: v
                .poll_creation_message_key
                .as_option()
                .and_then(|k| k.id.clone()),
        });
    }
    if m.protocol_message.is_set() || m.sender_key_distribution_message.is_set() {
        return None;
    }
    Some(Content::Unsupported {
        provider_type: "unknown".into(),
        detail: None,
    })
}

/// The options chosen in a poll vote, as SHA-256 hashes of their names, decrypted with the
/// poll's secret; `creator` wrote the poll and `voter` the vote (as the secret is keyed).
pub fn decrypt_vote(
    vote: &wa::message::PollUpdateMessage,
    secret: &[u8],
    creator: &WaJid,
    voter: &WaJid,
) -> Result<Vec<Vec<u8>>, String> {
    use whatsapp_rust::wacore::poll;
    let poll_id = vote
        .poll_creation_message_key
        .as_option()
        .and_then(|k| k.id.as_deref())
        .ok_or("the vote names no poll")?;
    let enc = vote.vote.as_option().ok_or("the vote carries no choice")?;
    let (Some(enc_payload), Some(enc_iv)) = (enc.enc_payload.as_deref(), enc.enc_iv.as_deref())
    else {
        return Err("the vote's choice is incomplete".into());
    };
    poll::decrypt_poll_vote_with_secret(
        poll::PollVoteCiphertext {
            enc_payload,
            enc_iv,
        },
        secret,
        poll_id,
        &creator.to_non_ad_string(),
        &voter.to_non_ad_string(),
    )
    .map_err(|e| format!("{e:#}"))
}

/// A decrypted vote in poll `poll_id`: the options by hash (hex), which the store names from
/// the poll it has.
pub fn vote_content(poll_id: &str, hashes: &[Vec<u8>]) -> Content {
    Content::PollVote {
        target: None,
        target_provider_id: poll_id.into(),
        options: Vec::new(),
        option_hashes: hashes.iter().map(hex::encode).collect(),
    }
}

fn quoted_id(message: &wa::Message) -> Option<String> {
    let m = message.get_base_message();
    let ctx = [
        m.extended_text_message.as_option().map(|x| &x.context_info),
        m.image_message.as_option().map(|x| &x.context_info),
        m.video_message.as_option().map(|x| &x.context_info),
        m.document_message.as_option().map(|x| &x.context_info),
        m.audio_message.as_option().map(|x| &x.context_info),
        m.sticker_message.as_option().map(|x| &x.context_info),
        m.location_message.as_option().map(|x| &x.context_info),
        m.contact_message.as_option().map(|x| &x.context_info),
    ];
    ctx.into_iter()
        .flatten()
        .find_map(|c| c.as_option().and_then(|c| c.stanza_id.clone()))
}

/// An inbound message as Wharf's update: a message (with its chat and sender by phone
/// number and by LID, when WhatsApp gave them), an edit or a revoke. `None` for protocol
/// traffic and for messages this session sent from another device.
pub fn inbound_update(message: &wa::Message, info: &MessageInfo) -> Option<EngineUpdate> {
    let src = &info.source;
    let at = info.timestamp.timestamp_millis();
    let (sender_pn, sender_lid) = both_forms(&src.sender, src.sender_alt.as_ref());
    let (chat, chat_lid) = if src.is_group || !src.chat.is_lid() && !src.chat.is_pn() {
        (from_wa_jid(&src.chat), None)
    } else {
        // A direct chat is the other person: their alternate is the sender's.
        both_forms(
            &src.chat,
            src.sender_alt.as_ref().or(src.recipient_alt.as_ref()),
        )
    };
    let chat = chat.or_else(|| chat_lid.clone())?;
    if let Some(p) = message.get_base_message().protocol_message.as_option() {
        use wa::message::protocol_message::Type;
        let target = p.key.as_option().and_then(|k| k.id.clone())?;
        return match p.r#type {
            Some(Type::REVOKE) => Some(EngineUpdate::InboundRevoked {
                chat,
                provider_id: target,
                at,
            }),
            Some(Type::MESSAGE_EDIT) => {
                let edited = p.edited_message.as_option()?;
                Some(EngineUpdate::InboundEdited {
                    chat,
                    provider_id: target,
                    content: inbound_content(edited)?,
                    at,
                })
            }
            _ => None,
        };
    }
    if src.is_from_me {
        return None;
    }
    let content = inbound_content(message)?;
    let sender = sender_pn.clone().or_else(|| sender_lid.clone())?;
    Some(EngineUpdate::Inbound(Inbound {
        provider_id: info.id.clone().into(),
        chat,
        sender,
        chat_lid,
        sender_lid,
        content,
        sent_at: at,
        quoted_provider_id: quoted_id(message).map(Into::into),
    }))
}

/// Receipts for messages this session sent; receipts from the account's own other devices
/// and delivery downgrades do not move a message forward.
pub fn receipt_updates(receipt: &Receipt) -> Vec<EngineUpdate> {
    use whatsapp_rust::types::presence::ReceiptType as R;
    let kind = match receipt.r#type {
        R::Delivered => ReceiptKind::Delivered,
        R::Read => ReceiptKind::Read,
        R::Played => ReceiptKind::Played,
        _ => return Vec::new(),
    };
    let at = receipt.timestamp.timestamp_millis();
    receipt
        .message_ids
        .iter()
        .map(|id| EngineUpdate::Receipt {
            provider_id: id.clone().into(),
            kind,
            at,
        })
        .collect()
}

fn phone_of(jid: &WaJid) -> Option<Phone> {
    from_wa_jid(jid).and_then(|j| j.phone())
}

/// The port event a client event means, if any. Inbound messages committed through the
/// durability hook are not repeated here; newsletter posts, which bypass the hook, are.
pub fn port_event(event: &Event, own_phone: Option<&WaJid>) -> Option<PortEvent> {
    use whatsapp_rust::types::events::ConnectFailureReason as F;
    Some(match event {
        Event::PairingQrCode(q) => PortEvent::Qr {
            code: q.code.clone(),
            ttl: q.timeout,
        },
        // With a pair code outstanding the socket stays up for it: not the end yet.
        Event::PairingQrCodesExhausted(e) if e.disconnected => PortEvent::QrExhausted,
        Event::PairingCode(c) => PortEvent::PairCode {
            code: c.code.clone(),
        },
        Event::PairSuccess(p) => PortEvent::Paired {
            phone: phone_of(&p.id)?,
        },
        Event::Connected(_) => PortEvent::Connected {
            phone: own_phone.and_then(phone_of),
        },
        Event::Disconnected(d) => PortEvent::Dropped {
            reason: format!("{:?}", d.reason),
        },
        Event::LoggedOut(l) => PortEvent::LoggedOut {
            reason: format!("{:?}", l.reason),
        },
        Event::StreamReplaced(_) => PortEvent::StreamReplaced,
        Event::TemporaryBan(b) => PortEvent::TemporaryBan {
            reason: b.code.to_string(),
            expires_in: Duration::from_secs(u64::try_from(b.expire.num_seconds()).unwrap_or(0)),
        },
        Event::ConnectFailure(f) => PortEvent::ConnectFailure {
            code: f.reason.code(),
            reason: f
                .message
                .clone()
                .unwrap_or_else(|| format!("{:?}", f.reason)),
            retrying: f.reason.should_reconnect(),
        },
        Event::ClientOutdated(_) => PortEvent::ConnectFailure {
            code: F::ClientOutdated.code(),
            reason: "WhatsApp says this client version is outdated".into(),
            retrying: false,
        },
        Event::Receipt(r) => {
            let updates = receipt_updates(r);
            if updates.is_empty() {
                return None;
            }
            PortEvent::Updates(updates)
        }
        Event::Messages(batch) if !batch.hook_committed => {
            let updates: Vec<_> = batch
                .messages
                .iter()
                .filter_map(|m| inbound_update(&m.message, &m.info))
                .collect();
            if updates.is_empty() {
                return None;
            }
            PortEvent::Updates(updates)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod media_tests;
#[cfg(test)]
mod tests;
