//! What publishers send: an FLV file or synthetic frames, as one loop of frames with
//! timestamps from 0, replayed forever with continuous timestamps at real-time pace.

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use rtmp_edge::media::flv::FlvReader;
use rtmp_edge::media::{inspect_audio, inspect_video, is_metadata};

use crate::sei;

/// FLV tag types, which are also the RTMP message type ids.
pub const AUDIO: u8 = 8;
/// Video message/tag type.
pub const VIDEO: u8 = 9;
/// AMF0 data message/tag type.
pub const DATA: u8 = 18;

/// One message to publish.
#[derive(Clone, Debug)]
pub struct Frame {
    /// RTMP message type (8, 9 or 18).
    pub type_id: u8,
    /// Milliseconds from the start of the loop.
    pub ts: u32,
    /// The FLV tag body, which is the RTMP message payload.
    pub data: Bytes,
}

/// A loop of media: headers sent once, then `frames` repeated every `loop_ms`.
#[derive(Debug)]
pub struct MediaSource {
    /// `@setDataFrame onMetaData`, AVC and AAC sequence headers, sent at timestamp 0.
    pub headers: Vec<Frame>,
    /// Frames in timestamp order, the first at 0.
    pub frames: Vec<Frame>,
    /// Length of one loop in milliseconds (last timestamp + one frame interval).
    pub loop_ms: u64,
    /// NAL length size of the AVC stream (for stamping).
    pub nal_length_size: usize,
    /// Human summary (file name or synthetic parameters).
    pub description: String,
}

/// Where a publisher is in the loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Index of the next frame.
    pub index: usize,
    /// Completed loops.
    pub loops: u64,
}

impl MediaSource {
    /// Milliseconds since publishing started at which `cursor`'s frame is due; also its
    /// (continuous) timestamp.
    pub fn due_ms(&self, cursor: Cursor) -> u64 {
        cursor.loops * self.loop_ms + u64::from(self.frames[cursor.index].ts)
    }

    /// The frame under `cursor`.
    pub fn frame(&self, cursor: Cursor) -> &Frame {
        &self.frames[cursor.index]
    }

    /// Moves `cursor` to the next frame, wrapping into the next loop.
    pub fn advance(&self, cursor: &mut Cursor) {
        cursor.index += 1;
        if cursor.index == self.frames.len() {
            cursor.index = 0;
            cursor.loops += 1;
        }
    }

    /// Average bits per second of one loop (headers excluded).
    pub fn bitrate_bps(&self) -> f64 {
        let bytes: usize = self.frames.iter().map(|f| f.data.len()).sum();
        bytes as f64 * 8.0 * 1000.0 / self.loop_ms.max(1) as f64
    }

    /// Reads an FLV file (whole, into memory) into a loop.
    pub fn from_flv_file(path: &std::path::Path) -> Result<Self> {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut src = Self::from_flv_bytes(&data)?;
        src.description = format!("{} ({:.0} kbit/s)", path.display(), src.bitrate_bps() / 1e3);
        Ok(src)
    }

    /// Parses FLV file bytes. Metadata becomes `@setDataFrame onMetaData`; sequence headers
    /// move to `headers`; timestamps are rebased to start at 0.
    pub fn from_flv_bytes(data: &[u8]) -> Result<Self> {
        let mut buf = BytesMut::from(data);
        let mut reader = FlvReader::new();
        let mut headers = Vec::new();
        let mut frames = Vec::new();
        let mut nal_length_size = 4;
        while let Some(tag) = reader.next_tag(&mut buf).context("reading FLV")? {
            let body = tag.data;
            if body.is_empty() {
                continue;
            }
            match tag.tag_type {
                VIDEO => {
                    let info = inspect_video(&body).unwrap_or_default();
                    if info.is_sequence_header {
                        if let Some(n) = sei::nal_length_size_of_avc_sequence_header(&body) {
                            nal_length_size = n;
                        }
                        headers.push(Frame {
                            type_id: VIDEO,
                            ts: 0,
                            data: body,
                        });
                    } else {
                        frames.push(Frame {
                            type_id: VIDEO,
                            ts: tag.timestamp,
                            data: body,
                        });
                    }
                }
                AUDIO => {
                    if inspect_audio(&body).unwrap_or_default().is_sequence_header {
                        headers.push(Frame {
                            type_id: AUDIO,
                            ts: 0,
                            data: body,
                        });
                    } else {
                        frames.push(Frame {
                            type_id: AUDIO,
                            ts: tag.timestamp,
                            data: body,
                        });
                    }
                }
                DATA if is_metadata(&body) => {
                    let mut v = SET_DATA_FRAME.to_vec();
                    v.extend_from_slice(&body);
                    headers.insert(
                        0,
                        Frame {
                            type_id: DATA,
                            ts: 0,
                            data: Bytes::from(v),
                        },
                    );
                }
                _ => {}
            }
        }
        if frames.is_empty() {
            bail!("FLV file holds no audio or video frames");
        }
        frames.sort_by_key(|f| f.ts); // stable: keeps file order on equal timestamps
        let base = frames[0].ts;
        for f in &mut frames {
            f.ts -= base;
        }
        let loop_ms = loop_length_ms(&frames);
        Ok(Self {
            headers,
            frames,
            loop_ms,
            nal_length_size,
            description: String::from("flv"),
        })
    }

    /// Synthetic H.264 + AAC: `video_bps` of video at `fps` with a keyframe every `gop`
    /// frames (keyframes 5× the size of other frames), plus 64 kbit/s of AAC frames. One loop
    /// is one GOP. The bytes are filler: servers forward them without decoding.
    pub fn synthetic(video_bps: u64, fps: u32, gop: u32) -> Result<Self> {
        if fps == 0 || gop == 0 || video_bps < 8_000 {
            bail!("synthetic media needs fps > 0, gop > 0 and at least 8 kbit/s");
        }
        const KEY_WEIGHT: u64 = 5;
        let gop_bytes = video_bps * u64::from(gop) / u64::from(fps) / 8;
        let inter = (gop_bytes / (KEY_WEIGHT + u64::from(gop) - 1)).max(16) as usize;
        let key = inter * KEY_WEIGHT as usize;
        let loop_ms = u64::from(gop) * 1000 / u64::from(fps);
        let mut frames = Vec::new();
        for i in 0..gop {
            let ts = (u64::from(i) * 1000 / u64::from(fps)) as u32;
            let data = if i == 0 {
                avc_frame(true, key)
            } else {
                avc_frame(false, inter)
            };
            frames.push(Frame {
                type_id: VIDEO,
                ts,
                data,
            });
        }
        // AAC-LC 44.1 kHz: 1024 samples a frame; 64 kbit/s ≈ 186 bytes a frame.
        let mut n = 0u64;
        loop {
            let ts = n * 1024 * 1000 / 44_100;
            if ts >= loop_ms {
                break;
            }
            let mut a = vec![0xaf, 1];
            a.resize(2 + 184, 0x21);
            frames.push(Frame {
                type_id: AUDIO,
                ts: ts as u32,
                data: Bytes::from(a),
            });
            n += 1;
        }
        frames.sort_by_key(|f| f.ts);
        Ok(Self {
            headers: vec![
                Frame {
                    type_id: VIDEO,
                    ts: 0,
                    data: Bytes::from_static(AVC_SEQUENCE_HEADER),
                },
                Frame {
                    type_id: AUDIO,
                    ts: 0,
                    data: Bytes::from_static(AAC_SEQUENCE_HEADER),
                },
            ],
            frames,
            loop_ms,
            nal_length_size: 4,
            description: format!(
                "synthetic {:.0} kbit/s video @ {fps} fps, GOP {gop} + 64 kbit/s AAC",
                video_bps as f64 / 1e3
            ),
        })
    }
}

/// AMF0 string "@setDataFrame", prefixed to metadata when publishing.
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

/// AVC sequence header (main profile 320x240, from x264) for synthetic streams.
pub(crate) const AVC_SEQUENCE_HEADER: &[u8] = &[
    0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x4d, 0x40, 0x0d, 0xff, 0xe1, 0x00, 0x16, 0x67, 0x4d, 0x40,
    0x0d, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0c, 0xa3,
    0xc5, 0x0a, 0xa8, 0x01, 0x00, 0x04, 0x68, 0xef, 0x3c, 0x80,
];

/// AAC sequence header: AudioSpecificConfig for AAC-LC, 44.1 kHz, stereo.
const AAC_SEQUENCE_HEADER: &[u8] = &[0xaf, 0x00, 0x12, 0x10];

/// An AVC NALU packet of `size` bytes total holding one IDR (type 5) or non-IDR (type 1) NAL.
fn avc_frame(key: bool, size: usize) -> Bytes {
    let nal_len = size.saturating_sub(9).max(2);
    let mut v = Vec::with_capacity(9 + nal_len);
    v.extend_from_slice(&[if key { 0x17 } else { 0x27 }, 1, 0, 0, 0]);
    v.extend_from_slice(&(nal_len as u32).to_be_bytes());
    v.push(if key { 0x65 } else { 0x41 });
    v.resize(9 + nal_len, 0xab);
    Bytes::from(v)
}

/// Last timestamp plus the typical video frame interval (median of video deltas; 40 ms if
/// there is no video).
fn loop_length_ms(frames: &[Frame]) -> u64 {
    let video: Vec<u32> = frames
        .iter()
        .filter(|f| f.type_id == VIDEO)
        .map(|f| f.ts)
        .collect();
    let mut deltas: Vec<u32> = video
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&d| d > 0)
        .collect();
    deltas.sort_unstable();
    let interval = deltas.get(deltas.len() / 2).copied().unwrap_or(40);
    let last = frames.iter().map(|f| f.ts).max().unwrap_or(0);
    u64::from(last) + u64::from(interval)
}

/// Parses a bitrate such as `600k`, `2.5M`, `2500000`, `600kbit` into bits per second.
pub fn parse_bitrate(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .trim_end_matches("bps")
        .trim_end_matches("bit/s")
        .trim_end_matches("bit");
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('g') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("bad bitrate {s:?}"))?;
    if v.is_nan() || v <= 0.0 {
        bail!("bitrate must be positive: {s:?}");
    }
    Ok((v * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: u8, ts: u32, body: &[u8]) -> Vec<u8> {
        let mut v = vec![kind];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(&ts.to_be_bytes()[1..]);
        v.push((ts >> 24) as u8);
        v.extend_from_slice(&[0, 0, 0]);
        v.extend_from_slice(body);
        v.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        v
    }

    fn flv(tags: &[Vec<u8>]) -> Vec<u8> {
        let mut v = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        for t in tags {
            v.extend_from_slice(t);
        }
        v
    }

    #[test]
    fn flv_headers_are_separated_and_timestamps_rebased() {
        let file = flv(&[
            tag(18, 0, b"\x02\x00\x0aonMetaData"),
            tag(9, 0, AVC_SEQUENCE_HEADER),
            tag(8, 0, AAC_SEQUENCE_HEADER),
            tag(9, 100, &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]),
            tag(8, 110, &[0xaf, 1, 9]),
            tag(9, 140, &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]),
        ]);
        let src = MediaSource::from_flv_bytes(&file).unwrap();
        assert_eq!(src.headers.len(), 3);
        assert!(src.headers[0].data.starts_with(SET_DATA_FRAME));
        let ts: Vec<u32> = src.frames.iter().map(|f| f.ts).collect();
        assert_eq!(ts, vec![0, 10, 40]);
        assert_eq!(src.loop_ms, 80);
        assert_eq!(src.nal_length_size, 4);
    }

    #[test]
    fn extended_timestamp_byte_is_the_high_byte() {
        let file = flv(&[
            tag(9, 0x0100_0000, &[0x17, 1, 0, 0, 0]),
            tag(9, 0x0100_0028, &[0x27, 1, 0, 0, 0]),
        ]);
        let src = MediaSource::from_flv_bytes(&file).unwrap();
        assert_eq!(src.frames[1].ts, 40);
    }

    #[test]
    fn cursor_loops_with_continuous_timestamps() {
        let src = MediaSource::synthetic(600_000, 25, 50).unwrap();
        assert_eq!(src.loop_ms, 2000);
        let mut c = Cursor::default();
        let mut last = 0;
        for _ in 0..src.frames.len() * 3 {
            let due = src.due_ms(c);
            assert!(due >= last, "timestamps never go back");
            last = due;
            src.advance(&mut c);
        }
        assert_eq!(c.loops, 3);
        assert!((5900..6000).contains(&last));
    }

    #[test]
    fn synthetic_bitrate_is_close_to_the_request() {
        for bps in [600_000u64, 2_500_000] {
            let src = MediaSource::synthetic(bps, 30, 60).unwrap();
            let video: usize = src
                .frames
                .iter()
                .filter(|f| f.type_id == VIDEO)
                .map(|f| f.data.len())
                .sum();
            let got = video as f64 * 8.0 * 1000.0 / src.loop_ms as f64;
            assert!((got / bps as f64 - 1.0).abs() < 0.02, "{got} vs {bps}");
            assert_eq!(src.frames.iter().filter(|f| f.data[0] == 0x17).count(), 1);
        }
    }

    #[test]
    fn rejects_files_without_signature_or_frames() {
        assert!(MediaSource::from_flv_bytes(b"GIF89a..............").is_err());
        assert!(MediaSource::from_flv_bytes(&flv(&[tag(18, 0, b"x")])).is_err());
    }

    #[test]
    fn bitrates_parse_with_suffixes() {
        assert_eq!(parse_bitrate("600k").unwrap(), 600_000);
        assert_eq!(parse_bitrate("2.5M").unwrap(), 2_500_000);
        assert_eq!(parse_bitrate("800000").unwrap(), 800_000);
        assert_eq!(parse_bitrate("600kbit").unwrap(), 600_000);
        assert!(parse_bitrate("fast").is_err());
        assert!(parse_bitrate("-1k").is_err());
    }
}
