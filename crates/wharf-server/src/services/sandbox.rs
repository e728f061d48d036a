//! The sandbox: one connected session (any engine) serves as a shared number that accounts
//! without a number of their own use to try messaging. A developer registers their phone
//! (a sandbox session), the phone proves it is theirs by writing to the number, and from then
//! on the account can send to that phone with `"session_id": "sandbox"`.
//!
//! Both dialects (Zernio: activation by any reply to a verification message; Kapso: by the
//! activation code) share this service. Activation itself happens in the inbound path
//! ([`wharf_store::Store::ingest_inbound_routed`]), atomically with the message.

use std::sync::Arc;

use rand::Rng;
use wharf_core::{
    AgentId, EngineError, EngineKind, Jid, MessageId, Phone, SandboxId, WebhookId,
    message::{Content, MessageStatus, Outbound, new_provider_id},
    time::Clock,
};
use wharf_store::{
    AgentEdit, AgentRow, MessageRow, PutSandbox, SandboxDialect, SandboxIngest, SandboxRow,
    SandboxStatus, SandboxWrite, SessionRow, Store, WebhookRow,
};

use super::{Caller, Engines, webhooks};
use crate::ServiceError;

/// The sandbox's settings (see the `sandbox_*` configuration keys).
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    pub pending_ttl_ms: i64,
    pub active_ttl_ms: i64,
    pub template: String,
    pub template_language: String,
    pub verification_text: String,
    pub confirmation_text: Option<String>,
    pub clock: Clock,
}

impl SandboxSettings {
    /// How inbound traffic on the sandbox number is routed, now.
    pub fn routing(&self) -> SandboxIngest {
        SandboxIngest {
            now: self.clock.now_millis(),
            active_ttl_ms: self.active_ttl_ms,
            confirmation: self.confirmation_text.clone(),
        }
    }
}

/// Activation codes: six characters of an alphabet without look-alikes (no 0/O, 1/I/L).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

fn activation_code() -> String {
    let mut rng = rand::rng();
    (0..6)
        .map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

/// A request to create (or refresh) a sandbox session.
#[derive(Debug, Clone)]
pub struct CreateSandbox {
    /// The phone as written by the caller.
    pub phone: String,
    /// The name of the phone's field in the caller's dialect (for errors).
    pub phone_field: &'static str,
    pub dialect: SandboxDialect,
    pub agent_id: Option<AgentId>,
}

/// A created or refreshed sandbox session.
#[derive(Debug, Clone)]
pub struct CreatedSandbox {
    pub session: SandboxRow,
    /// `false` when an existing session of the same phone was refreshed.
    pub created: bool,
    /// The sandbox number.
    pub number: Phone,
    pub agent: Option<AgentRow>,
}

/// What creating or editing an agent may set; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct AgentChange {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub webhook_url: Option<Option<String>>,
}

/// The sandbox service.
pub struct SandboxService {
    store: Store,
    engines: Arc<Engines>,
    settings: SandboxSettings,
    /// Agents' endpoints: their URLs' policy and the sealing of their secrets.
    outbound: Arc<crate::outbound::Outbound>,
    secrets: Option<Arc<crate::secrets::SecretBox>>,
}

impl SandboxService {
    pub fn new(
        store: Store,
        engines: Arc<Engines>,
        settings: SandboxSettings,
        outbound: Arc<crate::outbound::Outbound>,
        secrets: Option<Arc<crate::secrets::SecretBox>>,
    ) -> Self {
        Self {
            store,
            engines,
            settings,
            outbound,
            secrets,
        }
    }

    /// Checks an agent's `webhook_url`: its form and the outbound policy.
    async fn check_agent_url(&self, url: &str) -> Result<(), ServiceError> {
        webhooks::check_url_field("webhook_url", url)?;
        self.outbound.check_url("webhook_url", url).await
    }

    /// The server's clock reading.
    pub fn now(&self) -> i64 {
        self.settings.clock.now_millis()
    }

    /// The sandbox number's session and phone, when one is set and connected at least once.
    pub async fn number(&self) -> Result<Option<(SessionRow, Phone)>, ServiceError> {
        Ok(self
            .store
            .sandbox_session()
            .await?
            .filter(|row| !row.status.is_deleting())
            .and_then(|row| row.phone_number.clone().map(|phone| (row, phone))))
    }

    async fn require_number(&self) -> Result<(SessionRow, Phone), ServiceError> {
        self.number().await?.ok_or_else(|| ServiceError::Unavailable {
            reason_code: "sandbox_unavailable",
            message: "this server has no sandbox number (the operator sets one with `wharf sandbox set-number SESSION_ID`)".into(),
        })
    }

    /// The caller's live sandbox sessions and the sandbox number.
    pub async fn list(
        &self,
        caller: &Caller,
    ) -> Result<(Vec<SandboxRow>, Option<Phone>), ServiceError> {
        caller.require_pat()?;
        let sessions = self
            .store
            .live_sandbox_sessions(caller.account_id, self.now())
            .await?;
        let number = self.number().await?.map(|(_, phone)| phone);
        Ok((sessions, number))
    }

    /// One of the caller's live sandbox sessions.
    pub async fn get(&self, caller: &Caller, id: SandboxId) -> Result<SandboxRow, ServiceError> {
        caller.require_pat()?;
        self.store
            .live_sandbox_session(caller.account_id, id, self.now())
            .await?
            .ok_or(ServiceError::NotFound("sandbox session"))
    }

    /// Revokes one of the caller's live sandbox sessions: sends to its phone are refused from
    /// now on (messages already accepted still go out).
    pub async fn delete(&self, caller: &Caller, id: SandboxId) -> Result<(), ServiceError> {
        caller.require_pat()?;
        if self
            .store
            .delete_sandbox_session(caller.account_id, id, self.now())
            .await?
        {
            Ok(())
        } else {
            Err(ServiceError::NotFound("sandbox session"))
        }
    }

    /// Creates a pending sandbox session for a phone, or refreshes the caller's live one of
    /// the same phone. A Zernio-style session first sends the verification message from the
    /// sandbox number (a template on a Cloud API number); when the engine refuses it, nothing
    /// is stored and the engine's error is returned.
    pub async fn create(
        self: &Arc<Self>,
        caller: &Caller,
        req: CreateSandbox,
    ) -> Result<CreatedSandbox, ServiceError> {
        caller.require_pat()?;
        let phone = parse_phone(req.phone_field, &req.phone)?;
        let agent = match req.agent_id {
            Some(id) => Some(
                self.store
                    .get_agent(caller.account_id, id)
                    .await?
                    .ok_or_else(|| ServiceError::invalid("agent_id", "no such agent"))?,
            ),
            None => None,
        };
        let (number, number_phone) = self.require_number().await?;
        if phone == number_phone {
            return Err(ServiceError::invalid(
                req.phone_field,
                "is the sandbox number itself; use the phone you want to test with",
            ));
        }
        let now = self.now();
        let one_phone = req.dialect == SandboxDialect::Zernio;
        // Checked before anything is sent, and again atomically when stored.
        if let Some(live) = self.store.live_sandbox_of_phone(&phone, now).await?
            && live.account_id != caller.account_id
        {
            return Err(phone_taken(req.phone_field));
        }
        if one_phone
            && let Some(other) = self
                .store
                .live_sandbox_sessions(caller.account_id, now)
                .await?
                .into_iter()
                .find(|r| r.phone != phone)
        {
            return Err(other_phone(req.phone_field, &other));
        }
        // Sending and storing run to the end even if the client goes away in between: a
        // verification that left is always recorded.
        let this = Arc::clone(self);
        let owned = (caller.clone(), req.clone(), number, phone);
        let agent_id = agent.as_ref().map(|a| a.id);
        let (session, created) = tokio::spawn(async move {
            let (caller, req, number, phone) = owned;
            this.send_and_store(&caller, &req, &number, &phone, agent_id, now)
                .await
        })
        .await
        .map_err(|e| anyhow::anyhow!("the sandbox creation task failed: {e}"))??;
        let agent = match (agent, session.agent_id) {
            (Some(agent), _) => Some(agent),
            (None, Some(id)) => self.store.get_agent(caller.account_id, id).await?,
            (None, None) => None,
        };
        Ok(CreatedSandbox {
            session,
            created,
            number: number_phone,
            agent,
        })
    }

    /// The Zernio verification (when due) and the stored session, under the one-owner-per-
    /// phone rule; `(session, created)`.
    async fn send_and_store(
        &self,
        caller: &Caller,
        req: &CreateSandbox,
        number: &SessionRow,
        phone: &Phone,
        agent_id: Option<AgentId>,
        now: i64,
    ) -> Result<(SandboxRow, bool), ServiceError> {
        let sent = match req.dialect {
            SandboxDialect::Zernio => Some(self.send_verification(caller, number, phone).await?),
            SandboxDialect::Kapso => None,
        };
        let settings = &self.settings;
        let new = SandboxRow {
            id: SandboxId::generate(),
            account_id: caller.account_id,
            dialect: req.dialect,
            phone: phone.clone(),
            status: SandboxStatus::Pending,
            activation_code: activation_code(),
            agent_id,
            expires_at: now + settings.pending_ttl_ms,
            activated_at: None,
            created_at: now,
            updated_at: now,
        };
        let dialect = req.dialect;
        let outcome = self
            .store
            .put_sandbox(
                SandboxWrite {
                    account: caller.account_id,
                    phone,
                    now,
                    one_phone_per_account: dialect == SandboxDialect::Zernio,
                },
                new,
                |row| {
                    match row.status {
                        SandboxStatus::Pending => {
                            row.expires_at = now + settings.pending_ttl_ms;
                            row.dialect = dialect;
                        }
                        SandboxStatus::Active => {
                            row.expires_at = row.expires_at.max(now + settings.active_ttl_ms);
                        }
                    }
                    if agent_id.is_some() {
                        row.agent_id = agent_id;
                    }
                },
                sent.as_ref(),
            )
            .await?;
        match outcome {
            PutSandbox::Created(row) => Ok((row, true)),
            PutSandbox::Refreshed(row) => Ok((row, false)),
            PutSandbox::PhoneTaken => Err(phone_taken(req.phone_field)),
            PutSandbox::OtherPhone(other) => Err(other_phone(req.phone_field, &other)),
            PutSandbox::AgentGone => Err(ServiceError::invalid("agent_id", "no such agent")),
        }
    }

    /// Sends the verification message now (not through the outbox: the caller learns at
    /// once whether WhatsApp took it), and returns its row to record.
    async fn send_verification(
        &self,
        caller: &Caller,
        number: &SessionRow,
        phone: &Phone,
    ) -> Result<MessageRow, ServiceError> {
        // The operator's sandbox number on an engine this server does not run: the caller can
        // do nothing about it, so no field of theirs is blamed.
        let engine = self
            .engines
            .get(number.engine)
            .map_err(|_| ServiceError::Unavailable {
                reason_code: "sandbox_unavailable",
                message: format!(
                    "the sandbox number's session uses the {} engine, which this server does not run",
                    number.engine.as_str()
                ),
            })?;
        let content = match number.engine {
            EngineKind::Cloud => Content::Template {
                name: self.settings.template.clone(),
                language: self.settings.template_language.clone(),
                components: Vec::new(),
            },
            _ => Content::Text {
                text: self.settings.verification_text.clone(),
            },
        };
        let to = Jid::from_phone(phone);
        let id = MessageId::generate();
        let outbound = Outbound {
            message_id: id,
            provider_id: engine
                .capabilities()
                .client_message_ids
                .then(new_provider_id),
            to: to.clone(),
            content: content.clone(),
            quoted_provider_id: None,
            attempt: 0,
        };
        let provider_id = match engine.send(number.id, &outbound).await {
            Ok(id) => id,
            Err(e) => return Err(ServiceError::Engine(self.settle(number, e).await?)),
        };
        let now = self.now();
        let mut row = MessageRow::outgoing(caller.account_id, number.id, to, content, now);
        row.id = id;
        row.sender_jid = number
            .phone_number
            .as_ref()
            .map(|p| Jid::from_phone(p).to_string());
        row.status = MessageStatus::Sent;
        row.provider_msg_id = Some(provider_id);
        row.attempts = 1;
        row.sent_at = Some(now);
        Ok(row)
    }

    /// A failed verification as the caller should see it: a failure that took the number
    /// offline (its credentials were refused) is the provider refusing the send, not a
    /// passing condition worth retrying in a moment.
    async fn settle(
        &self,
        number: &SessionRow,
        e: EngineError,
    ) -> Result<EngineError, ServiceError> {
        let reason = match &e {
            EngineError::Transient(m) => m.clone(),
            EngineError::RetryLater { reason, .. } => reason.clone(),
            _ => return Ok(e),
        };
        // Running before the send, stopped by it.
        let offline = number.status.is_running()
            && self
                .store
                .sandbox_session()
                .await?
                .filter(|row| row.id == number.id)
                .is_none_or(|row| !row.status.is_running());
        Ok(if offline {
            EngineError::Permanent(reason)
        } else {
            e
        })
    }

    /// The caller's agents.
    pub async fn agents(&self, caller: &Caller) -> Result<Vec<AgentRow>, ServiceError> {
        caller.require_pat()?;
        Ok(self.store.list_agents(caller.account_id).await?)
    }

    /// One of the caller's agents.
    pub async fn agent(&self, caller: &Caller, id: AgentId) -> Result<AgentRow, ServiceError> {
        caller.require_pat()?;
        self.store
            .get_agent(caller.account_id, id)
            .await?
            .ok_or(ServiceError::NotFound("agent"))
    }

    /// Creates an agent. With a `webhook_url`, the agent gets its own signed webhook endpoint
    /// (receiving `message.received` and `sandbox.activated` of phones bound to it), stored
    /// with it in one transaction; its signing secret is returned here only.
    pub async fn create_agent(
        &self,
        caller: &Caller,
        change: AgentChange,
    ) -> Result<(AgentRow, Option<String>), ServiceError> {
        caller.require_pat()?;
        let name = check_name(change.name)?;
        let description = check_description(change.description.flatten())?;
        let now = self.now();
        let mut row = AgentRow {
            id: AgentId::generate(),
            account_id: caller.account_id,
            name,
            description,
            webhook_url: None,
            webhook_id: None,
            created_at: now,
            updated_at: now,
        };
        let mut hook = None;
        let mut secret = None;
        if let Some(url) = change.webhook_url.flatten() {
            self.check_agent_url(&url).await?;
            let new = agent_webhook(&row, &url, self.secrets.as_deref(), &mut secret);
            row.webhook_url = Some(url);
            row.webhook_id = Some(new.id);
            hook = Some(new);
        }
        self.store.create_agent(&row, hook).await?;
        Ok((row, secret))
    }

    /// Edits an agent; a new `webhook_url` keeps the endpoint (and its secret), `null` removes
    /// it. Returns the agent and, when an endpoint was created, its secret.
    pub async fn update_agent(
        &self,
        caller: &Caller,
        id: AgentId,
        change: AgentChange,
    ) -> Result<(AgentRow, Option<String>), ServiceError> {
        caller.require_pat()?;
        let edit = AgentEdit {
            name: change.name.map(|n| check_name(Some(n))).transpose()?,
            description: change.description.map(check_description).transpose()?,
            webhook_url: match change.webhook_url {
                Some(Some(url)) => {
                    self.check_agent_url(&url).await?;
                    Some(Some(url))
                }
                other => other,
            },
        };
        let mut secret = None;
        let secrets = self.secrets.as_deref();
        let (agent, created) = self
            .store
            .edit_agent(caller.account_id, id, edit, self.now(), |agent, url| {
                agent_webhook(agent, url, secrets, &mut secret)
            })
            .await?
            .ok_or(ServiceError::NotFound("agent"))?;
        // The store hands back what it stored (sealed); the answer shows the secret itself.
        Ok((agent, created.and(secret)))
    }

    /// Deletes an agent and its endpoint; phones bound to it stay activated, unbound.
    pub async fn delete_agent(&self, caller: &Caller, id: AgentId) -> Result<(), ServiceError> {
        caller.require_pat()?;
        if self.store.delete_agent(caller.account_id, id).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound("agent"))
        }
    }
}

/// The endpoint of `agent` at `url`: its sandbox traffic only. Its new signing secret is
/// stored sealed and put in `secret`.
fn agent_webhook(
    agent: &AgentRow,
    url: &str,
    secrets: Option<&crate::secrets::SecretBox>,
    secret: &mut Option<String>,
) -> WebhookRow {
    let id = WebhookId::generate();
    let plain = webhooks::new_secret();
    let sealed = webhooks::seal_secret(secrets, id, &plain);
    *secret = Some(plain);
    WebhookRow {
        id,
        account_id: agent.account_id,
        target_url: url.to_owned(),
        subscribed_events: vec!["message.received".into(), "sandbox.activated".into()],
        session_id: None,
        agent_id: Some(agent.id),
        is_active: true,
        signing_secret: sealed,
        description: Some(format!("agent {}", agent.id)),
        event_cursor: 0,
        created_at: agent.updated_at,
        updated_at: agent.updated_at,
        failing_since: None,
        disabled_at: None,
    }
}

/// A phone as the sandbox accepts it: digits, spaces, dashes and a leading `+`.
fn parse_phone(field: &str, text: &str) -> Result<Phone, ServiceError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ServiceError::invalid(field, "required"));
    }
    let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
    if !body
        .chars()
        .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
    {
        return Err(ServiceError::invalid(
            field,
            "must be a phone number in international format: digits, spaces, dashes and a leading '+' only",
        ));
    }
    // Written as typed: `00` is not an international prefix here.
    let digits: String = body.chars().filter(char::is_ascii_digit).collect();
    Phone::parse(&format!("+{digits}"))
        .map_err(|e| ServiceError::invalid(field, format!("is not a phone number: it {e}")))
}

fn phone_taken(field: &str) -> ServiceError {
    ServiceError::invalid(
        field,
        "this phone already has a sandbox session with another account; it can join one account's sandbox at a time",
    )
}

fn other_phone(field: &str, other: &SandboxRow) -> ServiceError {
    ServiceError::invalid(
        field,
        format!(
            "you already have a sandbox session for {} (id {}); revoke it first: one phone per account",
            other.phone.e164(),
            other.id
        ),
    )
}

fn check_name(name: Option<String>) -> Result<String, ServiceError> {
    let name = name
        .map(|n| n.trim().to_owned())
        .ok_or_else(|| ServiceError::invalid("name", "required"))?;
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ServiceError::invalid("name", "must be 1 to 200 characters"));
    }
    Ok(name)
}

fn check_description(description: Option<String>) -> Result<Option<String>, ServiceError> {
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 2000)
    {
        return Err(ServiceError::invalid(
            "description",
            "must be at most 2000 characters",
        ));
    }
    Ok(description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_codes_avoid_look_alikes() {
        for _ in 0..200 {
            let code = activation_code();
            assert_eq!(code.len(), 6);
            assert!(
                code.chars()
                    .all(|c| CODE_ALPHABET.contains(&(c as u8)) && !"01ILO".contains(c)),
                "{code}"
            );
        }
    }

    #[test]
    fn phones_take_digits_spaces_dashes_and_a_leading_plus() {
        assert_eq!(
            parse_phone("phone", "+34 688-246 216").unwrap().e164(),
            "+34688246216"
        );
        assert_eq!(
            parse_phone("phone", "34688246216").unwrap().e164(),
            "+34688246216"
        );
        for bad in [
            "",
            "  ",
            "+34 (688) 246216",
            "34.688.246.216",
            "abc",
            "++34688246216",
            "+34",
            "+999 1234 5678",
        ] {
            let err = parse_phone("phone", bad).unwrap_err();
            assert!(
                matches!(&err, ServiceError::Invalid { errors, .. } if errors.contains_key("phone")),
                "{bad}: {err:?}"
            );
        }
    }
}
