//! The server's configuration, validated before anything starts.

use std::{fmt, net::SocketAddr, num::NonZeroU32};

use serde::{Deserialize, Serialize};
use wharf_core::EngineKind;

/// Everything `wharf serve` can be told. Defaults suit one machine with SQLite.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `sqlite://PATH` (created when missing) or `postgres://…`.
    pub database_url: String,
    /// Engine of sessions created without `engine`.
    pub default_engine: EngineKind,
    /// Mount the emulator's control surface (`/emulator/...`).
    pub emulator_control: bool,
    /// Requests per minute each account may make on authenticated routes.
    pub rate_limit_per_minute: NonZeroU32,
    /// This instance's name, shown as `worker_id` of the sessions it runs.
    pub instance_id: String,
    /// Log filter, in `RUST_LOG` syntax.
    pub log: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://./data/wharf.db".into(),
            default_engine: EngineKind::Emulator,
            emulator_control: true,
            rate_limit_per_minute: NonZeroU32::new(600).expect("600 is not zero"),
            instance_id: default_instance_id(),
            log: "info".into(),
        }
    }
}

fn default_instance_id() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "wharf".into())
}

impl Config {
    /// Checks what serde cannot: the database URL's scheme and a usable instance id.
    pub fn validate(&self) -> Result<(), String> {
        let url = &self.database_url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(format!(
                "database_url must start with sqlite:, postgres:// or postgresql:// (got {})",
                redact_url(url)
            ));
        }
        if self.instance_id.trim().is_empty() || self.instance_id.len() > 100 {
            return Err("instance_id must be 1 to 100 characters".into());
        }
        Ok(())
    }
}

/// A URL with any password (in the user info or a `password=` parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let url = match url.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => url.to_owned(),
    };
    let url = url.as_str();
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("default_engine", &self.default_engine)
            .field("emulator_control", &self.emulator_control)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("instance_id", &self.instance_id)
            .field("log", &self.log)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_database_passwords() {
        let config = Config {
            database_url: "postgres://wharf:s3cret@db:5432/wharf".into(),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://wharf:***@db:5432/wharf"),
            "{shown}"
        );
        assert_eq!(
            redact_url("postgres://db/w?user=u&password=p4ss&sslmode=require"),
            "postgres://db/w?user=u&password=***&sslmode=require"
        );
    }

    #[test]
    fn validate_rejects_unknown_databases() {
        let config = Config {
            database_url: "mysql://x".into(),
            ..Config::default()
        };
        assert!(config.validate().unwrap_err().contains("database_url"));
        assert!(Config::default().validate().is_ok());
    }
}
