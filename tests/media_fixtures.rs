//! Real captures made by tools/fixtures/make_media_fixtures.sh (ffmpeg), read with
//! `FlvReader` and classified with the media parsers.
//!
//! Recorded facts come from the static ffmpeg that script installs (Debian's ffprobe 5.1
//! cannot read Enhanced FLV), per fixture:
//! `ffmpeg -i FILE -map 0 -c copy -f framecrc -` (one line per packet; no `F=0x0` = keyframe):
//! - h264_aac.flv: video 2 key + 48 non-key, audio 88 packets (h264 High, aac LC 44100 mono)
//! - hevc_aac.flv: video 3 key + 22 non-key, audio 45 packets (hevc Main, aac LC 44100 mono)
//! - av1_opus.flv: video 3 key + 22 non-key, audio 52 packets (av1 Main, opus 48000 mono)
//!
//! Keyframe packet indices in decode order (`-map 0:v`, lines without `F=0x0`):
//! h264 0, 25; hevc 0, 9, 19 (pts 23, 423, 823 ms: B-frames reorder); av1 0, 10, 20.
//!
//! Packets exclude the FLV tags that become extradata (sequence headers), the onMetaData
//! script tag and end-of-sequence tags, which is what the counts below check.

use bytes::BytesMut;
use rtmp_edge::media::aac::AacConfig;
use rtmp_edge::media::avc::{self, AvcConfig};
use rtmp_edge::media::flv::{self, FlvReader, FlvTag, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use rtmp_edge::media::hevc::{self, HevcConfig};
use rtmp_edge::media::{
    inspect_audio, inspect_video, is_metadata, parse_audio_tag, parse_video_tag, AudioCodec,
    AudioPacketType, VideoCodec, VideoPacketType,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/media/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn read_tags(bytes: &[u8], chunk: usize) -> (FlvReader, Vec<FlvTag>, usize) {
    let mut reader = FlvReader::new();
    let mut buf = BytesMut::new();
    let mut tags = Vec::new();
    for piece in bytes.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(tag) = reader.next_tag(&mut buf).expect("fixture parses") {
            tags.push(tag);
        }
    }
    (reader, tags, buf.len())
}

/// Per-fixture summary of what the parsers saw.
#[derive(Debug, Default)]
struct Summary {
    video_sequence_headers: usize,
    video_coded: usize,
    video_end_of_sequence: usize,
    /// E-RTMP VideoPacketType.Metadata (ffmpeg sends HDR colorInfo with frame type Command).
    video_metadata: usize,
    /// Indices (among coded video frames) of keyframes.
    keyframe_indices: Vec<usize>,
    audio_sequence_headers: usize,
    audio_coded: usize,
    metadata: usize,
    first_video_is_sequence_header: bool,
    first_audio_is_sequence_header: bool,
}

fn summarise(tags: &[FlvTag]) -> Summary {
    let mut s = Summary::default();
    let (mut seen_video, mut seen_audio) = (false, false);
    for tag in tags {
        match tag.tag_type {
            TAG_VIDEO => {
                let info = inspect_video(&tag.data).expect("video tag classifies");
                let parsed = parse_video_tag(&tag.data).unwrap();
                if !seen_video {
                    s.first_video_is_sequence_header = info.is_sequence_header;
                    seen_video = true;
                }
                if info.is_sequence_header {
                    s.video_sequence_headers += 1;
                } else if info.is_end_of_sequence {
                    s.video_end_of_sequence += 1;
                } else if parsed.packet_type == VideoPacketType::Metadata {
                    assert!(!info.is_keyframe);
                    s.video_metadata += 1;
                } else {
                    assert!(parsed.packet_type.is_coded_frames());
                    if info.is_keyframe {
                        s.keyframe_indices.push(s.video_coded);
                    }
                    s.video_coded += 1;
                }
            }
            TAG_AUDIO => {
                let info = inspect_audio(&tag.data).expect("audio tag classifies");
                if !seen_audio {
                    s.first_audio_is_sequence_header = info.is_sequence_header;
                    seen_audio = true;
                }
                if info.is_sequence_header {
                    s.audio_sequence_headers += 1;
                } else {
                    s.audio_coded += 1;
                }
            }
            TAG_SCRIPT => s.metadata += usize::from(is_metadata(&tag.data)),
            other => panic!("unexpected tag type {other}"),
        }
    }
    s
}

fn first_payload(tags: &[FlvTag], tag_type: u8) -> &[u8] {
    &tags
        .iter()
        .find(|t| t.tag_type == tag_type)
        .expect("tag present")
        .data
}

#[test]
fn h264_aac_capture_matches_ffmpeg_packet_counts_and_gop() {
    let bytes = fixture("h264_aac.flv");
    let (reader, tags, left) = read_tags(&bytes, bytes.len());
    let header = reader.header().unwrap();
    assert!(header.has_audio && header.has_video);
    assert_eq!(left, flv::PREVIOUS_TAG_SIZE_LEN);
    assert_eq!(reader.previous_size_mismatches(), 0);

    let s = summarise(&tags);
    assert_eq!(s.metadata, 1);
    assert!(s.first_video_is_sequence_header && s.first_audio_is_sequence_header);
    assert_eq!((s.video_sequence_headers, s.audio_sequence_headers), (1, 1));
    assert_eq!((s.video_end_of_sequence, s.video_metadata), (1, 0));
    assert_eq!(s.video_coded, 50);
    assert_eq!(s.keyframe_indices, vec![0, 25], "-g 25 at 25 fps");
    assert_eq!(s.audio_coded, 88);

    let seq = parse_video_tag(first_payload(&tags, TAG_VIDEO)).unwrap();
    let cfg = AvcConfig::parse(seq.first_track().unwrap().data).unwrap();
    assert_eq!((cfg.profile, cfg.level, cfg.nal_length_size), (100, 13, 4));
    assert_eq!(cfg.codec_string(), "avc1.64000d");
    let sps = avc::parse_sps(cfg.sps[0]).unwrap();
    assert_eq!((sps.profile_idc, sps.width, sps.height), (100, 320, 240));

    let aac = parse_audio_tag(first_payload(&tags, TAG_AUDIO)).unwrap();
    assert_eq!(aac.first_track().unwrap().codec, AudioCodec::Aac);
    let asc = AacConfig::parse(aac.first_track().unwrap().data).unwrap();
    assert_eq!(
        (asc.object_type, asc.sample_rate, asc.channel_config),
        (2, 44100, 1)
    );
}

#[test]
fn h264_keyframes_are_exactly_the_frames_with_idr_slices() {
    let bytes = fixture("h264_aac.flv");
    let (_, tags, _) = read_tags(&bytes, bytes.len());
    let mut checked = 0;
    for tag in tags.iter().filter(|t| t.tag_type == TAG_VIDEO) {
        let v = parse_video_tag(&tag.data).unwrap();
        if !v.packet_type.is_coded_frames() {
            continue;
        }
        let track = v.first_track().unwrap();
        assert!(track.composition_time >= 0);
        let units: Vec<&[u8]> = avc::nal_units(track.data, 4)
            .collect::<Result<_, _>>()
            .expect("frame NAL units are well formed");
        let has_idr = units.iter().any(|u| u[0] & 0x1f == avc::nal_type::IDR);
        assert_eq!(v.info().is_keyframe, has_idr);
        checked += 1;
    }
    assert_eq!(checked, 50);
}

#[test]
fn rewriting_every_tag_reproduces_the_capture_byte_for_byte() {
    for name in ["h264_aac.flv", "hevc_aac.flv", "av1_opus.flv"] {
        let bytes = fixture(name);
        let (reader, tags, _) = read_tags(&bytes, bytes.len());
        let h = reader.header().unwrap();
        let mut out = BytesMut::new();
        flv::write_header(h.has_audio, h.has_video, &mut out);
        for t in &tags {
            flv::write_tag(t.tag_type, t.timestamp, &t.data, &mut out).unwrap();
        }
        assert_eq!(&out[..], &bytes[..], "{name}");
    }
}

#[test]
fn split_reads_yield_the_same_tags_as_one_read() {
    let bytes = fixture("hevc_aac.flv");
    let (_, whole, _) = read_tags(&bytes, bytes.len());
    for chunk in [1, 7, 11, 15, 4096] {
        let (_, split, left) = read_tags(&bytes, chunk);
        assert_eq!(split, whole, "chunk {chunk}");
        assert_eq!(left, flv::PREVIOUS_TAG_SIZE_LEN);
    }
}

#[test]
fn enhanced_hevc_capture_recognises_sequence_start_and_keyframes() {
    let bytes = fixture("hevc_aac.flv");
    let (_, tags, _) = read_tags(&bytes, bytes.len());
    let s = summarise(&tags);
    assert!(s.first_video_is_sequence_header && s.first_audio_is_sequence_header);
    assert_eq!(s.video_sequence_headers, 1);
    assert_eq!(s.video_metadata, 1, "colorInfo");
    assert_eq!(s.video_coded, 25);
    // Decode order: with B-frames the keyframe shown at frame 10 is the 10th packet (index 9).
    assert_eq!(s.keyframe_indices, vec![0, 9, 19], "keyint=10");
    assert_eq!(s.audio_coded, 45);

    let seq = parse_video_tag(first_payload(&tags, TAG_VIDEO)).unwrap();
    assert!(seq.enhanced);
    let track = seq.first_track().unwrap();
    assert_eq!(track.codec, VideoCodec::Hevc);
    let cfg = HevcConfig::parse(track.data).unwrap();
    assert_eq!(
        (cfg.profile_idc, cfg.nal_length_size),
        (1, 4),
        "Main profile"
    );
    assert_eq!(
        (cfg.vps().count(), cfg.sps().count(), cfg.pps().count()),
        (1, 1, 1)
    );
    assert!(cfg.codec_string().starts_with("hvc1.1.6.L"));

    // Keyframes are exactly the frames holding IRAP pictures.
    for tag in tags.iter().filter(|t| t.tag_type == TAG_VIDEO) {
        let v = parse_video_tag(&tag.data).unwrap();
        if !v.packet_type.is_coded_frames() {
            continue;
        }
        let data = v.first_track().unwrap().data;
        let irap = avc::nal_units(data, cfg.nal_length_size)
            .map(|u| u.unwrap())
            .any(|u| hevc::nal_type::of(u).is_some_and(hevc::nal_type::is_irap));
        assert_eq!(v.info().is_keyframe, irap);
    }
}

#[test]
fn enhanced_av1_and_opus_capture_recognises_sequence_starts_and_keyframes() {
    let bytes = fixture("av1_opus.flv");
    let (_, tags, _) = read_tags(&bytes, bytes.len());
    let s = summarise(&tags);
    assert!(s.first_video_is_sequence_header && s.first_audio_is_sequence_header);
    // ffmpeg writes an empty SequenceStart before libaom hands out its extradata, then the
    // real AV1CodecConfigurationRecord.
    assert_eq!((s.video_sequence_headers, s.audio_sequence_headers), (2, 1));
    assert_eq!(s.video_metadata, 1, "colorInfo");
    assert_eq!(s.video_coded, 25);
    assert_eq!(s.keyframe_indices, vec![0, 10, 20], "-g 10");
    assert_eq!(s.audio_coded, 52);

    let starts: Vec<_> = tags
        .iter()
        .filter(|t| t.tag_type == TAG_VIDEO)
        .map(|t| parse_video_tag(&t.data).unwrap())
        .filter(|v| v.info().is_sequence_header)
        .map(|v| v.first_track().unwrap())
        .collect();
    assert!(starts.iter().all(|t| t.codec == VideoCodec::Av1));
    assert!(starts[0].data.is_empty());
    // AV1CodecConfigurationRecord: marker 1, version 1.
    assert_eq!(starts[1].data[0], 0x81);
    let a = parse_audio_tag(first_payload(&tags, TAG_AUDIO)).unwrap();
    assert!(a.enhanced);
    assert_eq!(a.packet_type, AudioPacketType::SequenceStart);
    let opus_head = a.first_track().unwrap();
    assert_eq!(opus_head.codec, AudioCodec::Opus);
    assert!(opus_head.data.starts_with(b"OpusHead"));
}
