//! The Wapio dialect: sessions and messages (contacts, groups and channels come later).

pub mod interactive;
pub mod messages;
mod qr_png;
pub mod send;
pub mod sessions;
pub mod views;
