//! Media inside RTMP messages: FLV audio/video tag headers, codec configuration records and
//! keyframes (legacy FLV codecs and Enhanced RTMP FourCC codecs), and FLV files.
//! Sans-IO: slices in, facts out.
//!
//! Module map:
//! - [`video`] / [`audio`]: tag headers, legacy and Enhanced RTMP v1/v2 (ModEx, FourCC,
//!   multitrack). [`inspect_video`] / [`inspect_audio`] are the cheap hot-path summaries.
//! - [`avc`], [`hevc`], [`aac`]: codec configuration records, NAL unit iteration and the
//!   codec strings HLS/DASH need.
//! - [`sei`]: the load generator's latency stamp (H.264 user_data_unregistered SEI).
//! - [`flv`]: the FLV file container, reading and writing.
//!
//! ```
//! use rtmp_edge::media::{inspect_video, parse_video_tag, VideoCodec};
//! // Enhanced RTMP: IsExHeader | FrameType 1 (key) | PacketType 1 (CodedFrames), "hvc1", SI24 CTS.
//! let payload = [0x91, b'h', b'v', b'c', b'1', 0, 0, 40, 0, 0, 0, 1, 0x26];
//! let info = inspect_video(&payload).unwrap();
//! assert!(info.is_keyframe && !info.is_sequence_header);
//! let track = parse_video_tag(&payload).unwrap().first_track().unwrap();
//! assert_eq!((track.codec, track.composition_time, track.data_offset), (VideoCodec::Hevc, 40, 8));
//! ```

pub mod aac;
pub mod audio;
pub mod avc;
pub(crate) mod cursor;
pub mod flv;
pub mod hevc;
pub mod sei;
pub mod track;
pub mod video;

pub use audio::{parse_audio_tag, AudioCodec, AudioPacketType, AudioTag, AudioTrack};
pub use track::{AvMultitrackType, FourCc};
pub use video::{
    parse_video_tag, VideoCodec, VideoFrameType, VideoPacketType, VideoTag, VideoTrack,
};

/// Why a media payload could not be classified. Never fatal for a connection: the message is
/// forwarded as an ordinary frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The payload ended before a field the header promised.
    #[error("{what} payload is empty or truncated")]
    Truncated { what: &'static str },
    /// A packet type value the specification reserves.
    #[error("{what} packet type {value} is reserved")]
    ReservedPacketType { what: &'static str, value: u8 },
    /// An AvMultitrackType value the specification reserves (3..15).
    #[error("multitrack type {value} is reserved")]
    ReservedMultitrackType { value: u8 },
    /// A multitrack header whose inner packet type is Multitrack again.
    #[error("a multitrack message declares Multitrack again as its packet type")]
    NestedMultitrack,
    /// A track's UI24 size runs past the end of the message.
    #[error("track {track_id} declares {size} bytes but only {remaining} remain")]
    TrackOverrunsPayload {
        track_id: u8,
        size: usize,
        remaining: usize,
    },
    /// A decoder configuration record whose configurationVersion is not 1.
    #[error("{what} configuration version {version} is not 1")]
    UnsupportedConfigurationVersion { what: &'static str, version: u8 },
    /// A NAL unit length prefix size outside 1, 2, 4 (records) or 1..=4 (iteration).
    #[error("NAL unit length size {size} is not allowed here")]
    InvalidNalLengthSize { size: u8 },
    /// An AAC samplingFrequencyIndex of 13 or 14.
    #[error("AAC sampling frequency index {index} is reserved")]
    ReservedSamplingFrequencyIndex { index: u8 },
}

/// What the fan-out needs to know about a video message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VideoInfo {
    /// Codec configuration (AVC/HEVC decoder configuration record, E-RTMP SequenceStart, ...).
    pub is_sequence_header: bool,
    /// A frame a decoder can start from (frame type 1 with coded data).
    pub is_keyframe: bool,
    /// End of sequence marker.
    pub is_end_of_sequence: bool,
}

/// What the fan-out needs to know about an audio message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AudioInfo {
    /// AAC AudioSpecificConfig or E-RTMP audio SequenceStart.
    pub is_sequence_header: bool,
}

/// Classifies a video message payload. Call once per video message on ingest; see
/// [`parse_video_tag`] for codec, composition time, data offset and tracks.
/// Command frames (frame type 5) are neither keyframes nor sequence headers.
pub fn inspect_video(payload: &[u8]) -> Result<VideoInfo, MediaError> {
    parse_video_tag(payload).map(|t| t.info())
}

/// Classifies an audio message payload. See [`parse_audio_tag`] for codec and tracks.
pub fn inspect_audio(payload: &[u8]) -> Result<AudioInfo, MediaError> {
    parse_audio_tag(payload).map(|t| t.info())
}

/// True when an AMF0 data message payload is `onMetaData` (or `@setDataFrame` + `onMetaData`).
pub fn is_metadata(payload: &[u8]) -> bool {
    match amf0_string(payload) {
        Some((b"onMetaData", _)) => true,
        Some((b"@setDataFrame", rest)) => matches!(amf0_string(rest), Some((b"onMetaData", _))),
        _ => false,
    }
}

/// Reads one AMF0 string value (marker 0x02, u16 length, bytes); returns it and the rest.
fn amf0_string(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&marker, rest) = buf.split_first()?;
    if marker != 0x02 || rest.len() < 2 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
    let rest = &rest[2..];
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests;
