use wharf_core::{
    AccountId, Jid, MessageId, SessionId,
    message::{Content, Direction, MessageKind, MessageStatus},
};

use super::MessageRow;

pub(super) fn sent_message(status: MessageStatus) -> MessageRow {
    MessageRow {
        id: MessageId::generate(),
        account_id: AccountId::generate(),
        session_id: SessionId::generate(),
        direction: Direction::Out,
        chat_jid: Jid::parse("15551234567@s.whatsapp.net").unwrap(),
        sender_jid: None,
        kind: MessageKind::Text,
        content: Content::Text { text: "hi".into() },
        status,
        provider_msg_id: Some("3EB0AA".into()),
        quoted_message_id: None,
        failure_reason: None,
        attempts: 1,
        accepted_at: 1,
        sent_at: Some(2),
        delivered_at: None,
        read_at: None,
        played_at: None,
        failed_at: None,
        deleted_at: None,
        edited_at: None,
        updated_at: 2,
        chat_lid: None,
        sender_lid: None,
    }
}

#[test]
fn receipts_move_forward_once() {
    let mut m = sent_message(MessageStatus::Sent);
    assert!(m.advance(MessageStatus::Delivered, 10));
    assert!(
        !m.advance(MessageStatus::Delivered, 11),
        "a duplicate is not news"
    );
    assert_eq!(m.delivered_at, Some(10));
    assert!(m.advance(MessageStatus::Read, 20));
    assert_eq!((m.status, m.read_at), (MessageStatus::Read, Some(20)));
}

#[test]
fn read_before_delivered_is_merged() {
    let mut m = sent_message(MessageStatus::Sent);
    assert!(m.advance(MessageStatus::Read, 20));
    assert_eq!(m.delivered_at, Some(20), "read implies delivered");
    assert!(
        !m.advance(MessageStatus::Delivered, 15),
        "the late delivered receipt adds nothing"
    );
    assert_eq!(m.status, MessageStatus::Read);
    assert_eq!(m.delivered_at, Some(20));
}

#[test]
fn played_without_read_keeps_read_unknown() {
    let mut m = sent_message(MessageStatus::Delivered);
    m.delivered_at = Some(5);
    assert!(m.advance(MessageStatus::Played, 30));
    assert_eq!(m.read_at, None);
    assert!(
        !m.advance(MessageStatus::Read, 31),
        "read after played does not move the status back"
    );
    assert_eq!(m.read_at, Some(31), "but its time is kept");
    assert_eq!(m.status, MessageStatus::Played);
}

#[test]
fn ended_messages_ignore_receipts() {
    for end in [MessageStatus::Failed, MessageStatus::Deleted] {
        let mut m = sent_message(end);
        assert!(!m.advance(MessageStatus::Delivered, 10));
        assert_eq!((m.status, m.delivered_at), (end, None));
    }
}
