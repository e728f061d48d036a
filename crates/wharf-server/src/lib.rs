//! The Wharf server: HTTP dialects, services, workers and the app builder [`run`].

mod app;
mod config;
mod error;
pub mod http;
pub mod services;
pub mod workers;

pub use app::{run, run_with_store};
pub use config::{Config, redact_url};
pub use error::ServiceError;
