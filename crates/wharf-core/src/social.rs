//! Contacts, groups, channels and the linked account, as engines report them: what the
//! contact and group routes show, and the per-participant answers WhatsApp gives.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Jid, Phone};

/// Which of the contact, group and channel abilities an engine has, declared next to its
/// message [`Capabilities`](crate::Capabilities). A route whose ability is missing answers
/// `unsupported_by_engine` before anything happens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct SocialCapabilities {
    /// Whether a number is on WhatsApp (`/api/on-whatsapp`).
    pub on_whatsapp: bool,
    /// The address book, pictures, blocking.
    pub contacts: bool,
    /// Groups: create, read, participants, settings, invites, leave.
    pub groups: bool,
    /// Following channels and reading their metadata (posting is a message capability).
    pub channel_follow: bool,
    /// The linked account's number, name and picture.
    pub user: bool,
    /// Decrypting a WhatsApp media reference the session received.
    pub decrypt_media: bool,
}

impl SocialCapabilities {
    /// Everything.
    pub const ALL: Self = Self {
        on_whatsapp: true,
        contacts: true,
        groups: true,
        channel_follow: true,
        user: true,
        decrypt_media: true,
    };
}

/// The abilities a request needs, named for an `unsupported_by_engine` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ability {
    OnWhatsapp,
    Contacts,
    Groups,
    ChannelFollow,
    User,
    DecryptMedia,
}

impl Ability {
    /// Whether `caps` has it.
    pub fn within(self, caps: &SocialCapabilities) -> bool {
        match self {
            Self::OnWhatsapp => caps.on_whatsapp,
            Self::Contacts => caps.contacts,
            Self::Groups => caps.groups,
            Self::ChannelFollow => caps.channel_follow,
            Self::User => caps.user,
            Self::DecryptMedia => caps.decrypt_media,
        }
    }

    /// What it is, for an error message.
    pub fn describe(self) -> &'static str {
        match self {
            Self::OnWhatsapp => "checking whether a number is on WhatsApp",
            Self::Contacts => "contacts (address book, pictures, blocking)",
            Self::Groups => "groups",
            Self::ChannelFollow => "following channels",
            Self::User => "reading the linked account's profile",
            Self::DecryptMedia => "decrypting media references",
        }
    }
}

/// Whether a number is on WhatsApp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub exists: bool,
    /// Its phone JID, when it exists.
    pub jid: Option<Jid>,
    /// Its LID (the privacy identifier WhatsApp may show instead of the number), when known.
    pub lid: Option<Jid>,
}

/// A contact as the session's WhatsApp knows it (its address book and profile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineContact {
    /// The phone JID.
    pub jid: Jid,
    /// The LID, when known.
    pub lid: Option<Jid>,
    /// The name saved in the phone's address book.
    pub name: Option<String>,
    /// The name the contact set for themselves.
    pub push_name: Option<String>,
}

/// A group participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Participant {
    #[schema(value_type = String)]
    pub jid: Jid,
    /// `member`, `admin` or `superadmin` (the creator).
    pub role: ParticipantRole,
}

/// A participant's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParticipantRole {
    Member,
    Admin,
    Superadmin,
}

impl ParticipantRole {
    /// Admins and the super admin.
    pub fn is_admin(self) -> bool {
        !matches!(self, Self::Member)
    }
}

/// A group's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct GroupSettings {
    /// Only admins send messages.
    pub announce: bool,
    /// Only admins edit the subject, description and picture.
    pub locked: bool,
    /// Disappearing messages timer in seconds (0: off).
    pub ephemeral_seconds: u32,
    /// New members need an admin's approval to join by link.
    pub join_approval: bool,
}

/// A group as WhatsApp reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub jid: Jid,
    pub subject: String,
    pub description: Option<String>,
    /// Who created it.
    pub owner: Option<Jid>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub participants: Vec<Participant>,
    pub settings: GroupSettings,
}

/// One change of a group's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    Subject(String),
    Description(Option<String>),
    Announce(bool),
    Locked(bool),
    Ephemeral(u32),
    JoinApproval(bool),
}

/// What to do with participants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantAction {
    Add,
    Remove,
    Promote,
    Demote,
}

impl ParticipantAction {
    /// The wire name (`add`, `remove`, `promote`, `demote`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Promote => "promote",
            Self::Demote => "demote",
        }
    }
}

/// What happened to one participant of a request, as WhatsApp answers per participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantOutcome {
    Added,
    Removed,
    Promoted,
    Demoted,
    /// Already a member (add).
    AlreadyInGroup,
    /// Not a member (remove, promote, demote).
    NotInGroup,
    /// The number has no WhatsApp account.
    NotOnWhatsapp,
    /// Their privacy settings forbid being added; WhatsApp sends them an invite instead.
    PrivacyRestricted,
    /// The group's creator cannot be demoted or removed.
    NotAllowed,
}

/// One participant's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ParticipantResult {
    #[schema(value_type = String)]
    pub jid: Jid,
    pub outcome: ParticipantOutcome,
}

/// What an invite code leads to, before joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitePreview {
    pub jid: Jid,
    pub subject: String,
    pub description: Option<String>,
    pub size: usize,
}

/// A channel (newsletter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub jid: Jid,
    pub name: String,
    pub description: Option<String>,
    pub followers: u64,
    /// The session follows it.
    pub following: bool,
    /// The session owns it (may post).
    pub owner: bool,
}

/// The linked account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub phone: Phone,
    pub jid: Jid,
    pub name: Option<String>,
    pub picture_url: Option<String>,
}

/// A group event an engine reports (`group.joined`, `group.participants`, `group.updated`,
/// `group.left`), with the payload the event carries.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupEvent {
    pub kind: GroupEventKind,
    pub group: Jid,
    /// Details (who, what changed), merged into the event's payload.
    pub detail: serde_json::Value,
}

/// The kinds of group events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupEventKind {
    /// The session became a member (created, added, joined by invite).
    Joined,
    /// Members were added, removed, promoted or demoted.
    Participants,
    /// Subject, description or settings changed.
    Updated,
    /// The session left or was removed.
    Left,
}
