//! Fragmented MP4 recordings through the project's packager: a [`Segmenter`] in fMP4 mode cuts
//! a fragment (`moof` + `mdat`) at the first keyframe past [`FRAGMENT_MS`]; the file is its
//! init segment (`ftyp` + `moov`) followed by every fragment as it completes, so it is
//! playable while it is written. A change of codec configuration needs a new `moov`: the
//! recording goes on in a new file.

use bytes::{Bytes, BytesMut};

use super::recorder::Step;
use crate::fanout::MediaKind;
use crate::package::{Container, Frame, FrameKind, Segmenter, SegmenterConfig, Tracks};

/// Target fragment duration (ms): fragments end at the first keyframe at or past it.
pub const FRAGMENT_MS: u32 = 1000;

/// Completed fragments the segmenter keeps: each is written as it completes, so only the
/// latest is ever read; one more for a call that completes two.
const WINDOW: usize = 2;

/// One fMP4 recording.
#[derive(Debug)]
pub struct Mp4File {
    segmenter: Segmenter,
    /// Wall clock of timestamp 0 (dates the fragments; not written in the file).
    started_unix_ms: u64,
    /// The init segment the current file starts with.
    written_init: Option<u32>,
    /// Frames the packager refused (malformed or unsupported codec).
    refused: u64,
}

impl Mp4File {
    pub fn new(started_unix_ms: u64) -> Self {
        let segmenter = Segmenter::new(SegmenterConfig {
            container: Container::Fmp4,
            tracks: Tracks::All,
            target_duration_ms: FRAGMENT_MS,
            part_target_ms: None,
            window: WINDOW,
            ..SegmenterConfig::default()
        });
        Self {
            segmenter,
            started_unix_ms,
            written_init: None,
            refused: 0,
        }
    }

    /// Feeds one packet (metadata is not carried); appends the fragments it completes.
    pub fn write(
        &mut self,
        kind: MediaKind,
        timestamp: u32,
        payload: &Bytes,
        out: &mut BytesMut,
    ) -> Step {
        let kind = match kind {
            MediaKind::Audio => FrameKind::Audio,
            MediaKind::Video => FrameKind::Video,
            MediaKind::Data => return Step::Append,
        };
        let frame = Frame::new(kind, timestamp, payload.clone());
        let wall = self.started_unix_ms + u64::from(timestamp);
        match self.segmenter.push(&frame, wall) {
            Ok(progress) => self.drain(progress.segments, out),
            Err(error) => {
                self.refused += 1;
                if self.refused == 1 {
                    tracing::warn!(%error, "recording: a frame cannot go in MP4 (later ones are counted)");
                }
                Step::Append
            }
        }
    }

    /// Closes the open fragment and appends it.
    pub fn finish(&mut self, out: &mut BytesMut) -> Step {
        let progress = self.segmenter.finish();
        if self.refused > 1 {
            tracing::warn!(
                refused = self.refused,
                "recording: frames left out of the MP4"
            );
        }
        self.drain(progress.segments, out)
    }

    /// Appends the `new` latest fragments, each after the init segment it needs when that is
    /// not the one the file started with.
    fn drain(&mut self, new: u32, out: &mut BytesMut) -> Step {
        let mut step = Step::Append;
        let count = self.segmenter.segments().len();
        let skip = count.saturating_sub(new as usize);
        for segment in self.segmenter.segments().skip(skip) {
            if self.written_init != Some(segment.init_id) {
                if self.written_init.is_some() {
                    step = Step::NewFile { at: out.len() };
                }
                if let Some(init) = self.segmenter.init(segment.init_id) {
                    out.extend_from_slice(init);
                }
                self.written_init = Some(segment.init_id);
            }
            out.extend_from_slice(&segment.data);
        }
        step
    }
}
