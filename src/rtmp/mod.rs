//! Sans-IO RTMP: bytes and `now` in; transmits and events out. Nothing in here touches a
//! socket, a clock, a thread or a random number generator: callers pass those in.

pub mod amf0;
pub mod amf3;
pub mod chunk;
pub mod command;
pub mod handshake;
pub mod message;
pub mod session;

/// Caps on what a peer can make us hold. Every size or count a peer controls is bounded here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (reassembled payload) accepted, in bytes.
    pub max_message_size: u32,
    /// Largest chunk size a peer may announce with Set Chunk Size (legal range is 1..=0x7FFF_FFFF).
    pub max_chunk_size: u32,
    /// Most chunk streams (csids) a peer may have in flight on one connection.
    pub max_chunk_streams: usize,
    /// Deepest nesting of AMF objects/arrays accepted.
    pub max_amf_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 16 * 1024 * 1024,
            max_chunk_size: 0x7FFF_FFFF,
            max_chunk_streams: 64,
            max_amf_depth: 32,
        }
    }
}
