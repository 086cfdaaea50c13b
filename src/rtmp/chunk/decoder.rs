//! Push decoder: chunks in, whole messages out.
//!
//! # Design
//! * **Whole chunks only.** [`ChunkDecoder::decode`] consumes a chunk only when its header and
//!   its whole payload are in `buf`; an incomplete chunk stays unconsumed, so the decoder never
//!   holds "half a chunk" state. A chunk's payload never exceeds the message length, which is
//!   capped by [`Limits::max_message_size`], so the read buffer never needs more than that cap
//!   plus 18 header bytes, whatever chunk size the peer announces.
//! * **One copy, pooled, and a read buffer nobody else holds.** Audio and video payloads up to
//!   [`MAX_POOLED`] bytes, in one chunk or many, are copied once into room carved from the
//!   decoder's [`BlockPool`] and frozen there: no allocation per message, and the block is
//!   reused once every payload cut from it is dropped. Other messages (control, commands,
//!   metadata: few and small, some kept for a stream's life) are copied into an exact
//!   allocation, so they never pin a block. Either way `buf` itself is never shared, so the
//!   caller can read into it again in place. A message above [`MAX_POOLED`] that arrives in
//!   one chunk is cut out of `buf` with `split_to(n).freeze()` instead (no copy: the caller's
//!   next read moves `buf` to a new allocation, cheaper than copying so much); one spread over
//!   several chunks is assembled into its own buffer, allocated at the message length up to
//!   [`ASSEMBLY_PREALLOC`] and grown with the data past it, so announcing big messages
//!   without sending them costs the peer, not us.
//! * **Per-csid state** lives in a dense `Vec`, found through a 64-entry table for csids 2..=63
//!   (what every real encoder uses) and a sorted `Vec` for larger ids (bounded by
//!   [`Limits::max_chunk_streams`]).
//! * **Extended timestamps on fmt 3 chunks.** Encoders disagree on whether a fmt 3 chunk that
//!   follows a header with an extended timestamp repeats the 4-byte field (ffmpeg, librtmp,
//!   Adobe do; some encoders don't). When the csid's last header had one, the 4 bytes after a
//!   fmt 3 basic header are compared with the stored value: equal means the repeated field
//!   (consumed), different means payload. Until those 4 bytes are in `buf`, `decode` returns
//!   `Ok(None)` rather than guess.
//! * **Timestamps.** fmt 0 carries the absolute timestamp (and sets the csid's delta to that
//!   field, as ffmpeg and the spec's "take values from the preceding chunk" imply); fmt 1/2
//!   carry a delta added with 32-bit wraparound; a fmt 3 chunk that starts a new message adds
//!   the stored delta again.
//! * A fmt 0/1/2 header on a csid whose previous message is unfinished drops the unfinished
//!   message (lenient, as other servers are) rather than failing the connection.

use bytes::{Buf, Bytes, BytesMut};

use super::blocks::{BlockPool, MAX_POOLED};
use super::header::{parse_basic_header, read_u24, read_u32, EXTENDED_TIMESTAMP_MARKER};
use super::{RawMessage, DEFAULT_CHUNK_SIZE};
use crate::rtmp::message::type_id;
use crate::rtmp::Limits;

/// Largest chunk size the protocol allows (the top bit of Set Chunk Size must be zero).
pub const MAX_PROTOCOL_CHUNK_SIZE: u32 = 0x7FFF_FFFF;

/// Largest assembly buffer allocated before the bytes arrive. Messages up to this size (nearly
/// every audio and video frame) are assembled in one exact allocation; larger ones grow by
/// doubling as their chunks arrive, so a forged length costs us nothing until it is sent.
pub const ASSEMBLY_PREALLOC: usize = 64 * 1024;

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

/// What the decoder remembers about one chunk stream (csid).
#[derive(Debug)]
struct ChunkStream {
    csid: u32,
    /// Absolute timestamp of the current (or last) message.
    timestamp: u32,
    /// Timestamp field of the last fmt 0/1/2 header: what a fmt 3 new message adds.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The extended timestamp value of the last fmt 0/1/2 header, if it had one.
    extended: Option<u32>,
    /// A message is partly assembled in `partial`.
    in_progress: bool,
    /// The ordinal of the message in progress (see [`ChunkDecoder::oldest_partial`]).
    started: u64,
    partial: BytesMut,
}

/// The message header fields a chunk brings (before they are committed to the csid state).
#[derive(Clone, Copy)]
struct Parsed {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    extended: Option<u32>,
}

/// Reassembles messages from an inbound chunk stream.
///
/// Call order: feed bytes read from the peer with [`decode`](Self::decode) until it returns
/// `Ok(None)`; apply Set Chunk Size and Abort messages with
/// [`set_chunk_size`](Self::set_chunk_size) and [`abort`](Self::abort) as soon as they are
/// decoded; read [`bytes_received`](Self::bytes_received) to send acknowledgements.
///
/// ```
/// use bytes::BytesMut;
/// use rtmp_edge::rtmp::chunk::{ChunkDecoder, ChunkEncoder};
/// use rtmp_edge::rtmp::Limits;
///
/// let mut wire = BytesMut::new();
/// ChunkEncoder::new().encode(3, 1000, 20, 0, b"hello", &mut wire);
/// let mut decoder = ChunkDecoder::new(&Limits::default());
/// let msg = decoder.decode(&mut wire).unwrap().unwrap();
/// assert_eq!((msg.csid, msg.timestamp, msg.type_id), (3, 1000, 20));
/// assert_eq!(&msg.payload[..], b"hello");
/// assert!(wire.is_empty());
/// ```
pub struct ChunkDecoder {
    chunk_size: u32,
    max_chunk_size: u32,
    max_message_size: u32,
    max_chunk_streams: usize,
    bytes_received: u64,
    /// Messages whose first chunk was consumed so far: the next message's ordinal.
    messages_started: u64,
    streams: Vec<ChunkStream>,
    /// csid (< 64) → index + 1 into `streams`; 0 = not seen.
    small: [u16; 64],
    /// (csid, index) for csids ≥ 64, sorted by csid.
    large: Vec<(u32, u16)>,
    /// Where audio and video payloads are assembled (empty until the first one).
    pool: BlockPool,
}

impl ChunkDecoder {
    /// A decoder at the default chunk size (128), bounded by `limits`.
    pub fn new(limits: &Limits) -> Self {
        // csids are 2..=65599, so at most 65598 streams: indexes always fit a u16.
        let max_chunk_streams = limits.max_chunk_streams.min(65598);
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_chunk_size: limits.max_chunk_size.min(MAX_PROTOCOL_CHUNK_SIZE),
            max_message_size: limits.max_message_size,
            max_chunk_streams,
            bytes_received: 0,
            messages_started: 0,
            streams: Vec::new(),
            small: [0; 64],
            large: Vec::new(),
            pool: BlockPool::new(),
        }
    }

    /// The inbound chunk size in force.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Applies the peer's Set Chunk Size; call it as soon as that message is decoded.
    ///
    /// Legal sizes are 1..=`Limits::max_chunk_size` (at most 0x7FFF_FFFF); anything else is
    /// [`ChunkError::InvalidChunkSize`] and leaves the chunk size unchanged.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > self.max_chunk_size {
            return Err(ChunkError::InvalidChunkSize {
                size,
                max: self.max_chunk_size,
            });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Applies the peer's Abort Message: drops the partial message on `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(i) = self.lookup(csid) {
            let st = &mut self.streams[i];
            st.in_progress = false;
            st.partial = BytesMut::new();
        }
    }

    /// Decodes at most one complete message from `buf`, consuming exactly the whole chunks it
    /// parsed. `Ok(None)` means more input is needed (never an error for short input).
    ///
    /// Chunks of messages still incomplete are consumed into per-csid buffers; a chunk not yet
    /// wholly in `buf` is left there untouched. Call again until `Ok(None)`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            let b: &[u8] = buf;
            let Some(bh) = parse_basic_header(b) else {
                return Ok(None);
            };
            let csid = bh.csid;
            let idx = self.lookup(csid);
            let mut pos = bh.len;

            // Parse the message header into `p`; `new_message` says whether this chunk starts
            // a message (fmt 0/1/2 always; fmt 3 when nothing is in progress on the csid).
            let (p, new_message) = match bh.fmt {
                0 => {
                    let Some(h) = b.get(pos..pos + 11) else {
                        return Ok(None);
                    };
                    let field = read_u24(h);
                    let length = read_u24(&h[3..]);
                    let type_id = h[6];
                    let stream_id = u32::from_le_bytes([h[7], h[8], h[9], h[10]]);
                    pos += 11;
                    self.check_length(length)?;
                    if idx.is_none() && self.streams.len() >= self.max_chunk_streams {
                        return Err(ChunkError::TooManyChunkStreams {
                            limit: self.max_chunk_streams,
                        });
                    }
                    let (ts, extended) = if field == EXTENDED_TIMESTAMP_MARKER {
                        let Some(e) = b.get(pos..pos + 4) else {
                            return Ok(None);
                        };
                        pos += 4;
                        let v = read_u32(e);
                        (v, Some(v))
                    } else {
                        (field, None)
                    };
                    let p = Parsed {
                        timestamp: ts,
                        delta: ts,
                        length,
                        type_id,
                        stream_id,
                        extended,
                    };
                    (p, true)
                }
                fmt => {
                    let Some(i) = idx else {
                        return Err(ChunkError::NoPreviousChunkOnStream { csid, fmt });
                    };
                    let st = &self.streams[i];
                    let mut p = Parsed {
                        timestamp: st.timestamp,
                        delta: st.delta,
                        length: st.length,
                        type_id: st.type_id,
                        stream_id: st.stream_id,
                        extended: st.extended,
                    };
                    if fmt == 3 {
                        if let Some(e) = st.extended {
                            // Repeated extended timestamp, or payload? Decide on 4 bytes.
                            let Some(peek) = b.get(pos..pos + 4) else {
                                return Ok(None);
                            };
                            if read_u32(peek) == e {
                                pos += 4;
                            }
                        }
                        if st.in_progress {
                            (p, false)
                        } else {
                            p.timestamp = p.timestamp.wrapping_add(p.delta);
                            (p, true)
                        }
                    } else {
                        let hlen = if fmt == 1 { 7 } else { 3 };
                        let Some(h) = b.get(pos..pos + hlen) else {
                            return Ok(None);
                        };
                        let field = read_u24(h);
                        if fmt == 1 {
                            p.length = read_u24(&h[3..]);
                            p.type_id = h[6];
                            self.check_length(p.length)?;
                        }
                        pos += hlen;
                        let delta = if field == EXTENDED_TIMESTAMP_MARKER {
                            let Some(e) = b.get(pos..pos + 4) else {
                                return Ok(None);
                            };
                            pos += 4;
                            let v = read_u32(e);
                            p.extended = Some(v);
                            v
                        } else {
                            p.extended = None;
                            field
                        };
                        p.delta = delta;
                        p.timestamp = p.timestamp.wrapping_add(delta);
                        (p, true)
                    }
                }
            };

            let received = match (new_message, idx) {
                (false, Some(i)) => self.streams[i].partial.len(),
                _ => 0,
            };
            // `received < length` whenever a message is in progress, so this is ≥ 1 then.
            let remaining = p.length as usize - received;
            let chunk_len = remaining.min(self.chunk_size as usize);
            if b.len() - pos < chunk_len {
                return Ok(None);
            }

            // Commit: the whole chunk is here.
            let i = match idx {
                Some(i) => i,
                None => self.insert(csid),
            };
            self.bytes_received += (pos + chunk_len) as u64;
            let ordinal = self.messages_started;
            if new_message {
                self.messages_started += 1;
            }
            let st = &mut self.streams[i];
            st.timestamp = p.timestamp;
            st.delta = p.delta;
            st.length = p.length;
            st.type_id = p.type_id;
            st.stream_id = p.stream_id;
            st.extended = p.extended;
            buf.advance(pos);

            if new_message {
                let pooled = chunk_len <= MAX_POOLED && is_media(p.type_id);
                if chunk_len == remaining {
                    // The whole message is in this chunk.
                    if st.in_progress {
                        st.in_progress = false;
                        st.partial = BytesMut::new();
                    }
                    let payload = if pooled {
                        let mut room = self.pool.take(chunk_len);
                        room.extend_from_slice(&buf[..chunk_len]);
                        buf.advance(chunk_len);
                        room.freeze()
                    } else if chunk_len <= MAX_POOLED {
                        let exact = Bytes::copy_from_slice(&buf[..chunk_len]);
                        buf.advance(chunk_len);
                        exact
                    } else {
                        buf.split_to(chunk_len).freeze()
                    };
                    return Ok(Some(raw(csid, &p, payload)));
                }
                let length = p.length as usize;
                st.partial = if length <= MAX_POOLED && is_media(p.type_id) {
                    self.pool.take(length)
                } else {
                    // Allocate up front only what a peer can't abuse: a header announcing a
                    // 16 MB message must not cost 16 MB before the bytes arrive.
                    BytesMut::with_capacity(length.min(ASSEMBLY_PREALLOC))
                };
                st.in_progress = true;
                st.started = ordinal;
            } else if st.partial.capacity() - st.partial.len() < chunk_len {
                grow(&mut st.partial, chunk_len, p.length as usize);
            }
            st.partial.extend_from_slice(&buf[..chunk_len]);
            buf.advance(chunk_len);
            if st.partial.len() == p.length as usize {
                st.in_progress = false;
                let payload = std::mem::take(&mut st.partial).freeze();
                return Ok(Some(raw(csid, &p, payload)));
            }
        }
    }

    /// Total bytes consumed since the start, for acknowledgements.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Messages whose first chunk has been consumed so far, complete or not; also the ordinal
    /// the next message started will have.
    pub fn messages_started(&self) -> u64 {
        self.messages_started
    }

    /// The ordinal (see [`messages_started`](Self::messages_started)) of the oldest message
    /// partly assembled, or `None` when no chunk stream has one in progress.
    ///
    /// The decoder reads no clock: a caller that bounds how long a message may take records
    /// when it first saw an ordinal here and times out while the same ordinal stays. Progress
    /// on other chunk streams does not reset it; finishing (or aborting) that message does.
    pub fn oldest_partial(&self) -> Option<u64> {
        self.streams
            .iter()
            .filter(|s| s.in_progress)
            .map(|s| s.started)
            .min()
    }

    /// Number of chunk streams the peer has used so far.
    pub fn chunk_streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes currently held in partly assembled messages (for per-connection memory metrics).
    pub fn buffered_bytes(&self) -> usize {
        self.streams.iter().map(|s| s.partial.capacity()).sum()
    }

    /// Bytes the payload pool holds on its own (see [`BlockPool::held_bytes`]).
    pub fn pooled_bytes(&self) -> usize {
        self.pool.held_bytes()
    }

    #[inline]
    fn check_length(&self, length: u32) -> Result<(), ChunkError> {
        if length > self.max_message_size {
            return Err(ChunkError::MessageTooLarge {
                size: length,
                limit: self.max_message_size,
            });
        }
        Ok(())
    }

    #[inline]
    fn lookup(&self, csid: u32) -> Option<usize> {
        if csid < 64 {
            match self.small[csid as usize] {
                0 => None,
                n => Some(usize::from(n) - 1),
            }
        } else {
            self.large
                .binary_search_by_key(&csid, |&(c, _)| c)
                .ok()
                .map(|k| usize::from(self.large[k].1))
        }
    }

    /// Adds state for a csid not seen before (the caller checked the stream limit).
    fn insert(&mut self, csid: u32) -> usize {
        debug_assert!(self.streams.len() < self.max_chunk_streams);
        debug_assert!(self.lookup(csid).is_none());
        let i = self.streams.len();
        self.streams.push(ChunkStream {
            csid,
            timestamp: 0,
            delta: 0,
            length: 0,
            type_id: 0,
            stream_id: 0,
            extended: None,
            in_progress: false,
            started: 0,
            partial: BytesMut::new(),
        });
        // Fits: max_chunk_streams ≤ 65598.
        let tag = (i + 1) as u16;
        if csid < 64 {
            self.small[csid as usize] = tag;
        } else {
            let k = self.large.partition_point(|&(c, _)| c < csid);
            self.large.insert(k, (csid, tag - 1));
        }
        debug_assert_eq!(self.streams[i].csid, csid);
        i
    }
}

/// Grows an assembly buffer to hold `need` more bytes: doubling, never past the message
/// `length`, so memory stays within 2× what the peer actually sent (and within `length`).
#[cold]
fn grow(partial: &mut BytesMut, need: usize, length: usize) {
    let target = (partial.capacity() * 2)
        .max(partial.len() + need)
        .min(length);
    let mut bigger = BytesMut::with_capacity(target);
    bigger.extend_from_slice(partial);
    *partial = bigger;
}

/// Audio and video: the messages assembled in pooled blocks.
#[inline]
fn is_media(type_id: u8) -> bool {
    type_id == type_id::AUDIO || type_id == type_id::VIDEO
}

#[inline]
fn raw(csid: u32, p: &Parsed, payload: bytes::Bytes) -> RawMessage {
    RawMessage {
        csid,
        timestamp: p.timestamp,
        type_id: p.type_id,
        stream_id: p.stream_id,
        payload,
    }
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
