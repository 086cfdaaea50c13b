//! The media side of connections: publishers' paced, stamped frames and players' video
//! measurements.

use std::time::{Duration, Instant};

use rtmp_edge::media::parse_video_tag;

use super::{Conn, Role, Wire, MAX_FRAMES_PER_WAKE};
use crate::sei;
use crate::source::{MediaSource, AUDIO, DATA, VIDEO};
use crate::stats::{Counters, PlayerTrack, Stats};

/// A player received a video message.
pub(super) fn on_player_video(
    stats: &mut Stats,
    track: &mut PlayerTrack,
    nal_length_size: &mut usize,
    payload: &[u8],
    now: Instant,
    base: Instant,
) {
    if let Some(n) = sei::nal_length_size_of_avc_sequence_header(payload) {
        *nal_length_size = n;
        return;
    }
    let Some(keyframe) = coded_frame_is_keyframe(payload) else {
        return;
    };
    let age = sei::find_stamp_in_avc_frame(payload, *nal_length_size).map(|stamp| {
        let now_us = u64::try_from((now - base).as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(now_us.saturating_sub(stamp))
    });
    stats.on_video_frame(track, now, keyframe, age);
}

/// For a video message holding a coded frame, whether it is a keyframe; `None` for sequence
/// headers, end-of-sequence, command frames and payloads the media core cannot classify.
fn coded_frame_is_keyframe(payload: &[u8]) -> Option<bool> {
    let tag = parse_video_tag(payload).ok()?;
    if tag.command.is_some() || !tag.packet_type.is_coded_frames() {
        return None;
    }
    Some(tag.info().is_keyframe)
}

/// Sends every frame of a publisher that is due by `now`; returns when the next one is due.
pub(super) fn publish_due(
    conn: &mut Conn,
    src: &MediaSource,
    counters: &mut Counters,
    now: Instant,
    base: Instant,
) -> Option<Instant> {
    let (
        Role::Publisher {
            started: Some(started),
            cursor,
            ..
        },
        Wire::Rtmp(session),
    ) = (&mut conn.role, &mut conn.wire)
    else {
        return None;
    };
    let elapsed_ms = (now - *started).as_millis() as u64;
    let mut sent = 0;
    while src.due_ms(*cursor) <= elapsed_ms && sent < MAX_FRAMES_PER_WAKE {
        let frame = src.frame(*cursor);
        let ts = src.due_ms(*cursor) as u32; // RTMP timestamps wrap at 2^32 ms
        let stamped = match frame.type_id {
            VIDEO => {
                let us = u64::try_from((now - base).as_micros()).unwrap_or(u64::MAX);
                sei::stamp_avc_frame(&frame.data, src.nal_length_size, us)
            }
            AUDIO | DATA => None,
            _ => None,
        };
        match &stamped {
            Some(v) => session.send_media(frame.type_id, ts, v),
            None => session.send_media(frame.type_id, ts, &frame.data),
        }
        counters.publisher_messages += 1;
        src.advance(cursor);
        sent += 1;
    }
    Some(*started + Duration::from_millis(src.due_ms(*cursor)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframes_are_told_from_headers_and_inter_frames() {
        assert_eq!(coded_frame_is_keyframe(&[0x17, 1, 0, 0, 0]), Some(true));
        assert_eq!(coded_frame_is_keyframe(&[0x27, 1, 0, 0, 0]), Some(false));
        assert_eq!(coded_frame_is_keyframe(&[0x17, 0, 0, 0, 0]), None);
        assert_eq!(coded_frame_is_keyframe(&[0x17, 2, 0, 0, 0]), None);
        assert_eq!(coded_frame_is_keyframe(&[0x52, 0]), None, "command frame");
        assert_eq!(coded_frame_is_keyframe(&[]), None);
        // Enhanced RTMP: keyframe CodedFramesX, inter CodedFrames, SequenceStart.
        assert_eq!(
            coded_frame_is_keyframe(&[0x93, b'h', b'v', b'c', b'1']),
            Some(true)
        );
        assert_eq!(
            coded_frame_is_keyframe(&[0xa1, b'a', b'v', b'0', b'1']),
            Some(false)
        );
        assert_eq!(
            coded_frame_is_keyframe(&[0x90, b'h', b'v', b'c', b'1']),
            None
        );
    }
}
