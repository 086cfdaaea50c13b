//! MPEG-TS muxer (ISO/IEC 13818-1) for HLS: PAT/PMT, one PES per frame with PTS/DTS at
//! 90 kHz, PCR on the video PID (the audio PID without video), continuity counters that carry
//! on across segments, AVCC → Annex B with an AUD and (on keyframes) VPS/SPS/PPS, raw AAC →
//! ADTS.
//!
//! The muxer keeps one reusable scratch buffer, so packaging a frame allocates nothing once
//! warm; the output of [`TsMuxer::write_part`] is frozen into one shared `Bytes`.

use bytes::{BufMut, BytesMut};

use super::codec::{AudioConfig, Sample, VideoConfig, VideoFormat};
use crate::media::avc;

/// TS packet size.
pub const PACKET_LEN: usize = 188;
/// PID of the program map table.
pub const PID_PMT: u16 = 0x1000;
/// PID of the video elementary stream.
pub const PID_VIDEO: u16 = 0x100;
/// PID of the audio elementary stream.
pub const PID_AUDIO: u16 = 0x101;
/// Stream type of H.264 video.
pub const STREAM_TYPE_H264: u8 = 0x1b;
/// Stream type of H.265 video.
pub const STREAM_TYPE_H265: u8 = 0x24;
/// Stream type of AAC in ADTS.
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;

/// How far the PCR runs behind the DTS it is sent with (100 ms at 90 kHz), so the
/// T-STD model has a decode buffer.
const PCR_LEAD_90K: u64 = 9000;
const TS_MASK: u64 = (1 << 33) - 1;
const H264_AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xf0];
const H265_AUD: [u8; 7] = [0, 0, 0, 1, 0x46, 0x01, 0x50];

/// MPEG-TS muxer state for one stream: continuity counters and the PMT version.
#[derive(Debug, Default)]
pub struct TsMuxer {
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
    cc_audio: u8,
    pmt_version: u8,
    last_pmt: Option<(Option<u8>, bool)>,
    scratch: Vec<u8>,
}

impl TsMuxer {
    /// A muxer whose counters start at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes PAT, PMT, then every sample as PES in DTS order (video and audio interleaved).
    /// Call once per part (or segment); each part is then decodable from its first packet.
    pub fn write_part(
        &mut self,
        video: Option<&VideoConfig>,
        audio: Option<&AudioConfig>,
        video_samples: &[Sample],
        audio_samples: &[Sample],
        out: &mut BytesMut,
    ) {
        let video_type = video.map(|v| match v.format {
            VideoFormat::H264 => STREAM_TYPE_H264,
            VideoFormat::H265 => STREAM_TYPE_H265,
        });
        self.write_tables(video_type, audio.is_some(), out);
        let (mut vi, mut ai) = (0, 0);
        loop {
            let take_video = match (video_samples.get(vi), audio_samples.get(ai)) {
                (Some(v), Some(a)) => v.dts <= a.dts,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_video {
                if let Some(cfg) = video {
                    self.write_video(cfg, &video_samples[vi], out);
                }
                vi += 1;
            } else {
                if let Some(cfg) = audio {
                    self.write_audio(cfg, &audio_samples[ai], video.is_none(), out);
                }
                ai += 1;
            }
        }
    }

    fn write_tables(&mut self, video: Option<u8>, audio: bool, out: &mut BytesMut) {
        if self.last_pmt.is_some_and(|p| p != (video, audio)) {
            self.pmt_version = (self.pmt_version + 1) & 0x1f;
        }
        self.last_pmt = Some((video, audio));
        // PAT: program 1 -> PMT PID.
        let mut pat = [0u8; 12];
        pat[..8].copy_from_slice(&[0x00, 0xb0, 13, 0x00, 0x01, 0xc1, 0x00, 0x00]);
        pat[8..12].copy_from_slice(&[0x00, 0x01, 0xe0 | (PID_PMT >> 8) as u8, PID_PMT as u8]);
        write_section(out, 0, &mut self.cc_pat, &pat);
        // PMT.
        let pcr_pid = if video.is_some() {
            PID_VIDEO
        } else {
            PID_AUDIO
        };
        let mut pmt = [0u8; 22];
        let mut n = 12;
        pmt[..12].copy_from_slice(&[
            0x02,
            0xb0,
            0,
            0x00,
            0x01,
            0xc1 | (self.pmt_version << 1),
            0x00,
            0x00,
            0xe0 | (pcr_pid >> 8) as u8,
            pcr_pid as u8,
            0xf0,
            0x00,
        ]);
        for (ty, pid) in [
            (video, PID_VIDEO),
            (audio.then_some(STREAM_TYPE_AAC_ADTS), PID_AUDIO),
        ] {
            if let Some(ty) = ty {
                pmt[n..n + 5].copy_from_slice(&[ty, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0]);
                n += 5;
            }
        }
        pmt[2] = (n + 4 - 3) as u8; // section_length: after the length field, CRC included
        write_section(out, PID_PMT, &mut self.cc_pmt, &pmt[..n]);
    }

    fn write_video(&mut self, cfg: &VideoConfig, s: &Sample, out: &mut BytesMut) {
        let dts = (s.dts * 90) & TS_MASK;
        let pts = ((s.dts as i64 + i64::from(s.cts)).max(0) as u64 * 90) & TS_MASK;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        pes_header(&mut buf, 0xe0, pts, Some(dts), 0);
        let aud_type = match cfg.format {
            VideoFormat::H264 => {
                buf.extend_from_slice(&H264_AUD);
                avc::nal_type::AUD
            }
            VideoFormat::H265 => {
                buf.extend_from_slice(&H265_AUD);
                35
            }
        };
        if s.keyframe {
            buf.extend_from_slice(&cfg.parameter_sets);
        }
        for nal in avc::nal_units(&s.data, cfg.nal_length_size) {
            let Ok(nal) = nal else { break };
            let Some(&h) = nal.first() else { continue };
            let ty = match cfg.format {
                VideoFormat::H264 => h & 0x1f,
                VideoFormat::H265 => (h >> 1) & 0x3f,
            };
            if ty == aud_type {
                continue;
            }
            buf.extend_from_slice(&[0, 0, 0, 1]);
            buf.extend_from_slice(nal);
        }
        let pcr = Some(dts.saturating_sub(PCR_LEAD_90K));
        write_pes(out, PID_VIDEO, &mut self.cc_video, &buf, pcr, s.keyframe);
        self.scratch = buf;
    }

    fn write_audio(&mut self, cfg: &AudioConfig, s: &Sample, with_pcr: bool, out: &mut BytesMut) {
        let pts = (s.dts * 90) & TS_MASK;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let frame_len = 7 + s.data.len();
        pes_header(&mut buf, 0xc0, pts, None, frame_len);
        let profile = cfg.object_type.clamp(1, 4) - 1;
        let ch = cfg.channels;
        buf.extend_from_slice(&[
            0xff,
            0xf1,
            (profile << 6) | (cfg.sampling_frequency_index << 2) | ((ch >> 2) & 1),
            ((ch & 3) << 6) | ((frame_len >> 11) & 3) as u8,
            (frame_len >> 3) as u8,
            (((frame_len & 7) << 5) as u8) | 0x1f,
            0xfc,
        ]);
        buf.extend_from_slice(&s.data);
        let pcr = with_pcr.then(|| pts.saturating_sub(PCR_LEAD_90K));
        write_pes(out, PID_AUDIO, &mut self.cc_audio, &buf, pcr, with_pcr);
        self.scratch = buf;
    }
}

/// PES header with PTS (and DTS when it differs). `payload_len` 0 = unbounded (video).
fn pes_header(buf: &mut Vec<u8>, stream_id: u8, pts: u64, dts: Option<u64>, payload_len: usize) {
    let dts = dts.filter(|&d| d != pts);
    let header_data = if dts.is_some() { 10 } else { 5 };
    let pes_len = if payload_len == 0 {
        0
    } else {
        let n = 3 + header_data + payload_len;
        if n > 0xffff {
            0
        } else {
            n
        }
    };
    buf.extend_from_slice(&[
        0,
        0,
        1,
        stream_id,
        (pes_len >> 8) as u8,
        pes_len as u8,
        0x84,
    ]);
    buf.push(if dts.is_some() { 0xc0 } else { 0x80 });
    buf.push(header_data as u8);
    write_timestamp(buf, if dts.is_some() { 3 } else { 2 }, pts);
    if let Some(d) = dts {
        write_timestamp(buf, 1, d);
    }
}

fn write_timestamp(buf: &mut Vec<u8>, prefix: u8, ts: u64) {
    buf.extend_from_slice(&[
        (prefix << 4) | (((ts >> 29) & 0x0e) as u8) | 1,
        (ts >> 22) as u8,
        (((ts >> 14) & 0xfe) as u8) | 1,
        (ts >> 7) as u8,
        (((ts << 1) & 0xfe) as u8) | 1,
    ]);
}

/// Splits one PES into TS packets; the first carries the PCR and random-access flag, the last
/// is padded with adaptation-field stuffing.
fn write_pes(out: &mut BytesMut, pid: u16, cc: &mut u8, pes: &[u8], pcr: Option<u64>, rai: bool) {
    out.reserve(pes.len() / 184 * PACKET_LEN + 2 * PACKET_LEN);
    let mut pos = 0;
    let mut first = true;
    while pos < pes.len() {
        let remaining = pes.len() - pos;
        // Adaptation field size, length byte included.
        let mut af = 0;
        if first && (pcr.is_some() || rai) {
            af = 2 + if pcr.is_some() { 6 } else { 0 };
        }
        let payload = remaining.min(184 - af);
        if payload < 184 - af {
            af = 184 - payload;
        }
        out.put_u8(0x47);
        out.put_u8(if first { 0x40 } else { 0 } | (pid >> 8) as u8);
        out.put_u8(pid as u8);
        out.put_u8(if af > 0 { 0x30 } else { 0x10 } | *cc);
        *cc = (*cc + 1) & 0x0f;
        if af > 0 {
            out.put_u8((af - 1) as u8);
            if af > 1 {
                let mut flags = 0u8;
                let mut used = 2;
                if first && rai {
                    flags |= 0x40;
                }
                let pcr = if first { pcr } else { None };
                if pcr.is_some() {
                    flags |= 0x10;
                }
                out.put_u8(flags);
                if let Some(base) = pcr {
                    let base = base & TS_MASK;
                    out.put_slice(&[
                        (base >> 25) as u8,
                        (base >> 17) as u8,
                        (base >> 9) as u8,
                        (base >> 1) as u8,
                        (((base & 1) << 7) as u8) | 0x7e,
                        0,
                    ]);
                    used += 6;
                }
                out.put_bytes(0xff, af - used);
            }
        }
        out.put_slice(&pes[pos..pos + payload]);
        pos += payload;
        first = false;
    }
}

/// Writes one PSI section (without CRC, which is appended here) as a single packet.
fn write_section(out: &mut BytesMut, pid: u16, cc: &mut u8, section: &[u8]) {
    out.put_u8(0x47);
    out.put_u8(0x40 | (pid >> 8) as u8);
    out.put_u8(pid as u8);
    out.put_u8(0x10 | *cc);
    *cc = (*cc + 1) & 0x0f;
    out.put_u8(0); // pointer_field
    out.put_slice(section);
    out.put_u32(crc32_mpeg2(section));
    out.put_bytes(0xff, 184 - 1 - section.len() - 4);
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, no reflection, no final xor).
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::codec::{audio_config, AudioFormat};
    use bytes::Bytes;

    #[test]
    fn crc32_mpeg2_matches_the_check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
    }

    #[test]
    fn every_packet_is_188_bytes_with_sync_and_continuous_counters() {
        let cfg = audio_config(Bytes::from_static(&[0x12, 0x08])).unwrap();
        assert_eq!(cfg.format, AudioFormat::Aac);
        let samples: Vec<Sample> = (0..5)
            .map(|i| Sample {
                dts: i * 23,
                cts: 0,
                duration: 23,
                keyframe: true,
                data: Bytes::from(vec![0x21; 50 + 100 * i as usize]),
            })
            .collect();
        let mut mux = TsMuxer::new();
        let mut out = BytesMut::new();
        mux.write_part(None, Some(&cfg), &[], &samples, &mut out);
        mux.write_part(None, Some(&cfg), &[], &samples, &mut out);
        assert_eq!(out.len() % PACKET_LEN, 0);
        let mut last_cc: Option<u8> = None;
        for p in out.chunks(PACKET_LEN) {
            assert_eq!(p[0], 0x47);
            let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
            if pid == PID_AUDIO {
                let cc = p[3] & 0x0f;
                if let Some(l) = last_cc {
                    assert_eq!(cc, (l + 1) & 0x0f, "continuity counter must not skip");
                }
                last_cc = Some(cc);
            }
        }
    }

    #[test]
    fn pes_timestamps_encode_33_bits_with_markers() {
        let mut b = Vec::new();
        write_timestamp(&mut b, 2, (1 << 32) | 0x1234_5678);
        assert_eq!(b[0] & 0x01, 1);
        assert_eq!(b[0] >> 4, 2);
        let back = (u64::from(b[0] >> 1 & 7) << 30)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] >> 1) << 15)
            | (u64::from(b[3]) << 7)
            | u64::from(b[4] >> 1);
        assert_eq!(back, (1 << 32) | 0x1234_5678);
    }
}
