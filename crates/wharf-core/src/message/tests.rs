//! The message model's rules.

#[test]
fn one_emoji_is_a_sequence_not_text() {
    for yes in [
        "👍",
        "1️⃣",
        "1⃣",
        "#️⃣",
        "*️⃣",
        "❤️",
        "👍🏽",
        "👨‍👩‍👧",
        "🏳️‍🌈",
        "🇵🇹",
        "©️",
        "™",
        "🏴\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}",
    ] {
        assert!(super::is_one_emoji(yes), "{yes}");
    }
    for no in [
        "",
        "a",
        "1",
        "ok",
        "é",
        "👍👍",
        "👍 ",
        "👍a",
        "1⃣x",
        "🇵",
        "\u{200D}",
        "👨‍",
        "❤️‍",
    ] {
        assert!(!super::is_one_emoji(no), "{no:?}");
    }
}

use super::*;

#[test]
fn provider_ids_are_whatsapp_style_unique_and_ordered_by_time() {
    let first = new_provider_id();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let ids: Vec<ProviderId> = (0..1000).map(|_| new_provider_id()).collect();
    for id in &ids {
        assert_eq!(id.as_str().len(), 32, "{id}");
        assert!(id.as_str().starts_with("3EB0"), "{id}");
        assert!(
            id.as_str()[4..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
            "{id}"
        );
        assert!(
            *id > first,
            "a later id sorts after an earlier one: {id} vs {first}"
        );
    }
    let unique: std::collections::HashSet<&ProviderId> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "ids made in the same millisecond differ"
    );
}

#[test]
fn every_kind_but_the_arriving_ones_can_be_sent() {
    assert_eq!(MessageKind::SENDABLE.len(), 13);
    for kind in MessageKind::ALL {
        let arrives_only = matches!(
            kind,
            MessageKind::InteractiveReply | MessageKind::PollVote | MessageKind::Unsupported
        );
        assert_eq!(
            MessageKind::SENDABLE.contains(&kind),
            !arrives_only,
            "{kind:?}"
        );
    }
}

#[test]
fn statuses_only_move_forward() {
    use MessageStatus::*;
    assert!(Queued.advances_to(Sent));
    assert!(Sent.advances_to(Read));
    assert!(Delivered.advances_to(Played));
    assert!(!Read.advances_to(Delivered));
    assert!(!Read.advances_to(Read));
    assert!(!Failed.advances_to(Delivered));
    assert!(!Deleted.advances_to(Read));
    assert!(!Sent.advances_to(Failed), "failing is not a receipt");
    assert!(Received.advances_to(Read));
}

#[test]
fn template_parameters_have_the_cloud_api_shape() {
    let json = serde_json::json!({"type": "template", "name": "order_update", "language": "en_US",
        "components": [{"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.io/a.jpg"}}]},
                       {"type": "button", "sub_type": "quick_reply", "index": 0,
                        "parameters": [{"type": "payload", "payload": "STOP"}]}]});
    let mut tagged = json.clone();
    tagged["kind"] = tagged["type"].take();
    tagged.as_object_mut().unwrap().remove("type");
    let content: Content = serde_json::from_value(tagged.clone()).unwrap();
    assert_eq!(content.kind(), MessageKind::Template);
    assert_eq!(serde_json::to_value(&content).unwrap(), tagged);
    let unknown =
        serde_json::json!({"type": "image", "image": {"link": "https://x.io"}, "extra": 1});
    assert!(serde_json::from_value::<TemplateParameter>(unknown).is_err());
}

#[test]
fn content_round_trips_with_its_kind() {
    let c = Content::Media {
        media: MessageKind::Image,
        url: "https://example.com/a.jpg".into(),
        media_id: None,
        caption: Some("hi".into()),
        file_name: None,
        mime_type: None,
        view_once: true,
    };
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["kind"], "media");
    assert_eq!(json["view_once"], true);
    assert_eq!(serde_json::from_value::<Content>(json).unwrap(), c);
    assert_eq!(c.kind(), MessageKind::Image);
    assert!(c.is_view_once());
}
