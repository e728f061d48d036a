//! Conversions tested with the crate's real types.

use std::sync::Arc;

use whatsapp_rust::{
    chrono::{TimeZone, Utc},
    types::{
        events::{
            BatchOrigin, ConnectFailure, ConnectFailureReason, Connected, Disconnected,
            InboundMessage, LoggedOut, MessageBatch, PairSuccess, PairingQrCode,
            PairingQrCodesExhausted, StreamReplaced, TempBanReason, TemporaryBan,
        },
        message::MessageSource,
        presence::ReceiptType,
    },
    wacore::net::DisconnectReason,
};

use super::*;

fn wa(text: &str) -> WaJid {
    text.parse().unwrap()
}

fn j(text: &str) -> Jid {
    Jid::parse(text).unwrap()
}

fn upload() -> Uploaded {
    Uploaded {
        url: "https://mmg.whatsapp.net/x".into(),
        direct_path: "/v/t62/x".into(),
        media_key: vec![1; 32],
        file_sha256: vec![2; 32],
        file_enc_sha256: vec![3; 32],
        file_length: 1234,
        media_key_timestamp: 1_700_000_000,
    }
}

fn media(kind: MessageKind, mime: Option<&str>, view_once: bool) -> Content {
    Content::Media {
        media: kind,
        url: "https://example.com/f".into(),
        media_id: None,
        caption: Some("cap".into()),
        file_name: Some("f.pdf".into()),
        mime_type: mime.map(str::to_owned),
        view_once,
    }
}

const PEER: &str = "15559870001@s.whatsapp.net";

fn build(content: &Content, quote: Option<&Quote>) -> wa::Message {
    outbound_message(content, &j(PEER), quote, Some(upload()), 42).unwrap()
}

#[test]
fn texts_and_replies() {
    let text = Content::Text { text: "hi".into() };
    assert_eq!(build(&text, None).conversation.as_deref(), Some("hi"));
    let quote = Quote {
        id: "3EB0Q".into(),
        participant: Some(PEER.into()),
    };
    let reply = build(&text, Some(&quote));
    let ext = reply.extended_text_message.as_option().unwrap();
    assert_eq!(ext.text.as_deref(), Some("hi"));
    let ctx = ext.context_info.as_option().unwrap();
    assert_eq!(ctx.stanza_id.as_deref(), Some("3EB0Q"));
    assert_eq!(ctx.participant.as_deref(), Some(PEER));
    assert_eq!(reply.text_content(), Some("hi"));
}

#[test]
fn media_kinds_carry_the_upload() {
    let image = build(&media(MessageKind::Image, None, false), None);
    let i = image.image_message.as_option().unwrap();
    assert_eq!(i.direct_path.as_deref(), Some("/v/t62/x"));
    assert_eq!(i.media_key.as_deref(), Some(&[1u8; 32][..]));
    assert_eq!(i.file_length, Some(1234));
    assert_eq!(i.mimetype.as_deref(), Some("image/jpeg"));
    assert_eq!(i.caption.as_deref(), Some("cap"));
    assert_eq!(i.view_once, None);

    let once = build(&media(MessageKind::Image, Some("image/png"), true), None);
    assert!(once.is_view_once());
    assert_eq!(
        once.image_message.as_option().unwrap().mimetype.as_deref(),
        Some("image/png")
    );

    let video = build(&media(MessageKind::Video, None, false), None);
    assert_eq!(
        video.video_message.as_option().unwrap().mimetype.as_deref(),
        Some("video/mp4")
    );
    let doc = build(
        &media(MessageKind::Document, Some("application/pdf"), false),
        None,
    );
    let d = doc.document_message.as_option().unwrap();
    assert_eq!(d.file_name.as_deref(), Some("f.pdf"));
    assert_eq!(d.mimetype.as_deref(), Some("application/pdf"));

    let voice = build(&media(MessageKind::Audio, None, false), None);
    let v = voice.audio_message.as_option().unwrap();
    assert_eq!(
        (v.ptt, v.mimetype.as_deref()),
        (Some(true), Some("audio/ogg; codecs=opus"))
    );
    let song = build(&media(MessageKind::Audio, Some("audio/mpeg"), false), None);
    assert_eq!(song.audio_message.as_option().unwrap().ptt, Some(false));

    let sticker = build(&media(MessageKind::Sticker, None, false), None);
    assert_eq!(
        sticker
            .sticker_message
            .as_option()
            .unwrap()
            .mimetype
            .as_deref(),
        Some("image/webp")
    );

    // Media without its upload is an error, never an empty message.
    assert!(
        outbound_message(
            &media(MessageKind::Image, None, false),
            &j(PEER),
            None,
            None,
            0
        )
        .is_err()
    );
}

#[test]
fn location_contact_poll_and_reaction() {
    let loc = build(
        &Content::Location {
            latitude: 52.5,
            longitude: 13.4,
            name: Some("Office".into()),
            address: None,
        },
        None,
    );
    let l = loc.location_message.as_option().unwrap();
    assert_eq!(
        (l.degrees_latitude, l.degrees_longitude),
        (Some(52.5), Some(13.4))
    );
    assert_eq!(l.name.as_deref(), Some("Office"));

    let card = build(
        &Content::Contact {
            full_name: "Ann Lee".into(),
            phone_number: "+1 555 000 1111".into(),
            organization: Some("Acme".into()),
        },
        None,
    );
    let c = card.contact_message.as_option().unwrap();
    assert_eq!(c.display_name.as_deref(), Some("Ann Lee"));
    let vcard = c.vcard.as_deref().unwrap();
    assert!(
        vcard.contains("FN:Ann Lee")
            && vcard.contains("waid=15550001111")
            && vcard.contains("ORG:Acme;"),
        "{vcard}"
    );

    let single = build(
        &Content::Poll {
            question: "Lunch?".into(),
            options: vec!["Yes".into(), "No".into()],
            multi_select: false,
        },
        None,
    );
    let p = single.poll_creation_message_v3.as_option().unwrap();
    assert_eq!(p.name.as_deref(), Some("Lunch?"));
    assert_eq!(p.selectable_options_count, Some(1));
    let names: Vec<_> = p
        .options
        .iter()
        .filter_map(|o| o.option_name.clone())
        .collect();
    assert_eq!(names, ["Yes", "No"]);
    let multi = build(
        &Content::Poll {
            question: "Which?".into(),
            options: vec!["a".into(), "b".into(), "c".into()],
            multi_select: true,
        },
        None,
    );
    assert_eq!(
        multi
            .poll_creation_message
            .as_option()
            .unwrap()
            .selectable_options_count,
        Some(3)
    );

    let reaction = build(
        &Content::Reaction {
            target: None,
            target_provider_id: "3EB0T".into(),
            emoji: "👍".into(),
        },
        None,
    );
    let r = reaction.reaction_message.as_option().unwrap();
    assert_eq!(r.text.as_deref(), Some("👍"));
    assert_eq!(r.sender_timestamp_ms, Some(42));
    let key = r.key.as_option().unwrap();
    assert_eq!(
        (key.id.as_deref(), key.remote_jid.as_deref()),
        (Some("3EB0T"), Some(PEER))
    );

    let buttons = Content::Buttons {
        body: "b".into(),
        header: None,
        footer: None,
        buttons: vec![],
    };
    assert!(outbound_message(&buttons, &j(PEER), None, None, 0).is_err());
}

fn info(source: MessageSource, id: &str) -> MessageInfo {
    MessageInfo {
        source,
        id: id.into(),
        timestamp: Utc.timestamp_millis_opt(1_700_000_000_000).unwrap(),
        ..Default::default()
    }
}

/// A direct message from a LID-addressed contact who also gave their number.
fn lid_dm() -> MessageSource {
    MessageSource {
        chat: wa("123456789@lid"),
        sender: wa("123456789@lid"),
        sender_alt: Some(wa(PEER)),
        ..Default::default()
    }
}

fn text_msg(text: &str) -> wa::Message {
    wa::Message {
        conversation: Some(text.into()),
        ..Default::default()
    }
}

fn inbound(update: Option<EngineUpdate>) -> Inbound {
    match update {
        Some(EngineUpdate::Inbound(i)) => i,
        other => panic!("expected an inbound message, got {other:?}"),
    }
}

#[test]
fn inbound_messages_name_chat_and_sender_by_phone_and_lid() {
    let m = inbound(inbound_update(
        &text_msg("hello"),
        &info(lid_dm(), "3EB0IN"),
    ));
    assert_eq!(m.provider_id, "3EB0IN");
    assert_eq!(m.chat, j(PEER));
    assert_eq!(m.sender, j(PEER));
    assert_eq!(m.chat_lid, Some(j("123456789@lid")));
    assert_eq!(m.sender_lid, Some(j("123456789@lid")));
    assert_eq!(
        m.content,
        Content::Text {
            text: "hello".into()
        }
    );
    assert_eq!(m.sent_at, 1_700_000_000_000);

    // A phone-addressed direct message with a device suffix.
    let pn = MessageSource {
        chat: wa(PEER),
        sender: wa("15559870001:3@s.whatsapp.net"),
        sender_alt: Some(wa("123456789@lid")),
        ..Default::default()
    };
    let m = inbound(inbound_update(&text_msg("x"), &info(pn, "A")));
    assert_eq!((m.chat, m.sender), (j(PEER), j(PEER)));
    assert_eq!(m.sender_lid, Some(j("123456789@lid")));

    // A group message: the chat is the group, the sender its participant.
    let group = MessageSource {
        chat: wa("120363000000000001@g.us"),
        sender: wa("987654321@lid"),
        sender_alt: Some(wa("15550002222@s.whatsapp.net")),
        is_group: true,
        ..Default::default()
    };
    let m = inbound(inbound_update(&text_msg("g"), &info(group, "G")));
    assert_eq!(m.chat, j("120363000000000001@g.us"));
    assert_eq!(m.chat_lid, None);
    assert_eq!(m.sender, j("15550002222@s.whatsapp.net"));
    assert_eq!(m.sender_lid, Some(j("987654321@lid")));

    // Only a LID known: it names the chat.
    let bare = MessageSource {
        chat: wa("555@lid"),
        sender: wa("555@lid"),
        ..Default::default()
    };
    let m = inbound(inbound_update(&text_msg("x"), &info(bare, "B")));
    assert_eq!(
        (m.chat.clone(), m.chat_lid),
        (j("555@lid"), Some(j("555@lid")))
    );

    // Sent by this account from another device: not an inbound message.
    let own = MessageSource {
        is_from_me: true,
        ..lid_dm()
    };
    assert_eq!(inbound_update(&text_msg("mine"), &info(own, "O")), None);
}

#[test]
fn inbound_kinds() {
    let cases: Vec<(wa::Message, Content)> = vec![
        (
            wa::Message {
                image_message: MessageField::some(wa::message::ImageMessage {
                    caption: Some("pic".into()),
                    mimetype: Some("image/jpeg".into()),
                    view_once: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Content::Media {
                media: MessageKind::Image,
                url: String::new(),
                media_id: None,
                caption: Some("pic".into()),
                file_name: None,
                mime_type: Some("image/jpeg".into()),
                view_once: true,
            },
        ),
        (
            wa::Message {
                audio_message: MessageField::some(wa::message::AudioMessage {
                    mimetype: Some("audio/ogg; codecs=opus".into()),
                    ptt: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Content::Media {
                media: MessageKind::Audio,
                url: String::new(),
                media_id: None,
                caption: None,
                file_name: None,
                mime_type: Some("audio/ogg; codecs=opus".into()),
                view_once: false,
            },
        ),
        (
            wa::Message {
                document_message: MessageField::some(wa::message::DocumentMessage {
                    file_name: Some("a.pdf".into()),
                    mimetype: Some("application/pdf".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Content::Media {
                media: MessageKind::Document,
                url: String::new(),
                media_id: None,
                caption: None,
                file_name: Some("a.pdf".into()),
                mime_type: Some("application/pdf".into()),
                view_once: false,
            },
        ),
        (
            wa::Message {
                location_message: MessageField::some(wa::message::LocationMessage {
                    degrees_latitude: Some(1.5),
                    degrees_longitude: Some(-2.5),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Content::Location {
                latitude: 1.5,
                longitude: -2.5,
                name: None,
                address: None,
            },
        ),
        (
            outbound_message(
                &Content::Contact {
                    full_name: "Bo".into(),
                    phone_number: "+15550003333".into(),
                    organization: None,
                },
                &j(PEER),
                None,
                None,
                0,
            )
            .unwrap(),
            Content::Contact {
                full_name: "Bo".into(),
                phone_number: "+15550003333".into(),
                organization: None,
            },
        ),
        (
            outbound_message(
                &Content::Poll {
                    question: "Q".into(),
                    options: vec!["x".into(), "y".into()],
                    multi_select: true,
                },
                &j(PEER),
                None,
                None,
                0,
            )
            .unwrap(),
            Content::Poll {
                question: "Q".into(),
                options: vec!["x".into(), "y".into()],
                multi_select: true,
            },
        ),
        (
            wa::Message {
                reaction_message: MessageField::some(wa::message::ReactionMessage {
                    key: MessageField::some(wa::MessageKey {
                        id: Some("3EB0T".into()),
                        ..Default::default()
                    }),
                    text: Some("❤️".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Content::Reaction {
                target: None,
                target_provider_id: "3EB0T".into(),
                emoji: "❤️".into(),
            },
        ),
        (
            wa::Message {
                poll_update_message: MessageField::some(wa::message::PollUpdateMessage {
                    poll_creation_message_key: MessageField::some(wa::MessageKey {
                        id: Some("3EB0POLL".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Content::Unsupported {
                provider_type: "poll_vote".into(),
                detail: Some("3EB0POLL".into()),
            },
        ),
    ];
    for (message, expected) in cases {
        let m = inbound(inbound_update(&message, &info(lid_dm(), "K")));
        assert_eq!(m.content, expected);
    }

    // A quoted reply names what it quotes.
    let reply = outbound_message(
        &Content::Text { text: "re".into() },
        &j(PEER),
        Some(&Quote {
            id: "3EB0Q".into(),
            participant: None,
        }),
        None,
        0,
    )
    .unwrap();
    let m = inbound(inbound_update(&reply, &info(lid_dm(), "R")));
    assert_eq!(
        m.quoted_provider_id.as_ref().map(|q| q.as_str()),
        Some("3EB0Q")
    );
}

#[test]
fn inbound_edits_and_revokes() {
    use wa::message::protocol_message::Type;
    let protocol = |kind: Type, edited: Option<wa::Message>| wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(wa::MessageKey {
                id: Some("3EB0ORIG".into()),
                ..Default::default()
            }),
            r#type: Some(kind),
            edited_message: edited.map(MessageField::some).unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let edit = inbound_update(
        &protocol(Type::MESSAGE_EDIT, Some(text_msg("fixed"))),
        &info(lid_dm(), "E"),
    );
    assert_eq!(
        edit,
        Some(EngineUpdate::InboundEdited {
            chat: j(PEER),
            provider_id: "3EB0ORIG".into(),
            content: Content::Text {
                text: "fixed".into()
            },
            at: 1_700_000_000_000,
        })
    );
    let revoke = inbound_update(&protocol(Type::REVOKE, None), &info(lid_dm(), "V"));
    assert_eq!(
        revoke,
        Some(EngineUpdate::InboundRevoked {
            chat: j(PEER),
            provider_id: "3EB0ORIG".into(),
            at: 1_700_000_000_000,
        })
    );
    // Other protocol traffic is not a message.
    assert_eq!(
        inbound_update(
            &protocol(Type::EPHEMERAL_SETTING, None),
            &info(lid_dm(), "P")
        ),
        None
    );
}

fn receipt(kind: ReceiptType) -> Receipt {
    Receipt::builder()
        .source(lid_dm())
        .message_ids(vec!["A".into(), "B".into()])
        .timestamp(Utc.timestamp_millis_opt(5_000).unwrap())
        .r#type(kind)
        .offline(false)
        .build()
}

#[test]
fn receipts_move_sent_messages_forward_only_for_the_recipient() {
    for (kind, expected) in [
        (ReceiptType::Delivered, ReceiptKind::Delivered),
        (ReceiptType::Read, ReceiptKind::Read),
        (ReceiptType::Played, ReceiptKind::Played),
    ] {
        let updates = receipt_updates(&receipt(kind));
        assert_eq!(
            updates,
            ["A", "B"]
                .map(|id| EngineUpdate::Receipt {
                    provider_id: id.into(),
                    kind: expected,
                    at: 5_000
                })
                .to_vec()
        );
    }
    // The account's own devices, retries and downgrades say nothing of the recipient.
    for kind in [
        ReceiptType::ReadSelf,
        ReceiptType::PlayedSelf,
        ReceiptType::Sender,
        ReceiptType::Retry,
        ReceiptType::Sent,
    ] {
        assert!(receipt_updates(&receipt(kind)).is_empty());
    }
}

#[test]
fn client_events_become_port_events() {
    let own = wa("15551230001@s.whatsapp.net");
    let ev = |e: Event| port_event(&e, Some(&own));
    assert_eq!(
        ev(Event::PairingQrCode(
            PairingQrCode::builder()
                .code("2@abc".into())
                .timeout(Duration::from_secs(60))
                .build()
        )),
        Some(PortEvent::Qr {
            code: "2@abc".into(),
            ttl: Duration::from_secs(60)
        })
    );
    assert_eq!(
        ev(Event::PairingQrCodesExhausted(
            PairingQrCodesExhausted::builder()
                .disconnected(true)
                .build()
        )),
        Some(PortEvent::QrExhausted)
    );
    assert_eq!(
        ev(Event::PairingQrCodesExhausted(
            PairingQrCodesExhausted::builder()
                .disconnected(false)
                .build()
        )),
        None
    );
    assert_eq!(
        ev(Event::PairSuccess(
            PairSuccess::builder()
                .id(wa("15551230001:7@s.whatsapp.net"))
                .lid(wa("1234@lid"))
                .business_name(String::new())
                .platform("android".into())
                .build()
        )),
        Some(PortEvent::Paired {
            phone: Phone::parse("+15551230001").unwrap()
        })
    );
    assert_eq!(
        ev(Event::Connected(Connected::builder().build())),
        Some(PortEvent::Connected {
            phone: Some(Phone::parse("+15551230001").unwrap())
        })
    );
    assert!(matches!(
        ev(Event::Disconnected(
            Disconnected::builder()
                .reason(DisconnectReason::StreamEnded)
                .build()
        )),
        Some(PortEvent::Dropped { .. })
    ));
    assert!(matches!(
        ev(Event::LoggedOut(
            LoggedOut::builder()
                .on_connect(false)
                .reason(ConnectFailureReason::LoggedOut)
                .build()
        )),
        Some(PortEvent::LoggedOut { .. })
    ));
    assert_eq!(
        ev(Event::StreamReplaced(StreamReplaced::builder().build())),
        Some(PortEvent::StreamReplaced)
    );
    let ban = ev(Event::TemporaryBan(
        TemporaryBan::builder()
            .code(TempBanReason::SentToTooManyPeople)
            .expire(whatsapp_rust::chrono::Duration::seconds(3600))
            .build(),
    ));
    assert!(
        matches!(&ban, Some(PortEvent::TemporaryBan { expires_in, reason })
            if *expires_in == Duration::from_secs(3600) && reason.contains("101")),
        "{ban:?}"
    );
    assert_eq!(
        ev(Event::ConnectFailure(
            ConnectFailure::builder()
                .reason(ConnectFailureReason::ServiceUnavailable)
                .build()
        )),
        Some(PortEvent::ConnectFailure {
            code: 503,
            reason: "ServiceUnavailable".into(),
            retrying: true
        })
    );
    assert!(matches!(
        ev(Event::ConnectFailure(
            ConnectFailure::builder()
                .reason(ConnectFailureReason::ClientOutdated)
                .message("update".into())
                .build()
        )),
        Some(PortEvent::ConnectFailure {
            code: 405,
            retrying: false,
            ..
        })
    ));
    assert_eq!(
        ev(Event::Receipt(receipt(ReceiptType::Read)))
            .map(|e| matches!(e, PortEvent::Updates(u) if u.len() == 2)),
        Some(true)
    );
    assert_eq!(ev(Event::Receipt(receipt(ReceiptType::ReadSelf))), None);

    // Messages the hook committed are not repeated; the others (channel posts) are.
    let batch = |committed: bool| {
        Event::Messages(
            MessageBatch::builder()
                .messages(Arc::from(vec![
                    InboundMessage::builder()
                        .message(Arc::new(text_msg("post")))
                        .info(Arc::new(info(lid_dm(), "N")))
                        .build(),
                ]))
                .origin(BatchOrigin::Live)
                .hook_committed(committed)
                .build(),
        )
    };
    assert_eq!(ev(batch(true)), None);
    assert!(matches!(ev(batch(false)), Some(PortEvent::Updates(u)) if u.len() == 1));
}
