//! Every connection's output queue: its session's bytes (RTMP control and commands, HTTP
//! heads and bodies) and, for players, shared media packets, in wire order, bounded in bytes
//! with media-aware dropping.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;

use bytes::Bytes;

use super::packet::{MediaKind, Packet};

/// One entry of an output queue.
#[derive(Debug, Clone)]
pub enum OutItem {
    /// Bytes from the player's own session (handshake, commands, control): never dropped.
    Control(Bytes),
    /// A shared media packet, in its RTMP chunked form.
    Media(Packet),
    /// A shared media packet as an FLV tag (HTTP-FLV): the tag header, PreviousTagSize and
    /// any chunk framing are written around the shared payload.
    Flv(Packet, Arc<FlvFraming>),
}

/// How an HTTP-FLV response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlvBody {
    /// HTTP/1.1 chunked transfer coding: every tag is one chunk; `0\r\n\r\n` ends the body.
    Chunked,
    /// HTTP/1.0: the body ends when the connection closes.
    UntilClose,
}

/// The FLV framings of one packet, built on first use and shared by all its HTTP-FLV viewers
/// (one per body kind), so a viewer costs a reference count, not a framing.
#[derive(Debug, Default)]
pub struct FlvFramings([Option<Arc<FlvFraming>>; 2]);

impl FlvFramings {
    /// The framing of `packet` for bodies delimited as `body`.
    pub fn get(&mut self, packet: &Packet, body: FlvBody) -> Arc<FlvFraming> {
        let slot = &mut self.0[usize::from(body == FlvBody::Chunked)];
        slot.get_or_insert_with(|| Arc::new(FlvFraming::new(packet, body)))
            .clone()
    }
}

/// Most bytes written around an FLV tag's payload: a chunk-size line (8 hex digits + CRLF),
/// the 11-byte tag header, the 4-byte PreviousTagSize and the chunk's closing CRLF.
const FLV_FRAMING_MAX: usize = 10 + 11 + 4 + 2;

/// The bytes one viewer writes before (`head`) and after a shared FLV tag payload.
#[derive(Debug, Clone, Copy)]
pub struct FlvFraming {
    bytes: [u8; FLV_FRAMING_MAX],
    head: u8,
    len: u8,
}

impl FlvFraming {
    /// The framing of `packet` as an FLV tag in a body delimited as `body`.
    pub fn new(packet: &Packet, body: FlvBody) -> Self {
        use crate::media::flv::{previous_tag_size, tag_header, TAG_HEADER_LEN};
        let len = packet.wire.payload().len();
        let mut f = FlvFraming {
            bytes: [0; FLV_FRAMING_MAX],
            head: 0,
            len: 0,
        };
        if body == FlvBody::Chunked {
            // The chunk-size line: the tag's whole length in lower-case hex.
            let size = TAG_HEADER_LEN + len + 4;
            let digits = (usize::BITS - size.leading_zeros()).div_ceil(4).max(1) as usize;
            for i in 0..digits {
                f.put(&[b"0123456789abcdef"[(size >> (4 * (digits - 1 - i))) & 0xf]]);
            }
            f.put(b"\r\n");
        }
        f.put(&tag_header(packet.wire.type_id(), packet.timestamp, len));
        f.head = f.len;
        f.put(&previous_tag_size(len));
        if body == FlvBody::Chunked {
            f.put(b"\r\n");
        }
        f
    }

    fn put(&mut self, b: &[u8]) {
        let at = usize::from(self.len);
        self.bytes[at..at + b.len()].copy_from_slice(b);
        self.len += b.len() as u8;
    }

    /// Written before the payload.
    pub fn head(&self) -> &[u8] {
        &self.bytes[..usize::from(self.head)]
    }

    /// Written after the payload.
    pub fn tail(&self) -> &[u8] {
        &self.bytes[usize::from(self.head)..usize::from(self.len)]
    }
}

impl OutItem {
    fn wire_len(&self) -> usize {
        match self {
            OutItem::Control(b) => b.len(),
            OutItem::Media(p) => p.wire_len(),
            OutItem::Flv(p, f) => p.wire.payload().len() + usize::from(f.len),
        }
    }

    fn is_droppable(&self) -> bool {
        match self {
            OutItem::Control(_) => false,
            OutItem::Media(p) | OutItem::Flv(p, _) => !p.header,
        }
    }

    /// The header kind this item carries, if it is a sequence header or metadata.
    fn header_kind(&self) -> Option<MediaKind> {
        match self {
            OutItem::Control(_) => None,
            OutItem::Media(p) | OutItem::Flv(p, _) => p.header.then_some(p.kind),
        }
    }
}

/// Queue slots a drained queue keeps.
const IDLE_CAPACITY: usize = 16;

/// What happened to a pushed media packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Queued,
    /// Dropped: the player is behind and waits for the next keyframe.
    Dropped,
    /// This push overflowed the queue: queued frames not yet started were dropped too.
    Overflowed,
}

/// Bounded queue of what to write to one connection.
///
/// Invariants: `queued_bytes` is the unwritten bytes of all items; only the head may be
/// partly written (`head_offset`); control bytes are never dropped; a dropped run of media
/// always ends at a keyframe, so a player never gets half a GOP.
///
/// Headers (sequence headers and metadata) bypass the limit but never pile up: a new one
/// replaces an unsent one of its kind, so the queue holds at most the limit plus the latest
/// header of each kind (and whatever the player's own session says). A replaced audio or
/// video header means the player is far behind, and the frames queued for it described the
/// old configuration: they go too and the player resumes at the next keyframe.
#[derive(Debug)]
pub struct OutputQueue {
    items: VecDeque<OutItem>,
    queued_bytes: usize,
    head_offset: usize,
    limit: usize,
    /// Skipping media until the next keyframe.
    waiting_for_keyframe: bool,
    dropped_frames: u64,
    /// Media messages queued (headers included), for the messages-out counter.
    queued_media: u64,
}

impl OutputQueue {
    /// A queue that starts dropping media once `limit` bytes are waiting.
    pub fn new(limit: usize) -> Self {
        Self {
            items: VecDeque::new(),
            queued_bytes: 0,
            head_offset: 0,
            limit,
            waiting_for_keyframe: false,
            dropped_frames: 0,
            queued_media: 0,
        }
    }

    /// Queues session bytes (never dropped).
    pub fn push_control(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.queued_bytes += bytes.len();
        self.items.push_back(OutItem::Control(bytes));
    }

    /// Skips media until the next keyframe (a player joining mid-GOP without a cache).
    pub fn wait_for_keyframe(&mut self) {
        self.waiting_for_keyframe = true;
    }

    /// Queues a media packet in RTMP form, or drops it when the player is behind.
    pub fn push_media(&mut self, packet: Packet) -> PushOutcome {
        let (header, keyframe) = (packet.header, packet.keyframe);
        self.push_item(OutItem::Media(packet), header, keyframe)
    }

    /// Queues a media packet as an FLV tag (HTTP-FLV viewers) with its shared `framing`
    /// ([`FlvFramings::get`]), under the same drop policy.
    pub fn push_flv(&mut self, packet: Packet, framing: Arc<FlvFraming>) -> PushOutcome {
        let (header, keyframe) = (packet.header, packet.keyframe);
        self.push_item(OutItem::Flv(packet, framing), header, keyframe)
    }

    fn push_item(&mut self, item: OutItem, header: bool, keyframe: bool) -> PushOutcome {
        let len = item.wire_len();
        if header {
            self.replace_unsent_header(&item);
            self.queued_media += 1;
            self.queued_bytes += len;
            self.items.push_back(item);
            return PushOutcome::Queued;
        }
        let mut outcome = PushOutcome::Queued;
        if self.queued_bytes + len > self.limit && !self.waiting_for_keyframe {
            self.drop_unstarted_media();
            self.waiting_for_keyframe = true;
            outcome = PushOutcome::Overflowed;
        }
        if self.waiting_for_keyframe {
            if keyframe && self.queued_bytes + len <= self.limit {
                self.waiting_for_keyframe = false;
            } else {
                self.dropped_frames += 1;
                return if outcome == PushOutcome::Overflowed {
                    outcome
                } else {
                    PushOutcome::Dropped
                };
            }
        }
        self.queued_media += 1;
        self.queued_bytes += len;
        self.items.push_back(item);
        outcome
    }

    /// Removes an unsent header of `item`'s kind; see the type's doc.
    fn replace_unsent_header(&mut self, item: &OutItem) {
        let kind = item.header_kind();
        let started = usize::from(self.head_offset > 0);
        let Some(at) = self
            .items
            .iter()
            .skip(started)
            .position(|queued| queued.header_kind() == kind)
        else {
            return;
        };
        if let Some(old) = self.items.remove(at + started) {
            self.queued_bytes -= old.wire_len();
        }
        if kind != Some(MediaKind::Data) {
            self.drop_unstarted_media();
            self.waiting_for_keyframe = true;
        }
    }

    /// Removes every non-header media item that has not started going out.
    fn drop_unstarted_media(&mut self) {
        let keep_head = self.head_offset > 0;
        let mut index = 0;
        let mut dropped_bytes = 0;
        let mut dropped = 0;
        self.items.retain(|item| {
            let started = keep_head && index == 0;
            index += 1;
            if item.is_droppable() && !started {
                dropped_bytes += item.wire_len();
                dropped += 1;
                false
            } else {
                true
            }
        });
        self.queued_bytes -= dropped_bytes;
        self.dropped_frames += dropped;
    }

    /// Unwritten bytes.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Takes every queued item out, as if all were written (in-memory tests read what a
    /// player was sent this way).
    #[cfg(test)]
    pub(crate) fn take_all(&mut self) -> Vec<OutItem> {
        self.queued_bytes = 0;
        self.head_offset = 0;
        self.items.drain(..).collect()
    }

    /// Nothing left to write.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The player is behind: media is being dropped until the next keyframe.
    pub fn is_behind(&self) -> bool {
        self.waiting_for_keyframe && self.dropped_frames > 0
    }

    /// Media frames dropped so far.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// Media messages queued so far (headers included; dropped ones are not counted).
    pub fn queued_media(&self) -> u64 {
        self.queued_media
    }

    /// Fills `out` with the unwritten wire slices in order; returns how many it filled.
    pub fn fill_slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let mut offset = self.head_offset;
        for item in &self.items {
            if n >= out.len() {
                break;
            }
            match item {
                OutItem::Control(b) => {
                    out[n] = IoSlice::new(&b[offset..]);
                    n += 1;
                }
                OutItem::Media(p) => p.wire.for_each_slice(offset, |s| {
                    out[n] = IoSlice::new(s);
                    n += 1;
                    n < out.len()
                }),
                OutItem::Flv(p, framing) => {
                    let parts: [&[u8]; 3] = [framing.head(), p.wire.payload(), framing.tail()];
                    let mut skip = offset;
                    for part in parts {
                        if skip >= part.len() {
                            skip -= part.len();
                            continue;
                        }
                        if n >= out.len() {
                            break;
                        }
                        out[n] = IoSlice::new(&part[skip..]);
                        n += 1;
                        skip = 0;
                    }
                }
            }
            offset = 0;
        }
        n
    }

    /// Marks `n` bytes as written.
    pub fn consume(&mut self, mut n: usize) {
        debug_assert!(n <= self.queued_bytes, "consumed more than was queued");
        self.queued_bytes -= n.min(self.queued_bytes);
        while n > 0 {
            let Some(head) = self.items.front() else {
                return;
            };
            let left = head.wire_len() - self.head_offset;
            if n >= left {
                n -= left;
                self.head_offset = 0;
                self.items.pop_front();
                if self.items.is_empty() && self.items.capacity() > IDLE_CAPACITY {
                    // A burst (fast start, a stall) is over: give its slots back.
                    self.items = VecDeque::new();
                }
            } else {
                self.head_offset += n;
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::chunk::EncodedMessage;

    fn packet(len: usize, keyframe: bool, header: bool) -> Packet {
        let payload = Bytes::from(vec![7u8; len]);
        Packet {
            wire: EncodedMessage::new(6, 0, 9, 1, payload, 4096),
            kind: MediaKind::Video,
            timestamp: 0,
            keyframe,
            header,
        }
    }

    fn written(q: &OutputQueue) -> Vec<u8> {
        let mut v = vec![IoSlice::new(&[]); 4096];
        let n = q.fill_slices(&mut v);
        v[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn a_chunked_flv_tag_is_one_chunk_with_its_size_in_hex() {
        for len in [0usize, 1, 0x0f - 15, 0x10 - 15, 1000, 0xff_ffff] {
            let mut q = OutputQueue::new(usize::MAX);
            let p = packet(len, true, false);
            let mut framings = FlvFramings::default();
            let framing = framings.get(&p, FlvBody::Chunked);
            assert!(
                Arc::ptr_eq(&framing, &framings.get(&p, FlvBody::Chunked)),
                "built once"
            );
            q.push_flv(p, framing);
            let out = written(&q);
            assert_eq!(out.len(), q.queued_bytes());
            let line_end = out.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&out[..line_end]).unwrap(), 16);
            assert_eq!(size, Ok(11 + len + 4), "chunk size of a {len}-byte payload");
            let data = &out[line_end + 2..];
            assert_eq!(data.len(), 11 + len + 4 + 2);
            assert_eq!(&data[data.len() - 2..], b"\r\n");
            let mut plain = OutputQueue::new(usize::MAX);
            let p = packet(len, true, false);
            plain.push_flv(
                p.clone(),
                FlvFramings::default().get(&p, FlvBody::UntilClose),
            );
            assert_eq!(
                written(&plain),
                data[..data.len() - 2],
                "same tag bytes inside"
            );
        }
    }

    #[test]
    fn control_bytes_go_out_in_order_with_media() {
        let mut q = OutputQueue::new(1 << 20);
        q.push_control(Bytes::from_static(b"abc"));
        q.push_media(packet(10, true, false));
        q.push_control(Bytes::from_static(b"xyz"));
        let out = written(&q);
        assert_eq!(&out[..3], b"abc");
        assert_eq!(&out[out.len() - 3..], b"xyz");
        assert_eq!(out.len(), q.queued_bytes());
    }

    #[test]
    fn partial_writes_resume_mid_item() {
        let mut q = OutputQueue::new(1 << 20);
        q.push_media(packet(9000, true, false));
        q.push_control(Bytes::from_static(b"tail"));
        let all = written(&q);
        q.consume(5000);
        assert_eq!(written(&q), all[5000..].to_vec());
        q.consume(all.len() - 5000);
        assert!(q.is_empty());
        assert_eq!(q.queued_bytes(), 0);
    }

    #[test]
    fn overflow_drops_frames_until_the_next_keyframe() {
        let mut q = OutputQueue::new(10_000);
        assert_eq!(q.push_media(packet(100, false, true)), PushOutcome::Queued);
        assert_eq!(q.push_media(packet(4000, true, false)), PushOutcome::Queued);
        assert_eq!(
            q.push_media(packet(4000, false, false)),
            PushOutcome::Queued
        );
        assert_eq!(
            q.push_media(packet(4000, false, false)),
            PushOutcome::Overflowed
        );
        assert!(q.is_behind());
        // Queued frames that had not started are gone; the header stays.
        assert!(q.queued_bytes() < 200);
        assert_eq!(
            q.push_media(packet(100, false, false)),
            PushOutcome::Dropped
        );
        assert_eq!(
            q.push_media(packet(100, false, true)),
            PushOutcome::Queued,
            "headers are never dropped"
        );
        assert_eq!(q.push_media(packet(100, true, false)), PushOutcome::Queued);
        assert!(!q.is_behind());
        assert_eq!(q.dropped_frames(), 4);
        assert_eq!(
            q.queued_media(),
            5,
            "two headers and three frames entered (two of them were dropped later)"
        );
    }

    #[test]
    fn a_partly_written_frame_is_never_dropped() {
        let mut q = OutputQueue::new(10_000);
        q.push_media(packet(6000, true, false));
        q.consume(100);
        q.push_media(packet(6000, false, false));
        let out = written(&q);
        assert!(out.len() > 5000, "the started frame is still queued");
        assert!(q.is_behind());
    }

    #[test]
    fn waiting_player_starts_on_a_keyframe() {
        let mut q = OutputQueue::new(1 << 20);
        q.wait_for_keyframe();
        assert_eq!(q.push_media(packet(10, false, false)), PushOutcome::Dropped);
        assert_eq!(q.push_media(packet(10, true, false)), PushOutcome::Queued);
        assert_eq!(q.push_media(packet(10, false, false)), PushOutcome::Queued);
    }

    fn metadata(len: usize) -> Packet {
        Packet {
            kind: MediaKind::Data,
            ..packet(len, false, true)
        }
    }

    #[test]
    fn a_new_header_replaces_an_unsent_one_of_its_kind() {
        let mut q = OutputQueue::new(64 * 1024);
        for _ in 0..1000 {
            q.push_media(metadata(100_000));
            q.push_media(packet(1000, false, true));
        }
        let one_each = metadata(100_000).wire_len() + packet(1000, false, true).wire_len();
        assert_eq!(
            q.queued_bytes(),
            one_each,
            "the latest metadata and video header"
        );
        assert_eq!(q.items.len(), 2);
    }

    #[test]
    fn a_header_being_written_is_kept_and_the_next_one_queues_behind_it() {
        let mut q = OutputQueue::new(64 * 1024);
        q.push_media(metadata(10_000));
        q.consume(10);
        q.push_media(metadata(10_000));
        q.push_media(metadata(10_000));
        assert_eq!(q.items.len(), 2, "the started one and the latest");
        assert_eq!(q.queued_bytes(), 2 * metadata(10_000).wire_len() - 10);
    }

    #[test]
    fn a_replaced_video_header_takes_the_frames_queued_behind_it() {
        let mut q = OutputQueue::new(1 << 20);
        let audio = Packet {
            kind: MediaKind::Audio,
            ..packet(50, false, true)
        };
        q.push_media(audio.clone());
        q.push_media(packet(100, false, true));
        q.push_media(packet(3000, true, false));
        q.push_media(packet(3000, false, false));
        q.push_media(packet(120, false, true));
        assert_eq!(
            q.items.len(),
            2,
            "the audio header and the new video header"
        );
        assert_eq!(
            q.queued_bytes(),
            audio.wire_len() + packet(120, false, true).wire_len()
        );
        assert_eq!(q.dropped_frames(), 2);
        assert_eq!(q.push_media(packet(10, false, false)), PushOutcome::Dropped);
        assert_eq!(q.push_media(packet(10, true, false)), PushOutcome::Queued);
    }

    #[test]
    fn memory_stays_bounded_for_a_player_that_never_reads() {
        let mut q = OutputQueue::new(64 * 1024);
        for i in 0..10_000 {
            q.push_media(packet(3000, i % 50 == 0, false));
            assert!(q.queued_bytes() <= 64 * 1024 + 4000);
        }
    }
}
