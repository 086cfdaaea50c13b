//! HLS on the workers. The worker that owns a stream packages it once (a `Segmenter` per
//! stream, fed from the encode-once packets); any worker serves the playlist and the shared
//! segment bytes. Blocking playlist reloads (`_HLS_msn`/`_HLS_part`) are held open on the
//! event loop and answered when the owner reports progress over the bus.
//!
//! The segmenter sits behind a mutex shared by the owner (one lock per packaged message of the
//! stream, never per viewer) and the workers answering requests (one lock per request).

//!
//! Files: this one (the shelf, and the owner's side: starting, feeding, sweeping),
//! `serve.rs` (requests on any worker, held until the owner's progress), `disk.rs` (the
//! optional writer of segments and playlists to `http.hls_dir`).

mod disk;
mod serve;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::HttpConfig;
use crate::fanout::{ConnKey, Directory, MediaKind, Packet, StreamKey};
use crate::package::{
    CapReason, Container, Frame, FrameKind, PackageError, Progress, SegmentCap, Segmenter,
    SegmenterConfig, Tracks,
};

pub use disk::{spawn_disk_writer, DiskWrite};
pub(super) use serve::{Awaited, HeldRequest};

/// One stream's packagers: HLS (muxed), and for DASH one video-only and one audio-only fMP4
/// segmenter (dash.js plays no muxed representations).
pub struct Packager {
    pub hls: Segmenter,
    pub dash: Option<DashPackagers>,
    /// The worker feeding it (the stream's owner while it is published and packaged). After a
    /// takeover the new owner takes over the feeding and the old one stops touching it.
    feeder: Option<usize>,
    /// The last HTTP request for the stream, or when feeding stopped: idle entries are freed.
    last_used: Instant,
    /// When feeding stopped (unpublish, or no requests on demand). The entry is freed
    /// `http.hls_idle_ms` later however often its final playlist is asked for.
    stopped: Option<Instant>,
    /// When a worker last asked the owner to start feeding it (on-demand packaging).
    start_asked: Option<Instant>,
    /// The HLS playlist as served, rendered once per change of the segmenter and shared by
    /// every request until the next part or segment.
    playlist: Option<Bytes>,
}

/// The two DASH adaptation sets of a stream.
pub struct DashPackagers {
    pub video: Segmenter,
    pub audio: Segmenter,
}

impl Packager {
    /// Pushes one frame, received at wall clock `wall` (Unix ms), to every segmenter; the HLS
    /// progress, plus the DASH segmenter's that took the frame.
    fn push(&mut self, frame: &Frame, wall: u64) -> (Result<Progress, PackageError>, Progress) {
        let progress = self.hls.push(frame, wall);
        if matches!(&progress, Ok(p) if p.parts > 0 || p.segments > 0) {
            self.playlist = None;
        }
        let mut dash_progress = Progress::default();
        if let Some(dash) = self.dash.as_mut() {
            let target = match frame.kind {
                FrameKind::Video => Some(&mut dash.video),
                FrameKind::Audio => Some(&mut dash.audio),
                FrameKind::Metadata => None,
            };
            if let Some(target) = target {
                match target.push(frame, wall) {
                    Ok(p) => dash_progress = p,
                    Err(e) => tracing::debug!(error = %e, "DASH packaging skipped a frame"),
                }
            }
        }
        (progress, dash_progress)
    }

    /// The HLS media playlist of `stream` (its URIs under `{stream}/`), rendered once per
    /// change.
    fn playlist(&mut self, stream: &str) -> Bytes {
        self.playlist
            .get_or_insert_with(|| serve::playlist_for(&self.hls, stream))
            .clone()
    }

    /// The HLS playlist can be served to a client that is not blocking: a segment is
    /// complete, or the stream ended.
    fn hls_ready(&self) -> bool {
        self.hls.segments().len() > 0 || self.hls.is_finished()
    }

    /// The DASH manifest can be served: video has a segment (or the stream has no video) and
    /// some track has one.
    fn dash_ready(&self) -> bool {
        self.dash.as_ref().is_some_and(|d| {
            let video = d.video.segments().len() > 0;
            video || (d.video.video_config().is_none() && d.audio.segments().len() > 0)
        })
    }
}

/// One stream's packagers, shared between its owner and the workers serving it.
pub type SharedPackager = Arc<Mutex<Packager>>;

/// Every packaged stream, by name. Entries outlive a publish so a republish continues the
/// same playlist with a discontinuity.
#[derive(Default)]
pub struct HlsShelf {
    streams: Mutex<HashMap<StreamKey, SharedPackager>>,
    /// Where segments also go to disk (`http.hls_dir`), through the writer thread.
    disk: Option<(PathBuf, SyncSender<DiskWrite>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HlsShelf {
    /// A shelf that also writes segments under `dir` through `sender` (`None`: memory only).
    pub fn new(disk: Option<(PathBuf, SyncSender<DiskWrite>)>) -> Self {
        Self {
            streams: Mutex::default(),
            disk,
        }
    }

    /// The packager of `key`, if it was ever published.
    pub fn get(&self, key: &StreamKey) -> Option<SharedPackager> {
        lock(&self.streams).get(key).cloned()
    }

    /// The packager of `key`, created now if new; `true` when it already existed.
    pub fn open(&self, key: &StreamKey, config: &HttpConfig) -> (SharedPackager, bool) {
        let mut map = lock(&self.streams);
        if let Some(existing) = map.get(key) {
            return (existing.clone(), true);
        }
        let hls = Segmenter::new(SegmenterConfig {
            container: if config.hls_fmp4 {
                Container::Fmp4
            } else {
                Container::Ts
            },
            target_duration_ms: config.hls_segment_ms,
            part_target_ms: (config.hls_part_ms > 0).then_some(config.hls_part_ms),
            window: config.hls_window,
            segment_cap_ms: config.hls_max_segment_ms,
            segment_cap_bytes: config.hls_max_segment_bytes,
            ..SegmenterConfig::default()
        });
        let dash_segmenter = |tracks| {
            Segmenter::new(SegmenterConfig {
                container: Container::Fmp4,
                tracks,
                target_duration_ms: config.hls_segment_ms,
                part_target_ms: None,
                window: config.hls_window,
                segment_cap_ms: config.hls_max_segment_ms,
                segment_cap_bytes: config.hls_max_segment_bytes,
            })
        };
        let dash = config.dash.then(|| DashPackagers {
            video: dash_segmenter(Tracks::VideoOnly),
            audio: dash_segmenter(Tracks::AudioOnly),
        });
        let seg = Arc::new(Mutex::new(Packager {
            hls,
            dash,
            feeder: None,
            last_used: Instant::now(),
            stopped: None,
            start_asked: None,
            playlist: None,
        }));
        map.insert(key.clone(), seg.clone());
        (seg, false)
    }

    /// Forgets every stream nobody feeds and that nobody asked for within `idle`, or whose
    /// feeding stopped `idle` ago; returns them.
    fn evict_idle(&self, now: Instant, idle: Duration) -> Vec<StreamKey> {
        let mut gone = Vec::new();
        lock(&self.streams).retain(|key, seg| {
            let p = lock(seg);
            let within = |t: Instant| now.saturating_duration_since(t) < idle;
            let keep =
                p.feeder.is_some() || (within(p.last_used) && p.stopped.map_or(true, within));
            if !keep {
                gone.push(key.clone());
            }
            keep
        });
        gone
    }
}

/// Warns that a segment of `key` reached a cap (once per cut: a stream that stops sending
/// keyframes warns once, then its video is dropped quietly until the next keyframe).
fn warn_capped(worker: usize, key: &StreamKey, rendition: &'static str, cap: &SegmentCap) {
    let (limit, value) = match cap.reason {
        CapReason::Duration { cap_ms } => ("http.hls_max_segment_ms", u64::from(cap_ms)),
        CapReason::Bytes { cap_bytes } => ("http.hls_max_segment_bytes", cap_bytes as u64),
    };
    let action = if cap.dropping {
        "segment closed, media dropped until the next video keyframe"
    } else {
        "segment cut at a keyframe before its target duration"
    };
    tracing::warn!(worker, stream = %key, rendition, limit, cap = value,
        segment_ms = cap.segment_ms, segment_bytes = cap.segment_bytes, action,
        "HLS/DASH segment reached its cap");
}

fn frame_of(packet: &Packet) -> Frame {
    let kind = match packet.kind {
        MediaKind::Audio => FrameKind::Audio,
        MediaKind::Video => FrameKind::Video,
        MediaKind::Data => FrameKind::Metadata,
    };
    Frame::new(kind, packet.timestamp, packet.wire.payload().clone())
}

/// Unix time in ms: dates HLS/DASH media (program date times, the MPD's UTCTiming).
pub(in crate::shard) fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What the worker does for its packaging, in order, after an input.
#[derive(Debug)]
pub enum PackagingAction {
    /// Answer `conn`'s held request with `pieces`, then go on reading its next request.
    Answer {
        conn: ConnKey,
        pieces: Vec<Bytes>,
        keep_alive: bool,
    },
    /// Tell every other worker that `key`'s packagers made a part or segment.
    Progress { key: StreamKey },
    /// Ask `owner`, which publishes `key`, to package it (a request on demand).
    AskOwner { owner: usize, key: StreamKey },
    /// Start packaging `key` here: the worker has its fast-start cache ([`Packaging::start`]).
    Start { key: StreamKey },
}

/// One worker's side of HLS/DASH: feeding the packagers of streams published here, serving
/// requests for any stream from the shared shelf, holding requests until what they ask for
/// exists, and starting packaging on demand. The worker drives it with inputs (`publish`,
/// `start`, `package`, `unpublish`, `request`, `progress`, `gone`, `tick`) and applies the
/// [`PackagingAction`]s it returns from `poll_action`; it owns no socket.
pub struct Packaging {
    me: usize,
    http: HttpConfig,
    shelf: Arc<HlsShelf>,
    directory: Arc<Directory>,
    /// Packagers of the streams published on this worker.
    packagers: HashMap<StreamKey, SharedPackager>,
    /// Requests held open.
    held: Vec<HeldRequest>,
    /// When idle packaging was last swept (once a second).
    swept: Instant,
    actions: std::collections::VecDeque<PackagingAction>,
}

impl Packaging {
    /// Worker `me`'s packaging, on the shared `shelf`.
    pub fn new(
        me: usize,
        http: HttpConfig,
        shelf: Arc<HlsShelf>,
        directory: Arc<Directory>,
        now: Instant,
    ) -> Self {
        Self {
            me,
            http,
            shelf,
            directory,
            packagers: HashMap::new(),
            held: Vec::new(),
            swept: now,
            actions: Default::default(),
        }
    }

    /// The next action to apply.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<PackagingAction> {
        self.actions.pop_front()
    }

    /// Streams are packaged only once requested (`http.hls_on_demand`, never with `hls_dir`).
    fn hls_on_demand(&self) -> bool {
        self.http.hls_on_demand && self.http.hls_dir.is_empty()
    }

    fn hls_idle(&self) -> Duration {
        Duration::from_millis(self.http.hls_idle_ms)
    }

    fn enabled(&self) -> bool {
        self.http.enabled && self.http.hls
    }

    /// Connection `conn` closed: its held requests go.
    pub fn gone(&mut self, conn: ConnKey) {
        self.held.retain(|h| h.conn() != conn);
    }

    /// From the timer: answers held requests past their deadline; once a second, stops idle
    /// packaging and frees ended windows.
    pub fn tick(&mut self, now: Instant) {
        self.expire(now);
        if now.saturating_duration_since(self.swept) >= Duration::from_secs(1) {
            self.swept = now;
            self.sweep(now);
        }
    }

    /// True while this worker packages `key` (someone asked for its HLS/DASH lately).
    pub fn is_active(&self, key: &StreamKey) -> bool {
        self.packagers.contains_key(key)
    }

    /// Owner side: a stream starts publishing here. Packaged at once unless on demand, where
    /// only a stream with recent viewers (a republish) continues its packaging.
    pub fn publish(&mut self, key: &StreamKey, now: Instant) {
        if !self.enabled() {
            return;
        }
        let wanted = !self.hls_on_demand()
            || self.shelf.get(key).is_some_and(|seg| {
                now.saturating_duration_since(lock(&seg).last_used) < self.hls_idle()
            });
        if wanted {
            self.actions
                .push_back(PackagingAction::Start { key: key.clone() });
        }
    }

    /// Owner side: start feeding `key`'s packagers (a publish, or the first request on
    /// demand), seeded with the stream's fast-start cache (metadata, sequence headers and the
    /// GOP so far) so the open segment starts at its keyframe. After an earlier publish the
    /// playlist continues with a discontinuity.
    ///
    /// `seed` is the stream's fast-start cache; `offset_ms` the publisher's media clock against
    /// the wall clock (arrival Unix ms − timestamp), when known; `wall_ms` the time now.
    pub fn start(
        &mut self,
        key: &StreamKey,
        seed: Vec<Packet>,
        offset_ms: Option<i64>,
        wall_ms: u64,
        now: Instant,
    ) {
        if self.packagers.contains_key(key) || !self.enabled() {
            return;
        }
        let (seg, existed) = self.shelf.open(key, &self.http);
        {
            let mut packager = lock(&seg);
            if existed && packager.hls.next_msn() > 0 {
                packager.playlist = None;
                let _ = packager.hls.discontinuity();
                if let Some(dash) = packager.dash.as_mut() {
                    let _ = dash.video.discontinuity();
                    let _ = dash.audio.discontinuity();
                }
                // The whole window: without `hls_dir_keep` its files left with the publisher.
                let window = packager.hls.segments().len();
                self.shelf.write_to_disk(key, &packager.hls, window);
            }
            packager.feeder = Some(self.me);
            packager.stopped = None;
            packager.start_asked = None;
            packager.last_used = now;
            // Cached packets arrived before now: date each by the publisher's media clock
            // (its least delayed message since the last keyframe), or failing that by its age
            // behind the newest. One late message must not shift every program date time.
            let newest = seed.last().map_or(0, |p| p.timestamp);
            let now_ms = wall_ms;
            for packet in &seed {
                let wall = match offset_ms {
                    Some(o) => (o + i64::from(packet.timestamp)).clamp(0, now_ms as i64) as u64,
                    None => now_ms.saturating_sub(
                        (newest.wrapping_sub(packet.timestamp) as i32).max(0) as u64,
                    ),
                };
                let _ = packager.push(&frame_of(packet), wall);
            }
        }
        tracing::info!(worker = self.me, stream = %key, seeded = seed.len(), "HLS/DASH packaging started");
        self.packagers.insert(key.clone(), seg);
        self.broadcast(key, now);
    }

    /// Owner side: package one packet, received at wall clock `wall` (Unix ms).
    pub fn package(&mut self, key: &StreamKey, packet: &Packet, wall: u64, now: Instant) {
        let Some(seg) = self.packagers.get(key) else {
            return;
        };
        let mut packager = lock(seg);
        if packager.feeder != Some(self.me) {
            // Another worker took the stream over and feeds these packagers now.
            drop(packager);
            self.packagers.remove(key);
            return;
        }
        let (progress, dash) = packager.push(&frame_of(packet), wall);
        if let Ok(p) = &progress {
            self.shelf
                .write_to_disk(key, &packager.hls, p.segments as usize);
        }
        drop(packager);
        if let Some(cap) = progress.as_ref().ok().and_then(|p| p.capped.as_ref()) {
            warn_capped(self.me, key, "hls", cap);
        }
        if let Some(cap) = &dash.capped {
            let rendition = match packet.kind {
                MediaKind::Audio => "dash audio",
                _ => "dash video",
            };
            warn_capped(self.me, key, rendition, cap);
        }
        let dash_segments = dash.segments > 0;
        match progress {
            Ok(p) if p.parts > 0 || p.segments > 0 || dash_segments => self.broadcast(key, now),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(worker = self.me, stream = %key, error = %e, "HLS packaging skipped a frame");
            }
        }
    }

    /// Owner side: the publisher left; complete the open segment and end the presentation
    /// (EXT-X-ENDLIST, a static MPD); the window stays served until idle. Its files in
    /// `http.hls_dir` go now unless `http.hls_dir_keep`.
    pub fn unpublish(&mut self, key: &StreamKey, now: Instant) {
        let Some(seg) = self.packagers.remove(key) else {
            return;
        };
        {
            let mut packager = lock(&seg);
            if packager.feeder != Some(self.me) {
                return; // taken over: the new owner's packaging goes on
            }
            packager.playlist = None;
            let closed = packager.hls.finish();
            if let Some(dash) = packager.dash.as_mut() {
                let _ = dash.video.finish();
                let _ = dash.audio.finish();
            }
            if self.http.hls_dir_keep {
                // At least the playlist, now ending with EXT-X-ENDLIST, goes to disk again.
                self.shelf
                    .write_to_disk(key, &packager.hls, closed.segments.max(1) as usize);
            } else {
                self.shelf.remove_from_disk(key);
            }
            packager.feeder = None;
            packager.stopped = Some(now);
            packager.last_used = now;
        }
        self.broadcast(key, now);
    }

    /// From the timer: stop packaging streams nobody asked for within `http.hls_idle_ms` (on
    /// demand), and free the windows of streams that ended that long ago.
    fn sweep(&mut self, now: Instant) {
        let idle = self.hls_idle();
        if self.hls_on_demand() {
            let stale: Vec<StreamKey> = self
                .packagers
                .iter()
                .filter(|(_, seg)| now.saturating_duration_since(lock(seg).last_used) >= idle)
                .map(|(key, _)| key.clone())
                .collect();
            // They stop being fed; `evict_idle` below frees them unless a request came in
            // meanwhile (it checks again under the lock), in which case the next request
            // starts them again.
            for key in stale {
                if let Some(seg) = self.packagers.remove(&key) {
                    let mut packager = lock(&seg);
                    packager.feeder = None;
                    packager.stopped = Some(now);
                }
                tracing::info!(worker = self.me, stream = %key, idle_ms = idle.as_millis() as u64,
                    "HLS/DASH packaging stopped: no HTTP request");
            }
        }
        for key in self.shelf.evict_idle(now, idle) {
            tracing::debug!(worker = self.me, stream = %key, "HLS/DASH window freed");
        }
    }

    /// `key` made progress: every worker answers its held requests for it.
    fn broadcast(&mut self, key: &StreamKey, now: Instant) {
        self.actions
            .push_back(PackagingAction::Progress { key: key.clone() });
        self.progress(key, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_stream_is_freed_after_the_idle_time_however_often_it_is_asked_for() {
        let shelf = HlsShelf::new(None);
        let key = StreamKey::new("live", "ended");
        let (seg, _) = shelf.open(&key, &HttpConfig::default());
        let idle = Duration::from_secs(30);
        let t0 = Instant::now();
        lock(&seg).stopped = Some(t0);
        // A viewer keeps polling the final playlist.
        for s in [1, 10, 29] {
            lock(&seg).last_used = t0 + Duration::from_secs(s);
            assert!(shelf
                .evict_idle(t0 + Duration::from_secs(s), idle)
                .is_empty());
        }
        lock(&seg).last_used = t0 + Duration::from_secs(30);
        assert_eq!(
            shelf.evict_idle(t0 + idle, idle),
            std::slice::from_ref(&key)
        );
        assert!(shelf.get(&key).is_none());
        drop(shelf);
        assert_eq!(
            Arc::strong_count(&seg),
            1,
            "nothing else keeps the packagers alive"
        );
    }

    #[test]
    fn a_fed_stream_is_never_freed() {
        let shelf = HlsShelf::new(None);
        let key = StreamKey::new("live", "fed");
        let (seg, _) = shelf.open(&key, &HttpConfig::default());
        let t0 = Instant::now();
        lock(&seg).feeder = Some(0);
        assert!(shelf
            .evict_idle(t0 + Duration::from_secs(3600), Duration::from_secs(30))
            .is_empty());
    }
}
