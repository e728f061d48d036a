//! The Cloud API engine against the fake Graph server: starting, error classes and the
//! business operations (templates, profile, numbers, registration, media).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use serde_json::json;
use wharf_core::{
    AccountId, Engine, EngineError, EngineSink, EngineUpdate, Jid, MessageId, SessionId,
    engine::EngineSession,
    message::{Content, Outbound},
};
use wharf_engines::cloud::{
    CloudCredentials, CloudDirectory, CloudEngine, CloudError, CloudSettings, CodeMethod,
    TemplateQuery,
};
use wharf_fakegraph::{Failure, FakeGraph, FakeNumber};

const PNID: &str = "106540352242922";
const WABA: &str = "102290129340398";

#[derive(Default)]
struct Recorder(Mutex<Vec<(SessionId, EngineUpdate)>>);

#[async_trait]
impl EngineSink for Recorder {
    async fn updates(&self, s: SessionId, updates: Vec<EngineUpdate>) -> Result<(), EngineError> {
        self.0
            .lock()
            .unwrap()
            .extend(updates.into_iter().map(|u| (s, u)));
        Ok(())
    }
}

#[derive(Default)]
struct Directory(Mutex<HashMap<SessionId, CloudCredentials>>);

#[async_trait]
impl CloudDirectory for Directory {
    async fn credentials(&self, s: SessionId) -> Result<CloudCredentials, EngineError> {
        self.0
            .lock()
            .unwrap()
            .get(&s)
            .cloned()
            .ok_or_else(|| EngineError::Permanent("no such cloud session".into()))
    }

    async fn last_inbound_id(
        &self,
        _: SessionId,
        _: &Jid,
    ) -> Result<Option<wharf_core::ProviderId>, EngineError> {
        Ok(None)
    }
}

struct Setup {
    graph: FakeGraph,
    engine: CloudEngine,
    recorder: Arc<Recorder>,
    session: SessionId,
    _sink: Arc<dyn EngineSink>,
}

async fn setup() -> Setup {
    let graph = FakeGraph::start().await;
    graph.add_number(FakeNumber::new(PNID, WABA, "15550783881"));
    let recorder = Arc::new(Recorder::default());
    let sink: Arc<dyn EngineSink> = recorder.clone();
    let directory = Arc::new(Directory::default());
    let session = SessionId::generate();
    directory.0.lock().unwrap().insert(
        session,
        CloudCredentials {
            phone_number_id: PNID.into(),
            waba_id: WABA.into(),
            access_token: format!("EAAFAKE{PNID}"),
            app_secret: format!("fake-secret-{PNID}"),
            graph_base_url: Some(graph.base_url()),
            graph_version: Some("v23.0".into()),
            throughput_per_second: None,
        },
    );
    let engine =
        CloudEngine::new(Arc::downgrade(&sink), directory, CloudSettings::default()).unwrap();
    Setup {
        graph,
        engine,
        recorder,
        session,
        _sink: sink,
    }
}

fn engine_session(id: SessionId) -> EngineSession {
    EngineSession {
        id,
        account_id: AccountId::generate(),
        phone: None,
        paired: false,
    }
}

fn text(to: &str) -> Outbound {
    Outbound {
        message_id: MessageId::generate(),
        provider_id: None,
        to: Jid::parse(&format!("{to}@s.whatsapp.net")).unwrap(),
        content: Content::Text { text: "hi".into() },
        quoted_provider_id: None,
        attempt: 0,
    }
}

#[tokio::test]
async fn start_reads_the_number_and_an_expired_token_disconnects() {
    let s = setup().await;
    s.engine.start(&engine_session(s.session)).await.unwrap();
    let updates = s.recorder.0.lock().unwrap().clone();
    assert!(
        matches!(&updates[0].1, EngineUpdate::Connected { phone } if phone.e164() == "+15550783881"),
        "{updates:?}"
    );
    let wamid = s
        .engine
        .send(s.session, &text("15551234567"))
        .await
        .unwrap();
    assert!(wamid.as_str().starts_with("wamid."));

    s.graph.expire_token(PNID);
    let err = s
        .engine
        .send(s.session, &text("15551234567"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::RetryLater {
                session_wide: true,
                ..
            }
        ),
        "{err:?}"
    );
    let updates = s.recorder.0.lock().unwrap().clone();
    let EngineUpdate::Disconnected { reason } = &updates.last().unwrap().1 else {
        panic!("{updates:?}")
    };
    assert!(reason.starts_with("Graph error 190"), "{reason}");
    // Starting again reports the Graph error as the reason.
    s.engine.start(&engine_session(s.session)).await.unwrap();
    let updates = s.recorder.0.lock().unwrap().clone();
    assert!(
        matches!(&updates.last().unwrap().1, EngineUpdate::Disconnected { reason } if reason.contains("190"))
    );
    s.graph.assert_no_rejections();
}

#[tokio::test]
async fn send_errors_are_classified() {
    let s = setup().await;
    s.engine.start(&engine_session(s.session)).await.unwrap();
    s.graph
        .fail_next(Failure::code(130_429).retry_after(3).on_path("/messages"));
    let e = s
        .engine
        .send(s.session, &text("15551234567"))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        EngineError::RetryLater {
            reason: "Graph error 130429: Rate limit hit".into(),
            after_ms: Some(3000),
            session_wide: true
        }
    );
    s.graph
        .fail_next(Failure::code(131_000).on_path("/messages"));
    let e = s
        .engine
        .send(s.session, &text("15551234567"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, EngineError::Transient(ref r) if r.contains("131000")),
        "{e:?}"
    );
    s.graph
        .fail_next(Failure::code(131_056).on_path("/messages"));
    let mut second = text("15551234567");
    second.attempt = 1;
    let e = s.engine.send(s.session, &second).await.unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::RetryLater {
                after_ms: Some(4000),
                session_wide: false,
                ..
            }
        ),
        "{e:?}"
    );
    s.graph
        .fail_next(Failure::code(131_047).on_path("/messages"));
    let e = s
        .engine
        .send(s.session, &text("15551234567"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, EngineError::Permanent(ref r) if r.starts_with("Graph error 131047")),
        "{e:?}"
    );
    s.graph.assert_no_rejections();
}

#[tokio::test]
async fn templates_can_be_created_listed_edited_and_deleted() {
    let s = setup().await;
    let created = s
        .engine
        .create_template(
            s.session,
            &json!({"name": "order_update", "language": "en_US", "category": "UTILITY",
                    "components": [{"type": "BODY", "text": "Hi {{1}}, your order shipped",
                                    "example": {"body_text": [["Ana"]]}}]}),
        )
        .await
        .unwrap();
    assert_eq!(created["status"], "PENDING");
    let id = created["id"].as_str().unwrap().to_owned();
    for i in 0..3 {
        s.engine
            .create_template(
                s.session,
                &json!({"name": format!("promo_{i}"), "language": "en", "category": "MARKETING",
                        "components": [{"type": "BODY", "text": "Sale"}]}),
            )
            .await
            .unwrap();
    }
    let first = s
        .engine
        .list_templates(
            s.session,
            &TemplateQuery {
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.templates.len(), 2);
    assert_eq!(first.templates[0]["name"], "order_update");
    let rest = s
        .engine
        .list_templates(
            s.session,
            &TemplateQuery {
                limit: Some(2),
                after: first.after.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.templates.len(), 2);
    assert_eq!(rest.after, None);
    s.engine
        .edit_template(s.session, &id, &json!({"category": "MARKETING"}))
        .await
        .unwrap();
    let got = s.engine.get_template(s.session, &id).await.unwrap();
    assert_eq!(got["category"], "MARKETING");
    s.engine
        .delete_template(s.session, "order_update", Some(&id))
        .await
        .unwrap();
    assert!(s.graph.template(WABA, "order_update").is_none());
    // Deleting it again is Graph's error, with its code.
    let e = s
        .engine
        .delete_template(s.session, "order_update", None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, CloudError::Graph(ref g) if g.code == Some(100)),
        "{e:?}"
    );
    s.graph.assert_no_rejections();
}

#[tokio::test]
async fn profile_numbers_and_registration() {
    let s = setup().await;
    s.engine
        .update_business_profile(
            s.session,
            &json!({"about": "Open 9 to 5", "websites": ["https://wharf.example"], "vertical": "RETAIL"}),
        )
        .await
        .unwrap();
    let profile = s.engine.business_profile(s.session).await.unwrap();
    assert_eq!(profile["about"], "Open 9 to 5");
    assert_eq!(profile["vertical"], "RETAIL");
    let numbers = s.engine.phone_numbers(s.session).await.unwrap();
    assert_eq!(numbers[0]["id"], PNID);
    assert_eq!(numbers[0]["code_verification_status"], "NOT_VERIFIED");

    s.engine
        .request_code(s.session, CodeMethod::Sms, "en_US")
        .await
        .unwrap();
    let wrong = s.engine.verify_code(s.session, "000000").await.unwrap_err();
    assert!(
        matches!(wrong, CloudError::Graph(ref g) if g.code == Some(136_025)),
        "{wrong:?}"
    );
    s.engine.verify_code(s.session, "123456").await.unwrap();
    assert_eq!(
        s.graph.verification_status(PNID).as_deref(),
        Some("VERIFIED")
    );
    s.engine.deregister(s.session).await.unwrap();
    assert!(!s.graph.is_registered(PNID));
    s.engine.register(s.session, "123456").await.unwrap();
    assert!(s.graph.is_registered(PNID));
    s.graph.assert_no_rejections();
}

#[tokio::test]
async fn media_is_uploaded_and_looked_up() {
    let s = setup().await;
    let bytes = b"\x89PNG\r\n\x1a\nnot really a picture".to_vec();
    let id = s
        .engine
        .upload_media(s.session, bytes.clone(), "image/png", "a.png")
        .await
        .unwrap();
    assert!(s.graph.has_media(&id));
    let info = s.engine.media_url(s.session, &id).await.unwrap();
    assert_eq!(info.id, id);
    assert_eq!(info.mime_type, "image/png");
    assert_eq!(info.file_size, bytes.len() as u64);
    assert!(info.url.starts_with("http"));
    // An unsupported type is Graph's error.
    let e = s
        .engine
        .upload_media(s.session, b"x".to_vec(), "application/x-nope", "x.bin")
        .await
        .unwrap_err();
    assert!(
        matches!(e, CloudError::Graph(ref g) if g.code == Some(100)),
        "{e:?}"
    );
    assert_eq!(
        s.graph.rejections().len(),
        1,
        "only the bad upload is refused"
    );
}
