//! Services hold the rules (validation, state machines, tenancy). They know no HTTP.

pub mod broadcast_send;
pub mod broadcasts;
pub mod bulk;
pub mod business_profile;
pub mod cloud;
pub mod crm;
mod engines;
pub mod events;
mod lifecycle;
pub mod messages;
pub mod numbers;
pub mod sandbox;
pub mod sessions;
pub mod social;
pub mod templates;
pub mod webhooks;

use std::sync::Arc;

pub use broadcasts::BroadcastService;
pub use bulk::BulkService;
pub use business_profile::BusinessProfileService;
pub use cloud::CloudService;
pub use crm::CrmService;
pub use engines::Engines;
pub use lifecycle::Supervisor;
pub use messages::MessageService;
pub use numbers::NumberService;
pub use sandbox::SandboxService;
pub use sessions::{
    CreateSession, CreatedSession, RotatedKey, SessionList, SessionService, UpdateSession,
};
pub use social::SocialService;
pub use templates::TemplateService;
pub use webhooks::WebhookService;
use wharf_core::{AccountId, SessionId};

use crate::ServiceError;

/// Who is calling: the account, and the session when the credential is a session key.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: AccountId,
    /// Set for session keys, which act on this session only.
    pub session_id: Option<SessionId>,
    /// The hash of the presented token, to check the key again.
    pub token: Option<wharf_core::TokenHash>,
    /// Set when the key came from the send path's cache: the auth epoch it was read at,
    /// which the send must be committed with (see `wharf_store::Store::key_for_send`).
    pub auth_epoch: Option<i64>,
}

impl Caller {
    /// The caller a live key stands for.
    pub fn of_key(
        key: &wharf_store::KeyRow,
        token: wharf_core::TokenHash,
        auth_epoch: Option<i64>,
    ) -> Self {
        Self {
            account_id: key.account_id,
            session_id: match key.kind {
                wharf_core::KeyKind::Pat => None,
                wharf_core::KeyKind::Session => key.session_id,
            },
            token: Some(token),
            auth_epoch,
        }
    }

    /// Refuses session keys (for routes reserved to personal access tokens).
    pub fn require_pat(&self) -> Result<(), ServiceError> {
        match self.session_id {
            None => Ok(()),
            Some(_) => Err(ServiceError::Forbidden(
                "session-scoped keys cannot call this endpoint; use a personal access token".into(),
            )),
        }
    }

    /// Whether the caller may see session `id` (an account's PAT sees all of its sessions).
    pub fn can_see(&self, id: SessionId) -> bool {
        self.session_id.is_none_or(|own| own == id)
    }
}

/// Everything the dialects call, shared by all of them. The store is private to the
/// services: a dialect reaches data only through a service, which takes the caller.
#[derive(Clone)]
pub struct Services {
    store: wharf_store::Store,
    pub sessions: Arc<SessionService>,
    pub messages: Arc<MessageService>,
    pub webhooks: Arc<WebhookService>,
    pub engines: Arc<Engines>,
    pub cloud: Arc<CloudService>,
    pub sandbox: Arc<SandboxService>,
    /// Contacts, groups, channels and the linked account.
    pub social: Arc<SocialService>,
    /// The contacts CRM (Zernio Business API).
    pub crm: Arc<CrmService>,
    /// Business profiles (Zernio Business API).
    pub business_profile: Arc<BusinessProfileService>,
    /// Message templates (Zernio Business API).
    pub templates: Arc<TemplateService>,
    /// Bulk template sends (Zernio Business API).
    pub bulk: Arc<BulkService>,
    /// Broadcasts (Zernio Business API).
    pub broadcasts: Arc<BroadcastService>,
    /// Phone numbers: the pool, the provider and Meta's registration (Zernio Business API).
    pub numbers: Arc<NumberService>,
    /// The outbound policy, for URLs a dialect takes (media in sends).
    pub outbound: Arc<crate::outbound::Outbound>,
}

impl Services {
    /// The services over `store`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: wharf_store::Store,
        sessions: Arc<SessionService>,
        messages: Arc<MessageService>,
        webhooks: Arc<WebhookService>,
        engines: Arc<Engines>,
        cloud: Arc<CloudService>,
        sandbox: Arc<SandboxService>,
        templates: Arc<TemplateService>,
        outbound: Arc<crate::outbound::Outbound>,
        broadcasts: broadcasts::BroadcastSettings,
        numbers: Arc<NumberService>,
    ) -> Self {
        let clock = messages.clock().clone();
        let social = Arc::new(SocialService::new(
            store.clone(),
            engines.clone(),
            sessions.ownership().clone(),
            clock.clone(),
        ));
        let crm = Arc::new(CrmService::new(store.clone(), clock.clone()));
        let bulk = Arc::new(BulkService::new(
            messages.clone(),
            templates.clone(),
            crm.clone(),
        ));
        let broadcasts_service = Arc::new(BroadcastService::new(
            store.clone(),
            messages.clone(),
            templates.clone(),
            crm.clone(),
            clock.clone(),
            broadcasts,
        ));
        Self {
            social,
            crm,
            business_profile: Arc::new(BusinessProfileService::new(
                store.clone(),
                cloud.clone(),
                clock,
            )),
            store,
            sessions,
            messages,
            webhooks,
            engines,
            cloud,
            sandbox,
            templates,
            bulk,
            broadcasts: broadcasts_service,
            numbers,
            outbound,
        }
    }

    /// The same services, with contacts and groups reading time from `clock`.
    pub fn with_clock(mut self, clock: wharf_core::time::Clock) -> Self {
        self.social = Arc::new(SocialService::new(
            self.store.clone(),
            self.engines.clone(),
            self.sessions.ownership().clone(),
            clock,
        ));
        self
    }

    /// Instance-wide counts for the operator's `/metrics` (no tenant's data: counts only).
    pub async fn gauges(&self) -> Result<wharf_store::Gauges, ServiceError> {
        Ok(self.store.gauges().await?)
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<(), ServiceError> {
        Ok(self.store.ping().await?)
    }

    /// The instances on the database and the sessions each owns (`GET /instances`).
    pub async fn instances(&self) -> Result<crate::instances::InstancesView, ServiceError> {
        Ok(crate::instances::view(&self.store).await?)
    }

    /// The live key a token stands for, with the auth epoch it was read at; `cached` takes
    /// it from the send path's cache (see `wharf_store::Store::key_for_send`).
    pub async fn key_of(
        &self,
        token: &wharf_core::TokenHash,
        cached: bool,
    ) -> Result<Option<(wharf_store::KeyRow, i64)>, ServiceError> {
        Ok(if cached {
            self.store.key_for_send(token, false).await?
        } else {
            self.store.find_live_key(token).await?.map(|k| (k, 0))
        })
    }

    /// Whether the token's key is still live; when it is not, the send path's cache is
    /// emptied so its next request is refused at once.
    pub async fn key_is_live(&self, token: &wharf_core::TokenHash) -> Result<bool, ServiceError> {
        let live = self.store.find_live_key(token).await?.is_some();
        if !live {
            self.store.forget_cached_auth();
        }
        Ok(live)
    }

    /// The caller's events after `after` (see [`events::catch_up`]).
    pub async fn events_after(
        &self,
        caller: &Caller,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<wharf_store::EventRow>, i64), ServiceError> {
        events::catch_up(&self.store, caller, after, limit).await
    }

    /// Fails with 410's error when events after cursor `after` were removed by retention.
    pub async fn check_event_cursor(
        &self,
        caller: &Caller,
        after: i64,
    ) -> Result<(), ServiceError> {
        events::check_cursor(&self.store, caller, after).await
    }

    /// The cursor of the caller's newest event (0 when there is none): where a live view
    /// that does not want the past starts.
    pub async fn event_head(&self, caller: &Caller) -> Result<i64, ServiceError> {
        Ok(self.store.event_cursor(caller.account_id).await?)
    }

    /// Bumped after every commit that appended events.
    pub fn subscribe_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.subscribe_events()
    }
}
