//! Cloud API sessions: their credentials (validated, sealed at rest, never shown), the
//! directory the engine reads them from, and Meta's webhooks (the verification handshake,
//! signature checks with the owning session's app secret, and the updates they carry).

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use wharf_core::{AccountId, EngineError, EngineSink, Jid, ProviderId, SessionId};
use wharf_engines::cloud::{CloudCredentials, CloudDirectory, CloudEngine, webhook};
use wharf_store::{CloudRow, Store, TemplateStatusRow};

use crate::{ServiceError, config::is_graph_version, secrets::SecretBox};

/// Labels the sealed fields are bound to.
const TOKEN: &str = "cloud.access_token";
const SECRET: &str = "cloud.app_secret";

/// The `cloud` object of a session creation, parsed.
#[derive(Debug, Clone, Default)]
pub struct CloudInput {
    pub phone_number_id: Option<String>,
    pub waba_id: Option<String>,
    pub access_token: Option<String>,
    pub app_secret: Option<String>,
    pub verify_token: Option<String>,
    /// `Some(None)` (in a change) goes back to the server's default.
    pub graph_version: Option<Option<String>>,
    pub throughput_per_second: Option<Option<u32>>,
}

/// A cloud session's settings as the API shows them (never the token or the app secret).
#[derive(Debug, Clone)]
pub struct CloudSummary {
    pub phone_number_id: String,
    pub waba_id: String,
    pub graph_version: String,
    pub throughput_per_second: u32,
}

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(format!("cloud.{field}"), message)
}

fn graph_id(field: &str, v: &str) -> Result<String, ServiceError> {
    let v = v.trim();
    if v.is_empty() || v.len() > 32 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            field,
            "must be the numeric Graph id (1 to 32 digits)",
        ));
    }
    Ok(v.to_owned())
}

fn secret(field: &str, v: &str, max: usize) -> Result<String, ServiceError> {
    if v.is_empty()
        || v.chars().count() > max
        || v.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            field,
            format!("must be 1 to {max} characters without spaces"),
        ));
    }
    Ok(v.to_owned())
}

impl CloudInput {
    /// Checks each given field (`required` ones must be there), naming the one at fault.
    pub fn check(&self, required: bool) -> Result<(), ServiceError> {
        let need = |v: &Option<String>, field: &str| {
            if required && v.is_none() {
                Err(invalid(field, "required for the cloud engine"))
            } else {
                Ok(())
            }
        };
        need(&self.phone_number_id, "phone_number_id")?;
        need(&self.waba_id, "waba_id")?;
        need(&self.access_token, "access_token")?;
        need(&self.app_secret, "app_secret")?;
        need(&self.verify_token, "verify_token")?;
        if let Some(v) = &self.phone_number_id {
            graph_id("phone_number_id", v)?;
        }
        if let Some(v) = &self.waba_id {
            graph_id("waba_id", v)?;
        }
        if let Some(v) = &self.access_token {
            secret("access_token", v, 4096)?;
        }
        if let Some(v) = &self.app_secret {
            secret("app_secret", v, 256)?;
        }
        if let Some(v) = &self.verify_token {
            secret("verify_token", v, 256)?;
        }
        if let Some(Some(v)) = &self.graph_version
            && !is_graph_version(v)
        {
            return Err(invalid("graph_version", "must look like v23.0"));
        }
        if let Some(Some(t)) = self.throughput_per_second
            && !(1..=1000).contains(&t)
        {
            return Err(invalid(
                "throughput_per_second",
                "must be from 1 to 1000 messages per second",
            ));
        }
        Ok(())
    }
}

fn hash(verify_token: &str) -> String {
    format!("{:x}", Sha256::digest(verify_token.as_bytes()))
}

/// What the engine reads credentials from: the store, opened with the server's key.
pub struct Directory {
    store: Store,
    secrets: Arc<SecretBox>,
}

impl Directory {
    pub fn new(store: Store, secrets: Arc<SecretBox>) -> Self {
        Self { store, secrets }
    }
}

#[async_trait]
impl CloudDirectory for Directory {
    async fn credentials(&self, session: SessionId) -> Result<CloudCredentials, EngineError> {
        let row = self
            .store
            .cloud_session_any_account(session)
            .await
            .map_err(|e| EngineError::Transient(format!("cannot read the cloud settings: {e}")))?
            .ok_or_else(|| {
                EngineError::Permanent("the session has no Cloud API credentials".into())
            })?;
        let c = row.credentials;
        let open = |label: &str, sealed: &str| {
            self.secrets
                .open(label, sealed)
                .map_err(|e| EngineError::Permanent(e.to_string()))
        };
        Ok(CloudCredentials {
            access_token: open(TOKEN, &c.access_token)?,
            app_secret: open(SECRET, &c.app_secret)?,
            phone_number_id: c.phone_number_id,
            waba_id: c.waba_id,
            // The Graph address is the operator's (`cloud_graph_base_url`), never a tenant's.
            graph_base_url: None,
            graph_version: c.graph_version,
            throughput_per_second: c.throughput_per_second,
        })
    }

    async fn last_inbound_id(
        &self,
        session: SessionId,
        chat: &Jid,
    ) -> Result<Option<ProviderId>, EngineError> {
        self.store
            .last_inbound_provider_id(session, chat)
            .await
            .map_err(|e| EngineError::Transient(format!("cannot read messages: {e}")))
    }
}

/// Why a webhook was refused.
#[derive(Debug)]
pub enum WebhookRefusal {
    /// The signature does not match the app secret of a session the payload is about.
    BadSignature,
    /// Other refusals (unknown number, malformed payload, outage).
    Other(ServiceError),
}

impl From<ServiceError> for WebhookRefusal {
    fn from(e: ServiceError) -> Self {
        Self::Other(e)
    }
}

/// The cloud sessions service.
pub struct CloudService {
    store: Store,
    /// `None` when the server has no key (PostgreSQL without `secret_key`).
    secrets: Option<Arc<SecretBox>>,
    engine: Option<Arc<CloudEngine>>,
    sink: Weak<dyn EngineSink>,
}

impl CloudService {
    pub fn new(
        store: Store,
        secrets: Option<Arc<SecretBox>>,
        engine: Option<Arc<CloudEngine>>,
        sink: Weak<dyn EngineSink>,
    ) -> Self {
        Self {
            store,
            secrets,
            engine,
            sink,
        }
    }

    /// The engine, for its business operations.
    pub fn engine(&self) -> Option<&Arc<CloudEngine>> {
        self.engine.as_ref()
    }

    fn secrets(&self) -> Result<&SecretBox, ServiceError> {
        self.secrets.as_deref().ok_or_else(|| {
            ServiceError::invalid_with(
                "engine_unavailable",
                "engine",
                "the cloud engine needs secret_key (WHARF_SECRET_KEY) to seal credentials",
            )
        })
    }

    /// The sealed credentials of a new cloud session; validates every field.
    pub fn seal_new(
        &self,
        input: &CloudInput,
    ) -> Result<wharf_store::CloudCredentials, ServiceError> {
        input.check(true)?;
        let secrets = self.secrets()?;
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Ok(wharf_store::CloudCredentials {
            phone_number_id: graph_id("phone_number_id", &text(&input.phone_number_id))?,
            waba_id: graph_id("waba_id", &text(&input.waba_id))?,
            access_token: secrets.seal(TOKEN, &text(&input.access_token)),
            app_secret: secrets.seal(SECRET, &text(&input.app_secret)),
            verify_token_hash: hash(&text(&input.verify_token)),
            graph_base_url: None,
            graph_version: input.graph_version.clone().flatten(),
            throughput_per_second: input.throughput_per_second.flatten(),
        })
    }

    /// Applies a change to a session's cloud settings (the session must not be running).
    pub async fn change(
        &self,
        account: AccountId,
        session: SessionId,
        input: &CloudInput,
    ) -> Result<(), ServiceError> {
        input.check(false)?;
        let secrets = self.secrets()?;
        let mut c = self
            .store
            .cloud_session(account, session)
            .await?
            .ok_or_else(|| ServiceError::invalid("cloud", "only applies to cloud sessions"))?
            .credentials;
        if let Some(v) = &input.phone_number_id {
            c.phone_number_id = graph_id("phone_number_id", v)?;
        }
        if let Some(v) = &input.waba_id {
            c.waba_id = graph_id("waba_id", v)?;
        }
        if let Some(v) = &input.access_token {
            c.access_token = secrets.seal(TOKEN, v);
        }
        if let Some(v) = &input.app_secret {
            c.app_secret = secrets.seal(SECRET, v);
        }
        if let Some(v) = &input.verify_token {
            c.verify_token_hash = hash(v);
        }
        if let Some(v) = &input.graph_version {
            c.graph_version = v.clone();
        }
        if let Some(v) = input.throughput_per_second {
            c.throughput_per_second = v;
        }
        match self.store.update_cloud_session(account, session, &c).await {
            Ok(_) => Ok(()),
            Err(wharf_store::StoreError::Conflict(_)) => Err(in_use()),
            Err(e) => Err(e.into()),
        }
    }

    /// What the API shows of a cloud session's settings.
    pub async fn summary(
        &self,
        account: AccountId,
        session: SessionId,
    ) -> Result<Option<CloudSummary>, ServiceError> {
        let Some(row) = self.store.cloud_session(account, session).await? else {
            return Ok(None);
        };
        Ok(Some(self.summarize(&row)))
    }

    fn summarize(&self, row: &CloudRow) -> CloudSummary {
        let defaults = self
            .engine
            .as_ref()
            .map(|e| e.settings().clone())
            .unwrap_or_default();
        let c = &row.credentials;
        CloudSummary {
            phone_number_id: c.phone_number_id.clone(),
            waba_id: c.waba_id.clone(),
            graph_version: c.graph_version.clone().unwrap_or(defaults.graph_version),
            throughput_per_second: c
                .throughput_per_second
                .unwrap_or(defaults.throughput_per_second),
        }
    }

    /// `GET /webhooks/meta`: answers the challenge when the token is a cloud session's.
    pub async fn handshake(&self, mode: &str, token: &str) -> Result<bool, ServiceError> {
        Ok(mode == "subscribe" && self.store.cloud_verify_token_exists(&hash(token)).await?)
    }

    /// `POST /webhooks/meta`: checks the signature against the app secret of every session
    /// the payload is about, then records what it carries before answering (Meta redelivers
    /// anything not answered 200, and everything recorded is idempotent).
    pub async fn receive(&self, body: &[u8], signature: &str) -> Result<(), WebhookRefusal> {
        let json: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ServiceError::invalid("body", format!("malformed JSON: {e}")))?;
        let parsed = webhook::parse(&json).map_err(|e| ServiceError::invalid("object", e))?;
        // Meta's ids are digits. Anything else names no session, and is not looked up: this
        // route is public and its signature is not checked yet (a NUL, say, would make
        // PostgreSQL fail the query).
        let meta_id = |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
        let numbers: Vec<_> = parsed
            .phone_number_ids()
            .into_iter()
            .filter(|id| meta_id(id))
            .collect();
        let mut sessions = self
            .store
            .cloud_sessions_by_number(&numbers)
            .await
            .map_err(ServiceError::from)?;
        let mut wabas: Vec<&str> = parsed
            .templates
            .iter()
            .map(|t| t.waba_id.as_str())
            .filter(|id| meta_id(id))
            .collect();
        wabas.dedup();
        for waba in wabas {
            sessions.extend(
                self.store
                    .cloud_sessions_by_waba(waba)
                    .await
                    .map_err(ServiceError::from)?,
            );
        }
        if numbers.is_empty() && parsed.templates.is_empty() {
            // Only fields Wharf does not use (an account update, say): acknowledged, and
            // nothing is done with it, so Meta does not redeliver it for a week.
            return Ok(());
        }
        if sessions.is_empty() {
            return Err(
                ServiceError::NotFound("cloud session for this webhook's phone number").into(),
            );
        }
        let secrets = self.secrets.as_deref().ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!(
                "cloud sessions exist but the server has no secret key"
            ))
        })?;
        // Meta signs with the app's secret; every session concerned must share it.
        let mut checked: Vec<String> = Vec::new();
        for s in &sessions {
            let app_secret = secrets
                .open(SECRET, &s.cloud.credentials.app_secret)
                .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))?;
            if checked.contains(&app_secret) {
                continue;
            }
            if !webhook::signature_matches(&app_secret, body, signature) {
                return Err(WebhookRefusal::BadSignature);
            }
            checked.push(app_secret);
        }
        let sink = self.sink.upgrade().ok_or_else(|| {
            ServiceError::Engine(EngineError::Transient("the server is shutting down".into()))
        })?;
        for (pnid, updates) in parsed.numbers {
            let Some(s) = sessions
                .iter()
                .find(|s| s.cloud.credentials.phone_number_id == pnid)
            else {
                tracing::warn!(phone_number_id = %pnid, "cloud webhook about a number no session has");
                continue;
            };
            if s.status.is_deleting() || updates.is_empty() {
                continue;
            }
            sink.updates(s.cloud.session_id, updates)
                .await
                .map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))?;
        }
        for t in parsed.templates {
            // The mirror the send path checks templates against follows Meta's review.
            self.store
                .review_mirrored_template(
                    &t.waba_id,
                    &t.template_id,
                    &t.event,
                    t.reason.clone().filter(|r| r != "NONE"),
                    t.at,
                    wharf_core::time::now_millis(),
                )
                .await
                .map_err(ServiceError::from)?;
            self.store
                .record_template_status(&TemplateStatusRow {
                    waba_id: t.waba_id,
                    template_id: t.template_id,
                    name: t.name,
                    language: t.language,
                    status: t.event,
                    reason: t.reason,
                    event_at: t.at,
                    updated_at: 0,
                })
                .await
                .map_err(ServiceError::from)?;
        }
        Ok(())
    }
}

/// 409 for a phone number id another session already has.
pub fn in_use() -> ServiceError {
    ServiceError::conflict(
        "phone_number_in_use",
        "another session already uses this cloud.phone_number_id",
    )
}
