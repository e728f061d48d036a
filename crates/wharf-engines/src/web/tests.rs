//! The engine's logic, driven through the fake port.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use wharf_core::{
    AccountId, Engine, EngineError, EngineSink, EngineUpdate, Jid, MessageId, Phone, SessionId,
    engine::{EngineSession, Pacing},
    message::{Content, Inbound, MessageAction, Outbound, Presence},
};

use super::{
    PortError, PortEvent, WebConfig, WebEngine, WebStatus,
    fake::{FakeCall, FakeWebFactory},
};

/// Records updates; fails inbound batches while `failing` is set.
#[derive(Default)]
pub(super) struct Recorder {
    updates: Mutex<Vec<EngineUpdate>>,
    failing: Mutex<bool>,
}

#[async_trait]
impl EngineSink for Recorder {
    async fn updates(
        &self,
        _session: SessionId,
        updates: Vec<EngineUpdate>,
    ) -> Result<(), EngineError> {
        if *self.failing.lock().unwrap() {
            return Err(EngineError::Transient("database unavailable".into()));
        }
        self.updates.lock().unwrap().extend(updates);
        Ok(())
    }
}

impl Recorder {
    pub(super) fn all(&self) -> Vec<EngineUpdate> {
        self.updates.lock().unwrap().clone()
    }

    /// Waits (up to 5 s) for an update matching `f`.
    pub(super) async fn wait_for(
        &self,
        what: &str,
        f: impl Fn(&EngineUpdate) -> bool,
    ) -> EngineUpdate {
        for _ in 0..500 {
            if let Some(u) = self.all().into_iter().find(&f) {
                return u;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no {what} update; got {:?}", self.all())
    }
}

pub(super) struct Setup {
    pub(super) recorder: Arc<Recorder>,
    _sink: Arc<dyn EngineSink>,
    pub(super) factory: Arc<FakeWebFactory>,
    pub(super) engine: WebEngine,
}

pub(super) fn setup_with(config: WebConfig) -> Setup {
    let recorder = Arc::new(Recorder::default());
    let sink: Arc<dyn EngineSink> = recorder.clone();
    let factory = FakeWebFactory::new();
    let engine = WebEngine::new(factory.clone(), Arc::downgrade(&sink), config);
    Setup {
        recorder,
        _sink: sink,
        factory,
        engine,
    }
}

fn fast() -> WebConfig {
    WebConfig {
        watchdog: Duration::from_millis(200),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(80),
        stop_timeout: Duration::from_millis(300),
        ..WebConfig::default()
    }
}

fn session() -> EngineSession {
    EngineSession {
        id: SessionId::generate(),
        account_id: AccountId::generate(),
        phone: None,
        paired: false,
    }
}

pub(super) fn phone() -> Phone {
    Phone::parse("+15551230001").unwrap()
}

pub(super) fn jid(text: &str) -> Jid {
    Jid::parse(text).unwrap()
}

async fn wait_status(
    engine: &WebEngine,
    id: SessionId,
    f: impl Fn(&WebStatus) -> bool,
) -> WebStatus {
    for _ in 0..500 {
        if let Some(s) = engine.status(id)
            && f(&s)
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("status never matched; now {:?}", engine.status(id))
}

/// Starts a session and brings it online.
pub(super) async fn online(s: &Setup) -> (EngineSession, Arc<super::fake::FakePort>) {
    let session = session();
    s.engine.start(&session).await.unwrap();
    let port = s.factory.port(session.id, 1).await;
    port.emit(PortEvent::Connected {
        phone: Some(phone()),
    });
    wait_status(&s.engine, session.id, |st| {
        matches!(st, WebStatus::Connected { .. })
    })
    .await;
    (session, port)
}

#[tokio::test]
async fn qr_codes_rotate_and_a_scan_connects() {
    let s = setup_with(WebConfig::default());
    let session = session();
    s.engine.start(&session).await.unwrap();
    let port = s.factory.port(session.id, 1).await;
    assert_eq!(port.calls()[0], FakeCall::Connect);

    for code in ["2@first,a,b,c", "2@second,a,b,c"] {
        port.emit(PortEvent::Qr {
            code: code.into(),
            ttl: Duration::from_secs(20),
        });
        s.recorder
            .wait_for(
                "qr",
                |u| matches!(u, EngineUpdate::Qr { code: c } if c == code),
            )
            .await;
        assert_eq!(s.engine.current_qr(session.id).as_deref(), Some(code));
    }
    assert_eq!(s.engine.status(session.id), Some(WebStatus::Pairing));

    // A pair code is offered while pairing.
    let code = s.engine.pair_code(session.id, &phone()).await.unwrap();
    assert_eq!(code, "ABCD1234");
    assert!(port.calls().contains(&FakeCall::PairCode(phone())));

    port.emit(PortEvent::Paired { phone: phone() });
    port.emit(PortEvent::Connected {
        phone: Some(phone()),
    });
    s.recorder
        .wait_for("connected", |u| {
            *u == EngineUpdate::Connected { phone: phone() }
        })
        .await;
    assert_eq!(s.engine.current_qr(session.id), None);
    // Linked: no more pair codes.
    assert!(matches!(
        s.engine.pair_code(session.id, &phone()).await,
        Err(EngineError::Conflict(_))
    ));
}

#[tokio::test]
async fn exhausted_qr_codes_end_the_session_with_their_reason() {
    let s = setup_with(WebConfig::default());
    let session = session();
    s.engine.start(&session).await.unwrap();
    let port = s.factory.port(session.id, 1).await;
    port.emit(PortEvent::Qr {
        code: "2@x".into(),
        ttl: Duration::from_secs(60),
    });
    port.emit(PortEvent::QrExhausted);
    let u = s
        .recorder
        .wait_for("disconnected", |u| {
            matches!(u, EngineUpdate::Disconnected { .. })
        })
        .await;
    let EngineUpdate::Disconnected { reason } = u else {
        unreachable!()
    };
    assert!(reason.starts_with("qr_exhausted:"), "{reason}");
    let status = wait_status(&s.engine, session.id, |st| {
        matches!(st, WebStatus::Ended { .. })
    })
    .await;
    assert!(matches!(status, WebStatus::Ended { reason } if reason.starts_with("qr_exhausted")));
    assert_eq!(s.engine.current_qr(session.id), None);
    // The client was closed, and a new start opens a new one.
    wait_for_call(&port, FakeCall::Disconnect).await;
    s.engine.start(&session).await.unwrap();
    s.factory.port(session.id, 2).await;
}

async fn wait_for_call(port: &super::fake::FakePort, call: FakeCall) {
    for _ in 0..500 {
        if port.calls().contains(&call) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {call:?} among {:?}", port.calls());
}

#[tokio::test]
async fn silent_connect_failures_are_reported_and_the_watchdog_rebuilds_the_client() {
    let s = setup_with(fast());
    let session = session();
    s.engine.start(&session).await.unwrap();
    let first = s.factory.port(session.id, 1).await;
    first.emit(PortEvent::ConnectFailed {
        reason: "connection refused".into(),
    });
    // The same failure again is not news.
    first.emit(PortEvent::ConnectFailed {
        reason: "connection refused".into(),
    });
    s.recorder
        .wait_for("connecting", |u| {
            matches!(u, EngineUpdate::Connecting { reason } if reason == "connect failed: connection refused")
        })
        .await;
    assert!(matches!(
        s.engine.status(session.id),
        Some(WebStatus::Connecting { reason }) if reason.contains("connection refused")
    ));

    // No progress within the watchdog: the client is closed and a new one opened, which
    // comes online at once.
    let second = s.factory.port(session.id, 2).await;
    second.emit(PortEvent::Connected {
        phone: Some(phone()),
    });
    assert!(first.calls().contains(&FakeCall::Disconnect));
    let watchdog = s
        .recorder
        .wait_for("watchdog", |u| {
            matches!(u, EngineUpdate::Connecting { reason } if reason.starts_with("no connection after"))
        })
        .await;
    let EngineUpdate::Connecting { reason } = watchdog else {
        unreachable!()
    };
    assert!(
        reason.contains("connection refused") && reason.contains("retrying in"),
        "{reason}"
    );
    let refused = s
        .recorder
        .all()
        .iter()
        .filter(|u| matches!(u, EngineUpdate::Connecting { reason } if reason == "connect failed: connection refused"))
        .count();
    assert_eq!(refused, 1);

    // Once online, the watchdog is off.
    wait_status(&s.engine, session.id, |st| {
        matches!(st, WebStatus::Connected { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.factory.ports(session.id).len(), 2);

    // A drop re-arms it, and is reported with its reason.
    second.emit(PortEvent::Dropped {
        reason: "stream ended".into(),
    });
    s.recorder
        .wait_for("drop", |u| {
            matches!(u, EngineUpdate::Connecting { reason } if reason == "connection lost: stream ended")
        })
        .await;
    s.factory.port(session.id, 3).await;
    s.engine.stop(session.id).await.unwrap();
}

#[tokio::test]
async fn failing_opens_back_off_until_one_works() {
    let s = setup_with(fast());
    s.factory.fail_opens([
        PortError::Transient("database down".into()),
        PortError::Transient("database down".into()),
    ]);
    let session = session();
    s.engine.start(&session).await.unwrap();
    let port = s.factory.port(session.id, 1).await;
    let reasons: Vec<_> = s
        .recorder
        .all()
        .into_iter()
        .filter_map(|u| match u {
            EngineUpdate::Connecting { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("cannot open the linked device: database down"));
    port.emit(PortEvent::Connected {
        phone: Some(phone()),
    });
    wait_status(&s.engine, session.id, |st| {
        matches!(st, WebStatus::Connected { .. })
    })
    .await;
}

#[tokio::test]
async fn logout_from_the_phone_wipes_the_device_and_says_so() {
    let s = setup_with(WebConfig::default());
    let (session, port) = online(&s).await;
    port.emit(PortEvent::LoggedOut {
        reason: "removed from the phone".into(),
    });
    let u = s
        .recorder
        .wait_for("logged out", |u| {
            matches!(u, EngineUpdate::LoggedOut { .. })
        })
        .await;
    assert!(
        matches!(u, EngineUpdate::LoggedOut { reason } if reason.starts_with("logged_out:") && reason.contains("removed from the phone"))
    );
    assert_eq!(s.factory.forgotten(), vec![session.id]);
    wait_status(&s.engine, session.id, |st| {
        matches!(st, WebStatus::Ended { .. })
    })
    .await;
    // Refused at login with 401 counts the same.
    let (session2, port2) = online(&s).await;
    port2.emit(PortEvent::ConnectFailure {
        code: 401,
        reason: "logged out".into(),
        retrying: false,
    });
    s.recorder
        .wait_for("logged out 2", |u| {
            matches!(u, EngineUpdate::LoggedOut { reason } if reason.contains("401 logged out"))
        })
        .await;
    assert_eq!(s.factory.forgotten(), vec![session.id, session2.id]);
}

#[tokio::test]
async fn ban_replacement_and_refusals_are_distinct_terminal_statuses() {
    let cases = [
        (
            PortEvent::TemporaryBan {
                reason: "101: sent to too many people".into(),
                expires_in: Duration::from_secs(3600),
            },
            "temporary_ban: 101: sent to too many people (WhatsApp lifts it in 3600s)",
        ),
        (
            PortEvent::StreamReplaced,
            "stream_replaced: another WhatsApp Web client took over this linked device",
        ),
        (
            PortEvent::ConnectFailure {
                code: 405,
                reason: "client outdated".into(),
                retrying: false,
            },
            "connect_failure: 405 client outdated",
        ),
    ];
    for (event, expected) in cases {
        let s = setup_with(fast());
        let (session, port) = online(&s).await;
        port.emit(event);
        s.recorder
            .wait_for(
                expected,
                |u| matches!(u, EngineUpdate::Disconnected { reason } if reason == expected),
            )
            .await;
        wait_status(&s.engine, session.id, |st| {
            matches!(st, WebStatus::Ended { .. })
        })
        .await;
        // Never a silent loop: no new client, the link kept.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(s.factory.ports(session.id).len(), 1, "{expected}");
        assert!(s.factory.forgotten().is_empty());
        assert!(port.calls().contains(&FakeCall::Disconnect));
    }
}

#[tokio::test]
async fn a_retrying_connect_failure_stays_connecting() {
    let s = setup_with(WebConfig::default());
    let (session, port) = online(&s).await;
    port.emit(PortEvent::ConnectFailure {
        code: 503,
        reason: "service unavailable".into(),
        retrying: true,
    });
    let status = wait_status(&s.engine, session.id, |st| {
        matches!(st, WebStatus::Connecting { .. })
    })
    .await;
    assert_eq!(
        status,
        WebStatus::Connecting {
            reason: "connect_failure: 503 service unavailable".into()
        }
    );
}

fn outbound(content: Content, provider_id: &str) -> Outbound {
    Outbound {
        message_id: MessageId::generate(),
        provider_id: Some(provider_id.into()),
        to: jid("15559870001@s.whatsapp.net"),
        content,
        quoted_provider_id: None,
        attempt: 0,
    }
}

fn every_kind() -> Vec<Content> {
    use wharf_core::message::MessageKind as K;
    let media = |media, view_once| Content::Media {
        media,
        url: "https://cdn.example/f".into(),
        media_id: None,
        caption: None,
        file_name: None,
        mime_type: None,
        view_once,
    };
    vec![
        Content::Text { text: "hi".into() },
        media(K::Image, false),
        media(K::Image, true),
        media(K::Video, false),
        media(K::Document, false),
        media(K::Audio, false),
        media(K::Sticker, false),
        Content::Location {
            latitude: 1.5,
            longitude: 2.5,
            name: None,
            address: None,
        },
        Content::Contact {
            full_name: "Ann".into(),
            phone_number: "+15550001111".into(),
            organization: None,
        },
        Content::Poll {
            question: "q".into(),
            options: vec!["a".into(), "b".into()],
            multi_select: false,
        },
        Content::Reaction {
            target: None,
            target_provider_id: "3EB0AA".into(),
            emoji: "👍".into(),
        },
    ]
}

#[tokio::test]
async fn sends_every_kind_with_the_fixed_id_and_retries_reuse_it() {
    let s = setup_with(WebConfig::default());
    let (session, port) = online(&s).await;
    for (i, content) in every_kind().into_iter().enumerate() {
        if content.kind().is_media() {
            // Media goes through a fetch and an upload first (`media/tests.rs`).
            continue;
        }
        let id = format!("3EB0{i:028X}");
        let sent = s
            .engine
            .send(session.id, &outbound(content.clone(), &id))
            .await
            .unwrap();
        assert_eq!(sent.as_str(), id);
        let last = port.sent().pop().unwrap();
        assert_eq!((last.id.as_str(), &last.content), (id.as_str(), &content));
    }

    // A failure the crate reports as transient is retried with the same id.
    port.fail_sends([PortError::Transient("socket closed".into())]);
    let message = outbound(
        Content::Text {
            text: "again".into(),
        },
        "3EB0FIXED",
    );
    let first = s.engine.send(session.id, &message).await;
    assert!(matches!(first, Err(ref e) if e.is_retryable()), "{first:?}");
    let retry = Outbound {
        attempt: 1,
        ..message.clone()
    };
    assert_eq!(
        s.engine.send(session.id, &retry).await.unwrap(),
        "3EB0FIXED"
    );
    let ids: Vec<_> = port
        .sent()
        .into_iter()
        .rev()
        .take(2)
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["3EB0FIXED", "3EB0FIXED"]);

    // A quoted reply carries the quoted id.
    let reply = Outbound {
        quoted_provider_id: Some("3EB0QUOTED".into()),
        ..outbound(Content::Text { text: "re".into() }, "3EB0REPLY")
    };
    s.engine.send(session.id, &reply).await.unwrap();
    assert_eq!(
        port.sent().pop().unwrap().quoted_id.as_deref(),
        Some("3EB0QUOTED")
    );
}

#[tokio::test]
async fn send_errors_map_onto_the_engine_contract() {
    let s = setup_with(WebConfig::default());
    // Not running, or not online yet: retry later, session-wide.
    let offline = session();
    let e = s
        .engine
        .send(
            offline.id,
            &outbound(Content::Text { text: "x".into() }, "3EB01"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            EngineError::RetryLater {
                session_wide: true,
                ..
            }
        ),
        "{e:?}"
    );

    let (session, port) = online(&s).await;
    port.fail_sends([
        PortError::Rejected("invalid request: empty poll".into()),
        PortError::NotConnected,
        PortError::Throttled {
            reason: "rate-overlimit".into(),
            after: Duration::from_secs(30),
        },
    ]);
    let message = outbound(Content::Text { text: "x".into() }, "3EB02");
    let send = || s.engine.send(session.id, &message);
    assert_eq!(
        send().await.unwrap_err(),
        EngineError::Permanent("invalid request: empty poll".into())
    );
    assert!(matches!(
        send().await.unwrap_err(),
        EngineError::RetryLater {
            session_wide: true,
            ..
        }
    ));
    assert_eq!(
        send().await.unwrap_err(),
        EngineError::RetryLater {
            reason: "rate-overlimit".into(),
            after_ms: Some(30_000),
            session_wide: true
        }
    );

    // Without a fixed id the engine refuses rather than risk a duplicate.
    let no_id = Outbound {
        provider_id: None,
        ..outbound(Content::Text { text: "x".into() }, "unused")
    };
    assert!(matches!(
        s.engine.send(session.id, &no_id).await.unwrap_err(),
        EngineError::Permanent(_)
    ));
}

#[tokio::test]
async fn capabilities_refuse_what_linked_devices_cannot_do() {
    let s = setup_with(WebConfig::default());
    let channel = jid("120363000000@newsletter");
    let buttons = Content::Buttons {
        body: "b".into(),
        header: None,
        footer: None,
        buttons: vec![],
    };
    assert_eq!(
        s.engine
            .refusal(&buttons, &jid("1@s.whatsapp.net"), false)
            .as_deref(),
        Some("buttons messages")
    );
    let user = jid("1@s.whatsapp.net");
    for content in every_kind() {
        let refusal = s.engine.refusal(&content, &user, false);
        if content.kind().is_media() {
            // Not claimed until media by URL is fetched and uploaded.
            assert_eq!(
                refusal,
                Some(format!("{} messages", content.kind().as_str()))
            );
        } else {
            assert_eq!(refusal, None, "{content:?}");
        }
    }
    assert_eq!(
        s.engine
            .refusal(&Content::Text { text: "t".into() }, &channel, false),
        None
    );
    let location = every_kind().remove(7);
    assert_eq!(
        s.engine.refusal(&location, &channel, false).as_deref(),
        Some("location posts in channels (text only)")
    );
}

#[tokio::test]
async fn actions_and_presence_reach_the_client() {
    let s = setup_with(WebConfig::default());
    let (session, port) = online(&s).await;
    let chat = jid("15559870001@s.whatsapp.net");
    s.engine
        .act(
            session.id,
            &MessageAction::Edit {
                chat: chat.clone(),
                provider_id: "3EB0A".into(),
                text: "fixed".into(),
            },
        )
        .await
        .unwrap();
    s.engine
        .act(
            session.id,
            &MessageAction::Revoke {
                chat: chat.clone(),
                provider_id: "3EB0A".into(),
            },
        )
        .await
        .unwrap();
    s.engine
        .act(
            session.id,
            &MessageAction::MarkRead {
                chat: chat.clone(),
                provider_ids: vec!["X1".into()],
                senders: vec![Some(chat.clone())],
            },
        )
        .await
        .unwrap();
    let group_read = s
        .engine
        .act(
            session.id,
            &MessageAction::MarkRead {
                chat: jid("1203630-1@g.us"),
                provider_ids: vec!["X2".into()],
                senders: vec![None],
            },
        )
        .await;
    assert!(
        matches!(group_read, Err(EngineError::Permanent(_))),
        "a group receipt without its sender is refused: {group_read:?}"
    );
    // With the senders, one receipt per participant who wrote.
    let (alice, bob) = (
        jid("15550100001@s.whatsapp.net"),
        jid("15550100002@s.whatsapp.net"),
    );
    s.engine
        .act(
            session.id,
            &MessageAction::MarkRead {
                chat: jid("1203630-1@g.us"),
                provider_ids: vec!["G1".into(), "G2".into(), "G3".into()],
                senders: vec![Some(alice.clone()), Some(bob.clone()), Some(alice.clone())],
            },
        )
        .await
        .unwrap();
    s.engine
        .presence(session.id, Some(&chat), Presence::Composing)
        .await
        .unwrap();
    let acts: Vec<_> = port
        .calls()
        .into_iter()
        .filter(|c| matches!(c, FakeCall::Act(_) | FakeCall::Presence(..)))
        .collect();
    assert_eq!(acts.len(), 6, "{acts:?}");
    assert!(
        matches!(&acts[0], FakeCall::Act(super::PortAction::Edit { target_id, text, .. })
        if target_id == "3EB0A" && text == "fixed")
    );
    assert!(
        matches!(&acts[2], FakeCall::Act(super::PortAction::MarkRead { sender: None, ids, .. }) if ids == &["X1"])
    );
    assert!(
        matches!(&acts[3], FakeCall::Act(super::PortAction::MarkRead { sender: Some(s), ids, .. })
        if *s == alice && ids == &["G1", "G3"]),
        "{:?}",
        acts[3]
    );
    assert!(
        matches!(&acts[4], FakeCall::Act(super::PortAction::MarkRead { sender: Some(s), ids, .. })
        if *s == bob && ids == &["G2"])
    );
    assert_eq!(acts[5], FakeCall::Presence(Some(chat), Presence::Composing));
}

#[tokio::test]
async fn inbound_messages_are_committed_before_the_ack() {
    let s = setup_with(WebConfig::default());
    let (_session, port) = online(&s).await;
    let inbound = EngineUpdate::Inbound(Inbound {
        provider_id: "3EB0IN".into(),
        chat: jid("15559870001@s.whatsapp.net"),
        sender: jid("15559870001@s.whatsapp.net"),
        chat_lid: Some(jid("123456789@lid")),
        sender_lid: Some(jid("123456789@lid")),
        content: Content::Text {
            text: "hello".into(),
        },
        sent_at: 1,
        quoted_provider_id: None,
    });

    // The database fails: no ack, so WhatsApp redelivers.
    *s.recorder.failing.lock().unwrap() = true;
    let refused = port.deliver(vec![inbound.clone()]).await;
    assert!(refused.unwrap_err().contains("database unavailable"));
    assert!(port.acked().is_empty());
    assert!(
        s.recorder
            .all()
            .iter()
            .all(|u| !matches!(u, EngineUpdate::Inbound(_)))
    );

    // Redelivered once the database is back: committed, then acked.
    *s.recorder.failing.lock().unwrap() = false;
    port.deliver(vec![inbound.clone()]).await.unwrap();
    assert_eq!(port.acked(), vec![vec![inbound.clone()]]);
    assert!(s.recorder.all().contains(&inbound));
}

#[tokio::test]
async fn stop_closes_the_client_and_does_not_hang() {
    let s = setup_with(fast());
    let (session, port) = online(&s).await;
    s.engine.stop(session.id).await.unwrap();
    assert!(port.calls().contains(&FakeCall::Disconnect));
    assert_eq!(s.engine.status(session.id), None);

    // A client stuck closing is abandoned after the stop timeout.
    s.factory.hang_on_disconnect();
    let (session, _port) = online(&s).await;
    let started = tokio::time::Instant::now();
    s.engine.stop(session.id).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn logout_unlinks_and_wipes_the_device() {
    let s = setup_with(WebConfig::default());
    let (session, port) = online(&s).await;
    s.engine.logout(session.id).await.unwrap();
    assert!(port.calls().contains(&FakeCall::Logout));
    assert_eq!(s.factory.forgotten(), vec![session.id]);
    assert_eq!(s.engine.status(session.id), None);
}

#[tokio::test]
async fn pacing_is_conservative_and_configurable_per_session() {
    let s = setup_with(WebConfig::default());
    let id = SessionId::generate();
    assert_eq!(s.engine.pacing(id), Some(super::DEFAULT_WEB_PACING));
    let custom = Pacing {
        per_second: 3,
        pair_burst: 2,
        pair_interval_ms: 1_000,
        jitter_ms: 500,
        daily_cap: Some(200),
    };
    s.engine.set_pacing(id, custom);
    assert_eq!(s.engine.pacing(id), Some(custom));
}

#[tokio::test]
async fn receipts_and_other_updates_pass_to_the_sink() {
    let s = setup_with(WebConfig::default());
    let (_session, port) = online(&s).await;
    let receipt = EngineUpdate::Receipt {
        provider_id: "3EB0R".into(),
        kind: wharf_core::message::ReceiptKind::Read,
        at: 5,
    };
    port.emit(PortEvent::Updates(vec![receipt.clone()]));
    s.recorder.wait_for("receipt", |u| *u == receipt).await;
}

/// The real client against a loopback address where nothing listens: the failed connects
/// (silent in the crate) show as `connecting` with their reason, and stop does not hang.
#[tokio::test]
async fn real_client_reports_an_unreachable_endpoint_and_stops() {
    use super::{
        client::{InMemoryDevices, WhatsAppFactory},
        http::ReqwestHttp,
    };
    // reqwest needs a rustls crypto provider; the crate's TLS setup installs ring.
    let _ = whatsapp_rust::transport::default_tls_connector();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("ws://{}/ws/chat", closed.local_addr().unwrap());
    drop(closed);
    let factory = WhatsAppFactory::new(
        Arc::new(InMemoryDevices::default()),
        Arc::new(ReqwestHttp::new(reqwest::Client::new())),
        endpoint.clone(),
    )
    .with_version((2, 3000, 1_023_000_000));
    let recorder = Arc::new(Recorder::default());
    let sink: Arc<dyn EngineSink> = recorder.clone();
    let engine = WebEngine::new(
        Arc::new(factory),
        Arc::downgrade(&sink),
        WebConfig {
            endpoint,
            ..WebConfig::default()
        },
    );
    let session = session();
    engine.start(&session).await.unwrap();
    let update = recorder
        .wait_for("connecting", |u| {
            matches!(u, EngineUpdate::Connecting { .. })
        })
        .await;
    let EngineUpdate::Connecting { reason } = update else {
        unreachable!()
    };
    assert!(reason.starts_with("connect failed:"), "{reason}");
    assert!(matches!(
        engine.status(session.id),
        Some(WebStatus::Connecting { .. })
    ));
    let started = tokio::time::Instant::now();
    engine.stop(session.id).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(engine.status(session.id), None);
}
