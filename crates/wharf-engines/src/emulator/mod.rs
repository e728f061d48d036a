//! The emulator: an in-process simulated WhatsApp network. It behaves like a phone and its
//! linked device would, through the same [`Engine`] contract as the real engines: starting
//! an unlinked session produces a real-format QR payload and waits for a scan; starting a
//! linked one reconnects without a QR; stop keeps the link; logout removes it.
//!
//! The scan itself is the emulator's control surface (`/emulator/sessions/{id}/scan` in the
//! server), standing in for a person pointing their phone at the QR.

mod receipts;
mod social;
mod world;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use async_trait::async_trait;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use rand::RngCore;
use wharf_core::{
    Capabilities, Engine, EngineError, EngineKind, EngineSink, EngineUpdate, Jid, Phone, SessionId,
    engine::EngineSession,
    jid::JidServer,
    message::{
        Content, Inbound, MessageAction, MessageKind, Outbound, Presence, ProviderId, ReceiptKind,
        new_provider_id,
    },
    social::{
        ChannelInfo, EngineContact, GroupChange, GroupInfo, InvitePreview, ParticipantAction,
        ParticipantResult, Registration, SocialCapabilities, UserInfo,
    },
    time::now_millis,
};

use self::receipts::Receipts;
pub use self::{
    receipts::ReceiptDelays,
    social::{ContactSetup, lid_of},
};

/// What the emulator knows of a session it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Running {
    /// Waiting for a scan of `qr`; `phone` is the number the session expects, if set.
    Pairing { qr: String, phone: Option<Phone> },
    /// Online as `phone`.
    Online { phone: Phone },
}

/// How sends of a session should fail, set through the control surface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailurePlan {
    /// Whether the failure is worth retrying.
    pub retryable: bool,
    /// How many sends fail before they work again; `None` for all of them.
    pub remaining: Option<u32>,
    /// What the failure says.
    pub reason: String,
}

/// A message as the other side of its chat sees it: the emulated contact's phone.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenMessage {
    /// Its WhatsApp id.
    pub provider_id: ProviderId,
    /// The chat it is in.
    pub chat: Jid,
    /// Sent by the session (else written by the contact to the session).
    pub from_session: bool,
    /// What it shows; `None` once revoked ("This message was deleted").
    pub content: Option<Content>,
    pub edited: bool,
    pub revoked: bool,
    /// For a message the contact wrote: the session marked it read (blue ticks).
    pub read: bool,
}

/// Messages remembered per session, oldest forgotten first.
const SEEN_KEPT: usize = 10_000;

/// The emulated network as one session sees it: failures on demand, numbers not on WhatsApp,
/// and the messages its contacts have seen.
#[derive(Debug, Default)]
struct Network {
    failures: Option<FailurePlan>,
    not_on_whatsapp: HashSet<Phone>,
    seen: HashMap<ProviderId, SeenMessage>,
    seen_order: VecDeque<ProviderId>,
    book: social::Book,
}

impl Network {
    fn remember(&mut self, message: SeenMessage) {
        if self.seen_order.len() >= SEEN_KEPT
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen_order.push_back(message.provider_id.clone());
        self.seen.insert(message.provider_id.clone(), message);
    }

    /// Applies an action as the contact's phone would show it.
    fn apply(&mut self, action: &MessageAction) -> Result<(), EngineError> {
        fn ours<'a>(
            seen: &'a mut HashMap<ProviderId, SeenMessage>,
            chat: &Jid,
            id: &ProviderId,
        ) -> Result<&'a mut SeenMessage, EngineError> {
            match seen.get_mut(id) {
                Some(m) if m.from_session && &m.chat == chat && !m.revoked => Ok(m),
                _ => Err(EngineError::Permanent(format!(
                    "the chat {chat} has no message {id} of this session to change"
                ))),
            }
        }
        match action {
            MessageAction::Edit {
                chat,
                provider_id,
                text,
            } => {
                let m = ours(&mut self.seen, chat, provider_id)?;
                m.content = Some(Content::Text { text: text.clone() });
                m.edited = true;
            }
            MessageAction::Revoke { chat, provider_id } => {
                let m = ours(&mut self.seen, chat, provider_id)?;
                m.content = None;
                m.revoked = true;
            }
            MessageAction::MarkRead {
                chat, provider_ids, ..
            } => {
                for id in provider_ids {
                    if let Some(m) = self.seen.get_mut(id)
                        && !m.from_session
                        && &m.chat == chat
                    {
                        m.read = true;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The emulator engine.
pub struct Emulator {
    sink: Weak<dyn EngineSink>,
    /// Held from a change of a session's connection until the sink has its update, so the
    /// sink gets the updates of concurrent changes (a start and a scan) in their order.
    turn: tokio::sync::Mutex<()>,
    sessions: Mutex<HashMap<SessionId, Running>>,
    networks: Mutex<HashMap<SessionId, Network>>,
    world: Mutex<world::World>,
    receipts: Receipts,
}

/// Everything the emulator can send.
const KINDS: &[MessageKind] = &MessageKind::ALL;

impl Emulator {
    /// An emulator reporting to `sink`, sending receipts after `delays`. The sink is held
    /// weakly: it usually owns the engine. Must be called inside a Tokio runtime.
    pub fn new(sink: Weak<dyn EngineSink>, delays: ReceiptDelays) -> Self {
        let receipts = Receipts::spawn(sink.clone(), delays);
        Self {
            sink,
            turn: tokio::sync::Mutex::new(()),
            sessions: Mutex::new(HashMap::new()),
            networks: Mutex::new(HashMap::new()),
            world: Mutex::new(world::World::default()),
            receipts,
        }
    }

    fn online_phone(&self, session: SessionId) -> Result<Phone, EngineError> {
        match self.lock().get(&session) {
            Some(Running::Online { phone }) => Ok(phone.clone()),
            _ => Err(EngineError::Transient(
                "the session is not connected".into(),
            )),
        }
    }

    fn network<T>(&self, session: SessionId, f: impl FnOnce(&mut Network) -> T) -> T {
        let mut networks = self.networks.lock().unwrap_or_else(|e| e.into_inner());
        f(networks.entry(session).or_default())
    }

    /// Makes the session's next sends fail (`None` clears the plan).
    pub fn set_failures(&self, session: SessionId, plan: Option<FailurePlan>) {
        self.network(session, |n| n.failures = plan);
    }

    /// Marks `phone` as (not) on WhatsApp for this session's sends.
    pub fn set_on_whatsapp(&self, session: SessionId, phone: Phone, on_whatsapp: bool) {
        self.network(session, |n| {
            if on_whatsapp {
                n.not_on_whatsapp.remove(&phone);
            } else {
                n.not_on_whatsapp.insert(phone);
            }
        });
    }

    /// A user of the emulated network writes to the session, replying to the message with
    /// WhatsApp id `quoted` when given. Returns the WhatsApp id.
    pub async fn inbound(
        &self,
        session: SessionId,
        from: Jid,
        chat: Option<Jid>,
        content: Content,
        quoted: Option<ProviderId>,
    ) -> Result<ProviderId, EngineError> {
        self.online_phone(session)?;
        if self.network(session, |n| n.book.blocked.contains(&from)) {
            return Err(EngineError::Conflict(format!(
                "the session blocked {from}: WhatsApp does not deliver its messages"
            )));
        }
        let provider_id = new_provider_id();
        let message = Inbound {
            provider_id: provider_id.clone(),
            chat: chat.unwrap_or_else(|| from.clone()),
            sender: from,
            chat_lid: None,
            sender_lid: None,
            content,
            sent_at: now_millis(),
            quoted_provider_id: quoted,
        };
        self.network(session, |n| {
            n.remember(SeenMessage {
                provider_id: provider_id.clone(),
                chat: message.chat.clone(),
                from_session: false,
                content: Some(message.content.clone()),
                edited: false,
                revoked: false,
                read: false,
            })
        });
        self.sink()?
            .update(session, EngineUpdate::Inbound(message))
            .await?;
        Ok(provider_id)
    }

    /// Like [`Emulator::inbound`], from a user WhatsApp also names by the linked
    /// identity `lid` (`…@lid`), as WhatsApp Web reports many senders: the message carries
    /// the LID beside the phone number (for the chat too, in a direct chat).
    pub async fn inbound_with_lid(
        &self,
        session: SessionId,
        from: Jid,
        lid: Jid,
        chat: Option<Jid>,
        content: Content,
        quoted: Option<ProviderId>,
    ) -> Result<ProviderId, EngineError> {
        self.online_phone(session)?;
        let provider_id = new_provider_id();
        let direct = chat.is_none();
        let message = Inbound {
            provider_id: provider_id.clone(),
            chat: chat.unwrap_or_else(|| from.clone()),
            sender: from,
            chat_lid: direct.then(|| lid.clone()),
            sender_lid: Some(lid),
            content,
            sent_at: now_millis(),
            quoted_provider_id: quoted,
        };
        self.network(session, |n| {
            n.remember(SeenMessage {
                provider_id: provider_id.clone(),
                chat: message.chat.clone(),
                from_session: false,
                content: Some(message.content.clone()),
                edited: false,
                revoked: false,
                read: false,
            })
        });
        self.sink()?
            .update(session, EngineUpdate::Inbound(message))
            .await?;
        Ok(provider_id)
    }

    /// The writer of a message the session received edits it (`Some(text)`) or revokes it for
    /// everyone (`None`), as WhatsApp reports it to the session.
    pub async fn inbound_change(
        &self,
        session: SessionId,
        provider_id: &ProviderId,
        text: Option<String>,
    ) -> Result<(), EngineError> {
        self.online_phone(session)?;
        let chat = self.network(session, |n| {
            let m = n
                .seen
                .get_mut(provider_id)
                .filter(|m| !m.from_session && !m.revoked)
                .ok_or_else(|| {
                    EngineError::Conflict(format!(
                        "no message {provider_id} written to the session that can still change"
                    ))
                })?;
            match &text {
                Some(text) => {
                    m.content = Some(Content::Text { text: text.clone() });
                    m.edited = true;
                }
                None => {
                    m.content = None;
                    m.revoked = true;
                }
            }
            Ok::<_, EngineError>(m.chat.clone())
        })?;
        let at = now_millis();
        let provider_id = provider_id.to_string();
        let update = match text {
            Some(text) => EngineUpdate::InboundEdited {
                chat,
                provider_id,
                content: Content::Text { text },
                at,
            },
            None => EngineUpdate::InboundRevoked {
                chat,
                provider_id,
                at,
            },
        };
        self.sink()?.update(session, update).await
    }

    /// The messages of `chat` as the contact's phone shows them, oldest first: edits and
    /// revocations of the session's messages, and read marks of the contact's.
    pub fn seen(&self, session: SessionId, chat: &Jid) -> Vec<SeenMessage> {
        self.network(session, |n| {
            n.seen_order
                .iter()
                .filter_map(|id| n.seen.get(id))
                .filter(|m| &m.chat == chat)
                .cloned()
                .collect()
        })
    }

    /// The recipient's phone sends a receipt for a message the session sent, now.
    pub async fn receipt(
        &self,
        session: SessionId,
        provider_id: ProviderId,
        kind: ReceiptKind,
    ) -> Result<(), EngineError> {
        self.online_phone(session)?;
        self.sink()?
            .update(
                session,
                EngineUpdate::Receipt {
                    provider_id,
                    kind,
                    at: now_millis(),
                },
            )
            .await
    }

    fn sink(&self) -> Result<Arc<dyn EngineSink>, EngineError> {
        self.sink
            .upgrade()
            .ok_or_else(|| EngineError::Transient("the server is shutting down".into()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Running>> {
        // A poisoned map only means another thread panicked mid-update of plain data.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A person scans the session's QR with the phone `phone` (or the number the session was
    /// created for, or a made-up test number). Fails unless the session is waiting for a scan,
    /// or when the phone differs from the number the session was created for.
    pub async fn scan(
        &self,
        session: SessionId,
        phone: Option<Phone>,
    ) -> Result<Phone, EngineError> {
        let _turn = self.turn.lock().await;
        let phone = {
            let mut sessions = self.lock();
            let Some(Running::Pairing {
                phone: expected, ..
            }) = sessions.get(&session)
            else {
                return Err(EngineError::Conflict(
                    "the session is not waiting for a QR scan".into(),
                ));
            };
            let phone = match (phone, expected) {
                (Some(given), Some(expected)) if &given != expected => {
                    return Err(EngineError::Conflict(format!(
                        "the session is for {expected}; a scan from {given} would link the wrong number"
                    )));
                }
                (Some(given), _) => given,
                (None, Some(expected)) => expected.clone(),
                (None, None) => test_number(session),
            };
            sessions.insert(
                session,
                Running::Online {
                    phone: phone.clone(),
                },
            );
            phone
        };
        self.sink()?
            .update(
                session,
                EngineUpdate::Connected {
                    phone: phone.clone(),
                },
            )
            .await?;
        Ok(phone)
    }

    /// The phone logs the linked device out (as "Log out" on the phone does).
    pub async fn unlink_from_phone(&self, session: SessionId) -> Result<(), EngineError> {
        let _turn = self.turn.lock().await;
        if self.lock().remove(&session).is_none() {
            return Err(EngineError::Conflict("the session is not running".into()));
        }
        self.sink()?
            .update(
                session,
                EngineUpdate::LoggedOut {
                    reason: "logged out from the phone".into(),
                },
            )
            .await
    }
}

/// A stable, plausible US test number derived from the session id (555 numbers are fictional).
fn test_number(session: SessionId) -> Phone {
    let digits: u64 = session
        .to_string()
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    // Always 11 digits behind country code 1, so it always parses.
    Phone::parse(&format!("+1555{:07}", digits % 10_000_000))
        .expect("+1555 and 7 digits is a valid number")
}

/// A QR payload in WhatsApp Web's format: `ref,noise public key,identity key,adv secret`.
fn qr_payload() -> String {
    let part = |len: usize| {
        let mut bytes = vec![0u8; len];
        rand::rng().fill_bytes(&mut bytes);
        STANDARD.encode(bytes)
    };
    format!("2@{},{},{},{}", part(48), part(32), part(32), part(32))
}

#[async_trait]
impl Engine for Emulator {
    fn kind(&self) -> EngineKind {
        EngineKind::Emulator
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            qr_pairing: true,
            kinds: KINDS,
            view_once: true,
            channels: true,
            edits: true,
            revoke: true,
            replies: true,
            presence: true,
            mark_read: true,
            client_message_ids: true,
        }
    }

    async fn start(&self, session: &EngineSession) -> Result<(), EngineError> {
        let _turn = self.turn.lock().await;
        let update = {
            let mut sessions = self.lock();
            if session.paired {
                let phone = session
                    .phone
                    .clone()
                    .unwrap_or_else(|| test_number(session.id));
                sessions.insert(
                    session.id,
                    Running::Online {
                        phone: phone.clone(),
                    },
                );
                EngineUpdate::Connected { phone }
            } else {
                let qr = qr_payload();
                sessions.insert(
                    session.id,
                    Running::Pairing {
                        qr: qr.clone(),
                        phone: session.phone.clone(),
                    },
                );
                EngineUpdate::Qr { code: qr }
            }
        };
        self.sink()?.update(session.id, update).await
    }

    async fn stop(&self, session: SessionId) -> Result<(), EngineError> {
        let _turn = self.turn.lock().await;
        self.lock().remove(&session);
        Ok(())
    }

    async fn logout(&self, session: SessionId) -> Result<(), EngineError> {
        let _turn = self.turn.lock().await;
        self.lock().remove(&session);
        self.networks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&session);
        Ok(())
    }

    async fn send(
        &self,
        session: SessionId,
        message: &Outbound,
    ) -> Result<ProviderId, EngineError> {
        self.online_phone(session)?;
        let refusal = self.network(session, |n| {
            if let Some(plan) = &mut n.failures {
                let failure = if plan.retryable {
                    EngineError::Transient(plan.reason.clone())
                } else {
                    EngineError::Permanent(plan.reason.clone())
                };
                match &mut plan.remaining {
                    Some(0) => n.failures = None,
                    Some(left) => {
                        *left -= 1;
                        if *left == 0 {
                            n.failures = None;
                        }
                        return Some(failure);
                    }
                    None => return Some(failure),
                }
            }
            message
                .to
                .phone()
                .filter(|p| n.not_on_whatsapp.contains(p))
                .map(|p| EngineError::Permanent(format!("{p} is not on WhatsApp")))
        });
        if let Some(e) = refusal {
            return Err(e);
        }
        let members = self.route(session, &message.to)?;
        let id = message.provider_id.clone().unwrap_or_else(new_provider_id);
        self.network(session, |n| {
            n.remember(SeenMessage {
                provider_id: id.clone(),
                chat: message.to.clone(),
                from_session: true,
                content: Some(message.content.clone()),
                edited: false,
                revoked: false,
                read: false,
            })
        });
        if message.to.server() != JidServer::Newsletter {
            let audio = matches!(
                message.content,
                Content::Media {
                    media: MessageKind::Audio,
                    ..
                }
            );
            self.receipts.schedule(session, id.clone(), audio).await;
        }
        self.fan_out(session, &message.to, &id, &message.content, members)
            .await;
        Ok(id)
    }

    async fn act(&self, session: SessionId, action: &MessageAction) -> Result<(), EngineError> {
        self.online_phone(session)?;
        self.network(session, |n| n.apply(action))
    }

    async fn presence(
        &self,
        session: SessionId,
        _to: Option<&Jid>,
        _presence: Presence,
    ) -> Result<(), EngineError> {
        self.online_phone(session).map(|_| ())
    }

    fn social(&self) -> SocialCapabilities {
        SocialCapabilities {
            // The emulator has no media servers, so it has no media references to decrypt.
            decrypt_media: false,
            ..SocialCapabilities::ALL
        }
    }

    async fn on_whatsapp(
        &self,
        session: SessionId,
        phone: &Phone,
    ) -> Result<Registration, EngineError> {
        self.online_phone(session)?;
        Ok(self.registration(session, phone))
    }

    async fn contacts(&self, session: SessionId) -> Result<Vec<EngineContact>, EngineError> {
        self.online_phone(session)?;
        Ok(self.address_book(session))
    }

    async fn blocklist(&self, session: SessionId) -> Result<Vec<Jid>, EngineError> {
        self.online_phone(session)?;
        Ok(self.blocked(session))
    }

    async fn set_blocked(
        &self,
        session: SessionId,
        jid: &Jid,
        blocked: bool,
    ) -> Result<(), EngineError> {
        self.online_phone(session)?;
        self.block(session, jid, blocked);
        Ok(())
    }

    async fn picture(&self, session: SessionId, jid: &Jid) -> Result<Option<String>, EngineError> {
        self.online_phone(session)?;
        self.picture_of(session, jid)
    }

    async fn groups(&self, session: SessionId) -> Result<Vec<GroupInfo>, EngineError> {
        self.groups_of(session)
    }

    async fn group(
        &self,
        session: SessionId,
        group: &Jid,
    ) -> Result<Option<GroupInfo>, EngineError> {
        self.group_of(session, group)
    }

    async fn create_group(
        &self,
        session: SessionId,
        subject: &str,
        participants: &[Jid],
    ) -> Result<(GroupInfo, Vec<ParticipantResult>), EngineError> {
        self.new_group(session, subject, participants).await
    }

    async fn update_participants(
        &self,
        session: SessionId,
        group: &Jid,
        action: ParticipantAction,
        participants: &[Jid],
    ) -> Result<Vec<ParticipantResult>, EngineError> {
        self.change_participants(session, group, action, participants)
            .await
    }

    async fn update_group(
        &self,
        session: SessionId,
        group: &Jid,
        changes: &[GroupChange],
    ) -> Result<GroupInfo, EngineError> {
        self.change_group(session, group, changes).await
    }

    async fn invite_code(
        &self,
        session: SessionId,
        group: &Jid,
        reset: bool,
    ) -> Result<String, EngineError> {
        self.invite_of(session, group, reset)
    }

    async fn leave_group(&self, session: SessionId, group: &Jid) -> Result<(), EngineError> {
        self.leave(session, group).await
    }

    async fn resolve_invite(
        &self,
        session: SessionId,
        code: &str,
    ) -> Result<Option<InvitePreview>, EngineError> {
        self.preview(session, code)
    }

    async fn accept_invite(
        &self,
        session: SessionId,
        code: &str,
    ) -> Result<Option<Jid>, EngineError> {
        self.join(session, code).await
    }

    async fn follow_channel(
        &self,
        session: SessionId,
        channel: &Jid,
        follow: bool,
    ) -> Result<bool, EngineError> {
        self.follow(session, channel, follow)
    }

    async fn channels(&self, session: SessionId) -> Result<Vec<ChannelInfo>, EngineError> {
        self.channels_of(session)
    }

    async fn channel(
        &self,
        session: SessionId,
        channel: &Jid,
    ) -> Result<Option<ChannelInfo>, EngineError> {
        self.channel_of(session, channel)
    }

    async fn user(&self, session: SessionId) -> Result<UserInfo, EngineError> {
        self.user_of(session)
    }
}

/// The default receipt timing: delivered after 1 s, read after 3 s.
pub fn default_delays() -> ReceiptDelays {
    ReceiptDelays {
        delivered: Some(Duration::from_secs(1)),
        read: Some(Duration::from_secs(3)),
    }
}

#[cfg(test)]
mod tests;
