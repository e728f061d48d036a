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
}

/// The keys `WHARF_*` variables may set (others, like `WHARF_CONFIG`, are not config values).
const ENV_KEYS: [&str; 7] = [
    "listen",
    "database_url",
    "default_engine",
    "emulator_control",
    "rate_limit_per_minute",
    "instance_id",
    "log",
];

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
        .merge(Env::prefixed("WHARF_").only(&ENV_KEYS))
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
}
