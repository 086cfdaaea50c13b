//! H.265/HEVC: HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3) and its codec string.

use super::cursor::Cursor;
use super::MediaError;

/// HEVC NAL unit types used here.
pub mod nal_type {
    /// Video parameter set.
    pub const VPS: u8 = 32;
    /// Sequence parameter set.
    pub const SPS: u8 = 33;
    /// Picture parameter set.
    pub const PPS: u8 = 34;
    /// Access unit delimiter.
    pub const AUD: u8 = 35;
    /// Prefix SEI.
    pub const PREFIX_SEI: u8 = 39;

    /// The NAL unit type of an HEVC NAL unit (bits 1..6 of the first header byte).
    pub fn of(nal: &[u8]) -> Option<u8> {
        nal.first().map(|b| (b >> 1) & 0x3f)
    }

    /// IRAP pictures (BLA, IDR, CRA: types 16..=23) are random access points.
    pub fn is_irap(t: u8) -> bool {
        (16..=23).contains(&t)
    }
}

/// One array of same-type NAL units in the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcNalArray<'a> {
    /// NAL_unit_type of every unit in the array.
    pub nal_type: u8,
    /// array_completeness.
    pub complete: bool,
    /// The NAL units, header included.
    pub units: Vec<&'a [u8]>,
}

/// HEVCDecoderConfigurationRecord, borrowing its NAL units from the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HevcConfig<'a> {
    /// general_profile_space (0..3).
    pub profile_space: u8,
    /// general_tier_flag (false Main tier, true High tier).
    pub high_tier: bool,
    /// general_profile_idc (1 Main, 2 Main 10, ...).
    pub profile_idc: u8,
    /// general_profile_compatibility_flags.
    pub profile_compatibility: u32,
    /// general_constraint_indicator_flags (48 bits).
    pub constraint_flags: [u8; 6],
    /// general_level_idc (level × 30).
    pub level_idc: u8,
    /// chroma_format_idc.
    pub chroma_format: u8,
    /// bitDepthLumaMinus8 + 8.
    pub bit_depth_luma: u8,
    /// bitDepthChromaMinus8 + 8.
    pub bit_depth_chroma: u8,
    /// Size in bytes of each NAL unit length prefix in coded frames (1, 2 or 4).
    pub nal_length_size: u8,
    /// NAL unit arrays (typically VPS, SPS, PPS, SEI).
    pub arrays: Vec<HevcNalArray<'a>>,
}

/// Caps the number of arrays and units per array (both counts are peer-controlled).
const MAX_ARRAYS: usize = 16;
const MAX_UNITS_PER_ARRAY: usize = 64;

impl<'a> HevcConfig<'a> {
    /// Parses a record (the data of an HEVC sequence header / SequenceStart).
    pub fn parse(data: &'a [u8]) -> Result<Self, MediaError> {
        let mut c = Cursor::new(data, "HEVCDecoderConfigurationRecord");
        let version = c.u8()?;
        if version != 1 {
            return Err(MediaError::UnsupportedConfigurationVersion {
                what: "HEVC",
                version,
            });
        }
        let b = c.u8()?;
        let profile_compatibility = c.u32()?;
        let cf = c.take(6)?;
        let constraint_flags = [cf[0], cf[1], cf[2], cf[3], cf[4], cf[5]];
        let level_idc = c.u8()?;
        c.skip(2)?; // min_spatial_segmentation_idc
        c.skip(1)?; // parallelismType
        let chroma_format = c.u8()? & 0x03;
        let bit_depth_luma = (c.u8()? & 0x07) + 8;
        let bit_depth_chroma = (c.u8()? & 0x07) + 8;
        c.skip(2)?; // avgFrameRate
        let nal_length_size = (c.u8()? & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(MediaError::InvalidNalLengthSize { size: 3 });
        }
        let num_arrays = usize::from(c.u8()?);
        let mut arrays = Vec::with_capacity(num_arrays.min(MAX_ARRAYS));
        for _ in 0..num_arrays {
            let h = c.u8()?;
            let count = usize::from(c.u16()?);
            let mut units = Vec::with_capacity(count.min(MAX_UNITS_PER_ARRAY));
            for _ in 0..count {
                let len = usize::from(c.u16()?);
                units.push(c.take(len)?);
            }
            arrays.push(HevcNalArray {
                nal_type: h & 0x3f,
                complete: h & 0x80 != 0,
                units,
            });
        }
        Ok(HevcConfig {
            profile_space: b >> 6,
            high_tier: b & 0x20 != 0,
            profile_idc: b & 0x1f,
            profile_compatibility,
            constraint_flags,
            level_idc,
            chroma_format,
            bit_depth_luma,
            bit_depth_chroma,
            nal_length_size,
            arrays,
        })
    }

    /// Every NAL unit of the given type, in record order.
    pub fn units_of(&self, nal_type: u8) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.arrays
            .iter()
            .filter(move |a| a.nal_type == nal_type)
            .flat_map(|a| a.units.iter().copied())
    }

    /// Video parameter sets.
    pub fn vps(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.units_of(nal_type::VPS)
    }

    /// Sequence parameter sets.
    pub fn sps(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.units_of(nal_type::SPS)
    }

    /// Picture parameter sets.
    pub fn pps(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.units_of(nal_type::PPS)
    }

    /// RFC 6381 / ISO 14496-15 Annex E codec string, e.g. `hvc1.1.6.L93.B0`.
    pub fn codec_string(&self) -> String {
        let space = match self.profile_space {
            1 => "A",
            2 => "B",
            3 => "C",
            _ => "",
        };
        let compat = self.profile_compatibility.reverse_bits();
        let tier = if self.high_tier { 'H' } else { 'L' };
        let mut s = format!(
            "hvc1.{space}{}.{compat:X}.{tier}{}",
            self.profile_idc, self.level_idc
        );
        let used = self
            .constraint_flags
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        for b in &self.constraint_flags[..used] {
            s.push_str(&format!(".{b:X}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Vec<u8> {
        let mut r = vec![
            1,    // version
            0x01, // space 0, tier 0, profile 1 (Main)
            0x60, 0x00, 0x00, 0x00, // compat flags: 1, 2
            0x90, 0, 0, 0, 0, 0,  // constraint flags
            93, // level 3.1
            0xf0, 0x00, 0xfc, 0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f, // ... lengthSizeMinusOne 3
            3,    // arrays
        ];
        for (t, unit) in [
            (32u8, &[0x40u8, 0x01][..]),
            (33, &[0x42, 0x01, 0x01]),
            (34, &[0x44, 0x01]),
        ] {
            r.push(0x80 | t);
            r.extend_from_slice(&1u16.to_be_bytes());
            r.extend_from_slice(&(unit.len() as u16).to_be_bytes());
            r.extend_from_slice(unit);
        }
        r
    }

    #[test]
    fn parses_profile_level_and_parameter_sets() {
        let data = record();
        let cfg = HevcConfig::parse(&data).unwrap();
        assert_eq!(
            (cfg.profile_idc, cfg.level_idc, cfg.nal_length_size),
            (1, 93, 4)
        );
        assert_eq!((cfg.chroma_format, cfg.bit_depth_luma), (1, 8));
        assert_eq!(cfg.vps().collect::<Vec<_>>(), vec![&[0x40, 0x01][..]]);
        assert_eq!(cfg.sps().collect::<Vec<_>>(), vec![&[0x42, 0x01, 0x01][..]]);
        assert_eq!(cfg.pps().count(), 1);
        assert!(cfg.arrays.iter().all(|a| a.complete));
        assert_eq!(cfg.codec_string(), "hvc1.1.6.L93.90");
    }

    #[test]
    fn record_truncated_at_every_offset_is_an_error() {
        let data = record();
        for cut in 0..data.len() {
            assert!(HevcConfig::parse(&data[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn nal_type_helpers_read_the_header() {
        assert_eq!(nal_type::of(&[0x40, 0x01]), Some(nal_type::VPS));
        assert_eq!(nal_type::of(&[0x26, 0x01]), Some(19));
        assert!(nal_type::is_irap(19));
        assert!(!nal_type::is_irap(1));
        assert_eq!(nal_type::of(&[]), None);
    }
}
