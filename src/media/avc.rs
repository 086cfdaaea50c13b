//! H.264/AVC: AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3), length-prefixed NAL
//! unit iteration, emulation prevention, and the SPS fields HLS/DASH need.

use super::cursor::{BitReader, Cursor};
use super::MediaError;

/// Caps how many parameter sets a record may list (the 5-bit SPS count allows 31).
const MAX_PARAMETER_SETS: usize = 32;

/// H.264 NAL unit types used here.
pub mod nal_type {
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
}

/// AVCDecoderConfigurationRecord, borrowing its parameter sets from the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig<'a> {
    /// AVCProfileIndication (66 baseline, 77 main, 100 high, ...).
    pub profile: u8,
    /// profile_compatibility (constraint_set flags).
    pub compatibility: u8,
    /// AVCLevelIndication (level × 10).
    pub level: u8,
    /// Size in bytes of each NAL unit length prefix in coded frames (1, 2 or 4).
    pub nal_length_size: u8,
    /// Sequence parameter set NAL units.
    pub sps: Vec<&'a [u8]>,
    /// Picture parameter set NAL units.
    pub pps: Vec<&'a [u8]>,
}

impl AvcConfig<'_> {
    /// Parses a record (the data of an AVC sequence header).
    pub fn parse(data: &[u8]) -> Result<AvcConfig<'_>, MediaError> {
        let mut c = Cursor::new(data, "AVCDecoderConfigurationRecord");
        let version = c.u8()?;
        if version != 1 {
            return Err(MediaError::UnsupportedConfigurationVersion {
                what: "AVC",
                version,
            });
        }
        let profile = c.u8()?;
        let compatibility = c.u8()?;
        let level = c.u8()?;
        let nal_length_size = (c.u8()? & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(MediaError::InvalidNalLengthSize { size: 3 });
        }
        let num_sps = usize::from(c.u8()? & 0x1f);
        let sps = read_sets(&mut c, num_sps)?;
        let num_pps = usize::from(c.u8()?);
        let pps = read_sets(&mut c, num_pps)?;
        // Trailing high-profile fields (chroma format, bit depth, SPS ext) are not needed.
        Ok(AvcConfig {
            profile,
            compatibility,
            level,
            nal_length_size,
            sps,
            pps,
        })
    }

    /// RFC 6381 codec string for HLS/DASH, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }
}

fn read_sets<'a>(c: &mut Cursor<'a>, n: usize) -> Result<Vec<&'a [u8]>, MediaError> {
    let mut out = Vec::with_capacity(n.min(MAX_PARAMETER_SETS));
    for _ in 0..n {
        let len = usize::from(c.u16()?);
        out.push(c.take(len)?);
    }
    Ok(out)
}

/// Iterates the NAL units of a length-prefixed (AVCC/HVCC) frame.
///
/// Yields `Err(Truncated)` once if a prefix or unit runs past the end, then stops.
pub fn nal_units(data: &[u8], length_size: u8) -> NalUnits<'_> {
    NalUnits {
        data,
        length_size,
        done: false,
    }
}

/// Iterator returned by [`nal_units`].
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    length_size: u8,
    done: bool,
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = Result<&'a [u8], MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.data.is_empty() {
            return None;
        }
        let n = usize::from(self.length_size);
        if !(1..=4).contains(&n) {
            self.done = true;
            return Some(Err(MediaError::InvalidNalLengthSize {
                size: self.length_size,
            }));
        }
        if self.data.len() < n {
            self.done = true;
            return Some(Err(MediaError::Truncated {
                what: "NAL unit length",
            }));
        }
        let len = self.data[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let rest = &self.data[n..];
        if rest.len() < len {
            self.done = true;
            return Some(Err(MediaError::Truncated { what: "NAL unit" }));
        }
        let (unit, tail) = rest.split_at(len);
        self.data = tail;
        Some(Ok(unit))
    }
}

/// Removes emulation prevention bytes (`00 00 03` → `00 00`) from a NAL unit payload.
pub fn unescape_rbsp(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 0x03 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Inserts emulation prevention bytes so no `00 00 0x` (x ≤ 3) appears in the payload.
pub fn escape_rbsp(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16 + 1);
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b <= 0x03 {
            out.push(0x03);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// The SPS fields HLS/DASH manifests need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// profile_idc.
    pub profile_idc: u8,
    /// constraint_set flags byte.
    pub constraint_flags: u8,
    /// level_idc.
    pub level_idc: u8,
    /// Cropped picture width in luma samples.
    pub width: u32,
    /// Cropped picture height in luma samples.
    pub height: u32,
}

/// Parses a sequence parameter set NAL unit (header byte included).
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, MediaError> {
    const WHAT: &str = "H.264 SPS";
    let rbsp = unescape_rbsp(nal.get(1..).ok_or(MediaError::Truncated { what: WHAT })?);
    let mut r = BitReader::new(&rbsp, WHAT);
    let profile_idc = r.bits(8)? as u8;
    let constraint_flags = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            // seq_scaling_matrix_present_flag
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.skip(1)?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return Err(MediaError::Truncated { what: WHAT });
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        r.skip(1)?; // mb_adaptive_frame_field_flag
    }
    r.skip(1)?; // direct_8x8_inference_flag
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
    if r.flag()? {
        crop_l = r.ue()?.into();
        crop_r = r.ue()?.into();
        crop_t = r.ue()?.into();
        crop_b = r.ue()?.into();
    }
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (sub_w, sub_h) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let frame_factor = if frame_mbs_only { 1 } else { 2 };
    let crop_unit_x = if chroma_array_type == 0 { 1 } else { sub_w };
    let crop_unit_y = if chroma_array_type == 0 {
        frame_factor
    } else {
        sub_h * frame_factor
    };
    let width = (width_mbs * 16).saturating_sub(crop_unit_x * (crop_l + crop_r));
    let height =
        (height_map_units * 16 * frame_factor).saturating_sub(crop_unit_y * (crop_t + crop_b));
    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        width: u32::try_from(width).unwrap_or(u32::MAX),
        height: u32::try_from(height).unwrap_or(u32::MAX),
    })
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), MediaError> {
    let mut last = 8i64;
    let mut next = 8i64;
    for _ in 0..size {
        if next != 0 {
            let delta = i64::from(r.se()?);
            next = (last + delta + 256).rem_euclid(256);
        }
        last = if next == 0 { last } else { next };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPS from x264, 320x240 High profile level 1.3 (captured with ffmpeg -c:v libx264).
    const SPS_320X240_HIGH: [u8; 25] = [
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60,
    ];

    #[test]
    fn parses_a_record_with_one_sps_and_one_pps() {
        let mut rec = vec![
            1, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x03, 0x67, 0x64, 0x00,
        ];
        rec.extend_from_slice(&[0x01, 0x00, 0x02, 0x68, 0xee]);
        let cfg = AvcConfig::parse(&rec).unwrap();
        assert_eq!((cfg.profile, cfg.level, cfg.nal_length_size), (100, 31, 4));
        assert_eq!(cfg.sps, vec![&[0x67, 0x64, 0x00][..]]);
        assert_eq!(cfg.pps, vec![&[0x68, 0xee][..]]);
        assert_eq!(cfg.codec_string(), "avc1.64001f");
    }

    #[test]
    fn record_truncated_at_every_offset_is_an_error() {
        let rec = [
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 3, 0x67, 0x64, 0, 1, 0, 2, 0x68, 0xee,
        ];
        for cut in 0..rec.len() {
            assert!(AvcConfig::parse(&rec[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn rejects_record_version_other_than_one() {
        assert_eq!(
            AvcConfig::parse(&[0, 66, 0, 30, 0xff, 0xe0, 0]),
            Err(MediaError::UnsupportedConfigurationVersion {
                what: "AVC",
                version: 0
            })
        );
    }

    #[test]
    fn nal_units_yield_each_unit_then_stop() {
        let data = [0, 0, 0, 2, 0x65, 0xaa, 0, 0, 0, 1, 0x41];
        let units: Vec<_> = nal_units(&data, 4).collect();
        assert_eq!(units, vec![Ok(&[0x65, 0xaa][..]), Ok(&[0x41][..])]);
        let short: Vec<_> = nal_units(&[0, 2, 0x65], 2).collect();
        assert_eq!(short, vec![Err(MediaError::Truncated { what: "NAL unit" })]);
        let bad: Vec<_> = nal_units(&[1, 2], 0).collect();
        assert_eq!(bad.len(), 1);
        assert!(bad[0].is_err());
    }

    #[test]
    fn nal_units_never_panic_on_any_truncation() {
        let data = [0, 0, 0, 2, 0x65, 0xaa, 0, 0, 0, 1, 0x41];
        for cut in 0..=data.len() {
            for size in 0..=5 {
                let units: Vec<_> = nal_units(&data[..cut], size).collect();
                // Every unit consumes at least its prefix; at most one error, and it is last.
                assert!(units.len() <= cut);
                assert!(units.iter().rev().skip(1).all(|u| u.is_ok()));
            }
        }
    }

    #[test]
    fn escape_and_unescape_round_trip() {
        let raw = [0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0];
        let esc = escape_rbsp(&raw);
        assert!(!esc.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
        assert_eq!(unescape_rbsp(&esc), raw);
    }

    #[test]
    fn parses_profile_level_and_size_from_a_real_sps() {
        let info = parse_sps(&SPS_320X240_HIGH).unwrap();
        assert_eq!((info.profile_idc, info.level_idc), (100, 13));
        assert_eq!((info.width, info.height), (320, 240));
    }

    #[test]
    fn sps_truncated_at_every_offset_never_panics() {
        for cut in 0..SPS_320X240_HIGH.len() {
            let _ = parse_sps(&SPS_320X240_HIGH[..cut]);
        }
        assert!(parse_sps(&SPS_320X240_HIGH[..4]).is_err());
    }
}
