//! What players and publishers measure, merged into one set of counters and histograms (the
//! load generator is single-threaded, so there is nothing to merge across threads).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency-type histograms record microseconds, 1 µs .. 1 hour, 3 significant digits.
fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

/// Percentiles of a microsecond histogram, reported in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// Summarises `h` (µs) in ms. All zero when empty.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Counters that only go up; the progress line diffs two snapshots.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Counters {
    /// Bytes players read from the server (wire bytes, all messages).
    pub player_bytes: u64,
    /// Messages (audio, video, data) players received.
    pub player_messages: u64,
    /// Video frames (sequence headers excluded) players received.
    pub player_video_frames: u64,
    /// Bytes publishers wrote.
    pub publisher_bytes: u64,
    /// Media messages publishers sent.
    pub publisher_messages: u64,
    /// Players that reached Playing.
    pub players_playing: u64,
    /// Players whose first video frame was (not) a keyframe.
    pub first_frame_keyframe: u64,
    pub first_frame_not_keyframe: u64,
    /// Gaps between video frames longer than the stall threshold (plus players silent at the
    /// end for longer than it).
    pub stalls: u64,
    /// Connections the server closed before the end.
    pub disconnects: u64,
    /// Failed connects, protocol errors, error statuses, players that never played.
    pub errors: u64,
    /// Players opened shortly before the end that had not reached Playing yet.
    pub players_starting_at_end: u64,
    /// Players that left on purpose (churn).
    pub churn_left: u64,
    /// Players that joined as churn replacements.
    pub churn_joined: u64,
    /// Video frames whose latency stamp was missing (e.g. a server re-muxing video).
    pub frames_without_stamp: u64,
    /// HLS pollers' playlist responses.
    pub hls_playlists: u64,
    /// HLS pollers' segment responses.
    pub hls_segments: u64,
    /// HLS pollers' part responses (LL-HLS).
    pub hls_parts: u64,
    /// HLS pollers' response body bytes.
    pub hls_bytes: u64,
    /// HLS "part ready" and "publish to playable" samples more than [`PDT_TOLERANCE_US`]
    /// below zero (all negatives are recorded as 0): the server's EXT-X-PROGRAM-DATE-TIME is
    /// ahead of our clock by more than the publishers' pacing jitter, i.e. it is wrong.
    pub hls_negative_latencies: u64,
    /// New HLS parts or segments without a program date time, so not timed.
    pub hls_without_pdt: u64,
    /// 404 answers to a poller's first playlist request (the stream had no segment yet);
    /// the poller asked again.
    pub hls_playlists_not_ready: u64,
    /// Make-before-break reconnects completed after an E-RTMP ReconnectRequest (a player
    /// switched to its new connection, or a publisher handed its stream over).
    pub reconnects: u64,
    /// Video frames a player never received: gaps in the sequence of the frames its stream's
    /// publisher sent (frames from before its first one do not count). Server-side drops to a
    /// slow player count here too.
    pub video_frames_lost: u64,
    /// Video frames a player received twice (over its old and new connection while
    /// reconnecting) or out of order; counted once, these are not.
    pub video_frames_duplicate: u64,
}

/// What an HLS poller's request fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HlsFetch {
    Playlist,
    Segment,
    /// An LL-HLS part.
    Part,
}

/// Per-player measurement state.
#[derive(Clone, Debug)]
pub struct PlayerTrack {
    pub opened: Instant,
    pub playing: Option<Instant>,
    pub first_frame: Option<Instant>,
    pub last_video: Option<Instant>,
    /// Sequence number of the latest publisher frame counted (see
    /// [`Stats::on_video_sequence`]).
    pub last_seq: Option<u64>,
    /// Opened by the churn in the measurement window (not by the ramp, not a reconnect).
    pub join: bool,
}

impl PlayerTrack {
    /// A player whose TCP connect started at `opened`.
    pub fn new(opened: Instant) -> Self {
        Self {
            opened,
            playing: None,
            first_frame: None,
            last_video: None,
            last_seq: None,
            join: false,
        }
    }

    /// A player the churn opened at `opened` (its times also go to the joins' figures).
    pub fn join(opened: Instant) -> Self {
        Self {
            join: true,
            ..Self::new(opened)
        }
    }
}

/// Every measurement of one run.
pub struct Stats {
    pub counters: Counters,
    /// End-to-end latency, publisher send → player receive, µs.
    pub latency_us: Histogram<u64>,
    /// TCP connect start → NetStream.Play.Start, µs.
    pub connect_to_play_us: Histogram<u64>,
    /// TCP connect start → first video frame, µs.
    pub first_frame_us: Histogram<u64>,
    /// `connect_to_play_us` of the churn's joins only (see [`PlayerTrack::join`]): the
    /// ramp's players, opened many at a time, and reconnects are not in it.
    pub join_connect_to_play_us: Histogram<u64>,
    /// `first_frame_us` of the churn's joins only.
    pub join_first_frame_us: Histogram<u64>,
    /// HLS playlist request → response complete (blocking reloads included), µs.
    pub hls_playlist_us: Histogram<u64>,
    /// HLS segment request → response complete, µs.
    pub hls_segment_us: Histogram<u64>,
    /// LL-HLS part request → response complete, µs.
    pub hls_part_us: Histogram<u64>,
    /// LL-HLS "part ready": the blocking playlist answer that first listed a part arrived this
    /// long after the part's media end (PDT-derived start + duration), µs.
    pub hls_part_ready_us: Histogram<u64>,
    /// LL-HLS "publish to playable": a part's bytes were all received this long after its
    /// media start wall time, µs.
    pub hls_part_playable_us: Histogram<u64>,
    /// Plain HLS "publish to playable": a segment fetched this long after its PDT, µs.
    pub hls_segment_playable_us: Histogram<u64>,
    /// Distinct error messages with their counts, in first-seen order (capped).
    pub error_kinds: Vec<(String, u64)>,
    stall_threshold: Duration,
}

/// Distinct error messages kept.
const MAX_ERROR_KINDS: usize = 32;

impl Stats {
    /// Empty statistics; gaps longer than `stall_threshold` are stalls.
    pub fn new(stall_threshold: Duration) -> Self {
        Self {
            counters: Counters::default(),
            latency_us: micros_histogram(),
            connect_to_play_us: micros_histogram(),
            first_frame_us: micros_histogram(),
            join_connect_to_play_us: micros_histogram(),
            join_first_frame_us: micros_histogram(),
            hls_playlist_us: micros_histogram(),
            hls_segment_us: micros_histogram(),
            hls_part_us: micros_histogram(),
            hls_part_ready_us: micros_histogram(),
            hls_part_playable_us: micros_histogram(),
            hls_segment_playable_us: micros_histogram(),
            error_kinds: Vec::new(),
            stall_threshold,
        }
    }

    /// Counts an error and remembers its message.
    pub fn error(&mut self, what: impl Into<String>) {
        self.counters.errors += 1;
        self.note(what.into());
    }

    /// Records an HLS request's latency.
    pub fn on_hls_response(&mut self, what: HlsFetch, latency: Duration, bytes: usize) {
        self.counters.hls_bytes += bytes as u64;
        let (count, h) = match what {
            HlsFetch::Playlist => (&mut self.counters.hls_playlists, &mut self.hls_playlist_us),
            HlsFetch::Segment => (&mut self.counters.hls_segments, &mut self.hls_segment_us),
            HlsFetch::Part => (&mut self.counters.hls_parts, &mut self.hls_part_us),
        };
        *count += 1;
        record(h, latency);
    }

    /// Records a part's "part ready" delay, µs (negative: clamped to 0 and counted).
    pub fn on_hls_part_ready(&mut self, us: i64) {
        record_signed(&mut self.hls_part_ready_us, &mut self.counters, us);
    }

    /// Records a part's or segment's "publish to playable" latency, µs (negative: clamped to
    /// 0 and counted).
    pub fn on_hls_playable(&mut self, what: HlsFetch, us: i64) {
        let h = match what {
            HlsFetch::Part => &mut self.hls_part_playable_us,
            HlsFetch::Segment | HlsFetch::Playlist => &mut self.hls_segment_playable_us,
        };
        record_signed(h, &mut self.counters, us);
    }

    /// Forgets the latency samples taken before the measurement window (HLS request latencies
    /// included: a joining poller's first answers wait for on-demand packaging to start).
    pub fn reset_window_latencies(&mut self) {
        self.latency_us.reset();
        self.hls_playlist_us.reset();
        self.hls_segment_us.reset();
        self.hls_part_us.reset();
        self.hls_part_ready_us.reset();
        self.hls_part_playable_us.reset();
        self.hls_segment_playable_us.reset();
    }

    /// Counts a disconnect by the server and remembers why.
    pub fn disconnect(&mut self, what: impl Into<String>) {
        self.counters.disconnects += 1;
        self.note(what.into());
    }

    fn note(&mut self, what: String) {
        if let Some(e) = self.error_kinds.iter_mut().find(|(k, _)| *k == what) {
            e.1 += 1;
        } else if self.error_kinds.len() < MAX_ERROR_KINDS {
            self.error_kinds.push((what, 1));
        }
    }

    /// The player reached Playing at `now`.
    pub fn on_playing(&mut self, track: &mut PlayerTrack, now: Instant) {
        if track.playing.is_none() {
            track.playing = Some(now);
            self.counters.players_playing += 1;
            record(&mut self.connect_to_play_us, now - track.opened);
            if track.join {
                record(&mut self.join_connect_to_play_us, now - track.opened);
            }
        }
    }

    /// A video frame (not a sequence header) arrived at `now`. `stamp_age` is now minus the
    /// frame's send stamp, when it carried one.
    pub fn on_video_frame(
        &mut self,
        track: &mut PlayerTrack,
        now: Instant,
        keyframe: bool,
        stamp_age: Option<Duration>,
    ) {
        self.counters.player_video_frames += 1;
        match track.last_video {
            None => {
                track.first_frame = Some(now);
                record(&mut self.first_frame_us, now - track.opened);
                if track.join {
                    record(&mut self.join_first_frame_us, now - track.opened);
                }
                if keyframe {
                    self.counters.first_frame_keyframe += 1;
                } else {
                    self.counters.first_frame_not_keyframe += 1;
                }
            }
            Some(last) if now - last > self.stall_threshold => self.counters.stalls += 1,
            Some(_) => {}
        }
        track.last_video = Some(now);
        match stamp_age {
            Some(age) => record(&mut self.latency_us, age),
            None => self.counters.frames_without_stamp += 1,
        }
    }

    /// A video frame numbered `seq` by its publisher arrived: false when this player already
    /// counted it or a later one (a duplicate, not to be counted again); a jump past the next
    /// number counts the frames skipped as lost.
    pub fn on_video_sequence(&mut self, track: &mut PlayerTrack, seq: u64) -> bool {
        match track.last_seq {
            Some(last) if seq <= last => {
                self.counters.video_frames_duplicate += 1;
                return false;
            }
            Some(last) => self.counters.video_frames_lost += seq - last - 1,
            None => {}
        }
        track.last_seq = Some(seq);
        true
    }

    /// The run ended at `now` with this player still connected. A player opened less than
    /// `grace` ago that has not played yet is only counted as still starting; an older one
    /// is an error. One that has had video but has been silent for longer than the stall
    /// threshold counts one stall (waiting for a first keyframe is not a stall).
    /// `stage` says where a player that never played was stuck.
    pub fn on_player_end(
        &mut self,
        track: &PlayerTrack,
        now: Instant,
        grace: Duration,
        stage: &str,
    ) {
        if track.playing.is_none() {
            if now - track.opened > grace {
                self.error(format!(
                    "player never reached NetStream.Play.Start (stuck in {stage})"
                ));
            } else {
                self.counters.players_starting_at_end += 1;
            }
            return;
        }
        if let Some(last) = track.last_video {
            if now - last > self.stall_threshold {
                self.counters.stalls += 1;
            }
        }
    }
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

/// How far a PDT-derived latency may fall below zero before it counts as a wrong date: the
/// server dates media by its arrival, and a publisher's frames leave a few ms early or late
/// against their timestamps (its send timer), so a part can be listed that much "before"
/// its media ended. A date off by a frame (40 ms) or more is counted.
pub const PDT_TOLERANCE_US: i64 = 10_000;

/// Records a signed µs figure; a negative one is recorded as the floor, and counted when it
/// is beyond [`PDT_TOLERANCE_US`].
fn record_signed(h: &mut Histogram<u64>, counters: &mut Counters, us: i64) {
    if us < -PDT_TOLERANCE_US {
        counters.hls_negative_latencies += 1;
    }
    h.saturating_record(u64::try_from(us).unwrap_or(0).max(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_are_reported_in_milliseconds() {
        let mut h = micros_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.p999 - 999.0).abs() < 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn empty_histogram_gives_zero_percentiles() {
        assert_eq!(Percentiles::of(&micros_histogram()), Percentiles::default());
    }

    #[test]
    fn first_frame_time_and_keyframe_flag_are_recorded_once() {
        let t0 = Instant::now();
        let mut st = Stats::new(ms(1000));
        let mut tr = PlayerTrack::new(t0);
        st.on_playing(&mut tr, t0 + ms(20));
        st.on_playing(&mut tr, t0 + ms(30));
        st.on_video_frame(&mut tr, t0 + ms(50), false, Some(ms(5)));
        st.on_video_frame(&mut tr, t0 + ms(90), true, Some(ms(7)));
        assert_eq!(st.counters.players_playing, 1);
        assert_eq!(st.connect_to_play_us.len(), 1);
        assert_eq!(st.first_frame_us.len(), 1);
        assert!(st.first_frame_us.max() >= 49_000 && st.first_frame_us.max() <= 51_000);
        assert_eq!(st.counters.first_frame_not_keyframe, 1);
        assert_eq!(st.counters.first_frame_keyframe, 0);
        assert_eq!(st.latency_us.len(), 2);
    }

    #[test]
    fn gaps_over_the_threshold_are_stalls() {
        let t0 = Instant::now();
        let mut st = Stats::new(ms(1000));
        let mut tr = PlayerTrack::new(t0);
        st.on_playing(&mut tr, t0);
        st.on_video_frame(&mut tr, t0 + ms(10), true, None);
        st.on_video_frame(&mut tr, t0 + ms(900), false, None);
        assert_eq!(st.counters.stalls, 0);
        st.on_video_frame(&mut tr, t0 + ms(2000), false, None);
        assert_eq!(st.counters.stalls, 1);
        assert_eq!(st.counters.frames_without_stamp, 3);
        st.on_player_end(&tr, t0 + ms(2500), ms(5000), "play");
        assert_eq!(st.counters.stalls, 1);
        st.on_player_end(&tr, t0 + ms(3500), ms(5000), "play");
        assert_eq!(st.counters.stalls, 2);
    }

    #[test]
    fn sequence_gaps_are_lost_frames_and_repeats_are_duplicates() {
        let t0 = Instant::now();
        let mut st = Stats::new(ms(1000));
        let mut tr = PlayerTrack::new(t0);
        assert!(
            st.on_video_sequence(&mut tr, 100),
            "the first frame starts the count"
        );
        assert!(st.on_video_sequence(&mut tr, 101));
        assert_eq!(st.counters.video_frames_lost, 0);
        assert!(!st.on_video_sequence(&mut tr, 101), "seen twice");
        assert!(
            !st.on_video_sequence(&mut tr, 99),
            "older than the last counted"
        );
        assert_eq!(st.counters.video_frames_duplicate, 2);
        assert!(st.on_video_sequence(&mut tr, 105));
        assert_eq!(st.counters.video_frames_lost, 3, "102, 103, 104");
        assert_eq!(tr.last_seq, Some(105));
    }

    #[test]
    fn waiting_for_the_first_frame_is_not_a_stall() {
        let t0 = Instant::now();
        let mut st = Stats::new(ms(1000));
        let mut tr = PlayerTrack::new(t0);
        st.on_playing(&mut tr, t0);
        st.on_player_end(&tr, t0 + ms(1900), ms(5000), "play");
        assert_eq!(st.counters.stalls, 0);
    }

    #[test]
    fn players_that_never_played_are_errors_after_the_grace_period() {
        let t0 = Instant::now();
        let mut st = Stats::new(ms(1000));
        let tr = PlayerTrack::new(t0);
        st.on_player_end(&tr, t0 + ms(10), ms(5000), "play");
        assert_eq!(st.counters.errors, 0);
        assert_eq!(st.counters.players_starting_at_end, 1);
        st.on_player_end(&tr, t0 + ms(6000), ms(5000), "play");
        st.on_player_end(&tr, t0 + ms(6000), ms(5000), "play");
        assert_eq!(st.counters.errors, 2);
        assert_eq!(
            st.error_kinds,
            vec![(
                "player never reached NetStream.Play.Start (stuck in play)".into(),
                2
            )]
        );
    }

    #[test]
    fn negative_hls_latencies_are_clamped_and_counted() {
        let mut st = Stats::new(ms(1000));
        st.on_hls_part_ready(-45_000);
        st.on_hls_part_ready(2_000);
        st.on_hls_part_ready(-3_000); // within the pacing jitter: floored, not counted
        st.on_hls_playable(HlsFetch::Part, 300_000);
        st.on_hls_playable(HlsFetch::Segment, -40_000);
        assert_eq!(st.counters.hls_negative_latencies, 2);
        assert_eq!(st.hls_part_ready_us.len(), 3);
        assert_eq!(st.hls_part_ready_us.min(), 1);
        assert!(st.hls_part_playable_us.max() >= 299_000);
        assert_eq!(st.hls_segment_playable_us.len(), 1);
        st.on_hls_response(HlsFetch::Part, ms(3), 10);
        assert_eq!((st.counters.hls_parts, st.counters.hls_bytes), (1, 10));
        st.reset_window_latencies();
        assert!(st.hls_part_ready_us.is_empty() && st.hls_part_playable_us.is_empty());
        assert!(
            st.hls_part_us.is_empty(),
            "request latency is per window too"
        );
        assert_eq!(st.counters.hls_parts, 1, "counters cover the whole run");
    }

    #[test]
    fn joins_are_the_players_the_churn_opened() {
        let t0 = Instant::now();
        let mut st = Stats::new(ms(1000));
        let mut ramp = PlayerTrack::new(t0);
        // A reconnect (or the ramp's last player) opened as late as a join: not a join.
        let mut late = PlayerTrack::new(t0 + ms(100));
        let mut join = PlayerTrack::join(t0 + ms(100));
        st.on_playing(&mut ramp, t0 + ms(150));
        st.on_video_frame(&mut ramp, t0 + ms(160), true, None);
        st.on_playing(&mut late, t0 + ms(110));
        st.on_playing(&mut join, t0 + ms(103));
        st.on_video_frame(&mut join, t0 + ms(104), true, None);
        assert_eq!(
            st.connect_to_play_us.len(),
            3,
            "the whole run: ramp and joins"
        );
        assert_eq!(st.first_frame_us.len(), 2);
        assert_eq!(
            st.join_connect_to_play_us.len(),
            1,
            "only the churn's player"
        );
        assert_eq!(st.join_first_frame_us.len(), 1);
        assert!(st.join_first_frame_us.max() <= 4_100, "the join's own 4 ms");
        assert!(
            st.first_frame_us.max() >= 159_000,
            "the ramp player's 160 ms"
        );
    }

    #[test]
    fn error_kinds_are_capped() {
        let mut st = Stats::new(ms(1000));
        for i in 0..100 {
            st.error(format!("e{i}"));
        }
        assert_eq!(st.counters.errors, 100);
        assert_eq!(st.error_kinds.len(), MAX_ERROR_KINDS);
    }
}
