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

/// What a server is in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Takes a lease per stream published on it and is a push target of ingest edges.
    Origin,
    /// Takes no leases; with `advertise`, a target of busy edges' redirects.
    Edge,
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
        /// `"origin"` or `"edge"`. An origin with `advertise` holds a lease per stream
        /// published on it and writes its load for ingest edges' placement; an edge with
        /// `advertise` writes its load for busy edges' redirects.
        pub role: NodeRole,
        /// This server's RTMP address as others reach it (`rtmp://10.0.0.5:1935`, an IP
        /// address: other servers dial it without DNS): the lease value of an origin's
        /// streams, or where a busy edge sends RTMP players. Empty: this server takes no
        /// leases and is not a redirect target.
        pub advertise: String,
        /// This edge's HTTP address as players reach it (`http://10.0.0.6:8080`), where a
        /// busy edge sends HTTP-FLV, HLS and DASH players (302). Empty: HTTP players are not
        /// sent here.
        pub advertise_http: String,
        /// An edge (`role = "edge"`) busier than `busy_percent` (or with `busy_connections`)
        /// answers new clients with a redirect to the least-loaded live edge that is not
        /// busy: every RTMP `connect` (publishers too) with NetConnection.Connect.Rejected and
        /// `ex.redirect`, HTTP-FLV streams and the first HLS playlist / DASH manifest request
        /// of a viewer with 302 (viewers already watching here, and segments, stay).
        pub redirect_when_busy: bool,
        /// Busy: the workers' loops spent at least this share of their time handling events
        /// (percent, measured every `renew_ms`). 1..=100.
        pub busy_percent: u64,
        /// Busy: at least this many connections open (0: not counted).
        pub busy_connections: u64,
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
            role: NodeRole::Origin,
            advertise: String::new(),
            advertise_http: String::new(),
            redirect_when_busy: false,
            busy_percent: 85,
            busy_connections: 0,
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
            let url = crate::relay::OriginUrl::parse(&self.advertise)
                .map_err(|e| invalid("cluster.advertise", &self.advertise, e.to_string()))?;
            // Others dial it from their worker loops, which never wait on DNS.
            let host = url
                .endpoint()
                .host
                .trim_start_matches('[')
                .trim_end_matches(']');
            if host.parse::<std::net::IpAddr>().is_err() {
                return Err(invalid(
                    "cluster.advertise",
                    &self.advertise,
                    "the host must be an IP address (other servers dial it without DNS)".into(),
                ));
            }
        }
        if !self.advertise_http.is_empty() && !self.advertise_http.starts_with("http://") {
            return Err(invalid(
                "cluster.advertise_http",
                &self.advertise_http,
                "must be an http:// URL".into(),
            ));
        }
        if self.redirect_when_busy && self.role != NodeRole::Edge {
            return Err(invalid(
                "cluster.redirect_when_busy",
                "true",
                "only edges (role = \"edge\") redirect players".into(),
            ));
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
        if !(1..=100).contains(&self.busy_percent) {
            return Err(invalid(
                "cluster.busy_percent",
                &self.busy_percent.to_string(),
                "1 to 100".into(),
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
            (
                "advertise = \"rtmp://origin.example:1935\"",
                "cluster.advertise",
            ),
            ("redirect_when_busy = true", "cluster.redirect_when_busy"),
            ("lease_ms = 500", "cluster.lease_ms"),
            ("renew_ms = 10000", "cluster.renew_ms"),
            ("redis_timeout_ms = 0", "cluster.redis_timeout_ms"),
            ("advertise_http = \"rtmp://x\"", "cluster.advertise_http"),
            ("busy_percent = 0", "cluster.busy_percent"),
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
