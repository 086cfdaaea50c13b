//! Media inside RTMP messages: FLV audio/video tag headers, codec configuration records and
//! keyframes (legacy FLV codecs and Enhanced RTMP FourCC codecs), and FLV files.
//! Sans-IO: slices in, facts out.

pub mod flv;

/// Why a media payload could not be classified. Never fatal for a connection: the message is
/// forwarded as an ordinary frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("{what} payload is empty or truncated")]
    Truncated { what: &'static str },
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

/// Classifies a video message payload.
pub fn inspect_video(payload: &[u8]) -> Result<VideoInfo, MediaError> {
    let _ = payload;
    todo!()
}

/// Classifies an audio message payload.
pub fn inspect_audio(payload: &[u8]) -> Result<AudioInfo, MediaError> {
    let _ = payload;
    todo!()
}

/// True when an AMF0 data message payload is `onMetaData` (or `@setDataFrame` + `onMetaData`).
pub fn is_metadata(payload: &[u8]) -> bool {
    let _ = payload;
    todo!()
}
