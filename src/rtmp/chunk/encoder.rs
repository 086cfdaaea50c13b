//! Outbound chunking: [`ChunkEncoder`] (header compression, for control and commands) and
//! [`EncodedMessage`] (encode once per stream, share among players).

use bytes::{Bytes, BytesMut};

/// Chunks outbound messages, compressing headers against the previous message on each csid.
pub struct ChunkEncoder {
    _private: (),
}

impl ChunkEncoder {
    /// An encoder at the default chunk size (128).
    pub fn new() -> Self {
        todo!()
    }

    /// The outbound chunk size in force.
    pub fn chunk_size(&self) -> u32 {
        todo!()
    }

    /// Changes the outbound chunk size. Call right after encoding the Set Chunk Size message.
    pub fn set_chunk_size(&mut self, size: u32) {
        let _ = size;
        todo!()
    }

    /// Appends the chunked form of one message to `out`.
    pub fn encode(
        &mut self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
        out: &mut BytesMut,
    ) {
        let _ = (csid, timestamp, type_id, stream_id, payload, out);
        todo!()
    }
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// One message in chunked wire form, built once and cloned (refcounts only) into every
/// player's queue: a fmt 0 header, then payload slices separated by fmt 3 headers.
#[derive(Clone, Debug)]
pub struct EncodedMessage {
    _private: (),
}

impl EncodedMessage {
    /// Encodes `payload` as one message with a fmt 0 first chunk and fmt 3 continuations.
    pub fn new(
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: Bytes,
        chunk_size: u32,
    ) -> Self {
        let _ = (csid, timestamp, type_id, stream_id, payload, chunk_size);
        todo!()
    }

    /// The same message for another message stream id: new headers, same payload.
    pub fn with_stream_id(&self, stream_id: u32) -> Self {
        let _ = stream_id;
        todo!()
    }

    /// Bytes on the wire.
    pub fn wire_len(&self) -> usize {
        todo!()
    }

    /// Calls `f` with each wire slice in order, skipping the first `offset` bytes (for resuming
    /// after a partial write). Stops early when `f` returns false.
    pub fn for_each_slice<'a>(&'a self, offset: usize, f: impl FnMut(&'a [u8]) -> bool) {
        let _ = (offset, f);
        todo!()
    }

    /// Appends the wire form to `out` (a copy: for tests and non-shared paths).
    pub fn write_to(&self, out: &mut BytesMut) {
        let _ = out;
        todo!()
    }
}
