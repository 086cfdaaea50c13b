//! Video tag headers: legacy FLV (`FrameType:4 CodecId:4`, AVC/HEVC packet type and SI24
//! composition time) and Enhanced RTMP v1/v2 (`IsExHeader:1 FrameType:3 PacketType:4`,
//! ModEx, FourCC, multitrack).
//!
//! [`parse_video_tag`] validates the whole header, every track included, without allocating;
//! [`VideoTag::tracks`] then walks the track bodies.

use super::cursor::Cursor;
use super::track::{read_mod_ex, AvMultitrackType, FourCc, TrackWalker};
use super::{MediaError, VideoInfo};

const EX_HEADER: u8 = 0x80;
const PT_METADATA: u8 = 4;
const PT_MULTITRACK: u8 = 6;

/// Video frame type (high nibble of a legacy header, bits 4..6 of an enhanced one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFrameType {
    /// 1: a frame a decoder can start from.
    Key,
    /// 2: inter frame.
    Inter,
    /// 3: disposable inter frame (H.263 only).
    Disposable,
    /// 4: generated keyframe (server use only).
    GeneratedKey,
    /// 5: video info / command frame; carries no picture.
    Command,
    /// 0, 6, 7 (and 8..15 in legacy headers).
    Reserved(u8),
}

impl VideoFrameType {
    fn from_bits(v: u8) -> Self {
        match v {
            1 => Self::Key,
            2 => Self::Inter,
            3 => Self::Disposable,
            4 => Self::GeneratedKey,
            5 => Self::Command,
            other => Self::Reserved(other),
        }
    }
}

/// Video codec, from a legacy codec id or an Enhanced RTMP FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// Legacy id 2.
    SorensonH263,
    /// Legacy id 3.
    ScreenVideo,
    /// Legacy id 4.
    Vp6,
    /// Legacy id 5.
    Vp6Alpha,
    /// Legacy id 6.
    ScreenVideoV2,
    /// Legacy id 7 or FourCC `avc1`.
    Avc,
    /// Legacy id 12 (Chinese CDN / ffmpeg-fork convention) or FourCC `hvc1`.
    Hevc,
    /// Legacy id 13 (some forks) or FourCC `av01`.
    Av1,
    /// FourCC `vp08`.
    Vp8,
    /// FourCC `vp09`.
    Vp9,
    /// A legacy codec id this crate does not know.
    UnknownId(u8),
    /// A FourCC this crate does not know.
    UnknownFourCc(FourCc),
}

impl VideoCodec {
    /// Maps a legacy FLV codec id (low nibble of the first byte).
    pub fn from_legacy_id(id: u8) -> Self {
        match id {
            2 => Self::SorensonH263,
            3 => Self::ScreenVideo,
            4 => Self::Vp6,
            5 => Self::Vp6Alpha,
            6 => Self::ScreenVideoV2,
            7 => Self::Avc,
            12 => Self::Hevc,
            13 => Self::Av1,
            other => Self::UnknownId(other),
        }
    }

    /// Maps an Enhanced RTMP video FourCC.
    pub fn from_fourcc(f: FourCc) -> Self {
        match &f {
            b"avc1" => Self::Avc,
            b"hvc1" => Self::Hevc,
            b"av01" => Self::Av1,
            b"vp08" => Self::Vp8,
            b"vp09" => Self::Vp9,
            _ => Self::UnknownFourCc(f),
        }
    }

    /// The Enhanced RTMP FourCC for this codec, if it has one.
    pub fn fourcc(self) -> Option<FourCc> {
        match self {
            Self::Avc => Some(*b"avc1"),
            Self::Hevc => Some(*b"hvc1"),
            Self::Av1 => Some(*b"av01"),
            Self::Vp8 => Some(*b"vp08"),
            Self::Vp9 => Some(*b"vp09"),
            Self::UnknownFourCc(f) => Some(f),
            _ => None,
        }
    }

    /// Whether E-RTMP `CodedFrames` bodies of this codec start with an SI24 composition time.
    fn ex_coded_frames_have_cts(self) -> bool {
        matches!(self, Self::Avc | Self::Hevc)
    }

    /// Whether the legacy header carries an AVC-style packet type and SI24 composition time.
    fn legacy_has_packet_type(self) -> bool {
        matches!(self, Self::Avc | Self::Hevc | Self::Av1)
    }
}

/// What a video message (or every track of a multitrack message) carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPacketType {
    /// Codec configuration (legacy AVC/HEVC packet type 0, E-RTMP SequenceStart).
    SequenceStart,
    /// Coded frames (legacy packet type 1, E-RTMP CodedFrames; codecs without a packet type).
    CodedFrames,
    /// End of sequence (legacy packet type 2, E-RTMP SequenceEnd).
    SequenceEnd,
    /// Coded frames with an implicit composition time of zero (E-RTMP 3).
    CodedFramesX,
    /// AMF-encoded metadata such as HDR colorInfo (E-RTMP 4); the frame type is ignored.
    Metadata,
    /// AV1 MPEG-2 TS video descriptor as configuration (E-RTMP 5).
    Mpeg2TsSequenceStart,
}

impl VideoPacketType {
    fn from_ex(v: u8) -> Result<Self, MediaError> {
        match v {
            0 => Ok(Self::SequenceStart),
            1 => Ok(Self::CodedFrames),
            2 => Ok(Self::SequenceEnd),
            3 => Ok(Self::CodedFramesX),
            4 => Ok(Self::Metadata),
            5 => Ok(Self::Mpeg2TsSequenceStart),
            PT_MULTITRACK => Err(MediaError::NestedMultitrack),
            value => Err(MediaError::ReservedPacketType {
                what: "video",
                value,
            }),
        }
    }

    fn from_legacy(v: u8) -> Result<Self, MediaError> {
        match v {
            0 => Ok(Self::SequenceStart),
            1 => Ok(Self::CodedFrames),
            2 => Ok(Self::SequenceEnd),
            value => Err(MediaError::ReservedPacketType {
                what: "AVC video",
                value,
            }),
        }
    }

    /// True for codec configuration packets.
    pub fn is_sequence_start(self) -> bool {
        matches!(self, Self::SequenceStart | Self::Mpeg2TsSequenceStart)
    }

    /// True for packets holding coded pictures.
    pub fn is_coded_frames(self) -> bool {
        matches!(self, Self::CodedFrames | Self::CodedFramesX)
    }
}

/// A parsed video tag header. Borrowed from the payload; cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTag<'a> {
    /// Frame type, shared by every track.
    pub frame_type: VideoFrameType,
    /// Packet type, shared by every track.
    pub packet_type: VideoPacketType,
    /// True when the IsExHeader bit (Enhanced RTMP) was set.
    pub enhanced: bool,
    /// Multitrack layout when the message used E-RTMP v2 multitrack.
    pub multitrack: Option<AvMultitrackType>,
    /// Video command (0 StartSeek, 1 EndSeek, ...) of a command frame; such a message has
    /// no tracks.
    pub command: Option<u8>,
    /// ModEx TimestampOffsetNano, nanoseconds to add to the message timestamp.
    pub timestamp_offset_nanos: Option<u32>,
    payload: &'a [u8],
    tracks_start: usize,
    shared_fourcc: Option<FourCc>,
    legacy_codec: Option<VideoCodec>,
    legacy_cts: i32,
    track_count: usize,
}

/// One track's coded data inside a video message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTrack<'a> {
    /// Track id (0 for single-track messages).
    pub track_id: u8,
    /// Codec of this track.
    pub codec: VideoCodec,
    /// Composition time offset in milliseconds (PTS - DTS); 0 when absent.
    pub composition_time: i32,
    /// The codec payload: a configuration record, length-prefixed NAL units, OBUs, ...
    pub data: &'a [u8],
    /// Offset of `data` from the start of the message payload.
    pub data_offset: usize,
}

/// Iterator over the tracks of a [`VideoTag`].
#[derive(Debug, Clone)]
pub struct VideoTracks<'a> {
    walker: TrackWalker<'a>,
    legacy_codec: Option<VideoCodec>,
    legacy_cts: i32,
    packet_type: VideoPacketType,
    remaining: usize,
}

impl<'a> VideoTracks<'a> {
    fn next_track(&mut self) -> Result<Option<VideoTrack<'a>>, MediaError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let Some(raw) = self.walker.next_track()? else {
            return Ok(None);
        };
        self.remaining -= 1;
        let codec = match (self.legacy_codec, raw.fourcc) {
            (Some(c), _) => c,
            (None, Some(f)) => VideoCodec::from_fourcc(f),
            (None, None) => {
                return Err(MediaError::Truncated {
                    what: "video FourCC",
                })
            }
        };
        let mut cur = Cursor::new(raw.body, "video track");
        let composition_time = if self.legacy_codec.is_some() {
            self.legacy_cts // read with the legacy header
        } else if self.packet_type == VideoPacketType::CodedFrames
            && codec.ex_coded_frames_have_cts()
        {
            cur.i24()?
        } else {
            0
        };
        Ok(Some(VideoTrack {
            track_id: raw.track_id,
            codec,
            composition_time,
            data: cur.rest(),
            data_offset: raw.body_offset + cur.pos(),
        }))
    }
}

impl<'a> Iterator for VideoTracks<'a> {
    type Item = VideoTrack<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        // The tag was validated when parsed, so errors cannot occur here; stop if one does.
        self.next_track().ok().flatten()
    }
}

impl<'a> VideoTag<'a> {
    /// The tracks of this message: one for single-track messages, none for command frames.
    pub fn tracks(&self) -> VideoTracks<'a> {
        VideoTracks {
            walker: TrackWalker::new(
                self.payload,
                self.tracks_start,
                self.multitrack,
                self.shared_fourcc,
                "video track",
            ),
            legacy_codec: self.legacy_codec,
            legacy_cts: self.legacy_cts,
            packet_type: self.packet_type,
            remaining: self.track_count,
        }
    }

    /// Number of tracks.
    pub fn track_count(&self) -> usize {
        self.track_count
    }

    /// The first (default) track, if any.
    pub fn first_track(&self) -> Option<VideoTrack<'a>> {
        self.tracks().next()
    }

    /// The three facts the fan-out acts on. Command frames are neither keyframes nor
    /// sequence headers.
    pub fn info(&self) -> VideoInfo {
        if self.command.is_some() {
            return VideoInfo::default();
        }
        VideoInfo {
            is_sequence_header: self.packet_type.is_sequence_start(),
            is_keyframe: self.frame_type == VideoFrameType::Key
                && self.packet_type.is_coded_frames(),
            is_end_of_sequence: self.packet_type == VideoPacketType::SequenceEnd,
        }
    }
}

/// Parses a video message payload (an FLV video tag body), legacy or Enhanced RTMP.
///
/// Validates every track, so [`VideoTag::tracks`] yields them all. Errors mean the message
/// cannot be classified; forward it as an ordinary frame.
pub fn parse_video_tag(payload: &[u8]) -> Result<VideoTag<'_>, MediaError> {
    let mut cur = Cursor::new(payload, "video tag header");
    let b0 = cur.u8()?;
    let mut tag = if b0 & EX_HEADER != 0 {
        parse_enhanced(payload, &mut cur, b0)?
    } else {
        parse_legacy(payload, &mut cur, b0)?
    };
    if tag.command.is_none() {
        tag.track_count = usize::MAX;
        let mut tracks = tag.tracks();
        let mut n = 0;
        while tracks.next_track()?.is_some() {
            n += 1;
        }
        if n == 0 {
            return Err(MediaError::Truncated {
                what: "video track",
            });
        }
        tag.track_count = n;
    }
    Ok(tag)
}

fn parse_legacy<'a>(
    payload: &'a [u8],
    cur: &mut Cursor<'a>,
    b0: u8,
) -> Result<VideoTag<'a>, MediaError> {
    let frame_type = VideoFrameType::from_bits(b0 >> 4);
    let codec = VideoCodec::from_legacy_id(b0 & 0x0f);
    let mut tag = VideoTag {
        frame_type,
        packet_type: VideoPacketType::CodedFrames,
        enhanced: false,
        multitrack: None,
        command: None,
        timestamp_offset_nanos: None,
        payload,
        tracks_start: 1,
        shared_fourcc: None,
        legacy_codec: Some(codec),
        legacy_cts: 0,
        track_count: 0,
    };
    if frame_type == VideoFrameType::Command {
        tag.command = Some(cur.u8()?);
        return Ok(tag);
    }
    if codec.legacy_has_packet_type() {
        tag.packet_type = VideoPacketType::from_legacy(cur.u8()?)?;
        tag.legacy_cts = cur.i24()?;
        tag.tracks_start = cur.pos();
    }
    Ok(tag)
}

fn parse_enhanced<'a>(
    payload: &'a [u8],
    cur: &mut Cursor<'a>,
    b0: u8,
) -> Result<VideoTag<'a>, MediaError> {
    let frame_type = VideoFrameType::from_bits((b0 >> 4) & 0x07);
    let mod_ex = read_mod_ex(cur, b0 & 0x0f)?;
    let mut raw_type = mod_ex.packet_type;
    let mut multitrack = None;
    let mut shared_fourcc = None;
    let mut command = None;
    if raw_type != PT_METADATA && frame_type == VideoFrameType::Command {
        command = Some(cur.u8()?);
    } else if raw_type == PT_MULTITRACK {
        let b = cur.u8()?;
        let layout = AvMultitrackType::from_nibble(b >> 4)?;
        raw_type = b & 0x0f;
        multitrack = Some(layout);
        if layout != AvMultitrackType::ManyTracksManyCodecs {
            shared_fourcc = Some(cur.fourcc()?);
        }
    } else {
        shared_fourcc = Some(cur.fourcc()?);
    }
    let packet_type = if command.is_some() {
        // Command frames carry no body; keep a neutral packet type.
        VideoPacketType::from_ex(raw_type).unwrap_or(VideoPacketType::CodedFrames)
    } else {
        VideoPacketType::from_ex(raw_type)?
    };
    Ok(VideoTag {
        frame_type,
        packet_type,
        enhanced: true,
        multitrack,
        command,
        timestamp_offset_nanos: mod_ex.timestamp_offset_nanos,
        payload,
        tracks_start: cur.pos(),
        shared_fourcc,
        legacy_codec: None,
        legacy_cts: 0,
        track_count: 0,
    })
}
