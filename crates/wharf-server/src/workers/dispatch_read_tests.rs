//! Read marks as the dispatcher hands them to an engine: each message with who wrote it, so
//! an engine that needs the participant (WhatsApp Web, in groups) has it.

use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::json;
use wharf_core::{
    AccountId, Capabilities, Engine, EngineError, EngineKind, Jid, ProviderId, SessionId,
    engine::EngineSession,
    message::{Content, Direction, MessageAction, Outbound, Presence},
};
use wharf_store::{JobAction, JobOutcome, MessageRow, OutboxJob};

use super::*;

/// An engine that records the actions it is asked for.
#[derive(Default)]
struct Recorder(Mutex<Vec<MessageAction>>);

#[async_trait]
impl Engine for Recorder {
    fn kind(&self) -> EngineKind {
        EngineKind::Web
    }
    fn capabilities(&self) -> Capabilities {
        wharf_engines::web::WEB_CAPABILITIES
    }
    async fn start(&self, _: &EngineSession) -> Result<(), EngineError> {
        Ok(())
    }
    async fn stop(&self, _: SessionId) -> Result<(), EngineError> {
        Ok(())
    }
    async fn logout(&self, _: SessionId) -> Result<(), EngineError> {
        Ok(())
    }
    async fn send(&self, _: SessionId, _: &Outbound) -> Result<ProviderId, EngineError> {
        Err(EngineError::Permanent("not in this test".into()))
    }
    async fn act(&self, _: SessionId, action: &MessageAction) -> Result<(), EngineError> {
        self.0.lock().unwrap().push(action.clone());
        Ok(())
    }
    async fn presence(
        &self,
        _: SessionId,
        _: Option<&Jid>,
        _: Presence,
    ) -> Result<(), EngineError> {
        Ok(())
    }
}

fn received(
    account: AccountId,
    session: SessionId,
    chat: &Jid,
    sender: Option<&str>,
    provider: &str,
) -> MessageRow {
    let mut m = MessageRow::outgoing(
        account,
        session,
        chat.clone(),
        Content::Text { text: "hi".into() },
        1,
    );
    m.direction = Direction::In;
    m.sender_jid = sender.map(str::to_owned);
    m.provider_msg_id = Some(provider.into());
    m
}

#[tokio::test]
async fn read_marks_carry_the_sender_of_each_message() {
    let (account, session) = (AccountId::generate(), SessionId::generate());
    let group = Jid::parse("120363000000000001@g.us").unwrap();
    let (alice, bob) = ("15550100001@s.whatsapp.net", "15550100002@s.whatsapp.net");
    let rows = [
        received(account, session, &group, Some(alice), "G1"),
        received(account, session, &group, Some(bob), "G2"),
        received(account, session, &group, None, "G3"),
    ];
    let messages: HashMap<MessageId, MessageRow> = rows.iter().map(|m| (m.id, m.clone())).collect();
    let ids: Vec<MessageId> = rows.iter().map(|m| m.id).collect();
    let job = OutboxJob::new(
        account,
        session,
        group.clone(),
        None,
        JobAction::MarkRead,
        json!({ "message_ids": ids }),
    );
    let config = DispatchConfig {
        rate: HashMap::new(),
        max_attempts: 3,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
        clock: Clock::default(),
    };
    let engine = Recorder::default();
    let (outcome, pause) = execute(&engine, session, &job, &messages, &config).await;
    assert!(matches!(outcome, JobOutcome::Done { .. }), "{outcome:?}");
    assert!(pause.is_none());
    let acts = engine.0.lock().unwrap().clone();
    assert_eq!(
        acts,
        vec![MessageAction::MarkRead {
            chat: group,
            provider_ids: vec!["G1".into(), "G2".into(), "G3".into()],
            senders: vec![
                Some(Jid::parse(alice).unwrap()),
                Some(Jid::parse(bob).unwrap()),
                None
            ],
        }]
    );
}
