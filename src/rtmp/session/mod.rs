//! RTMP sessions as sans-IO state machines, server and client roles.
//!
//! Call order, for both roles:
//! 1. `handle_input(&mut buf)` with the bytes read from the socket (it consumes what it used);
//! 2. drain `poll_event()` and act on each event (answer requests with `accept_*`/`reject_*`);
//! 3. drain `poll_transmit()` and write those bytes, in order, before any media for this peer.
//!
//! Chunk stream ids are split between the session and the fan-out so that encode-once media
//! (always fmt 0) never breaks the session's header compression: see [`csid`].

pub mod client;
mod link;
pub mod payload;
pub mod server;

pub use client::{ClientConfig, ClientEvent, ClientSession};
pub use server::{ServerConfig, ServerEvent, ServerSession};

use crate::rtmp::amf0::AmfError;
use crate::rtmp::chunk::ChunkError;
use crate::rtmp::handshake::HandshakeError;
use crate::rtmp::message::MessageError;

/// Chunk stream ids by owner.
pub mod csid {
    /// Protocol control and user control (session).
    pub const CONTROL: u32 = 2;
    /// Commands and their answers (session).
    pub const COMMAND: u32 = 3;
    /// Session-generated data messages such as |RtmpSampleAccess (session).
    pub const SESSION_DATA: u32 = 5;
    /// Shared media, encoded once per stream with fmt 0 headers only (fan-out).
    pub const VIDEO: u32 = 6;
    pub const AUDIO: u32 = 7;
    pub const DATA: u32 = 8;
}

/// How a publisher asked to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishMode {
    Live,
    Record,
    Append,
}

/// Why a session ended. Every variant is fatal for the connection and is logged as the
/// close reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("control message: {0}")]
    Message(#[from] MessageError),
    #[error("AMF: {0}")]
    Amf(#[from] AmfError),
    #[error("protocol violation: {0}")]
    Protocol(String),
}

/// Splits `name?query` into `("name", "query")`; the query is empty when there is none.
/// Used for publish/play names and for apps such as `live?token=x`.
pub fn split_query(name: &str) -> (&str, &str) {
    match name.split_once('?') {
        Some((n, q)) => (n, q),
        None => (name, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::split_query;

    #[test]
    fn splits_a_name_from_its_query() {
        assert_eq!(split_query("key?token=1&x=2"), ("key", "token=1&x=2"));
        assert_eq!(split_query("key"), ("key", ""));
        assert_eq!(split_query("?a"), ("", "a"));
    }
}
