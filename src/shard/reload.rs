//! Configuration reload (SIGHUP, [`Server::reload`](super::Server::reload)): each worker gets
//! the new, validated `Arc<Config>` over the bus and applies what can change while it runs.
//!
//! Live at once: every timeout, budget and `max_connections*` cap, the write budgets and
//! `workers.unwatched_read_ms` (polled publishers go back to reads on arrival at the next
//! poll when it is set to 0), the HTTP head limit and
//! CORS origin, `drain.redirect_url`; for connections accepted from then on: socket options,
//! output queue size, RTMP protocol limits and announced window/bandwidth; for streams created
//! from then on: the `[streams]` settings (takeover, waiting and unpublish policy for every
//! later decision). `log.level` is applied by `run` (the process's subscriber).
//! `[record]` applies to streams published from then on. `[relay]`: origins at once (a pull on
//! a removed origin hands over to the next, make-before-break), push targets for every stream
//! published here (a target kept by URL goes on), timeouts for pulls started from then on.
//! `[auth]` decides every request from then on (`auth.webhook_threads` needs a restart).
//! `[rtmps]`: the certificate and key are read again at every reload (paths changed or not,
//! so a certificate renewed in place is picked up) and serve TLS handshakes from then on;
//! established sessions keep theirs. `rtmps.ca_file` is read again for upstreams opened
//! from then on.
//! Needing a restart ([`restart_needed`]): listeners (`rtmps.listen` too), HTTP on/off,
//! worker count and cores, `[cluster]`,
//! `rtmp.chunk_size` (streams encode media once at it) and HLS/DASH packaging.

use std::sync::Arc;

use super::worker::Worker;
use crate::config::Config;
use crate::fanout::{HubSettings, StreamSettings};
use crate::net::SocketOptions;
use crate::rtmp::session::ServerConfig;

/// Room for an RTMP connection's own replies on top of its media limit and latest headers.
const REPLY_ROOM: usize = 1024 * 1024;

/// The keys that differ between `old` and `new` and only take effect after a restart.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |changed: bool, key: &'static str| {
        if changed {
            keys.push(key);
        }
    };
    check(old.rtmp.listen != new.rtmp.listen, "rtmp.listen");
    check(
        old.rtmp.chunk_size != new.rtmp.chunk_size,
        "rtmp.chunk_size",
    );
    check(old.rtmps.listen != new.rtmps.listen, "rtmps.listen");
    check(old.http.listen != new.http.listen, "http.listen");
    check(old.http.enabled != new.http.enabled, "http.enabled");
    let packaging = |c: &Config| {
        let mut h = c.http.clone();
        (h.enabled, h.listen, h.max_request_bytes) = (false, Vec::new(), 0);
        h.cors_allow_origin.clear();
        h
    };
    check(packaging(old) != packaging(new), "http.hls*/http.dash");
    check(old.workers.count != new.workers.count, "workers.count");
    check(old.workers.cores != new.workers.cores, "workers.cores");
    check(old.workers.pin != new.workers.pin, "workers.pin");
    check(old.workers.io != new.workers.io, "workers.io");
    check(old.log.format != new.log.format, "log.format");
    check(
        old.log.repeat_limit != new.log.repeat_limit,
        "log.repeat_limit",
    );
    check(
        old.auth.webhook_threads != new.auth.webhook_threads,
        "auth.webhook_threads",
    );
    check(old.cluster != new.cluster, "cluster");
    // The directory thread applies takeover to the leases it claims.
    check(
        new.cluster.directory == crate::config::DirectoryKind::Redis
            && old.streams.publish_takeover != new.streams.publish_takeover,
        "streams.publish_takeover (cluster leases)",
    );
    keys
}

/// What new RTMP sessions are configured with.
pub(super) fn session_config(config: &Config, chunk_size: u32) -> ServerConfig {
    ServerConfig {
        limits: config.rtmp.limits(),
        chunk_size,
        window_ack_size: config.rtmp.window_ack_size,
        peer_bandwidth: config.rtmp.peer_bandwidth,
    }
}

/// Socket options for accepted connections.
pub(super) fn socket_options(config: &Config) -> SocketOptions {
    SocketOptions {
        nodelay: config.workers.tcp_nodelay,
        recv_buffer: config.workers.socket_recv_buffer,
        send_buffer: config.workers.socket_send_buffer,
    }
}

/// The hub's settings from `[streams]` (and whether `[relay]` pulls), with media encoded at
/// `chunk_size`.
pub(super) fn hub_settings(config: &Config, chunk_size: u32) -> HubSettings {
    let streams = &config.streams;
    HubSettings {
        stream: StreamSettings {
            chunk_size,
            gop_cache: streams.gop_cache,
            gop_cache_max_bytes: streams.gop_cache_max_bytes,
            max_header_bytes: streams.max_header_bytes,
        },
        publish_takeover: streams.publish_takeover,
        wait_for_publisher: streams.wait_for_publisher,
        keep_players_on_unpublish: streams.keep_players_on_unpublish,
        pull: !config.relay.origins.is_empty(),
    }
}

/// Most bytes an RTMP connection's output may hold: its media limit, the latest header of each
/// kind, and room for replies. Only a peer that does not read its replies gets there.
pub(super) fn output_cap(config: &Config) -> usize {
    config.streams.player_queue_bytes + 3 * config.streams.max_header_bytes + REPLY_ROOM
}

impl Worker {
    /// Swaps in a reloaded configuration and applies what is live (see the module doc), then
    /// calls [`reconfigure`](Self::reconfigure).
    pub(super) fn apply_config(
        &mut self,
        new: Arc<Config>,
        tls_server: Option<Result<Arc<rustls::ServerConfig>, String>>,
    ) {
        // RTMPS listeners (bound at start) take the certificate read for this reload.
        if let (Some(tls), Some(_)) = (tls_server, &self.tls_server) {
            match tls {
                Ok(tls) => {
                    self.tls_server = Some(tls);
                    if self.index == 0 {
                        tracing::info!(cert = %new.rtmps.cert, "RTMPS certificate reloaded");
                    }
                }
                Err(error) if self.index == 0 => tracing::error!(
                    %error,
                    "RTMPS certificate not reloaded: new connections keep the running one"
                ),
                Err(_) => {}
            }
        }
        // Streams encode media once at the chunk size the worker started with.
        let chunk_size = self.session_config.chunk_size;
        self.session_config = session_config(&new, chunk_size);
        self.socket_options = socket_options(&new);
        self.hub.set_settings(hub_settings(&new, chunk_size));
        self.output_cap = output_cap(&new);
        let old = std::mem::replace(&mut self.config, new);
        // One line for the whole server: worker 0 names what did not change.
        let restart = restart_needed(&old, &self.config);
        if self.index == 0 && !restart.is_empty() {
            tracing::warn!(
                keys = %restart.join(", "),
                "configuration reloaded, but these changes need a restart to take effect"
            );
        }
        self.reconfigure(&old);
        tracing::info!(worker = self.index, "configuration reloaded");
    }

    /// The hook for owners with settings of their own: called on every worker after a
    /// reload has swapped `self.config` (the new one) for `old`. Recording applies its
    /// `[record]` settings to streams published from now on; the relay takes its new origins
    /// and push targets (`relay_reconfigure`; new host names are resolved then).
    fn reconfigure(&mut self, old: &Config) {
        if self.config.auth != old.auth {
            self.gate.reconfigure(&self.config);
        }
        if self.config.record != old.record {
            self.recording.set_settings((&self.config.record).into());
        }
        if self.config.relay != old.relay {
            self.relay_reconfigure(std::time::Instant::now());
        }
        // Read again whether or not its path changed (CA bundles are updated in place).
        self.relay.load_tls_client(&self.config.rtmps.ca_file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_keys_are_named_and_live_ones_are_not() {
        let old = Config::default();
        let mut new = old.clone();
        new.timeouts.idle_ms += 1;
        new.workers.max_connections += 1;
        new.streams.gop_cache = false;
        new.http.cors_allow_origin = "https://a.example".into();
        new.log.level = "debug".into();
        new.record.dir = "/var/rec".into();
        new.relay.origins = vec!["rtmp://origin".into()];
        assert!(restart_needed(&old, &new).is_empty());
        new.rtmp.listen = vec!["127.0.0.1:1".parse().unwrap()];
        new.workers.count = 3;
        new.http.hls_window += 1;
        assert_eq!(
            restart_needed(&old, &new),
            vec!["rtmp.listen", "http.hls*/http.dash", "workers.count"]
        );
    }
}
