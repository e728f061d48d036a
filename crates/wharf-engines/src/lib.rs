//! Wharf's engines: the code that talks to WhatsApp (or, for the emulator, plays it).

pub mod cloud;
pub mod emulator;

pub use cloud::CloudEngine;
pub use emulator::Emulator;
pub use web::WebEngine;
pub mod web;
