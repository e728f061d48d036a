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
