//! The web engine's contacts, groups and channels: each request goes to the session's live
//! client through its [`SocialPort`](super::social_port::SocialPort); the address book is
//! the one WhatsApp synced, kept in the engine's [`ContactBook`](super::ContactBook).

use std::{future::Future, sync::Arc};

use wharf_core::{
    EngineError, Jid, SessionId,
    social::{EngineContact, GroupChange, GroupInfo, SocialCapabilities},
};

use super::{
    WebEngine, map_port_error,
    port::{JoinAnswer, PortError, WebPort},
};

/// What the web engine can do beyond messages: all of it (media references are decrypted
/// through the media download path, `web/media.rs`).
pub const WEB_SOCIAL: SocialCapabilities = SocialCapabilities {
    on_whatsapp: true,
    contacts: true,
    groups: true,
    channel_follow: true,
    user: true,
    decrypt_media: true,
};

impl WebEngine {
    /// Runs `f` on the session's live client, mapping its failure.
    pub(super) async fn on_port<T, F, Fut>(
        &self,
        session: SessionId,
        f: F,
    ) -> Result<T, EngineError>
    where
        F: FnOnce(Arc<dyn WebPort>) -> Fut,
        Fut: Future<Output = Result<T, PortError>>,
    {
        let port = self.port(session)?;
        f(port).await.map_err(map_port_error)
    }

    /// The address book WhatsApp synced to this device.
    pub(super) async fn address_book(
        &self,
        session: SessionId,
    ) -> Result<Vec<EngineContact>, EngineError> {
        self.inner
            .book
            .contacts(session)
            .await
            .map_err(|e| EngineError::Transient(format!("reading the address book: {e}")))
    }

    /// Applies each change in order (WhatsApp has one request per setting), then reads the
    /// group back. A change refused midway leaves the earlier ones applied, as on a phone.
    pub(super) async fn change_group(
        &self,
        session: SessionId,
        group: &Jid,
        changes: &[GroupChange],
    ) -> Result<GroupInfo, EngineError> {
        let port = self.port(session)?;
        for change in changes {
            port.update_group(group, change)
                .await
                .map_err(map_port_error)?;
        }
        port.group(group)
            .await
            .map_err(map_port_error)?
            .ok_or_else(|| {
                EngineError::Conflict(format!("the session is no longer in the group {group}"))
            })
    }

    /// Joins by invite code: the group, `None` for an unknown code, a conflict when
    /// WhatsApp refuses (already a member, approval needed, full).
    pub(super) async fn join(
        &self,
        session: SessionId,
        code: &str,
    ) -> Result<Option<Jid>, EngineError> {
        let port = self.port(session)?;
        match port.accept_invite(code).await.map_err(map_port_error)? {
            JoinAnswer::Joined(jid) => Ok(Some(jid)),
            JoinAnswer::Unknown => Ok(None),
            JoinAnswer::Refused(why) => Err(EngineError::Conflict(why)),
        }
    }
}
