//! [`ConfigSource`]: where the configuration comes from (the embedded defaults, a file, the
//! command-line overrides) and the one function that loads and validates it, used both at
//! startup (and by `--check-config`) and on SIGHUP, so a reload accepts exactly what a start
//! would and refuses it with the same message.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{key_position, Config, ConfigError};

/// The file and the command-line overrides a configuration is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSource {
    /// The TOML file (`--config`/`--check-config`); `None`: the embedded defaults.
    pub file: Option<PathBuf>,
    /// `--listen`: replaces `rtmp.listen` when not empty.
    pub listen: Vec<SocketAddr>,
    /// `--http-listen`: replaces `http.listen` when not empty.
    pub http_listen: Vec<SocketAddr>,
    /// `--no-http`: `http.enabled = false`.
    pub no_http: bool,
    /// `--workers`: replaces `workers.count`.
    pub workers: Option<usize>,
}

impl ConfigSource {
    /// Defaults, then the file, then the overrides; validated. The error is the message
    /// `rtmp-edge` prints (naming the file and the line of the bad key, or the flag that set
    /// it), the same at startup, for `--check-config` and on reload.
    pub fn load(&self) -> Result<Config, String> {
        let file = self.file.as_deref();
        let (mut config, text) = match file {
            None => (Config::default(), None),
            Some(path) => match Config::load(path) {
                Ok((config, text)) => (config, Some(text)),
                Err(e @ ConfigError::Unreadable { .. }) => return Err(e.to_string()),
                Err(e) => return Err(format!("invalid config file {}: {e}", path.display())),
            },
        };

        if !self.listen.is_empty() {
            config.rtmp.listen = self.listen.clone();
        }
        if let Some(workers) = self.workers {
            config.workers.count = workers;
        }
        if !self.http_listen.is_empty() {
            config.http.listen = self.http_listen.clone();
        }
        if self.no_http {
            config.http.enabled = false;
        }

        config.validate().map_err(|error| {
            let key = error.key().unwrap_or_default();
            let from_flag = match key {
                "rtmp.listen" if !self.listen.is_empty() => Some("--listen"),
                "workers.count" if self.workers.is_some() => Some("--workers"),
                "http.listen" if !self.http_listen.is_empty() => Some("--http-listen"),
                _ => None,
            };
            match (from_flag, file, &text) {
                (Some(flag), _, _) => format!("invalid {flag}: {error}"),
                (None, Some(path), Some(text)) => match key_position(text, key) {
                    Some((line, _)) => format!(
                        "invalid config file {} (line {line}): {error}",
                        path.display()
                    ),
                    None => format!("invalid config file {}: {error}", path.display()),
                },
                _ => format!("invalid configuration: {error}"),
            }
        })?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(name: &str, text: &str) -> (PathBuf, impl Drop) {
        struct Remove(PathBuf);
        impl Drop for Remove {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        let path = std::env::temp_dir().join(format!(
            "rtmp-edge-source-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        (path.clone(), Remove(path))
    }

    #[test]
    fn a_bad_value_names_the_file_and_its_line() {
        let (path, _rm) = file_with("bad", "[timeouts]\n\ndrain_ms = 0\n");
        let source = ConfigSource {
            file: Some(path.clone()),
            ..ConfigSource::default()
        };
        let message = source.load().unwrap_err();
        assert_eq!(
            message,
            format!(
                "invalid config file {} (line 3): `timeouts.drain_ms` must be greater than 0",
                path.display()
            )
        );
    }

    #[test]
    fn overrides_apply_after_the_file_and_a_bad_one_names_its_flag() {
        let (path, _rm) = file_with("workers", "[workers]\ncount = 2\n");
        let mut source = ConfigSource {
            file: Some(path),
            no_http: true,
            ..ConfigSource::default()
        };
        let config = source.load().unwrap();
        assert_eq!(config.workers.count, 2);
        assert!(!config.http.enabled);
        source.workers = Some(1000);
        let message = source.load().unwrap_err();
        assert!(message.starts_with("invalid --workers: "), "{message}");
    }

    #[test]
    fn a_missing_file_is_reported_as_unreadable() {
        let source = ConfigSource {
            file: Some(PathBuf::from("/nonexistent/rtmp-edge.toml")),
            ..ConfigSource::default()
        };
        let message = source.load().unwrap_err();
        assert!(message.starts_with("cannot read config file /nonexistent/rtmp-edge.toml"));
    }
}
