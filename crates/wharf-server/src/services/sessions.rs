//! Sessions: creation, listing, metadata, settings, keys and deletion requests.

use std::sync::Arc;

use tokio::sync::Notify;
use wharf_core::{
    EngineKind, Event, NewToken, Phone, SessionId, SessionSettings, SessionStatus,
    session::SessionSettingsPatch,
};
use wharf_store::{NewSession, OperationRow, SessionFilter, SessionRow, Store};

use super::{
    Caller, CloudService, Engines,
    cloud::{CloudInput, in_use},
    lifecycle::status_event,
};
use crate::ServiceError;

/// Longest label accepted.
pub const MAX_LABEL_CHARS: usize = 100;

/// What `create` needs, already parsed.
#[derive(Debug, Clone, Default)]
pub struct CreateSession {
    pub label: Option<String>,
    pub phone_number: Option<Phone>,
    pub settings: SessionSettingsPatch,
    pub engine: Option<EngineKind>,
    /// The Cloud API credentials (required with `engine: cloud`).
    pub cloud: Option<CloudInput>,
}

/// What `update` changes; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct UpdateSession {
    pub label: Option<Option<String>>,
    pub phone_number: Option<Option<Phone>>,
    pub settings: Option<SessionSettingsPatch>,
    /// Changes to a cloud session's settings (only while it is not running).
    pub cloud: Option<CloudInput>,
}

/// A created session with its one-time raw key and advice for the caller.
#[derive(Debug)]
pub struct CreatedSession {
    pub session: SessionRow,
    pub key: NewToken,
    pub warnings: Vec<String>,
}

/// A rotated session key.
#[derive(Debug)]
pub struct RotatedKey {
    pub session: SessionRow,
    pub key: NewToken,
    pub previous_fingerprint: Option<String>,
}

/// One page of sessions.
#[derive(Debug)]
pub struct SessionList {
    pub sessions: Vec<SessionRow>,
    /// The cursor of the next page; `None` on the last one.
    pub next_cursor: Option<SessionId>,
}

/// The sessions service.
pub struct SessionService {
    pub(super) store: Store,
    pub(super) engines: Arc<Engines>,
    pub(super) instance_id: String,
    /// The session leases this instance holds: only the owner runs a session's engine.
    pub(super) ownership: Arc<crate::cluster::Ownership>,
    default_engine: EngineKind,
    operations: Arc<Notify>,
    pub(super) cloud: Arc<CloudService>,
    /// The server's clock: operation leases run on it.
    pub(super) clock: wharf_core::time::Clock,
}

/// Trims a label; an empty one means "no label".
pub fn parse_label(label: &str) -> Result<Option<String>, ServiceError> {
    let label = label.trim();
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(ServiceError::invalid(
            "label",
            format!("must be at most {MAX_LABEL_CHARS} characters"),
        ));
    }
    Ok((!label.is_empty()).then(|| label.to_owned()))
}

impl SessionService {
    /// The service; `operations` is notified when a deletion is queued.
    pub fn new(
        store: Store,
        engines: Arc<Engines>,
        ownership: Arc<crate::cluster::Ownership>,
        default_engine: EngineKind,
        operations: Arc<Notify>,
        cloud: Arc<CloudService>,
        clock: wharf_core::time::Clock,
    ) -> Self {
        Self {
            store,
            engines,
            instance_id: ownership.instance_id().to_owned(),
            ownership,
            default_engine,
            operations,
            cloud,
            clock,
        }
    }

    /// The store sessions live in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// This instance's session leases.
    pub fn ownership(&self) -> &Arc<crate::cluster::Ownership> {
        &self.ownership
    }

    /// Creates a session (PAT only) on the requested or default engine.
    pub async fn create(
        &self,
        caller: &Caller,
        req: CreateSession,
    ) -> Result<CreatedSession, ServiceError> {
        caller.require_pat()?;
        let engine = req.engine.unwrap_or(self.default_engine);
        let capabilities = self.engines.get(engine)?.capabilities();
        let mut warnings = Vec::new();
        if engine == EngineKind::Emulator {
            warnings.push(
                "this session runs on the emulator: messages never reach real WhatsApp users"
                    .to_owned(),
            );
        }
        if req.phone_number.is_none() && capabilities.qr_pairing {
            warnings.push(
                "phone_number is not set; it is filled in when a phone scans the pairing QR"
                    .to_owned(),
            );
        }
        let cloud = match (engine, &req.cloud) {
            (EngineKind::Cloud, Some(input)) => Some(self.cloud.seal_new(input)?),
            (EngineKind::Cloud, None) => {
                return Err(ServiceError::invalid(
                    "cloud",
                    "required for the cloud engine: {phone_number_id, waba_id, access_token, app_secret, verify_token}",
                ));
            }
            (_, Some(_)) => {
                return Err(ServiceError::invalid(
                    "cloud",
                    "only applies to sessions on the cloud engine",
                ));
            }
            _ => None,
        };
        if cloud.is_some() {
            warnings.push(
                "call connect to check the credentials against the Graph API; point the app's webhook at /webhooks/meta with this verify_token".to_owned(),
            );
        }
        let created = self
            .store
            .create_session_with(
                NewSession {
                    account_id: caller.account_id,
                    engine,
                    label: req.label,
                    phone_number: req.phone_number,
                    settings: SessionSettings::default().apply(&checked(req.settings)?),
                },
                cloud.as_ref(),
            )
            .await;
        let (session, key) = match created {
            Err(wharf_store::StoreError::Conflict(_)) => return Err(in_use()),
            other => other?,
        };
        crate::log_fields::session(session.id);
        Ok(CreatedSession {
            session,
            key,
            warnings,
        })
    }

    /// The session `id`, if the caller can see it.
    pub async fn get(&self, caller: &Caller, id: SessionId) -> Result<SessionRow, ServiceError> {
        if !caller.can_see(id) {
            return Err(ServiceError::NotFound("session"));
        }
        crate::log_fields::session(id);
        self.store
            .get_session(caller.account_id, id)
            .await?
            .ok_or(ServiceError::NotFound("session"))
    }

    /// A page of the caller's sessions, newest first.
    pub async fn list(
        &self,
        caller: &Caller,
        status: Option<SessionStatus>,
        before: Option<SessionId>,
        limit: i64,
    ) -> Result<SessionList, ServiceError> {
        let mut sessions = self
            .store
            .list_sessions(&SessionFilter {
                account_id: caller.account_id,
                status,
                only: caller.session_id,
                before,
                limit,
            })
            .await?;
        let next_cursor = if sessions.len() as i64 > limit {
            sessions.truncate(limit as usize);
            sessions.last().map(|s| s.id)
        } else {
            None
        };
        Ok(SessionList {
            sessions,
            next_cursor,
        })
    }

    /// Applies `change` to a session the caller can see, with its events, atomically.
    pub(super) async fn modify(
        &self,
        caller: &Caller,
        id: SessionId,
        change: impl FnOnce(&mut SessionRow) -> Result<Vec<Event>, ServiceError>,
    ) -> Result<SessionRow, ServiceError> {
        if !caller.can_see(id) {
            return Err(ServiceError::NotFound("session"));
        }
        crate::log_fields::session(id);
        self.store
            .modify_session(Some(caller.account_id), id, change)
            .await?
            .ok_or(ServiceError::NotFound("session"))
    }

    /// `PATCH` label, phone number and settings.
    pub async fn update(
        &self,
        caller: &Caller,
        id: SessionId,
        req: UpdateSession,
    ) -> Result<SessionRow, ServiceError> {
        if let Some(cloud) = &req.cloud {
            cloud.check(false)?;
            let row = self.get(caller, id).await?;
            if row.engine != EngineKind::Cloud {
                return Err(ServiceError::invalid(
                    "cloud",
                    "only applies to sessions on the cloud engine",
                ));
            }
            if row.status.is_deleting() {
                return Err(ServiceError::conflict(
                    "invalid_state",
                    "the session is being deleted or was deleted",
                ));
            }
            if row.status.is_running() {
                return Err(ServiceError::conflict(
                    "invalid_state",
                    "cloud settings cannot change while the session runs; disconnect it first",
                ));
            }
            self.cloud.change(caller.account_id, id, cloud).await?;
        }
        self.modify(caller, id, |row| {
            if row.status.is_deleting() {
                return Err(ServiceError::conflict("invalid_state", "the session is being deleted or was deleted"));
            }
            if let Some(label) = req.label {
                row.label = label;
            }
            if let Some(phone) = req.phone_number
                && phone != row.phone_number
            {
                if row.paired {
                    return Err(ServiceError::conflict(
                        "invalid_state",
                        format!(
                            "the session is linked to {}; phone_number cannot change while a device is linked",
                            row.phone_number.as_ref().map_or("a phone", |p| p.e164())
                        ),
                    ));
                }
                if row.status.is_running() {
                    return Err(ServiceError::conflict(
                        "invalid_state",
                        "phone_number cannot change while the session is pairing; disconnect it first",
                    ));
                }
                row.phone_number = phone;
            }
            if let Some(patch) = req.settings {
                row.settings = row.settings.apply(&checked(patch)?);
            }
            Ok(Vec::new())
        })
        .await
    }

    /// The session's settings.
    pub async fn settings(
        &self,
        caller: &Caller,
        id: SessionId,
    ) -> Result<SessionSettings, ServiceError> {
        Ok(self.get(caller, id).await?.settings)
    }

    /// Applies a settings patch and returns the result.
    pub async fn update_settings(
        &self,
        caller: &Caller,
        id: SessionId,
        patch: SessionSettingsPatch,
    ) -> Result<SessionSettings, ServiceError> {
        // The body is the settings themselves: fields are named from there.
        if let Some(pacing) = &patch.pacing
            && let Err((field, rule)) = pacing.check()
        {
            return Err(ServiceError::invalid(format!("pacing.{field}"), rule));
        }
        let req = UpdateSession {
            settings: Some(patch),
            ..Default::default()
        };
        Ok(self.update(caller, id, req).await?.settings)
    }

    /// Marks the session for deletion (PAT only): its key stops working at once and a
    /// deletion operation is queued.
    pub async fn delete(
        &self,
        caller: &Caller,
        id: SessionId,
    ) -> Result<OperationRow, ServiceError> {
        caller.require_pat()?;
        // A deletion whose operation failed may be asked for again; one under way may not.
        let retry_allowed = !self.store.has_open_operation(caller.account_id, id).await?;
        let (_, op) = self
            .store
            .begin_session_deletion(caller.account_id, id, |row| {
                match row.status {
                    SessionStatus::Deleted => {
                        return Err(ServiceError::conflict(
                            "invalid_state",
                            "the session was already deleted",
                        ));
                    }
                    SessionStatus::PendingDeletion if !retry_allowed => {
                        return Err(ServiceError::conflict(
                            "invalid_state",
                            "the session is already being deleted",
                        ));
                    }
                    _ => {}
                }
                let mut after = row.clone();
                after.status = SessionStatus::PendingDeletion;
                after.status_reason = None;
                Ok(status_event(&after, row.status))
            })
            .await?
            .ok_or(ServiceError::NotFound("session"))?;
        self.operations.notify_one();
        Ok(op)
    }

    /// Rotates the session key (PAT only); the old key is revoked at once.
    pub async fn regenerate_key(
        &self,
        caller: &Caller,
        id: SessionId,
    ) -> Result<RotatedKey, ServiceError> {
        caller.require_pat()?;
        let (session, key, previous_fingerprint) = self
            .store
            .regenerate_session_key(caller.account_id, id, |row| {
                if row.status.is_deleting() {
                    return Err(ServiceError::conflict(
                        "invalid_state",
                        "the session is being deleted or was deleted",
                    ));
                }
                Ok(())
            })
            .await?
            .ok_or(ServiceError::NotFound("session"))?;
        Ok(RotatedKey {
            session,
            key,
            previous_fingerprint,
        })
    }

    /// The operation `id`, if the caller can see it.
    pub async fn operation(
        &self,
        caller: &Caller,
        id: wharf_core::OperationId,
    ) -> Result<OperationRow, ServiceError> {
        let op = self
            .store
            .get_operation(caller.account_id, id)
            .await?
            .ok_or(ServiceError::NotFound("operation"))?;
        if !caller.can_see(op.session_id) {
            return Err(ServiceError::NotFound("operation"));
        }
        Ok(op)
    }
}

/// `patch` when its pace is within bounds; a 422 naming the field otherwise.
fn checked(patch: SessionSettingsPatch) -> Result<SessionSettingsPatch, ServiceError> {
    if let Some(pacing) = &patch.pacing
        && let Err((field, rule)) = pacing.check()
    {
        return Err(ServiceError::invalid(
            format!("settings.pacing.{field}"),
            rule,
        ));
    }
    Ok(patch)
}
