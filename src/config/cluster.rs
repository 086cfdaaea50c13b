//! `[cluster]`: where the cluster's one piece of shared state lives, the stream directory
//! (which origin has which live stream).

use serde::{Deserialize, Serialize};

use super::{ConfigError, KeyDoc, SectionDoc};

/// Where the stream directory is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryKind {
    /// No shared state: an edge orders `relay.origins` per stream by rendezvous hashing.
    Static,
    /// A Redis server: origins hold a lease per stream they publish, edges look streams up.
    Redis,
}

impl DirectoryKind {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            DirectoryKind::Static => "static",
            DirectoryKind::Redis => "redis",
        }
    }
}

config_section! {
    /// Clusters of origins and edges. With `directory = "redis"` an origin (a server with
    /// `advertise` set) holds a lease `rtmp-edge:stream:{app}/{stream} -> advertise` in Redis
    /// for every stream published on it, renewed while the stream lives and deleted when it
    /// ends; an edge looks a stream up there before pulling it and tries the origin named
    /// first, then `relay.origins` in their rendezvous order. Redis is only ever talked to
    /// from one control thread with timeouts: when it is unreachable, edges pull by
    /// rendezvous hashing and streams already flowing carry on. Read at start.
    pub struct ClusterConfig in "cluster" {
        /// `"static"` (no shared state; the default) or `"redis"`.
        pub directory: DirectoryKind,
        /// The directory: `redis://[:password@]host[:port][/db]`.
        pub redis_url: String,
        /// This server's RTMP address as others reach it (`rtmp://10.0.0.5:1935`), stored as
        /// the lease value of the streams published here. Empty: this server takes no leases
        /// (an edge).
        pub advertise: String,
        /// A lease not renewed within this many ms expires (an origin that died lets go of
        /// its streams). At least 1000.
        pub lease_ms: u64,
        /// Leases are renewed this often (ms); less than `lease_ms`, at least 100.
        pub renew_ms: u64,
        /// Connecting to Redis and each command time out after this many ms; after a failure
        /// the directory is not asked again for 1 s (lookups fall back at once meanwhile).
        pub redis_timeout_ms: u64,
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            directory: DirectoryKind::Static,
            redis_url: "redis://127.0.0.1:6379".into(),
            advertise: String::new(),
            lease_ms: 10_000,
            renew_ms: 3_000,
            redis_timeout_ms: 500,
        }
    }
}

impl ClusterConfig {
    /// Checks the keys that matter for the chosen directory.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.directory == DirectoryKind::Static {
            return Ok(());
        }
        let invalid = |key: &'static str, value: &str, reason: String| ConfigError::Invalid {
            key,
            value: value.to_owned(),
            reason,
        };
        if !self.redis_url.starts_with("redis://") {
            let shown = crate::cluster::redacted_url(&self.redis_url);
            return Err(invalid(
                "cluster.redis_url",
                &shown,
                "only redis:// URLs are supported".into(),
            ));
        }
        if !self.advertise.is_empty() {
            crate::relay::OriginUrl::parse(&self.advertise)
                .map_err(|e| invalid("cluster.advertise", &self.advertise, e.to_string()))?;
        }
        if self.lease_ms < 1_000 {
            return Err(invalid(
                "cluster.lease_ms",
                &self.lease_ms.to_string(),
                "at least 1000".into(),
            ));
        }
        if self.renew_ms < 100 || self.renew_ms >= self.lease_ms {
            return Err(invalid(
                "cluster.renew_ms",
                &self.renew_ms.to_string(),
                "at least 100 and less than cluster.lease_ms".into(),
            ));
        }
        if self.redis_timeout_ms == 0 {
            return Err(invalid(
                "cluster.redis_timeout_ms",
                "0",
                "must be > 0".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn a_redis_directory_parses_validates_and_prints_back() {
        let text = "[cluster]\ndirectory = \"redis\"\nredis_url = \"redis://127.0.0.1:6380/2\"\n\
                    advertise = \"rtmp://10.0.0.5:1935\"\n";
        let config = Config::from_toml_str(text).unwrap();
        config.validate_with_cores(&[0]).unwrap();
        let printed = config.to_commented_toml();
        assert_eq!(Config::from_toml_str(&printed).unwrap(), config);
    }

    #[test]
    fn bad_cluster_keys_are_refused_naming_the_key_without_the_password() {
        let cases = [
            ("redis_url = \"http://:hunter2@x\"", "cluster.redis_url"),
            ("advertise = \"http://x\"", "cluster.advertise"),
            ("lease_ms = 500", "cluster.lease_ms"),
            ("renew_ms = 10000", "cluster.renew_ms"),
            ("redis_timeout_ms = 0", "cluster.redis_timeout_ms"),
        ];
        for (line, key) in cases {
            let text = format!("[cluster]\ndirectory = \"redis\"\n{line}\n");
            let error = Config::from_toml_str(&text)
                .unwrap()
                .validate_with_cores(&[0])
                .unwrap_err();
            assert_eq!(error.key(), Some(key), "{line}: {error}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
        // Static ignores the Redis keys.
        let text = "[cluster]\nredis_url = \"nonsense\"\n";
        Config::from_toml_str(text)
            .unwrap()
            .validate_with_cores(&[0])
            .unwrap();
    }
}
