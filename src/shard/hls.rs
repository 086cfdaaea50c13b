//! HLS on the workers. The worker that owns a stream packages it once (a `Segmenter` per
//! stream, fed from the encode-once packets); any worker serves the playlist and the shared
//! segment bytes. Blocking playlist reloads (`_HLS_msn`/`_HLS_part`) are held open on the
//! event loop and answered when the owner reports progress over the bus.
//!
//! The segmenter sits behind a mutex shared by the owner (one lock per packaged message of the
//! stream, never per viewer) and the workers answering requests (one lock per request).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::bus::BusMsg;
use super::conn::{HttpPhase, Proto};
use super::worker::Worker;
use crate::config::HttpConfig;
use crate::fanout::{MediaKind, Packet, Source, StreamKey};
use crate::http;
use crate::package::dash::{self, DashTrack};
use crate::package::hls::{self, Availability, BlockingAnswer, Resource};
use crate::package::{
    Container, Frame, FrameKind, PackageError, Progress, Segmenter, SegmenterConfig, Tracks,
};

/// One stream's packagers: HLS (muxed), and for DASH one video-only and one audio-only fMP4
/// segmenter (dash.js plays no muxed representations).
pub struct Packager {
    pub hls: Segmenter,
    pub dash: Option<DashPackagers>,
    /// The stream's owner feeds it (the stream is published and packaged).
    fed: bool,
    /// The last HTTP request for the stream, or when feeding stopped: idle entries are freed.
    last_used: Instant,
    /// When a worker last asked the owner to start feeding it (on-demand packaging).
    start_asked: Option<Instant>,
}

/// The two DASH adaptation sets of a stream.
pub struct DashPackagers {
    pub video: Segmenter,
    pub audio: Segmenter,
}

impl Packager {
    /// Pushes one frame, received at wall clock `wall` (Unix ms), to every segmenter; the HLS
    /// progress, plus whether a DASH segment completed.
    fn push(&mut self, frame: &Frame, wall: u64) -> (Result<Progress, PackageError>, bool) {
        let progress = self.hls.push(frame, wall);
        let mut dash_segments = false;
        if let Some(dash) = self.dash.as_mut() {
            let target = match frame.kind {
                FrameKind::Video => Some(&mut dash.video),
                FrameKind::Audio => Some(&mut dash.audio),
                FrameKind::Metadata => None,
            };
            if let Some(target) = target {
                match target.push(frame, wall) {
                    Ok(p) => dash_segments = p.segments > 0,
                    Err(e) => tracing::debug!(error = %e, "DASH packaging skipped a frame"),
                }
            }
        }
        (progress, dash_segments)
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

    fn all(&mut self) -> impl Iterator<Item = &mut Segmenter> {
        let dash = self.dash.as_mut().map(|d| [&mut d.video, &mut d.audio]);
        std::iter::once(&mut self.hls).chain(dash.into_iter().flatten())
    }
}

/// One stream's packagers, shared between its owner and the workers serving it.
pub type SharedSegmenter = Arc<Mutex<Packager>>;

/// Every packaged stream, by name. Entries outlive a publish so a republish continues the
/// same playlist with a discontinuity.
#[derive(Default)]
pub struct HlsShelf {
    streams: Mutex<HashMap<StreamKey, SharedSegmenter>>,
    /// Where segments also go to disk (`http.hls_dir`), through the writer thread.
    disk: Option<(PathBuf, SyncSender<DiskWrite>)>,
}

/// One file operation for the disk writer thread.
pub enum DiskWrite {
    /// Write `data` to `path` (through a temporary file and a rename).
    Write { path: PathBuf, data: Bytes },
    /// Remove a segment that left the window.
    Remove { path: PathBuf },
}

/// Files waiting for the disk writer; past this, writes are dropped with a warning rather than
/// stalling a worker.
const DISK_QUEUE: usize = 256;

/// Starts the thread that writes HLS files under `dir`; it ends when every sender is gone.
pub fn spawn_disk_writer(dir: &Path) -> std::io::Result<(SyncSender<DiskWrite>, JoinHandle<()>)> {
    std::fs::create_dir_all(dir)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<DiskWrite>(DISK_QUEUE);
    let handle = std::thread::Builder::new()
        .name("hls-disk".to_string())
        .spawn(move || {
            for op in rx {
                let result = match &op {
                    DiskWrite::Write { path, data } => write_atomically(path, data),
                    DiskWrite::Remove { path } => std::fs::remove_file(path).or_else(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    }),
                };
                if let Err(e) = result {
                    let path = match &op {
                        DiskWrite::Write { path, .. } | DiskWrite::Remove { path } => path,
                    };
                    tracing::warn!(path = %path.display(), error = %e, "HLS disk write failed");
                }
            }
        })?;
    Ok((tx, handle))
}

fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

/// `app/name` as a relative directory, or `None` when a component could escape the HLS
/// directory or is not a plain name (stream keys come from clients).
fn safe_relative(key: &StreamKey) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in key.as_str().split('/') {
        let plain = !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !plain {
            return None;
        }
        out.push(part);
    }
    Some(out)
}

/// The on-disk playlist: the media playlist without LL-HLS parts (only whole segments are
/// written) and without blocking-reload control.
fn disk_playlist(seg: &Segmenter, stream: &str) -> Bytes {
    let text = playlist_for(seg, stream);
    let text = String::from_utf8_lossy(&text);
    let kept: String = text
        .lines()
        .filter(|l| {
            !(l.starts_with("#EXT-X-PART")
                || l.starts_with("#EXT-X-PRELOAD-HINT")
                || l.starts_with("#EXT-X-SERVER-CONTROL"))
        })
        .flat_map(|l| [l, "\n"])
        .collect();
    Bytes::from(kept)
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

    /// Sends the segments `progress` completed, the playlist, and removals of segments that
    /// left the window, to the disk writer. Never blocks: when the writer is behind, the files
    /// that do not fit its queue are dropped with a warning; returns how many.
    fn write_to_disk(&self, key: &StreamKey, seg: &Segmenter, new_segments: usize) -> usize {
        let Some((dir, sender)) = &self.disk else {
            return 0;
        };
        if new_segments == 0 {
            return 0;
        }
        let Some(relative) = safe_relative(key) else {
            tracing::warn!(stream = %key, "stream name is not a plain path: not written to disk");
            return 0;
        };
        let stream_dir = dir.join(&relative);
        let stream = relative
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let container = seg.config().container;
        let mut ops = Vec::new();
        let count = seg.segments().len();
        for s in seg.segments().skip(count.saturating_sub(new_segments)) {
            let name = Resource::Segment(s.msn).uri(container);
            ops.push(DiskWrite::Write {
                path: stream_dir.join(name),
                data: s.data.clone(),
            });
            if let Some(init) = seg.init(s.init_id) {
                let name = Resource::Init(s.init_id).uri(container);
                if container == Container::Fmp4 {
                    ops.push(DiskWrite::Write {
                        path: stream_dir.join(name),
                        data: init.clone(),
                    });
                }
            }
        }
        if let Some(first) = seg.segments().next() {
            for gone in first.msn.saturating_sub(new_segments as u64)..first.msn {
                let name = Resource::Segment(gone).uri(container);
                ops.push(DiskWrite::Remove {
                    path: stream_dir.join(name),
                });
            }
        }
        let playlist_path = stream_dir.with_extension("m3u8");
        ops.push(DiskWrite::Write {
            path: playlist_path,
            data: disk_playlist(seg, &stream),
        });
        let total = ops.len();
        let dropped = ops
            .into_iter()
            .map(|op| sender.try_send(op).is_err())
            .filter(|&failed| failed)
            .count();
        if dropped > 0 {
            tracing::warn!(stream = %key, dropped, total, "HLS disk writer is behind: files not written");
        }
        dropped
    }

    /// The packager of `key`, if it was ever published.
    pub fn get(&self, key: &StreamKey) -> Option<SharedSegmenter> {
        lock(&self.streams).get(key).cloned()
    }

    /// The packager of `key`, created now if new; `true` when it already existed.
    pub fn open(&self, key: &StreamKey, config: &HttpConfig) -> (SharedSegmenter, bool) {
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
            ..SegmenterConfig::default()
        });
        let dash_segmenter = |tracks| {
            Segmenter::new(SegmenterConfig {
                container: Container::Fmp4,
                tracks,
                target_duration_ms: config.hls_segment_ms,
                part_target_ms: None,
                window: config.hls_window,
            })
        };
        let dash = config.dash.then(|| DashPackagers {
            video: dash_segmenter(Tracks::VideoOnly),
            audio: dash_segmenter(Tracks::AudioOnly),
        });
        let seg = Arc::new(Mutex::new(Packager {
            hls,
            dash,
            fed: false,
            last_used: Instant::now(),
            start_asked: None,
        }));
        map.insert(key.clone(), seg.clone());
        (seg, false)
    }

    /// Forgets `key`'s packagers (its window of segments is freed with the last reference).
    fn remove(&self, key: &StreamKey) {
        lock(&self.streams).remove(key);
    }

    /// Forgets every stream nobody feeds and nobody asked for within `idle`; returns them.
    fn evict_idle(&self, now: Instant, idle: Duration) -> Vec<StreamKey> {
        let mut gone = Vec::new();
        lock(&self.streams).retain(|key, seg| {
            let p = lock(seg);
            let keep = p.fed || now.saturating_duration_since(p.last_used) < idle;
            if !keep {
                gone.push(key.clone());
            }
            keep
        });
        gone
    }
}

/// An HLS request held open: a blocking playlist reload waiting for a part or segment, or a
/// request for the part the playlist's preload hint names.
pub struct HeldRequest {
    conn: usize,
    key: StreamKey,
    what: Awaited,
    keep_alive: bool,
    /// The request was HEAD: answer with the head only.
    head_only: bool,
    deadline: Instant,
}

/// What an HLS or DASH request asks for; held while it is not there yet.
pub(super) enum Awaited {
    /// `{stream}.m3u8`: once a segment is complete; with `_HLS_msn=M[&_HLS_part=P]`
    /// (`block`), once the playlist holds that segment or part.
    Playlist {
        stream: String,
        block: Option<(u64, Option<u64>)>,
    },
    /// A segment, part or init segment; only the hinted part of the HLS rendition waits.
    Resource {
        rendition: Option<String>,
        resource: Resource,
    },
    /// `{stream}.mpd`: once the video (or, without video, the audio) has a segment.
    Manifest { stream: String },
}

/// A request's answer, or a reason to hold it.
enum Answer {
    Now(Vec<Bytes>),
    Wait,
}

impl HeldRequest {
    /// The connection waiting.
    pub fn conn(&self) -> usize {
        self.conn
    }
}

fn frame_of(packet: &Packet) -> Frame {
    let kind = match packet.kind {
        MediaKind::Audio => FrameKind::Audio,
        MediaKind::Video => FrameKind::Video,
        MediaKind::Data => FrameKind::Metadata,
    };
    Frame::new(kind, packet.timestamp, packet.wire.payload().clone())
}

fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The media playlist with URIs made relative to `/{app}/{stream}.m3u8`: `{stream}/seg-N.ts`.
fn playlist_for(seg: &Segmenter, stream: &str) -> Bytes {
    let text = hls::media_playlist(seg);
    let prefix = format!("{stream}/");
    let mut out = String::with_capacity(text.len() + 64 * prefix.len());
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            out.push_str(&line.replace("URI=\"", &format!("URI=\"{prefix}")));
        } else {
            out.push_str(&prefix);
            out.push_str(line);
        }
        out.push('\n');
    }
    Bytes::from(out)
}

/// A segment, part or init segment of `seg` as a head plus the shared bytes, or 404.
fn resource_response(
    seg: &Segmenter,
    resource: Resource,
    keep_alive: bool,
    head_only: bool,
    cors: &str,
) -> Vec<Bytes> {
    let body = match resource {
        Resource::Segment(msn) => seg.segment(msn).map(|s| s.data.clone()),
        Resource::Part(msn, i) => seg.part(msn, i).map(|p| p.data.clone()),
        Resource::Init(id) => seg.init(id).cloned(),
    };
    let content_type = match (resource, seg.config().container) {
        (Resource::Init(_), _) => "video/mp4",
        (_, Container::Ts) => "video/mp2t",
        (_, Container::Fmp4) => "video/iso.segment",
    };
    let Some(body) = body else {
        return not_found(keep_alive, cors);
    };
    let head = http::body_head(content_type, body.len(), keep_alive, cors, "max-age=60");
    if head_only {
        vec![head]
    } else {
        vec![head, body]
    }
}

fn not_found(keep_alive: bool, cors: &str) -> Vec<Bytes> {
    vec![http::simple_response(
        404,
        "Not Found",
        "no such segment\n",
        keep_alive,
        cors,
    )]
}

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

impl Worker {
    /// Streams are packaged only once requested (`http.hls_on_demand`, never with `hls_dir`).
    fn hls_on_demand(&self) -> bool {
        self.config.http.hls_on_demand && self.config.http.hls_dir.is_empty()
    }

    fn hls_idle(&self) -> Duration {
        Duration::from_millis(self.config.http.hls_idle_ms)
    }

    /// Owner side: a stream starts publishing here. Packaged at once unless on demand, where
    /// only a stream with recent viewers (a republish) continues its packaging.
    pub(super) fn hls_publish(&mut self, key: &StreamKey, now: Instant) {
        if !(self.config.http.enabled && self.config.http.hls) {
            return;
        }
        let wanted = !self.hls_on_demand()
            || self.hls.get(key).is_some_and(|seg| {
                now.saturating_duration_since(lock(&seg).last_used) < self.hls_idle()
            });
        if wanted {
            self.hls_start(key, now);
        }
    }

    /// Owner side: start feeding `key`'s packagers (a publish, or the first request on
    /// demand), seeded with the stream's fast-start cache (metadata, sequence headers and the
    /// GOP so far) so the open segment starts at its keyframe. After an earlier publish the
    /// playlist continues with a discontinuity.
    pub(super) fn hls_start(&mut self, key: &StreamKey, now: Instant) {
        if self.packagers.contains_key(key)
            || !(self.config.http.enabled && self.config.http.hls)
            || !matches!(
                self.streams.get(key).map(|s| s.source),
                Some(Source::Local(_))
            )
        {
            return;
        }
        let seed = self.snapshot(key);
        let (seg, existed) = self.hls.open(key, &self.config.http);
        {
            let mut packager = lock(&seg);
            if existed && packager.hls.next_msn() > 0 {
                for s in packager.all() {
                    let _ = s.discontinuity();
                }
            }
            packager.fed = true;
            packager.start_asked = None;
            packager.last_used = now;
            // Cached packets arrived before now: stamp each with its age behind the newest,
            // which arrived with the publisher's last read.
            let newest = seed.last().map_or(0, |p| p.timestamp);
            let since_read = match self.streams.get(key).map(|s| s.source) {
                Some(Source::Local(publisher)) => self.conns.get(publisher).map_or(0, |c| {
                    Instant::now()
                        .saturating_duration_since(c.last_read)
                        .as_millis() as u64
                }),
                _ => 0,
            };
            let wall = wall_clock_ms().saturating_sub(since_read);
            for packet in &seed {
                let age = u64::from(newest.wrapping_sub(packet.timestamp));
                let _ = packager.push(&frame_of(packet), wall.saturating_sub(age));
            }
        }
        tracing::info!(worker = self.index, stream = %key, seeded = seed.len(), "HLS/DASH packaging started");
        self.packagers.insert(key.clone(), seg);
        self.hls_broadcast(key);
    }

    /// Owner side: package one packet.
    pub(super) fn hls_package(&mut self, key: &StreamKey, packet: &Packet) {
        let Some(seg) = self.packagers.get(key) else {
            return;
        };
        let mut packager = lock(seg);
        let (progress, dash_segments) = packager.push(&frame_of(packet), wall_clock_ms());
        if let Ok(p) = &progress {
            self.hls
                .write_to_disk(key, &packager.hls, p.segments as usize);
        }
        drop(packager);
        match progress {
            Ok(p) if p.parts > 0 || p.segments > 0 || dash_segments => self.hls_broadcast(key),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(worker = self.index, stream = %key, error = %e, "HLS packaging skipped a frame");
            }
        }
    }

    /// Owner side: the publisher left; complete the open segment and end the presentation
    /// (EXT-X-ENDLIST, a static MPD); the window stays served until idle.
    pub(super) fn hls_unpublish(&mut self, key: &StreamKey, now: Instant) {
        if let Some(seg) = self.packagers.remove(key) {
            {
                let mut packager = lock(&seg);
                for s in packager.all() {
                    let _ = s.finish();
                }
                packager.fed = false;
                packager.last_used = now;
            }
            self.hls_broadcast(key);
        }
    }

    /// From the timer: stop packaging streams nobody asked for within `http.hls_idle_ms` (on
    /// demand), and free the windows of streams that ended that long ago.
    pub(super) fn hls_sweep(&mut self, now: Instant) {
        let idle = self.hls_idle();
        if self.hls_on_demand() {
            let stale: Vec<StreamKey> = self
                .packagers
                .iter()
                .filter(|(_, seg)| now.saturating_duration_since(lock(seg).last_used) >= idle)
                .map(|(key, _)| key.clone())
                .collect();
            for key in stale {
                self.packagers.remove(&key);
                self.hls.remove(&key);
                tracing::info!(worker = self.index, stream = %key, idle_ms = idle.as_millis() as u64,
                    "HLS/DASH packaging stopped: no HTTP request");
            }
        }
        for key in self.hls.evict_idle(now, idle) {
            tracing::debug!(worker = self.index, stream = %key, "HLS/DASH window freed");
        }
    }

    /// Serving side: the packagers of `key` for a request, marked as used. On demand, a
    /// published stream that is not packaged yet gets its packagers and its owner is asked to
    /// feed them. `None`: the stream is neither packaged nor published.
    fn hls_demand(&mut self, key: &StreamKey, now: Instant) -> Option<SharedSegmenter> {
        if !(self.config.http.enabled && self.config.http.hls) {
            return None;
        }
        let on_demand = self.hls_on_demand();
        let owner = if on_demand {
            self.directory.owner(key)
        } else {
            None
        };
        let seg = match self.hls.get(key) {
            Some(seg) => seg,
            None if owner.is_some() => self.hls.open(key, &self.config.http).0,
            None => return None,
        };
        let ask = {
            let mut p = lock(&seg);
            p.last_used = now;
            let ask = !p.fed
                && owner.is_some()
                && p.start_asked.map_or(true, |t| {
                    now.saturating_duration_since(t) > Duration::from_secs(1)
                });
            if ask {
                p.start_asked = Some(now);
            }
            ask
        };
        match owner {
            Some(owner) if ask && owner == self.index => self.hls_start(key, now),
            Some(owner) if ask => {
                self.bus.send(owner, BusMsg::HlsStart { key: key.clone() });
            }
            _ => {}
        }
        Some(seg)
    }

    fn hls_broadcast(&mut self, key: &StreamKey) {
        for worker in 0..self.bus.workers() {
            if worker == self.index {
                continue;
            }
            self.bus
                .send(worker, BusMsg::HlsProgress { key: key.clone() });
        }
        self.hls_progress(key, Instant::now());
    }

    /// Answers held requests for `key` that can be answered now.
    pub(super) fn hls_progress(&mut self, key: &StreamKey, now: Instant) {
        if !self.held.iter().any(|h| &h.key == key) {
            return;
        }
        let held = std::mem::take(&mut self.held);
        for h in held {
            if &h.key == key || now >= h.deadline {
                self.answer_held(h, now);
            } else {
                self.held.push(h);
            }
        }
    }

    /// Answers held requests whose deadline passed (from the timer tick).
    pub(super) fn hls_expire(&mut self, now: Instant) {
        if self.held.iter().any(|h| now >= h.deadline) {
            let held = std::mem::take(&mut self.held);
            for h in held {
                if now >= h.deadline {
                    self.answer_held(h, now);
                } else {
                    self.held.push(h);
                }
            }
        }
    }

    fn answer_held(&mut self, h: HeldRequest, now: Instant) {
        let response = match self.hls.get(&h.key) {
            Some(seg) => self.answer(&lock(&seg), &h.what, h.keep_alive, h.head_only),
            None => Answer::Now(self.not_published(h.keep_alive)),
        };
        match response {
            Answer::Now(parts) => self.finish_http_response(h.conn, parts, h.keep_alive),
            Answer::Wait if now >= h.deadline => {
                let late = http::simple_response(
                    503,
                    "Service Unavailable",
                    "the requested segment or part did not arrive in time\n",
                    h.keep_alive,
                    &self.config.http.cors_allow_origin,
                );
                self.finish_http_response(h.conn, vec![late], h.keep_alive)
            }
            Answer::Wait => self.held.push(h),
        }
    }

    /// Queues a response on an HTTP connection that was held, then resumes reading it.
    fn finish_http_response(&mut self, conn_key: usize, response: Vec<Bytes>, keep_alive: bool) {
        let Some(conn) = self.conns.get_mut(conn_key) else {
            return;
        };
        for bytes in response {
            conn.out.push_control(bytes);
        }
        conn.proto = Proto::Http(HttpPhase::Request);
        if !keep_alive {
            conn.closing = Some("HTTP response sent".to_string());
        }
        conn.schedule_write(conn_key, &mut self.write_list);
        self.http_input(conn_key);
    }

    fn not_published(&self, keep_alive: bool) -> Vec<Bytes> {
        vec![http::simple_response(
            404,
            "Not Found",
            "stream is not published\n",
            keep_alive,
            &self.config.http.cors_allow_origin,
        )]
    }

    /// Answers `what` from `packager` now, or says to wait for the owner's progress.
    fn answer(
        &self,
        packager: &Packager,
        what: &Awaited,
        keep_alive: bool,
        head_only: bool,
    ) -> Answer {
        let cors = &self.config.http.cors_allow_origin;
        let head = |bytes: Bytes| {
            if head_only {
                http::head_of(bytes)
            } else {
                bytes
            }
        };
        match what {
            Awaited::Playlist { stream, block } => {
                let seg = &packager.hls;
                let ready = match block {
                    None => packager.hls_ready(),
                    Some((msn, part)) => match hls::blocking_reload(seg, *msn, *part) {
                        BlockingAnswer::Ready => true,
                        BlockingAnswer::Wait => false,
                        BlockingAnswer::BadRequest => {
                            return Answer::Now(vec![http::simple_response(
                                400,
                                "Bad Request",
                                "_HLS_msn/_HLS_part too far ahead\n",
                                keep_alive,
                                cors,
                            )]);
                        }
                    },
                };
                if !ready {
                    return Answer::Wait;
                }
                Answer::Now(vec![head(http::body_response(
                    PLAYLIST_TYPE,
                    &playlist_for(seg, stream),
                    keep_alive,
                    cors,
                    "no-cache",
                ))])
            }
            Awaited::Resource {
                rendition,
                resource,
            } => {
                let seg = match (rendition.as_deref(), packager.dash.as_ref()) {
                    (None, _) => &packager.hls,
                    (Some("video"), Some(dash)) => &dash.video,
                    (Some("audio"), Some(dash)) => &dash.audio,
                    _ => return Answer::Now(not_found(keep_alive, cors)),
                };
                if rendition.is_none() && hls::availability(seg, *resource) == Availability::Pending
                {
                    return Answer::Wait;
                }
                Answer::Now(resource_response(
                    seg, *resource, keep_alive, head_only, cors,
                ))
            }
            Awaited::Manifest { stream } => {
                let Some(dash) = packager.dash.as_ref() else {
                    return Answer::Now(vec![http::simple_response(
                        404,
                        "Not Found",
                        "DASH is off\n",
                        keep_alive,
                        cors,
                    )]);
                };
                if !packager.dash_ready() {
                    return Answer::Wait;
                }
                let video_prefix = format!("{stream}/video/");
                let audio_prefix = format!("{stream}/audio/");
                let mut tracks = Vec::with_capacity(2);
                if dash.video.segments().len() > 0 {
                    tracks.push(DashTrack {
                        segmenter: &dash.video,
                        prefix: &video_prefix,
                    });
                }
                if dash.audio.segments().len() > 0 {
                    tracks.push(DashTrack {
                        segmenter: &dash.audio,
                        prefix: &audio_prefix,
                    });
                }
                let mpd = dash::mpd(&tracks, wall_clock_ms());
                Answer::Now(vec![head(http::body_response(
                    "application/dash+xml",
                    mpd.as_bytes(),
                    keep_alive,
                    cors,
                    "no-cache",
                ))])
            }
        }
    }

    /// Serves an HLS/DASH request for `key` (any worker): the answer now, or `None` when the
    /// request is held until the owner's packagers make what it asks for (at most three target
    /// durations, then 503).
    pub(super) fn hls_request(
        &mut self,
        conn: usize,
        key: StreamKey,
        what: Awaited,
        keep_alive: bool,
        head_only: bool,
    ) -> Option<Vec<Bytes>> {
        let now = Instant::now();
        let Some(seg) = self.hls_demand(&key, now) else {
            return Some(self.not_published(keep_alive));
        };
        let (answer, live) = {
            let packager = lock(&seg);
            let live = packager.fed || packager.start_asked.is_some();
            (self.answer(&packager, &what, keep_alive, head_only), live)
        };
        match answer {
            Answer::Now(parts) => Some(parts),
            Answer::Wait if !live => Some(self.not_published(keep_alive)),
            Answer::Wait => {
                let hold = Duration::from_millis(u64::from(self.config.http.hls_segment_ms) * 3);
                self.held.push(HeldRequest {
                    conn,
                    key,
                    what,
                    keep_alive,
                    head_only,
                    deadline: now + hold,
                });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_queue_drops_files_instead_of_blocking_the_worker() {
        use crate::media::flv::FlvReader;
        let data = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/media/h264_aac.flv"
        ))
        .unwrap();
        let mut buf = bytes::BytesMut::from(&data[..]);
        let mut reader = FlvReader::new();
        let mut seg = Segmenter::new(SegmenterConfig {
            target_duration_ms: 500,
            ..SegmenterConfig::default()
        });
        let mut segments = 0;
        while let Some(tag) = reader.next_tag(&mut buf).unwrap() {
            let kind = match tag.tag_type {
                8 => FrameKind::Audio,
                9 => FrameKind::Video,
                _ => FrameKind::Metadata,
            };
            let frame = Frame::new(kind, tag.timestamp, tag.data.clone());
            let progress = seg.push(&frame, 1_700_000_000_000 + u64::from(tag.timestamp));
            segments += progress.map_or(0, |p| p.segments);
        }
        segments += seg.flush().segments;
        assert!(segments >= 2, "the fixture cuts several segments");
        // A writer that takes nothing: room for exactly one file.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let shelf = HlsShelf::new(Some((PathBuf::from("/nonexistent"), tx)));
        let key = StreamKey::new("live", "disk");
        let dropped = shelf.write_to_disk(&key, &seg, segments as usize);
        // Each new segment and the playlist were due: all but the first were dropped.
        assert_eq!(dropped, segments as usize);
        assert!(matches!(rx.try_recv(), Ok(DiskWrite::Write { .. })));
        assert!(rx.try_recv().is_err(), "nothing else was queued");
        // With room again, the next call queues its files.
        let dropped = shelf.write_to_disk(&key, &seg, 1);
        assert_eq!(dropped, 1, "one segment + the playlist, one slot");
    }

    #[test]
    fn only_plain_stream_names_map_to_disk_paths() {
        assert_eq!(
            safe_relative(&StreamKey::new("live", "cam-1.hd")),
            Some(PathBuf::from("live/cam-1.hd"))
        );
        assert_eq!(safe_relative(&StreamKey::new("live", "..")), None);
        assert_eq!(safe_relative(&StreamKey::new("..", "x")), None);
        assert_eq!(safe_relative(&StreamKey::new("live", "a b")), None);
        assert_eq!(safe_relative(&StreamKey::new("live", "")), None);
    }
}
