//! Serving HLS and DASH on any worker: playlists, manifests, segments and parts from the
//! shared packagers, and requests held open (blocking reloads, the preload-hinted part, a first
//! request waiting for its first segment) until the owner reports progress over the bus.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{lock, wall_clock_ms, Packager, Packaging, PackagingAction, SharedPackager};
use crate::fanout::{ConnKey, StreamKey};
use crate::http;
use crate::package::dash::{self, DashTrack};
use crate::package::hls::{self, Availability, BlockingAnswer, Resource};
use crate::package::{Container, Segmenter};

/// An HLS request held open: a blocking playlist reload waiting for a part or segment, or a
/// request for the part the playlist's preload hint names.
pub struct HeldRequest {
    conn: ConnKey,
    key: StreamKey,
    what: Awaited,
    keep_alive: bool,
    /// The request was HEAD: answer with the head only.
    head_only: bool,
    deadline: Instant,
}

/// What an HLS or DASH request asks for; held while it is not there yet.
pub(in crate::shard) enum Awaited {
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
    pub fn conn(&self) -> ConnKey {
        self.conn
    }
}

/// The media playlist with URIs relative to `/{app}/{stream}.m3u8`: `{stream}/seg-N.ts`, the
/// name percent-encoded so a player resolving them requests the same stream.
pub(super) fn playlist_for(seg: &Segmenter, stream: &str) -> Bytes {
    let prefix = format!("{}/", http::encode_segment(stream));
    Bytes::from(hls::media_playlist(seg, &prefix))
}

/// A segment, part or init segment of `seg` as a head plus the shared bytes, or 404.
fn resource_response(
    seg: &Segmenter,
    resource: Resource,
    keep_alive: bool,
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
    vec![head, body]
}

/// The pieces of an answer as sent for the request's method: for HEAD, the head of the first
/// piece alone (whatever the status), else every piece.
pub(in crate::shard) fn for_method(mut pieces: Vec<Bytes>, head_only: bool) -> Vec<Bytes> {
    if head_only {
        pieces.truncate(1);
        if let Some(first) = pieces.pop() {
            pieces.push(http::head_of(first));
        }
    }
    pieces
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

impl Packaging {
    /// Serving side: the packagers of `key` for a request, marked as used. On demand, a
    /// published stream that is not packaged yet gets its packagers and its owner is asked to
    /// feed them. `None`: the stream is neither packaged nor published.
    fn hls_demand(&mut self, key: &StreamKey, now: Instant) -> Option<SharedPackager> {
        if !self.enabled() {
            return None;
        }
        let known = self.shelf.get(key);
        // The shared directory is asked only when the stream is not being packaged.
        let fed = known.as_ref().is_some_and(|seg| {
            let mut p = lock(seg);
            p.last_used = now;
            p.feeder.is_some()
        });
        if fed || !self.hls_on_demand() {
            return known;
        }
        let owner = self.directory.owner(key);
        let seg = match known {
            Some(seg) => seg,
            None if owner.is_some() => self.shelf.open(key, &self.http).0,
            None => return None,
        };
        let ask = {
            let mut p = lock(&seg);
            p.last_used = now;
            if owner.is_none() {
                p.start_asked = None; // nobody publishes it (any more): nothing to wait for
            }
            let ask = p.feeder.is_none()
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
            Some(owner) if ask && owner == self.me => {
                self.actions
                    .push_back(PackagingAction::Start { key: key.clone() });
            }
            Some(owner) if ask => {
                let key = key.clone();
                self.actions
                    .push_back(PackagingAction::AskOwner { owner, key });
            }
            _ => {}
        }
        Some(seg)
    }

    /// Answers held requests for `key` that can be answered now (after the owner's progress).
    pub fn progress(&mut self, key: &StreamKey, now: Instant) {
        self.answer_held_where(now, |h| &h.key == key);
    }

    /// Answers held requests whose deadline passed (from the timer tick).
    pub(super) fn expire(&mut self, now: Instant) {
        self.answer_held_where(now, |_| false);
    }

    /// Answers the held requests `pick` selects and those past their deadline.
    fn answer_held_where(&mut self, now: Instant, pick: impl Fn(&HeldRequest) -> bool) {
        if !self.held.iter().any(|h| pick(h) || now >= h.deadline) {
            return;
        }
        for h in std::mem::take(&mut self.held) {
            if pick(&h) || now >= h.deadline {
                self.answer_held(h, now);
            } else {
                self.held.push(h);
            }
        }
    }

    fn answer_held(&mut self, h: HeldRequest, now: Instant) {
        let response = match self.shelf.get(&h.key) {
            Some(seg) => self.answer(&mut lock(&seg), &h.what, h.keep_alive),
            None => Answer::Now(self.not_published(h.keep_alive)),
        };
        match response {
            Answer::Now(parts) => self.finish_held(&h, parts),
            Answer::Wait if now >= h.deadline => {
                let late = http::simple_response(
                    503,
                    "Service Unavailable",
                    "the requested segment or part did not arrive in time\n",
                    h.keep_alive,
                    &self.http.cors_allow_origin,
                );
                self.finish_held(&h, vec![late])
            }
            Answer::Wait => self.held.push(h),
        }
    }

    /// The worker queues the answer of a held request and resumes reading its connection.
    fn finish_held(&mut self, h: &HeldRequest, response: Vec<Bytes>) {
        self.actions.push_back(PackagingAction::Answer {
            conn: h.conn,
            pieces: for_method(response, h.head_only),
            keep_alive: h.keep_alive,
        });
    }

    fn not_published(&self, keep_alive: bool) -> Vec<Bytes> {
        vec![http::simple_response(
            404,
            "Not Found",
            "stream is not published\n",
            keep_alive,
            &self.http.cors_allow_origin,
        )]
    }

    /// Answers `what` from `packager` now, or says to wait for the owner's progress.
    fn answer(&self, packager: &mut Packager, what: &Awaited, keep_alive: bool) -> Answer {
        let cors = &self.http.cors_allow_origin;
        match what {
            Awaited::Playlist { stream, block } => {
                let ready = match block {
                    None => packager.hls_ready(),
                    Some((msn, part)) => match hls::blocking_reload(&packager.hls, *msn, *part) {
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
                // The rendered playlist is shared: a head per request, no copy of the body.
                let body = packager.playlist(stream);
                let head = http::body_head(PLAYLIST_TYPE, body.len(), keep_alive, cors, "no-cache");
                Answer::Now(vec![head, body])
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
                Answer::Now(resource_response(seg, *resource, keep_alive, cors))
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
                let stream = http::encode_segment(stream);
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
                Answer::Now(vec![http::body_response(
                    "application/dash+xml",
                    mpd.as_bytes(),
                    keep_alive,
                    cors,
                    "no-cache",
                )])
            }
        }
    }

    /// Serves an HLS/DASH request for `key` (any worker): the answer now, or `None` when the
    /// request is held until the owner's packagers make what it asks for (three target
    /// durations, six for a first request; then 503). HEAD gets the answer's head alone.
    pub fn request(
        &mut self,
        conn: ConnKey,
        key: StreamKey,
        what: Awaited,
        keep_alive: bool,
        head_only: bool,
        now: Instant,
    ) -> Option<Vec<Bytes>> {
        let Some(seg) = self.hls_demand(&key, now) else {
            return Some(self.not_published(keep_alive));
        };
        let (answer, live) = {
            let mut packager = lock(&seg);
            let live = packager.feeder.is_some() || packager.start_asked.is_some();
            (self.answer(&mut packager, &what, keep_alive), live)
        };
        match answer {
            Answer::Now(parts) => Some(for_method(parts, head_only)),
            Answer::Wait if !live => Some(for_method(self.not_published(keep_alive), head_only)),
            Answer::Wait => {
                // A blocking reload or the hinted part waits three target durations (the
                // LL-HLS rule); a first request waits for a whole segment, which ends at a
                // keyframe that may come later than the target: twice that.
                let first = matches!(
                    what,
                    Awaited::Playlist { block: None, .. } | Awaited::Manifest { .. }
                );
                let targets = if first { 6 } else { 3 };
                let hold = Duration::from_millis(u64::from(self.http.hls_segment_ms) * targets);
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
