//! AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1): object type, sampling rate and channel
//! configuration, as carried by an AAC sequence header.

use super::cursor::BitReader;
use super::MediaError;

/// Sampling rates by samplingFrequencyIndex; 13 and 14 are reserved, 15 means explicit.
pub(crate) const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Audio object types that signal SBR / PS explicitly (HE-AAC v1 / v2).
const AOT_SBR: u8 = 5;
const AOT_PS: u8 = 29;

/// The parsed head of an AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// audioObjectType (2 = AAC LC). For explicit HE-AAC this is the core object type.
    pub object_type: u8,
    /// samplingFrequencyIndex (15 when the rate is explicit).
    pub sampling_frequency_index: u8,
    /// Core sampling rate in Hz.
    pub sample_rate: u32,
    /// channelConfiguration (0 = defined in a program config element).
    pub channel_config: u8,
    /// Explicit SBR/PS signalling: the output (extension) sampling rate.
    pub extension_sample_rate: Option<u32>,
}

impl AacConfig {
    /// Parses an AudioSpecificConfig (the data of an AAC sequence header).
    pub fn parse(data: &[u8]) -> Result<Self, MediaError> {
        let mut r = BitReader::new(data, "AudioSpecificConfig");
        let mut object_type = read_object_type(&mut r)?;
        let (sampling_frequency_index, sample_rate) = read_rate(&mut r)?;
        let channel_config = r.bits(4)? as u8;
        let mut extension_sample_rate = None;
        if object_type == AOT_SBR || object_type == AOT_PS {
            let (_, ext) = read_rate(&mut r)?;
            extension_sample_rate = Some(ext);
            object_type = read_object_type(&mut r)?;
        }
        Ok(AacConfig {
            object_type,
            sampling_frequency_index,
            sample_rate,
            channel_config,
            extension_sample_rate,
        })
    }

    /// RFC 6381 codec string for HLS/DASH, e.g. `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, MediaError> {
    let t = r.bits(5)? as u8;
    Ok(if t == 31 { 32 + r.bits(6)? as u8 } else { t })
}

fn read_rate(r: &mut BitReader<'_>) -> Result<(u8, u32), MediaError> {
    let index = r.bits(4)? as u8;
    if index == 15 {
        return Ok((index, r.bits(24)?));
    }
    SAMPLE_RATES
        .get(usize::from(index))
        .map(|&rate| (index, rate))
        .ok_or(MediaError::ReservedSamplingFrequencyIndex { index })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aac_lc_44100_stereo() {
        // 00010 0100 0010 000 -> LC, 44100, 2 channels
        let cfg = AacConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(cfg.object_type, 2);
        assert_eq!((cfg.sampling_frequency_index, cfg.sample_rate), (4, 44100));
        assert_eq!(cfg.channel_config, 2);
        assert_eq!(cfg.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn parses_explicit_sample_rate() {
        // object 2, index 15, rate 0x00ac44 (44100), channels 1
        // bits: 00010 1111 000000001010110001000100 0001 ...
        let cfg = AacConfig::parse(&[0x17, 0x80, 0x56, 0x22, 0x08]).unwrap();
        assert_eq!(cfg.sampling_frequency_index, 15);
        assert_eq!(cfg.sample_rate, 44100);
        assert_eq!(cfg.channel_config, 1);
    }

    #[test]
    fn parses_explicit_he_aac_core_type() {
        // 00101 (SBR) 0110 (24000) 0010 (stereo) 0011 (48000 ext) 00010 (LC core)
        let cfg = AacConfig::parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(cfg.object_type, 2);
        assert_eq!(cfg.sample_rate, 24000);
        assert_eq!(cfg.extension_sample_rate, Some(48000));
    }

    #[test]
    fn rejects_reserved_sampling_frequency_index() {
        // 00010 1101 ...
        assert_eq!(
            AacConfig::parse(&[0x16, 0x80]),
            Err(MediaError::ReservedSamplingFrequencyIndex { index: 13 })
        );
    }

    #[test]
    fn truncated_config_is_an_error() {
        assert!(AacConfig::parse(&[]).is_err());
        assert!(AacConfig::parse(&[0x12]).is_err());
    }
}
