//! Sans-IO packaging for HTTP delivery: FLV-style frames in, HLS (MPEG-TS or fMP4/CMAF, with
//! LL-HLS parts) and DASH out.
//!
//! A [`Segmenter`] per stream and per output format turns the frames that leave the fan-out
//! (audio/video tag bodies with millisecond timestamps, as [`Frame`]s) into media segments
//! and parts, built once as shared [`bytes::Bytes`] and kept in a sliding window. No sockets,
//! no clocks: wall-clock milliseconds come in with each frame, and readers ask the segmenter
//! for bytes and playlists.
//!
//! Module map:
//! - [`codec`]: codec configuration (AVC/HEVC records, AAC AudioSpecificConfig) and frames
//!   turned into timed samples.
//! - [`ts`]: MPEG-TS muxer (PAT/PMT, PES with PTS/DTS, PCR, Annex B, ADTS).
//! - [`fmp4`]: CMAF init segment and `moof`/`mdat` fragments.
//! - [`segmenter`]: cuts segments on keyframes and parts anywhere on frame boundaries, keeps
//!   the window, discontinuities and program date time.
//! - [`hls`]: media playlists (incl. LL-HLS) and the blocking-reload decision.
//! - [`dash`]: the dynamic MPD over fMP4 segmenters.
//!
//! Call order, per stream: [`Segmenter::push`] every frame (sequence headers included) with the
//! wall clock; [`Segmenter::discontinuity`] when the publisher changes; [`Segmenter::finish`]
//! on unpublish (it flushes the open segment and ends the playlists; [`Segmenter::flush`]
//! alone only closes the open segment). After each push, answer held requests with [`hls::blocking_reload`] and serve
//! [`hls::media_playlist`], [`Segmenter::segment`], [`Segmenter::part`], [`Segmenter::init`].
//!
//! ```
//! use bytes::Bytes;
//! use rtmp_edge::package::{Container, Frame, FrameKind, Segmenter, SegmenterConfig};
//! let mut seg = Segmenter::new(SegmenterConfig { container: Container::Ts, ..Default::default() });
//! // An AAC sequence header (LC, 44.1 kHz, mono), then raw AAC frames every 23 ms.
//! seg.push(&Frame::new(FrameKind::Audio, 0, Bytes::from_static(&[0xaf, 0, 0x12, 0x08])), 0).unwrap();
//! for i in 0..200u32 {
//!     let frame = Frame::new(FrameKind::Audio, i * 23, Bytes::from_static(&[0xaf, 1, 0x21, 0x10]));
//!     seg.push(&frame, 1_700_000_000_000 + u64::from(i) * 23).unwrap();
//! }
//! seg.flush();
//! let playlist = rtmp_edge::package::hls::media_playlist(&seg, "");
//! assert!(playlist.contains("#EXTINF:2.001,") && playlist.contains("seg-0.ts"));
//! ```

pub mod codec;
pub mod dash;
pub mod fmp4;
pub mod hls;
pub mod segmenter;
pub mod ts;

#[cfg(test)]
mod golden;

use bytes::Bytes;

pub use segmenter::{
    CapReason, Container, Part, Progress, Segment, SegmentCap, Segmenter, SegmenterConfig, Tracks,
};

/// What a [`Frame`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// An FLV audio tag body (legacy or Enhanced RTMP).
    Audio,
    /// An FLV video tag body (legacy or Enhanced RTMP).
    Video,
    /// An AMF data message (onMetaData); ignored by the packagers today.
    Metadata,
}

/// One media message as it leaves the fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Audio, video or metadata.
    pub kind: FrameKind,
    /// Decode timestamp in milliseconds (the stream's rebased RTMP timestamp; may wrap).
    pub timestamp: u32,
    /// The FLV tag body, shared with the fan-out.
    pub payload: Bytes,
}

impl Frame {
    /// Builds a frame.
    pub fn new(kind: FrameKind, timestamp: u32, payload: Bytes) -> Self {
        Frame {
            kind,
            timestamp,
            payload,
        }
    }

    /// The frame an FLV tag carries (type 8 audio, 9 video, anything else metadata).
    pub fn from_flv_tag(tag: &crate::media::flv::FlvTag) -> Self {
        use crate::media::flv::{TAG_AUDIO, TAG_VIDEO};
        let kind = match tag.tag_type {
            TAG_AUDIO => FrameKind::Audio,
            TAG_VIDEO => FrameKind::Video,
            _ => FrameKind::Metadata,
        };
        Frame::new(kind, tag.timestamp, tag.data.clone())
    }
}

/// Why a frame could not be packaged. Never fatal for the stream: the frame is dropped and
/// packaging goes on with the next one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    /// The tag header or a codec record did not parse.
    #[error("malformed media: {0}")]
    Malformed(#[from] crate::media::MediaError),
    /// A codec this container cannot carry (e.g. AV1 or Opus in MPEG-TS).
    #[error("{codec} cannot be packaged in {container}")]
    UnsupportedCodec {
        codec: &'static str,
        container: &'static str,
    },
    /// A configuration record without the parameter sets a decoder needs.
    #[error("{what} configuration has no {missing}")]
    MissingParameterSet {
        what: &'static str,
        missing: &'static str,
    },
}
