//! The Wapio dialect: sessions (and, later, messages, contacts, groups, channels).

pub mod messages;
mod qr_png;
pub mod send;
pub mod sessions;
pub mod views;
