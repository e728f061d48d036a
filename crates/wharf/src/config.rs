//! Configuration layering: defaults, then an optional TOML file, then `WHARF_*` environment
//! variables, then command-line flags; validated before use.

use std::path::PathBuf;

use anyhow::Context;
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::Serialize;
use wharf_server::Config;

/// Config values given as flags; unset ones leave the lower layers alone.
#[derive(Debug, Default, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_engine: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emulator_control: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
}

/// The keys `WHARF_*` variables may set: every key of [`Config`] (others, like
/// `WHARF_CONFIG` or `WHARF_TEST_DATABASE_URL`, are not config values).
fn env_keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Loads and validates the configuration. `file` is the `--config` path; without one,
/// `./wharf.toml` is read when it exists.
pub fn load(file: Option<PathBuf>, flags: FlagOverrides) -> anyhow::Result<Config> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    match file {
        Some(path) => {
            anyhow::ensure!(
                path.exists(),
                "config file {} does not exist",
                path.display()
            );
            figment = figment.merge(Toml::file(path));
        }
        None => figment = figment.merge(Toml::file("wharf.toml")),
    }
    let config: Config = figment
        .merge(
            Env::prefixed("WHARF_")
                .only(&env_keys().iter().map(String::as_str).collect::<Vec<_>>()),
        )
        .merge(Serialized::defaults(flags))
        .extract()
        .context("invalid configuration")?;
    config
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid configuration")?;
    Ok(config)
}

#[cfg(test)]
// figment's own error type is large; the lint is about its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_environment_which_overrides_files() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "wharf.toml",
                "listen = \"127.0.0.1:9000\"\nlog = \"debug\"\ninstance_id = \"from-file\"",
            )?;
            jail.set_env("WHARF_LISTEN", "127.0.0.1:9001");
            jail.set_env("WHARF_CONFIG", "ignored-here");
            let flags = FlagOverrides {
                instance_id: Some("from-flag".into()),
                ..Default::default()
            };
            let config = load(None, flags).map_err(|e| e.to_string())?;
            assert_eq!(config.listen.port(), 9001);
            assert_eq!(config.log, "debug");
            assert_eq!(config.instance_id, "from-flag");
            Ok(())
        });
    }

    #[test]
    fn every_key_can_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("WHARF_SEND_RATE_EMULATOR", "7");
            jail.set_env("WHARF_WEBHOOK_RETRY_DELAYS_MS", "[10, 20]");
            jail.set_env("WHARF_EMULATOR_READ_AFTER_MS", "-1");
            jail.set_env(
                "WHARF_SECRET_KEY",
                "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=",
            );
            jail.set_env("WHARF_CLOUD_GRAPH_BASE_URL", "http://127.0.0.1:9999");
            jail.set_env("WHARF_CLOUD_PAIR_BURST", "5");
            jail.set_env(
                "WHARF_OUTBOUND_ALLOW",
                "[\"10.0.0.0/8\", \"receiver.internal\"]",
            );
            jail.set_env("WHARF_WEBHOOK_DISABLE_AFTER_DAYS", "2");
            let config = load(None, FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(
                config.secret_key.as_deref(),
                Some("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=")
            );
            assert_eq!(config.cloud_graph_base_url, "http://127.0.0.1:9999");
            assert_eq!(config.cloud_pair_burst, 5);
            assert_eq!(config.outbound_allow, ["10.0.0.0/8", "receiver.internal"]);
            assert_eq!(config.webhook_disable_after_days, 2);
            assert_eq!(config.send_rate_emulator.get(), 7);
            assert_eq!(config.webhook_retry_delays_ms, vec![10, 20]);
            assert_eq!(config.emulator_read_after_ms, -1);
            Ok(())
        });
    }

    #[test]
    fn the_log_format_comes_from_the_file_the_environment_or_the_flag() {
        figment::Jail::expect_with(|jail| {
            let config = load(None, FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.log_format, wharf_server::LogFormat::Text);
            jail.create_file("wharf.toml", "log_format = \"json\"")?;
            let config = load(None, FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.log_format, wharf_server::LogFormat::Json);
            jail.set_env("WHARF_LOG_FORMAT", "text");
            let config = load(None, FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.log_format, wharf_server::LogFormat::Text);
            let flags = FlagOverrides {
                log_format: Some("json".into()),
                ..Default::default()
            };
            assert_eq!(
                load(None, flags).map_err(|e| e.to_string())?.log_format,
                wharf_server::LogFormat::Json
            );
            jail.set_env("WHARF_LOG_FORMAT", "xml");
            let err = format!("{:#}", load(None, FlagOverrides::default()).unwrap_err());
            assert!(err.to_lowercase().contains("log_format"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("WHARF_RATE_LIMIT_PER_MINUTE", "0");
            let err = format!("{:#}", load(None, FlagOverrides::default()).unwrap_err());
            assert!(
                err.to_lowercase().contains("rate_limit_per_minute"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn outbound_allow_takes_a_list_or_comma_separated_text_and_is_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "WHARF_OUTBOUND_ALLOW",
                "10.0.0.0/8, receiver.internal,[::1]",
            );
            let config = load(None, FlagOverrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(
                config.outbound_allow,
                ["10.0.0.0/8", "receiver.internal", "[::1]"]
            );
            jail.set_env("WHARF_OUTBOUND_ALLOW", "[\"10.0.0.0/33\"]");
            let err = format!("{:#}", load(None, FlagOverrides::default()).unwrap_err());
            assert!(err.contains("outbound_allow"), "{err}");
            jail.set_env("WHARF_OUTBOUND_ALLOW", "http://receiver");
            let err = format!("{:#}", load(None, FlagOverrides::default()).unwrap_err());
            assert!(err.contains("outbound_allow"), "{err}");
            Ok(())
        });
    }
}
