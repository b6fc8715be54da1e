//! Config files: the server file (`conf/lrsgate.toml`) and the tenants file. External serde
//! types (`deny_unknown_fields`) are converted with `TryFrom`-style validation into internal
//! types that cannot be invalid; request code never sees these file structs.

pub mod env;
pub mod error;
pub mod names;
pub mod server;
pub mod tenants;

use std::path::Path;

use serde::de::DeserializeOwned;

pub use error::ConfigError;

/// Read a TOML file, expand `${ENV}` references, and deserialize it strictly.
pub(crate) fn read_toml<T: DeserializeOwned>(file: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError::new(file, None, format!("cannot read: {e}")))?;
    parse_toml(file, &text, &|name| std::env::var(name).ok())
}

pub(crate) fn parse_toml<T: DeserializeOwned>(
    file: &Path,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<T, ConfigError> {
    let mut value: toml::Value =
        toml::from_str(text).map_err(|e| ConfigError::new(file, None, e.message().to_owned()))?;
    env::expand(&mut value, lookup)
        .map_err(|(key, var)| ConfigError::new(file, key, format!("environment variable {var} is not set")))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::new(file, (key != ".").then_some(key), e.into_inner().to_string())
    })
}
