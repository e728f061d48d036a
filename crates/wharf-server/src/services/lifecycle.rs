//! Session lifecycle: connect, disconnect, restart, pairing, deletion, and the sink that
//! turns engine updates into durable status changes and events.

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::mpsc;
use wharf_core::{
    EngineError, EngineSink, EngineUpdate, Event, EventType, Jid, MessageId, OperationStatus,
    Phone, ProviderId, SessionId, SessionStatus,
    engine::EngineSession,
    jid::JidServer,
    message::{Inbound, ReceiptKind},
    time::now_millis,
};
use wharf_store::{
    InboundChange, JobAction, OutboxJob, SessionRow, StatusReport, Store, StoreError,
};

use super::{Caller, SessionService};
use crate::ServiceError;

/// The `session.status` event for a row whose status just changed from `previous`.
pub(crate) fn status_event(row: &SessionRow, previous: SessionStatus) -> Event {
    Event::new(
        row.account_id,
        Some(row.id),
        EventType::SessionStatus,
        json!({
            "session_id": row.id,
            "status": row.status,
            "previous_status": previous,
            "reason": row.status_reason,
            "phone_number": row.phone_number,
            "instance_id": row.worker_id,
        }),
    )
}

/// Sets `row.status` (and the activity time) and returns the event, if the status changed.
fn set_status(row: &mut SessionRow, status: SessionStatus, reason: Option<String>) -> Vec<Event> {
    let previous = row.status;
    row.status = status;
    row.status_reason = reason;
    row.last_activity_at = Some(now_millis());
    if previous == status {
        Vec::new()
    } else {
        vec![status_event(row, previous)]
    }
}

/// Receives engine updates and persists them. Updates that no longer fit the session's state
/// (say, a QR arriving after the user disconnected) are dropped: the user's intent wins.
/// Inbound messages honour the session's settings (ignored chats, automatic read marks).
pub struct Supervisor {
    store: Store,
    instance_id: String,
    dispatch: mpsc::UnboundedSender<SessionId>,
    sandbox: super::sandbox::SandboxSettings,
}

impl Supervisor {
    /// A sink writing to `store`, recording `instance_id` as the worker of running sessions
    /// and waking `dispatch` when a session can send.
    pub fn new(
        store: Store,
        instance_id: String,
        dispatch: mpsc::UnboundedSender<SessionId>,
        sandbox: super::sandbox::SandboxSettings,
    ) -> Self {
        Self {
            store,
            instance_id,
            dispatch,
            sandbox,
        }
    }

    async fn status(&self, session: SessionId, update: EngineUpdate) -> Result<(), StoreError> {
        let instance = self.instance_id.clone();
        // Set when a connected session loses its connection (counted as a reconnect).
        let lost = std::sync::atomic::AtomicBool::new(false);
        let lost_ref = &lost;
        let connected = self
            .store
            .modify_session::<StoreError>(None, session, move |row| {
                let running = row.status.is_running();
                Ok(match update {
                    EngineUpdate::Qr { code } if running => {
                        row.qr_code = Some(code.clone());
                        row.worker_id = Some(instance);
                        let mut events = set_status(row, SessionStatus::Connecting, None);
                        events.push(Event::new(
                            row.account_id,
                            Some(row.id),
                            EventType::SessionQr,
                            json!({ "session_id": row.id, "qr": code }),
                        ));
                        events
                    }
                    EngineUpdate::Connecting { reason } if running => {
                        // A new reason while still connecting is news too (the watchdog's
                        // retries, a different failure).
                        let previous = row.status;
                        if previous == SessionStatus::Connected {
                            lost_ref.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        let new_reason = row.status_reason.as_deref() != Some(reason.as_str());
                        row.worker_id = Some(instance);
                        row.qr_code = None;
                        let mut events = set_status(row, SessionStatus::Connecting, Some(reason));
                        if events.is_empty() && new_reason {
                            events.push(status_event(row, previous));
                        }
                        events
                    }
                    EngineUpdate::Connected { phone } if running => {
                        row.qr_code = None;
                        row.paired = true;
                        row.phone_number = Some(phone);
                        row.worker_id = Some(instance);
                        set_status(row, SessionStatus::Connected, None)
                    }
                    EngineUpdate::Disconnected { reason } if running => {
                        row.qr_code = None;
                        row.worker_id = None;
                        set_status(row, SessionStatus::Disconnected, Some(reason))
                    }
                    EngineUpdate::LoggedOut { reason } if !row.status.is_deleting() => {
                        row.qr_code = None;
                        row.worker_id = None;
                        row.paired = false;
                        set_status(row, SessionStatus::Disconnected, Some(reason))
                    }
                    _ => Vec::new(),
                })
            })
            .await?;
        if lost.load(std::sync::atomic::Ordering::Relaxed)
            && let Some(row) = &connected
        {
            crate::metrics::global().reconnect(row.engine.as_str());
        }
        if connected.is_some_and(|row| row.status == SessionStatus::Connected) {
            let _ = self.dispatch.send(session);
        }
        Ok(())
    }

    /// Records a group event of `session` in its account's log.
    async fn group_event(
        &self,
        session: SessionId,
        event: wharf_core::social::GroupEvent,
    ) -> Result<(), StoreError> {
        use wharf_core::social::GroupEventKind as K;
        let Some(row) = self
            .store
            .find_session_any_account(session)
            .await?
            .filter(|r| !r.status.is_deleting())
        else {
            return Ok(());
        };
        let kind = match event.kind {
            K::Joined => EventType::GroupJoined,
            K::Participants => EventType::GroupParticipants,
            K::Updated => EventType::GroupUpdated,
            K::Left => EventType::GroupLeft,
        };
        let mut payload = json!({ "session_id": session, "group_jid": event.group });
        if let (Some(out), serde_json::Value::Object(detail)) =
            (payload.as_object_mut(), event.detail)
        {
            for (k, v) in detail {
                out.entry(k).or_insert(v);
            }
        }
        self.store
            .record_engine_event(&Event::new(row.account_id, Some(session), kind, payload))
            .await
    }

    async fn flush(
        &self,
        session: SessionId,
        receipts: &mut Vec<(ProviderId, ReceiptKind, i64)>,
        reports: &mut Vec<StatusReport>,
        inbound: &mut Vec<Inbound>,
    ) -> Result<(), StoreError> {
        if !receipts.is_empty() {
            self.store.apply_receipts(session, receipts).await?;
            receipts.clear();
        }
        if !reports.is_empty() {
            self.store.apply_status_reports(session, reports).await?;
            reports.clear();
        }
        if inbound.is_empty() {
            return Ok(());
        }
        let Some(row) = self
            .store
            .find_session_any_account(session)
            .await?
            .filter(|r| !r.status.is_deleting())
        else {
            inbound.clear();
            return Ok(());
        };
        let settings = row.settings;
        let wanted: Vec<Inbound> = inbound
            .drain(..)
            .filter(|m| match m.chat.server() {
                JidServer::Group => !settings.ignore_groups,
                JidServer::Newsletter => !settings.ignore_channels,
                JidServer::Broadcast => !settings.ignore_broadcasts,
                _ => true,
            })
            .collect();
        // On the sandbox number, phones activate and their messages go to their account.
        let sandbox =
            (self.store.sandbox_number().await? == Some(session)).then(|| self.sandbox.routing());
        let stored = self
            .store
            .ingest_inbound_routed(row.account_id, session, &wanted, sandbox.as_ref())
            .await?;
        if sandbox.is_some() && !stored.is_empty() {
            // An activation may have queued its confirmation.
            let _ = self.dispatch.send(session);
        }
        if settings.read_incoming && !stored.is_empty() {
            let mut by_chat: std::collections::BTreeMap<String, (Jid, Vec<MessageId>)> =
                Default::default();
            for m in &stored {
                by_chat
                    .entry(m.chat_jid.to_string())
                    .or_insert_with(|| (m.chat_jid.clone(), Vec::new()))
                    .1
                    .push(m.id);
            }
            for (_, (chat, ids)) in by_chat {
                let job = OutboxJob::new(
                    row.account_id,
                    session,
                    chat,
                    None,
                    JobAction::MarkRead,
                    json!({ "message_ids": ids }),
                );
                self.store.enqueue_job(&job).await?;
            }
            let _ = self.dispatch.send(session);
        }
        Ok(())
    }
}

#[async_trait]
impl EngineSink for Supervisor {
    async fn updates(
        &self,
        session: SessionId,
        updates: Vec<EngineUpdate>,
    ) -> Result<(), EngineError> {
        let mut receipts = Vec::new();
        let mut reports = Vec::new();
        let mut inbound = Vec::new();
        let result: Result<(), StoreError> = async {
            for update in updates {
                match update {
                    EngineUpdate::Receipt {
                        provider_id,
                        kind,
                        at,
                    } => receipts.push((provider_id, kind, at)),
                    EngineUpdate::Status {
                        provider_id,
                        message_id,
                        status,
                        at,
                    } => reports.push(StatusReport {
                        provider_id,
                        message_id,
                        status,
                        at,
                    }),
                    EngineUpdate::Inbound(message) => inbound.push(message),
                    EngineUpdate::InboundEdited {
                        chat,
                        provider_id,
                        content,
                        at,
                    } => {
                        // After the messages before it (the edit may follow its message).
                        self.flush(session, &mut receipts, &mut reports, &mut inbound)
                            .await?;
                        let change = InboundChange::Edited {
                            chat,
                            provider_id,
                            content,
                            at,
                        };
                        self.store.apply_inbound_changes(session, &[change]).await?;
                    }
                    EngineUpdate::InboundRevoked {
                        chat,
                        provider_id,
                        at,
                    } => {
                        self.flush(session, &mut receipts, &mut reports, &mut inbound)
                            .await?;
                        let change = InboundChange::Revoked {
                            chat,
                            provider_id,
                            at,
                        };
                        self.store.apply_inbound_changes(session, &[change]).await?;
                    }
                    EngineUpdate::Group(event) => {
                        self.flush(session, &mut receipts, &mut reports, &mut inbound)
                            .await?;
                        self.group_event(session, event).await?;
                    }
                    other => {
                        // Keep the order: what came before a status change is recorded first.
                        self.flush(session, &mut receipts, &mut reports, &mut inbound)
                            .await?;
                        self.status(session, other).await?;
                    }
                }
            }
            self.flush(session, &mut receipts, &mut reports, &mut inbound)
                .await
        }
        .await;
        result.map_err(|e| EngineError::Transient(format!("could not record the update: {e}")))
    }
}

impl SessionService {
    fn engine_session(row: &SessionRow) -> EngineSession {
        EngineSession {
            id: row.id,
            account_id: row.account_id,
            phone: row.phone_number.clone(),
            paired: row.paired,
        }
    }

    /// Moves a session from `from` to `pending` and starts its engine.
    async fn start(
        &self,
        caller: &Caller,
        id: SessionId,
        allowed: fn(SessionStatus) -> Result<(), ServiceError>,
    ) -> Result<SessionRow, ServiceError> {
        let instance = self.instance_id.clone();
        let row = self
            .modify(caller, id, move |row| {
                allowed(row.status)?;
                row.worker_id = Some(instance);
                row.qr_code = None;
                Ok(set_status(row, SessionStatus::Pending, None))
            })
            .await?;
        let engine = self.engines.get(row.engine)?;
        if !self.ownership.acquire(row.id).await? {
            // Another live instance owns the session: its lease worker starts the engine when
            // it sees the session running again (told at once through the database).
            self.store.signal_sessions();
            return self.get(caller, id).await;
        }
        self.ownership.set_started(row.id, true);
        if let Err(e) = engine.start(&Self::engine_session(&row)).await {
            self.ownership.set_started(row.id, false);
            self.record_engine_failure(row.id, &e).await?;
            return Err(e.into());
        }
        self.get(caller, id).await
    }

    /// Waits (up to two lease lengths) until no other live instance holds the session's
    /// lease: the owner's lease worker stops the engine of a session being deleted and lets
    /// the lease go, and the deletion goes on here.
    async fn wait_for_owner_to_let_go(&self, id: SessionId) -> Result<(), ServiceError> {
        let give_up = std::time::Instant::now() + self.ownership.ttl() * 2;
        loop {
            match self.store.lease_of(id).await? {
                Some(lease)
                    if lease.instance_id != self.ownership.instance_id()
                        && lease.expires_at > now_millis()
                        && std::time::Instant::now() < give_up =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                _ => return Ok(()),
            }
        }
    }

    /// Stops the session's engine here if this instance runs it, and gives up its lease. A
    /// session another instance runs is stopped by that instance's lease worker, which sees
    /// it no longer running.
    async fn stop_here(
        &self,
        id: SessionId,
        engine: wharf_core::EngineKind,
    ) -> Result<(), ServiceError> {
        if self.ownership.generation(id).is_none() && !self.ownership.started(id) {
            self.store.signal_sessions();
            return Ok(());
        }
        self.ownership.forget(id);
        self.engines.get(engine)?.stop(id).await?;
        self.store
            .release_leases(self.ownership.instance_id(), &[id])
            .await?;
        Ok(())
    }

    async fn record_engine_failure(
        &self,
        id: SessionId,
        e: &EngineError,
    ) -> Result<(), ServiceError> {
        let reason = e.to_string();
        self.store
            .modify_session::<ServiceError>(None, id, |row| {
                if !row.status.is_running() {
                    return Ok(Vec::new());
                }
                row.worker_id = None;
                row.qr_code = None;
                Ok(set_status(row, SessionStatus::Disconnected, Some(reason)))
            })
            .await?;
        Ok(())
    }

    /// `POST …/connect`: starts a disconnected session (a QR appears if it is not paired).
    pub async fn connect(
        &self,
        caller: &Caller,
        id: SessionId,
    ) -> Result<SessionRow, ServiceError> {
        self.start(caller, id, |status| match status {
            SessionStatus::Disconnected => Ok(()),
            SessionStatus::Connected => Err(ServiceError::conflict(
                "invalid_state",
                "the session is already connected",
            )),
            SessionStatus::Pending | SessionStatus::Connecting => Err(ServiceError::conflict(
                "invalid_state",
                "the session is already connecting",
            )),
            SessionStatus::PendingDeletion | SessionStatus::Deleted => Err(deleting()),
        })
        .await
    }

    /// `POST …/restart`: stops and starts a running session; a paired one reconnects without
    /// a new QR.
    pub async fn restart(
        &self,
        caller: &Caller,
        id: SessionId,
    ) -> Result<SessionRow, ServiceError> {
        let current = self.get(caller, id).await?;
        if current.status.is_running() {
            self.ownership.require_local(id).await?;
            self.engines.get(current.engine)?.stop(id).await?;
            self.ownership.set_started(id, false);
        }
        self.start(caller, id, |status| match status {
            s if s.is_running() => Ok(()),
            SessionStatus::PendingDeletion | SessionStatus::Deleted => Err(deleting()),
            _ => Err(ServiceError::conflict(
                "invalid_state",
                "the session is not running; use connect to start it",
            )),
        })
        .await
    }

    /// `POST …/disconnect`: stops a running session and keeps its device link.
    pub async fn disconnect(
        &self,
        caller: &Caller,
        id: SessionId,
    ) -> Result<SessionRow, ServiceError> {
        let row = self
            .modify(caller, id, |row| match row.status {
                s if s.is_running() => {
                    row.worker_id = None;
                    row.qr_code = None;
                    Ok(set_status(
                        row,
                        SessionStatus::Disconnected,
                        Some("disconnected by request".into()),
                    ))
                }
                SessionStatus::Disconnected => Err(ServiceError::conflict(
                    "invalid_state",
                    "the session is already disconnected",
                )),
                _ => Err(deleting()),
            })
            .await?;
        self.stop_here(id, row.engine).await?;
        Ok(row)
    }

    /// `GET …/qrcode`: the pairing code while the session waits for a scan.
    pub async fn qr_code(&self, caller: &Caller, id: SessionId) -> Result<String, ServiceError> {
        let row = self.get(caller, id).await?;
        if !row.status.is_deleting()
            && let Ok(engine) = self.engines.get(row.engine)
            && !engine.capabilities().qr_pairing
        {
            return Err(ServiceError::conflict(
                "qr_not_supported",
                format!(
                    "{} sessions do not pair with a QR code: connect checks their credentials instead",
                    row.engine
                ),
            ));
        }
        match (row.status, row.qr_code) {
            (SessionStatus::Connecting, Some(qr)) => Ok(qr),
            (SessionStatus::Connected, _) => Err(ServiceError::conflict(
                "invalid_state",
                "the session is already paired and connected; there is no QR code",
            )),
            (SessionStatus::Pending | SessionStatus::Connecting, _) => Err(ServiceError::conflict(
                "invalid_state",
                "the session is starting and has no QR code yet; retry in a moment",
            )),
            (SessionStatus::Disconnected, _) => Err(ServiceError::conflict(
                "invalid_state",
                "the session is not running; call connect to get a QR code",
            )),
            _ => Err(deleting()),
        }
    }

    /// A pair code linking a pairing `web` session when typed on `phone`.
    pub async fn pair_code(
        &self,
        caller: &Caller,
        id: SessionId,
        phone: &Phone,
    ) -> Result<String, ServiceError> {
        let row = self.get(caller, id).await?;
        if row.engine != wharf_core::EngineKind::Web {
            return Err(EngineError::Unsupported(row.engine).into());
        }
        self.ownership.require_local(id).await?;
        if row.status != SessionStatus::Connecting || row.qr_code.is_none() {
            return Err(ServiceError::conflict(
                "invalid_state",
                "the session is not pairing: connect it and wait for its QR code first",
            ));
        }
        let web = self.engines.web().ok_or_else(|| {
            ServiceError::conflict(
                "engine_unavailable",
                "the web engine is not available on this server",
            )
        })?;
        Ok(web.pair_code(row.id, phone).await?)
    }

    /// The emulator's "a phone scanned the QR": links the session as `phone`.
    pub async fn emulator_scan(
        &self,
        caller: &Caller,
        id: SessionId,
        phone: Option<Phone>,
    ) -> Result<SessionRow, ServiceError> {
        let (row, emulator) = self.emulator_session(caller, id).await?;
        emulator.scan(row.id, phone).await?;
        self.get(caller, id).await
    }

    /// The emulator's "the phone logged the device out".
    pub async fn emulator_logout(
        &self,
        caller: &Caller,
        id: SessionId,
    ) -> Result<SessionRow, ServiceError> {
        let (row, emulator) = self.emulator_session(caller, id).await?;
        emulator.unlink_from_phone(row.id).await?;
        self.get(caller, id).await
    }

    /// The session and the emulator, for the emulator's control surface; refuses sessions of
    /// other engines.
    pub async fn emulator_session(
        &self,
        caller: &Caller,
        id: SessionId,
    ) -> Result<(SessionRow, std::sync::Arc<wharf_engines::Emulator>), ServiceError> {
        let row = self.get(caller, id).await?;
        if row.engine != wharf_core::EngineKind::Emulator {
            return Err(EngineError::Unsupported(row.engine).into());
        }
        self.ownership.require_local(id).await?;
        let emulator = self.engines.emulator().ok_or_else(|| {
            ServiceError::conflict(
                "engine_unavailable",
                "the emulator engine is not available on this server",
            )
        })?;
        Ok((row, emulator.clone()))
    }

    /// Starts the engine of a running session this instance just came to own (at start, or
    /// taken over from an instance that died or handed it over). Returns whether it runs.
    pub async fn take_up(&self, row: &SessionRow) -> Result<bool, ServiceError> {
        let Ok(engine) = self.engines.get(row.engine) else {
            self.record_engine_failure(row.id, &EngineError::Unsupported(row.engine))
                .await?;
            return Ok(false);
        };
        self.ownership.set_started(row.id, true);
        match engine.start(&Self::engine_session(row)).await {
            Ok(()) => Ok(true),
            Err(e) => {
                self.ownership.set_started(row.id, false);
                tracing::warn!(session_id = %row.id, error = %e, "could not resume session");
                self.record_engine_failure(row.id, &e).await?;
                Ok(false)
            }
        }
    }

    /// Stops the engine of a session this instance no longer owns (its lease was lost or is
    /// being handed over), without touching the session's stored status: the next owner
    /// carries on from it.
    pub async fn put_down(&self, id: SessionId, engine: wharf_core::EngineKind) {
        if let Ok(engine) = self.engines.get(engine)
            && let Err(e) = engine.stop(id).await
        {
            tracing::warn!(session_id = %id, error = %e, "could not stop the engine of a session handed over");
        }
    }

    /// Runs one queued deletion: logs the session out of its engine and marks it deleted.
    /// Returns `Ok(false)` when there was nothing to do.
    pub async fn run_next_operation(&self, lease_ms: i64) -> Result<bool, ServiceError> {
        let Some(op) = self
            .store
            .claim_operation(self.clock.now_millis(), lease_ms)
            .await?
        else {
            return Ok(false);
        };
        let outcome = self.delete_now(op.account_id, op.session_id).await;
        match outcome {
            Ok(()) => {
                self.store
                    .finish_operation(
                        op.id,
                        OperationStatus::Succeeded,
                        Some("session deleted"),
                        None,
                    )
                    .await?
            }
            Err(e) => {
                tracing::warn!(operation = %op.id, error = %e, "operation failed");
                self.store
                    .finish_operation(op.id, OperationStatus::Failed, None, Some(&e.to_string()))
                    .await?
            }
        }
        Ok(true)
    }

    async fn delete_now(
        &self,
        account: wharf_core::AccountId,
        id: SessionId,
    ) -> Result<(), ServiceError> {
        let Some(row) = self.store.get_session(account, id).await? else {
            return Err(ServiceError::NotFound("session"));
        };
        if let Ok(engine) = self.engines.get(row.engine) {
            self.wait_for_owner_to_let_go(id).await?;
            engine.logout(id).await?;
            self.ownership.forget(id);
            self.store
                .release_leases(self.ownership.instance_id(), &[id])
                .await?;
        }
        // A linked WhatsApp Web device's keys and state go before the session reads as
        // deleted (the client's logout does not wipe them).
        self.store.delete_web_device(id).await?;
        self.store
            .modify_session::<ServiceError>(Some(account), id, |row| {
                if row.status == SessionStatus::Deleted {
                    return Ok(Vec::new());
                }
                row.worker_id = None;
                row.qr_code = None;
                row.paired = false;
                Ok(set_status(row, SessionStatus::Deleted, None))
            })
            .await?;
        self.store
            .fail_session_outbox(id, "the session was deleted before the message was sent")
            .await?;
        if row.engine == wharf_core::EngineKind::Cloud {
            // Its credentials go, and its number becomes free for another session.
            self.store.delete_cloud_session(account, id).await?;
        }
        Ok(())
    }
}

fn deleting() -> ServiceError {
    ServiceError::conflict(
        "invalid_state",
        "the session is being deleted or was deleted",
    )
}
