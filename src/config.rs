//! Configuration: TOML with embedded defaults. Every limit the server enforces is here.
//!
//! `Config::default()` is what `cargo run --release` serves with no config file.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub rtmp: RtmpConfig,
    pub workers: WorkersConfig,
    pub streams: StreamsConfig,
    pub timeouts: TimeoutsConfig,
    pub log: LogConfig,
}

/// RTMP listener and protocol settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConfig {
    /// Addresses to listen on; each worker binds each with SO_REUSEPORT.
    pub listen: Vec<SocketAddr>,
    /// Outbound chunk size announced to every peer and used for encode-once media.
    pub chunk_size: u32,
    /// Window Acknowledgement Size announced to peers.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth value sent to peers.
    pub peer_bandwidth: u32,
    /// Largest inbound message, in bytes.
    pub max_message_size: u32,
    /// Largest chunk size a peer may announce.
    pub max_chunk_size: u32,
    /// Most chunk streams a peer may use at once.
    pub max_chunk_streams: usize,
    /// Deepest AMF nesting accepted.
    pub max_amf_depth: usize,
}

/// Per-core workers and sockets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// Number of workers; 0 means one per available core.
    pub count: usize,
    /// Exact cores to pin workers to (overrides `count` when not empty).
    pub cores: Vec<usize>,
    /// Pin each worker thread to a core.
    pub pin: bool,
    /// Connections per worker; the slab is preallocated to this size.
    pub max_connections: usize,
    /// Connections per client IP per worker; 0 disables the cap.
    pub max_connections_per_ip: usize,
    /// Connections accepted per listener per wake-up.
    pub accept_budget: usize,
    /// Bytes read from one connection per wake-up before yielding to others.
    pub read_budget_bytes: usize,
    /// Bytes written to one connection per wake-up before yielding to others.
    pub write_budget_bytes: usize,
    /// SO_RCVBUF for accepted sockets; 0 keeps the kernel default.
    pub socket_recv_buffer: usize,
    /// SO_SNDBUF for accepted sockets; 0 keeps the kernel default.
    pub socket_send_buffer: usize,
    /// TCP_NODELAY on accepted sockets.
    pub tcp_nodelay: bool,
}

/// Stream hub behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamsConfig {
    /// Keep metadata, sequence headers and the GOP since the last keyframe for fast start.
    pub gop_cache: bool,
    /// Most bytes one stream's GOP cache may hold; past it the cache is dropped until the next keyframe.
    pub gop_cache_max_bytes: usize,
    /// A second publisher on a name in use takes over (true) or is rejected with BadName (false).
    pub publish_takeover: bool,
    /// A player of a stream that is not published waits for it (true) or is refused (false).
    pub wait_for_publisher: bool,
    /// Players stay subscribed when the publisher leaves and get the republished stream.
    pub keep_players_on_unpublish: bool,
    /// Bytes queued for one player before it starts losing frames up to the next keyframe.
    pub player_queue_bytes: usize,
}

/// Every timeout, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// The handshake must complete within this.
    pub handshake_ms: u64,
    /// A connection that sends nothing for this long is closed (publishers mid-message too).
    pub idle_ms: u64,
    /// A player whose queue stays over its limit, or that reads nothing, for this long is dropped.
    pub slow_player_ms: u64,
    /// On SIGINT/SIGTERM, connections are given this long to flush before they are closed.
    pub shutdown_ms: u64,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `rtmp_edge=debug`; RUST_LOG overrides it.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rtmp: RtmpConfig::default(),
            workers: WorkersConfig::default(),
            streams: StreamsConfig::default(),
            timeouts: TimeoutsConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for RtmpConfig {
    fn default() -> Self {
        let limits = crate::rtmp::Limits::default();
        Self {
            listen: vec![
                "0.0.0.0:1935".parse().expect("literal address"),
                "[::]:1935".parse().expect("literal address"),
            ],
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            max_message_size: limits.max_message_size,
            max_chunk_size: limits.max_chunk_size,
            max_chunk_streams: limits.max_chunk_streams,
            max_amf_depth: limits.max_amf_depth,
        }
    }
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            count: 0,
            cores: Vec::new(),
            pin: true,
            max_connections: 16_384,
            max_connections_per_ip: 0,
            accept_budget: 64,
            read_budget_bytes: 256 * 1024,
            write_budget_bytes: 1024 * 1024,
            socket_recv_buffer: 0,
            socket_send_buffer: 0,
            tcp_nodelay: true,
        }
    }
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self {
            gop_cache: true,
            gop_cache_max_bytes: 16 * 1024 * 1024,
            publish_takeover: false,
            wait_for_publisher: true,
            keep_players_on_unpublish: true,
            player_queue_bytes: 2 * 1024 * 1024,
        }
    }
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            handshake_ms: 10_000,
            idle_ms: 30_000,
            slow_player_ms: 10_000,
            shutdown_ms: 3_000,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
        }
    }
}

impl RtmpConfig {
    /// The protocol limits these settings describe.
    pub fn limits(&self) -> crate::rtmp::Limits {
        crate::rtmp::Limits {
            max_message_size: self.max_message_size,
            max_chunk_size: self.max_chunk_size,
            max_chunk_streams: self.max_chunk_streams,
            max_amf_depth: self.max_amf_depth,
        }
    }
}

impl Config {
    /// The workers to start and the core each is pinned to (`None`: not pinned).
    pub fn worker_cores(&self) -> Vec<Option<usize>> {
        let w = &self.workers;
        let available: Vec<usize> = core_affinity::get_core_ids()
            .map(|ids| ids.into_iter().map(|c| c.id).collect())
            .unwrap_or_default();
        let cores: Vec<usize> = if !w.cores.is_empty() {
            w.cores.clone()
        } else {
            let count = if w.count == 0 {
                available.len().max(1)
            } else {
                w.count
            };
            (0..count)
                .map(|i| {
                    available
                        .get(i % available.len().max(1))
                        .copied()
                        .unwrap_or(i)
                })
                .collect()
        };
        cores
            .into_iter()
            .map(|c| if w.pin { Some(c) } else { None })
            .collect()
    }
}
