//! The media side of connections: publishers' paced, stamped frames and players' video
//! measurements.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtmp_edge::media::parse_video_tag;

use super::{Conn, Role, Wire, MAX_FRAMES_PER_WAKE};
use crate::sei;
use crate::source::{Cursor, MediaSource, AUDIO, DATA, VIDEO};
use crate::stats::{Counters, PlayerTrack, Stats};

/// Most frames a [`Ledger`] remembers per stream (about half a minute at 30 fps): a player
/// more than that behind its publisher is not checked for loss.
const LEDGER_FRAMES: usize = 1024;

/// The stamped video frames a stream's publisher sent, in order: stamp → sequence number.
/// Stamps are made strictly increasing per stream (a catch-up burst would otherwise share
/// one), so a player can tell each frame by its stamp, count frames it never got, and count
/// once a frame it got twice (over two connections while reconnecting).
#[derive(Debug, Default)]
pub(super) struct Ledger {
    frames: VecDeque<(u64, u64)>,
    next_seq: u64,
}

impl Ledger {
    /// The stamp for a frame sent at `now_us`: that, or just after the previous one.
    pub(super) fn stamp(&self, now_us: u64) -> u64 {
        self.frames
            .back()
            .map_or(now_us, |&(last, _)| now_us.max(last + 1))
    }

    /// Records that a frame went out with `stamp` (from [`stamp`](Self::stamp)).
    pub(super) fn record(&mut self, stamp: u64) {
        if self.frames.len() == LEDGER_FRAMES {
            self.frames.pop_front();
        }
        self.frames.push_back((stamp, self.next_seq));
        self.next_seq += 1;
    }

    /// The sequence number of the frame stamped `stamp`, if it is remembered.
    pub(super) fn seq_of(&self, stamp: u64) -> Option<u64> {
        let i = self.frames.binary_search_by_key(&stamp, |&(s, _)| s).ok()?;
        Some(self.frames[i].1)
    }
}

/// A player received a video message. Returns false for a frame it had already counted
/// (see [`Stats::on_video_sequence`]), which is not counted again.
pub(super) fn on_player_video(
    stats: &mut Stats,
    track: &mut PlayerTrack,
    nal_length_size: &mut usize,
    payload: &[u8],
    ledger: Option<&Ledger>,
    now: Instant,
    base: Instant,
) -> bool {
    if let Some(n) = sei::nal_length_size_of_avc_sequence_header(payload) {
        *nal_length_size = n;
        return true;
    }
    let Some(keyframe) = coded_frame_is_keyframe(payload) else {
        return true;
    };
    let stamp = sei::find_stamp_in_avc_frame(payload, *nal_length_size);
    if let Some(seq) = stamp.and_then(|s| ledger?.seq_of(s)) {
        if !stats.on_video_sequence(track, seq) {
            return false;
        }
    }
    let age = stamp.map(|stamp| {
        let now_us = u64::try_from((now - base).as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(now_us.saturating_sub(stamp))
    });
    stats.on_video_frame(track, now, keyframe, age);
    true
}

/// For a video message holding a coded frame, whether it is a keyframe; `None` for sequence
/// headers, end-of-sequence, command frames and payloads the media core cannot classify.
pub(super) fn coded_frame_is_keyframe(payload: &[u8]) -> Option<bool> {
    let tag = parse_video_tag(payload).ok()?;
    if tag.command.is_some() || !tag.packet_type.is_coded_frames() {
        return None;
    }
    Some(tag.info().is_keyframe)
}

/// How many frames from `cursor` on are due `elapsed_ms` into a publisher's stream (at most
/// [`MAX_FRAMES_PER_WAKE`]). With `hold_keyframe` (a successor is waiting to take over at
/// the next keyframe) it stops before a keyframe that is not the first due, so a late wake-up
/// that finds several frames due does not send the handover keyframe along with the frames
/// before it: the caller comes back with the keyframe first in line and hands over there.
pub(super) fn frames_due(
    src: &MediaSource,
    mut cursor: Cursor,
    elapsed_ms: u64,
    hold_keyframe: bool,
) -> usize {
    let mut n = 0;
    while src.due_ms(cursor) <= elapsed_ms && n < MAX_FRAMES_PER_WAKE {
        let frame = src.frame(cursor);
        if hold_keyframe
            && n > 0
            && frame.type_id == VIDEO
            && coded_frame_is_keyframe(&frame.data) == Some(true)
        {
            break;
        }
        src.advance(&mut cursor);
        n += 1;
    }
    n
}

/// Sends the frames of a publisher that are due by `now` (see [`frames_due`] for
/// `hold_keyframe`), recording its stamped video frames in `ledger`; returns when the next
/// one is due.
pub(super) fn publish_due(
    conn: &mut Conn,
    src: &MediaSource,
    counters: &mut Counters,
    ledger: &mut Ledger,
    now: Instant,
    base: Instant,
    hold_keyframe: bool,
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
    for _ in 0..frames_due(src, *cursor, elapsed_ms, hold_keyframe) {
        let frame = src.frame(*cursor);
        let ts = src.due_ms(*cursor) as u32; // RTMP timestamps wrap at 2^32 ms
        let stamped = match frame.type_id {
            VIDEO => {
                let us = u64::try_from((now - base).as_micros()).unwrap_or(u64::MAX);
                let stamp = ledger.stamp(us);
                let stamped = sei::stamp_avc_frame(&frame.data, src.nal_length_size, stamp);
                if stamped.is_some() {
                    ledger.record(stamp);
                }
                stamped
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
    }
    Some(*started + Duration::from_millis(src.due_ms(*cursor)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_wake_up_holds_the_handover_keyframe_back_when_a_successor_is_ready() {
        // 25 fps, GOP 25 + AAC: the loop's last audio frame (998 ms) is 2 ms before the next
        // loop's keyframe (1000 ms), so a wake-up a few ms late finds both due.
        let src = MediaSource::synthetic(600_000, 25, 25).unwrap();
        let last = Cursor {
            index: src.frames.len() - 1,
            loops: 0,
        };
        assert_eq!(src.frame(last).type_id, AUDIO);
        assert_eq!(src.due_ms(last), 998);
        assert_eq!(
            frames_due(&src, last, 1010, false),
            3,
            "audio, keyframe, audio at 1000"
        );
        assert_eq!(
            frames_due(&src, last, 1010, true),
            1,
            "the keyframe waits for the handover"
        );
        // With the keyframe first in line (the handover declined) it is sent.
        let key = Cursor { index: 0, loops: 1 };
        assert_eq!(
            frames_due(&src, key, 1010, true),
            2,
            "keyframe, audio at 1000"
        );
        assert_eq!(frames_due(&src, key, 1030, true), 3, "and audio at 1023");
        assert_eq!(frames_due(&src, last, 990, true), 0, "nothing due yet");
    }

    #[test]
    fn ledger_stamps_increase_strictly_and_map_back_to_their_sequence() {
        let mut ledger = Ledger::default();
        let a = ledger.stamp(1000);
        ledger.record(a);
        let b = ledger.stamp(1000);
        assert_eq!(
            b, 1001,
            "a burst sent at one instant still gets distinct stamps"
        );
        ledger.record(b);
        let c = ledger.stamp(5000);
        ledger.record(c);
        assert_eq!(ledger.seq_of(1000), Some(0));
        assert_eq!(ledger.seq_of(1001), Some(1));
        assert_eq!(ledger.seq_of(5000), Some(2));
        assert_eq!(ledger.seq_of(3000), None);
        for i in 0..LEDGER_FRAMES as u64 {
            let s = ledger.stamp(10_000 + i);
            ledger.record(s);
        }
        assert_eq!(ledger.seq_of(1000), None, "the oldest are forgotten");
        assert_eq!(ledger.seq_of(10_000), Some(3));
    }

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
