//! Messages: the content model for every kind, statuses that only move forward, and what
//! engines report about them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Jid, MessageId};

/// Longest text body WhatsApp accepts.
pub const MAX_TEXT_CHARS: usize = 4096;
/// Longest media caption.
pub const MAX_CAPTION_CHARS: usize = 1024;
/// How long after sending a text message may be edited.
pub const EDIT_WINDOW_MS: i64 = 15 * 60 * 1000;

/// A message's id at WhatsApp (`wamid.…` on the Cloud API, `3EB0…` on WhatsApp Web), kept
/// apart from Wharf's own [`MessageId`] by its type. It is opaque text: Wharf never parses it,
/// only compares and stores it. Serialized and bound to SQL as that text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProviderId(String);

impl ProviderId {
    /// The id WhatsApp (or an engine) gave a message.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// A WhatsApp Web style message id: `3EB0` and 28 hex digits, the first 12 of them the
    /// time in milliseconds and the other 16 random. Engines whose ids the client chooses get
    /// one at acceptance, so a resend after a crash carries the same id.
    ///
    /// Leading with the time keeps a session's new ids next to each other in the unique index
    /// on provider ids: random ids scattered every send's index entry over the whole index, so
    /// each group commit wrote (and first read) a page per message.
    pub fn generate() -> Self {
        use rand::RngCore;
        let millis = u64::try_from(crate::time::now_millis()).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
        Self(format!("3EB0{millis:012X}{:016X}", rand::rng().next_u64()))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the id is empty (a report or a reaction that names no message).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The id's text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for ProviderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for ProviderId {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl From<&str> for ProviderId {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl AsRef<str> for ProviderId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ProviderId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ProviderId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ProviderId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Provider ids bind to and read from SQL as their text, on sqlx's `Any` driver, like [`Id`].
///
/// [`Id`]: crate::Id
#[cfg(feature = "sqlx")]
mod sql {
    use sqlx::{Any, Database, Decode, Encode, Type, encode::IsNull, error::BoxDynError};

    use super::ProviderId;

    impl Type<Any> for ProviderId {
        fn type_info() -> <Any as Database>::TypeInfo {
            <String as Type<Any>>::type_info()
        }
        fn compatible(ty: &<Any as Database>::TypeInfo) -> bool {
            <String as Type<Any>>::compatible(ty)
        }
    }

    impl Encode<'_, Any> for ProviderId {
        fn encode_by_ref(
            &self,
            buf: &mut <Any as Database>::ArgumentBuffer,
        ) -> Result<IsNull, BoxDynError> {
            <String as Encode<'_, Any>>::encode(self.0.clone(), buf)
        }
    }

    impl<'r> Decode<'r, Any> for ProviderId {
        fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
            Ok(Self(<String as Decode<'r, Any>>::decode(value)?))
        }
    }
}

/// A fresh WhatsApp Web style id; see [`ProviderId::generate`].
pub fn new_provider_id() -> ProviderId {
    ProviderId::generate()
}

/// The kind of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    Image,
    Video,
    Document,
    Audio,
    Sticker,
    Location,
    Contact,
    Poll,
    Reaction,
    /// Up to three reply buttons (Cloud API interactive `button`).
    Buttons,
    /// A menu of rows in sections (Cloud API interactive `list`).
    List,
    /// An approved message template (the only kind allowed outside the 24-hour window).
    Template,
    /// Incoming only: the user tapped a reply button, a list row or a template quick reply.
    InteractiveReply,
    /// Incoming only: a vote in a poll (its choices, decrypted with the poll's secret).
    PollVote,
    /// Incoming only: a message of a type Wharf does not model (orders, system notices, …).
    Unsupported,
}

impl MessageKind {
    /// Every kind; the ones that only arrive come last.
    pub const ALL: [Self; 16] = [
        Self::Text,
        Self::Image,
        Self::Video,
        Self::Document,
        Self::Audio,
        Self::Sticker,
        Self::Location,
        Self::Contact,
        Self::Poll,
        Self::Reaction,
        Self::Buttons,
        Self::List,
        Self::Template,
        Self::InteractiveReply,
        Self::PollVote,
        Self::Unsupported,
    ];

    /// The kinds a message can be sent as: all but the last three of [`Self::ALL`]
    /// (`interactive_reply`, `poll_vote` and `unsupported` only arrive).
    pub const SENDABLE: &'static [Self] = Self::ALL.split_at(Self::ALL.len() - 3).0;

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::Video => "video",
            Self::Document => "document",
            Self::Audio => "audio",
            Self::Sticker => "sticker",
            Self::Location => "location",
            Self::Contact => "contact",
            Self::Poll => "poll",
            Self::Reaction => "reaction",
            Self::Buttons => "buttons",
            Self::List => "list",
            Self::Template => "template",
            Self::InteractiveReply => "interactive_reply",
            Self::PollVote => "poll_vote",
            Self::Unsupported => "unsupported",
        }
    }

    /// The kind named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether the kind carries a media file.
    pub fn is_media(self) -> bool {
        matches!(
            self,
            Self::Image | Self::Video | Self::Document | Self::Audio | Self::Sticker
        )
    }
}

/// What a message says. Stored as JSON with a `kind` tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    Text {
        text: String,
    },
    /// Image, video, document, audio or sticker, by URL (sent) or by the provider's media id
    /// (received through the Cloud API, whose media is fetched by id).
    Media {
        media: MessageKind,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        view_once: bool,
    },
    Location {
        latitude: f64,
        longitude: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    Contact {
        full_name: String,
        phone_number: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        organization: Option<String>,
    },
    Poll {
        question: String,
        options: Vec<String>,
        multi_select: bool,
    },
    /// A reaction to another message; an empty emoji removes the reaction. `target` is `None`
    /// for a received reaction to a message Wharf does not know.
    Reaction {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<MessageId>,
        target_provider_id: ProviderId,
        emoji: String,
    },
    /// A text with up to three reply buttons.
    Buttons {
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<String>,
        buttons: Vec<ReplyButton>,
    },
    /// A text with a menu button opening sections of rows.
    List {
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<String>,
        /// The label of the button that opens the menu.
        button: String,
        sections: Vec<ListSection>,
    },
    /// An approved template with its parameters.
    Template {
        name: String,
        /// The template's language code (`en_US`).
        language: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        components: Vec<TemplateComponent>,
    },
    /// What a user chose: a reply button, a list row or a template quick-reply button.
    InteractiveReply {
        /// The id given to the button or row (a template button's payload).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    /// A vote in a poll: the options the voter now has chosen (none: the vote was withdrawn).
    /// Votes name options by hash; `option_hashes` keeps the hashes (hex) that no option of
    /// the poll matched (or all of them when the poll is unknown). `target` is Wharf's poll
    /// message, when known.
    PollVote {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<MessageId>,
        target_provider_id: ProviderId,
        options: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        option_hashes: Vec<String>,
    },
    /// A received message of a type Wharf does not model.
    Unsupported {
        /// The provider's name for the type (`order`, `system`, `unsupported`, …).
        provider_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
}

/// A reply button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyButton {
    pub id: String,
    pub title: String,
}

/// A section of a list message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<ListRow>,
}

/// A row of a list message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRow {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Which part of a template a component fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateComponentKind {
    Header,
    Body,
    Button,
}

/// Parameters for one part of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateComponent {
    #[serde(rename = "type")]
    pub kind: TemplateComponentKind,
    /// Buttons only: `quick_reply`, `url`, `copy_code`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<String>,
    /// Buttons only: the button's position, 0 to 9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<TemplateParameter>,
}

/// One template parameter, in the Cloud API's own shape (`{"type": "image", "image": {…}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TemplateParameter {
    Text {
        text: String,
        /// For templates with named parameters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_name: Option<String>,
    },
    Currency {
        currency: CurrencyValue,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_name: Option<String>,
    },
    DateTime {
        date_time: DateTimeValue,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_name: Option<String>,
    },
    Image {
        image: MediaLink,
    },
    Video {
        video: MediaLink,
    },
    Document {
        document: DocumentLink,
    },
    /// A quick-reply button's payload.
    Payload {
        payload: String,
    },
    /// A copy-code button's coupon.
    CouponCode {
        coupon_code: String,
    },
}

/// A media file by URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaLink {
    pub link: String,
}

/// A document by URL, with the name shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentLink {
    pub link: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// An amount of money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurrencyValue {
    pub fallback_value: String,
    /// ISO 4217 code.
    pub code: String,
    /// The amount times 1,000.
    pub amount_1000: i64,
}

/// A date and time, shown as `fallback_value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateTimeValue {
    pub fallback_value: String,
}

impl Content {
    /// The message kind of this content.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Text { .. } => MessageKind::Text,
            Self::Media { media, .. } => *media,
            Self::Location { .. } => MessageKind::Location,
            Self::Contact { .. } => MessageKind::Contact,
            Self::Poll { .. } => MessageKind::Poll,
            Self::Reaction { .. } => MessageKind::Reaction,
            Self::Buttons { .. } => MessageKind::Buttons,
            Self::List { .. } => MessageKind::List,
            Self::Template { .. } => MessageKind::Template,
            Self::InteractiveReply { .. } => MessageKind::InteractiveReply,
            Self::PollVote { .. } => MessageKind::PollVote,
            Self::Unsupported { .. } => MessageKind::Unsupported,
        }
    }

    /// The words a person wrote in it: a text's body or a media caption.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text { text } => Some(text),
            Self::Media {
                caption: Some(caption),
                ..
            } => Some(caption),
            _ => None,
        }
    }

    /// Whether this is view-once media.
    pub fn is_view_once(&self) -> bool {
        matches!(
            self,
            Self::Media {
                view_once: true,
                ..
            }
        )
    }
}

/// Where a message stands. Outgoing ones move `queued → sent → delivered → read (→ played)`;
/// `failed` and `deleted` end delivery. Incoming ones are `received`, then `read` once marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Queued,
    Sent,
    Delivered,
    Read,
    Played,
    Failed,
    Deleted,
    Received,
}

impl MessageStatus {
    /// Every status.
    pub const ALL: [Self; 8] = [
        Self::Queued,
        Self::Sent,
        Self::Delivered,
        Self::Read,
        Self::Played,
        Self::Failed,
        Self::Deleted,
        Self::Received,
    ];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Played => "played",
            Self::Failed => "failed",
            Self::Deleted => "deleted",
            Self::Received => "received",
        }
    }

    /// The status named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Position on the delivery path; `None` for statuses off it.
    pub fn rank(self) -> Option<u8> {
        match self {
            Self::Queued => Some(0),
            Self::Received | Self::Sent => Some(1),
            Self::Delivered => Some(2),
            Self::Read => Some(3),
            Self::Played => Some(4),
            Self::Failed | Self::Deleted => None,
        }
    }

    /// Whether delivery has ended (no receipt moves it any more).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Failed | Self::Deleted)
    }

    /// Whether `next` moves this status forward (never back, never out of an end).
    pub fn advances_to(self, next: Self) -> bool {
        match (self.rank(), next.rank()) {
            (Some(a), Some(b)) => b > a,
            _ => false,
        }
    }
}

/// Who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }

    /// The direction named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "in" => Some(Self::In),
            "out" => Some(Self::Out),
            _ => None,
        }
    }
}

/// A receipt from the recipient's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    Delivered,
    Read,
    Played,
}

impl ReceiptKind {
    /// The status a receipt moves a message to.
    pub fn status(self) -> MessageStatus {
        match self {
            Self::Delivered => MessageStatus::Delivered,
            Self::Read => MessageStatus::Read,
            Self::Played => MessageStatus::Played,
        }
    }
}

/// Where a provider says a sent message stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportedStatus {
    Sent,
    Delivered,
    Read,
    Played,
    /// It will not be delivered; `reason` says why.
    Failed {
        reason: String,
    },
}

impl ReportedStatus {
    /// The status it moves a message to.
    pub fn status(&self) -> MessageStatus {
        match self {
            Self::Sent => MessageStatus::Sent,
            Self::Delivered => MessageStatus::Delivered,
            Self::Read => MessageStatus::Read,
            Self::Played => MessageStatus::Played,
            Self::Failed { .. } => MessageStatus::Failed,
        }
    }
}

/// A message an engine is asked to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    pub message_id: MessageId,
    /// The WhatsApp id chosen in advance (WhatsApp Web picks its own ids, so a resend after a
    /// crash reuses the id and WhatsApp drops the duplicate); `None` where the engine assigns.
    pub provider_id: Option<ProviderId>,
    pub to: Jid,
    pub content: Content,
    /// The WhatsApp id of the message this one replies to.
    pub quoted_provider_id: Option<ProviderId>,
    /// How many attempts at sending it came before this one.
    pub attempt: u32,
}

/// Something done to an existing message or chat.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageAction {
    /// Revoke for everyone.
    Revoke { chat: Jid, provider_id: ProviderId },
    /// Replace the text.
    Edit {
        chat: Jid,
        provider_id: ProviderId,
        text: String,
    },
    /// Send read receipts for received messages.
    MarkRead {
        chat: Jid,
        provider_ids: Vec<ProviderId>,
        /// Who wrote each of them, in the order of `provider_ids`, when known (an empty list
        /// when none is): WhatsApp Web needs the participant of a group message.
        senders: Vec<Option<Jid>>,
    },
}

/// A chat presence to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Available,
    Unavailable,
    Composing,
    Recording,
    Paused,
}

/// A message that arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub provider_id: ProviderId,
    /// The chat (the sender for direct chats, the group for groups).
    pub chat: Jid,
    /// Who wrote it.
    pub sender: Jid,
    /// The chat's linked identity (`…@lid`) when WhatsApp gave one; `chat` then names it by
    /// phone number when that is known too.
    pub chat_lid: Option<Jid>,
    /// The sender's linked identity, likewise.
    pub sender_lid: Option<Jid>,
    pub content: Content,
    /// When WhatsApp says it was sent (ms).
    pub sent_at: i64,
    /// The WhatsApp id of the message it replies to, if it is a reply.
    pub quoted_provider_id: Option<ProviderId>,
}

/// Whether `text` is exactly one emoji, as a reaction carries: a pictograph (with its
/// presentation selector, skin tone and tag sequence, and others joined to it by zero-width
/// joiners), a keycap such as "1️⃣", or a flag of two regional indicators.
pub fn is_one_emoji(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let is_regional = |c: char| ('\u{1F1E6}'..='\u{1F1FF}').contains(&c);
    match chars.as_slice() {
        [] => false,
        ['0'..='9' | '#' | '*', rest @ ..] => {
            matches!(rest, ['\u{20E3}'] | ['\u{FE0F}', '\u{20E3}'])
        }
        [a, b] if is_regional(*a) && is_regional(*b) => true,
        _ => {
            let mut i = 0;
            loop {
                // One element: a pictograph and what may follow it.
                if !chars.get(i).is_some_and(|c| is_pictograph(*c)) {
                    return false;
                }
                i += 1;
                if matches!(chars.get(i), Some('\u{FE0F}' | '\u{FE0E}')) {
                    i += 1;
                }
                if chars
                    .get(i)
                    .is_some_and(|c| ('\u{1F3FB}'..='\u{1F3FF}').contains(c))
                {
                    i += 1;
                }
                if chars
                    .get(i)
                    .is_some_and(|c| ('\u{E0020}'..='\u{E007E}').contains(c))
                {
                    while chars
                        .get(i)
                        .is_some_and(|c| ('\u{E0020}'..='\u{E007E}').contains(c))
                    {
                        i += 1;
                    }
                    if chars.get(i) != Some(&'\u{E007F}') {
                        return false;
                    }
                    i += 1;
                }
                match chars.get(i) {
                    None => return true,
                    Some('\u{200D}') => i += 1,
                    Some(_) => return false,
                }
            }
        }
    }
}

/// Characters that stand as an emoji (Unicode's extended pictographs, roughly), skin tones
/// included; not regional indicators, which only pair into flags.
fn is_pictograph(c: char) -> bool {
    let c = u32::from(c);
    matches!(c,
        0x00A9 | 0x00AE | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x2194..=0x2199 | 0x21A9..=0x21AA
        | 0x231A..=0x231B | 0x2328 | 0x23CF | 0x23E9..=0x23F3 | 0x23F8..=0x23FA | 0x24C2
        | 0x25AA..=0x25AB | 0x25B6 | 0x25C0 | 0x25FB..=0x25FE | 0x2600..=0x27BF
        | 0x2934..=0x2935 | 0x2B05..=0x2B07 | 0x2B1B..=0x2B1C | 0x2B50 | 0x2B55 | 0x3030
        | 0x303D | 0x3297 | 0x3299 | 0x1F000..=0x1F1E5 | 0x1F200..=0x1FAFF)
}

#[cfg(test)]
mod tests;
