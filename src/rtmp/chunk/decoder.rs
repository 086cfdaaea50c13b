//! Push decoder: chunks in, whole messages out.

use bytes::BytesMut;

use super::RawMessage;
use crate::rtmp::Limits;

/// A chunk-stream rule the peer broke. Every variant is connection-fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk on csid {csid} uses fmt {fmt} but the stream has no previous header")]
    NoPreviousChunkOnStream { csid: u32, fmt: u8 },
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge { size: u32, limit: u32 },
    #[error("peer opened more than {limit} chunk streams")]
    TooManyChunkStreams { limit: usize },
    #[error("chunk size {size} is outside 1..={max}")]
    InvalidChunkSize { size: u32, max: u32 },
}

/// Reassembles messages from an inbound chunk stream.
pub struct ChunkDecoder {
    _private: (),
}

impl ChunkDecoder {
    /// A decoder at the default chunk size (128), bounded by `limits`.
    pub fn new(limits: &Limits) -> Self {
        let _ = limits;
        todo!()
    }

    /// The inbound chunk size in force.
    pub fn chunk_size(&self) -> u32 {
        todo!()
    }

    /// Applies the peer's Set Chunk Size; call it as soon as that message is decoded.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        let _ = size;
        todo!()
    }

    /// Applies the peer's Abort Message: drops the partial message on `csid`.
    pub fn abort(&mut self, csid: u32) {
        let _ = csid;
        todo!()
    }

    /// Decodes at most one complete message from `buf`, consuming exactly the whole chunks it
    /// parsed. `Ok(None)` means more input is needed (never an error for short input).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        let _ = buf;
        todo!()
    }

    /// Total bytes consumed since the start, for acknowledgements.
    pub fn bytes_received(&self) -> u64 {
        todo!()
    }
}
