//! Audio tag headers: legacy FLV (`SoundFormat:4 Rate:2 Size:1 Type:1`, AAC packet type) and
//! Enhanced RTMP (`SoundFormat 9 = ExHeader`, AudioPacketType, ModEx, FourCC, multitrack).

use super::cursor::Cursor;
use super::track::{read_mod_ex, AvMultitrackType, FourCc, TrackWalker};
use super::{AudioInfo, MediaError};

const SOUND_FORMAT_EX_HEADER: u8 = 9;
const SOUND_FORMAT_AAC: u8 = 10;
const PT_MULTITRACK: u8 = 5;

/// Audio codec, from a legacy sound format or an Enhanced RTMP FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// Legacy 0: linear PCM, platform endian.
    PcmPlatformEndian,
    /// Legacy 1.
    AdPcm,
    /// Legacy 2, legacy 14 (8 kHz) or FourCC `.mp3`.
    Mp3,
    /// Legacy 3: linear PCM, little endian.
    PcmLittleEndian,
    /// Legacy 4, 5, 6.
    Nellymoser,
    /// Legacy 7.
    G711ALaw,
    /// Legacy 8.
    G711MuLaw,
    /// Legacy 10 or FourCC `mp4a`.
    Aac,
    /// Legacy 11.
    Speex,
    /// Legacy 15: device-specific.
    Native,
    /// FourCC `Opus`.
    Opus,
    /// FourCC `fLaC`.
    Flac,
    /// FourCC `ac-3`.
    Ac3,
    /// FourCC `ec-3`.
    Eac3,
    /// A reserved legacy sound format (12, 13).
    UnknownFormat(u8),
    /// A FourCC this crate does not know.
    UnknownFourCc(FourCc),
}

impl AudioCodec {
    /// Maps a legacy sound format nibble (never 9, which switches to FourCC mode).
    pub fn from_sound_format(v: u8) -> Self {
        match v {
            0 => Self::PcmPlatformEndian,
            1 => Self::AdPcm,
            2 | 14 => Self::Mp3,
            3 => Self::PcmLittleEndian,
            4..=6 => Self::Nellymoser,
            7 => Self::G711ALaw,
            8 => Self::G711MuLaw,
            10 => Self::Aac,
            11 => Self::Speex,
            15 => Self::Native,
            other => Self::UnknownFormat(other),
        }
    }

    /// Maps an Enhanced RTMP audio FourCC.
    pub fn from_fourcc(f: FourCc) -> Self {
        match &f {
            b"Opus" => Self::Opus,
            b"fLaC" => Self::Flac,
            b"ac-3" => Self::Ac3,
            b"ec-3" => Self::Eac3,
            b".mp3" => Self::Mp3,
            b"mp4a" => Self::Aac,
            _ => Self::UnknownFourCc(f),
        }
    }
}

/// What an audio message (or every track of a multitrack message) carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioPacketType {
    /// Codec configuration: AAC AudioSpecificConfig, Opus/FLAC headers (E-RTMP 0).
    SequenceStart,
    /// Coded frames (AAC raw, E-RTMP 1, every legacy codec without a packet type).
    CodedFrames,
    /// End of sequence (E-RTMP 2).
    SequenceEnd,
    /// Channel count and order (E-RTMP 4).
    MultichannelConfig,
}

impl AudioPacketType {
    fn from_ex(v: u8) -> Result<Self, MediaError> {
        match v {
            0 => Ok(Self::SequenceStart),
            1 => Ok(Self::CodedFrames),
            2 => Ok(Self::SequenceEnd),
            4 => Ok(Self::MultichannelConfig),
            PT_MULTITRACK => Err(MediaError::NestedMultitrack),
            value => Err(MediaError::ReservedPacketType {
                what: "audio",
                value,
            }),
        }
    }
}

/// A parsed audio tag header. Borrowed from the payload; cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTag<'a> {
    /// Packet type, shared by every track.
    pub packet_type: AudioPacketType,
    /// True for SoundFormat 9 (Enhanced RTMP).
    pub enhanced: bool,
    /// Legacy rate/size/type bits (low nibble of the first byte), legacy headers only.
    pub legacy_flags: Option<u8>,
    /// Multitrack layout when the message used E-RTMP multitrack.
    pub multitrack: Option<AvMultitrackType>,
    /// ModEx TimestampOffsetNano, nanoseconds to add to the message timestamp.
    pub timestamp_offset_nanos: Option<u32>,
    payload: &'a [u8],
    tracks_start: usize,
    shared_fourcc: Option<FourCc>,
    legacy_codec: Option<AudioCodec>,
    track_count: usize,
}

/// One track's coded data inside an audio message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTrack<'a> {
    /// Track id (0 for single-track messages).
    pub track_id: u8,
    /// Codec of this track.
    pub codec: AudioCodec,
    /// The codec payload (AudioSpecificConfig, raw AAC, Opus packet, ...).
    pub data: &'a [u8],
    /// Offset of `data` from the start of the message payload.
    pub data_offset: usize,
}

/// Iterator over the tracks of an [`AudioTag`].
#[derive(Debug, Clone)]
pub struct AudioTracks<'a> {
    walker: TrackWalker<'a>,
    legacy_codec: Option<AudioCodec>,
    remaining: usize,
}

impl<'a> AudioTracks<'a> {
    fn next_track(&mut self) -> Result<Option<AudioTrack<'a>>, MediaError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let Some(raw) = self.walker.next_track()? else {
            return Ok(None);
        };
        self.remaining -= 1;
        let codec = match (self.legacy_codec, raw.fourcc) {
            (Some(c), _) => c,
            (None, Some(f)) => AudioCodec::from_fourcc(f),
            (None, None) => {
                return Err(MediaError::Truncated {
                    what: "audio FourCC",
                })
            }
        };
        Ok(Some(AudioTrack {
            track_id: raw.track_id,
            codec,
            data: raw.body,
            data_offset: raw.body_offset,
        }))
    }
}

impl<'a> Iterator for AudioTracks<'a> {
    type Item = AudioTrack<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        // Validated when parsed; stop if an error shows up anyway.
        self.next_track().ok().flatten()
    }
}

impl<'a> AudioTag<'a> {
    /// The tracks of this message (one for single-track messages).
    pub fn tracks(&self) -> AudioTracks<'a> {
        AudioTracks {
            walker: TrackWalker::new(
                self.payload,
                self.tracks_start,
                self.multitrack,
                self.shared_fourcc,
                "audio track",
            ),
            legacy_codec: self.legacy_codec,
            remaining: self.track_count,
        }
    }

    /// Number of tracks.
    pub fn track_count(&self) -> usize {
        self.track_count
    }

    /// The first (default) track.
    pub fn first_track(&self) -> Option<AudioTrack<'a>> {
        self.tracks().next()
    }

    /// The facts the fan-out acts on.
    pub fn info(&self) -> AudioInfo {
        AudioInfo {
            is_sequence_header: self.packet_type == AudioPacketType::SequenceStart,
        }
    }
}

/// Parses an audio message payload (an FLV audio tag body), legacy or Enhanced RTMP.
pub fn parse_audio_tag(payload: &[u8]) -> Result<AudioTag<'_>, MediaError> {
    let mut cur = Cursor::new(payload, "audio tag header");
    let b0 = cur.u8()?;
    let format = b0 >> 4;
    let mut tag = AudioTag {
        packet_type: AudioPacketType::CodedFrames,
        enhanced: false,
        legacy_flags: None,
        multitrack: None,
        timestamp_offset_nanos: None,
        payload,
        tracks_start: 1,
        shared_fourcc: None,
        legacy_codec: None,
        track_count: 0,
    };
    if format == SOUND_FORMAT_EX_HEADER {
        tag.enhanced = true;
        let mod_ex = read_mod_ex(&mut cur, b0 & 0x0f)?;
        tag.timestamp_offset_nanos = mod_ex.timestamp_offset_nanos;
        let mut raw_type = mod_ex.packet_type;
        if raw_type == PT_MULTITRACK {
            let b = cur.u8()?;
            let layout = AvMultitrackType::from_nibble(b >> 4)?;
            raw_type = b & 0x0f;
            tag.multitrack = Some(layout);
            if layout != AvMultitrackType::ManyTracksManyCodecs {
                tag.shared_fourcc = Some(cur.fourcc()?);
            }
        } else {
            tag.shared_fourcc = Some(cur.fourcc()?);
        }
        tag.packet_type = AudioPacketType::from_ex(raw_type)?;
    } else {
        tag.legacy_flags = Some(b0 & 0x0f);
        tag.legacy_codec = Some(AudioCodec::from_sound_format(format));
        if format == SOUND_FORMAT_AAC {
            tag.packet_type = match cur.u8()? {
                0 => AudioPacketType::SequenceStart,
                1 => AudioPacketType::CodedFrames,
                value => {
                    return Err(MediaError::ReservedPacketType {
                        what: "AAC audio",
                        value,
                    })
                }
            };
        }
    }
    tag.tracks_start = cur.pos();
    tag.track_count = usize::MAX;
    let mut tracks = tag.tracks();
    let mut n = 0;
    while tracks.next_track()?.is_some() {
        n += 1;
    }
    if n == 0 {
        return Err(MediaError::Truncated {
            what: "audio track",
        });
    }
    tag.track_count = n;
    Ok(tag)
}
