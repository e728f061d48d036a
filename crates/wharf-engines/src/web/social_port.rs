//! The contacts, groups and channels half of the web port: what the engine asks of one
//! client lifetime, in Wharf's types. The adapter over whatsapp-rust is
//! `client/social.rs`; the scripted fake is `fake/social.rs`.

use async_trait::async_trait;
use wharf_core::{
    Jid, Phone,
    social::{
        ChannelInfo, GroupChange, GroupInfo, InvitePreview, ParticipantAction, ParticipantResult,
        Registration, UserInfo,
    },
};

use super::port::PortError;

/// One address book entry as WhatsApp synced it: the phone JID when known (else the LID),
/// and what changed. A `None` leaves the stored value as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactChange {
    /// The phone JID, or the LID when WhatsApp named no number.
    pub jid: Jid,
    pub lid: Option<Jid>,
    /// The name saved in the phone's address book.
    pub name: Option<String>,
    /// The name the contact set for themselves.
    pub push_name: Option<String>,
}

/// What joining by an invite code came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinAnswer {
    /// The session is now a member of this group.
    Joined(Jid),
    /// The code is unknown, revoked or reset.
    Unknown,
    /// WhatsApp refused for a reason of the group or the session (already a member, an
    /// admin must approve, full, removed before); says which.
    Refused(String),
}

/// Contacts, groups and channels of one client lifetime. Every method needs the client
/// online ([`PortError::NotConnected`] otherwise).
#[async_trait]
pub trait SocialPort: Send + Sync {
    /// Whether `phone` has a WhatsApp account, with its phone JID and LID.
    async fn on_whatsapp(&self, phone: &Phone) -> Result<Registration, PortError>;
    /// The JIDs the account has blocked (phone JIDs where the mapping is known).
    async fn blocklist(&self) -> Result<Vec<Jid>, PortError>;
    /// Blocks or unblocks a contact.
    async fn set_blocked(&self, jid: &Jid, blocked: bool) -> Result<(), PortError>;
    /// The profile picture URL of a contact or group; `None` when none or hidden.
    async fn picture(&self, jid: &Jid) -> Result<Option<String>, PortError>;
    /// The groups the account is in.
    async fn groups(&self) -> Result<Vec<GroupInfo>, PortError>;
    /// One group; `None` when the account is not in it or it does not exist.
    async fn group(&self, group: &Jid) -> Result<Option<GroupInfo>, PortError>;
    /// Creates a group; answers it and each asked participant's outcome.
    async fn create_group(
        &self,
        subject: &str,
        participants: &[Jid],
    ) -> Result<(GroupInfo, Vec<ParticipantResult>), PortError>;
    /// Adds, removes, promotes or demotes; one result per participant asked for.
    async fn update_participants(
        &self,
        group: &Jid,
        action: ParticipantAction,
        participants: &[Jid],
    ) -> Result<Vec<ParticipantResult>, PortError>;
    /// Applies one settings change.
    async fn update_group(&self, group: &Jid, change: &GroupChange) -> Result<(), PortError>;
    /// The group's invite code; `reset` revokes the old one first.
    async fn invite_code(&self, group: &Jid, reset: bool) -> Result<String, PortError>;
    /// Leaves a group.
    async fn leave_group(&self, group: &Jid) -> Result<(), PortError>;
    /// What an invite code leads to; `None` when unknown or revoked.
    async fn resolve_invite(&self, code: &str) -> Result<Option<InvitePreview>, PortError>;
    /// Joins the group of an invite code.
    async fn accept_invite(&self, code: &str) -> Result<JoinAnswer, PortError>;
    /// Follows or unfollows a channel; `false` when there is no such channel.
    async fn follow_channel(&self, channel: &Jid, follow: bool) -> Result<bool, PortError>;
    /// The channels the account follows or owns.
    async fn channels(&self) -> Result<Vec<ChannelInfo>, PortError>;
    /// One channel; `None` when there is no such channel.
    async fn channel(&self, channel: &Jid) -> Result<Option<ChannelInfo>, PortError>;
    /// The linked account.
    async fn user(&self) -> Result<UserInfo, PortError>;
}
