//! The recorder's bytes (FLV and fMP4) and the writer's files, without threads.

use bytes::{Bytes, BytesMut};

use super::{RecordFormat, RecordMsg, RecordName, Recorder, Step, Writer};
use crate::fanout::{Packet, StreamKey};
use crate::media::flv::{FlvReader, FlvTag, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};

const META: &[u8] = b"\x02\x00\x0d@setDataFrame\x02\x00\x0aonMetaData\x08\x00\x00\x00\x01\x00\x0cvideocodecid\x00\x40\x1c\x00\x00\x00\x00\x00\x00\x00\x00\x09";
const AVC_HEADER: &[u8] = &[
    0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 2, 0x68, 0xee,
];
const AAC_HEADER: &[u8] = &[0xaf, 0, 0x12, 0x10];

fn packet(tag_type: u8, timestamp: u32, payload: &[u8], video_seen: bool) -> Packet {
    Packet::encode(
        tag_type,
        timestamp,
        Bytes::copy_from_slice(payload),
        4096,
        video_seen,
    )
    .unwrap()
}

fn video(timestamp: u32, keyframe: bool, seq: u8) -> Packet {
    let body = [
        if keyframe { 0x17 } else { 0x27 },
        1,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
        seq,
    ];
    packet(TAG_VIDEO, timestamp, &body, true)
}

fn audio(timestamp: u32, seq: u8) -> Packet {
    packet(TAG_AUDIO, timestamp, &[0xaf, 1, seq, seq], true)
}

/// Pushes `packets` through an FLV recorder: the file's bytes.
fn flv_of(packets: &[Packet]) -> BytesMut {
    let mut rec = Recorder::new(RecordFormat::Flv, 0);
    let mut out = BytesMut::new();
    for p in packets {
        assert_eq!(rec.push(p, &mut out), Step::Append);
    }
    assert_eq!(rec.finish(&mut out), Step::Append);
    out
}

fn tags(file: &mut BytesMut) -> (Vec<FlvTag>, FlvReader) {
    let mut reader = FlvReader::new();
    let mut tags = Vec::new();
    while let Some(tag) = reader.next_tag(file).unwrap() {
        tags.push(tag);
    }
    (tags, reader)
}

/// (type, timestamp, body) of each tag.
fn summary(tags: &[FlvTag]) -> Vec<(u8, u32, Vec<u8>)> {
    tags.iter()
        .map(|t| (t.tag_type, t.timestamp, t.data.to_vec()))
        .collect()
}

#[test]
fn flv_has_the_header_then_every_tag_byte_exact_with_timestamps_from_zero() {
    // A republish continues the hub's timeline: this one starts at 10 s.
    let t0 = 10_000;
    let packets = [
        packet(TAG_SCRIPT, t0, META, false),
        packet(TAG_VIDEO, t0, AVC_HEADER, false),
        packet(TAG_AUDIO, t0, AAC_HEADER, true),
        video(t0, true, 1),
        audio(t0 + 23, 2),
        video(t0 + 40, false, 3),
    ];
    let mut file = flv_of(&packets);
    // FLV, version 1, audio + video, DataOffset 9, PreviousTagSize0.
    assert_eq!(&file[..13], b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
    // The first tag, laid out by hand: script data, the metadata without @setDataFrame.
    let meta = &META[16..];
    let len = meta.len() as u8;
    assert_eq!(&file[13..24], &[18, 0, 0, len, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&file[24..24 + meta.len()], meta);
    let pts = 24 + meta.len();
    assert_eq!(&file[pts..pts + 4], &[0, 0, 0, 11 + len]);
    let whole = file.clone();
    let (tags, reader) = tags(&mut file);
    assert_eq!(
        reader.previous_size_mismatches(),
        0,
        "every PreviousTagSize is right"
    );
    assert_eq!(
        file.len(),
        4,
        "the last tag's PreviousTagSize ends the file"
    );
    assert_eq!(
        summary(&tags),
        [
            (TAG_SCRIPT, 0, meta.to_vec()),
            (TAG_VIDEO, 0, AVC_HEADER.to_vec()),
            (TAG_AUDIO, 0, AAC_HEADER.to_vec()),
            (TAG_VIDEO, 0, packets[3].wire.payload().to_vec()),
            (TAG_AUDIO, 23, packets[4].wire.payload().to_vec()),
            (TAG_VIDEO, 40, packets[5].wire.payload().to_vec()),
        ]
    );
    let expected_len = 13 + tags.iter().map(|t| 11 + t.data.len() + 4).sum::<usize>();
    assert_eq!(whole.len(), expected_len, "nothing else in the file");
}

#[test]
fn a_recording_that_starts_mid_stream_begins_at_a_keyframe_with_the_latest_headers() {
    let old_header = [0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e, 0xff, 0xe1, 0, 0];
    let packets = [
        packet(TAG_VIDEO, 3000, &old_header, false),
        audio(3900, 1),        // over a second before the keyframe: left out
        video(4960, false, 2), // no keyframe yet: not decodable
        audio(4970, 3),        // just ahead of the keyframe: kept, the file's time 0
        packet(TAG_VIDEO, 4990, AVC_HEADER, false), // replaces the old header
        packet(TAG_AUDIO, 4990, AAC_HEADER, true),
        audio(5000, 4), // at the keyframe's time: kept, after it
        video(5000, true, 5),
        video(5040, false, 6),
        packet(TAG_VIDEO, 5060, AVC_HEADER, false), // the same header again: not repeated
        packet(TAG_AUDIO, 5080, &[0xaf, 0, 0x11, 0x90], true), // a new one: written
        audio(5100, 7),
    ];
    let mut file = flv_of(&packets);
    assert_eq!(file[4], 0x05, "audio and video flags");
    let (tags, _) = tags(&mut file);
    let body = |i: usize| packets[i].wire.payload().to_vec();
    assert_eq!(
        summary(&tags),
        [
            (TAG_VIDEO, 0, AVC_HEADER.to_vec()),
            (TAG_AUDIO, 0, AAC_HEADER.to_vec()),
            (TAG_AUDIO, 0, body(3)),
            (TAG_VIDEO, 30, body(7)),
            (TAG_AUDIO, 30, body(6)),
            (TAG_VIDEO, 70, body(8)),
            (TAG_AUDIO, 110, vec![0xaf, 0, 0x11, 0x90]),
            (TAG_AUDIO, 130, body(11)),
        ]
    );
}

#[test]
fn an_audio_only_recording_starts_at_its_first_frame_with_the_audio_flag_only() {
    let packets = [
        packet(TAG_AUDIO, 700, AAC_HEADER, false),
        packet(TAG_AUDIO, 700, &[0xaf, 1, 9], false),
        packet(TAG_AUDIO, 723, &[0xaf, 1, 8], false),
    ];
    assert!(packets[1].keyframe, "audio-only: every frame is a start");
    let mut file = flv_of(&packets);
    assert_eq!(file[4], 0x04, "the audio flag alone");
    let (tags, _) = tags(&mut file);
    let times: Vec<u32> = tags.iter().map(|t| t.timestamp).collect();
    assert_eq!(times, [0, 0, 23]);
}

#[test]
fn nothing_is_written_before_the_first_keyframe() {
    let mut rec = Recorder::new(RecordFormat::Flv, 0);
    let mut out = BytesMut::new();
    for p in [
        packet(TAG_SCRIPT, 0, META, false),
        packet(TAG_VIDEO, 0, AVC_HEADER, false),
        video(0, false, 1),
        audio(10, 2),
    ] {
        let _ = rec.push(&p, &mut out);
    }
    let _ = rec.finish(&mut out);
    assert!(out.is_empty() && !rec.is_open());
}

/// The fixture's packets, on a timeline starting at `offset` ms.
fn fixture(offset: u32) -> Vec<Packet> {
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/media/h264_aac.flv"
    ))
    .unwrap();
    let mut buf = BytesMut::from(&data[..]);
    let (tags, _) = tags(&mut buf);
    tags.iter()
        .filter_map(|t| {
            Packet::encode(t.tag_type, t.timestamp + offset, t.data.clone(), 4096, true)
        })
        .collect()
}

/// Top-level boxes: (type, offset, size).
fn boxes(data: &[u8]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && at + size <= data.len(),
            "box at {at} of size {size}"
        );
        out.push((
            String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned(),
            at,
            size,
        ));
        at += size;
    }
    assert_eq!(at, data.len(), "boxes end where the data ends");
    out
}

#[test]
fn mp4_is_the_init_segment_then_fragments_appended_as_they_complete_from_time_zero() {
    let mut rec = Recorder::new(RecordFormat::Mp4, 1_700_000_000_000);
    let mut out = BytesMut::new();
    let packets = fixture(7000);
    let mut sizes = Vec::new();
    for p in &packets {
        assert_eq!(rec.push(p, &mut out), Step::Append);
        sizes.push(out.len());
    }
    let before_finish = out.len();
    assert!(before_finish > 0, "fragments are out before the end");
    assert_eq!(rec.finish(&mut out), Step::Append);
    assert!(
        out.len() > before_finish,
        "finish appends the last fragment"
    );
    // What was written at any point is whole boxes: a reader of the growing file never sees
    // half a fragment.
    for &size in sizes.iter().filter(|&&s| s > 0) {
        boxes(&out[..size]);
    }
    let all = boxes(&out);
    let names: Vec<&str> = all.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(&names[..2], ["ftyp", "moov"]);
    assert!(names.len() >= 6, "several fragments: {names:?}");
    for pair in names[2..].chunks(2) {
        assert_eq!(pair, ["moof", "mdat"]);
    }
    // The first fragment starts at 0, though the publisher's timeline started at 7 s.
    let (_, at, size) = &all[2];
    let moof = &out[*at..at + size];
    let tfdt = moof.windows(4).position(|w| w == b"tfdt").unwrap();
    assert_eq!(moof[tfdt + 4], 1, "tfdt version 1");
    let time = u64::from_be_bytes(moof[tfdt + 8..tfdt + 16].try_into().unwrap());
    assert_eq!(time, 0);
}

#[test]
fn an_mp4_whose_codec_configuration_changes_goes_on_in_a_new_file() {
    let mut rec = Recorder::new(RecordFormat::Mp4, 0);
    let mut out = BytesMut::new();
    let first = fixture(0);
    let end = first.last().unwrap().timestamp;
    let mut split = None;
    for p in &first {
        let _ = rec.push(p, &mut out);
    }
    // The same stream, its audio now announced as mono: a new init segment is needed.
    for p in fixture(end + 40) {
        let p = if p.header && p.kind == crate::fanout::MediaKind::Audio {
            packet(TAG_AUDIO, p.timestamp, &[0xaf, 0, 0x12, 0x08], true)
        } else {
            p
        };
        if let Step::NewFile { at } = rec.push(&p, &mut out) {
            split.get_or_insert(at);
        }
    }
    let _ = rec.finish(&mut out);
    let at = split.expect("the recording split");
    let old = boxes(&out[..at]);
    let new = boxes(&out[at..]);
    assert_eq!(old[0].0, "ftyp");
    assert_eq!((new[0].0.as_str(), new[1].0.as_str()), ("ftyp", "moov"));
    assert_ne!(
        &out[old[1].1..old[1].1 + old[1].2],
        &out[at + new[1].1..at + new[1].1 + new[1].2],
        "the new moov describes the new configuration"
    );
}

fn start(id: u64, dir: &std::path::Path, stream: &str, format: RecordFormat) -> RecordMsg {
    RecordMsg::Start {
        id,
        key: StreamKey::new("live", stream),
        dir: dir.to_path_buf(),
        name: RecordName {
            app: "live".to_string(),
            stream: stream.to_string(),
        },
        format,
        // 2026-12-06 04:15:00 UTC.
        started_unix_ms: 1_796_530_500_000,
    }
}

#[test]
fn the_writer_opens_a_file_at_the_first_keyframe_and_never_overwrites_one() {
    let dir = std::env::temp_dir().join(format!("rtmp-edge-record-writer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut writer = Writer::default();
    let packets = [
        packet(TAG_VIDEO, 0, AVC_HEADER, false),
        video(0, true, 1),
        video(40, false, 2),
    ];
    // Two publishes of one stream in the same second, and one that sends no keyframe.
    writer.handle(start(1, &dir, "cam", RecordFormat::Flv));
    writer.handle(start(2, &dir, "cam", RecordFormat::Flv));
    writer.handle(start(3, &dir, "silent", RecordFormat::Flv));
    for id in [1, 2] {
        for p in &packets {
            writer.handle(RecordMsg::Media {
                id,
                packet: p.clone(),
            });
        }
    }
    writer.handle(RecordMsg::Media {
        id: 3,
        packet: packets[0].clone(),
    });
    let first = dir.join("live/cam-20261206T041500Z.flv");
    assert_eq!(
        std::fs::read(&first).unwrap(),
        &flv_of(&packets)[..],
        "readable while open"
    );
    writer.handle(RecordMsg::Stop { id: 1 });
    writer.handle(RecordMsg::Stop { id: 3 });
    writer.close_all();
    let mut names: Vec<String> = std::fs::read_dir(dir.join("live"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["cam-20261206T041500Z-1.flv", "cam-20261206T041500Z.flv"]
    );
    let second = std::fs::read(dir.join("live/cam-20261206T041500Z-1.flv")).unwrap();
    assert_eq!(second, std::fs::read(&first).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}
