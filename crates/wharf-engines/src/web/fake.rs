//! A scripted [`WebPort`] for tests (re-exported by `wharf-testkit`): tests play WhatsApp by
//! pushing [`PortEvent`]s into the port the engine opened, delivering inbound messages through
//! the engine's durability hook, and reading back what the engine asked the client to do.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc};
use wharf_core::{
    EngineUpdate, Jid, Phone, SessionId,
    message::{MessageKind, Presence},
};

pub use self::social::{SocialAnswer, SocialCall};
use super::port::{
    InboundCommit, MediaRef, OpenedPort, PortAction, PortError, PortEvent, PortMessage, Uploaded,
    WebPort, WebPortFactory,
};

mod social;

/// What the engine asked of one fake client.
#[derive(Debug, Clone, PartialEq)]
pub enum FakeCall {
    Connect,
    Disconnect,
    Logout,
    PairCode(Phone),
    Send(PortMessage),
    Act(PortAction),
    Presence(Option<Jid>, Presence),
    /// A file uploaded: its kind and its bytes.
    Upload(MessageKind, Vec<u8>),
    /// A media message sent with the file uploaded for it.
    SendMedia(PortMessage, Uploaded),
    Download(MediaRef),
    /// A contacts, groups or channels request.
    Social(SocialCall),
}

/// What the fake's upload answers for `data`: a reference derived from the bytes, so a test
/// can tell which file went with which message.
pub fn fake_upload(data: &[u8]) -> Uploaded {
    let n = u8::try_from(data.len() % 251).unwrap_or(0);
    Uploaded {
        url: format!("https://mmg.whatsapp.net/fake/{}", data.len()),
        direct_path: format!("/v/fake/{}", data.len()),
        media_key: vec![n; 32],
        file_sha256: vec![n.wrapping_add(1); 32],
        file_enc_sha256: vec![n.wrapping_add(2); 32],
        file_length: data.len() as u64,
        media_key_timestamp: 1_700_000_000,
    }
}

/// One fake client lifetime, as a test drives it.
pub struct FakePort {
    events: mpsc::UnboundedSender<PortEvent>,
    hook: Arc<dyn InboundCommit>,
    calls: Mutex<Vec<FakeCall>>,
    /// Answers to the next sends, in order; `Ok` once empty.
    send_results: Mutex<VecDeque<Result<(), PortError>>>,
    /// Inbound batches WhatsApp got an ack for.
    acked: Mutex<Vec<Vec<EngineUpdate>>>,
    /// Whether `connect` fails.
    connect_error: Mutex<Option<PortError>>,
    /// Whether `disconnect` never returns (a client stuck in a connect).
    hang_on_disconnect: bool,
    /// Files on the fake media servers, by direct path.
    files: Mutex<HashMap<String, Vec<u8>>>,
    /// Answers to the next contacts, groups and channels requests, in order.
    social_answers: Mutex<VecDeque<SocialAnswer>>,
}

impl FakePort {
    /// Reports `event` as the client would.
    pub fn emit(&self, event: PortEvent) {
        let _ = self.events.send(event);
    }

    /// Delivers inbound updates the way the client does with a durability hook: the ack
    /// goes out only once the hook committed them. Returns the hook's answer.
    pub async fn deliver(&self, updates: Vec<EngineUpdate>) -> Result<(), String> {
        self.hook.commit(updates.clone()).await?;
        self.acked.lock().unwrap().push(updates);
        Ok(())
    }

    /// Inbound batches acknowledged to WhatsApp.
    pub fn acked(&self) -> Vec<Vec<EngineUpdate>> {
        self.acked.lock().unwrap().clone()
    }

    /// Everything asked of this client so far.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.calls.lock().unwrap().clone()
    }

    /// The messages sent through this client.
    pub fn sent(&self) -> Vec<PortMessage> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                FakeCall::Send(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Makes the next sends answer `results`, in order.
    pub fn fail_sends(&self, results: impl IntoIterator<Item = PortError>) {
        self.send_results
            .lock()
            .unwrap()
            .extend(results.into_iter().map(Err));
    }

    /// Puts a file on the fake media servers, where `download` finds it by its direct path.
    pub fn put_file(&self, direct_path: &str, bytes: Vec<u8>) {
        self.files
            .lock()
            .unwrap()
            .insert(direct_path.to_owned(), bytes);
    }

    fn record(&self, call: FakeCall) {
        self.calls.lock().unwrap().push(call);
    }
}

#[async_trait]
impl WebPort for FakePort {
    async fn connect(&self) -> Result<(), PortError> {
        self.record(FakeCall::Connect);
        match self.connect_error.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => {
                self.emit(PortEvent::Connecting);
                Ok(())
            }
        }
    }

    async fn disconnect(&self) {
        self.record(FakeCall::Disconnect);
        if self.hang_on_disconnect {
            std::future::pending::<()>().await;
        }
    }

    async fn logout(&self) {
        self.record(FakeCall::Logout);
    }

    async fn pair_code(&self, phone: &Phone) -> Result<String, PortError> {
        self.record(FakeCall::PairCode(phone.clone()));
        let code = "ABCD1234".to_owned();
        self.emit(PortEvent::PairCode { code: code.clone() });
        Ok(code)
    }

    async fn send(&self, message: &PortMessage) -> Result<(), PortError> {
        self.record(FakeCall::Send(message.clone()));
        self.send_results
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(()))
    }

    async fn act(&self, action: &PortAction) -> Result<(), PortError> {
        self.record(FakeCall::Act(action.clone()));
        Ok(())
    }

    async fn presence(&self, to: Option<&Jid>, presence: Presence) -> Result<(), PortError> {
        self.record(FakeCall::Presence(to.cloned(), presence));
        Ok(())
    }

    async fn upload(&self, kind: MessageKind, data: Vec<u8>) -> Result<Uploaded, PortError> {
        let uploaded = fake_upload(&data);
        self.record(FakeCall::Upload(kind, data));
        Ok(uploaded)
    }

    async fn send_media(&self, message: &PortMessage, upload: &Uploaded) -> Result<(), PortError> {
        self.record(FakeCall::SendMedia(message.clone(), upload.clone()));
        self.send_results
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(()))
    }

    async fn download(&self, media: &MediaRef) -> Result<Vec<u8>, PortError> {
        self.record(FakeCall::Download(media.clone()));
        self.files
            .lock()
            .unwrap()
            .get(&media.direct_path)
            .cloned()
            .ok_or_else(|| PortError::Rejected("the media reference is unknown".into()))
    }
}

/// Opens [`FakePort`]s and keeps them for the test to drive.
#[derive(Default)]
pub struct FakeWebFactory {
    opened: Mutex<HashMap<SessionId, Vec<Arc<FakePort>>>>,
    forgotten: Mutex<Vec<SessionId>>,
    /// Errors the next `open`s answer, in order.
    open_errors: Mutex<VecDeque<PortError>>,
    /// Whether the next ports fail to connect.
    connect_error: Mutex<Option<PortError>>,
    hang_on_disconnect: Mutex<bool>,
    opened_signal: Notify,
}

impl FakeWebFactory {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Every client opened for `session`, oldest first.
    pub fn ports(&self, session: SessionId) -> Vec<Arc<FakePort>> {
        self.opened
            .lock()
            .unwrap()
            .get(&session)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits (up to 5 s) until `session` has had `count` clients, and returns the last.
    pub async fn port(&self, session: SessionId, count: usize) -> Arc<FakePort> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let notified = self.opened_signal.notified();
            let ports = self.ports(session);
            if ports.len() >= count {
                return ports[count - 1].clone();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "{session}: {} clients opened, waited for {count}",
                    ports.len()
                );
            }
        }
    }

    /// Sessions whose stored device was wiped.
    pub fn forgotten(&self) -> Vec<SessionId> {
        self.forgotten.lock().unwrap().clone()
    }

    /// Makes the next opens fail with `errors`, in order.
    pub fn fail_opens(&self, errors: impl IntoIterator<Item = PortError>) {
        self.open_errors.lock().unwrap().extend(errors);
    }

    /// Makes every later client fail (or succeed, with `None`) to start connecting.
    pub fn fail_connects(&self, error: Option<PortError>) {
        *self.connect_error.lock().unwrap() = error;
    }

    /// Makes later clients never return from `disconnect`.
    pub fn hang_on_disconnect(&self) {
        *self.hang_on_disconnect.lock().unwrap() = true;
    }
}

#[async_trait]
impl WebPortFactory for FakeWebFactory {
    async fn open(
        &self,
        session: SessionId,
        inbound: Arc<dyn InboundCommit>,
    ) -> Result<OpenedPort, PortError> {
        if let Some(e) = self.open_errors.lock().unwrap().pop_front() {
            return Err(e);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let port = Arc::new(FakePort {
            events: tx,
            hook: inbound,
            calls: Mutex::new(Vec::new()),
            send_results: Mutex::new(VecDeque::new()),
            acked: Mutex::new(Vec::new()),
            connect_error: Mutex::new(self.connect_error.lock().unwrap().clone()),
            hang_on_disconnect: *self.hang_on_disconnect.lock().unwrap(),
            files: Mutex::new(HashMap::new()),
            social_answers: Mutex::new(VecDeque::new()),
        });
        self.opened
            .lock()
            .unwrap()
            .entry(session)
            .or_default()
            .push(port.clone());
        self.opened_signal.notify_waiters();
        Ok(OpenedPort { port, events: rx })
    }

    async fn forget(&self, session: SessionId) -> Result<(), PortError> {
        self.forgotten.lock().unwrap().push(session);
        Ok(())
    }
}
