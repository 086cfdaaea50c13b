//! Unit tests for tag header classification: every legacy and Enhanced RTMP packet type,
//! hand-built multitrack payloads, and truncation at every offset.

use super::*;

/// Enhanced video first byte: IsExHeader | frame type | packet type.
fn ex(frame_type: u8, packet_type: u8) -> u8 {
    0x80 | (frame_type << 4) | packet_type
}

fn vinfo(seq: bool, key: bool, eos: bool) -> VideoInfo {
    VideoInfo {
        is_sequence_header: seq,
        is_keyframe: key,
        is_end_of_sequence: eos,
    }
}

/// Every prefix of `payload` either errors or parses; none panics.
fn assert_prefixes_never_panic(payload: &[u8]) {
    for cut in 0..=payload.len() {
        let _ = parse_video_tag(&payload[..cut]).map(|t| t.tracks().count());
        let _ = parse_audio_tag(&payload[..cut]).map(|t| t.tracks().count());
        let _ = is_metadata(&payload[..cut]);
    }
}

#[test]
fn legacy_avc_sequence_header_is_a_sequence_header_not_a_keyframe() {
    let p = [0x17, 0x00, 0, 0, 0, 1, 0x64, 0x00, 0x1f];
    assert_eq!(inspect_video(&p), Ok(vinfo(true, false, false)));
    let t = parse_video_tag(&p).unwrap();
    let track = t.first_track().unwrap();
    assert_eq!(track.codec, VideoCodec::Avc);
    assert_eq!((track.data_offset, track.data), (5, &p[5..]));
}

#[test]
fn legacy_avc_key_and_inter_frames_carry_signed_composition_time() {
    let key = [0x17, 0x01, 0x00, 0x00, 0x50, 0, 0, 0, 1, 0x65];
    assert_eq!(inspect_video(&key), Ok(vinfo(false, true, false)));
    assert_eq!(
        parse_video_tag(&key)
            .unwrap()
            .first_track()
            .unwrap()
            .composition_time,
        80
    );
    let inter = [0x27, 0x01, 0xff, 0xff, 0xd8, 0, 0, 0, 1, 0x41];
    assert_eq!(inspect_video(&inter), Ok(vinfo(false, false, false)));
    let t = parse_video_tag(&inter).unwrap();
    assert_eq!(t.frame_type, VideoFrameType::Inter);
    assert_eq!(t.first_track().unwrap().composition_time, -40);
}

#[test]
fn legacy_avc_end_of_sequence_is_flagged() {
    assert_eq!(
        inspect_video(&[0x17, 0x02, 0, 0, 0]),
        Ok(vinfo(false, false, true))
    );
}

#[test]
fn legacy_avc_reserved_packet_type_is_an_error() {
    assert_eq!(
        inspect_video(&[0x17, 0x03, 0, 0, 0]),
        Err(MediaError::ReservedPacketType {
            what: "AVC video",
            value: 3
        })
    );
}

#[test]
fn legacy_hevc_codec_id_12_behaves_like_avc() {
    let seq = [0x1c, 0x00, 0, 0, 0, 1];
    assert_eq!(inspect_video(&seq), Ok(vinfo(true, false, false)));
    let key = [0x1c, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x26];
    assert_eq!(inspect_video(&key), Ok(vinfo(false, true, false)));
    let t = parse_video_tag(&key).unwrap();
    assert_eq!(t.first_track().unwrap().codec, VideoCodec::Hevc);
    let av1 = [0x1d, 0x01, 0, 0, 0, 0x12, 0];
    assert_eq!(
        parse_video_tag(&av1).unwrap().first_track().unwrap().codec,
        VideoCodec::Av1
    );
}

#[test]
fn legacy_codecs_without_packet_type_are_coded_frames() {
    // Sorenson H.263 keyframe, VP6 inter frame, disposable H.263, generated keyframe.
    assert_eq!(inspect_video(&[0x12, 0, 0]), Ok(vinfo(false, true, false)));
    assert_eq!(inspect_video(&[0x24, 0, 0]), Ok(vinfo(false, false, false)));
    let d = parse_video_tag(&[0x32, 0]).unwrap();
    assert_eq!(d.frame_type, VideoFrameType::Disposable);
    let g = parse_video_tag(&[0x47, 1, 0, 0, 0, 0]).unwrap();
    assert_eq!(g.frame_type, VideoFrameType::GeneratedKey);
    assert!(!g.info().is_keyframe);
    let t = parse_video_tag(&[0x16, 9, 9]).unwrap();
    assert_eq!(t.first_track().unwrap().codec, VideoCodec::ScreenVideoV2);
    assert_eq!(t.first_track().unwrap().data, &[9, 9]);
}

#[test]
fn legacy_command_frame_is_neither_keyframe_nor_sequence_header() {
    let t = parse_video_tag(&[0x57, 0x01]).unwrap();
    assert_eq!(t.frame_type, VideoFrameType::Command);
    assert_eq!(t.command, Some(1));
    assert_eq!(t.info(), VideoInfo::default());
    assert_eq!(t.track_count(), 0);
    assert!(inspect_video(&[0x57]).is_err());
}

#[test]
fn empty_video_payload_is_truncated() {
    assert_eq!(
        inspect_video(&[]),
        Err(MediaError::Truncated {
            what: "video tag header"
        })
    );
}

#[test]
fn enhanced_sequence_start_for_every_fourcc() {
    for fourcc in [b"avc1", b"hvc1", b"av01", b"vp09", b"vp08"] {
        let mut p = vec![ex(1, 0)];
        p.extend_from_slice(fourcc);
        p.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            inspect_video(&p),
            Ok(vinfo(true, false, false)),
            "{fourcc:?}"
        );
        let track = parse_video_tag(&p).unwrap().first_track().unwrap();
        assert_eq!(track.codec.fourcc(), Some(*fourcc));
        assert_eq!((track.data_offset, track.data), (5, &[1u8, 2, 3][..]));
    }
}

#[test]
fn enhanced_coded_frames_have_composition_time_only_for_avc_and_hevc() {
    let hevc = [ex(1, 1), b'h', b'v', b'c', b'1', 0xff, 0xff, 0xff, 0xaa];
    let t = parse_video_tag(&hevc).unwrap().first_track().unwrap();
    assert_eq!(
        (t.composition_time, t.data_offset, t.data),
        (-1, 8, &[0xaa][..])
    );
    let av1 = [ex(1, 1), b'a', b'v', b'0', b'1', 0x12, 0x00];
    let t = parse_video_tag(&av1).unwrap().first_track().unwrap();
    assert_eq!((t.composition_time, t.data_offset), (0, 5));
    assert_eq!(inspect_video(&av1), Ok(vinfo(false, true, false)));
    assert_eq!(
        inspect_video(&[ex(2, 1), b'v', b'p', b'0', b'9', 0]),
        Ok(vinfo(false, false, false))
    );
}

#[test]
fn enhanced_coded_frames_x_has_no_composition_time() {
    let p = [ex(1, 3), b'h', b'v', b'c', b'1', 0, 0, 0, 1, 0x26];
    assert_eq!(inspect_video(&p), Ok(vinfo(false, true, false)));
    let t = parse_video_tag(&p).unwrap();
    assert_eq!(t.packet_type, VideoPacketType::CodedFramesX);
    assert_eq!(t.first_track().unwrap().data_offset, 5);
}

#[test]
fn enhanced_sequence_end_metadata_and_mpeg2ts_start() {
    assert_eq!(
        inspect_video(&[ex(1, 2), b'a', b'v', b'0', b'1']),
        Ok(vinfo(false, false, true))
    );
    // Metadata ignores the frame type, even Command.
    let meta_bytes = [ex(5, 4), b'h', b'v', b'c', b'1', 0x02, 0, 0];
    let meta = parse_video_tag(&meta_bytes).unwrap();
    assert_eq!(meta.packet_type, VideoPacketType::Metadata);
    assert_eq!(meta.command, None);
    assert_eq!(meta.info(), VideoInfo::default());
    assert_eq!(
        inspect_video(&[ex(1, 5), b'a', b'v', b'0', b'1', 0x80]),
        Ok(vinfo(true, false, false))
    );
}

#[test]
fn enhanced_command_frame_is_neither_keyframe_nor_sequence_header() {
    let p = [ex(5, 1), 0x00];
    let t = parse_video_tag(&p).unwrap();
    assert_eq!(
        (t.frame_type, t.command),
        (VideoFrameType::Command, Some(0))
    );
    assert_eq!(t.info(), VideoInfo::default());
    assert_eq!(t.tracks().count(), 0);
}

#[test]
fn enhanced_reserved_packet_types_are_errors() {
    for pt in 8..=15u8 {
        assert_eq!(
            inspect_video(&[ex(1, pt), b'a', b'v', b'c', b'1']),
            Err(MediaError::ReservedPacketType {
                what: "video",
                value: pt
            })
        );
    }
}

#[test]
fn unknown_fourcc_is_classified_without_composition_time() {
    let p = [ex(1, 1), b'v', b'v', b'c', b'1', 9];
    assert_eq!(inspect_video(&p), Ok(vinfo(false, true, false)));
    let t = parse_video_tag(&p).unwrap().first_track().unwrap();
    assert_eq!(t.codec, VideoCodec::UnknownFourCc(*b"vvc1"));
    assert_eq!(t.data, &[9]);
}

#[test]
fn mod_ex_timestamp_offset_precedes_the_real_packet_type() {
    // ModEx: size-1 = 2 (3 bytes of nanos), then modExType 0 | packet type 1.
    let p = [
        ex(1, 7),
        2,
        0x01,
        0x00,
        0x00,
        0x01,
        b'a',
        b'v',
        b'c',
        b'1',
        0,
        0,
        0,
        0xab,
    ];
    let t = parse_video_tag(&p).unwrap();
    assert_eq!(t.timestamp_offset_nanos, Some(0x010000));
    assert_eq!(t.packet_type, VideoPacketType::CodedFrames);
    assert!(t.info().is_keyframe);
    assert_eq!(t.first_track().unwrap().data, &[0xab]);
    assert_prefixes_never_panic(&p);
}

#[test]
fn mod_ex_with_sixteen_bit_size_and_chains() {
    // First ModEx uses the 0xff escape: UI16 size-1 = 299 -> 300 bytes, unknown type 5.
    let mut p = vec![ex(1, 7), 0xff, 0x01, 0x2b];
    p.extend_from_slice(&[0u8; 300]);
    p.push((5 << 4) | 7); // another ModEx follows
    p.extend_from_slice(&[2, 0, 0, 9, 0x00]); // nanos 9, then SequenceStart
    p.extend_from_slice(b"hvc1");
    let t = parse_video_tag(&p).unwrap();
    assert_eq!(t.timestamp_offset_nanos, Some(9));
    assert!(t.info().is_sequence_header);
    for cut in 0..p.len() {
        assert!(parse_video_tag(&p[..cut]).is_err(), "cut {cut}");
    }
}

/// Builds a ManyTracks HEVC keyframe message with tracks 0 and 1.
fn many_tracks_hevc() -> Vec<u8> {
    let mut p = vec![ex(1, 6), (1 << 4) | 1];
    p.extend_from_slice(b"hvc1");
    for (id, body) in [(0u8, &[0, 0, 20, 0xa0][..]), (1, &[0, 0, 40, 0xb0, 0xb1])] {
        p.push(id);
        p.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        p.extend_from_slice(body);
    }
    p
}

#[test]
fn multitrack_many_tracks_share_codec_and_packet_type() {
    let p = many_tracks_hevc();
    let t = parse_video_tag(&p).unwrap();
    assert_eq!(t.multitrack, Some(AvMultitrackType::ManyTracks));
    assert_eq!(t.info(), vinfo(false, true, false));
    let tracks: Vec<_> = t.tracks().collect();
    assert_eq!(tracks.len(), 2);
    assert_eq!(
        (
            tracks[0].track_id,
            tracks[0].composition_time,
            tracks[0].data
        ),
        (0, 20, &[0xa0][..])
    );
    assert_eq!(
        (
            tracks[1].track_id,
            tracks[1].composition_time,
            tracks[1].data
        ),
        (1, 40, &[0xb0, 0xb1][..])
    );
    assert!(tracks.iter().all(|t| t.codec == VideoCodec::Hevc));
    assert_eq!(&p[tracks[1].data_offset..], tracks[1].data);
}

#[test]
fn multitrack_many_tracks_many_codecs_reads_a_fourcc_per_track() {
    let mut p = vec![ex(1, 6), (2 << 4)]; // ManyTracksManyCodecs, SequenceStart
    p.extend_from_slice(b"avc1");
    p.extend_from_slice(&[0, 0, 0, 2, 1, 0x64]);
    p.extend_from_slice(b"av01");
    p.extend_from_slice(&[3, 0, 0, 1, 0x81]);
    let t = parse_video_tag(&p).unwrap();
    assert!(t.info().is_sequence_header);
    let codecs: Vec<_> = t
        .tracks()
        .map(|t| (t.track_id, t.codec, t.data.len()))
        .collect();
    assert_eq!(
        codecs,
        vec![(0, VideoCodec::Avc, 2), (3, VideoCodec::Av1, 1)]
    );
    assert_prefixes_never_panic(&p);
}

#[test]
fn multitrack_one_track_body_runs_to_the_end() {
    let mut p = vec![ex(2, 6), 1]; // OneTrack, CodedFrames
    p.extend_from_slice(b"avc1");
    p.extend_from_slice(&[7, 0, 0, 0, 0xc0, 0xc1]);
    let t = parse_video_tag(&p).unwrap();
    assert_eq!(t.multitrack, Some(AvMultitrackType::OneTrack));
    let tr = t.first_track().unwrap();
    assert_eq!((tr.track_id, tr.data), (7, &[0xc0, 0xc1][..]));
    assert_eq!(t.info(), vinfo(false, false, false));
}

#[test]
fn multitrack_rejects_nesting_reserved_layouts_and_overruns() {
    let mut nested = vec![ex(1, 6), (1 << 4) | 6];
    nested.extend_from_slice(b"avc1");
    assert_eq!(inspect_video(&nested), Err(MediaError::NestedMultitrack));
    let mut reserved = vec![ex(1, 6), (3 << 4) | 1];
    reserved.extend_from_slice(b"avc1");
    assert_eq!(
        inspect_video(&reserved),
        Err(MediaError::ReservedMultitrackType { value: 3 })
    );
    let mut p = many_tracks_hevc();
    p.pop();
    assert_eq!(
        inspect_video(&p),
        Err(MediaError::TrackOverrunsPayload {
            track_id: 1,
            size: 5,
            remaining: 4
        })
    );
    // ManyTracks with no track at all.
    let mut empty = vec![ex(1, 6), (1 << 4) | 1];
    empty.extend_from_slice(b"avc1");
    assert!(inspect_video(&empty).is_err());
}

#[test]
fn video_truncated_at_every_offset_errors_or_parses_without_panicking() {
    let cases: Vec<Vec<u8>> = vec![
        vec![0x17, 0x01, 0, 0, 0x50, 0, 0, 0, 1, 0x65],
        vec![ex(1, 1), b'h', b'v', b'c', b'1', 0, 0, 1, 2],
        many_tracks_hevc(),
        vec![ex(5, 1), 0],
    ];
    for p in &cases {
        assert_prefixes_never_panic(p);
        // A cut many-tracks message errors, except exactly after the first track.
        if p == &many_tracks_hevc() {
            for cut in 0..p.len() {
                if let Ok(t) = parse_video_tag(&p[..cut]) {
                    assert_eq!((cut, t.track_count()), (14, 1));
                }
            }
        }
    }
}

#[test]
fn legacy_aac_sequence_header_and_raw_frames() {
    assert_eq!(
        inspect_audio(&[0xaf, 0x00, 0x12, 0x10]),
        Ok(AudioInfo {
            is_sequence_header: true
        })
    );
    let raw = parse_audio_tag(&[0xaf, 0x01, 0x21, 0x1b]).unwrap();
    assert_eq!(raw.packet_type, AudioPacketType::CodedFrames);
    assert!(!raw.info().is_sequence_header);
    let t = raw.first_track().unwrap();
    assert_eq!(
        (t.codec, t.data_offset, t.data),
        (AudioCodec::Aac, 2, &[0x21, 0x1b][..])
    );
    assert_eq!(raw.legacy_flags, Some(0x0f));
    assert_eq!(
        inspect_audio(&[0xaf, 0x02]),
        Err(MediaError::ReservedPacketType {
            what: "AAC audio",
            value: 2
        })
    );
    assert!(inspect_audio(&[0xaf]).is_err());
}

#[test]
fn legacy_audio_without_packet_type_never_has_a_sequence_header() {
    for (b0, codec) in [
        (0x2f, AudioCodec::Mp3),
        (0xb6, AudioCodec::Speex),
        (0x72, AudioCodec::G711ALaw),
        (0x3e, AudioCodec::PcmLittleEndian),
        (0x6e, AudioCodec::Nellymoser),
        (0xe2, AudioCodec::Mp3),
    ] {
        let p = [b0, 0x00, 0x00];
        let t = parse_audio_tag(&p).unwrap();
        assert!(!t.info().is_sequence_header);
        assert_eq!(t.first_track().unwrap().codec, codec);
    }
    assert!(inspect_audio(&[]).is_err());
}

#[test]
fn enhanced_audio_packet_types_for_every_fourcc() {
    for (fourcc, codec) in [
        (b"Opus", AudioCodec::Opus),
        (b"fLaC", AudioCodec::Flac),
        (b"ac-3", AudioCodec::Ac3),
        (b"ec-3", AudioCodec::Eac3),
        (b".mp3", AudioCodec::Mp3),
        (b"mp4a", AudioCodec::Aac),
    ] {
        for (pt, expected) in [
            (0u8, AudioPacketType::SequenceStart),
            (1, AudioPacketType::CodedFrames),
            (2, AudioPacketType::SequenceEnd),
            (4, AudioPacketType::MultichannelConfig),
        ] {
            let mut p = vec![0x90 | pt];
            p.extend_from_slice(fourcc);
            p.push(0x55);
            let t = parse_audio_tag(&p).unwrap();
            assert_eq!(t.packet_type, expected);
            assert_eq!(t.info().is_sequence_header, pt == 0);
            let tr = t.first_track().unwrap();
            assert_eq!((tr.codec, tr.data_offset, tr.data), (codec, 5, &[0x55][..]));
        }
    }
    assert!(inspect_audio(&[0x93, b'O', b'p', b'u', b's']).is_err());
}

#[test]
fn enhanced_audio_mod_ex_and_multitrack() {
    // ModEx (nanos 1) -> Multitrack ManyTracksManyCodecs, SequenceStart; Opus track 0, AAC track 1.
    let mut p = vec![0x97, 2, 0, 0, 1, 0x05, (2 << 4)];
    p.extend_from_slice(b"Opus");
    p.extend_from_slice(&[0, 0, 0, 2, 0x4f, 0x70]);
    p.extend_from_slice(b"mp4a");
    p.extend_from_slice(&[1, 0, 0, 2, 0x12, 0x10]);
    let t = parse_audio_tag(&p).unwrap();
    assert_eq!(t.timestamp_offset_nanos, Some(1));
    assert!(t.info().is_sequence_header);
    let tracks: Vec<_> = t.tracks().map(|t| (t.track_id, t.codec, t.data)).collect();
    assert_eq!(
        tracks,
        vec![
            (0, AudioCodec::Opus, &[0x4f, 0x70][..]),
            (1, AudioCodec::Aac, &[0x12, 0x10][..])
        ]
    );
    assert_prefixes_never_panic(&p);
    for cut in 0..p.len() {
        // Only a cut exactly after the first track is a valid (one-track) message.
        if let Ok(t) = parse_audio_tag(&p[..cut]) {
            assert_eq!((cut, t.track_count()), (17, 1));
        }
    }
    let mut nested = vec![0x95, (1 << 4) | 5];
    nested.extend_from_slice(b"Opus");
    assert_eq!(inspect_audio(&nested), Err(MediaError::NestedMultitrack));
}

#[test]
fn metadata_is_recognised_directly_and_behind_set_data_frame() {
    let direct = b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00";
    assert!(is_metadata(direct));
    let wrapped = b"\x02\x00\x0d@setDataFrame\x02\x00\x0aonMetaData\x03";
    assert!(is_metadata(wrapped));
    assert!(!is_metadata(
        b"\x02\x00\x0d@setDataFrame\x02\x00\x08onCuePt"
    ));
    assert!(!is_metadata(b"\x02\x00\x0aonTextData"));
    assert!(!is_metadata(b"\x00\x00\x0aonMetaData"));
    for cut in 0..29 {
        // The second string is needed in full.
        assert!(!is_metadata(&wrapped[..cut]), "cut {cut}");
    }
    for cut in 0..13 {
        assert!(!is_metadata(&direct[..cut]));
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Payloads biased towards valid headers: a random first byte from the interesting set,
    /// then arbitrary bytes, sometimes starting with a known FourCC.
    fn payload() -> impl Strategy<Value = Vec<u8>> {
        let first = prop_oneof![
            Just(0x17u8),
            Just(0x27),
            Just(0x1c),
            Just(0x57),
            (0x80u8..=0xff),
            Just(0xaf),
            (0x90u8..=0x9f),
            any::<u8>()
        ];
        let fourcc = prop_oneof![
            Just(b"avc1".to_vec()),
            Just(b"hvc1".to_vec()),
            Just(b"Opus".to_vec()),
            Just(Vec::new())
        ];
        (first, fourcc, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(b, f, rest)| {
            let mut p = vec![b];
            p.extend(f);
            p.extend(rest);
            p
        })
    }

    proptest! {
        #[test]
        fn video_tracks_always_point_inside_the_payload(p in payload()) {
            if let Ok(tag) = parse_video_tag(&p) {
                prop_assert_eq!(tag.tracks().count(), tag.track_count());
                for t in tag.tracks() {
                    prop_assert!(t.data_offset + t.data.len() <= p.len());
                    prop_assert_eq!(&p[t.data_offset..t.data_offset + t.data.len()], t.data);
                }
                let info = tag.info();
                prop_assert!(!(info.is_keyframe && info.is_sequence_header));
            }
        }

        #[test]
        fn audio_tracks_always_point_inside_the_payload(p in payload()) {
            if let Ok(tag) = parse_audio_tag(&p) {
                prop_assert_eq!(tag.tracks().count(), tag.track_count());
                for t in tag.tracks() {
                    prop_assert_eq!(&p[t.data_offset..t.data_offset + t.data.len()], t.data);
                }
            }
        }

        #[test]
        fn inspect_agrees_with_the_full_parse(p in payload()) {
            prop_assert_eq!(inspect_video(&p), parse_video_tag(&p).map(|t| t.info()));
            prop_assert_eq!(inspect_audio(&p), parse_audio_tag(&p).map(|t| t.info()));
        }
    }
}
