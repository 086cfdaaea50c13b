//! Codec configuration and samples: what the muxers need from FLV tag bodies.
//!
//! A sequence header becomes a [`VideoConfig`] or [`AudioConfig`] (owning its record as
//! `Bytes`); a coded frame becomes a [`Sample`] whose data is a zero-copy slice of the payload.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Frame, FrameKind, PackageError};
use crate::media::aac::AacConfig;
use crate::media::avc::{self, AvcConfig};
use crate::media::cursor::BitReader;
use crate::media::hevc::HevcConfig;
use crate::media::{
    parse_audio_tag, parse_video_tag, AudioCodec, AudioPacketType, VideoCodec, VideoFrameType,
    VideoPacketType,
};

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Video codecs the packagers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFormat {
    /// H.264 / AVC (`avc1`, TS stream type 0x1B).
    H264,
    /// H.265 / HEVC (`hvc1`, TS stream type 0x24).
    H265,
}

/// Audio codecs the packagers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// AAC (`mp4a.40.x`, ADTS in TS stream type 0x0F).
    Aac,
}

/// A video decoder configuration, from a sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConfig {
    /// Codec.
    pub format: VideoFormat,
    /// The AVCDecoderConfigurationRecord / HEVCDecoderConfigurationRecord, as sent.
    pub record: Bytes,
    /// NAL unit length prefix size of coded frames.
    pub nal_length_size: u8,
    /// VPS (HEVC), SPS and PPS, each behind a 4-byte Annex B start code.
    pub parameter_sets: Bytes,
    /// RFC 6381 codec string (`avc1.64001f`, `hvc1.1.6.L93.B0`).
    pub codec_string: String,
    /// Cropped width in pixels (0 when unknown).
    pub width: u32,
    /// Cropped height in pixels (0 when unknown).
    pub height: u32,
}

/// An audio decoder configuration, from a sequence header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    /// Codec.
    pub format: AudioFormat,
    /// The AudioSpecificConfig, as sent.
    pub specific_config: Bytes,
    /// audioObjectType (2 = AAC LC).
    pub object_type: u8,
    /// Output sampling rate in Hz (also the fMP4 track timescale).
    pub sample_rate: u32,
    /// samplingFrequencyIndex for ADTS headers.
    pub sampling_frequency_index: u8,
    /// channelConfiguration.
    pub channels: u8,
    /// RFC 6381 codec string (`mp4a.40.2`).
    pub codec_string: String,
}

/// One coded frame on the packager's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Decode time in milliseconds on the output timeline.
    pub dts: u64,
    /// Composition offset (PTS − DTS) in milliseconds.
    pub cts: i32,
    /// Duration in milliseconds: the next sample's DTS minus this one's.
    pub duration: u32,
    /// A frame a decoder can start from (always true for audio).
    pub keyframe: bool,
    /// Length-prefixed NAL units (video) or one raw AAC frame (audio); a payload slice.
    pub data: Bytes,
}

/// A frame after classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A video sequence header.
    VideoConfig(VideoConfig),
    /// An audio sequence header.
    AudioConfig(AudioConfig),
    /// A coded video frame: timestamp ms, composition offset ms, keyframe, data.
    Video {
        timestamp: u32,
        cts: i32,
        keyframe: bool,
        data: Bytes,
    },
    /// A coded audio frame: timestamp ms, data.
    Audio { timestamp: u32, data: Bytes },
    /// Nothing to package (metadata, end of sequence, command frames).
    Ignored,
}

/// Classifies one frame. Unsupported codecs are errors so the caller can log them once.
pub fn parse_frame(frame: &Frame) -> Result<Parsed, PackageError> {
    if let Some(parsed) = legacy_coded_frame(frame) {
        return Ok(parsed);
    }
    match frame.kind {
        FrameKind::Metadata => Ok(Parsed::Ignored),
        FrameKind::Video => parse_video(frame),
        FrameKind::Audio => parse_audio(frame),
    }
}

/// The common case without the general tag walk: a legacy (non-Enhanced) AVC or AAC tag
/// carrying coded data. Everything else (sequence headers, commands, Enhanced RTMP,
/// multitrack, anything malformed) is left to the general parsers, which give the same
/// result for these tags.
fn legacy_coded_frame(frame: &Frame) -> Option<Parsed> {
    let p = &frame.payload;
    match frame.kind {
        // AVC (codec id 7), frame type key/inter/disposable/generated key, AVC NALU packet.
        FrameKind::Video if p.len() > 5 && p[0] & 0x0f == 7 && (1..=4).contains(&(p[0] >> 4)) => {
            (p[1] == 1).then(|| Parsed::Video {
                timestamp: frame.timestamp,
                // Signed 24-bit composition time.
                cts: i32::from_be_bytes([p[2], p[3], p[4], 0]) >> 8,
                keyframe: matches!(p[0] >> 4, 1 | 4),
                data: p.slice(5..),
            })
        }
        // AAC (sound format 10), raw frame.
        FrameKind::Audio if p.len() > 2 && p[0] >> 4 == 10 && p[1] == 1 => Some(Parsed::Audio {
            timestamp: frame.timestamp,
            data: p.slice(2..),
        }),
        _ => None,
    }
}

fn parse_video(frame: &Frame) -> Result<Parsed, PackageError> {
    let tag = parse_video_tag(&frame.payload)?;
    if tag.command.is_some() {
        return Ok(Parsed::Ignored);
    }
    let Some(track) = tag.first_track() else {
        return Ok(Parsed::Ignored);
    };
    let format = match track.codec {
        VideoCodec::Avc => VideoFormat::H264,
        VideoCodec::Hevc => VideoFormat::H265,
        VideoCodec::Av1 => return unsupported("AV1"),
        VideoCodec::Vp9 => return unsupported("VP9"),
        _ => return unsupported("this video codec"),
    };
    let data = frame
        .payload
        .slice(track.data_offset..track.data_offset + track.data.len());
    match tag.packet_type {
        VideoPacketType::SequenceStart => Ok(Parsed::VideoConfig(video_config(format, data)?)),
        VideoPacketType::CodedFrames | VideoPacketType::CodedFramesX if !data.is_empty() => {
            Ok(Parsed::Video {
                timestamp: frame.timestamp,
                cts: track.composition_time,
                keyframe: matches!(
                    tag.frame_type,
                    VideoFrameType::Key | VideoFrameType::GeneratedKey
                ),
                data,
            })
        }
        _ => Ok(Parsed::Ignored),
    }
}

fn parse_audio(frame: &Frame) -> Result<Parsed, PackageError> {
    let tag = parse_audio_tag(&frame.payload)?;
    let Some(track) = tag.first_track() else {
        return Ok(Parsed::Ignored);
    };
    match track.codec {
        AudioCodec::Aac => {}
        AudioCodec::Opus => return unsupported("Opus"),
        AudioCodec::Mp3 => return unsupported("MP3"),
        _ => return unsupported("this audio codec"),
    }
    let data = frame
        .payload
        .slice(track.data_offset..track.data_offset + track.data.len());
    match tag.packet_type {
        AudioPacketType::SequenceStart => Ok(Parsed::AudioConfig(audio_config(data)?)),
        AudioPacketType::CodedFrames if !data.is_empty() => Ok(Parsed::Audio {
            timestamp: frame.timestamp,
            data,
        }),
        _ => Ok(Parsed::Ignored),
    }
}

fn unsupported(codec: &'static str) -> Result<Parsed, PackageError> {
    Err(PackageError::UnsupportedCodec {
        codec,
        container: "HLS/DASH",
    })
}

/// Builds a [`VideoConfig`] from a decoder configuration record.
pub fn video_config(format: VideoFormat, record: Bytes) -> Result<VideoConfig, PackageError> {
    let mut sets = BytesMut::new();
    let mut push = |nal: &[u8]| {
        sets.put_slice(&START_CODE);
        sets.put_slice(nal);
    };
    match format {
        VideoFormat::H264 => {
            let cfg = AvcConfig::parse(&record)?;
            let Some(sps) = cfg.sps.first() else {
                return Err(PackageError::MissingParameterSet {
                    what: "AVC",
                    missing: "SPS",
                });
            };
            let info = avc::parse_sps(sps).ok();
            cfg.sps.iter().chain(cfg.pps.iter()).for_each(|n| push(n));
            Ok(VideoConfig {
                format,
                nal_length_size: cfg.nal_length_size,
                parameter_sets: sets.freeze(),
                codec_string: cfg.codec_string(),
                width: info.map_or(0, |i| i.width),
                height: info.map_or(0, |i| i.height),
                record,
            })
        }
        VideoFormat::H265 => {
            let cfg = HevcConfig::parse(&record)?;
            if cfg.sps().next().is_none() {
                return Err(PackageError::MissingParameterSet {
                    what: "HEVC",
                    missing: "SPS",
                });
            }
            cfg.vps().chain(cfg.sps()).chain(cfg.pps()).for_each(push);
            let (width, height) = cfg.sps().next().and_then(hevc_sps_size).unwrap_or((0, 0));
            Ok(VideoConfig {
                format,
                nal_length_size: cfg.nal_length_size,
                parameter_sets: sets.freeze(),
                codec_string: cfg.codec_string(),
                width,
                height,
                record,
            })
        }
    }
}

/// Builds an [`AudioConfig`] from an AudioSpecificConfig.
pub fn audio_config(specific_config: Bytes) -> Result<AudioConfig, PackageError> {
    let cfg = AacConfig::parse(&specific_config)?;
    let sampling_frequency_index = if cfg.sampling_frequency_index < 13 {
        cfg.sampling_frequency_index
    } else {
        nearest_rate_index(cfg.sample_rate)
    };
    Ok(AudioConfig {
        format: AudioFormat::Aac,
        object_type: cfg.object_type,
        sample_rate: cfg.sample_rate,
        sampling_frequency_index,
        channels: cfg.channel_config,
        codec_string: cfg.codec_string(),
        specific_config,
    })
}

fn nearest_rate_index(rate: u32) -> u8 {
    use crate::media::aac::SAMPLE_RATES;
    let mut best = 0;
    for (i, r) in SAMPLE_RATES.iter().enumerate() {
        if r.abs_diff(rate) < SAMPLE_RATES[best].abs_diff(rate) {
            best = i;
        }
    }
    best as u8
}

/// Reads pic_width/height_in_luma_samples (minus the conformance window) from an HEVC SPS.
fn hevc_sps_size(nal: &[u8]) -> Option<(u32, u32)> {
    let rbsp = avc::unescape_rbsp(nal.get(2..)?);
    let mut r = BitReader::new(&rbsp, "HEVC SPS");
    r.skip(4).ok()?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3).ok()?;
    r.skip(1).ok()?; // temporal_id_nesting
                     // profile_tier_level(1, max_sub_layers_minus1)
    r.skip(2 + 1 + 5 + 32 + 4 + 43 + 1 + 8).ok()?;
    let mut sub_profile = [false; 8];
    let mut sub_level = [false; 8];
    for i in 0..max_sub_layers_minus1 as usize {
        sub_profile[i] = r.flag().ok()?;
        sub_level[i] = r.flag().ok()?;
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - max_sub_layers_minus1 as usize)).ok()?;
    }
    for i in 0..max_sub_layers_minus1 as usize {
        if sub_profile[i] {
            r.skip(88).ok()?;
        }
        if sub_level[i] {
            r.skip(8).ok()?;
        }
    }
    r.ue().ok()?; // sps_seq_parameter_set_id
    let chroma = r.ue().ok()?;
    if chroma == 3 {
        r.skip(1).ok()?;
    }
    let mut width = r.ue().ok()?;
    let mut height = r.ue().ok()?;
    if r.flag().ok()? {
        let (sub_w, sub_h) = match chroma {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let (l, rt, t, b) = (r.ue().ok()?, r.ue().ok()?, r.ue().ok()?, r.ue().ok()?);
        width = width.checked_sub(sub_w * (l + rt))?;
        height = height.checked_sub(sub_h * (t + b))?;
    }
    Some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_fast_path_agrees_with_the_general_parsers() {
        let mut payloads: Vec<(FrameKind, Vec<u8>)> = Vec::new();
        for b0 in 0..=255u8 {
            for b1 in 0..=3u8 {
                for cts in [
                    [0, 0, 0],
                    [0xff, 0xff, 0xfe],
                    [0x00, 0x01, 0x00],
                    [0x7f, 0, 1],
                ] {
                    let mut v = vec![b0, b1];
                    v.extend_from_slice(&cts);
                    v.extend_from_slice(&[0, 0, 0, 2, 0x65, 0x88]);
                    payloads.push((FrameKind::Video, v.clone()));
                    payloads.push((FrameKind::Video, v[..5].to_vec()));
                    payloads.push((FrameKind::Video, v[..6].to_vec()));
                }
                payloads.push((FrameKind::Audio, vec![b0, b1, 0x21, 0x10]));
                payloads.push((FrameKind::Audio, vec![b0, b1]));
            }
        }
        let mut fast = 0;
        for (kind, p) in payloads {
            let frame = Frame::new(kind, 1234, Bytes::from(p));
            if let Some(parsed) = legacy_coded_frame(&frame) {
                fast += 1;
                let general = match kind {
                    FrameKind::Video => parse_video(&frame),
                    _ => parse_audio(&frame),
                };
                assert_eq!(Ok(parsed), general, "{:02x?}", &frame.payload[..]);
            }
        }
        // Key, inter, disposable and generated-key AVC with four offsets and two lengths;
        // AAC raw frames with any flags.
        assert_eq!(fast, 4 * 4 * 2 + 16);
    }
}
