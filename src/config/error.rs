//! Config errors that name the file and the key to fix.

use std::fmt;
use std::path::{Path, PathBuf};

/// A refused config file: nothing of it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// The key path (`tenant[0].signing.secret`), when one is to blame.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &Path, key: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        ConfigError { file: file.to_owned(), key: key.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: {key}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}
