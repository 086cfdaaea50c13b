//! Configuration: TOML with embedded defaults. Every limit the server enforces is here.
//!
//! `Config::default()` is what `cargo run --release` serves with no config file.
//!
//! Life of a configuration, as `main` drives it:
//! ```text
//! file text ──Config::from_toml_str──▶ Config ──CLI overrides──▶ Config ──validate──▶ shard::run
//!   (unknown keys and wrong types          (--listen, --workers)     (ranges, cores,
//!    are rejected here, with key + line)                              log filter)
//! ```
//! Each field's doc comment is the single source of its documentation: the section macro below
//! turns it into [`KeyDoc`] entries, which `--print-config` ([`Config::to_commented_toml`]) and
//! `docs/CONFIG.md` are generated from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

mod error;
mod source;
pub use error::ConfigError;
pub use source::ConfigSource;

/// One configuration key and its documentation, as `--print-config` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    /// The key's name inside its section, e.g. `max_connections`.
    pub name: &'static str,
    /// The field's doc comment, one line per `///` line (each may start with a space).
    pub doc: &'static str,
}

/// One `[section]` of the configuration and the documentation of its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionDoc {
    /// The TOML table name, e.g. `workers`.
    pub name: &'static str,
    /// The section struct's doc comment.
    pub doc: &'static str,
    /// Every key of the section, in declaration (and printing) order.
    pub keys: &'static [KeyDoc],
}

/// Declares a config section struct and, from the same doc comments, its [`SectionDoc`].
macro_rules! config_section {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident in $section:literal {
            $(
                $(#[doc = $doc:literal])*
                pub $field:ident : $ty:ty,
            )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: $ty,
            )*
        }

        impl $name {
            /// This section's table name and the documentation of every key, from the doc
            /// comments above.
            pub const DOC: SectionDoc = SectionDoc {
                name: $section,
                doc: concat!($($sdoc, "\n"),*),
                keys: &[$(KeyDoc {
                    name: stringify!($field),
                    doc: concat!($($doc, "\n"),*),
                }),*],
            };
        }
    };
}

mod auth;
mod cluster;
pub use auth::{AuthAppConfig, AuthConfig};
pub use cluster::{ClusterConfig, DirectoryKind, NodeRole};

/// The whole configuration. `Config::default()` is the embedded default configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[rtmp]`: listeners and protocol settings.
    pub rtmp: RtmpConfig,
    /// `[rtmps]`: RTMP over TLS listeners, certificate, and the relay's trusted CAs.
    pub rtmps: RtmpsConfig,
    /// `[http]`: HTTP delivery (HTTP-FLV, HLS, DASH) on the same workers.
    pub http: HttpConfig,
    /// `[workers]`: per-core workers and sockets.
    pub workers: WorkersConfig,
    /// `[streams]`: stream hub behaviour.
    pub streams: StreamsConfig,
    /// `[timeouts]`: every timeout, in milliseconds.
    pub timeouts: TimeoutsConfig,
    /// `[drain]`: how a draining server (SIGTERM) sends its clients away.
    pub drain: DrainConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
    /// `[relay]`: pull on demand from origins, push published streams onward.
    pub relay: RelayConfig,
    /// `[admin]`: the operators' listener (metrics).
    pub admin: AdminConfig,
    /// `[record]`: recording published streams to files.
    pub record: RecordConfig,
    /// `[auth]`: who may publish and play (IP rules, signed URLs, webhooks).
    pub auth: AuthConfig,
    /// `[cluster]`: the stream directory shared by origins and edges.
    pub cluster: ClusterConfig,
}

/// The smallest outbound chunk size accepted (the protocol's initial chunk size).
pub const MIN_CHUNK_SIZE: u32 = 128;
/// The largest outbound chunk size accepted: the largest message length the 24-bit header field
/// can carry; a bigger chunk could never be filled. (The protocol itself allows 2^31 - 1.)
pub const MAX_CHUNK_SIZE: u32 = 0xFF_FFFF;
/// The largest chunk size the protocol lets a peer announce.
pub const PROTOCOL_MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Most connections one worker may be configured to hold.
pub const MAX_CONNECTIONS_PER_WORKER: usize = 1_000_000;
/// How workers write to sockets (`workers.io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IoBackend {
    /// Readiness from epoll (mio), one `writev(2)` per socket.
    #[serde(rename = "epoll")]
    Epoll,
    /// Readiness from epoll, the plain-socket writes of each write pass in one io_uring
    /// submission.
    #[serde(rename = "io_uring")]
    IoUring,
}

impl IoBackend {
    /// The environment variable that overrides `workers.io`.
    pub const ENV: &'static str = "RTMP_EDGE_IO";

    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            IoBackend::Epoll => "epoll",
            IoBackend::IoUring => "io_uring",
        }
    }

    /// The backend a configuration's name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "epoll" => Some(IoBackend::Epoll),
            "io_uring" => Some(IoBackend::IoUring),
            _ => None,
        }
    }
}

/// Longest `workers.max_write_delay_ms` accepted: media held longer would make players
/// stutter.
pub const MAX_WRITE_DELAY_MS: u64 = 1_000;

/// Longest `workers.unwatched_read_ms` accepted: a longer wait would have the kernel's
/// receive buffer, not the interval, decide when a high-bitrate publisher is read.
pub const MAX_UNWATCHED_READ_MS: u64 = 1_000;

impl Config {
    /// How often publishers of unwatched streams are read, in ms (0: on arrival):
    /// `workers.unwatched_read_ms`, at most a quarter of `timeouts.message_ms` and
    /// `timeouts.idle_ms` (a polled publisher's message may wait unfinished, and its bytes
    /// unread, for an interval).
    pub fn unwatched_read_ms(&self) -> u64 {
        let t = &self.timeouts;
        self.workers
            .unwatched_read_ms
            .min(t.message_ms / 4)
            .min(t.idle_ms / 4)
    }
}

impl WorkersConfig {
    /// The player media latency budget in ms: `max_write_delay_ms`, or the earlier name
    /// `write_coalesce_ms` when a file still sets that.
    pub fn max_write_delay(&self) -> u64 {
        if self.write_coalesce_ms > 0 {
            self.write_coalesce_ms
        } else {
            self.max_write_delay_ms
        }
    }

    /// The budget of a worker as loaded as `heavy` says: on a heavily loaded one the larger of
    /// [`max_write_delay`](Self::max_write_delay) and `max_write_delay_busy_ms`, unless the
    /// budget is 0 (write at once, at every load).
    pub fn write_delay(&self, heavy: bool) -> u64 {
        let budget = self.max_write_delay();
        if heavy && budget > 0 {
            budget.max(self.max_write_delay_busy_ms)
        } else {
            budget
        }
    }
}

/// Most workers that may run: the bus addresses workers as bits of a `u64`
/// (`fanout::Stream::remote_workers`). `workers.count` and `workers.cores` are validated
/// against it, and one worker per available core stops at it.
pub const MAX_WORKERS: usize = 64;
/// The smallest per-player queue accepted: below this even one keyframe rarely fits.
pub const MIN_PLAYER_QUEUE_BYTES: usize = 64 * 1024;
/// The smallest `http.hls_max_segment_bytes` accepted: below it a few keyframes would trip it.
pub const MIN_SEGMENT_CAP_BYTES: usize = 1024 * 1024;
/// The smallest `record.queue_bytes` accepted: below it a few keyframes would fill it.
pub const MIN_RECORD_QUEUE_BYTES: usize = 1024 * 1024;

config_section! {
    /// RTMP listener and protocol settings.
    pub struct RtmpConfig in "rtmp" {
        /// Addresses to listen on; each worker binds each with SO_REUSEPORT.
        /// Must not be empty nor list an address twice.
        pub listen: Vec<SocketAddr>,
        /// Outbound chunk size announced to every peer and used for encode-once media.
        /// Range 128..=16777215: the protocol allows up to 2147483647, but no message
        /// (24-bit length) can fill a chunk bigger than 16777215.
        pub chunk_size: u32,
        /// Window Acknowledgement Size announced to peers. Must be > 0.
        pub window_ack_size: u32,
        /// Set Peer Bandwidth value sent to peers. Must be > 0.
        pub peer_bandwidth: u32,
        /// Largest inbound message, in bytes. Must be > 0.
        pub max_message_size: u32,
        /// Largest chunk size a peer may announce. Range 128..=2147483647.
        pub max_chunk_size: u32,
        /// Most chunk streams a peer may use at once. Must be > 0.
        pub max_chunk_streams: usize,
        /// Deepest AMF nesting accepted. Must be > 0.
        pub max_amf_depth: usize,
    }
}

config_section! {
    /// RTMPS: RTMP over TLS (rustls) on the same workers as plain RTMP, and the TLS client
    /// side of `rtmps://` relay origins and push targets.
    pub struct RtmpsConfig in "rtmps" {
        /// Addresses to listen on for RTMPS, e.g. `["0.0.0.0:1936", "[::]:1936"]`; each
        /// worker binds each with SO_REUSEPORT. Empty: RTMPS is off. Needs `cert` and `key`;
        /// must not list an address twice nor one that `rtmp.listen` or `http.listen` lists.
        pub listen: Vec<SocketAddr>,
        /// PEM file with the server's certificate chain (leaf first). Read and checked at
        /// startup (and by --check-config); required when `listen` is not empty.
        pub cert: String,
        /// PEM file with the private key of `cert` (PKCS#8, PKCS#1 or SEC1).
        pub key: String,
        /// PEM file of the CA certificates that `rtmps://` origins and push targets are
        /// verified against; empty: the system roots (Mozilla's set, built in).
        pub ca_file: String,
    }
}

config_section! {
    /// Per-core workers and sockets.
    pub struct WorkersConfig in "workers" {
        /// Number of workers; 0 means one per available core (at most 64). Range 0..=64.
        pub count: usize,
        /// Exact cores to pin workers to (overrides `count` when not empty), one worker each.
        /// Each must be a core this process may run on; at most 64 entries.
        pub cores: Vec<usize>,
        /// Pin each worker thread to a core.
        pub pin: bool,
        /// Connections per worker; the slab is preallocated to this size. Range 1..=1000000.
        pub max_connections: usize,
        /// Connections per client IP per worker; 0 disables the cap.
        pub max_connections_per_ip: usize,
        /// New connections admitted per client IP per second, per worker (the kernel spreads a
        /// client's connections over the workers, so a process admits up to this times the
        /// number of workers); past it a connection is closed at accept, and a warning is
        /// logged at most once a second per worker with the count refused. 0 disables the
        /// limit.
        pub max_new_connections_per_ip_per_s: u32,
        /// Connections accepted per listener per wake-up. Must be > 0.
        pub accept_budget: usize,
        /// Bytes read from one connection per wake-up before yielding to others. Must be > 0.
        pub read_budget_bytes: usize,
        /// Bytes written to one connection per wake-up before yielding to others. Must be > 0.
        pub write_budget_bytes: usize,
        /// SO_RCVBUF for accepted sockets; 0 keeps the kernel default.
        pub socket_recv_buffer: usize,
        /// SO_SNDBUF for accepted sockets; 0 keeps the kernel default.
        pub socket_send_buffer: usize,
        /// TCP_NODELAY on accepted sockets.
        pub tcp_nodelay: bool,
        /// Latency budget of player media, in ms: on a busy worker (working at least 10 % of
        /// the time), a player's media waits until this long after its last write, or until
        /// 64 KiB are queued, so it gets fewer, larger writes (less CPU per delivered byte,
        /// at up to this much added latency; on a heavily loaded worker up to
        /// `max_write_delay_busy_ms` instead). A player not written to for this long, a
        /// joining player's first media, and every player of a lightly loaded worker, are
        /// written at once. Push targets ride the hub as players and get the same budget.
        /// 0 writes at once at every load.
        pub max_write_delay_ms: u64,
        /// The earlier name of `max_write_delay_ms`, still read: when not 0 it is used instead
        /// of `max_write_delay_ms`. 0, once the way to write at once, now leaves
        /// `max_write_delay_ms` in charge: set that to 0 to write at once.
        pub write_coalesce_ms: u64,
        /// The latency budget of player media on a heavily loaded worker (busy at least half
        /// of a 100 ms tick, until a tick under a quarter), in ms, when larger than
        /// `max_write_delay_ms`: there each message already waits for write passes of several
        /// ms, and a budget longer than the spacing of a stream's messages (10-20 ms) is what
        /// merges them into fewer writes. Not used when the budget is 0 (`max_write_delay_ms`,
        /// or `write_coalesce_ms` where a file still sets that).
        /// Range 0..=1000.
        pub max_write_delay_busy_ms: u64,
        /// How often, in ms, a publisher whose stream nobody watches (no player on any worker,
        /// no push target, no HLS/DASH packaging) is read: its socket is taken off read
        /// readiness and read with the worker's other such publishers once per interval,
        /// which saves a wake-up, a read and a TCP ACK per message. Its GOP cache and
        /// recording lag by up to this much; a joining player still gets the cache at once,
        /// and the stream is read on arrival from the next interval on. 0 reads every
        /// publisher on arrival. Range
        /// 0..=1000; a quarter of `timeouts.message_ms` or of `timeouts.idle_ms` is used
        /// instead when shorter, so no publisher is closed for bytes it sent that waited.
        pub unwatched_read_ms: u64,
        /// How workers write to sockets: "io_uring" (the plain socket writes of each write pass
        /// in one submission; readiness still comes from epoll; measured 8-9 % less CPU per
        /// delivered byte) or "epoll" (one writev per socket).
        /// Where io_uring is unavailable (an old kernel, `kernel.io_uring_disabled`, a
        /// container's seccomp filter) the workers use epoll and say so in one log line. The
        /// environment variable `RTMP_EDGE_IO`, when set to either name, overrides this key.
        pub io: IoBackend,
    }
}

config_section! {
    /// Stream hub behaviour.
    pub struct StreamsConfig in "streams" {
        /// Keep metadata, sequence headers and the GOP since the last keyframe for fast start.
        pub gop_cache: bool,
        /// Most bytes one stream's GOP cache may hold; past it the cache is dropped until the
        /// next keyframe. Must be > 0.
        pub gop_cache_max_bytes: usize,
        /// A second publisher on a name in use takes over (true) or is rejected with BadName (false).
        pub publish_takeover: bool,
        /// A player of a stream that is not published waits for it (true) or is refused (false).
        pub wait_for_publisher: bool,
        /// Players stay subscribed when the publisher leaves and get the republished stream.
        pub keep_players_on_unpublish: bool,
        /// Bytes queued for one player before it starts losing frames up to the next keyframe.
        /// At least 65536.
        pub player_queue_bytes: usize,
        /// Largest sequence header or metadata message a publisher may send; a larger one
        /// closes the publisher. Headers reach every player whatever its queue holds. Must be > 0.
        pub max_header_bytes: usize,
    }
}

config_section! {
    /// Every timeout, in milliseconds. Each must be > 0.
    pub struct TimeoutsConfig in "timeouts" {
        /// The handshake must complete within this; so must each HTTP request head, from its
        /// first byte (and a kept-alive HTTP connection with no next request is closed after
        /// this long).
        pub handshake_ms: u64,
        /// An RTMP connection must be publishing or playing within this of its accept (after
        /// handshake, connect and publish/play); one still idle at it is closed. A player held
        /// for a stream not yet published counts as playing. HTTP connections are bounded by
        /// `handshake_ms` per request head instead; the relay's own upstream connections by
        /// `relay.origin_timeout_ms`.
        pub setup_ms: u64,
        /// An RTMP message the peer started (its first chunk, or part of it, arrived) must be
        /// complete within this; a peer that trickles or stalls mid-message is closed.
        pub message_ms: u64,
        /// A connection that sends nothing for this long is closed (publishers mid-message too).
        pub idle_ms: u64,
        /// A player whose queue stays over its limit, or that reads nothing, for this long is dropped.
        pub slow_player_ms: u64,
        /// On shutdown (SIGINT, a second SIGTERM, or the end of a drain), connections are given
        /// this long to flush before they are closed.
        pub shutdown_ms: u64,
        /// On SIGTERM the server drains: it stops accepting RTMP, answers /healthz with 503,
        /// asks every E-RTMP client that can reconnect to do so (spread over the first half
        /// of this time) and serves everyone normally until they leave. Whatever is still
        /// connected after this long is shut down (see `shutdown_ms`).
        pub drain_ms: u64,
    }
}

config_section! {
    /// How a draining server (SIGTERM) sends its clients away.
    pub struct DrainConfig in "drain" {
        /// The tcUrl sent in E-RTMP ReconnectRequests while draining, e.g.
        /// `rtmp://edge-2.example.com/live`; empty lets clients reconnect to the URL they
        /// used (a load balancer in front picks another server). When set it must be an
        /// rtmp:// or rtmps:// URL naming an app.
        pub redirect_url: String,
    }
}

config_section! {
    /// HTTP delivery on the same per-core workers: live HTTP-FLV at `/{app}/{stream}.flv` and
    /// HLS / LL-HLS at `/{app}/{stream}.m3u8`.
    pub struct HttpConfig in "http" {
        /// Serve HTTP at all.
        pub enabled: bool,
        /// Addresses to listen on; each worker binds each with SO_REUSEPORT.
        pub listen: Vec<SocketAddr>,
        /// Largest request head accepted, in bytes (431 past it, as for a head of more than 100
        /// header fields).
        pub max_request_bytes: usize,
        /// Access-Control-Allow-Origin sent with every response; empty sends none.
        pub cors_allow_origin: String,
        /// Package every published stream as HLS at `/{app}/{stream}.m3u8`.
        pub hls: bool,
        /// HLS segments are fMP4/CMAF (true) or MPEG-TS (false).
        pub hls_fmp4: bool,
        /// HLS target segment duration in ms; segments end at the first keyframe past it.
        pub hls_segment_ms: u32,
        /// LL-HLS part target duration in ms; 0 disables parts (plain HLS).
        pub hls_part_ms: u32,
        /// Completed segments kept in the playlist window (in memory, shared by all viewers).
        pub hls_window: usize,
        /// Longest an HLS/DASH segment may grow, in ms, when no keyframe comes to end it. Past
        /// it the segment is closed and media is dropped until the next video keyframe, which
        /// starts the next segment after a discontinuity (a warning names the stream). At least
        /// twice `hls_segment_ms`; the default leaves room for 10 s keyframe intervals at 24 fps.
        pub hls_max_segment_ms: u32,
        /// Most media bytes an HLS/DASH segment may hold; past it the segment is cut the same
        /// way (at a keyframe if one arrives there, else closed with media dropped until the
        /// next video keyframe). Bounds a stream's memory to roughly this times (window + 1) per
        /// rendition. At least 1 MiB.
        pub hls_max_segment_bytes: usize,
        /// Also package every stream for DASH at `/{app}/{stream}.mpd` (video-only and
        /// audio-only fMP4 with the same segment duration and window as HLS).
        pub dash: bool,
        /// Also write HLS segments and playlists under this directory from a writer thread, one
        /// directory per stream: DIR/app/stream/index.m3u8 and DIR/app/stream/seg-N.ts (the
        /// window only). App and stream names are percent-encoded there as in URLs (a leading
        /// `.` too, and a `/` inside the app). Empty keeps them in memory only.
        pub hls_dir: String,
        /// Keep a stream's directory in `hls_dir` when its publisher leaves (its playlist then
        /// ends with EXT-X-ENDLIST); false removes the stream's files at unpublish.
        pub hls_dir_keep: bool,
        /// Package a stream for HLS/DASH only once someone asks for it: the first HLS or DASH
        /// request (playlist, manifest or segment) starts the packagers from the stream's GOP
        /// cache (a playlist or manifest is answered when the first segment is complete);
        /// false packages every stream from its publish.
        /// Always false with `hls_dir` (files are written whether or not anyone asks).
        pub hls_on_demand: bool,
        /// A stream's packaging stops, and its window of segments is freed, after this many ms
        /// with no HTTP request for it; a stream whose publisher left keeps its final playlist
        /// this long after it left, however often it is asked for. The next request starts
        /// afresh.
        pub hls_idle_ms: u64,
    }
}

config_section! {
    /// Recording published streams to files, one file per publish, written by one writer
    /// thread (a slow disk never stalls a worker: media waiting past `queue_bytes` is dropped
    /// up to the next keyframe, with a warning).
    pub struct RecordConfig in "record" {
        /// Directory recordings are written under, as DIR/app/stream-YYYYMMDDTHHMMSSZ.flv (or
        /// .mp4; the publish's UTC start, then `-1`, `-2`… when that name is taken); empty:
        /// recording is off.
        /// Each publish (a republish too) starts a new file at its first keyframe, timestamps
        /// from 0. An app or stream name that cannot be a file name as it is (a `/` or `\`, a
        /// leading `.`, `..`, control or bidi characters, over 200 bytes) is not recorded, with
        /// a warning.
        pub dir: String,
        /// Apps whose streams are recorded; "*" records every app.
        pub apps: Vec<String>,
        /// "flv" (every tag as published) or "mp4" (fragmented MP4 from the HLS/DASH packager:
        /// fragments of about a second, appended as they complete, so the file plays while it
        /// is written; a codec change mid-stream continues in a new file).
        pub format: crate::record::RecordFormat,
        /// Most media bytes waiting for the writer, all workers together; past it a stream's
        /// media is dropped until its next keyframe. At least 1 MiB.
        pub queue_bytes: usize,
    }
}

config_section! {
    /// Logging.
    pub struct LogConfig in "log" {
        /// A tracing filter such as `info` or `rtmp_edge=debug`; RUST_LOG overrides it.
        pub level: String,
        /// `text` (one line per event, fields as `key=value`, colour only on a terminal) or
        /// `json` (one JSON object per line, with the connection envelope's fields under
        /// `span`). Needs a restart.
        pub format: String,
        /// At most this many warning/error lines per call site per 10 s; the rest are counted
        /// and reported once a second in one line per site (0: no limit). Needs a restart.
        pub repeat_limit: u32,
    }
}

config_section! {
    /// The operators' listener: Prometheus metrics at `/metrics` (names `rtmp_edge_*`, one
    /// `worker` label). On its own thread; not for the public internet.
    pub struct AdminConfig in "admin" {
        /// Address of the admin listener; empty turns it off. One that cannot be bound is
        /// logged as an error and the server runs without it. Needs a restart.
        pub listen: String,
        /// When set, requests need `Authorization: Bearer TOKEN`.
        pub token: String,
        /// Per-stream series (players per protocol, bitrate in, uptime; labelled by stream
        /// name, never by query or token). Needs a restart.
        pub stream_metrics: bool,
        /// With `stream_metrics`, series for at most this many streams (most players first),
        /// so the number of series stays bounded.
        pub stream_metrics_max: usize,
    }
}

config_section! {
    /// The edge relay: streams nobody publishes here are pulled on demand from `origins`
    /// (tried in an order fixed per stream by rendezvous hashing, failing over on errors),
    /// and streams published here are pushed to every matching `[[relay.push]]` target.
    pub struct RelayConfig in "relay" {
        /// Origins to pull from, e.g. `["rtmp://origin-a:1935", "rtmp://origin-b:1935"]`; a
        /// path (`rtmp://host/prefix`) goes before the app. Empty: never pull.
        pub origins: Vec<String>,
        /// Connect + play + first media, or a gap in a pulled stream's media, longer than this
        /// marks the origin down (backoff 1 s doubling to 30 s) and fails over to the next.
        pub origin_timeout_ms: u64,
        /// A pulled stream with no players for this long is closed (a player back before then
        /// starts from the cached GOP at once).
        pub pull_idle_ms: u64,
        /// Players of a pull that has had no media this long (every origin failing) are
        /// answered NetStream.Play.StreamNotFound (HTTP-FLV: the body ends).
        pub player_wait_ms: u64,
        /// Push targets, repeatable as `[[relay.push]]` tables with `app` (or `"*"`) and `url`
        /// (`rtmp://host[:port]/app`; the stream name and its query are appended). `url =
        /// "origins"` pushes each stream to one origin: the least-loaded live one of the
        /// cluster directory, else `relay.origins` in the stream's rendezvous order (the
        /// origin edges pull it from first), moving to the next at once when one fails.
        pub push: Vec<PushConfig>,
    }
}

/// One `[[relay.push]]` target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// Streams of this app are pushed (`"*"`: every app).
    pub app: String,
    /// Where: `rtmp://host[:port]/app[/...]`; each stream's name is appended. Or `"origins"`.
    pub url: String,
}

impl Config {
    /// Every section and key, with documentation, in printing order.
    pub const SECTIONS: [SectionDoc; 13] = [
        RtmpConfig::DOC,
        RtmpsConfig::DOC,
        HttpConfig::DOC,
        WorkersConfig::DOC,
        StreamsConfig::DOC,
        TimeoutsConfig::DOC,
        DrainConfig::DOC,
        RelayConfig::DOC,
        RecordConfig::DOC,
        AuthConfig::DOC,
        LogConfig::DOC,
        AdminConfig::DOC,
        ClusterConfig::DOC,
    ];

    /// Parses TOML text; missing keys take their defaults. Unknown keys and values of the wrong
    /// type are errors naming the key and line. Does not [`validate`](Self::validate): call it
    /// after applying any overrides.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|error| {
            let span = error.span();
            let (line, column) = match &span {
                Some(span) => {
                    let (line, column) = line_column(text, span.start);
                    (Some(line), Some(column))
                }
                None => (None, None),
            };
            ConfigError::Malformed {
                key: span.and_then(|span| key_at_offset(text, span.start)),
                line,
                column,
                message: error.message().trim_end().to_string(),
            }
        })
    }

    /// Reads and parses a TOML file, as [`from_toml_str`](Self::from_toml_str) does; the text
    /// comes back too, to point validation errors at their line.
    pub fn load(path: impl AsRef<Path>) -> Result<(Config, String), ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        Ok((Self::from_toml_str(&text)?, text))
    }

    /// Checks every value against the range this server accepts, and `workers.cores` against
    /// the cores this process may run on. Call once, after CLI overrides, before starting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with_cores(&available_cores())
    }

    /// [`validate`](Self::validate) against an explicit list of available core ids.
    pub fn validate_with_cores(&self, available: &[usize]) -> Result<(), ConfigError> {
        let rtmp = &self.rtmp;
        if rtmp.listen.is_empty() {
            return Err(ConfigError::MustNotBeEmpty { key: "rtmp.listen" });
        }
        for (i, addr) in rtmp.listen.iter().enumerate() {
            if rtmp.listen[..i].contains(addr) {
                return Err(ConfigError::DuplicateListenAddress {
                    key: "rtmp.listen",
                    addr: *addr,
                });
            }
        }
        in_range(
            "rtmp.chunk_size",
            rtmp.chunk_size.into(),
            MIN_CHUNK_SIZE.into(),
            MAX_CHUNK_SIZE.into(),
        )?;
        positive("rtmp.window_ack_size", rtmp.window_ack_size.into())?;
        positive("rtmp.peer_bandwidth", rtmp.peer_bandwidth.into())?;
        positive("rtmp.max_message_size", rtmp.max_message_size.into())?;
        in_range(
            "rtmp.max_chunk_size",
            rtmp.max_chunk_size.into(),
            MIN_CHUNK_SIZE.into(),
            PROTOCOL_MAX_CHUNK_SIZE.into(),
        )?;
        positive("rtmp.max_chunk_streams", as_u64(rtmp.max_chunk_streams))?;
        positive("rtmp.max_amf_depth", as_u64(rtmp.max_amf_depth))?;
        self.validate_rtmps()?;

        let workers = &self.workers;
        in_range(
            "workers.count",
            as_u64(workers.count),
            0,
            as_u64(MAX_WORKERS),
        )?;
        if workers.cores.len() > MAX_WORKERS {
            return Err(ConfigError::TooManyEntries {
                key: "workers.cores",
                len: workers.cores.len(),
                max: MAX_WORKERS,
            });
        }
        if let Some(&core) = workers.cores.iter().find(|c| !available.contains(c)) {
            return Err(ConfigError::CoreNotAvailable {
                key: "workers.cores",
                core,
                available: available.to_vec(),
            });
        }
        in_range(
            "workers.max_connections",
            as_u64(workers.max_connections),
            1,
            as_u64(MAX_CONNECTIONS_PER_WORKER),
        )?;
        positive("workers.accept_budget", as_u64(workers.accept_budget))?;
        positive(
            "workers.read_budget_bytes",
            as_u64(workers.read_budget_bytes),
        )?;
        positive(
            "workers.write_budget_bytes",
            as_u64(workers.write_budget_bytes),
        )?;
        in_range(
            "workers.max_write_delay_ms",
            workers.max_write_delay_ms,
            0,
            MAX_WRITE_DELAY_MS,
        )?;
        in_range(
            "workers.write_coalesce_ms",
            workers.write_coalesce_ms,
            0,
            MAX_WRITE_DELAY_MS,
        )?;
        in_range(
            "workers.max_write_delay_busy_ms",
            workers.max_write_delay_busy_ms,
            0,
            MAX_WRITE_DELAY_MS,
        )?;
        in_range(
            "workers.unwatched_read_ms",
            workers.unwatched_read_ms,
            0,
            MAX_UNWATCHED_READ_MS,
        )?;

        let streams = &self.streams;
        positive(
            "streams.gop_cache_max_bytes",
            as_u64(streams.gop_cache_max_bytes),
        )?;
        positive("streams.max_header_bytes", as_u64(streams.max_header_bytes))?;
        if streams.player_queue_bytes < MIN_PLAYER_QUEUE_BYTES {
            return Err(ConfigError::BelowMinimum {
                key: "streams.player_queue_bytes",
                value: as_u64(streams.player_queue_bytes),
                min: as_u64(MIN_PLAYER_QUEUE_BYTES),
            });
        }

        let http = &self.http;
        positive("http.max_request_bytes", as_u64(http.max_request_bytes))?;
        in_range(
            "http.hls_segment_ms",
            http.hls_segment_ms.into(),
            100,
            60_000,
        )?;
        in_range(
            "http.hls_part_ms",
            http.hls_part_ms.into(),
            0,
            (http.hls_segment_ms - 1).into(),
        )?;
        positive("http.hls_window", as_u64(http.hls_window))?;
        let min_cap_ms = 2 * u64::from(http.hls_segment_ms);
        if u64::from(http.hls_max_segment_ms) < min_cap_ms {
            return Err(ConfigError::BelowMinimum {
                key: "http.hls_max_segment_ms",
                value: http.hls_max_segment_ms.into(),
                min: min_cap_ms,
            });
        }
        if http.hls_max_segment_bytes < MIN_SEGMENT_CAP_BYTES {
            return Err(ConfigError::BelowMinimum {
                key: "http.hls_max_segment_bytes",
                value: as_u64(http.hls_max_segment_bytes),
                min: as_u64(MIN_SEGMENT_CAP_BYTES),
            });
        }
        let min_idle = 3 * u64::from(http.hls_segment_ms);
        if http.hls_idle_ms < min_idle {
            return Err(ConfigError::BelowMinimum {
                key: "http.hls_idle_ms",
                value: http.hls_idle_ms,
                min: min_idle,
            });
        }

        let record = &self.record;
        if record.queue_bytes < MIN_RECORD_QUEUE_BYTES {
            return Err(ConfigError::BelowMinimum {
                key: "record.queue_bytes",
                value: as_u64(record.queue_bytes),
                min: as_u64(MIN_RECORD_QUEUE_BYTES),
            });
        }
        if !record.dir.is_empty() && record.apps.is_empty() {
            return Err(ConfigError::MustNotBeEmpty { key: "record.apps" });
        }

        let timeouts = &self.timeouts;
        positive("timeouts.handshake_ms", timeouts.handshake_ms)?;
        positive("timeouts.idle_ms", timeouts.idle_ms)?;
        positive("timeouts.setup_ms", timeouts.setup_ms)?;
        positive("timeouts.message_ms", timeouts.message_ms)?;
        positive("timeouts.slow_player_ms", timeouts.slow_player_ms)?;
        positive("timeouts.shutdown_ms", timeouts.shutdown_ms)?;
        positive("timeouts.drain_ms", timeouts.drain_ms)?;

        let redirect = &self.drain.redirect_url;
        if !redirect.is_empty() {
            if let Err(reason) = crate::relay::PushUrl::parse(redirect) {
                return Err(ConfigError::NotUsable {
                    key: "drain.redirect_url",
                    value: redirect.clone(),
                    reason: reason.to_string(),
                });
            }
        }

        let relay = &self.relay;
        for (i, origin) in relay.origins.iter().enumerate() {
            let parsed =
                crate::relay::OriginUrl::parse(origin).map_err(|error| ConfigError::NotUsable {
                    key: "relay.origins",
                    value: origin.clone(),
                    reason: error.to_string(),
                })?;
            if relay.origins[..i].iter().any(|o| {
                crate::relay::OriginUrl::parse(o).is_ok_and(|o| o.to_string() == parsed.to_string())
            }) {
                return Err(ConfigError::NotUsable {
                    key: "relay.origins",
                    value: origin.clone(),
                    reason: "listed twice".into(),
                });
            }
        }
        positive("relay.origin_timeout_ms", relay.origin_timeout_ms)?;
        positive("relay.pull_idle_ms", relay.pull_idle_ms)?;
        positive("relay.player_wait_ms", relay.player_wait_ms)?;
        for push in &relay.push {
            if push.app.is_empty() || push.app.contains('/') {
                return Err(ConfigError::NotUsable {
                    key: "relay.push",
                    value: push.app.clone(),
                    reason: "`app` must be an app name or \"*\"".into(),
                });
            }
            if push.url == crate::relay::PUSH_TO_ORIGINS {
                if relay.origins.is_empty() && self.cluster.directory != DirectoryKind::Redis {
                    return Err(ConfigError::NotUsable {
                        key: "relay.push",
                        value: push.url.clone(),
                        reason: "pushing to the origins needs relay.origins or a cluster directory"
                            .into(),
                    });
                }
                continue;
            }
            crate::relay::PushUrl::parse(&push.url).map_err(|error| ConfigError::NotUsable {
                key: "relay.push",
                value: push.url.clone(),
                reason: error.to_string(),
            })?;
        }

        if !self.admin.listen.is_empty() && self.admin.listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::NotUsable {
                key: "admin.listen",
                value: self.admin.listen.clone(),
                reason: "must be an address such as 127.0.0.1:9090, or empty".into(),
            });
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::NotUsable {
                key: "log.format",
                value: self.log.format.clone(),
                reason: "must be \"text\" or \"json\"".into(),
            });
        }
        if let Err((key, value, reason)) = crate::auth::Policy::new(&self.auth) {
            return Err(ConfigError::Invalid { key, value, reason });
        }
        positive("auth.webhook_timeout_ms", self.auth.webhook_timeout_ms)?;
        in_range(
            "auth.webhook_threads",
            as_u64(self.auth.webhook_threads),
            1,
            64,
        )?;
        positive("auth.http_session_ms", self.auth.http_session_ms)?;
        self.cluster.validate()?;

        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::InvalidLogFilter {
                key: "log.level",
                value: self.log.level.clone(),
                reason: error.to_string(),
            });
        }
        Ok(())
    }

    /// `[rtmps]`: listeners that need a certificate have one that loads, and a CA file, when
    /// set, holds certificates. (The files are read here, so --check-config reads them too.)
    fn validate_rtmps(&self) -> Result<(), ConfigError> {
        let rtmps = &self.rtmps;
        for (i, addr) in rtmps.listen.iter().enumerate() {
            if rtmps.listen[..i].contains(addr) {
                return Err(ConfigError::DuplicateListenAddress {
                    key: "rtmps.listen",
                    addr: *addr,
                });
            }
            // Port 0 is a fresh port per listener, never shared.
            let http = self.http.enabled.then_some(&self.http.listen);
            let other = if addr.port() == 0 {
                None
            } else if self.rtmp.listen.contains(addr) {
                Some("rtmp.listen")
            } else if http.is_some_and(|h| h.contains(addr)) {
                Some("http.listen")
            } else {
                None
            };
            if let Some(other) = other {
                return Err(ConfigError::ListenAddressInUse {
                    key: "rtmps.listen",
                    addr: *addr,
                    other,
                });
            }
        }
        if !rtmps.listen.is_empty() {
            for (key, value) in [("rtmps.cert", &rtmps.cert), ("rtmps.key", &rtmps.key)] {
                if value.is_empty() {
                    return Err(ConfigError::RequiredBy {
                        key,
                        by: "rtmps.listen",
                    });
                }
            }
            let tls_error = |key, error: crate::net::tls::TlsFileError| ConfigError::BadTlsFile {
                key,
                reason: error.to_string(),
            };
            use crate::net::tls;
            tls::load_certs(&rtmps.cert).map_err(|e| tls_error("rtmps.cert", e))?;
            tls::load_key(&rtmps.key).map_err(|e| tls_error("rtmps.key", e))?;
            tls::server_config(&rtmps.cert, &rtmps.key).map_err(|e| tls_error("rtmps.key", e))?;
        }
        if !rtmps.ca_file.is_empty() {
            crate::net::tls::client_config(&rtmps.ca_file).map_err(|e| {
                ConfigError::BadTlsFile {
                    key: "rtmps.ca_file",
                    reason: e.to_string(),
                }
            })?;
        }
        Ok(())
    }

    /// The workers to start, one entry each: the core id it is pinned to, or `None` when
    /// `workers.pin` is false. `workers.cores`, when not empty, gives exactly one worker per
    /// listed core; otherwise `workers.count` workers (0: one per available core) are spread
    /// round-robin over the available cores.
    pub fn worker_cores(&self) -> Vec<Option<usize>> {
        self.worker_cores_with(&available_cores())
    }

    /// [`worker_cores`](Self::worker_cores) against an explicit list of available core ids.
    pub fn worker_cores_with(&self, available: &[usize]) -> Vec<Option<usize>> {
        let workers = &self.workers;
        let cores: Vec<usize> = if !workers.cores.is_empty() {
            workers.cores.clone()
        } else if available.is_empty() {
            // Nothing known to pin to: run the requested number of workers (at least one) unpinned.
            return vec![None; workers.count.max(1)];
        } else {
            let count = if workers.count == 0 {
                available.len().min(MAX_WORKERS)
            } else {
                workers.count
            };
            available.iter().copied().cycle().take(count).collect()
        };
        cores
            .into_iter()
            .map(|core| workers.pin.then_some(core))
            .collect()
    }

    /// The configuration as TOML, with the documentation of every key as a comment above it
    /// (and the default, where the value differs from it). This is what `--print-config`
    /// prints; [`from_toml_str`](Self::from_toml_str) parses it back to an equal `Config`.
    pub fn to_commented_toml(&self) -> String {
        let defaults = Config::default();
        let mut out = String::from(
            "# rtmp-edge configuration: the effective values.\n\
             # Every key is optional; a key left out takes the default printed by\n\
             # `rtmp-edge --print-config` without --config.\n",
        );
        for section in Self::SECTIONS {
            let current = section_table(self, section.name);
            let default = section_table(&defaults, section.name);
            out.push('\n');
            push_comment(&mut out, section.doc);
            out.push_str(&format!("[{}]\n", section.name));
            for key in section.keys {
                let Some(value) = current.get(key.name) else {
                    continue;
                };
                push_comment(&mut out, key.doc);
                if let Some(default) = default.get(key.name).filter(|d| *d != value) {
                    out.push_str(&format!("# Default: {default}\n"));
                }
                out.push_str(&format!("{} = {value}\n", key.name));
            }
        }
        out
    }
}

/// The core ids this process may run on: its affinity mask where the platform reports one,
/// else `0..available_parallelism`.
pub fn available_cores() -> Vec<usize> {
    match core_affinity::get_core_ids() {
        Some(ids) if !ids.is_empty() => ids.into_iter().map(|core| core.id).collect(),
        _ => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// Where `key` (a path like `workers.count`) is set in `text`, as 1-based (line, column) of its
/// value, if the text sets it. Lets callers point at the line of a value that fails validation.
pub fn key_position(text: &str, key: &str) -> Option<(usize, usize)> {
    let (section, name) = key.split_once('.')?;
    let doc: BTreeMap<Spanned<String>, SpannedSection> = toml::from_str(text).ok()?;
    let (_, keys) = doc.iter().find(|(s, _)| s.get_ref() == section)?;
    let (_, value) = keys.iter().find(|(k, _)| k.get_ref() == name)?;
    Some(line_column(text, value.span().start))
}

/// A section's keys and values, with the span of each in the source text.
type SpannedSection = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// The key path (`section` or `section.key`) whose key or value covers byte `offset` of `text`.
fn key_at_offset(text: &str, offset: usize) -> Option<String> {
    let covers = |span: std::ops::Range<usize>| span.contains(&offset) || span.start == offset;
    if let Ok(doc) = toml::from_str::<BTreeMap<Spanned<String>, SpannedSection>>(text) {
        for (section, keys) in &doc {
            for (key, value) in keys {
                if covers(key.span()) || covers(value.span()) {
                    return Some(format!("{}.{}", section.get_ref(), key.get_ref()));
                }
            }
        }
        return doc
            .keys()
            .find(|section| covers(section.span()))
            .map(|section| section.get_ref().clone());
    }
    // Some top-level value is not a table (`rtmp = 5`): only top-level keys can be named.
    let doc: BTreeMap<Spanned<String>, Spanned<toml::Value>> = toml::from_str(text).ok()?;
    doc.iter()
        .find(|(key, value)| covers(key.span()) || covers(value.span()))
        .map(|(key, _)| key.get_ref().clone())
}

/// 1-based line and column (in bytes) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    (line, before.len() - line_start + 1)
}

/// One section of `config` as a TOML table (empty if the name is unknown).
fn section_table(config: &Config, name: &str) -> toml::Table {
    // Serializing these plain structs cannot fail: no maps with non-string keys, no `None`s.
    let mut root = toml::Table::try_from(config).expect("Config serializes to a TOML table");
    match root.remove(name) {
        Some(toml::Value::Table(table)) => table,
        _ => toml::Table::new(),
    }
}

/// Appends each line of a doc comment as a `# ` comment line.
fn push_comment(out: &mut String, doc: &str) {
    for line in doc.lines() {
        let line = line.strip_prefix(' ').unwrap_or(line).trim_end();
        out.push_str(if line.is_empty() { "#" } else { "# " });
        out.push_str(line);
        out.push('\n');
    }
}

fn positive(key: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::MustBePositive { key });
    }
    Ok(())
}

fn in_range(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if !(min..=max).contains(&value) {
        return Err(ConfigError::OutOfRange {
            key,
            value,
            min,
            max,
        });
    }
    Ok(())
}

fn as_u64(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: vec![
                "0.0.0.0:8080".parse().expect("literal address"),
                "[::]:8080".parse().expect("literal address"),
            ],
            max_request_bytes: 8192,
            cors_allow_origin: "*".to_string(),
            hls: true,
            hls_fmp4: false,
            hls_segment_ms: 2000,
            hls_part_ms: 500,
            hls_window: 6,
            hls_max_segment_ms: 20_000,
            hls_max_segment_bytes: 64 * 1024 * 1024,
            dash: true,
            hls_dir: String::new(),
            hls_dir_keep: false,
            hls_on_demand: true,
            hls_idle_ms: 30_000,
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

// Written out like the other sections' defaults (the section macro derives no Default).
#[allow(clippy::derivable_impls)]
impl Default for RtmpsConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            cert: String::new(),
            key: String::new(),
            ca_file: String::new(),
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
            max_new_connections_per_ip_per_s: 0,
            accept_budget: 64,
            read_budget_bytes: 256 * 1024,
            write_budget_bytes: 1024 * 1024,
            socket_recv_buffer: 0,
            socket_send_buffer: 0,
            tcp_nodelay: true,
            max_write_delay_ms: 5,
            write_coalesce_ms: 0,
            max_write_delay_busy_ms: 30,
            unwatched_read_ms: 50,
            io: IoBackend::IoUring,
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
            max_header_bytes: 256 * 1024,
        }
    }
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            handshake_ms: 10_000,
            setup_ms: 10_000,
            message_ms: 10_000,
            idle_ms: 30_000,
            slow_player_ms: 10_000,
            shutdown_ms: 3_000,
            drain_ms: 30_000,
        }
    }
}

// Written out like the other sections' defaults (the section macro derives no Default).
#[allow(clippy::derivable_impls)]
impl Default for DrainConfig {
    fn default() -> Self {
        Self {
            redirect_url: String::new(),
        }
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            origins: Vec::new(),
            origin_timeout_ms: 3_000,
            pull_idle_ms: 10_000,
            player_wait_ms: 10_000,
            push: Vec::new(),
        }
    }
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            dir: String::new(),
            apps: vec!["*".to_string()],
            format: crate::record::RecordFormat::Flv,
            queue_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9090".into(),
            token: String::new(),
            stream_metrics: false,
            stream_metrics_max: 100,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
            format: "text".into(),
            repeat_limit: 20,
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

#[cfg(test)]
mod tests;
