//! The RTMP chunk stream: basic/message headers, a push decoder that reassembles messages,
//! an encoder with header compression for control traffic, and [`EncodedMessage`], the
//! encode-once wire form shared by every player of a stream.

pub mod blocks;
pub mod decoder;
pub mod encoder;
pub mod header;

use bytes::Bytes;

pub use decoder::{ChunkDecoder, ChunkError};
pub use encoder::{ChunkEncoder, EncodedMessage, Spare};

/// Chunk size every RTMP connection starts with, in both directions.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// A complete message reassembled from its chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMessage {
    /// Chunk stream it arrived on.
    pub csid: u32,
    /// Absolute timestamp in milliseconds (32-bit, wrapping).
    pub timestamp: u32,
    /// Message type id (see [`crate::rtmp::message::type_id`]).
    pub type_id: u8,
    /// Message stream id (little-endian on the wire).
    pub stream_id: u32,
    /// The payload, assembled once.
    pub payload: Bytes,
}
