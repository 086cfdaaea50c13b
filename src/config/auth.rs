//! `[auth]`: who may publish and play. Its keys are the defaults of every app; each
//! `[[auth.app]]` table overrides, for one app, the rule keys it sets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{KeyDoc, SectionDoc};

config_section! {
    /// Authorisation of publishers and players, in three stages: IP rules and signed URLs
    /// (checked in the worker loop), then an HTTP webhook (called from a pool of threads off
    /// the loops, its answers cached). The rule keys here (`allow_*`, `deny_*`, `sign_*`)
    /// apply to every app; a `[[auth.app]]` table with `name = "live"` and any of those keys
    /// replaces them for that app. Everything is off by default.
    pub struct AuthConfig in "auth" {
        /// CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or one address) allowed to publish;
        /// empty: every address not denied. IPv4 clients on IPv6 sockets match IPv4 blocks.
        pub allow_publish: Vec<String>,
        /// CIDR blocks refused publishing (checked before `allow_publish`).
        pub deny_publish: Vec<String>,
        /// CIDR blocks allowed to play (RTMP, HTTP-FLV, HLS, DASH); empty: every address not
        /// denied.
        pub allow_play: Vec<String>,
        /// CIDR blocks refused playing (checked before `allow_play`).
        pub deny_play: Vec<String>,
        /// Publishing needs a signed URL: `?exp=UNIX&sig=HEX[&kid=KEY]` on the stream name
        /// (or on the app/server URL), with sig = HMAC-SHA256(secret,
        /// "publish/{app}/{stream}?exp={exp}"); `rtmp-edge sign` mints them.
        pub sign_publish: bool,
        /// Playing needs a signed URL (as `sign_publish`, with "play/…"). HLS/DASH: the
        /// playlist or manifest request carries it; its segments are allowed for the same
        /// stream and client address for `http_session_ms` after the last allowed request.
        pub sign_play: bool,
        /// Signing secrets by key id, e.g. `{ default = "…", k2 = "…" }`: a URL without `kid`
        /// is checked against `default`. Required when any signature is required; each
        /// secret at least 16 bytes. Secrets are never logged (`--print-config` prints them:
        /// keep the file private).
        pub keys: BTreeMap<String, String>,
        /// Webhook asked before a publish is accepted: `http://host[:port]/path` (empty: none).
        /// It gets a JSON POST (action, app, stream, query without `sig`, ip, worker, conn,
        /// protocol); a 2xx allows, any other status denies. Allow answers are cached 60 s and
        /// denials 5 s per (action, app, stream, client address); identical requests in flight
        /// share one call.
        pub on_publish: String,
        /// Webhook asked before a play is accepted (as `on_publish`). HLS/DASH viewers are
        /// asked once per session (their playlist or manifest request), not per segment.
        pub on_play: String,
        /// Webhook told (fire and forget, action "done") when an allowed publisher or player
        /// stops or leaves.
        pub on_done: String,
        /// A webhook call not answered within this many ms (connect, send, status line) counts
        /// as failed.
        pub webhook_timeout_ms: u64,
        /// A webhook that fails (timeout, refused connection, garbled answer) allows instead of
        /// denying. A non-2xx answer always denies.
        pub webhook_fail_open: bool,
        /// Threads calling webhooks, shared by all workers (read at start).
        pub webhook_threads: usize,
        /// An HLS/DASH viewer allowed once (playlist or manifest request) may fetch that
        /// stream's playlists and segments from the same address without asking again until
        /// this many ms pass with no request.
        pub http_session_ms: u64,
        /// Per-app overrides, repeatable as `[[auth.app]]` tables: `name` and any of
        /// `allow_publish`, `deny_publish`, `allow_play`, `deny_play`, `sign_publish`,
        /// `sign_play`; keys left out take the `[auth]` value.
        pub app: Vec<AuthAppConfig>,
    }
}

/// One `[[auth.app]]` table: rules replacing the `[auth]` ones for the app `name`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthAppConfig {
    /// The app these rules are for (without a query string).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_publish: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_publish: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_play: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_play: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_publish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_play: Option<bool>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            allow_publish: Vec::new(),
            deny_publish: Vec::new(),
            allow_play: Vec::new(),
            deny_play: Vec::new(),
            sign_publish: false,
            sign_play: false,
            keys: BTreeMap::new(),
            on_publish: String::new(),
            on_play: String::new(),
            on_done: String::new(),
            webhook_timeout_ms: 2_000,
            webhook_fail_open: false,
            webhook_threads: 4,
            http_session_ms: 60_000,
            app: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn app_tables_and_keys_parse_validate_and_print_back() {
        let text = r#"
[auth]
deny_play = ["192.0.2.0/24"]
sign_publish = true
on_play = "http://127.0.0.1:9000/hook"

[auth.keys]
default = "0123456789abcdef"
k2 = "fedcba9876543210"

[[auth.app]]
name = "live"
allow_publish = ["10.0.0.0/8", "::1"]
sign_play = true

[[auth.app]]
name = "open"
sign_publish = false
"#;
        let config = Config::from_toml_str(text).unwrap();
        config.validate_with_cores(&[0]).unwrap();
        assert_eq!(config.auth.app.len(), 2);
        assert_eq!(config.auth.app[0].sign_play, Some(true));
        assert_eq!(config.auth.app[1].allow_publish, None);
        let printed = config.to_commented_toml();
        assert_eq!(Config::from_toml_str(&printed).unwrap(), config);
    }

    #[test]
    fn a_bad_block_or_a_short_secret_is_refused_naming_the_key() {
        let bad = Config::from_toml_str("[auth]\ndeny_play = [\"10.0.0.0/99\"]\n").unwrap();
        let error = bad.validate_with_cores(&[0]).unwrap_err();
        assert_eq!(error.key(), Some("auth.deny_play"), "{error}");
        let short = Config::from_toml_str("[auth.keys]\ndefault = \"short\"\n").unwrap();
        let error = short.validate_with_cores(&[0]).unwrap_err();
        assert_eq!(error.key(), Some("auth.keys"));
        assert!(!error.to_string().contains("short"), "{error}");
    }
}
