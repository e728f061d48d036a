use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use wharf_core::{
    AccountId, Engine, EngineError, EngineSink, EngineUpdate, Phone, SessionId,
    engine::EngineSession,
};

use super::Emulator;

#[derive(Default)]
struct Recorder(Mutex<Vec<(SessionId, EngineUpdate)>>);

#[async_trait]
impl EngineSink for Recorder {
    async fn updates(
        &self,
        session: SessionId,
        updates: Vec<EngineUpdate>,
    ) -> Result<(), EngineError> {
        self.0
            .lock()
            .unwrap()
            .extend(updates.into_iter().map(|u| (session, u)));
        Ok(())
    }
}

fn setup() -> (Arc<Recorder>, Emulator) {
    let recorder = Arc::new(Recorder::default());
    let sink: Arc<dyn EngineSink> = recorder.clone();
    let emulator = Emulator::new(
        Arc::downgrade(&sink),
        super::ReceiptDelays {
            delivered: None,
            read: None,
        },
    );
    (recorder, emulator)
}

fn session(paired: bool, phone: Option<&str>) -> EngineSession {
    EngineSession {
        id: SessionId::generate(),
        account_id: AccountId::generate(),
        phone: phone.map(|p| Phone::parse(p).unwrap()),
        paired,
    }
}

#[tokio::test]
async fn unpaired_start_shows_a_qr_and_scan_connects() {
    let (recorder, emulator) = setup();
    let s = session(false, Some("+15551230001"));
    emulator.start(&s).await.unwrap();
    let updates = recorder.0.lock().unwrap().clone();
    let EngineUpdate::Qr { code } = &updates[0].1 else {
        panic!("expected a QR, got {updates:?}")
    };
    assert!(
        code.starts_with("2@") && code.split(',').count() == 4,
        "{code}"
    );

    let wrong = emulator
        .scan(s.id, Some(Phone::parse("+15559999999").unwrap()))
        .await;
    assert!(matches!(wrong, Err(EngineError::Conflict(_))));
    let phone = emulator.scan(s.id, None).await.unwrap();
    assert_eq!(phone.e164(), "+15551230001");
    assert_eq!(
        recorder.0.lock().unwrap().last().unwrap().1,
        EngineUpdate::Connected { phone }
    );
    // A second scan has nothing to scan.
    assert!(emulator.scan(s.id, None).await.is_err());
}

#[tokio::test]
async fn paired_start_reconnects_without_a_qr() {
    let (recorder, emulator) = setup();
    let s = session(true, Some("+15551230002"));
    emulator.start(&s).await.unwrap();
    assert_eq!(
        recorder.0.lock().unwrap()[0].1,
        EngineUpdate::Connected {
            phone: Phone::parse("+15551230002").unwrap()
        }
    );
    emulator.unlink_from_phone(s.id).await.unwrap();
    assert!(matches!(
        recorder.0.lock().unwrap()[1].1,
        EngineUpdate::LoggedOut { .. }
    ));
}

#[tokio::test]
async fn stopped_sessions_cannot_be_scanned() {
    let (_recorder, emulator) = setup();
    let s = session(false, None);
    emulator.start(&s).await.unwrap();
    emulator.stop(s.id).await.unwrap();
    assert!(emulator.scan(s.id, None).await.is_err());
}

/// A sink that takes its time over QR updates, and says when one has begun.
#[derive(Default)]
struct SlowQr {
    recorded: Mutex<Vec<EngineUpdate>>,
    qr_begun: tokio::sync::Notify,
}

#[async_trait]
impl EngineSink for SlowQr {
    async fn updates(
        &self,
        _session: SessionId,
        updates: Vec<EngineUpdate>,
    ) -> Result<(), EngineError> {
        if matches!(updates.first(), Some(EngineUpdate::Qr { .. })) {
            self.qr_begun.notify_one();
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        self.recorded.lock().unwrap().extend(updates);
        Ok(())
    }
}

#[tokio::test]
async fn a_scan_during_a_start_reaches_the_sink_after_the_start() {
    let slow = Arc::new(SlowQr::default());
    let sink: Arc<dyn EngineSink> = slow.clone();
    let emulator = Arc::new(Emulator::new(
        Arc::downgrade(&sink),
        super::ReceiptDelays {
            delivered: None,
            read: None,
        },
    ));
    let s = session(false, Some("+15551230003"));
    let starting = {
        let (emulator, s) = (emulator.clone(), s.clone());
        tokio::spawn(async move { emulator.start(&s).await })
    };
    // The start has changed the state and is handing its QR to the sink: scan now.
    slow.qr_begun.notified().await;
    emulator.scan(s.id, None).await.unwrap();
    starting.await.unwrap().unwrap();
    let recorded = slow.recorded.lock().unwrap().clone();
    assert!(
        matches!(
            recorded.as_slice(),
            [EngineUpdate::Qr { .. }, EngineUpdate::Connected { .. }]
        ),
        "{recorded:?}"
    );
}

#[tokio::test]
async fn the_contact_sees_edits_revocations_and_read_marks() {
    use wharf_core::{
        Jid, MessageId,
        message::{Content, MessageAction, Outbound},
    };
    let (_recorder, emulator) = setup();
    let s = session(true, Some("+15551230004"));
    emulator.start(&s).await.unwrap();
    let chat = Jid::parse("15550102030@s.whatsapp.net").unwrap();
    let send = |text: &str| Outbound {
        message_id: MessageId::generate(),
        provider_id: None,
        to: chat.clone(),
        content: Content::Text { text: text.into() },
        quoted_provider_id: None,
        attempt: 0,
    };
    let typo = emulator.send(s.id, &send("typo")).await.unwrap();
    let gone = emulator.send(s.id, &send("oops")).await.unwrap();
    let theirs = emulator
        .inbound(
            s.id,
            chat.clone(),
            None,
            Content::Text { text: "hi".into() },
            None,
        )
        .await
        .unwrap();
    emulator
        .act(
            s.id,
            &MessageAction::Edit {
                chat: chat.clone(),
                provider_id: typo.clone(),
                text: "fixed".into(),
            },
        )
        .await
        .unwrap();
    emulator
        .act(
            s.id,
            &MessageAction::Revoke {
                chat: chat.clone(),
                provider_id: gone.clone(),
            },
        )
        .await
        .unwrap();
    emulator
        .act(
            s.id,
            &MessageAction::MarkRead {
                chat: chat.clone(),
                provider_ids: vec![theirs.clone()],
                senders: Vec::new(),
            },
        )
        .await
        .unwrap();
    let seen = emulator.seen(s.id, &chat);
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].content,
        Some(Content::Text {
            text: "fixed".into()
        })
    );
    assert!(seen[0].edited && !seen[0].revoked);
    assert!(seen[1].revoked && seen[1].content.is_none());
    assert!(!seen[2].from_session && seen[2].read);
    // A revoked message cannot be edited; an unknown one neither; nor one of another chat.
    let other = Jid::parse("15550109999@s.whatsapp.net").unwrap();
    for (chat, id) in [
        (&chat, &gone),
        (&chat, &wharf_core::ProviderId::from("3EB0NOPE")),
        (&other, &typo),
    ] {
        let edit = MessageAction::Edit {
            chat: chat.clone(),
            provider_id: id.clone(),
            text: "x".into(),
        };
        assert!(matches!(
            emulator.act(s.id, &edit).await,
            Err(EngineError::Permanent(_))
        ));
    }
}
