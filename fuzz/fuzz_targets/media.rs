//! Feeds the media inspectors (src/media) an arbitrary message payload, as a publisher's audio,
//! video or data message, and as an FLV file: legacy and Enhanced RTMP tag headers,
//! multitrack, codec configuration records (AVC, HEVC, AAC), SPS, NAL unit walking, latency
//! SEI, RBSP escaping, `onMetaData` detection, the FLV reader.
//!
//! Properties checked, beyond "no panic":
//! - `inspect_video`/`inspect_audio` agree with `parse_*_tag(..).info()`;
//! - every track's data is the payload's bytes at the track's `data_offset` (no byte invented,
//!   none past the end), and `track_count` is the number of tracks iterated;
//! - NAL units found are inside the data; `unescape_rbsp(escape_rbsp(x)) == x`;
//! - the FLV reader gives the same tags and the same kind of error fed byte by byte as fed at
//!   once (a bad signature reports the bytes seen so far), and only consumes bytes it parsed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtmp_edge::media::aac::AacConfig;
use rtmp_edge::media::avc::{escape_rbsp, nal_units, parse_sps, unescape_rbsp, AvcConfig};
use rtmp_edge::media::flv::{FlvError, FlvReader, FlvTag};
use rtmp_edge::media::hevc::HevcConfig;
use rtmp_edge::media::sei::{find_latency_sei, find_latency_sei_hevc};
use rtmp_edge::media::{
    inspect_audio, inspect_video, is_metadata, parse_audio_tag, parse_video_tag, AudioCodec,
    VideoCodec,
};

/// `part` lies inside `whole` at `offset`.
fn borrowed_at(whole: &[u8], part: &[u8], offset: usize) {
    let end = offset.checked_add(part.len()).expect("offset overflow");
    assert!(end <= whole.len(), "track data past the payload");
    assert_eq!(&whole[offset..end], part, "track data not at its offset");
}

fn walk_nals(data: &[u8]) {
    for size in [1u8, 2, 4] {
        let start = data.as_ptr() as usize;
        for nal in nal_units(data, size) {
            let Ok(nal) = nal else {
                break;
            };
            let at = nal.as_ptr() as usize;
            assert!(
                at >= start && at + nal.len() <= start + data.len(),
                "NAL outside data"
            );
        }
        let _ = find_latency_sei(data, size);
        let _ = find_latency_sei_hevc(data, size);
    }
}

fn configs(data: &[u8]) {
    if let Ok(avc) = AvcConfig::parse(data) {
        let _ = avc.codec_string();
        for sps in &avc.sps {
            let _ = parse_sps(sps);
        }
    }
    if let Ok(hevc) = HevcConfig::parse(data) {
        let _ = hevc.codec_string();
        let _ = (hevc.vps().count(), hevc.sps().count(), hevc.pps().count());
    }
    if let Ok(aac) = AacConfig::parse(data) {
        let _ = aac.codec_string();
    }
    let _ = parse_sps(data);
}

fn video(payload: &[u8]) {
    let parsed = parse_video_tag(payload);
    assert_eq!(
        inspect_video(payload),
        parsed.as_ref().map(|t| t.info()).map_err(Clone::clone)
    );
    let Ok(tag) = parsed else {
        return;
    };
    let mut n = 0;
    for track in tag.tracks() {
        n += 1;
        borrowed_at(payload, track.data, track.data_offset);
        match track.codec {
            VideoCodec::Avc | VideoCodec::Hevc => {
                if tag.info().is_sequence_header {
                    configs(track.data);
                } else {
                    walk_nals(track.data);
                }
            }
            _ => {}
        }
    }
    // The tag is validated when parsed: iteration never stops early.
    assert_eq!(n, tag.track_count(), "tracks iterated vs track_count");
    assert_eq!(tag.first_track().is_some(), n > 0);
}

fn audio(payload: &[u8]) {
    let parsed = parse_audio_tag(payload);
    assert_eq!(
        inspect_audio(payload),
        parsed.as_ref().map(|t| t.info()).map_err(Clone::clone)
    );
    let Ok(tag) = parsed else {
        return;
    };
    let mut n = 0;
    for track in tag.tracks() {
        n += 1;
        borrowed_at(payload, track.data, track.data_offset);
        if track.codec == AudioCodec::Aac && tag.info().is_sequence_header {
            let _ = AacConfig::parse(track.data);
        }
    }
    assert_eq!(n, tag.track_count(), "tracks iterated vs track_count");
    assert_eq!(tag.first_track().is_some(), n > 0);
}

fn flv(data: &[u8], step: usize) -> (Vec<FlvTag>, Option<FlvError>) {
    let mut reader = FlvReader::with_max_tag_size(64 * 1024);
    let mut buf = BytesMut::new();
    let mut tags = Vec::new();
    for piece in data.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match reader.next_tag(&mut buf) {
                Ok(Some(tag)) => {
                    assert!(buf.len() < before);
                    tags.push(tag);
                }
                Ok(None) => break,
                Err(e) => return (tags, Some(e)),
            }
        }
    }
    (tags, None)
}

fuzz_target!(|data: &[u8]| {
    video(data);
    audio(data);
    let _ = is_metadata(data);
    configs(data);
    walk_nals(data);
    assert_eq!(
        unescape_rbsp(&escape_rbsp(data)),
        data,
        "RBSP escape round trip"
    );
    let (tags, error) = flv(data, data.len().max(1));
    let (tags1, error1) = flv(data, 1);
    assert_eq!(tags, tags1, "byte-at-a-time FLV reading gives other tags");
    assert_eq!(
        error.as_ref().map(std::mem::discriminant),
        error1.as_ref().map(std::mem::discriminant),
        "byte-at-a-time FLV reading ends otherwise: {error:?} {error1:?}"
    );
});
