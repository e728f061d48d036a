//! Messages: accepting sends (durably, idempotently), operations on sent messages, read
//! marks, presence, and reading messages back.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use wharf_core::{
    EngineError, Jid, MessageId, ProviderId, SessionId, SessionStatus,
    message::{
        Content, Direction, EDIT_WINDOW_MS, MessageKind, MessageStatus, Presence, new_provider_id,
    },
    time::Clock,
};
use wharf_store::{Accepted, JobAction, MessageFilter, MessageRow, OutboxJob, SessionRow, Store};

use super::{Caller, Engines};
use crate::ServiceError;

mod actions;
mod media;
pub use media::MediaFile;

/// Which session a send goes through.
#[derive(Debug, Clone, Copy)]
pub enum SessionChoice {
    /// Named in the request (required with a PAT).
    Named(SessionId),
    /// Not named: the session key's own session.
    Implied,
    /// `"sandbox"`: the shared sandbox number, to phones activated by the caller's account.
    Sandbox,
}

/// A parsed send request.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub session: SessionChoice,
    pub to: Jid,
    pub content: Content,
    /// Our id of the message replied to.
    pub quoted: Option<MessageId>,
}

/// What a send answers: the message accepted and queued (also what an idempotent replay
/// answers). Each dialect renders it. Stored with an idempotency key as this JSON; the
/// aliases read answers stored in the Wapio shape before it was typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendAnswer {
    /// Wharf's id.
    pub message_id: MessageId,
    /// The WhatsApp id, when the engine lets Wharf choose it at acceptance.
    #[serde(alias = "msgId")]
    pub provider_id: Option<ProviderId>,
    /// The recipient.
    #[serde(alias = "jid")]
    pub to: Jid,
    /// `queued`.
    pub status: MessageStatus,
}

/// A broadcast recipient's queued message, or why there is none.
pub type Decided = Result<MessageRow, String>;

/// A page of messages.
pub struct MessagePage {
    pub messages: Vec<MessageRow>,
    pub next_cursor: Option<MessageId>,
}

/// The messages service.
pub struct MessageService {
    store: Store,
    engines: Arc<Engines>,
    dispatch: mpsc::UnboundedSender<SessionId>,
    clock: Clock,
    templates: Arc<super::TemplateService>,
    /// Presence updates run where the session's engine runs.
    ownership: Arc<crate::cluster::Ownership>,
}

impl MessageService {
    /// The server's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The service; `dispatch` wakes the dispatcher of a session with new work.
    pub fn new(
        store: Store,
        engines: Arc<Engines>,
        dispatch: mpsc::UnboundedSender<SessionId>,
        clock: Clock,
        templates: Arc<super::TemplateService>,
        ownership: Arc<crate::cluster::Ownership>,
    ) -> Self {
        Self {
            store,
            engines,
            dispatch,
            clock,
            templates,
            ownership,
        }
    }

    /// The session a request acts on, visible to the caller and not deleted.
    async fn session(
        &self,
        caller: &Caller,
        choice: SessionChoice,
    ) -> Result<SessionRow, ServiceError> {
        let id = match (choice, caller.session_id) {
            (SessionChoice::Sandbox, _) => return self.sandbox_session(caller).await,
            (SessionChoice::Named(id), _) => id,
            (SessionChoice::Implied, Some(own)) => own,
            (SessionChoice::Implied, None) => {
                return Err(ServiceError::invalid(
                    "session_id",
                    "required with a personal access token",
                ));
            }
        };
        if !caller.can_see(id) {
            return Err(ServiceError::NotFound("session"));
        }
        let row = match caller.auth_epoch {
            // The send path with a cached key: the session from the cache too, at the same
            // epoch (one read at another epoch means something changed: decide again).
            Some(epoch) => match self
                .store
                .session_for_send(caller.account_id, id, epoch)
                .await?
            {
                Some((row, at)) if at == epoch => Some(row),
                Some(_) => return Err(ServiceError::Stale),
                None => None,
            },
            None => self.store.get_session(caller.account_id, id).await?,
        }
        .ok_or(ServiceError::NotFound("session"))?;
        if row.status.is_deleting() {
            return Err(ServiceError::conflict(
                "invalid_state",
                "the session is being deleted or was deleted",
            ));
        }
        crate::log_fields::session(row.id);
        Ok(row)
    }

    /// The session `session` of the caller's messages: its own, or the sandbox number's for
    /// messages that went through the sandbox.
    async fn session_of(
        &self,
        caller: &Caller,
        session: SessionId,
    ) -> Result<SessionRow, ServiceError> {
        // Not one of the caller's sessions: only then is the sandbox number looked up.
        match self.session(caller, SessionChoice::Named(session)).await {
            Err(ServiceError::NotFound(_))
                if caller.session_id.is_none()
                    && self.store.sandbox_number().await? == Some(session) =>
            {
                self.sandbox_session(caller).await
            }
            other => other,
        }
    }

    /// Refuses `to` unless it has an active sandbox session of the caller's account.
    async fn sandbox_recipient(&self, caller: &Caller, to: &Jid) -> Result<(), ServiceError> {
        if self
            .store
            .sandbox_recipient_active(caller.account_id, to, self.clock.now_millis())
            .await?
        {
            return Ok(());
        }
        let message = format!(
            "{to} has no active sandbox session with this account: create one and have the phone activate it first"
        );
        Err(ServiceError::Invalid {
            reason_code: "sandbox_recipient_not_activated",
            message: message.clone(),
            errors: [("to".to_owned(), vec![message])].into(),
        })
    }

    /// The session an operation on `message` goes through; on the sandbox number (a message
    /// the caller sent through the sandbox) only while its phone is still activated, since
    /// a resend or an edit reaches the phone again.
    async fn session_for_operation(
        &self,
        caller: &Caller,
        message: &MessageRow,
    ) -> Result<SessionRow, ServiceError> {
        let session = self.session_of(caller, message.session_id).await?;
        if session.account_id != caller.account_id {
            self.sandbox_recipient(caller, &message.chat_jid).await?;
        }
        Ok(session)
    }

    /// The sandbox number's session, for a personal access token.
    async fn sandbox_session(&self, caller: &Caller) -> Result<SessionRow, ServiceError> {
        if caller.session_id.is_some() {
            return Err(ServiceError::Forbidden(
                "session-scoped keys cannot send through the sandbox; use a personal access token"
                    .into(),
            ));
        }
        let not_configured = || ServiceError::Invalid {
            reason_code: "sandbox_not_configured",
            message: "this server has no sandbox number".into(),
            errors: [(
                "session_id".to_owned(),
                vec!["this server has no sandbox number".to_owned()],
            )]
            .into(),
        };
        // The operator's number, shared by every account's developers.
        self.store
            .sandbox_session()
            .await?
            .filter(|row| !row.status.is_deleting())
            .ok_or_else(not_configured)
    }

    fn unsupported(session: &SessionRow, what: &str) -> ServiceError {
        ServiceError::Invalid {
            reason_code: "unsupported_by_engine",
            message: format!(
                "the {} engine of this session cannot send {what}",
                session.engine
            ),
            errors: Default::default(),
        }
    }

    /// A message of the caller's (and of `session`, when given).
    async fn message(&self, caller: &Caller, id: MessageId) -> Result<MessageRow, ServiceError> {
        let row = self
            .store
            .get_message(caller.account_id, id)
            .await?
            .ok_or(ServiceError::NotFound("message"))?;
        if !caller.can_see(row.session_id) {
            return Err(ServiceError::NotFound("message"));
        }
        crate::log_fields::message(row.id, row.session_id);
        Ok(row)
    }

    /// Accepts a send: validates it against the session's engine, then commits the message
    /// and its outbox job (and the idempotency record) before answering 202.
    ///
    /// A caller whose key came from the send path's cache (`auth_epoch` set) is served from
    /// cached entries and committed only at that epoch; when the epoch moved, the cache is
    /// emptied and the send decided again from fresh reads (a revoked key then gets 401). The
    /// HTTP layer answers an error of a cached caller only after reading its key again.
    pub async fn send(
        &self,
        caller: &Caller,
        req: SendRequest,
        idempotency: Option<(String, Vec<u8>)>,
    ) -> Result<SendAnswer, ServiceError> {
        const ATTEMPTS: usize = 5;
        let (Some(_), Some(token)) = (caller.auth_epoch, caller.token.clone()) else {
            return self.send_once(caller, req, idempotency).await;
        };
        let mut caller = caller.clone();
        for _ in 0..ATTEMPTS {
            match self
                .send_once(&caller, req.clone(), idempotency.clone())
                .await
            {
                Ok(answer) => return Ok(answer),
                Err(ServiceError::Stale) => {
                    self.store.forget_cached_auth();
                    let (key, epoch) = self
                        .store
                        .key_for_send(&token, true)
                        .await?
                        .ok_or(ServiceError::Unauthorized)?;
                    caller = Caller::of_key(&key, token.clone(), Some(epoch));
                }
                // Answered after the HTTP layer reads the key again (`http/auth.rs`).
                Err(e) => return Err(e),
            }
        }
        Err(ServiceError::Stale)
    }

    async fn send_once(
        &self,
        caller: &Caller,
        mut req: SendRequest,
        idempotency: Option<(String, Vec<u8>)>,
    ) -> Result<SendAnswer, ServiceError> {
        let hash_for = |session: SessionId| {
            idempotency.as_ref().map(|(_, body)| {
                let mut h = Sha256::new();
                h.update(session.to_string().as_bytes());
                h.update(b"\n");
                h.update(body);
                format!("{:x}", h.finalize())
            })
        };
        // A replay answers the first response before anything else is looked at, the
        // session included: it may have been deleted since (DESIGN §3.5).
        if let Some((key, _)) = &idempotency {
            let named = match (req.session, caller.session_id) {
                (SessionChoice::Named(id), _) | (SessionChoice::Implied, Some(id)) => Some(id),
                (SessionChoice::Sandbox, None) => self.store.sandbox_number().await?,
                _ => None,
            };
            if let Some(named) = named.filter(|id| caller.can_see(*id))
                && let Some(found) = self
                    .store
                    .idempotent_answer_of(caller.account_id, key)
                    .await?
            {
                return replay(found, &hash_for(named).unwrap_or_default());
            }
        }
        let session = self.session(caller, req.session).await?;
        let hash = hash_for(session.id);
        if matches!(req.session, SessionChoice::Sandbox) {
            self.sandbox_recipient(caller, &req.to).await?;
        }
        let engine = self.engines.get(session.engine)?;
        let capabilities = engine.capabilities();
        // A template is checked (exists, approved, variables fit) before anything is queued;
        // on an engine without templates it becomes the message it renders to.
        if req.content.kind() == MessageKind::Template {
            req.content = self
                .templates
                .prepare(&session, &capabilities, req.content)
                .await?;
        }
        if let Some(what) = engine.refusal(&req.content, &req.to, req.quoted.is_some()) {
            return Err(Self::unsupported(&session, &what));
        }
        if let Some(window) = engine.service_window_ms()
            && req.content.kind() != MessageKind::Template
        {
            let last = self
                .store
                .last_inbound_at(session.account_id, session.id, &req.to)
                .await?;
            if last.is_none_or(|at| self.clock.now_millis() - at > window) {
                let message = match last {
                    None => format!(
                        "{} has never written to this session; outside the {}-hour customer service window only templates can be sent",
                        req.to,
                        window / 3_600_000
                    ),
                    Some(at) => format!(
                        "{} last wrote at {}, more than {} hours ago; outside the customer service window only templates can be sent",
                        req.to,
                        wharf_core::time::rfc3339(at),
                        window / 3_600_000
                    ),
                };
                let mut errors = std::collections::BTreeMap::new();
                errors.insert("to".to_owned(), vec![message.clone()]);
                return Err(ServiceError::Invalid {
                    reason_code: "outside_customer_service_window",
                    message,
                    errors,
                });
            }
        }
        let quoted = match req.quoted {
            Some(id) => Some(
                self.referenced(caller, &session, id, "quoted_message_id")
                    .await?,
            ),
            None => None,
        };
        let mut content = req.content;
        if let Content::Reaction {
            target: Some(target),
            target_provider_id,
            ..
        } = &mut content
        {
            let message = self
                .referenced(caller, &session, *target, "message_id")
                .await?;
            *target_provider_id = message.provider_msg_id.clone().unwrap_or_default();
        }
        let now = self.clock.now_millis();
        let id = MessageId::generate();
        crate::log_fields::message(id, session.id);
        let provider_id = capabilities.client_message_ids.then(new_provider_id);
        // The caller's account: on the sandbox number, the session belongs to the operator.
        let mut row =
            MessageRow::outgoing(caller.account_id, session.id, req.to.clone(), content, now);
        row.id = id;
        row.sender_jid = session
            .phone_number
            .as_ref()
            .map(|p| Jid::from_phone(p).to_string());
        row.provider_msg_id = provider_id.clone();
        row.quoted_message_id = quoted.as_ref().map(|q| q.id);
        let answer = SendAnswer {
            message_id: id,
            provider_id,
            to: req.to.clone(),
            status: MessageStatus::Queued,
        };
        // The answer a replay gives, stored only with an Idempotency-Key.
        let stored = match idempotency {
            Some(_) => Some(serde_json::to_value(&answer).map_err(|e| {
                ServiceError::Internal(anyhow::anyhow!("a send answer as JSON: {e}"))
            })?),
            None => None,
        };
        let idem = idempotency
            .as_ref()
            .zip(hash.as_ref())
            .zip(stored.as_ref())
            .map(|(((key, _), hash), stored)| (key.as_str(), hash.as_str(), 202, stored));
        match self
            .store
            .accept_outgoing(&row, idem, caller.auth_epoch)
            .await?
        {
            Accepted::New => {
                crate::metrics::global().message_accepted(session.engine.as_str());
                let _ = self.dispatch.send(session.id);
                Ok(answer)
            }
            Accepted::Replayed(found) => replay(found, hash.as_deref().unwrap_or_default()),
        }
    }

    /// Wakes the dispatcher of `session` (work committed by another path: a broadcast).
    pub fn wake(&self, session: SessionId) {
        let _ = self.dispatch.send(session);
    }

    /// The messages of a broadcast batch, decided as a send is (the template rendered for
    /// the session's engine, the engine's refusals) but not committed: the broadcast store
    /// commits them with the recipients' state. Each: the queued message, or why not.
    pub fn broadcast_messages(
        &self,
        session: &SessionRow,
        template: &super::templates::TemplateView,
        items: Vec<(Jid, Content)>,
    ) -> Result<Vec<Decided>, ServiceError> {
        let engine = self.engines.get(session.engine)?;
        let capabilities = engine.capabilities();
        let now = self.clock.now_millis();
        let sender = session
            .phone_number
            .as_ref()
            .map(|p| Jid::from_phone(p).to_string());
        Ok(items
            .into_iter()
            .map(|(to, content)| {
                let content =
                    super::templates::prepare_approved(template, session, &capabilities, content)
                        .map_err(|e| e.to_string())?;
                if let Some(what) = engine.refusal(&content, &to, false) {
                    return Err(Self::unsupported(session, &what).to_string());
                }
                let mut row =
                    MessageRow::outgoing(session.account_id, session.id, to, content, now);
                row.sender_jid = sender.clone();
                row.provider_msg_id = capabilities.client_message_ids.then(new_provider_id);
                Ok(row)
            })
            .collect())
    }

    /// The caller's message `id` when it is one of `session`'s (`None` otherwise).
    pub async fn of_session(
        &self,
        caller: &Caller,
        session: SessionId,
        id: MessageId,
    ) -> Result<Option<MessageRow>, ServiceError> {
        Ok(self
            .store
            .get_message(caller.account_id, id)
            .await?
            .filter(|m| m.session_id == session && caller.can_see(m.session_id)))
    }

    /// A message of `session` that a send refers to (reply or reaction); 422 on `field` when
    /// it is not there or has no WhatsApp id yet.
    async fn referenced(
        &self,
        caller: &Caller,
        session: &SessionRow,
        id: MessageId,
        field: &str,
    ) -> Result<MessageRow, ServiceError> {
        let row = self
            .store
            .get_message(caller.account_id, id)
            .await?
            .filter(|m| m.session_id == session.id);
        let row =
            row.ok_or_else(|| ServiceError::invalid(field, "no such message in this session"))?;
        if row.provider_msg_id.is_none()
            || row.sent_at.is_none()
            || row.status == MessageStatus::Queued
        {
            return Err(ServiceError::invalid(
                field,
                "that message has not been sent",
            ));
        }
        if row.status == MessageStatus::Deleted {
            return Err(ServiceError::invalid(field, "that message was deleted"));
        }
        Ok(row)
    }

    /// `GET /api/messages/{id}/info`: the message and the events about it.
    pub async fn info(
        &self,
        caller: &Caller,
        id: MessageId,
    ) -> Result<(MessageRow, Vec<wharf_store::EventRow>), ServiceError> {
        let row = self.message(caller, id).await?;
        let events = self.store.message_events(caller.account_id, id).await?;
        Ok((row, events))
    }
}

fn replay(found: wharf_store::IdempotentAnswer, hash: &str) -> Result<SendAnswer, ServiceError> {
    if found.request_hash != hash {
        return Err(ServiceError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
        ));
    }
    serde_json::from_value(found.response)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("a stored send answer: {e}")))
}
