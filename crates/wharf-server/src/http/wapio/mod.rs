//! The Wapio dialect: sessions (and, later, messages, contacts, groups, channels).

mod qr_png;
pub mod sessions;
pub mod views;
