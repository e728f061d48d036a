//! Media sends and downloads through the fake port, with a scripted fetcher standing in for
//! the server's outbound client.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use serde_json::json;
use wharf_core::{
    AccountId, Engine, EngineError, EngineSink, EngineUpdate, Jid, MessageId, Phone, SessionId,
    engine::EngineSession,
    message::{Content, MessageKind, Outbound},
};

use super::*;
use crate::web::{
    Fetched, PortEvent, WebConfig, WebEngine, WebStatus,
    fake::{FakeCall, FakePort, FakeWebFactory, fake_upload},
};

struct Sink;

#[async_trait]
impl EngineSink for Sink {
    async fn updates(&self, _: SessionId, _: Vec<EngineUpdate>) -> Result<(), EngineError> {
        Ok(())
    }
}

/// A file as a URL serves it: its bytes and its `Content-Type`.
type Served = (Vec<u8>, Option<String>);

/// Files by URL; a URL missing from the map answers what `missing` says.
#[derive(Default)]
struct Fetcher {
    files: Mutex<HashMap<String, Served>>,
    errors: Mutex<HashMap<String, FetchError>>,
    asked: Mutex<Vec<(String, u64)>>,
}

impl Fetcher {
    fn put(&self, url: &str, bytes: &[u8], mime: Option<&str>) {
        self.files
            .lock()
            .unwrap()
            .insert(url.into(), (bytes.to_vec(), mime.map(str::to_owned)));
    }

    fn fail(&self, url: &str, e: FetchError) {
        self.errors.lock().unwrap().insert(url.into(), e);
    }
}

#[async_trait]
impl MediaFetch for Fetcher {
    async fn fetch(&self, url: &str, limit: u64) -> Result<Fetched, FetchError> {
        self.asked.lock().unwrap().push((url.to_owned(), limit));
        if let Some(e) = self.errors.lock().unwrap().get(url) {
            return Err(e.clone());
        }
        let (bytes, mime_type) = self
            .files
            .lock()
            .unwrap()
            .get(url)
            .cloned()
            .ok_or_else(|| FetchError::Failed("404 Not Found".into()))?;
        if bytes.len() as u64 > limit {
            return Err(FetchError::TooLarge { limit });
        }
        Ok(Fetched { bytes, mime_type })
    }
}

struct Setup {
    _sink: Arc<dyn EngineSink>,
    factory: Arc<FakeWebFactory>,
    fetcher: Arc<Fetcher>,
    engine: WebEngine,
}

fn setup(limit: u64) -> Setup {
    let sink: Arc<dyn EngineSink> = Arc::new(Sink);
    let factory = FakeWebFactory::new();
    let fetcher = Arc::new(Fetcher::default());
    let engine = WebEngine::new(
        factory.clone(),
        Arc::downgrade(&sink),
        WebConfig {
            media_max_bytes: limit,
            ..WebConfig::default()
        },
    )
    .with_media(fetcher.clone());
    Setup {
        _sink: sink,
        factory,
        fetcher,
        engine,
    }
}

async fn online(s: &Setup) -> (SessionId, Arc<FakePort>) {
    let session = EngineSession {
        id: SessionId::generate(),
        account_id: AccountId::generate(),
        phone: None,
        paired: true,
    };
    s.engine.start(&session).await.unwrap();
    let port = s.factory.port(session.id, 1).await;
    port.emit(PortEvent::Connected {
        phone: Some(Phone::parse("+15551230001").unwrap()),
    });
    for _ in 0..500 {
        if matches!(
            s.engine.status(session.id),
            Some(WebStatus::Connected { .. })
        ) {
            return (session.id, port);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never online");
}

fn media(kind: MessageKind, url: &str, mime: Option<&str>, view_once: bool) -> Content {
    Content::Media {
        media: kind,
        url: url.into(),
        media_id: None,
        caption: Some("look".into()),
        file_name: Some("file.bin".into()),
        mime_type: mime.map(str::to_owned),
        view_once,
    }
}

fn outbound(content: Content, id: &str) -> Outbound {
    Outbound {
        message_id: MessageId::generate(),
        provider_id: Some(id.into()),
        to: Jid::parse("15559870001@s.whatsapp.net").unwrap(),
        content,
        quoted_provider_id: None,
        attempt: 0,
    }
}

async fn send(
    s: &Setup,
    session: SessionId,
    url: &str,
    id: &str,
) -> Result<wharf_core::message::ProviderId, EngineError> {
    let message = outbound(media(MessageKind::Image, url, None, false), id);
    s.engine.send(session, &message).await
}

fn media_calls(port: &FakePort) -> Vec<FakeCall> {
    port.calls()
        .into_iter()
        .filter(|c| {
            matches!(
                c,
                FakeCall::Upload(..) | FakeCall::SendMedia(..) | FakeCall::Send(_)
            )
        })
        .collect()
}

#[tokio::test]
async fn every_media_kind_is_fetched_uploaded_and_sent_with_its_fixed_id() {
    let s = setup(1024);
    let (session, port) = online(&s).await;
    let cases = [
        (MessageKind::Image, Some("image/png"), false),
        (MessageKind::Image, None, true),
        (MessageKind::Video, None, true),
        (MessageKind::Document, Some("application/pdf"), false),
        (MessageKind::Audio, Some("audio/mpeg"), false),
        (MessageKind::Audio, None, false),
        (MessageKind::Sticker, None, false),
    ];
    for (i, (kind, mime, view_once)) in cases.into_iter().enumerate() {
        let url = format!("https://cdn.example/{i}");
        let bytes = vec![u8::try_from(i).unwrap(); 10 + i];
        s.fetcher.put(&url, &bytes, None);
        let id = format!("3EB0MEDIA{i}");
        let content = media(kind, &url, mime, view_once);
        let sent = s
            .engine
            .send(session, &outbound(content.clone(), &id))
            .await
            .unwrap();
        assert_eq!(sent.as_str(), id);
        let calls = media_calls(&port);
        let [
            ..,
            FakeCall::Upload(up_kind, up_bytes),
            FakeCall::SendMedia(message, uploaded),
        ] = calls.as_slice()
        else {
            panic!("{calls:?}");
        };
        assert_eq!((*up_kind, up_bytes), (kind, &bytes));
        assert_eq!(message.id, id);
        assert_eq!(message.content, content, "mime and view-once kept");
        assert_eq!(uploaded, &fake_upload(&bytes), "the upload's own result");
    }
    assert!(
        !port.calls().iter().any(|c| matches!(c, FakeCall::Send(_))),
        "media never goes out without its upload"
    );
    let asked = s.fetcher.asked.lock().unwrap().clone();
    assert!(asked.iter().all(|(_, limit)| *limit == 1024), "{asked:?}");
}

#[tokio::test]
async fn the_served_type_fills_a_missing_mime_type() {
    let s = setup(1024);
    let (session, port) = online(&s).await;
    s.fetcher.put(
        "https://cdn.example/a",
        b"%PDF-1.7",
        Some("application/pdf"),
    );
    let content = media(MessageKind::Document, "https://cdn.example/a", None, false);
    s.engine
        .send(session, &outbound(content, "3EB0DOC"))
        .await
        .unwrap();
    let calls = media_calls(&port);
    let Some(FakeCall::SendMedia(message, _)) = calls.last() else {
        panic!("{calls:?}")
    };
    assert!(matches!(
        &message.content,
        Content::Media { mime_type: Some(m), .. } if m == "application/pdf"
    ));
}

#[tokio::test]
async fn refused_too_large_and_failing_urls_upload_nothing() {
    let s = setup(16);
    let (session, port) = online(&s).await;
    s.fetcher.put("https://cdn.example/big", &[7; 17], None);
    s.fetcher.fail(
        "https://internal.example/x",
        FetchError::Refused("10.0.0.5 is not public".into()),
    );
    s.fetcher.fail(
        "https://flaky.example/x",
        FetchError::Transient("connection reset".into()),
    );

    let big = send(&s, session, "https://cdn.example/big", "3EB0BIG")
        .await
        .unwrap_err();
    assert!(
        matches!(&big, EngineError::Permanent(why) if why.contains("larger than 16 bytes")),
        "{big:?}"
    );
    let refused = send(&s, session, "https://internal.example/x", "3EB0PRIV")
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, EngineError::Permanent(why) if why.contains("outbound policy")),
        "{refused:?}"
    );
    let missing = send(&s, session, "https://cdn.example/gone", "3EB0GONE")
        .await
        .unwrap_err();
    assert!(matches!(missing, EngineError::Permanent(_)), "{missing:?}");
    let flaky = send(&s, session, "https://flaky.example/x", "3EB0FLAKY")
        .await
        .unwrap_err();
    assert!(flaky.is_retryable(), "{flaky:?}");
    assert!(media_calls(&port).is_empty(), "{:?}", port.calls());

    // The retry of the flaky one, once the file is there, goes out under the same id.
    s.fetcher.errors.lock().unwrap().clear();
    s.fetcher.put("https://flaky.example/x", b"pic", None);
    let retry = send(&s, session, "https://flaky.example/x", "3EB0FLAKY")
        .await
        .unwrap();
    assert_eq!(retry.as_str(), "3EB0FLAKY");
}

#[tokio::test]
async fn media_waits_for_a_connection_before_fetching() {
    let s = setup(1024);
    let session = SessionId::generate();
    s.fetcher.put("https://cdn.example/a", b"pic", None);
    let offline = s
        .engine
        .send(
            session,
            &outbound(
                media(MessageKind::Image, "https://cdn.example/a", None, false),
                "3EB0OFF",
            ),
        )
        .await
        .unwrap_err();
    assert!(offline.is_retryable(), "{offline:?}");
    assert!(s.fetcher.asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn media_and_view_once_are_claimed_only_with_a_fetcher() {
    let user = Jid::parse("1@s.whatsapp.net").unwrap();
    let channel = Jid::parse("120363000000@newsletter").unwrap();
    let once = media(MessageKind::Image, "https://cdn.example/a", None, true);
    let s = setup(1024);
    assert_eq!(s.engine.refusal(&once, &user, false), None);
    assert!(s.engine.capabilities().view_once);
    assert_eq!(
        s.engine.refusal(&once, &channel, false).as_deref(),
        Some("image posts in channels (text only)")
    );
    let sink: Arc<dyn EngineSink> = Arc::new(Sink);
    let bare = WebEngine::new(
        FakeWebFactory::new(),
        Arc::downgrade(&sink),
        WebConfig::default(),
    );
    assert_eq!(
        bare.refusal(&once, &user, false).as_deref(),
        Some("image messages")
    );
}

fn reference() -> MediaRef {
    MediaRef {
        kind: MessageKind::Video,
        direct_path: "/v/t62.7161-24/1234".into(),
        media_key: vec![9; 32],
        file_sha256: vec![1; 32],
        file_enc_sha256: vec![2; 32],
        file_length: 3,
    }
}

#[test]
fn references_round_trip_through_media_id_and_the_decrypt_body() {
    let r = reference();
    let token = encode_reference(&r);
    assert!(token.starts_with("wa1."), "{token}");
    assert_eq!(decode_token(&token).unwrap(), r);
    assert_eq!(
        decode_reference(&json!({"media_id": token, "mimetype": "video/mp4"})).unwrap(),
        (r.clone(), Some("video/mp4".to_owned()))
    );
    // The media object of a WhatsApp message, as other gateways show it.
    let object = json!({"message": {
        "directPath": r.direct_path,
        "mediaKey": STANDARD.encode(&r.media_key),
        "fileSha256": STANDARD.encode(&r.file_sha256),
        "fileEncSha256": URL_SAFE_NO_PAD.encode(&r.file_enc_sha256),
        "fileLength": "3",
        "mediaType": "video",
    }});
    assert_eq!(decode_reference(&object).unwrap(), (r, None));
    for (bad, says) in [
        (
            json!({"media_id": "12345"}),
            "not a WhatsApp Web media reference",
        ),
        (json!({"directPath": "/v/x"}), "mediaType is required"),
        (
            json!({"mediaType": "location", "directPath": "/v/x"}),
            "not image, video",
        ),
        (
            json!({"mediaType": "image", "directPath": "/v/x", "fileLength": 3, "mediaKey": "AAAA", "fileSha256": "", "fileEncSha256": ""}),
            "mediaKey must be 32 bytes",
        ),
    ] {
        let err = decode_reference(&bad).unwrap_err();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[tokio::test]
async fn received_files_are_downloaded_through_the_client() {
    let s = setup(1024);
    let (session, port) = online(&s).await;
    let r = reference();
    port.put_file(&r.direct_path, b"mp4".to_vec());
    let token = encode_reference(&r);
    let (bytes, mime) = s
        .engine
        .decrypt_media(session, &json!({"media_id": token}))
        .await
        .unwrap();
    assert_eq!(
        (bytes.as_slice(), mime.as_str()),
        (&b"mp4"[..], "video/mp4")
    );
    assert!(port.calls().contains(&FakeCall::Download(r.clone())));

    // A file over the limit is refused before anything is downloaded.
    let huge = MediaRef {
        direct_path: "/v/huge".into(),
        file_length: 1025,
        ..reference()
    };
    port.put_file(&huge.direct_path, b"x".to_vec());
    let refused = s
        .engine
        .decrypt_media(session, &json!({"media_id": encode_reference(&huge)}))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, EngineError::Permanent(m) if m.contains("over the 1024 bytes")),
        "{refused:?}"
    );
    assert!(!port.calls().contains(&FakeCall::Download(huge)));

    let unknown = MediaRef {
        direct_path: "/v/elsewhere".into(),
        ..reference()
    };
    let gone = s
        .engine
        .decrypt_media(session, &json!({"media_id": encode_reference(&unknown)}))
        .await
        .unwrap_err();
    assert!(matches!(gone, EngineError::Permanent(_)), "{gone:?}");
    let offline = s
        .engine
        .decrypt_media(SessionId::generate(), &json!({"media_id": token}))
        .await
        .unwrap_err();
    assert!(offline.is_retryable(), "{offline:?}");
}
