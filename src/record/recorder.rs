//! [`Recorder`]: one recording's bytes, sans-IO. Packets in (as the hub ingested them), the
//! bytes to append to the file out; no file, no thread, no clock.
//!
//! ```text
//!             header packets: kept (the latest of each kind)
//!   Waiting ──────────────────────────────────────────────▶ Waiting
//!      │  audio frames: kept (up to a second's worth)
//!      │  first keyframe (video; audio when the stream has no video):
//!      │    file header, latest metadata and sequence headers at 0, then the kept audio
//!      │    from up to a second before the keyframe, and the keyframe, in time order
//!      ▼
//!    Open { base } ── every packet, its timestamp − base (base: the first frame written,
//!                     so the file starts at 0); a header equal to the last
//!                     one of its kind (resent after a drop) is not written again
//! ```
//! So a file always starts with what a decoder needs, whether the recording began with the
//! publish or mid-stream, and its timeline starts at 0. The muxing is
//! [`flv`](super::flv) or [`mp4`](super::mp4) (the project's fMP4 packager).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::flv::FlvFile;
use super::mp4::Mp4File;
use super::RecordFormat;
use crate::fanout::{MediaKind, Packet};

/// Audio frames kept while waiting for the first keyframe (about 1.5 s of AAC).
const WAITING_AUDIO: usize = 64;
/// How far ahead of the first keyframe kept audio may start (ms).
const AUDIO_LEAD_MS: u32 = 1000;

/// What the caller does with the bytes a call appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// All of them go to the current file (which is opened if none is yet).
    Append,
    /// `out[..at]` goes to the current file, which is then closed; `out[at..]` starts a new
    /// one (an MP4 whose codec configuration changed needs a new `moov`).
    NewFile { at: usize },
}

/// The latest metadata and sequence headers.
#[derive(Debug, Default)]
struct Headers {
    meta: Option<Bytes>,
    video: Option<Bytes>,
    audio: Option<Bytes>,
}

impl Headers {
    fn slot(&mut self, kind: MediaKind) -> &mut Option<Bytes> {
        match kind {
            MediaKind::Data => &mut self.meta,
            MediaKind::Video => &mut self.video,
            MediaKind::Audio => &mut self.audio,
        }
    }

    /// Whether the metadata announces a track with codec id key `key`.
    fn meta_names(&self, key: &[u8]) -> bool {
        self.meta
            .as_ref()
            .is_some_and(|m| m.windows(key.len()).any(|w| w == key))
    }
}

#[derive(Debug)]
enum State {
    /// No frame written yet: waiting for a keyframe.
    Waiting { audio: VecDeque<Packet> },
    /// Writing; timestamps are written relative to `base`.
    Open { base: u32 },
}

/// The container a recording is written in.
#[derive(Debug)]
pub(super) enum Muxer {
    Flv(FlvFile),
    Mp4(Box<Mp4File>),
}

impl Muxer {
    fn begin(&mut self, has_audio: bool, has_video: bool, out: &mut BytesMut) {
        match self {
            Muxer::Flv(f) => f.begin(has_audio, has_video, out),
            Muxer::Mp4(_) => {}
        }
    }

    fn write(
        &mut self,
        kind: MediaKind,
        timestamp: u32,
        payload: &Bytes,
        out: &mut BytesMut,
    ) -> Step {
        match self {
            Muxer::Flv(f) => {
                f.write(kind, timestamp, payload, out);
                Step::Append
            }
            Muxer::Mp4(m) => m.write(kind, timestamp, payload, out),
        }
    }
}

/// One recording's byte production. Call [`push`](Self::push) for every packet of the
/// stream, in order, then [`finish`](Self::finish) once; after each call write what was
/// appended to `out` as the returned [`Step`] says.
#[derive(Debug)]
pub struct Recorder {
    state: State,
    headers: Headers,
    muxer: Muxer,
}

impl Recorder {
    /// A recording in `format`. `started_unix_ms` is the wall clock of its timestamp 0 (MP4
    /// fragments are dated from it).
    pub fn new(format: RecordFormat, started_unix_ms: u64) -> Self {
        let muxer = match format {
            RecordFormat::Flv => Muxer::Flv(FlvFile),
            RecordFormat::Mp4 => Muxer::Mp4(Box::new(Mp4File::new(started_unix_ms))),
        };
        Self {
            state: State::Waiting {
                audio: VecDeque::new(),
            },
            headers: Headers::default(),
            muxer,
        }
    }

    /// True once the first keyframe arrived (the file has bytes).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// Feeds one packet; appends the bytes it produces to `out`.
    pub fn push(&mut self, packet: &Packet, out: &mut BytesMut) -> Step {
        let payload = packet.wire.payload();
        if packet.header {
            let slot = self.headers.slot(packet.kind);
            if slot.as_ref() == Some(payload) {
                return Step::Append; // the same header again (resent after a drop)
            }
            *slot = Some(payload.clone());
            return match self.state {
                State::Open { base } => {
                    let timestamp = rebase(packet.timestamp, base);
                    self.muxer.write(packet.kind, timestamp, payload, out)
                }
                State::Waiting { .. } => Step::Append,
            };
        }
        match &mut self.state {
            State::Open { base } => {
                let timestamp = rebase(packet.timestamp, *base);
                self.muxer.write(packet.kind, timestamp, payload, out)
            }
            State::Waiting { audio } if packet.keyframe => {
                let waiting = std::mem::take(audio);
                self.open(packet, waiting, out)
            }
            State::Waiting { audio } => {
                if packet.kind == MediaKind::Audio {
                    if audio.len() == WAITING_AUDIO {
                        audio.pop_front();
                    }
                    audio.push_back(packet.clone());
                }
                Step::Append
            }
        }
    }

    /// Ends the recording: appends what the muxer still holds (MP4: the open fragment).
    pub fn finish(&mut self, out: &mut BytesMut) -> Step {
        match &mut self.muxer {
            Muxer::Flv(_) => Step::Append,
            Muxer::Mp4(m) => m.finish(out),
        }
    }

    /// The first keyframe: the file header, the headers, the audio kept from up to
    /// [`AUDIO_LEAD_MS`] before the keyframe (audio a publisher sent ahead of its first video
    /// frame is part of its stream), the keyframe, and the kept audio after it. The file's
    /// time 0 is its first frame.
    fn open(&mut self, keyframe: &Packet, audio: VecDeque<Packet>, out: &mut BytesMut) -> Step {
        let earliest = keyframe.timestamp.wrapping_sub(AUDIO_LEAD_MS);
        let audio: Vec<&Packet> = audio
            .iter()
            .filter(|a| !is_before(a.timestamp, earliest))
            .collect();
        let base = match audio.first() {
            Some(a) if is_before(a.timestamp, keyframe.timestamp) => a.timestamp,
            _ => keyframe.timestamp,
        };
        let has_video = self.headers.video.is_some()
            || keyframe.kind == MediaKind::Video
            || self.headers.meta_names(b"videocodecid");
        let has_audio = self.headers.audio.is_some()
            || keyframe.kind == MediaKind::Audio
            || !audio.is_empty()
            || self.headers.meta_names(b"audiocodecid");
        self.muxer.begin(has_audio, has_video, out);
        self.state = State::Open { base };
        let headers = [
            (MediaKind::Data, self.headers.meta.clone()),
            (MediaKind::Video, self.headers.video.clone()),
            (MediaKind::Audio, self.headers.audio.clone()),
        ];
        let (ahead, after): (Vec<&Packet>, Vec<&Packet>) = audio
            .into_iter()
            .partition(|a| is_before(a.timestamp, keyframe.timestamp));
        let mut step = Step::Append;
        let mut write = |muxer: &mut Muxer, kind, timestamp, payload: &Bytes| {
            if let Step::NewFile { at } = muxer.write(kind, timestamp, payload, out) {
                step = Step::NewFile { at };
            }
        };
        for (kind, payload) in headers {
            if let Some(payload) = payload {
                write(&mut self.muxer, kind, 0, &payload);
            }
        }
        let frames = ahead.into_iter().chain([keyframe]).chain(after);
        for p in frames {
            write(
                &mut self.muxer,
                p.kind,
                rebase(p.timestamp, base),
                p.wire.payload(),
            );
        }
        step
    }
}

/// True when `t` is before `base` (in the 32-bit wrapping sense).
fn is_before(t: u32, base: u32) -> bool {
    (t.wrapping_sub(base) as i32) < 0
}

/// `t` on the file's timeline: relative to `base`, never negative (audio interleaved a few ms
/// ahead of the first keyframe is written at 0).
fn rebase(t: u32, base: u32) -> u32 {
    if is_before(t, base) {
        0
    } else {
        t.wrapping_sub(base)
    }
}
