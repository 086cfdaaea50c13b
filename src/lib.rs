//! rtmp-edge: a per-core RTMP edge server.
//!
//! Module map (sans-IO first, IO last):
//! - [`rtmp`]: the sans-IO RTMP protocol core: handshake, chunk codec, AMF0/AMF3,
//!   typed messages, commands, and the server/client session state machines.
//! - [`media`]: FLV tags and codec headers (AVC, HEVC, AV1, VP9, AAC, Opus, Enhanced RTMP).
//! - [`fanout`]: per-core live streams, sans-IO: the stream [`fanout::Hub`] (inputs with a
//!   `Door`, `Action`s out), encode-once packets, players, GOP cache, bounded output queues.
//! - [`relay`]: the sans-IO policy for the (not yet wired) edge relay: origin order, health and
//!   backoff, pull lifecycle, push targets.
//! - [`http`]: sans-IO HTTP/1.1 request heads, routes and response heads.
//! - [`package`]: sans-IO HLS/DASH packaging: MPEG-TS, CMAF, segmenter, playlists, MPD.
//! - [`record`]: recording streams to FLV or fMP4 files: sans-IO file bytes and names, the
//!   workers' hand-off and the writer thread.
//! - [`auth`]: authorisation: IP rules and signed URLs (sans-IO, in the loop) and the webhook
//!   pool (threads off the loops).
//! - [`config`]: TOML configuration with embedded defaults.
//! - [`logging`]: how log lines render fields (client text escaped, never raw).
//! - [`net`]: the only code that calls accept/read/write.
//! - [`shard`]: one event loop per core: Poll, the connection slab, timers, the cross-core
//!   bus; it applies the hub's actions, serves HTTP and drives HLS/DASH `Packaging`.
//!
//! Call order for a session (see [`rtmp::session`]): feed bytes with `handle_input`, then drain
//! `poll_event` and `poll_transmit`; answer requests with `accept_*`/`reject_*`. For the hub
//! (see [`fanout::Hub`]): call an input with the worker's `Door`, then drain `poll_action`.
// Two audited exceptions: `shard::memory` hands free heap pages back to the OS, and
// `net::recv_into_spare` reads from a socket into a buffer's spare capacity.
#![deny(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod fanout;
pub mod http;
pub mod logging;
pub mod media;
pub mod net;
pub mod package;
pub mod record;
pub mod relay;
pub mod rtmp;
pub mod shard;
