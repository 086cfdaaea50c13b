//! HLS on the workers. The worker that owns a stream packages it once (a `Segmenter` per
//! stream, fed from the encode-once packets); any worker serves the playlist and the shared
//! segment bytes. Blocking playlist reloads (`_HLS_msn`/`_HLS_part`) are held open on the
//! event loop and answered when the owner reports progress over the bus.
//!
//! The segmenter sits behind a mutex shared by the owner (one lock per packaged message of the
//! stream, never per viewer) and the workers answering requests (one lock per request).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::bus::BusMsg;
use super::conn::{HttpPhase, Proto};
use super::worker::Worker;
use crate::config::HttpConfig;
use crate::fanout::{MediaKind, Packet, StreamKey};
use crate::http;
use crate::package::dash::{self, DashTrack};
use crate::package::hls::{self, BlockingAnswer, Resource};
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
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HlsShelf {
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

/// A blocking playlist request waiting for a part or segment.
pub struct HeldRequest {
    conn: usize,
    key: StreamKey,
    stream: String,
    msn: u64,
    part: Option<u64>,
    keep_alive: bool,
    deadline: Instant,
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
        drop(packager);
        match progress {
            Ok(p) if p.parts > 0 || p.segments > 0 => self.hls_broadcast(key),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(worker = self.index, stream = %key, error = %e, "HLS packaging skipped a frame");
            }
        }
    }

    /// Owner side: the publisher left; complete the open segment.
    pub(super) fn hls_unpublish(&mut self, key: &StreamKey) {
        if let Some(seg) = self.packagers.remove(key) {
            for s in lock(&seg).all() {
                let _ = s.flush();
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
        let response = {
            let guard = lock(&seg);
            let seg = &guard.hls;
            match hls::blocking_reload(seg, h.msn, h.part) {
                BlockingAnswer::Ready => Some(http::body_response(
                    PLAYLIST_TYPE,
                    &playlist_for(seg, &h.stream),
                    h.keep_alive,
                    &cors,
                    "no-cache",
                )),
                BlockingAnswer::BadRequest => Some(http::simple_response(
                    400,
                    "Bad Request",
                    "_HLS_msn/_HLS_part too far ahead\n",
                    h.keep_alive,
                    &cors,
                )),
                BlockingAnswer::Wait if now >= h.deadline => Some(http::simple_response(
                    503,
                    "Service Unavailable",
                    "the requested part did not arrive in time\n",
                    h.keep_alive,
                    &cors,
                )),
                BlockingAnswer::Wait => None,
            }
        };
        match response {
            Some(bytes) => self.finish_http_response(h.conn, bytes, h.keep_alive),
            None => self.held.push(h),
        }
    }

    /// Queues a response on an HTTP connection that was held, then resumes reading it.
    fn finish_http_response(&mut self, conn_key: usize, response: Bytes, keep_alive: bool) {
        let Some(conn) = self.conns.get_mut(conn_key) else {
            return;
        };
        conn.out.push_control(response);
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
                        stream: stream.to_string(),
                        msn,
                        part,
                        keep_alive,
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
    /// HLS rendition (or of a DASH adaptation set) as a head plus the shared bytes.
    pub(super) fn hls_resource(
        &self,
        key: &StreamKey,
        rendition: Option<&str>,
        resource: &str,
        keep_alive: bool,
    ) -> Vec<Bytes> {
        let cors = &self.config.http.cors_allow_origin;
        let not_found = || {
            vec![http::simple_response(
                404,
                "Not Found",
                "no such segment\n",
                keep_alive,
                cors,
            )]
        };
        let Some(shared) = self.hls.get(key) else {
            return not_found();
        };
        let Some(resource) = Resource::parse(resource) else {
            return not_found();
        };
        let packager = lock(&shared);
        let seg = match (rendition, packager.dash.as_ref()) {
            (None, _) => &packager.hls,
            (Some("video"), Some(dash)) => &dash.video,
            (Some("audio"), Some(dash)) => &dash.audio,
            _ => return not_found(),
        };
        let (body, content_type) = match resource {
            Resource::Segment(msn) => (seg.segment(msn).map(|s| s.data.clone()), "segment"),
            Resource::Part(msn, i) => (seg.part(msn, i).map(|p| p.data.clone()), "segment"),
            Resource::Init(id) => (seg.init(id).cloned(), "video/mp4"),
        };
        let content_type = match (content_type, seg.config().container) {
            ("segment", Container::Ts) => "video/mp2t",
            ("segment", Container::Fmp4) => "video/iso.segment",
            (other, _) => other,
        };
        match body {
            Some(body) => vec![
                http::body_head(content_type, body.len(), keep_alive, cors, "max-age=60"),
                body,
            ],
            None => not_found(),
        }
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
