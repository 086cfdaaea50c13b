//! Outbound chunking: [`ChunkEncoder`] (header compression, for control and commands) and
//! [`EncodedMessage`] (encode once per stream, share among players).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::header::{
    write_chunk_header, EXTENDED_TIMESTAMP_MARKER, MAX_CSID, MAX_FMT3_HEADER_LEN, MAX_HEADER_LEN,
    MIN_CSID,
};
use super::{RawMessage, DEFAULT_CHUNK_SIZE};
use crate::rtmp::chunk::decoder::MAX_PROTOCOL_CHUNK_SIZE;

/// What the encoder remembers about the last message sent on a csid.
#[derive(Clone, Copy, Debug)]
struct Prev {
    timestamp: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The delta a fmt 3 new message would repeat; `None` after a fmt 0 header (receivers
    /// disagree on what a fmt 3 after fmt 0 means, so we never send one).
    delta: Option<u32>,
}

/// Chunks outbound messages, compressing headers against the previous message on each csid.
///
/// Header choice per message, against the previous message on the same csid: fmt 0 for the
/// first message, a new message stream id or a timestamp that went backwards; fmt 1 when the
/// length or type changed; fmt 3 when the timestamp delta repeats the previous one (set by a
/// fmt 1/2 header); fmt 2 otherwise. Timestamps and deltas ≥ 0xFFFFFF use the extended
/// timestamp field, repeated on every fmt 3 chunk of the message (as ffmpeg and librtmp
/// expect).
///
/// Use it for control and command messages on the session's own connection; media fanned out
/// to many players uses [`EncodedMessage`] on a csid this encoder does not use.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    small: [Option<Prev>; 64],
    large: Vec<(u32, Option<Prev>)>,
}

impl ChunkEncoder {
    /// An encoder at the default chunk size (128).
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            small: [None; 64],
            large: Vec::new(),
        }
    }

    /// The outbound chunk size in force.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Changes the outbound chunk size. Call right after encoding the Set Chunk Size message.
    /// `size` must be in 1..=0x7FFF_FFFF (debug-asserted; clamped into range otherwise).
    pub fn set_chunk_size(&mut self, size: u32) {
        debug_assert!(
            (1..=MAX_PROTOCOL_CHUNK_SIZE).contains(&size),
            "chunk size {size} out of range"
        );
        self.chunk_size = size.clamp(1, MAX_PROTOCOL_CHUNK_SIZE);
    }

    /// Appends the chunked form of one message to `out`.
    ///
    /// `csid` must be in 2..=65599 and `payload` at most 0xFF_FFFF bytes (debug-asserted).
    pub fn encode(
        &mut self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
        out: &mut BytesMut,
    ) {
        debug_assert!((MIN_CSID..=MAX_CSID).contains(&csid), "csid {csid}");
        debug_assert!(
            payload.len() <= 0xFF_FFFF,
            "payload of {} bytes",
            payload.len()
        );
        let csid = csid.clamp(MIN_CSID, MAX_CSID);
        let length = payload.len() as u32;
        let slot = self.slot(csid);
        let (fmt, field) = match *slot {
            Some(p) if p.stream_id == stream_id && timestamp >= p.timestamp => {
                let delta = timestamp - p.timestamp;
                if p.length != length || p.type_id != type_id {
                    (1, delta)
                } else if p.delta == Some(delta) {
                    (3, delta)
                } else {
                    (2, delta)
                }
            }
            _ => (0, timestamp),
        };
        *slot = Some(Prev {
            timestamp,
            length,
            type_id,
            stream_id,
            delta: (fmt != 0).then_some(field),
        });

        let mut hdr = [0u8; MAX_HEADER_LEN];
        let n = write_chunk_header(&mut hdr, fmt, csid, field, length, type_id, stream_id);
        let mut hdr3 = [0u8; MAX_FMT3_HEADER_LEN];
        let n3 = write_chunk_header(&mut hdr3, 3, csid, field, 0, 0, 0);
        let cs = self.chunk_size as usize;
        out.reserve(wire_len(n, n3, payload.len(), cs));
        out.extend_from_slice(&hdr[..n]);
        let mut chunks = payload.chunks(cs);
        if let Some(first) = chunks.next() {
            out.extend_from_slice(first);
        }
        for chunk in chunks {
            out.extend_from_slice(&hdr3[..n3]);
            out.extend_from_slice(chunk);
        }
    }

    /// Forgets the header state of every csid, so the next message on each is sent with fmt 0.
    pub fn reset_headers(&mut self) {
        self.small = [None; 64];
        self.large.clear();
    }

    fn slot(&mut self, csid: u32) -> &mut Option<Prev> {
        if csid < 64 {
            return &mut self.small[csid as usize];
        }
        let k = match self.large.binary_search_by_key(&csid, |&(c, _)| c) {
            Ok(k) => k,
            Err(k) => {
                self.large.insert(k, (csid, None));
                k
            }
        };
        &mut self.large[k].1
    }
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Wire length of a message: first header, payload, and one fmt 3 header per extra chunk.
#[inline]
fn wire_len(hdr0: usize, hdr3: usize, len: usize, chunk_size: usize) -> usize {
    hdr0 + len + extra_chunks(len, chunk_size) * hdr3
}

/// Chunks after the first (each preceded by a fmt 3 header).
#[inline]
fn extra_chunks(len: usize, chunk_size: usize) -> usize {
    if len == 0 {
        0
    } else {
        (len - 1) / chunk_size
    }
}

/// Both headers of an [`EncodedMessage`], inline: the fmt 0 header then the fmt 3 header.
const HEADERS_LEN: usize = MAX_HEADER_LEN + MAX_FMT3_HEADER_LEN;

/// One message in chunked wire form, built once and cloned (refcounts only) into every
/// player's queue: a fmt 0 header, then payload slices separated by fmt 3 headers.
///
/// The value is one `Arc` (8 bytes) over the shared payload `Bytes` and both headers (at most
/// 18 + 7 bytes, stored inline beside it): cloning into a player queue is one atomic increment
/// and an 8-byte slot. An earlier inline ~80-byte form (headers in the value, payload `Bytes`
/// cloned) cost 122 ns per player against 16.8 ns for this one (`benches/chunk.rs`, fanout,
/// 1000 queues): the bigger slot touches more cold cache lines in each player's queue.
/// Building one costs one small allocation per message per stream, not per player. The wire form is never materialised:
/// [`for_each_slice`](Self::for_each_slice) yields header and payload slices for a vectored
/// write, and resumes at any byte offset after a partial write.
///
/// Every copy starts with a fmt 0 header, so it does not depend on what the player's
/// connection sent before on that csid; a fmt 3 continuation chunk repeats the extended
/// timestamp when the message has one.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use rtmp_edge::rtmp::chunk::{ChunkDecoder, EncodedMessage};
/// use rtmp_edge::rtmp::Limits;
///
/// let msg = EncodedMessage::new(6, 40, 9, 1, Bytes::from(vec![7u8; 300]), 128);
/// let mut slices = 0;
/// msg.for_each_slice(0, |_| { slices += 1; true });
/// assert_eq!(slices, 6); // hdr0, 128 payload bytes, hdr3, 128 bytes, hdr3, 44 bytes
/// assert_eq!(msg.slice_count(), 6);
/// let mut wire = BytesMut::new();
/// msg.write_to(&mut wire);
/// assert_eq!(wire.len(), msg.wire_len());
/// let mut decoder = ChunkDecoder::new(&Limits::default());
/// let raw = decoder.decode(&mut wire).unwrap().unwrap();
/// assert_eq!(raw.payload, msg.payload());
/// ```
#[derive(Clone, Debug)]
pub struct EncodedMessage {
    inner: Arc<Encoded>,
}

/// The allocation of an [`EncodedMessage`] that nothing refers to any more, its payload
/// already dropped: [`EncodedMessage::new_in`] builds the next message in it.
#[derive(Debug)]
pub struct Spare(Arc<Encoded>);

/// The shared body of an [`EncodedMessage`]: built once, never mutated while shared.
#[derive(Debug)]
struct Encoded {
    payload: Bytes,
    headers: [u8; HEADERS_LEN],
    hdr0_len: u8,
    hdr3_len: u8,
    type_id: u8,
    csid: u32,
    timestamp: u32,
    stream_id: u32,
    chunk_size: u32,
}

impl EncodedMessage {
    /// Encodes `payload` as one message with a fmt 0 first chunk and fmt 3 continuations.
    ///
    /// `csid` must be in 2..=65599, `chunk_size` in 1..=0x7FFF_FFFF and `payload` at most
    /// 0xFF_FFFF bytes (debug-asserted; clamped in release builds).
    pub fn new(
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: Bytes,
        chunk_size: u32,
    ) -> Self {
        Self::new_in(
            None, csid, timestamp, type_id, stream_id, payload, chunk_size,
        )
    }

    /// [`new`](Self::new), in the allocation of a message nothing holds any more (see
    /// [`into_spare`](Self::into_spare)) when one is given: no allocation.
    pub fn new_in(
        spare: Option<Spare>,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: Bytes,
        chunk_size: u32,
    ) -> Self {
        debug_assert!((MIN_CSID..=MAX_CSID).contains(&csid), "csid {csid}");
        debug_assert!((1..=MAX_PROTOCOL_CHUNK_SIZE).contains(&chunk_size));
        debug_assert!(
            payload.len() <= 0xFF_FFFF,
            "payload of {} bytes",
            payload.len()
        );
        let csid = csid.clamp(MIN_CSID, MAX_CSID);
        let mut headers = [0u8; HEADERS_LEN];
        let n0 = write_chunk_header(
            &mut headers,
            0,
            csid,
            timestamp,
            payload.len() as u32,
            type_id,
            stream_id,
        );
        let n3 = write_chunk_header(&mut headers[n0..], 3, csid, timestamp, 0, 0, 0);
        debug_assert_eq!(
            n3 > 3,
            timestamp >= EXTENDED_TIMESTAMP_MARKER,
            "fmt 3 header repeats the extended timestamp exactly when there is one"
        );
        let encoded = Encoded {
            payload,
            headers,
            hdr0_len: n0 as u8,
            hdr3_len: n3 as u8,
            type_id,
            csid,
            timestamp,
            stream_id,
            chunk_size: chunk_size.clamp(1, MAX_PROTOCOL_CHUNK_SIZE),
        };
        let inner = match spare {
            Some(Spare(mut arc)) => match Arc::get_mut(&mut arc) {
                Some(slot) => {
                    *slot = encoded;
                    arc
                }
                // A `Spare` is never shared; built anew all the same if it were.
                None => Arc::new(encoded),
            },
            None => Arc::new(encoded),
        };
        Self { inner }
    }

    /// This message's allocation, emptied (its payload let go of), for
    /// [`new_in`](Self::new_in); `None` while anything else still holds the message (a
    /// player's queue, another cache).
    pub fn into_spare(mut self) -> Option<Spare> {
        let encoded = Arc::get_mut(&mut self.inner)?;
        encoded.payload = Bytes::new();
        Some(Spare(self.inner))
    }

    /// The same message for another message stream id: new headers, same payload.
    pub fn with_stream_id(&self, stream_id: u32) -> Self {
        Self::new(
            self.inner.csid,
            self.inner.timestamp,
            self.inner.type_id,
            stream_id,
            self.inner.payload.clone(),
            self.inner.chunk_size,
        )
    }

    /// The same message at another timestamp (a cached header re-sent to a late joiner at
    /// its start time): new headers, same payload.
    pub fn with_timestamp(&self, timestamp: u32) -> Self {
        Self::new(
            self.inner.csid,
            timestamp,
            self.inner.type_id,
            self.inner.stream_id,
            self.inner.payload.clone(),
            self.inner.chunk_size,
        )
    }

    /// The same message with its payload copied into an allocation of its own: for a copy
    /// kept long (a cached sequence header), so it does not hold on to a whole shared
    /// buffer the payload was cut from (see `rtmp::chunk::blocks`).
    pub fn compacted(&self) -> Self {
        let inner = Encoded {
            payload: Bytes::copy_from_slice(&self.inner.payload),
            ..*self.inner
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Bytes on the wire.
    pub fn wire_len(&self) -> usize {
        wire_len(
            usize::from(self.inner.hdr0_len),
            usize::from(self.inner.hdr3_len),
            self.inner.payload.len(),
            self.inner.chunk_size as usize,
        )
    }

    /// Number of slices [`for_each_slice`](Self::for_each_slice) yields from offset 0 (to size
    /// an `IoSlice` array).
    pub fn slice_count(&self) -> usize {
        let len = self.inner.payload.len();
        1 + usize::from(len > 0) + 2 * extra_chunks(len, self.inner.chunk_size as usize)
    }

    /// Calls `f` with each wire slice in order, skipping the first `offset` bytes (for resuming
    /// after a partial write). Stops early when `f` returns false.
    ///
    /// Slices are never empty; an `offset` at or past [`wire_len`](Self::wire_len) yields
    /// nothing. Skipping is arithmetic (no walk over the skipped chunks).
    pub fn for_each_slice<'a>(&'a self, offset: usize, mut f: impl FnMut(&'a [u8]) -> bool) {
        let h0 = self.header();
        let h3 = self.continuation_header();
        let payload: &'a [u8] = &self.inner.payload;
        let len = payload.len();
        let cs = self.inner.chunk_size as usize;
        let mut off = offset;

        // First chunk: fmt 0 header + up to one chunk of payload.
        if off < h0.len() {
            if !f(&h0[off..]) {
                return;
            }
            off = 0;
        } else {
            off -= h0.len();
        }
        let first = len.min(cs);
        if off < first {
            if !f(&payload[off..first]) {
                return;
            }
            off = 0;
        } else {
            off -= first;
        }
        if len <= cs {
            return;
        }

        // Continuations: each segment is h3 + cs payload bytes (the last one may be shorter).
        let seg = h3.len() + cs;
        let mut start = cs.saturating_add((off / seg).saturating_mul(cs));
        off %= seg;
        while start < len {
            let end = len.min(start.saturating_add(cs));
            if off < h3.len() {
                if !f(&h3[off..]) {
                    return;
                }
                off = 0;
            } else {
                off -= h3.len();
            }
            let from = start + off;
            if from < end && !f(&payload[from..end]) {
                return;
            }
            off = 0;
            start = end;
        }
    }

    /// Appends the wire form to `out` (a copy: for tests and non-shared paths).
    pub fn write_to(&self, out: &mut BytesMut) {
        out.reserve(self.wire_len());
        self.for_each_slice(0, |s| {
            out.extend_from_slice(s);
            true
        });
    }

    /// The fmt 0 header (basic header, message header, extended timestamp if any).
    pub fn header(&self) -> &[u8] {
        &self.inner.headers[..usize::from(self.inner.hdr0_len)]
    }

    /// The fmt 3 header written before each continuation chunk.
    pub fn continuation_header(&self) -> &[u8] {
        let n0 = usize::from(self.inner.hdr0_len);
        &self.inner.headers[n0..n0 + usize::from(self.inner.hdr3_len)]
    }

    /// The shared payload.
    pub fn payload(&self) -> &Bytes {
        &self.inner.payload
    }

    /// Absolute timestamp in milliseconds.
    pub fn timestamp(&self) -> u32 {
        self.inner.timestamp
    }

    /// Message type id.
    pub fn type_id(&self) -> u8 {
        self.inner.type_id
    }

    /// Message stream id written in the fmt 0 header.
    pub fn stream_id(&self) -> u32 {
        self.inner.stream_id
    }

    /// Chunk stream id.
    pub fn csid(&self) -> u32 {
        self.inner.csid
    }

    /// Chunk size the message was cut at (the player connection must be using it).
    pub fn chunk_size(&self) -> u32 {
        self.inner.chunk_size
    }

    /// The message as a [`RawMessage`] (payload shared, not copied).
    pub fn to_raw(&self) -> RawMessage {
        RawMessage {
            csid: self.inner.csid,
            timestamp: self.inner.timestamp,
            type_id: self.inner.type_id,
            stream_id: self.inner.stream_id,
            payload: self.inner.payload.clone(),
        }
    }
}

#[cfg(test)]
#[path = "encoder_tests.rs"]
mod tests;
