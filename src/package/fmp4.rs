//! Fragmented MP4 / CMAF (ISO/IEC 14496-12, 23000-19): the init segment (`ftyp` + `moov`
//! with `avc1`/`hvc1` + `avcC`/`hvcC` and `mp4a` + `esds`, `mvex`/`trex`) and media fragments
//! (`moof` with one `traf` per track: `tfhd`, `tfdt`, `trun` with sizes, durations, sync flags
//! and signed composition offsets; then `mdat`).
//!
//! Track 1 is video (timescale 90 kHz), track 2 audio (timescale = sample rate). Sample data
//! is copied once into the fragment; AVCC length-prefixed NAL units are stored as they came.

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{AudioConfig, Sample, VideoConfig, VideoFormat};

/// Track id of the video track.
pub const VIDEO_TRACK_ID: u32 = 1;
/// Track id of the audio track.
pub const AUDIO_TRACK_ID: u32 = 2;
/// Timescale of the video track.
pub const VIDEO_TIMESCALE: u32 = 90_000;

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];
const SYNC_SAMPLE: u32 = 0x0200_0000;
const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

/// One track's run in a fragment: track id, timescale, samples, is video.
type TrackRun<'a> = (u32, u32, &'a [Sample], bool);

/// fMP4 fragment writer for one stream (keeps the `mfhd` sequence number).
#[derive(Debug, Default)]
pub struct Fmp4Muxer {
    sequence: u32,
}

fn bx(out: &mut BytesMut, ty: &[u8; 4], f: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_u32(0);
    out.put_slice(ty);
    f(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

fn full(out: &mut BytesMut, ty: &[u8; 4], version: u8, flags: u32, f: impl FnOnce(&mut BytesMut)) {
    bx(out, ty, |o| {
        o.put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        f(o);
    });
}

/// Converts milliseconds to a track timescale.
pub fn ms_to_timescale(ms: u64, timescale: u32) -> u64 {
    (ms * u64::from(timescale) + 500) / 1000
}

impl Fmp4Muxer {
    /// A muxer whose first fragment has sequence number 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// The init segment for the tracks present (either may be absent).
    pub fn init_segment(video: Option<&VideoConfig>, audio: Option<&AudioConfig>) -> Bytes {
        let mut out = BytesMut::with_capacity(1024);
        bx(&mut out, b"ftyp", |o| {
            o.put_slice(b"iso6");
            o.put_u32(0);
            for brand in [b"iso6", b"cmfc", b"isom", b"mp41", b"dash"] {
                o.put_slice(brand);
            }
        });
        bx(&mut out, b"moov", |o| {
            full(o, b"mvhd", 0, 0, |o| {
                o.put_u32(0);
                o.put_u32(0);
                o.put_u32(1000);
                o.put_u32(0);
                o.put_u32(0x0001_0000);
                o.put_u16(0x0100);
                o.put_bytes(0, 10);
                MATRIX.iter().for_each(|&m| o.put_u32(m));
                o.put_bytes(0, 24);
                o.put_u32(AUDIO_TRACK_ID + 1);
            });
            if let Some(v) = video {
                video_trak(o, v);
            }
            if let Some(a) = audio {
                audio_trak(o, a);
            }
            bx(o, b"mvex", |o| {
                let ids = [video.map(|_| VIDEO_TRACK_ID), audio.map(|_| AUDIO_TRACK_ID)];
                for id in ids.into_iter().flatten() {
                    full(o, b"trex", 0, 0, |o| {
                        o.put_u32(id);
                        o.put_u32(1);
                        o.put_u32(0);
                        o.put_u32(0);
                        o.put_u32(0);
                    });
                }
            });
        });
        out.freeze()
    }

    /// Appends one `moof` + `mdat` fragment holding the given samples (either list may be
    /// empty). Call once per part.
    pub fn write_fragment(
        &mut self,
        video: Option<&VideoConfig>,
        audio: Option<&AudioConfig>,
        video_samples: &[Sample],
        audio_samples: &[Sample],
        out: &mut BytesMut,
    ) {
        self.sequence = self.sequence.wrapping_add(1);
        let mut tracks: [Option<TrackRun<'_>>; 2] = [None, None];
        if video.is_some() && !video_samples.is_empty() {
            tracks[0] = Some((VIDEO_TRACK_ID, VIDEO_TIMESCALE, video_samples, true));
        }
        if let Some(a) = audio.filter(|_| !audio_samples.is_empty()) {
            tracks[1] = Some((AUDIO_TRACK_ID, a.sample_rate, audio_samples, false));
        }
        let moof_start = out.len();
        let mut offset_fields = [0usize; 2];
        bx(out, b"moof", |o| {
            full(o, b"mfhd", 0, 0, |o| o.put_u32(self.sequence));
            for (slot, track) in tracks.iter().enumerate() {
                let Some((id, timescale, samples, is_video)) = *track else {
                    continue;
                };
                bx(o, b"traf", |o| {
                    full(o, b"tfhd", 0, 0x02_0000, |o| o.put_u32(id));
                    full(o, b"tfdt", 1, 0, |o| {
                        o.put_u64(ms_to_timescale(samples[0].dts, timescale));
                    });
                    full(o, b"trun", 1, 0x000f01, |o| {
                        o.put_u32(samples.len() as u32);
                        offset_fields[slot] = o.len();
                        o.put_i32(0);
                        for s in samples {
                            let start = ms_to_timescale(s.dts, timescale);
                            let end = ms_to_timescale(s.dts + u64::from(s.duration), timescale);
                            let mut duration = (end - start) as u32;
                            if duration == 0 && !is_video {
                                duration = 1024;
                            }
                            o.put_u32(duration);
                            o.put_u32(s.data.len() as u32);
                            o.put_u32(if s.keyframe {
                                SYNC_SAMPLE
                            } else {
                                NON_SYNC_SAMPLE
                            });
                            let cto = i64::from(s.cts) * i64::from(timescale) / 1000;
                            o.put_i32(cto as i32);
                        }
                    });
                });
            }
        });
        let moof_len = out.len() - moof_start;
        let mut data_offset = moof_len + 8;
        for (slot, track) in tracks.iter().enumerate() {
            if let Some((_, _, samples, _)) = track {
                let at = offset_fields[slot];
                out[at..at + 4].copy_from_slice(&(data_offset as u32).to_be_bytes());
                data_offset += samples.iter().map(|s| s.data.len()).sum::<usize>();
            }
        }
        let mdat_len = data_offset - moof_len;
        out.reserve(mdat_len);
        out.put_u32(mdat_len as u32);
        out.put_slice(b"mdat");
        for (_, _, samples, _) in tracks.iter().flatten() {
            for s in samples.iter() {
                out.put_slice(&s.data);
            }
        }
    }
}

fn trak_common(
    o: &mut BytesMut,
    id: u32,
    timescale: u32,
    (width, height): (u32, u32),
    handler: &[u8; 4],
    media_header: impl FnOnce(&mut BytesMut),
    sample_entry: impl FnOnce(&mut BytesMut),
) {
    bx(o, b"trak", |o| {
        full(o, b"tkhd", 0, 3, |o| {
            o.put_u32(0);
            o.put_u32(0);
            o.put_u32(id);
            o.put_u32(0);
            o.put_u32(0);
            o.put_bytes(0, 8);
            o.put_u16(0);
            o.put_u16(0);
            o.put_u16(if handler == b"soun" { 0x0100 } else { 0 });
            o.put_u16(0);
            MATRIX.iter().for_each(|&m| o.put_u32(m));
            o.put_u32(width << 16);
            o.put_u32(height << 16);
        });
        bx(o, b"mdia", |o| {
            full(o, b"mdhd", 0, 0, |o| {
                o.put_u32(0);
                o.put_u32(0);
                o.put_u32(timescale);
                o.put_u32(0);
                o.put_u16(0x55c4); // "und"
                o.put_u16(0);
            });
            full(o, b"hdlr", 0, 0, |o| {
                o.put_u32(0);
                o.put_slice(handler);
                o.put_bytes(0, 12);
                o.put_slice(if handler == b"vide" {
                    b"Video\0"
                } else {
                    b"Audio\0"
                });
            });
            bx(o, b"minf", |o| {
                media_header(o);
                bx(o, b"dinf", |o| {
                    full(o, b"dref", 0, 0, |o| {
                        o.put_u32(1);
                        full(o, b"url ", 0, 1, |_| {});
                    });
                });
                bx(o, b"stbl", |o| {
                    full(o, b"stsd", 0, 0, |o| {
                        o.put_u32(1);
                        sample_entry(o);
                    });
                    full(o, b"stts", 0, 0, |o| o.put_u32(0));
                    full(o, b"stsc", 0, 0, |o| o.put_u32(0));
                    full(o, b"stsz", 0, 0, |o| {
                        o.put_u32(0);
                        o.put_u32(0);
                    });
                    full(o, b"stco", 0, 0, |o| o.put_u32(0));
                });
            });
        });
    });
}

fn video_trak(o: &mut BytesMut, v: &VideoConfig) {
    let (entry, config) = match v.format {
        VideoFormat::H264 => (b"avc1", b"avcC"),
        VideoFormat::H265 => (b"hvc1", b"hvcC"),
    };
    trak_common(
        o,
        VIDEO_TRACK_ID,
        VIDEO_TIMESCALE,
        (v.width, v.height),
        b"vide",
        |o| {
            full(o, b"vmhd", 0, 1, |o| o.put_bytes(0, 8));
        },
        |o| {
            bx(o, entry, |o| {
                o.put_bytes(0, 6);
                o.put_u16(1);
                o.put_bytes(0, 16);
                o.put_u16(v.width.min(0xffff) as u16);
                o.put_u16(v.height.min(0xffff) as u16);
                o.put_u32(0x0048_0000);
                o.put_u32(0x0048_0000);
                o.put_u32(0);
                o.put_u16(1);
                o.put_bytes(0, 32);
                o.put_u16(0x0018);
                o.put_i16(-1);
                bx(o, config, |o| o.put_slice(&v.record));
            });
        },
    );
}

fn audio_trak(o: &mut BytesMut, a: &AudioConfig) {
    trak_common(
        o,
        AUDIO_TRACK_ID,
        a.sample_rate,
        (0, 0),
        b"soun",
        |o| full(o, b"smhd", 0, 0, |o| o.put_u32(0)),
        |o| {
            bx(o, b"mp4a", |o| {
                o.put_bytes(0, 6);
                o.put_u16(1);
                o.put_bytes(0, 8);
                o.put_u16(u16::from(a.channels.max(1)));
                o.put_u16(16);
                o.put_u32(0);
                o.put_u32(a.sample_rate.min(0xffff) << 16);
                full(o, b"esds", 0, 0, |o| esds(o, &a.specific_config));
            });
        },
    );
}

/// ES_Descriptor with DecoderConfigDescriptor (AAC, audio stream) and the AudioSpecificConfig.
fn esds(o: &mut BytesMut, asc: &[u8]) {
    let dsi_len = asc.len();
    let dcd_len = 13 + 5 + dsi_len;
    let es_len = 3 + 5 + dcd_len + 5 + 1;
    descriptor_header(o, 0x03, es_len);
    o.put_u16(0);
    o.put_u8(0);
    descriptor_header(o, 0x04, dcd_len);
    o.put_u8(0x40); // Audio ISO/IEC 14496-3
    o.put_u8(0x15); // AudioStream, upstream 0, reserved 1
    o.put_slice(&[0, 0, 0]);
    o.put_u32(0);
    o.put_u32(0);
    descriptor_header(o, 0x05, dsi_len);
    o.put_slice(asc);
    descriptor_header(o, 0x06, 1);
    o.put_u8(0x02);
}

/// Descriptor tag and a 4-byte expandable length (always 4 bytes, which every parser accepts).
fn descriptor_header(o: &mut BytesMut, tag: u8, len: usize) {
    o.put_u8(tag);
    o.put_slice(&[
        0x80 | ((len >> 21) & 0x7f) as u8,
        0x80 | ((len >> 14) & 0x7f) as u8,
        0x80 | ((len >> 7) & 0x7f) as u8,
        (len & 0x7f) as u8,
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::codec::audio_config;

    fn boxes(mut data: &[u8]) -> Vec<([u8; 4], usize)> {
        let mut out = Vec::new();
        while data.len() >= 8 {
            let size = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
            out.push(([data[4], data[5], data[6], data[7]], size));
            data = &data[size..];
        }
        out
    }

    #[test]
    fn init_segment_is_ftyp_then_moov_with_box_sizes_that_add_up() {
        let a = audio_config(Bytes::from_static(&[0x12, 0x08])).unwrap();
        let init = Fmp4Muxer::init_segment(None, Some(&a));
        let top = boxes(&init);
        assert_eq!(
            top.iter().map(|b| &b.0).collect::<Vec<_>>(),
            [b"ftyp", b"moov"]
        );
        assert_eq!(top.iter().map(|b| b.1).sum::<usize>(), init.len());
        assert!(init.windows(4).any(|w| w == b"esds"));
    }

    #[test]
    fn fragment_data_offset_points_at_the_first_sample_in_mdat() {
        let a = audio_config(Bytes::from_static(&[0x12, 0x08])).unwrap();
        let samples = [Sample {
            dts: 1000,
            cts: 0,
            duration: 23,
            keyframe: true,
            data: Bytes::from_static(b"AAAA"),
        }];
        let mut out = BytesMut::new();
        Fmp4Muxer::new().write_fragment(None, Some(&a), &[], &samples, &mut out);
        let top = boxes(&out);
        assert_eq!(top[0].0, *b"moof");
        assert_eq!(top[1].0, *b"mdat");
        let trun = out.windows(4).position(|w| w == b"trun").unwrap();
        let off = u32::from_be_bytes(out[trun + 12..trun + 16].try_into().unwrap()) as usize;
        assert_eq!(&out[off..off + 4], b"AAAA");
    }
}
