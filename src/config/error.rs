//! [`ConfigError`]: why a configuration was refused, naming the key.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a configuration was refused. Every variant but [`ConfigError::Unreadable`] names the
/// offending key (as `section.key`), so the message tells the operator what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Unreadable {
        /// The file that was asked for.
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML, or a key is unknown, or a value has the wrong type or form.
    #[error("{}: {message}", location(.key, .line, .column))]
    Malformed {
        /// The key path (`workers.max_connections`), when the error is about one key.
        key: Option<String>,
        /// 1-based line of the error, when known.
        line: Option<usize>,
        /// 1-based column (in bytes) of the error, when known.
        column: Option<usize>,
        /// What the TOML parser or the type said, e.g. "unknown field `foo`, expected ...".
        message: String,
    },
    /// A number is outside the range this server accepts for it.
    #[error("`{key}` = {value} is out of range: must be in {min}..={max}")]
    OutOfRange {
        /// The key path.
        key: &'static str,
        /// The configured value.
        value: u64,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// A value is below the smallest this server accepts for it.
    #[error("`{key}` = {value} is too small: must be at least {min}")]
    BelowMinimum {
        /// The key path.
        key: &'static str,
        /// The configured value.
        value: u64,
        /// Smallest accepted value.
        min: u64,
    },
    /// A count, size, budget or timeout that must be positive is 0.
    #[error("`{key}` must be greater than 0")]
    MustBePositive {
        /// The key path.
        key: &'static str,
    },
    /// A list that must hold at least one entry is empty.
    #[error("`{key}` must not be empty")]
    MustNotBeEmpty {
        /// The key path.
        key: &'static str,
    },
    /// A list holds more entries than this server can use.
    #[error("`{key}` lists {len} entries: at most {max} are allowed")]
    TooManyEntries {
        /// The key path.
        key: &'static str,
        /// How many entries it lists.
        len: usize,
        /// Most entries accepted.
        max: usize,
    },
    /// A key that another key's value makes necessary is empty.
    #[error("`{key}` must be set when `{by}` is not empty")]
    RequiredBy {
        /// The key path of the missing value.
        key: &'static str,
        /// The key path that needs it.
        by: &'static str,
    },
    /// A certificate, key or CA file cannot be read or used.
    #[error("`{key}`: {reason}")]
    BadTlsFile {
        /// The key path naming the file.
        key: &'static str,
        /// What is wrong with it (unreadable, no PEM, a key not matching the certificate).
        reason: String,
    },
    /// A listen address of one protocol is also another's.
    #[error("`{key}` lists {addr}, which `{other}` lists too")]
    ListenAddressInUse {
        /// The key path.
        key: &'static str,
        /// The shared address.
        addr: SocketAddr,
        /// The other key that lists it.
        other: &'static str,
    },
    /// The same listen address appears twice.
    #[error("`{key}` lists {addr} twice")]
    DuplicateListenAddress {
        /// The key path.
        key: &'static str,
        /// The repeated address.
        addr: SocketAddr,
    },
    /// A core to pin to is not one this process may run on.
    #[error("`{key}` names core {core}, which is not available to this process (available cores: {available:?})")]
    CoreNotAvailable {
        /// The key path.
        key: &'static str,
        /// The configured core id.
        core: usize,
        /// The core ids this process may run on.
        available: Vec<usize>,
    },
    /// An entry that is not usable: a relay URL (origin or push target), a push app, a log
    /// format.
    #[error("`{key}` entry {value:?} is not usable: {reason}")]
    NotUsable {
        /// The key path.
        key: &'static str,
        /// The offending entry.
        value: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A value does not have the form its key needs (a CIDR block, a webhook URL, a key).
    #[error("`{key}` entry {value:?} is not usable: {reason}")]
    Invalid {
        /// The key path.
        key: &'static str,
        /// The offending entry (never a secret).
        value: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The log level is not a valid tracing filter.
    #[error("`{key}` = {value:?} is not a valid tracing filter: {reason}")]
    InvalidLogFilter {
        /// The key path.
        key: &'static str,
        /// The configured filter.
        value: String,
        /// What the filter parser said.
        reason: String,
    },
}

/// Formats where a [`ConfigError::Malformed`] happened: "`key` (line L, column C)".
fn location(key: &Option<String>, line: &Option<usize>, column: &Option<usize>) -> String {
    let position = match (line, column) {
        (Some(line), Some(column)) => Some(format!("line {line}, column {column}")),
        (Some(line), None) => Some(format!("line {line}")),
        _ => None,
    };
    match (key, position) {
        (Some(key), Some(position)) => format!("`{key}` ({position})"),
        (Some(key), None) => format!("`{key}`"),
        (None, Some(position)) => position,
        (None, None) => "invalid config".to_string(),
    }
}

impl ConfigError {
    /// The key path this error is about (`rtmp.chunk_size`), if it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Unreadable { .. } => None,
            Self::Malformed { key, .. } => key.as_deref(),
            Self::OutOfRange { key, .. }
            | Self::BelowMinimum { key, .. }
            | Self::MustBePositive { key }
            | Self::MustNotBeEmpty { key }
            | Self::TooManyEntries { key, .. }
            | Self::DuplicateListenAddress { key, .. }
            | Self::RequiredBy { key, .. }
            | Self::BadTlsFile { key, .. }
            | Self::ListenAddressInUse { key, .. }
            | Self::CoreNotAvailable { key, .. }
            | Self::NotUsable { key, .. }
            | Self::Invalid { key, .. }
            | Self::InvalidLogFilter { key, .. } => Some(key),
        }
    }
}
