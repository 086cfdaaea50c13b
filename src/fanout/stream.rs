//! One live stream on one worker: where its media comes from, who plays it here, and what a
//! late joiner needs first.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::clock::Rebaser;
use super::conn_key::ConnKey;
use super::packet::{MediaKind, Packet};
use super::player::Player;
use crate::rtmp::chunk::Spare;

/// Most spare message allocations a stream keeps for its next packets (a GOP's worth at
/// 60 fps with audio; each is about 100 bytes).
const MAX_SPARES: usize = 512;

/// A stream's name: `app/name`, with its hash computed once. Cloning is a refcount
/// increment.
///
/// Hashing a key feeds only that stored hash: a keyed SipHash of the name under one random
/// key per process (so it is the same on every worker, and no peer can choose names that
/// collide), computed when the key is made. A map keyed by stream on the media path
/// ([`StreamMap`]) uses it as is, so finding a message's stream hashes nothing.
#[derive(Clone)]
pub struct StreamKey {
    name: Arc<str>,
    hash: u64,
}

impl StreamKey {
    /// The key of stream `name` in application `app`.
    pub fn new(app: &str, name: &str) -> Self {
        static NAMES: OnceLock<RandomState> = OnceLock::new();
        let name: Arc<str> = Arc::from(format!("{app}/{name}"));
        let hash = NAMES.get_or_init(RandomState::new).hash_one(&*name);
        Self { name, hash }
    }

    /// `app/name`.
    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl PartialEq for StreamKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.name, &other.name) || (self.hash == other.hash && self.name == other.name)
    }
}

impl Eq for StreamKey {}

impl Hash for StreamKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StreamKey").field(&self.name).finish()
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A map keyed by stream that takes each key's stored hash as is (see [`StreamKey`]).
pub type StreamMap<V> = HashMap<StreamKey, V, BuildHasherDefault<KeyHashOnly>>;

/// The hasher of [`StreamMap`]: passes a [`StreamKey`]'s stored hash through.
#[derive(Default)]
pub struct KeyHashOnly(u64);

impl Hasher for KeyHashOnly {
    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    /// Only `StreamKey` hashes into this hasher, and it writes one `u64`; anything else is
    /// folded in (FNV-1a) so the map stays correct, if slower, were that to change.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Where a stream's media comes from on this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Not published (players wait).
    None,
    /// A publisher connection on this worker.
    Local(ConnKey),
    /// The worker that owns the stream sends it over the bus.
    Remote(usize),
    /// This worker pulls it from an origin (the worker feeds it whatever upstream connection
    /// currently serves it; the source outlives failovers).
    Pulled,
}

/// How a stream encodes and caches what its publisher sends.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// Outbound chunk size every player of the stream shares.
    pub chunk_size: u32,
    /// Keep the GOP since the last keyframe for late joiners.
    pub gop_cache: bool,
    /// Past this many bytes the GOP cache is dropped until the next keyframe.
    pub gop_cache_max_bytes: usize,
    /// Largest sequence header or metadata message accepted from a publisher.
    pub max_header_bytes: usize,
}

/// Why a publisher's message is refused (the publisher is closed for it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// Headers are queued for every player whatever its queue holds and kept for late
    /// joiners, so their size is capped.
    #[error("{kind} header of {len} bytes exceeds streams.max_header_bytes ({max})")]
    HeaderTooLarge {
        kind: &'static str,
        len: usize,
        max: usize,
    },
}

/// A live stream as one worker sees it: the owner's copy (fed by the publisher) or a mirror
/// (fed by the owner over the bus). Both keep their own fast-start cache.
#[derive(Debug)]
pub struct Stream {
    pub key: StreamKey,
    pub source: Source,
    /// Players on this worker.
    pub players: Vec<Player>,
    /// Owner only: workers with players of this stream, as a bit set.
    pub remote_workers: u64,
    /// Owner only: subscribed workers whose mailbox overflowed; they get no media but headers
    /// until the next video keyframe, so their players never see a gap mid-GOP.
    pub bus_behind: u64,
    /// Mirror only (`Source::Remote`): the owner's `Started` came, so every packet arrives
    /// from now on and a joiner is primed at once, even before anything is cached.
    pub mirrored: bool,
    settings: StreamSettings,
    metadata: Option<Packet>,
    video_header: Option<Packet>,
    audio_header: Option<Packet>,
    gop: Vec<Packet>,
    gop_bytes: usize,
    /// Allocations of packets the GOP cache let go of that nothing else held: the next
    /// packets are encoded in them, so a stream allocates nothing per message once its
    /// first GOP has gone by (with no player holding on to old packets).
    spares: Vec<Spare>,
    video_seen: bool,
    /// The latest timestamp of a packet remembered: fast start stamps headers with it when
    /// no GOP is cached.
    latest: u32,
    clock: Rebaser,
}

impl Stream {
    /// An unpublished stream.
    pub fn new(key: StreamKey, settings: StreamSettings) -> Self {
        Self {
            key,
            source: Source::None,
            players: Vec::new(),
            remote_workers: 0,
            bus_behind: 0,
            mirrored: false,
            settings,
            metadata: None,
            video_header: None,
            audio_header: None,
            gop: Vec::new(),
            gop_bytes: 0,
            spares: Vec::new(),
            video_seen: false,
            latest: 0,
            clock: Rebaser::default(),
        }
    }

    /// Owner side: turns one publisher message into a shared packet (monotonic timestamp,
    /// encoded once) and caches it. `None` for message types that are not forwarded; an error
    /// (nothing cached) for a header over the size cap.
    pub fn ingest(
        &mut self,
        type_id: u8,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<Option<Packet>, IngestError> {
        use crate::rtmp::message::type_id as t;
        let ts = match type_id {
            t::AUDIO | t::VIDEO => self.clock.rebase(timestamp),
            _ => self.clock.current(),
        };
        if type_id == t::VIDEO {
            self.video_seen = true;
        }
        let len = payload.len();
        let Some(packet) = Packet::encode_in(
            self.spares.pop(),
            type_id,
            ts,
            payload,
            self.settings.chunk_size,
            self.video_seen,
        ) else {
            return Ok(None);
        };
        let max = self.settings.max_header_bytes;
        if packet.header && len > max {
            let kind = match packet.kind {
                MediaKind::Video => "video sequence",
                MediaKind::Audio => "audio sequence",
                MediaKind::Data => "metadata",
            };
            return Err(IngestError::HeaderTooLarge { kind, len, max });
        }
        self.remember(&packet);
        Ok(Some(packet))
    }

    /// Updates the fast-start cache with a packet (owner and mirrors alike).
    pub fn remember(&mut self, packet: &Packet) {
        // Timestamps are monotonic (rebased) but wrap after 49.7 days.
        if packet.timestamp.wrapping_sub(self.latest) as i32 > 0 {
            self.latest = packet.timestamp;
        }
        if packet.header {
            let slot = match packet.kind {
                MediaKind::Video => &mut self.video_header,
                MediaKind::Audio => &mut self.audio_header,
                MediaKind::Data => &mut self.metadata,
            };
            // Kept until the publisher leaves or sends another: a copy of its own, so it
            // does not hold on to the pooled block its payload was assembled in.
            *slot = Some(packet.compacted());
            return;
        }
        if packet.kind == MediaKind::Video {
            self.video_seen = true;
        }
        if !self.settings.gop_cache || packet.kind == MediaKind::Data {
            return;
        }
        if packet.keyframe && (packet.kind == MediaKind::Video || !self.video_seen) {
            self.drop_gop();
        } else if self.gop.is_empty() {
            return;
        }
        self.gop_bytes += packet.wire_len();
        self.gop.push(packet.clone());
        if self.gop_bytes > self.settings.gop_cache_max_bytes {
            self.drop_gop();
        }
    }

    /// Empties the GOP cache, keeping the allocations of the packets nothing else holds.
    fn drop_gop(&mut self) {
        // Past the cap, the rest are simply dropped with the drain.
        for packet in self.gop.drain(..) {
            if self.spares.len() >= MAX_SPARES {
                break;
            }
            if let Some(spare) = packet.wire.into_spare() {
                self.spares.push(spare);
            }
        }
        self.gop_bytes = 0;
    }

    /// What a player joining now gets first: metadata, sequence headers, then the GOP since the
    /// last keyframe (empty when the cache is off or holds no keyframe yet).
    ///
    /// Metadata and headers keep the time they were published at (often 0) in the cache, but a
    /// joiner gets them stamped with the first cached frame's timestamp (or, with no GOP, the
    /// latest one seen), so its timeline starts where the media does instead of jumping from
    /// 0 to the GOP: a re-headed copy, the payload shared.
    pub fn fast_start(&self) -> impl Iterator<Item = Packet> + '_ {
        let start = self.gop.first().map_or(self.latest, |p| p.timestamp);
        self.metadata
            .iter()
            .chain(self.video_header.iter())
            .chain(self.audio_header.iter())
            .map(move |p| p.restamped(start))
            .chain(self.gop.iter().cloned())
    }

    /// Something is cached for a joiner (a mirror that has it is live).
    pub fn has_fast_start(&self) -> bool {
        self.metadata.is_some()
            || self.video_header.is_some()
            || self.audio_header.is_some()
            || !self.gop.is_empty()
    }

    /// True when the cache starts on a keyframe, so a joiner needs no wait.
    pub fn starts_on_keyframe(&self) -> bool {
        !self.gop.is_empty()
    }

    /// A new feed (another upstream connection of a pull) starts: its timestamps continue
    /// the timeline just after the latest, whatever they are; the cache is kept until the
    /// new feed's headers and keyframe replace it.
    pub fn restart_clock(&mut self) {
        self.clock.restart();
    }

    /// The latest video and audio sequence headers, if any.
    pub fn headers(&self) -> (Option<&Packet>, Option<&Packet>) {
        (self.video_header.as_ref(), self.audio_header.as_ref())
    }

    /// The publisher left: forget its media; the timeline continues on republish.
    pub fn unpublish(&mut self) {
        self.source = Source::None;
        self.mirrored = false;
        self.metadata = None;
        self.video_header = None;
        self.audio_header = None;
        self.gop.clear();
        self.gop_bytes = 0;
        self.video_seen = false;
        self.clock.restart();
    }

    /// Nobody publishes, plays or subscribes here: the entry can go.
    pub fn is_idle(&self) -> bool {
        self.source == Source::None && self.players.is_empty() && self.remote_workers == 0
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::rtmp::message::type_id::{AUDIO, DATA_AMF0, VIDEO};

    fn stream(gop_cache: bool) -> Stream {
        let settings = StreamSettings {
            chunk_size: 4096,
            gop_cache,
            gop_cache_max_bytes: 1 << 20,
            max_header_bytes: 1 << 16,
        };
        Stream::new(StreamKey::new("live", "s"), settings)
    }

    fn metadata() -> Bytes {
        let mut v = vec![0x02, 0x00, 0x0a];
        v.extend_from_slice(b"onMetaData");
        v.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 0, 9]);
        Bytes::from(v)
    }

    /// Metadata and both sequence headers at 0, then video frames every 40 ms from 0 with a
    /// keyframe at each of `keyframes_at`, up to `until`.
    fn publish(s: &mut Stream, keyframes_at: &[u32], until: u32) {
        s.ingest(DATA_AMF0, 0, metadata()).unwrap();
        s.ingest(VIDEO, 0, Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2]))
            .unwrap();
        s.ingest(AUDIO, 0, Bytes::from_static(&[0xaf, 0, 0x12, 0x10]))
            .unwrap();
        for ts in (0..=until).step_by(40) {
            let first = if keyframes_at.contains(&ts) {
                0x17
            } else {
                0x27
            };
            s.ingest(VIDEO, ts, Bytes::from(vec![first, 1, 0, 0, 0, 9, 9]))
                .unwrap();
        }
    }

    #[test]
    fn fast_start_stamps_metadata_and_headers_with_the_first_cached_frame() {
        let mut s = stream(true);
        publish(&mut s, &[0, 2000], 2400);
        let cached: Vec<Packet> = [&s.metadata, &s.video_header, &s.audio_header]
            .iter()
            .map(|p| (*p).clone().expect("cached"))
            .collect();
        let start: Vec<Packet> = s.fast_start().collect();
        assert_eq!(start.len(), 3 + 11);
        assert_eq!(start[3].timestamp, 2000, "the GOP starts at its keyframe");
        for (sent, kept) in start.iter().zip(&cached) {
            assert_eq!((sent.timestamp, sent.wire.timestamp()), (2000, 2000));
            assert_eq!(kept.timestamp, 0, "the cache keeps the published time");
            assert_eq!(
                sent.wire.payload().as_ptr(),
                kept.wire.payload().as_ptr(),
                "the payload is shared, only the chunk header is new"
            );
        }
        let stamps: Vec<u32> = start.iter().map(|p| p.timestamp).collect();
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    }

    #[test]
    fn without_a_gop_fast_start_stamps_headers_with_the_latest_timestamp() {
        let mut s = stream(false);
        publish(&mut s, &[0], 1000);
        let stamps: Vec<u32> = s.fast_start().map(|p| p.wire.timestamp()).collect();
        assert_eq!(stamps, [1000; 3]);
    }

    #[test]
    fn fast_start_at_the_published_time_copies_nothing() {
        let mut s = stream(true);
        publish(&mut s, &[0], 80);
        let start: Vec<Packet> = s.fast_start().collect();
        assert_eq!(start[0].timestamp, 0);
        let kept = s.video_header.as_ref().unwrap();
        assert!(
            std::ptr::eq(start[1].wire.header(), kept.wire.header()),
            "an unchanged header is the cached message itself"
        );
    }

    #[test]
    fn packets_after_the_first_gop_reuse_the_allocations_of_the_gop_let_go() {
        let mut s = stream(true);
        // Frames every 40 ms: 50 in the first GOP, let go by the keyframe at 2000, then 10
        // more, each encoded in one of their allocations.
        publish(&mut s, &[0, 2000], 2400);
        assert_eq!(s.spares.len(), 40);
        let p = s
            .ingest(VIDEO, 2440, Bytes::from(vec![0x27, 1, 0, 0, 0, 5, 6]))
            .unwrap()
            .unwrap();
        assert_eq!(s.spares.len(), 39);
        assert_eq!((p.timestamp, p.wire.timestamp()), (2440, 2440));
        assert_eq!(&p.wire.payload()[..], &[0x27, 1, 0, 0, 0, 5, 6]);
        assert!(!p.keyframe && !p.header);
    }

    #[test]
    fn a_packet_still_held_elsewhere_is_not_made_a_spare() {
        let mut s = stream(true);
        publish(&mut s, &[0], 400);
        let held: Vec<Packet> = s.gop.clone();
        s.ingest(VIDEO, 440, Bytes::from(vec![0x17, 1, 0, 0, 0, 9, 9]))
            .unwrap();
        assert!(
            s.spares.is_empty(),
            "every packet of the old GOP is still held"
        );
        assert!(
            held.iter().all(|p| p.wire.payload().len() == 7),
            "and intact"
        );
    }

    #[test]
    fn keys_made_apart_for_one_name_are_equal_and_find_each_other_in_a_stream_map() {
        let a = StreamKey::new("live", "cam");
        let b = std::thread::spawn(|| StreamKey::new("live", "cam"))
            .join()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, StreamKey::new("live", "cam2"));
        assert_ne!(a, StreamKey::new("liv", "e/cam2"));
        let mut map = StreamMap::default();
        map.insert(a.clone(), 1);
        map.insert(StreamKey::new("live", "other"), 2);
        assert_eq!(map.get(&b), Some(&1));
        assert_eq!(format!("{a:?} {a}"), "StreamKey(\"live/cam\") live/cam");
    }
}
