//! What WhatsApp Web reports of received messages, stored: edits and revocations by their
//! writer (played through the emulator, which reports them as the web engine does), linked
//! identities (`…@lid`) beside phone numbers, and one identity per contact whichever form
//! WhatsApp showed (through the web device's LID map).

use serde_json::{Value, json};
use wharf_core::{Jid, message::Content, message::Inbound};
use wharf_store::{InboundChange, WebDeviceStore};
use whatsapp_rust::wacore::store::traits::{LidPnMappingEntry, ProtocolStore};

async fn events_of(app: &wharf_testkit::TestApp, kind: &str) -> Vec<Value> {
    let all = app.get("/v1/events?limit=100").expect(200).await;
    all["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .cloned()
        .collect()
}

#[wharf_testkit::dual_test]
async fn received_edits_and_revocations_are_stored_with_their_events(
    mut app: wharf_testkit::TestApp,
) {
    let (id, _) = app.connected_session().await;
    let injected = app
        .post(&format!("/emulator/sessions/{id}/inbound"))
        .json(json!({"from": "+15550102030", "from_lid": "123456789@lid", "text": "open at 9?"}))
        .expect(202)
        .await;
    let provider = injected["provider_msg_id"].as_str().unwrap().to_owned();
    let received = events_of(&app, "message.received").await;
    assert_eq!(received.len(), 1, "{received:?}");
    let data = &received[0]["data"];
    assert_eq!(data["chat_jid"], "15550102030@s.whatsapp.net");
    assert_eq!(data["chat_lid"], "123456789@lid");
    assert_eq!(data["sender_jid"], "15550102030@s.whatsapp.net");
    assert_eq!(data["sender_lid"], "123456789@lid");
    let message = data["message_id"].as_str().unwrap().to_owned();
    let info = app.info(&message).await;
    assert_eq!(info.chat_lid.as_deref(), Some("123456789@lid"));

    // The writer edits it: new content, edited_at, one message.edited.
    app.post(&format!("/emulator/sessions/{id}/inbound/{provider}/edit"))
        .json(json!({"text": "open at 10?"}))
        .expect(202)
        .await;
    let edited = events_of(&app, "message.edited").await;
    assert_eq!(edited.len(), 1, "{edited:?}");
    assert_eq!(edited[0]["message_id"], message.as_str());
    assert_eq!(edited[0]["data"]["direction"], "in");
    assert_eq!(edited[0]["data"]["content"]["text"], "open at 10?");
    assert_eq!(edited[0]["data"]["chat_lid"], "123456789@lid");
    assert!(app.info(&message).await.edited_at.is_some());

    // Then revokes it: deleted, one message.deleted; nothing changes it afterwards.
    app.post(&format!(
        "/emulator/sessions/{id}/inbound/{provider}/revoke"
    ))
    .expect(202)
    .await;
    let deleted = events_of(&app, "message.deleted").await;
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["data"]["status"], "deleted");
    let info = app.info(&message).await;
    assert!(info.deleted_at.is_some());
    assert_eq!(serde_json::to_value(info.status).unwrap(), "deleted");
    app.post(&format!(
        "/emulator/sessions/{id}/inbound/{provider}/revoke"
    ))
    .expect(409)
    .await;
    app.post(&format!("/emulator/sessions/{id}/inbound/{provider}/edit"))
        .json(json!({"text": "again"}))
        .expect(409)
        .await;
    app.post(&format!("/emulator/sessions/{id}/inbound/3EB0NOSUCH/edit"))
        .json(json!({"text": "x"}))
        .expect(409)
        .await;
    let bad = app
        .post(&format!("/emulator/sessions/{id}/inbound"))
        .json(
            json!({"from": "+15550102030", "from_lid": "15550102030@s.whatsapp.net", "text": "x"}),
        )
        .expect(422)
        .await;
    assert!(bad["errors"]["from_lid"].is_array(), "{bad}");
    assert_eq!(events_of(&app, "message.edited").await.len(), 1);
    assert_eq!(events_of(&app, "message.deleted").await.len(), 1);
    app.stop().await;
}

#[wharf_testkit::dual_test]
async fn a_contact_named_only_by_lid_is_stored_under_its_phone_number(
    mut app: wharf_testkit::TestApp,
) {
    let (id, _) = app.connected_session().await;
    let session = id.parse().unwrap();
    let account = app.account_id.parse().unwrap();
    let jid = |s: &str| Jid::parse(s).unwrap();
    let inbound = |pid: &str, chat: &str, sender: &str, text: &str| Inbound {
        provider_id: pid.into(),
        chat: jid(chat),
        sender: jid(sender),
        chat_lid: None,
        sender_lid: None,
        content: Content::Text { text: text.into() },
        sent_at: 1_700_000_000_000,
        quoted_provider_id: None,
    };
    // Before the device knows the number, the LID is all there is.
    let stored = app
        .store
        .ingest_inbound(
            account,
            session,
            &[inbound("A1", "777@lid", "777@lid", "who am I")],
        )
        .await
        .unwrap();
    assert_eq!(stored[0].chat_jid.to_string(), "777@lid");
    assert_eq!(stored[0].chat_lid.as_deref(), Some("777@lid"));

    // The device learns the number (as whatsapp-rust does from usync or a message).
    let device = WebDeviceStore::new(
        app.store.clone(),
        session,
        std::sync::Arc::new(wharf_server::secrets::SecretBox::new(&[7; 32], "t".into())),
    );
    device
        .put_lid_mapping(&LidPnMappingEntry {
            lid: "777".into(),
            phone_number: "15550107777".into(),
            created_at: 1,
            updated_at: 1,
            learning_source: "usync".into(),
        })
        .await
        .unwrap();
    let stored = app
        .store
        .ingest_inbound(
            account,
            session,
            &[
                inbound("A2", "777@lid", "777@lid", "me again"),
                inbound("A3", "120363000000000001@g.us", "777@lid", "in a group"),
                // A redelivery of a stored message changes nothing and emits nothing.
                inbound("A2", "777@lid", "777@lid", "me again"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].chat_jid.to_string(), "15550107777@s.whatsapp.net");
    assert_eq!(stored[0].chat_lid.as_deref(), Some("777@lid"));
    assert_eq!(
        stored[0].sender_jid.as_deref(),
        Some("15550107777@s.whatsapp.net")
    );
    assert_eq!(stored[1].chat_jid.to_string(), "120363000000000001@g.us");
    assert_eq!(stored[1].chat_lid, None);
    assert_eq!(stored[1].sender_lid.as_deref(), Some("777@lid"));
    assert_eq!(
        stored[1].sender_jid.as_deref(),
        Some("15550107777@s.whatsapp.net")
    );
    let received = events_of(&app, "message.received").await;
    assert_eq!(received.len(), 3, "no duplicate event for the redelivery");

    // The chat by its LID lists every message of that person, the earlier one too; by number,
    // those stored since the number was known.
    for (chat, expected) in [
        ("777@lid", vec!["A2", "A1"]),
        ("15550107777@s.whatsapp.net", vec!["A2"]),
    ] {
        let page = app
            .get(&format!(
                "/api/whatsapp-sessions/{id}/message-logs?chat={chat}"
            ))
            .expect(200)
            .await;
        let ids: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["provider_msg_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, expected, "{chat}: {page}");
    }

    // An edit named by LID reaches the message stored by number.
    let changed = app
        .store
        .apply_inbound_changes(
            session,
            &[InboundChange::Edited {
                chat: jid("777@lid"),
                provider_id: "A2".into(),
                content: Content::Text {
                    text: "me, edited".into(),
                },
                at: 5,
            }],
        )
        .await
        .unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].edited_at, Some(5));
    // A change claimed from another chat is ignored.
    let changed = app
        .store
        .apply_inbound_changes(
            session,
            &[InboundChange::Revoked {
                chat: jid("15550109999@s.whatsapp.net"),
                provider_id: "A2".into(),
                at: 6,
            }],
        )
        .await
        .unwrap();
    assert!(changed.is_empty());
    app.stop().await;
}
