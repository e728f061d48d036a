//! Webhook endpoints of an account: validation, secrets, and reading deliveries back.

use std::sync::Arc;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use rand::RngCore;
use wharf_core::{DeliveryId, EventType, SessionId, WebhookId, time::Clock};
use wharf_store::{AttemptRow, DeliveryRow, Store, WebhookEdit, WebhookRow};

use super::Caller;
use crate::{ServiceError, outbound::Outbound, secrets::SecretBox};

/// What a sealed value starts with (see [`crate::secrets`]); a stored secret without it was
/// written plain (before sealing existed, or without a key).
pub const SEALED_PREFIX: &str = "v1:";

/// The label a signing secret is sealed under: bound to its endpoint, so a sealed secret
/// cannot be moved to another row.
fn secret_label(id: WebhookId) -> String {
    format!("webhook_signing_secret:{id}")
}

/// The stored form of endpoint `id`'s signing secret: sealed with the server's key, or as
/// written when there is no key (PostgreSQL without `secret_key`).
pub fn seal_secret(secrets: Option<&SecretBox>, id: WebhookId, plain: &str) -> String {
    match secrets {
        Some(key) => key.seal(&secret_label(id), plain),
        None => plain.to_owned(),
    }
}

/// The signing secret of endpoint `id` from its stored form.
pub fn open_secret(
    secrets: Option<&SecretBox>,
    id: WebhookId,
    stored: &str,
) -> Result<String, String> {
    if !stored.starts_with(SEALED_PREFIX) {
        return Ok(stored.to_owned());
    }
    let key = secrets.ok_or("the signing secret is sealed and the server has no secret_key")?;
    key.open(&secret_label(id), stored)
        .map_err(|e| e.to_string())
}

/// Checks at start that the server's key opens the stored signing secrets: with the key file
/// lost (a restore without it) or `secret_key` changed, every delivery would fail until the
/// endpoints were disabled, so the server refuses to start instead, saying why.
pub async fn check_stored_secrets(
    store: &Store,
    secrets: Option<&SecretBox>,
) -> Result<(), anyhow::Error> {
    if let Some((id, stored)) = store.a_sealed_webhook_secret(SEALED_PREFIX).await? {
        open_secret(secrets, id, &stored).map_err(|e| {
            anyhow::anyhow!(
                "the stored webhook signing secrets cannot be opened with this server's key \
                 ({e}): start it with the key they were sealed with (`secret_key`, or the key \
                 file beside the SQLite database)"
            )
        })?;
    }
    Ok(())
}

/// The startup data migration: seals every signing secret still stored plain. Idempotent
/// (sealed rows are left alone) and safe beside other instances (a row is replaced only if
/// it still holds the plain value read). Returns how many were sealed.
pub async fn seal_stored_secrets(
    store: &Store,
    secrets: &SecretBox,
) -> Result<usize, ServiceError> {
    let mut sealed = 0;
    for (id, plain) in store.unsealed_webhook_secrets(SEALED_PREFIX).await? {
        if store
            .replace_webhook_secret(id, &plain, &seal_secret(Some(secrets), id, &plain))
            .await?
        {
            sealed += 1;
        }
    }
    Ok(sealed)
}

/// What creating or editing an endpoint may set; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    pub target_url: Option<String>,
    pub subscribed_events: Option<Vec<String>>,
    pub session_id: Option<Option<SessionId>>,
    pub is_active: Option<bool>,
    pub description: Option<Option<String>>,
}

/// A new signing secret: `whsec_` and 32 random bytes in base64 (Standard Webhooks).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// Checks a target URL: absolute http(s) with a host, no spaces.
pub fn check_url(url: &str) -> Result<(), ServiceError> {
    check_url_field("target_url", url)
}

/// As [`check_url`], naming `field` on failure.
pub fn check_url_field(field: &str, url: &str) -> Result<(), ServiceError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| ServiceError::invalid(field, "must be an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.chars().any(char::is_whitespace) || url.len() > 2048 {
        return Err(ServiceError::invalid(
            field,
            "must be an absolute URL with a host, without spaces, up to 2048 characters",
        ));
    }
    Ok(())
}

fn check_events(events: &[String]) -> Result<(), ServiceError> {
    for e in events {
        if EventType::parse(e).is_none() {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(ServiceError::invalid(
                "subscribed_events",
                format!("unknown event type `{e}`; known: {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

/// The webhooks service.
pub struct WebhookService {
    store: Store,
    outbound: Arc<Outbound>,
    secrets: Option<Arc<SecretBox>>,
    /// The server's clock: edits, recoveries and redeliveries are dated by it, as the
    /// deliverer's schedule is.
    clock: Clock,
}

impl WebhookService {
    pub fn new(
        store: Store,
        outbound: Arc<Outbound>,
        secrets: Option<Arc<SecretBox>>,
        clock: Clock,
    ) -> Self {
        Self {
            store,
            outbound,
            secrets,
            clock,
        }
    }

    /// Checks a target URL's form and the outbound policy.
    async fn check_target(&self, url: &str) -> Result<(), ServiceError> {
        check_url(url)?;
        self.outbound.check_url("target_url", url).await
    }

    /// `row` with its signing secret replaced by a new one, sealed; returns the new secret.
    fn new_sealed_secret(&self, row: &mut WebhookRow) -> String {
        let plain = new_secret();
        row.signing_secret = seal_secret(self.secrets.as_deref(), row.id, &plain);
        plain
    }

    async fn check_session(
        &self,
        caller: &Caller,
        session: Option<SessionId>,
    ) -> Result<(), ServiceError> {
        if let Some(id) = session
            && self
                .store
                .get_session(caller.account_id, id)
                .await?
                .is_none()
        {
            return Err(ServiceError::invalid(
                "session_id",
                "no such session in this account",
            ));
        }
        Ok(())
    }

    /// Creates an endpoint (PAT only); it receives events from now on. The answer carries
    /// the signing secret, shown only here and on rotation.
    pub async fn create(
        &self,
        caller: &Caller,
        change: WebhookChange,
    ) -> Result<WebhookRow, ServiceError> {
        caller.require_pat()?;
        let target_url = change
            .target_url
            .ok_or_else(|| ServiceError::invalid("target_url", "required"))?;
        self.check_target(&target_url).await?;
        let events = change.subscribed_events.unwrap_or_default();
        check_events(&events)?;
        let session_id = change.session_id.flatten();
        self.check_session(caller, session_id).await?;
        let now = self.clock.now_millis();
        let mut row = WebhookRow {
            id: WebhookId::generate(),
            account_id: caller.account_id,
            target_url,
            subscribed_events: events,
            session_id,
            agent_id: None,
            is_active: change.is_active.unwrap_or(true),
            signing_secret: String::new(),
            description: change.description.flatten(),
            event_cursor: 0,
            created_at: now,
            updated_at: now,
            failing_since: None,
            disabled_at: None,
        };
        let secret = self.new_sealed_secret(&mut row);
        let mut row = self.store.create_webhook(row).await?;
        // The answer shows the secret itself, once.
        row.signing_secret = secret;
        Ok(row)
    }

    /// The account's endpoints.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<WebhookRow>, ServiceError> {
        caller.require_pat()?;
        Ok(self.store.list_webhooks(caller.account_id).await?)
    }

    /// One endpoint.
    pub async fn get(&self, caller: &Caller, id: WebhookId) -> Result<WebhookRow, ServiceError> {
        caller.require_pat()?;
        // Agents' endpoints are managed through their agent.
        self.store
            .get_webhook(caller.account_id, id)
            .await?
            .filter(|w| w.agent_id.is_none())
            .ok_or(ServiceError::NotFound("webhook"))
    }

    /// Edits an endpoint.
    pub async fn update(
        &self,
        caller: &Caller,
        id: WebhookId,
        change: WebhookChange,
    ) -> Result<WebhookRow, ServiceError> {
        self.get(caller, id).await?;
        if let Some(url) = &change.target_url {
            self.check_target(url).await?;
        }
        if let Some(events) = &change.subscribed_events {
            check_events(events)?;
        }
        if let Some(session) = change.session_id {
            self.check_session(caller, session).await?;
        }
        // Only what the request names is written (see `Store::edit_webhook`).
        let edit = WebhookEdit {
            target_url: change.target_url,
            subscribed_events: change.subscribed_events,
            session_id: change.session_id,
            is_active: change.is_active,
            description: change.description,
            signing_secret: None,
        };
        self.store
            .edit_webhook(caller.account_id, id, &edit, self.clock.now_millis())
            .await?;
        self.get(caller, id).await
    }

    /// Replaces the signing secret; the old one stops signing at once.
    pub async fn rotate_secret(
        &self,
        caller: &Caller,
        id: WebhookId,
    ) -> Result<WebhookRow, ServiceError> {
        let mut row = self.get(caller, id).await?;
        let secret = self.new_sealed_secret(&mut row);
        let edit = WebhookEdit {
            signing_secret: Some(row.signing_secret.clone()),
            ..WebhookEdit::default()
        };
        self.store
            .edit_webhook(caller.account_id, id, &edit, self.clock.now_millis())
            .await?;
        row.signing_secret = secret;
        Ok(row)
    }

    /// Queues again every failed delivery of the endpoint created at or after `since` (ms),
    /// in their original order; returns how many. A disabled endpoint's deliveries wait until
    /// it is enabled again.
    pub async fn recover(
        &self,
        caller: &Caller,
        id: WebhookId,
        since: i64,
    ) -> Result<u64, ServiceError> {
        self.get(caller, id).await?;
        Ok(self
            .store
            .recover_deliveries(caller.account_id, id, since, self.clock.now_millis())
            .await?)
    }

    /// Deletes an endpoint and its delivery log.
    pub async fn delete(&self, caller: &Caller, id: WebhookId) -> Result<(), ServiceError> {
        // Only the account's own endpoints (an agent's is deleted with its agent).
        self.get(caller, id).await?;
        if self.store.delete_webhook(caller.account_id, id).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound("webhook"))
        }
    }

    /// A page of the endpoint's deliveries with their attempts, newest first.
    pub async fn deliveries(
        &self,
        caller: &Caller,
        id: WebhookId,
        before: Option<DeliveryId>,
        limit: i64,
    ) -> Result<(Vec<(DeliveryRow, Vec<AttemptRow>)>, Option<DeliveryId>), ServiceError> {
        self.get(caller, id).await?;
        let mut rows = self
            .store
            .list_deliveries(caller.account_id, id, before, limit)
            .await?;
        let next = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|(d, _)| d.id)
        } else {
            None
        };
        Ok((rows, next))
    }

    /// Schedules a delivery again, now.
    pub async fn redeliver(
        &self,
        caller: &Caller,
        id: WebhookId,
        delivery: DeliveryId,
    ) -> Result<(DeliveryRow, Vec<AttemptRow>), ServiceError> {
        self.get(caller, id).await?;
        match self
            .store
            .redeliver(caller.account_id, id, delivery, self.clock.now_millis())
            .await?
        {
            Some(true) => {}
            Some(false) => return Err(ServiceError::NotFound("delivery")),
            None => {
                return Err(ServiceError::conflict(
                    "delivery_in_progress",
                    "an attempt of this delivery is under way; redeliver after it ends",
                ));
            }
        }
        self.store
            .get_delivery(caller.account_id, id, delivery)
            .await?
            .ok_or(ServiceError::NotFound("delivery"))
    }
}
