//! WhatsApp JIDs (`user@server`): people, groups, LIDs, channels and broadcasts.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Phone;

/// The server part of a JID, which says what it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JidServer {
    /// A person, by phone number (`…@s.whatsapp.net`).
    User,
    /// A group (`…@g.us`).
    Group,
    /// A person by linked identity (`…@lid`).
    Lid,
    /// A channel (`…@newsletter`).
    Newsletter,
    /// Status and broadcast lists (`…@broadcast`).
    Broadcast,
}

impl JidServer {
    fn as_str(self) -> &'static str {
        match self {
            Self::User => "s.whatsapp.net",
            Self::Group => "g.us",
            Self::Lid => "lid",
            Self::Newsletter => "newsletter",
            Self::Broadcast => "broadcast",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::User,
            Self::Group,
            Self::Lid,
            Self::Newsletter,
            Self::Broadcast,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
        .or_else(|| (text == "c.us").then_some(Self::User))
    }
}

/// A validated JID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Jid {
    user: String,
    server: JidServer,
}

/// Why a text is not a JID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JidError {
    #[error("must look like user@server (s.whatsapp.net, g.us, lid, newsletter or broadcast)")]
    Shape,
    #[error("unknown JID server `{0}`")]
    Server(String),
    #[error("the user part must be digits (group ids may contain one '-')")]
    User,
}

impl Jid {
    /// Parses `user@server`; a device suffix (`:12`) on a user is dropped.
    pub fn parse(text: &str) -> Result<Self, JidError> {
        let (user, server) = text.trim().split_once('@').ok_or(JidError::Shape)?;
        let server = JidServer::parse(server).ok_or_else(|| JidError::Server(server.to_owned()))?;
        let user = user.split(':').next().unwrap_or(user);
        let digits_and = |extra: char| {
            !user.is_empty()
                && user.chars().all(|c| c.is_ascii_digit() || c == extra)
                && user.len() <= 40
        };
        let valid = match server {
            JidServer::Group => digits_and('-'),
            JidServer::Broadcast => user == "status" || digits_and('0'),
            _ => digits_and('0'),
        };
        if !valid {
            return Err(JidError::User);
        }
        Ok(Self {
            user: user.to_owned(),
            server,
        })
    }

    /// The JID of a person's phone number.
    pub fn from_phone(phone: &Phone) -> Self {
        Self {
            user: phone.digits().to_owned(),
            server: JidServer::User,
        }
    }

    /// What the JID names.
    pub fn server(&self) -> JidServer {
        self.server
    }

    /// The part before `@`.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The phone number of a person's JID.
    pub fn phone(&self) -> Option<Phone> {
        (self.server == JidServer::User)
            .then(|| Phone::parse(&self.user).ok())
            .flatten()
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.server.as_str())
    }
}

impl Serialize for Jid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Jid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_server() {
        assert_eq!(
            Jid::parse("15551234567@s.whatsapp.net")
                .unwrap()
                .to_string(),
            "15551234567@s.whatsapp.net"
        );
        assert_eq!(
            Jid::parse("15551234567:12@s.whatsapp.net").unwrap().user(),
            "15551234567"
        );
        assert_eq!(
            Jid::parse("15551234567@c.us").unwrap().server(),
            JidServer::User
        );
        assert_eq!(
            Jid::parse("120363000000000000-1612345678@g.us")
                .unwrap()
                .server(),
            JidServer::Group
        );
        assert_eq!(
            Jid::parse("123456789012345@lid").unwrap().server(),
            JidServer::Lid
        );
        assert_eq!(
            Jid::parse("120363000000000000@newsletter")
                .unwrap()
                .server(),
            JidServer::Newsletter
        );
        assert_eq!(
            Jid::parse("status@broadcast").unwrap().server(),
            JidServer::Broadcast
        );
        let phone = Phone::parse("+15551234567").unwrap();
        assert_eq!(Jid::from_phone(&phone).phone(), Some(phone));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Jid::parse("hello"), Err(JidError::Shape));
        assert!(matches!(
            Jid::parse("1@example.com"),
            Err(JidError::Server(_))
        ));
        assert_eq!(Jid::parse("abc@s.whatsapp.net"), Err(JidError::User));
        assert_eq!(Jid::parse("@g.us"), Err(JidError::User));
    }
}
