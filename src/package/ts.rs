//! MPEG-TS muxer (ISO/IEC 13818-1) for HLS: PAT/PMT, one PES per frame with PTS/DTS at
//! 90 kHz, PCR on the video PID (the audio PID without video), continuity counters that carry
//! on across segments, AVCC → Annex B with an AUD and (on keyframes) VPS/SPS/PPS, raw AAC →
//! ADTS.
//!
//! Each PES is sized first and then packetised straight from the sample's bytes into the
//! caller's buffer: the payload is copied once and packaging a frame allocates nothing.

use bytes::{BufMut, BytesMut};

use super::codec::{AudioConfig, Sample, VideoConfig, VideoFormat};
use crate::media::{avc, hevc};

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
        let (header, header_len) = pes_header(0xe0, pts, Some(dts), 0);
        let (aud, aud_type): (&[u8], u8) = match cfg.format {
            VideoFormat::H264 => (&H264_AUD, avc::nal_type::AUD),
            VideoFormat::H265 => (&H265_AUD, hevc::nal_type::AUD),
        };
        let sets: &[u8] = if s.keyframe { &cfg.parameter_sets } else { &[] };
        // The NAL units that go out (an AUD of the source is replaced by ours), each behind
        // a 4-byte start code: sized first so the PES is packetised straight from the sample.
        let nals = || {
            avc::nal_units(&s.data, cfg.nal_length_size)
                .map_while(Result::ok)
                .filter(move |nal| {
                    let ty = match cfg.format {
                        VideoFormat::H264 => nal.first().map(|h| h & 0x1f),
                        VideoFormat::H265 => hevc::nal_type::of(nal),
                    };
                    ty.is_some_and(|ty| ty != aud_type)
                })
        };
        let len = header_len + aud.len() + sets.len() + nals().map(|n| 4 + n.len()).sum::<usize>();
        let pcr = Some(dts.saturating_sub(PCR_LEAD_90K));
        let mut pes = PesWriter::new(out, PID_VIDEO, &mut self.cc_video, len, pcr, s.keyframe);
        pes.put(&header[..header_len]);
        pes.put(aud);
        pes.put(sets);
        for nal in nals() {
            pes.put(&[0, 0, 0, 1]);
            pes.put(nal);
        }
        pes.finish();
    }

    fn write_audio(&mut self, cfg: &AudioConfig, s: &Sample, with_pcr: bool, out: &mut BytesMut) {
        let pts = (s.dts * 90) & TS_MASK;
        let frame_len = 7 + s.data.len();
        let (header, header_len) = pes_header(0xc0, pts, None, frame_len);
        let profile = cfg.object_type.clamp(1, 4) - 1;
        let ch = cfg.channels;
        let adts = [
            0xff,
            0xf1,
            (profile << 6) | (cfg.sampling_frequency_index << 2) | ((ch >> 2) & 1),
            ((ch & 3) << 6) | ((frame_len >> 11) & 3) as u8,
            (frame_len >> 3) as u8,
            (((frame_len & 7) << 5) as u8) | 0x1f,
            0xfc,
        ];
        let pcr = with_pcr.then(|| pts.saturating_sub(PCR_LEAD_90K));
        let len = header_len + frame_len;
        let mut pes = PesWriter::new(out, PID_AUDIO, &mut self.cc_audio, len, pcr, with_pcr);
        pes.put(&header[..header_len]);
        pes.put(&adts);
        pes.put(&s.data);
        pes.finish();
    }
}

/// Longest PES header written here: 9 fixed bytes, PTS and DTS.
const PES_HEADER_MAX: usize = 19;

/// PES header with PTS (and DTS when it differs), and its length. `payload_len` 0 = unbounded
/// (video).
fn pes_header(
    stream_id: u8,
    pts: u64,
    dts: Option<u64>,
    payload_len: usize,
) -> ([u8; PES_HEADER_MAX], usize) {
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
    let mut h = [0u8; PES_HEADER_MAX];
    h[..9].copy_from_slice(&[
        0,
        0,
        1,
        stream_id,
        (pes_len >> 8) as u8,
        pes_len as u8,
        0x84,
        if dts.is_some() { 0xc0 } else { 0x80 },
        header_data as u8,
    ]);
    h[9..14].copy_from_slice(&timestamp(if dts.is_some() { 3 } else { 2 }, pts));
    if let Some(d) = dts {
        h[14..19].copy_from_slice(&timestamp(1, d));
    }
    (h, 9 + header_data)
}

fn timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    [
        (prefix << 4) | (((ts >> 29) & 0x0e) as u8) | 1,
        (ts >> 22) as u8,
        (((ts >> 14) & 0xfe) as u8) | 1,
        (ts >> 7) as u8,
        (((ts << 1) & 0xfe) as u8) | 1,
    ]
}

/// Packetises one PES of known length into TS packets as its pieces are handed in, so the
/// payload is copied once, from the sample straight into the output. The first packet carries
/// the PCR and random-access flag; the last is padded with adaptation-field stuffing.
struct PesWriter<'a> {
    out: &'a mut BytesMut,
    pid: u16,
    cc: &'a mut u8,
    /// PES bytes not yet written.
    left: usize,
    /// Payload bytes still free in the current packet.
    room: usize,
    first: bool,
    pcr: Option<u64>,
    rai: bool,
}

impl<'a> PesWriter<'a> {
    fn new(
        out: &'a mut BytesMut,
        pid: u16,
        cc: &'a mut u8,
        len: usize,
        pcr: Option<u64>,
        rai: bool,
    ) -> Self {
        out.reserve(len.div_ceil(184) * PACKET_LEN + PACKET_LEN);
        PesWriter {
            out,
            pid,
            cc,
            left: len,
            room: 0,
            first: true,
            pcr,
            rai,
        }
    }

    /// Appends the next piece of the PES.
    fn put(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.room == 0 {
                self.start_packet();
            }
            let n = data.len().min(self.room);
            self.out.extend_from_slice(&data[..n]);
            data = &data[n..];
            self.room -= n;
            self.left -= n;
        }
    }

    /// Writes a packet header (and adaptation field) for the next payload bytes.
    fn start_packet(&mut self) {
        let first = self.first;
        self.first = false;
        // Adaptation field size, length byte included.
        let mut af = 0;
        if first && (self.pcr.is_some() || self.rai) {
            af = 2 + if self.pcr.is_some() { 6 } else { 0 };
        }
        let payload = self.left.min(184 - af);
        if payload < 184 - af {
            af = 184 - payload;
        }
        self.room = payload;
        let mut h = [0u8; 12];
        h[0] = 0x47;
        h[1] = if first { 0x40 } else { 0 } | (self.pid >> 8) as u8;
        h[2] = self.pid as u8;
        h[3] = if af > 0 { 0x30 } else { 0x10 } | *self.cc;
        *self.cc = (*self.cc + 1) & 0x0f;
        if af == 0 {
            self.out.extend_from_slice(&h[..4]);
            return;
        }
        h[4] = (af - 1) as u8;
        let mut n = 5;
        let mut stuffing = 0;
        if af > 1 {
            let mut flags = 0u8;
            let mut used = 2;
            if first && self.rai {
                flags |= 0x40;
            }
            let pcr = if first { self.pcr } else { None };
            if pcr.is_some() {
                flags |= 0x10;
            }
            h[5] = flags;
            n = 6;
            if let Some(base) = pcr {
                let base = base & TS_MASK;
                h[6..12].copy_from_slice(&[
                    (base >> 25) as u8,
                    (base >> 17) as u8,
                    (base >> 9) as u8,
                    (base >> 1) as u8,
                    (((base & 1) << 7) as u8) | 0x7e,
                    0,
                ]);
                n = 12;
                used += 6;
            }
            stuffing = af - used;
        }
        self.out.extend_from_slice(&h[..n]);
        self.out.put_bytes(0xff, stuffing);
    }

    /// Checks the PES was written to its announced length.
    fn finish(self) {
        debug_assert_eq!((self.left, self.room), (0, 0), "PES length as announced");
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
        let b = timestamp(2, (1 << 32) | 0x1234_5678);
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
