//! The real port: one whatsapp-rust `Client` per session lifetime, over the session's stored
//! device. Nothing else in Wharf names the crate's client.

use std::{
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use async_trait::async_trait;
use tokio::{sync::mpsc, task::JoinHandle};
use wharf_core::{
    EngineUpdate, Jid, Phone, SessionId,
    message::{Content, MessageKind, Presence},
    time::now_millis,
};
use whatsapp_rust::{
    Client, ClientBuilder, InboundDurabilityHook, RevokeType, SendError, SendOptions, TokioRuntime,
    UploadOptions, anyhow, async_channel,
    download::{DownloadParams, MediaType},
    http::HttpClient,
    pair_code::PairCodeOptions,
    proto_helpers::{MessageBuilderExt, MessageExt},
    store::{persistence_manager::PersistenceManager, traits::Backend},
    transport::{TokioWebSocketTransportFactory, Transport, TransportEvent, TransportFactory},
    types::{
        events::{Event, EventHandler, InboundMessage, Subscription},
        message::MessageInfo,
    },
    waproto::whatsapp as wa,
};

mod social;

pub use self::social::map_iq_error;
use super::{
    convert::{self, Quote, Uploaded},
    port::{
        InboundCommit, MediaRef, OpenedPort, PortAction, PortError, PortEvent, PortMessage,
        WebPort, WebPortFactory,
    },
};

/// Where each session's linked device is stored (implemented on Wharf's database in
/// `wharf-store`; [`InMemoryDevices`] for tests).
#[async_trait]
pub trait WebDeviceStores: Send + Sync {
    /// The crate's storage backend for `session`'s device.
    async fn backend(&self, session: SessionId) -> Result<Arc<dyn Backend>, String>;
    /// Deletes everything stored for `session`'s device.
    async fn forget(&self, session: SessionId) -> Result<(), String>;
}

/// Devices kept in memory only (lost on restart): for tests and benchmarks.
#[derive(Default)]
pub struct InMemoryDevices {
    backends: Mutex<std::collections::HashMap<SessionId, Arc<dyn Backend>>>,
}

#[async_trait]
impl WebDeviceStores for InMemoryDevices {
    async fn backend(&self, session: SessionId) -> Result<Arc<dyn Backend>, String> {
        let mut backends = self.backends.lock().unwrap();
        let backend = backends.entry(session).or_insert_with(|| {
            let fresh: Arc<dyn Backend> =
                Arc::new(whatsapp_rust::wacore::store::InMemoryBackend::new());
            fresh
        });
        Ok(backend.clone())
    }

    async fn forget(&self, session: SessionId) -> Result<(), String> {
        self.backends.lock().unwrap().remove(&session);
        Ok(())
    }
}

/// Builds whatsapp-rust clients.
pub struct WhatsAppFactory {
    stores: Arc<dyn WebDeviceStores>,
    http: Arc<dyn HttpClient>,
    endpoint: String,
    version: Option<(u32, u32, u32)>,
}

impl WhatsAppFactory {
    /// Clients connecting to `endpoint` (a `wss://` or, for tests, `ws://` URL).
    pub fn new(
        stores: Arc<dyn WebDeviceStores>,
        http: Arc<dyn HttpClient>,
        endpoint: impl Into<String>,
    ) -> Self {
        Self {
            stores,
            http,
            endpoint: endpoint.into(),
            version: None,
        }
    }

    /// Announces this WhatsApp Web version instead of fetching the current one from
    /// web.whatsapp.com (tests and benchmarks must never reach WhatsApp).
    pub fn with_version(mut self, version: (u32, u32, u32)) -> Self {
        self.version = Some(version);
        self
    }
}

/// The transport factory, reporting every failed connect (the crate itself only logs them).
struct Reporting {
    inner: TokioWebSocketTransportFactory,
    events: mpsc::UnboundedSender<PortEvent>,
}

#[async_trait]
impl TransportFactory for Reporting {
    async fn create_transport(
        &self,
    ) -> Result<(Arc<dyn Transport>, async_channel::Receiver<TransportEvent>), anyhow::Error> {
        let _ = self.events.send(PortEvent::Connecting);
        self.inner.create_transport().await.inspect_err(|e| {
            let _ = self.events.send(PortEvent::ConnectFailed {
                reason: format!("{e:#}"),
            });
        })
    }
}

/// The durability hook: converts a batch and commits it before the client acks it.
struct Hook {
    commit: Arc<dyn InboundCommit>,
}

#[async_trait]
impl InboundDurabilityHook for Hook {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> anyhow::Result<()> {
        let mut updates = Vec::with_capacity(batch.len());
        for m in batch {
            let Some(mut update) = convert::inbound_update(&m.message, &m.info) else {
                continue;
            };
            if let EngineUpdate::Inbound(inbound) = &mut update
                && let Some(vote) = m.message.get_base_message().poll_update_message.as_option()
            {
                match open_vote(&client, vote, &m.info).await {
                    Ok(content) => inbound.content = content,
                    // Kept as an unreadable `poll_vote` naming the poll.
                    Err(why) => {
                        tracing::warn!(id = %m.info.id, "a poll vote stays encrypted: {why}")
                    }
                }
            }
            updates.push(update);
        }
        if updates.is_empty() {
            return Ok(());
        }
        self.commit
            .commit(updates)
            .await
            .map_err(|e| anyhow::anyhow!("committing inbound messages: {e}"))
    }
}

/// Decrypts a poll vote with the poll's secret, which the client's store keeps (for polls
/// this device sent, and for polls it received) under the chat, the poll's creator and the
/// poll's id. Who created the poll is not said outright, so the candidates are tried: this
/// account (by phone number and LID), the key's participant or chat, the voter, each in
/// both addressings when WhatsApp gave the other.
async fn open_vote(
    client: &Client,
    vote: &wa::message::PollUpdateMessage,
    info: &MessageInfo,
) -> Result<Content, String> {
    let key = vote
        .poll_creation_message_key
        .as_option()
        .ok_or("the vote names no poll")?;
    let poll_id = key.id.as_deref().ok_or("the vote names no poll")?;
    let src = &info.source;
    let mut chats = vec![src.chat.to_non_ad()];
    let mut creators: Vec<whatsapp_rust::Jid> =
        client.pn().into_iter().chain(client.lid()).collect();
    for text in [key.participant.as_deref(), key.remote_jid.as_deref()]
        .into_iter()
        .flatten()
    {
        if let Ok(j) = text.parse::<whatsapp_rust::Jid>() {
            creators.push(j);
        }
    }
    let mut voters = vec![src.sender.to_non_ad()];
    if let Some(alt) = &src.sender_alt {
        if !src.is_group {
            chats.push(alt.to_non_ad());
        }
        voters.push(alt.to_non_ad());
    }
    creators.extend(voters.iter().cloned());
    let backend = client.persistence_manager().backend();
    for chat in &chats {
        for creator in &creators {
            let secret = backend
                .get_msg_secret(
                    &chat.to_non_ad_string(),
                    &creator.to_non_ad_string(),
                    poll_id,
                )
                .await
                .map_err(|e| format!("reading the poll's secret: {e:#}"))?;
            let Some(secret) = secret else { continue };
            let mut last = String::new();
            for voter in &voters {
                match convert::decrypt_vote(vote, &secret, creator, voter) {
                    Ok(hashes) => return Ok(convert::vote_content(poll_id, &hashes)),
                    Err(e) => last = e,
                }
            }
            return Err(last);
        }
    }
    Err("no secret is kept for this poll".into())
}

/// Forwards client events as port events; only enqueues (it runs on the read loop).
struct Events {
    tx: mpsc::UnboundedSender<PortEvent>,
    client: Mutex<Weak<Client>>,
}

impl EventHandler for Events {
    fn handle_event(&self, event: Arc<Event>) {
        let client = self.client.lock().unwrap().upgrade();
        let own = client.as_ref().and_then(|c| c.pn());
        if let Some(e) = convert::port_event(&event, own.as_ref()) {
            let _ = self.tx.send(e);
            return;
        }
        let own = convert::social::Own {
            pn: own,
            lid: client.as_ref().and_then(|c| c.lid()),
        };
        if let Some(e) = convert::social::port_event(&event, &own) {
            let _ = self.tx.send(e);
        }
    }
}

#[async_trait]
impl WebPortFactory for WhatsAppFactory {
    async fn open(
        &self,
        session: SessionId,
        inbound: Arc<dyn InboundCommit>,
    ) -> Result<OpenedPort, PortError> {
        let backend = self
            .stores
            .backend(session)
            .await
            .map_err(PortError::Transient)?;
        let persistence = PersistenceManager::new(backend)
            .await
            .map_err(|e| PortError::Transient(format!("loading the linked device: {e}")))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let transport = Reporting {
            inner: TokioWebSocketTransportFactory::new().with_url(self.endpoint.clone()),
            events: tx.clone(),
        };
        let mut builder = ClientBuilder::new()
            .with_runtime(TokioRuntime)
            .with_persistence_manager(Arc::new(persistence))
            .with_transport_factory(transport)
            .with_http_client_arc(self.http.clone())
            .with_inbound_durability_hook(Hook { commit: inbound })
            .with_skip_history_sync(true)
            // Without a saver the paired device is only written on disconnect.
            .with_background_saver_interval(Duration::from_secs(30));
        if let Some(v) = self.version {
            builder = builder.with_version_override(v);
        }
        let client = builder
            .build()
            .await
            .map_err(|e| PortError::Transient(format!("building the client: {e}")))?
            .into_client();
        let events = Arc::new(Events {
            tx,
            client: Mutex::new(Arc::downgrade(&client)),
        });
        // Subscribed before running, or the first QR is lost.
        let subscription = client.subscribe_handler(events);
        Ok(OpenedPort {
            port: Arc::new(WhatsAppPort {
                client,
                run: Mutex::new(None),
                _subscription: subscription,
            }),
            events: rx,
        })
    }

    async fn forget(&self, session: SessionId) -> Result<(), PortError> {
        self.stores
            .forget(session)
            .await
            .map_err(PortError::Transient)
    }
}

/// One client lifetime.
pub struct WhatsAppPort {
    client: Arc<Client>,
    run: Mutex<Option<JoinHandle<()>>>,
    _subscription: Subscription,
}

/// How long a close may take (two bounded 5 s flushes in the crate) before the client's
/// task is abandoned; a connect in flight is not cancelled by the crate.
const CLOSE_LIMIT: Duration = Duration::from_secs(12);

impl WhatsAppPort {
    fn abort_run(&self) {
        if let Some(task) = self.run.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Builds the protocol message (with its uploaded file, for media) and sends it with
    /// its fixed id.
    async fn send_built(
        &self,
        message: &PortMessage,
        upload: Option<Uploaded>,
    ) -> Result<(), PortError> {
        let to = jid(&message.to)?;
        let quote = message.quoted_id.as_ref().map(|id| Quote {
            id: id.clone(),
            participant: None,
        });
        let body = convert::outbound_message(
            &message.content,
            &message.to,
            quote.as_ref(),
            upload,
            now_millis(),
        )
        .map_err(PortError::Rejected)?;
        self.client
            .send_message_with_options(
                to,
                body,
                SendOptions::default().with_message_id(&message.id),
            )
            .await
            .map(|_| ())
            .map_err(map_send_error)
    }
}

fn jid(j: &Jid) -> Result<whatsapp_rust::Jid, PortError> {
    convert::to_wa_jid(j).map_err(PortError::Rejected)
}

/// The crate's media type (which picks the encryption keys) of a Wharf media kind.
fn media_type(kind: MessageKind) -> Result<MediaType, PortError> {
    Ok(match kind {
        MessageKind::Image => MediaType::Image,
        MessageKind::Video => MediaType::Video,
        MessageKind::Audio => MediaType::Audio,
        MessageKind::Document => MediaType::Document,
        MessageKind::Sticker => MediaType::Sticker,
        other => {
            return Err(PortError::Rejected(format!(
                "{} is not a media kind",
                other.as_str()
            )));
        }
    })
}

/// Maps the crate's send failures.
pub fn map_send_error(e: SendError) -> PortError {
    match e {
        SendError::NotLoggedIn => PortError::NotConnected,
        SendError::Client(c) if c.is_transport_unavailable() => PortError::NotConnected,
        SendError::InvalidRequest(why) => PortError::Rejected(why),
        other => PortError::Transient(other.to_string()),
    }
}

#[async_trait]
impl WebPort for WhatsAppPort {
    async fn connect(&self) -> Result<(), PortError> {
        let client = self.client.clone();
        let mut run = self.run.lock().unwrap();
        if run.is_none() {
            *run = Some(tokio::spawn(async move { client.run().await }));
        }
        Ok(())
    }

    async fn disconnect(&self) {
        if tokio::time::timeout(CLOSE_LIMIT, self.client.disconnect())
            .await
            .is_err()
        {
            tracing::warn!("the WhatsApp Web client did not close in time");
        }
        self.abort_run();
    }

    async fn logout(&self) {
        if tokio::time::timeout(CLOSE_LIMIT, self.client.logout())
            .await
            .is_err()
        {
            tracing::warn!("the WhatsApp Web client did not log out in time");
        }
        self.abort_run();
    }

    async fn pair_code(&self, phone: &Phone) -> Result<String, PortError> {
        let options = PairCodeOptions {
            phone_number: phone.digits().to_owned(),
            ..Default::default()
        };
        self.client
            .pair_with_code(options)
            .await
            .map_err(|e| match e.backoff() {
                Some(after) => PortError::Throttled {
                    reason: e.to_string(),
                    after,
                },
                None => PortError::Rejected(e.to_string()),
            })
    }

    async fn send(&self, message: &PortMessage) -> Result<(), PortError> {
        if matches!(message.content, Content::Media { .. }) {
            // Its file must be uploaded first: the engine goes through `send_media`.
            return Err(PortError::Rejected(
                "a media message needs its uploaded file".into(),
            ));
        }
        self.send_built(message, None).await
    }

    async fn upload(&self, kind: MessageKind, data: Vec<u8>) -> Result<Uploaded, PortError> {
        let media_type = media_type(kind)?;
        if !self.client.is_logged_in() {
            return Err(PortError::NotConnected);
        }
        let up = self
            .client
            .upload(data, media_type, UploadOptions::default())
            .await
            .map_err(|e| PortError::Transient(format!("uploading the file to WhatsApp: {e:#}")))?;
        Ok(Uploaded {
            url: up.url,
            direct_path: up.direct_path,
            media_key: up.media_key.to_vec(),
            file_sha256: up.file_sha256.to_vec(),
            file_enc_sha256: up.file_enc_sha256.to_vec(),
            file_length: up.file_length,
            media_key_timestamp: up.media_key_timestamp,
        })
    }

    async fn send_media(&self, message: &PortMessage, upload: &Uploaded) -> Result<(), PortError> {
        self.send_built(message, Some(upload.clone())).await
    }

    async fn download(&self, media: &MediaRef) -> Result<Vec<u8>, PortError> {
        let params = DownloadParams::encrypted(
            media.direct_path.clone(),
            &media.media_key,
            &media.file_sha256,
            &media.file_enc_sha256,
            media.file_length,
            media_type(media.kind)?,
        );
        if !self.client.is_logged_in() {
            return Err(PortError::NotConnected);
        }
        self.client
            .download_from_params(&params)
            .await
            .map_err(|e| {
                let text = format!("{e:#}");
                if text.contains("rejected the media reference") {
                    PortError::Rejected(format!(
                        "WhatsApp no longer has this file (its reference expired): {text}"
                    ))
                } else {
                    PortError::Transient(format!("downloading the file from WhatsApp: {text}"))
                }
            })
    }

    async fn act(&self, action: &PortAction) -> Result<(), PortError> {
        match action {
            PortAction::Edit {
                chat,
                target_id,
                text,
            } => self
                .client
                .edit_message(
                    jid(chat)?,
                    target_id.clone(),
                    wa::Message::text(text.clone()),
                )
                .await
                .map(|_| ())
                .map_err(map_send_error),
            PortAction::Revoke { chat, target_id } => self
                .client
                .revoke_message(jid(chat)?, target_id.clone(), RevokeType::Sender)
                .await
                .map_err(map_send_error),
            PortAction::MarkRead { chat, sender, ids } => {
                let chat = jid(chat)?;
                let sender = sender.as_ref().map(jid).transpose()?;
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                self.client
                    .mark_as_read(&chat, sender.as_ref(), &ids)
                    .await
                    .map_err(|e| PortError::Transient(format!("{e:#}")))
            }
        }
    }

    async fn presence(&self, to: Option<&Jid>, presence: Presence) -> Result<(), PortError> {
        let failed = |e: &dyn std::fmt::Display| PortError::Transient(e.to_string());
        match (presence, to) {
            (Presence::Available, _) => self
                .client
                .presence()
                .set_available()
                .await
                .map_err(|e| failed(&e)),
            (Presence::Unavailable, _) => self
                .client
                .presence()
                .set_unavailable()
                .await
                .map_err(|e| failed(&e)),
            (_, None) => Err(PortError::Rejected(
                "typing, recording and paused need a chat".into(),
            )),
            (state, Some(chat)) => {
                let chat = jid(chat)?;
                let chatstate = self.client.chatstate();
                let answer = match state {
                    Presence::Composing => chatstate.send_composing(&chat).await,
                    Presence::Recording => chatstate.send_recording(&chat).await,
                    _ => chatstate.send_paused(&chat).await,
                };
                answer.map_err(|e| failed(&e))
            }
        }
    }
}
