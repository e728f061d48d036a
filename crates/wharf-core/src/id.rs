//! Typed, prefixed identifiers (`acc_…`, `sess_…`).
//!
//! The part after the prefix is 26 lowercase Crockford base32 characters: 48 bits of
//! milliseconds then 80 random bits, so ids sort by creation time as plain byte strings on
//! both SQLite and PostgreSQL (columns use the "C" collation). Cursor pagination relies on it.

use std::{fmt, marker::PhantomData, str::FromStr, sync::Mutex};

use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const BODY_LEN: usize = 26;

/// The kind of object an id names; supplies its prefix.
pub trait IdKind {
    /// The prefix including its trailing underscore, e.g. `"sess_"`.
    const PREFIX: &'static str;
}

macro_rules! id_kind {
    ($(#[$doc:meta])* $marker:ident, $alias:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $marker;
        impl IdKind for $marker {
            const PREFIX: &'static str = $prefix;
        }
        $(#[$doc])*
        pub type $alias = Id<$marker>;
    };
}

id_kind!(/// An account (tenant).
    AccountKind, AccountId, "acc_");
id_kind!(/// A WhatsApp session (one number on one engine).
    SessionKind, SessionId, "sess_");
id_kind!(/// An entry of the event log.
    EventKind, EventId, "evt_");
id_kind!(/// A long-running operation such as a deletion.
    OperationKind, OperationId, "op_");
id_kind!(/// An HTTP request, echoed in `x-request-id`.
    RequestKind, RequestId, "req_");
id_kind!(/// A message, in or out.
    MessageIdKind, MessageId, "msg_");
id_kind!(/// A unit of dispatcher work (a send or an action on a message).
    JobIdKind, JobId, "job_");
id_kind!(/// A webhook endpoint.
    WebhookIdKind, WebhookId, "whk_");
id_kind!(/// One delivery of one event to one webhook.
    DeliveryIdKind, DeliveryId, "dlv_");
id_kind!(/// One attempt at a webhook delivery.
    AttemptIdKind, AttemptId, "att_");
id_kind!(/// A sandbox session: one phone activated on the shared sandbox number.
    SandboxIdKind, SandboxId, "sbx_");
id_kind!(/// An agent (Kapso dialect): a named webhook that sandbox phones can be bound to.
    AgentIdKind, AgentId, "agt_");
id_kind!(/// A contact of a session's CRM (Zernio Business API).
    ContactIdKind, ContactId, "ct_");
id_kind!(/// A message template of a session (Zernio Business API).
    TemplateIdKind, TemplateId, "tpl_");
id_kind!(/// A broadcast: one template to many recipients of a session (Zernio Business API).
    BroadcastIdKind, BroadcastId, "bc_");
id_kind!(/// A phone number an account holds (Zernio Business API), from the pool or a provider.
    PhoneNumberIdKind, PhoneNumberId, "pn_");

/// A typed id: a prefix and a time-ordered body.
pub struct Id<K> {
    body: [u8; BODY_LEN],
    kind: PhantomData<K>,
}

impl<K: IdKind> Id<K> {
    /// A fresh id for "now". Within one process ids are strictly increasing, even within
    /// one millisecond (the random part is incremented, as monotonic ULIDs do).
    pub fn generate() -> Self {
        let value = next_value();
        let mut body = [0u8; BODY_LEN];
        for (i, slot) in body.iter_mut().enumerate() {
            let shift = 5 * (BODY_LEN - 1 - i);
            *slot = ALPHABET[((value >> shift) & 31) as usize];
        }
        Self {
            body,
            kind: PhantomData,
        }
    }

    /// Parses `prefix + body`; `None` when the text is not an id of this kind.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(K::PREFIX)?;
        if rest.len() != BODY_LEN || !rest.bytes().all(|b| ALPHABET.contains(&b)) {
            return None;
        }
        // The first character carries only 3 bits (128 = 25*5 + 3).
        if rest.as_bytes()[0] > b'7' {
            return None;
        }
        let mut body = [0u8; BODY_LEN];
        body.copy_from_slice(rest.as_bytes());
        Some(Self {
            body,
            kind: PhantomData,
        })
    }

    /// The id of another kind with the same body (so the same place in time order): a
    /// send's job is named after its message.
    pub fn retag<L: IdKind>(self) -> Id<L> {
        Id {
            body: self.body,
            kind: PhantomData,
        }
    }

    /// The full textual form, prefix included.
    pub fn as_string(&self) -> String {
        let mut s = String::with_capacity(K::PREFIX.len() + BODY_LEN);
        s.push_str(K::PREFIX);
        // The body only ever holds ASCII from ALPHABET.
        s.push_str(std::str::from_utf8(&self.body).unwrap_or_default());
        s
    }
}

/// The last value handed out, to keep ids increasing within a millisecond.
static LAST: Mutex<u128> = Mutex::new(0);

fn next_value() -> u128 {
    let millis = (crate::time::now_millis() as u64 & ((1 << 48) - 1)) as u128;
    let mut random = [0u8; 16];
    rand::rng().fill_bytes(&mut random);
    // 80 random bits with the top one clear, so increments never carry into the time.
    let random = u128::from_be_bytes(random) & ((1u128 << 79) - 1);
    let fresh = (millis << 80) | random;
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let value = if fresh > *last { fresh } else { *last + 1 };
    *last = value;
    value
}

impl<K> Clone for Id<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Id<K> {}
impl<K> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.body == other.body
    }
}
impl<K> Eq for Id<K> {}
impl<K> std::hash::Hash for Id<K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.body.hash(state)
    }
}
impl<K> PartialOrd for Id<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Id<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.body.cmp(&other.body)
    }
}

impl<K: IdKind> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}
impl<K: IdKind> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

/// The error of parsing an id of the wrong kind or shape.
#[derive(Debug, thiserror::Error)]
#[error("not a valid id: expected `{prefix}` followed by 26 base32 characters")]
pub struct InvalidId {
    /// The prefix that was expected.
    pub prefix: &'static str,
}

impl<K: IdKind> FromStr for Id<K> {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or(InvalidId { prefix: K::PREFIX })
    }
}

impl<K: IdKind> Serialize for Id<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}
impl<'de, K: IdKind> Deserialize<'de> for Id<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Ids bind to and read from SQL as their text, on sqlx's `Any` driver (the store's), so
/// repositories bind `id` rather than `id.to_string()` and read rows without string twins.
#[cfg(feature = "sqlx")]
mod sql {
    use sqlx::{Any, Database, Decode, Encode, Type, encode::IsNull, error::BoxDynError};

    use super::{Id, IdKind};

    impl<K: IdKind> Type<Any> for Id<K> {
        fn type_info() -> <Any as Database>::TypeInfo {
            <String as Type<Any>>::type_info()
        }
        fn compatible(ty: &<Any as Database>::TypeInfo) -> bool {
            <String as Type<Any>>::compatible(ty)
        }
    }

    impl<K: IdKind> Encode<'_, Any> for Id<K> {
        fn encode_by_ref(
            &self,
            buf: &mut <Any as Database>::ArgumentBuffer,
        ) -> Result<IsNull, BoxDynError> {
            <String as Encode<'_, Any>>::encode(self.as_string(), buf)
        }
    }

    impl<'r, K: IdKind> Decode<'r, Any> for Id<K> {
        fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
            let text = <&str as Decode<'r, Any>>::decode(value)?;
            Ok(text.parse::<Self>()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_other_kinds() {
        let id = SessionId::generate();
        let text = id.to_string();
        assert!(text.starts_with("sess_"));
        assert_eq!(text.len(), 5 + 26);
        assert_eq!(SessionId::parse(&text), Some(id));
        assert!(AccountId::parse(&text).is_none());
        assert!(SessionId::parse("sess_short").is_none());
        assert!(SessionId::parse("sess_ZZZZZZZZZZZZZZZZZZZZZZZZZZ").is_none());
    }

    #[test]
    fn ids_increase_within_a_millisecond() {
        let ids: Vec<_> = (0..1000)
            .map(|_| SessionId::generate().to_string())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let a = SessionId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = SessionId::generate();
        assert!(a.to_string() < b.to_string());
        assert!(a < b);
    }
}
