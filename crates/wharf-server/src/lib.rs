//! The Wharf server: HTTP dialects, services, workers and the app builder [`run`].

mod app;
pub mod cluster;
mod config;
mod error;
pub mod http;
pub mod instances;
mod log_fields;
pub mod media_fetch;
pub mod metrics;
pub mod outbound;
pub mod secrets;
pub mod services;
pub mod web_devices;
pub mod workers;

pub use app::{run, run_with_devices, run_with_store};
pub use config::{Config, LogFormat, redact_url};
pub use error::ServiceError;

/// Installs the TLS crypto provider (ring) for outgoing HTTPS (webhooks, the Cloud API).
/// Idempotent; `run` calls it, and so must any program that builds HTTP clients first.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
