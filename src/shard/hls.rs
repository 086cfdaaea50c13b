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
use crate::fanout::{MediaKind, Packet, StreamKey};
use crate::http;
use crate::package::dash::{self, DashTrack};
use crate::package::hls::{self, Availability, BlockingAnswer, Resource};
use crate::package::{Container, Frame, FrameKind, Segmenter, SegmenterConfig, Tracks};

/// One stream's packagers: HLS (muxed), and for DASH one video-only and one audio-only fMP4
/// segmenter (dash.js plays no muxed representations).
pub struct Packager {
    pub hls: Segmenter,
    pub dash: Option<DashPackagers>,
}

/// The two DASH adaptation sets of a stream.
pub struct DashPackagers {
    pub video: Segmenter,
    pub audio: Segmenter,
}

impl Packager {
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
        let seg = Arc::new(Mutex::new(Packager { hls, dash }));
        map.insert(key.clone(), seg.clone());
        (seg, false)
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

/// What a held request waits for.
enum Awaited {
    /// `{stream}.m3u8?_HLS_msn=M[&_HLS_part=P]`.
    Playlist {
        stream: String,
        msn: u64,
        part: Option<u64>,
    },
    /// The hinted part of the HLS rendition.
    Part(Resource),
}

impl HeldRequest {
    /// The connection waiting.
    pub fn conn(&self) -> usize {
        self.conn
    }
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
    /// Owner side: a stream starts publishing here.
    pub(super) fn hls_publish(&mut self, key: &StreamKey) {
        if !(self.config.http.enabled && self.config.http.hls) {
            return;
        }
        let (seg, existed) = self.hls.open(key, &self.config.http);
        if existed {
            for s in lock(&seg).all() {
                let _ = s.discontinuity();
            }
        }
        self.packagers.insert(key.clone(), seg);
    }

    /// Owner side: package one packet.
    pub(super) fn hls_package(&mut self, key: &StreamKey, packet: &Packet) {
        let Some(seg) = self.packagers.get(key) else {
            return;
        };
        let kind = match packet.kind {
            MediaKind::Audio => FrameKind::Audio,
            MediaKind::Video => FrameKind::Video,
            MediaKind::Data => FrameKind::Metadata,
        };
        let frame = Frame::new(kind, packet.timestamp, packet.wire.payload().clone());
        let wall = wall_clock_ms();
        let mut packager = lock(seg);
        let progress = packager.hls.push(&frame, wall);
        if let Some(dash) = packager.dash.as_mut() {
            let target = match kind {
                FrameKind::Video => Some(&mut dash.video),
                FrameKind::Audio => Some(&mut dash.audio),
                FrameKind::Metadata => None,
            };
            if let Some(target) = target {
                if let Err(e) = target.push(&frame, wall) {
                    tracing::debug!(worker = self.index, stream = %key, error = %e, "DASH packaging skipped a frame");
                }
            }
        }
        if let Ok(p) = &progress {
            self.hls
                .write_to_disk(key, &packager.hls, p.segments as usize);
        }
        drop(packager);
        match progress {
            Ok(p) if p.parts > 0 || p.segments > 0 => self.hls_broadcast(key),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(worker = self.index, stream = %key, error = %e, "HLS packaging skipped a frame");
            }
        }
    }

    /// Owner side: the publisher left; complete the open segment and end the presentation
    /// (EXT-X-ENDLIST, a static MPD) until a publisher returns.
    pub(super) fn hls_unpublish(&mut self, key: &StreamKey) {
        if let Some(seg) = self.packagers.remove(key) {
            for s in lock(&seg).all() {
                let _ = s.finish();
            }
            self.hls_broadcast(key);
        }
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
        let cors = self.config.http.cors_allow_origin.clone();
        let Some(seg) = self.hls.get(&h.key) else {
            return;
        };
        let expired = now >= h.deadline;
        let late = || {
            vec![http::simple_response(
                503,
                "Service Unavailable",
                "the requested part did not arrive in time\n",
                h.keep_alive,
                &cors,
            )]
        };
        let response = {
            let guard = lock(&seg);
            let seg = &guard.hls;
            match &h.what {
                Awaited::Playlist { stream, msn, part } => {
                    match hls::blocking_reload(seg, *msn, *part) {
                        BlockingAnswer::Ready => Some(vec![http::body_response(
                            PLAYLIST_TYPE,
                            &playlist_for(seg, stream),
                            h.keep_alive,
                            &cors,
                            "no-cache",
                        )]),
                        BlockingAnswer::BadRequest => Some(vec![http::simple_response(
                            400,
                            "Bad Request",
                            "_HLS_msn/_HLS_part too far ahead\n",
                            h.keep_alive,
                            &cors,
                        )]),
                        BlockingAnswer::Wait if expired => Some(late()),
                        BlockingAnswer::Wait => None,
                    }
                }
                Awaited::Part(resource) => match hls::availability(seg, *resource) {
                    Availability::Pending if expired => Some(late()),
                    Availability::Pending => None,
                    _ => Some(resource_response(
                        seg,
                        *resource,
                        h.keep_alive,
                        h.head_only,
                        &cors,
                    )),
                },
            }
        };
        match response {
            Some(parts) => self.finish_http_response(h.conn, parts, h.keep_alive),
            None => self.held.push(h),
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

    /// `GET /{app}/{stream}.m3u8`: the playlist now, a held request, or an error.
    /// Returns `None` when the request is held.
    pub(super) fn hls_playlist(
        &mut self,
        conn: usize,
        key: StreamKey,
        stream: &str,
        query: &str,
        keep_alive: bool,
    ) -> Option<Bytes> {
        let cors = self.config.http.cors_allow_origin.clone();
        let Some(seg) = self.hls.get(&key) else {
            return Some(http::simple_response(
                404,
                "Not Found",
                "stream is not published\n",
                keep_alive,
                &cors,
            ));
        };
        let blocking = match http::blocking_params(query) {
            Ok(b) => b,
            Err(e) => {
                let body = format!("{e}\n");
                return Some(http::simple_response(
                    400,
                    "Bad Request",
                    &body,
                    keep_alive,
                    &cors,
                ));
            }
        };
        let packager = lock(&seg);
        let guard = &packager.hls;
        if guard.segments().len() == 0 && guard.open_segment().is_none() && blocking.is_none() {
            return Some(http::simple_response(
                404,
                "Not Found",
                "no segment yet\n",
                keep_alive,
                &cors,
            ));
        }
        if let Some((msn, part)) = blocking {
            match hls::blocking_reload(guard, msn, part) {
                BlockingAnswer::Ready => {}
                BlockingAnswer::BadRequest => {
                    return Some(http::simple_response(
                        400,
                        "Bad Request",
                        "_HLS_msn/_HLS_part too far ahead\n",
                        keep_alive,
                        &cors,
                    ));
                }
                BlockingAnswer::Wait => {
                    let hold =
                        Duration::from_millis(u64::from(self.config.http.hls_segment_ms) * 3);
                    drop(packager);
                    self.held.push(HeldRequest {
                        conn,
                        key,
                        what: Awaited::Playlist {
                            stream: stream.to_string(),
                            msn,
                            part,
                        },
                        keep_alive,
                        head_only: false,
                        deadline: Instant::now() + hold,
                    });
                    return None;
                }
            }
        }
        Some(http::body_response(
            PLAYLIST_TYPE,
            &playlist_for(guard, stream),
            keep_alive,
            &cors,
            "no-cache",
        ))
    }

    /// `GET /{app}/{stream}[/video|/audio]/{resource}`: a segment, part or init segment of the
    /// HLS rendition (or of a DASH adaptation set) as a head plus the shared bytes. A request
    /// for the part the preload hint names is held until it completes (`None`).
    pub(super) fn hls_resource(
        &mut self,
        conn: usize,
        key: StreamKey,
        rendition: Option<&str>,
        resource: &str,
        keep_alive: bool,
        head_only: bool,
    ) -> Option<Vec<Bytes>> {
        let cors = &self.config.http.cors_allow_origin;
        let (Some(shared), Some(resource)) = (self.hls.get(&key), Resource::parse(resource)) else {
            return Some(not_found(keep_alive, cors));
        };
        let packager = lock(&shared);
        let seg = match (rendition, packager.dash.as_ref()) {
            (None, _) => &packager.hls,
            (Some("video"), Some(dash)) => &dash.video,
            (Some("audio"), Some(dash)) => &dash.audio,
            _ => return Some(not_found(keep_alive, cors)),
        };
        if rendition.is_none() && hls::availability(seg, resource) == Availability::Pending {
            let hold = Duration::from_millis(u64::from(self.config.http.hls_segment_ms) * 3);
            drop(packager);
            self.held.push(HeldRequest {
                conn,
                key,
                what: Awaited::Part(resource),
                keep_alive,
                head_only,
                deadline: Instant::now() + hold,
            });
            return None;
        }
        Some(resource_response(
            seg, resource, keep_alive, head_only, cors,
        ))
    }

    /// `GET /{app}/{stream}.mpd`: the dynamic DASH manifest over the stream's video-only and
    /// audio-only fMP4 segmenters.
    pub(super) fn dash_manifest(&self, key: &StreamKey, stream: &str, keep_alive: bool) -> Bytes {
        let cors = &self.config.http.cors_allow_origin;
        let not_found = |why: &str| http::simple_response(404, "Not Found", why, keep_alive, cors);
        let Some(shared) = self.hls.get(key) else {
            return not_found("stream is not published\n");
        };
        let packager = lock(&shared);
        let Some(dash) = packager.dash.as_ref() else {
            return not_found("DASH is off\n");
        };
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
        if tracks.is_empty() {
            return not_found("no segment yet\n");
        }
        let mpd = dash::mpd(&tracks, wall_clock_ms());
        http::body_response(
            "application/dash+xml",
            mpd.as_bytes(),
            keep_alive,
            cors,
            "no-cache",
        )
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
