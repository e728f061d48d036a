//! Wharf's engines: the code that talks to WhatsApp (or, for the emulator, plays it).

pub mod emulator;

pub use emulator::Emulator;
