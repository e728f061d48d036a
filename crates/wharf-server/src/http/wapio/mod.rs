//! The Wapio dialect: sessions, messages, contacts, groups and channels.

pub mod account;
pub mod channels;
pub mod contacts;
pub mod groups;
pub mod interactive;
pub mod messages;
pub(crate) mod qr_png;
pub mod send;
pub mod sessions;
pub mod views;
