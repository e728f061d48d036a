//! Broadcasts (Zernio Business API): one approved template to many recipients of a session.
//! The rules are here (tenancy, limits, the state machine, the schedule window); sending is
//! a durable job run by the broadcast worker, one batch at a time ([`BroadcastService::step`]):
//! each batch's messages are decided like any send ([`MessageService::broadcast_messages`])
//! and committed with the recipients' state, so a crash never sends twice nor skips.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde_json::json;
use tokio::sync::Notify;
use wharf_core::{BroadcastId, Phone, SessionId, message::TemplateComponent, time::Clock};
use wharf_store::{
    BroadcastRow, BroadcastStatus, NewRecipient, RecipientRow, RecipientsAdded, Store, Transition,
};

use super::{Caller, CrmService, MessageService, TemplateService, broadcast_send::template_of};
use crate::ServiceError;

/// Most recipients of one call (the seed's `maxItems`).
pub const MAX_RECIPIENTS: usize = 1000;
/// Furthest a schedule may be.
pub const MAX_SCHEDULE_MS: i64 = 30 * 24 * 3_600_000;
/// Messages of a broadcast the worker lets wait in the outbox before adding more, in
/// batches: the dispatcher's pace sets the speed, and a cancel has little to withdraw.
pub const WINDOW_BATCHES: i64 = 4;

/// How the broadcast worker sends.
#[derive(Debug, Clone, Copy)]
pub struct BroadcastSettings {
    /// How long `send` waits for the end before answering `sending`.
    pub send_wait: Duration,
    /// Recipients turned into messages per transaction.
    pub batch: i64,
}

/// A recipient as the client wrote it (`at` names it in errors: `recipients[3]`).
#[derive(Debug, Clone, Default)]
pub struct RecipientInput {
    pub at: String,
    pub phone: String,
    pub name: Option<String>,
    pub variables: BTreeMap<String, String>,
}

/// A new broadcast, parsed.
#[derive(Debug, Clone)]
pub struct CreateBroadcast {
    pub session: SessionId,
    pub name: String,
    pub description: Option<String>,
    pub template: String,
    pub language: String,
    /// Parameters every recipient shares (header media, buttons).
    pub components: Vec<TemplateComponent>,
    pub recipients: Vec<RecipientInput>,
}

/// The broadcast service.
pub struct BroadcastService {
    pub(super) store: Store,
    pub(super) messages: Arc<MessageService>,
    pub(super) templates: Arc<TemplateService>,
    pub(super) crm: Arc<CrmService>,
    pub(super) clock: Clock,
    wake: Arc<Notify>,
    pub(super) settings: BroadcastSettings,
}

fn refused(t: Transition, what: &str) -> ServiceError {
    match t {
        Transition::Done(b) | Transition::Refused(b) => invalid_status(&b, what),
    }
}

fn invalid_status(b: &BroadcastRow, what: &str) -> ServiceError {
    ServiceError::invalid(
        "status",
        format!("the broadcast is {}: {what}", b.status.as_str()),
    )
}

/// The recipients of a call, checked: E.164 phones (a bad one is a 400 naming it).
fn new_recipients(list: Vec<RecipientInput>) -> Result<Vec<NewRecipient>, ServiceError> {
    if list.len() > MAX_RECIPIENTS {
        return Err(ServiceError::invalid(
            "recipients",
            format!("at most {MAX_RECIPIENTS} recipients per request"),
        ));
    }
    list.into_iter()
        .map(|r| {
            let phone = Phone::parse(&r.phone).map_err(|e| {
                ServiceError::invalid(
                    format!("{}.phone", r.at),
                    format!("not a phone number in E.164: {e}"),
                )
            })?;
            Ok(NewRecipient {
                phone: phone.e164().to_string(),
                name: r.name,
                variables: (!r.variables.is_empty()).then(|| json!(r.variables)),
            })
        })
        .collect()
}

impl BroadcastService {
    pub fn new(
        store: Store,
        messages: Arc<MessageService>,
        templates: Arc<TemplateService>,
        crm: Arc<CrmService>,
        clock: Clock,
        settings: BroadcastSettings,
    ) -> Self {
        Self {
            store,
            messages,
            templates,
            crm,
            clock,
            wake: Arc::new(Notify::new()),
            settings,
        }
    }

    /// Notified when a broadcast starts (the worker waits on it).
    pub fn wakeup(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Moves whenever events are committed, in this instance or another: the receipts of a
    /// broadcast's messages, which may end it.
    pub fn events_appended(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.subscribe_events()
    }

    /// The caller's broadcast `id` (a malformed, unknown or foreign id is not found).
    async fn broadcast(&self, caller: &Caller, id: &str) -> Result<BroadcastRow, ServiceError> {
        let not_found = ServiceError::NotFound("broadcast");
        let Ok(id) = id.parse::<BroadcastId>() else {
            return Err(not_found);
        };
        self.store
            .get_broadcast(caller.account_id, id)
            .await?
            .filter(|b| caller.can_see(b.session_id))
            .inspect(|b| crate::log_fields::session(b.session_id))
            .ok_or(not_found)
    }

    fn done(t: Option<Transition>, what: &str) -> Result<BroadcastRow, ServiceError> {
        match t {
            None => Err(ServiceError::NotFound("broadcast")),
            Some(Transition::Done(b)) => Ok(b),
            Some(Transition::Refused(b)) => Err(invalid_status(&b, what)),
        }
    }

    /// `GET /v1/whatsapp/broadcasts`: the session's broadcasts, newest first.
    pub async fn list(
        &self,
        caller: &Caller,
        session: SessionId,
        status: Option<BroadcastStatus>,
        limit: i64,
        skip: i64,
    ) -> Result<(Vec<BroadcastRow>, i64), ServiceError> {
        let session = self.templates.session(caller, session).await?;
        Ok(self
            .store
            .list_broadcasts(caller.account_id, session.id, status, limit, skip)
            .await?)
    }

    /// The caller's newest `limit` broadcasts across its sessions (a session key's: its
    /// session's), for the dashboard.
    pub async fn list_all(
        &self,
        caller: &Caller,
        limit: i64,
    ) -> Result<Vec<BroadcastRow>, ServiceError> {
        Ok(self
            .store
            .recent_broadcasts(caller.account_id, caller.session_id, limit)
            .await?)
    }

    /// `POST /v1/whatsapp/broadcasts`: a draft, with its initial recipients.
    pub async fn create(
        &self,
        caller: &Caller,
        req: CreateBroadcast,
    ) -> Result<BroadcastRow, ServiceError> {
        let session = self.templates.session(caller, req.session).await?;
        let name = req.name.trim().to_owned();
        if name.is_empty() {
            return Err(ServiceError::invalid("name", "name is required"));
        }
        let recipients = new_recipients(req.recipients)?;
        let template = json!({
            "name": req.template,
            "language": req.language,
            "components": req.components,
        });
        let row = BroadcastRow::draft(
            caller.account_id,
            session.id,
            name,
            req.description,
            template,
            self.clock.now_millis(),
        );
        Ok(self.store.insert_broadcast(&row, &recipients).await?)
    }

    /// `GET /v1/whatsapp/broadcasts/{id}`.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<BroadcastRow, ServiceError> {
        self.broadcast(caller, id).await
    }

    /// `DELETE /v1/whatsapp/broadcasts/{id}`: only a draft or a cancelled broadcast.
    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<(), ServiceError> {
        let b = self.broadcast(caller, id).await?;
        let t = self.store.delete_broadcast(caller.account_id, b.id).await?;
        Self::done(t, "only draft or cancelled broadcasts can be deleted").map(|_| ())
    }

    /// The template of `b` is sendable from its session now (422 naming it otherwise).
    async fn check_template(&self, caller: &Caller, b: &BroadcastRow) -> Result<(), ServiceError> {
        let session = self.templates.session(caller, b.session_id).await?;
        let (name, language, _) = template_of(b);
        self.templates.approved(&session, &name, &language).await?;
        Ok(())
    }

    fn need_recipients(b: &BroadcastRow) -> Result<(), ServiceError> {
        if b.recipient_count == 0 {
            return Err(ServiceError::invalid(
                "recipients",
                "the broadcast has no recipients",
            ));
        }
        Ok(())
    }

    /// `POST /v1/whatsapp/broadcasts/{id}/send`: starts at once, then waits up to the
    /// configured bound for the end. The broadcast as it is when the wait ends.
    pub async fn send(&self, caller: &Caller, id: &str) -> Result<BroadcastRow, ServiceError> {
        let b = self.broadcast(caller, id).await?;
        if !matches!(
            b.status,
            BroadcastStatus::Draft | BroadcastStatus::Scheduled
        ) {
            return Err(invalid_status(
                &b,
                "only draft or scheduled broadcasts can be sent",
            ));
        }
        Self::need_recipients(&b)?;
        self.check_template(caller, &b).await?;
        let t = self
            .store
            .start_broadcast(Some(caller.account_id), b.id, self.clock.now_millis())
            .await?;
        let started = Self::done(t, "only draft or scheduled broadcasts can be sent")?;
        self.wake.notify_one();
        self.wait_for_end(caller, started).await
    }

    /// Waits (up to the bound) until `b` is over; each commit that appends events wakes it.
    async fn wait_for_end(
        &self,
        caller: &Caller,
        mut b: BroadcastRow,
    ) -> Result<BroadcastRow, ServiceError> {
        let mut appended = self.store.subscribe_events();
        let deadline = tokio::time::Instant::now() + self.settings.send_wait;
        loop {
            // Read after subscribing: an end committed in between still wakes the wait.
            if let Some(now) = self.store.get_broadcast(caller.account_id, b.id).await? {
                b = now;
            }
            if b.status.is_final() {
                return Ok(b);
            }
            match tokio::time::timeout_at(deadline, appended.changed()).await {
                Ok(Ok(())) => {}
                _ => return Ok(b),
            }
        }
    }

    /// `POST /v1/whatsapp/broadcasts/{id}/schedule`: a draft with recipients, at a time in
    /// the future and at most 30 days out.
    pub async fn schedule(
        &self,
        caller: &Caller,
        id: &str,
        at: i64,
    ) -> Result<BroadcastRow, ServiceError> {
        let b = self.broadcast(caller, id).await?;
        let now = self.clock.now_millis();
        if at <= now {
            return Err(ServiceError::invalid(
                "scheduledAt",
                "must be in the future",
            ));
        }
        if at - now > MAX_SCHEDULE_MS {
            return Err(ServiceError::invalid(
                "scheduledAt",
                "must be at most 30 days in the future",
            ));
        }
        if b.status != BroadcastStatus::Draft {
            return Err(invalid_status(&b, "only draft broadcasts can be scheduled"));
        }
        Self::need_recipients(&b)?;
        self.check_template(caller, &b).await?;
        let t = self
            .store
            .schedule_broadcast(caller.account_id, b.id, at, now)
            .await?;
        Self::done(t, "only draft broadcasts with recipients can be scheduled")
    }

    /// `DELETE /v1/whatsapp/broadcasts/{id}/schedule`: back to draft.
    pub async fn unschedule(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<BroadcastRow, ServiceError> {
        let b = self.broadcast(caller, id).await?;
        let t = self
            .store
            .unschedule_broadcast(caller.account_id, b.id, self.clock.now_millis())
            .await?;
        Self::done(t, "only scheduled broadcasts can return to draft")
    }

    /// `POST /v1/whatsapp/broadcasts/{id}/cancel` (Wharf's): stops a scheduled or sending
    /// broadcast; what was sent stays sent, the rest is cancelled.
    pub async fn cancel(&self, caller: &Caller, id: &str) -> Result<BroadcastRow, ServiceError> {
        let b = self.broadcast(caller, id).await?;
        let t = self
            .store
            .cancel_broadcast(caller.account_id, b.id, self.clock.now_millis())
            .await?;
        Self::done(t, "only scheduled or sending broadcasts can be cancelled")
    }

    /// `GET .../recipients`: a page, with the broadcast (its counters are the summary).
    pub async fn recipients(
        &self,
        caller: &Caller,
        id: &str,
        status: Option<&str>,
        limit: i64,
        skip: i64,
    ) -> Result<(BroadcastRow, Vec<RecipientRow>), ServiceError> {
        let b = self.broadcast(caller, id).await?;
        let page = self
            .store
            .broadcast_recipients(b.id, status, limit, skip)
            .await?;
        Ok((b, page))
    }

    /// `PATCH .../recipients`: adds up to 1,000 to a draft; phones already there are
    /// duplicates.
    pub async fn add_recipients(
        &self,
        caller: &Caller,
        id: &str,
        list: Vec<RecipientInput>,
    ) -> Result<RecipientsAdded, ServiceError> {
        let b = self.broadcast(caller, id).await?;
        let recipients = new_recipients(list)?;
        match self
            .store
            .add_broadcast_recipients(caller.account_id, b.id, &recipients)
            .await?
        {
            None => Err(ServiceError::NotFound("broadcast")),
            Some(Ok(added)) => Ok(added),
            Some(Err(t)) => Err(refused(t, "recipients can be added to drafts only")),
        }
    }

    /// `DELETE .../recipients`: removes phones from a draft; `(removed, remaining)`.
    pub async fn remove_recipients(
        &self,
        caller: &Caller,
        id: &str,
        phones: Vec<String>,
    ) -> Result<(i64, i64), ServiceError> {
        let b = self.broadcast(caller, id).await?;
        // Phones are stored in E.164: a phone written otherwise still matches.
        let phones: Vec<String> = phones
            .iter()
            .map(|p| {
                Phone::parse(p)
                    .map(|p| p.e164().to_string())
                    .unwrap_or_else(|_| p.clone())
            })
            .collect();
        match self
            .store
            .remove_broadcast_recipients(caller.account_id, b.id, &phones)
            .await?
        {
            None => Err(ServiceError::NotFound("broadcast")),
            Some(Ok(counts)) => Ok(counts),
            Some(Err(t)) => Err(refused(t, "recipients can be removed from drafts only")),
        }
    }
}
