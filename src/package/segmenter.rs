//! The segmenter: frames in, a sliding window of segments (and LL-HLS parts) out.
//!
//! Timing model (see docs/PACKAGING.md): the output timeline is the FLV millisecond timeline,
//! extended past the u32 wrap and shifted after a discontinuity so it never goes backwards.
//! A sample is committed when the next sample of its track arrives (that fixes its duration).
//! The lead track (video when the stream has video, else audio) decides cuts: a segment ends
//! at the first lead keyframe at or after the target duration; a part ends at a lead frame
//! boundary before it would outgrow the part target. A segment that reaches its duration or
//! byte cap is cut anyway (see [`SegmentCap`]), so a stream without keyframes cannot grow one
//! without bound. Segment bytes are the concatenation of
//! their parts, built once; the parts are then re-sliced out of it, so nothing is held twice.
//!
//! Buffers: the muxers write the open segment into one output buffer, sized at the segment's
//! start from the previous segment, and the segment is split off it when it closes (no copy).
//! With LL-HLS parts, each completed part is also copied out while it is still in cache, so
//! readers can have it before its segment completes; the segment then replaces those copies
//! with slices of itself. Buffers of segments leaving the window and of replaced part copies
//! are reused instead of freed, so a warm segmenter allocates no media buffers and touches no
//! fresh memory (small per-segment bookkeeping vectors are still allocated).
//! [`Segmenter::finish`] frees them: a finished segmenter holds its window only.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::codec::{parse_frame, AudioConfig, Parsed, Sample, VideoConfig};
use super::fmp4::Fmp4Muxer;
use super::ts::TsMuxer;
use super::{Frame, PackageError};

/// Output container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// MPEG-TS segments (`.ts`), HLS only.
    Ts,
    /// CMAF fMP4 segments (`.m4s`) with an init segment (`.mp4`), HLS and DASH.
    Fmp4,
}

/// Which tracks of the stream a segmenter packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracks {
    /// Audio and video muxed in one rendition.
    All,
    /// Video only (a DASH video adaptation set).
    VideoOnly,
    /// Audio only (a DASH audio adaptation set), cut by duration.
    AudioOnly,
}

/// Segmenter settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Container of segments and parts.
    pub container: Container,
    /// Tracks to package.
    pub tracks: Tracks,
    /// Target segment duration; segments end at the first keyframe at or after it.
    pub target_duration_ms: u32,
    /// LL-HLS part target duration; `None` disables parts.
    pub part_target_ms: Option<u32>,
    /// Completed segments kept in the window.
    pub window: usize,
    /// Longest a segment may grow (ms) when no keyframe comes to end it: past it the segment
    /// is cut (see [`SegmentCap`]).
    pub segment_cap_ms: u32,
    /// Most media bytes (sample payloads) a segment may hold before it is cut the same way.
    pub segment_cap_bytes: usize,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            container: Container::Ts,
            tracks: Tracks::All,
            target_duration_ms: 2000,
            part_target_ms: None,
            window: 6,
            segment_cap_ms: 20_000,
            segment_cap_bytes: 64 * 1024 * 1024,
        }
    }
}

/// One LL-HLS partial segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Duration in milliseconds.
    pub duration_ms: u32,
    /// Starts with a keyframe (or is audio only).
    pub independent: bool,
    /// The part's bytes (a slice of its segment's once the segment completes).
    pub data: Bytes,
}

/// One completed media segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Media sequence number.
    pub msn: u64,
    /// Start on the output timeline, milliseconds.
    pub start_ms: u64,
    /// Duration in milliseconds.
    pub duration_ms: u32,
    /// Preceded by a discontinuity (republish, codec change).
    pub discontinuity: bool,
    /// Discontinuity sequence number of this segment.
    pub discontinuity_sequence: u64,
    /// Wall-clock time of the segment's first sample, Unix milliseconds.
    pub program_date_time_ms: u64,
    /// Id of the init segment it needs (fMP4).
    pub init_id: u32,
    /// Parts (one part = the whole segment when parts are disabled).
    pub parts: Vec<Part>,
    /// The whole segment.
    pub data: Bytes,
}

/// What one call changed, so the HTTP layer knows when to answer held requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct Progress {
    /// Parts completed.
    pub parts: u32,
    /// Segments completed.
    pub segments: u32,
    /// A segment reached a cap and was cut early: worth a warning (once per cut).
    pub capped: Option<SegmentCap>,
}

/// A segment that reached [`SegmenterConfig::segment_cap_ms`] or
/// [`SegmenterConfig::segment_cap_bytes`] (a stream without keyframes, or a hostile one).
///
/// Where the frame that crossed the cap is a safe place to start a segment (a lead keyframe,
/// or any frame of an audio-only rendition), the segment is cut there. Otherwise the segment
/// is closed where it stands and the lead track's frames are dropped until its next keyframe,
/// which opens the next segment with a discontinuity (the media in between is missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCap {
    /// Which cap was reached.
    pub reason: CapReason,
    /// The segment's duration when it was cut (ms).
    pub segment_ms: u64,
    /// The media bytes it held.
    pub segment_bytes: usize,
    /// True when frames are dropped until the next keyframe; false when cut at a keyframe.
    pub dropping: bool,
}

/// Which segment cap was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapReason {
    /// [`SegmenterConfig::segment_cap_ms`], with its value.
    Duration { cap_ms: u32 },
    /// [`SegmenterConfig::segment_cap_bytes`], with its value.
    Bytes { cap_bytes: usize },
}

/// The segment being built.
#[derive(Debug)]
struct OpenSegment {
    msn: u64,
    start_ms: u64,
    discontinuity: bool,
    discontinuity_sequence: u64,
    program_date_time_ms: u64,
    init_id: u32,
    parts: Vec<Part>,
    /// Where each part ends in the output buffer.
    part_ends: Vec<usize>,
    part_start_ms: u64,
    part_video: Vec<Sample>,
    part_audio: Vec<Sample>,
    /// Media bytes committed to the segment so far (sample payloads).
    bytes: usize,
}

#[derive(Debug)]
enum Muxer {
    Ts(TsMuxer),
    Fmp4(Fmp4Muxer),
}

/// Largest backward step of the input taken as interleaving rather than a jump (ms).
const MAX_BACKWARD_MS: i64 = 1000;
/// Largest forward step of the input taken as continuous rather than a jump (ms).
const MAX_FORWARD_MS: i64 = 10_000;

/// Extends u32 millisecond timestamps past the wrap and shifts them after discontinuities.
#[derive(Debug, Default)]
struct Timeline {
    /// The last input extended to 64 bits. It may be negative (after a jump back past the
    /// start); clamping it would lose its low 32 bits and every later distance with them.
    last_in: Option<i64>,
    /// The last forward step of the input (ms): an unsignalled jump lands this far after the
    /// latest output, so the frame before it keeps a duration.
    last_step: i64,
    offset: i64,
    end_out: u64,
    reset: bool,
}

impl Timeline {
    fn map(&mut self, ts: u32) -> u64 {
        let ext = match self.last_in {
            None => i64::from(ts),
            // The signed 32-bit distance from the previous timestamp handles the wrap.
            Some(last) => last + i64::from(ts.wrapping_sub(last as u32) as i32),
        };
        // A jump back by more than a second or forward by more than ten is a discontinuity the
        // caller did not signal: output time continues where it stopped. (A jump of exactly
        // 2^31 ms has a distance of -2^31: backwards.)
        let step = self.last_in.map_or(0, |last| ext - last);
        if self.reset {
            // Signalled: `end_out` already includes the duration of the last sample.
            self.offset = self.end_out as i64 - ext;
        } else if !(-MAX_BACKWARD_MS..=MAX_FORWARD_MS).contains(&step) {
            self.offset = self.end_out as i64 + self.last_step - ext;
        }
        if (1..=MAX_FORWARD_MS).contains(&step) {
            self.last_step = step;
        }
        self.reset = false;
        self.last_in = Some(ext);
        (ext + self.offset).max(0) as u64
    }
}

/// Per-stream segmenter. See the module doc for the timing model and [`super`] for the call
/// order.
#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    video: Option<VideoConfig>,
    audio: Option<AudioConfig>,
    timeline: Timeline,
    pending_video: Option<Sample>,
    pending_audio: Option<Sample>,
    last_video_delta: u32,
    last_audio_delta: u32,
    preroll_audio: Vec<Sample>,
    open: Option<OpenSegment>,
    segments: VecDeque<Segment>,
    next_msn: u64,
    discontinuity_sequence: u64,
    discontinuity_pending: bool,
    config_changed: bool,
    inits: VecDeque<(u32, Bytes)>,
    next_init_id: u32,
    muxer: Muxer,
    pdt_base: Option<i64>,
    max_segment_ms: u32,
    finished: bool,
    /// Where the muxers write the open segment.
    out: BytesMut,
    /// Allocations of segments that left the window, kept for reuse (at most [`SPARE_BUFFERS`]).
    spare: Vec<BytesMut>,
    /// Allocations of replaced part copies, kept for reuse (at most [`SPARE_PARTS`]).
    spare_parts: Vec<BytesMut>,
    /// Length of the last completed segment, to size the next one's buffer.
    last_segment_len: usize,
}

/// Recycled segment buffers kept per segmenter: one leaves the window as the next opens.
const SPARE_BUFFERS: usize = 1;
/// Recycled part buffers kept per segmenter (a segment's worth of parts at 500 ms).
const SPARE_PARTS: usize = 8;
/// Headroom over the previous segment's size when sizing the output buffer.
const SEGMENT_HEADROOM: usize = 16 * 1024;
/// Output buffer capacity for a segmenter's first segment (2 s at 4 Mbit/s).
const FIRST_SEGMENT_CAPACITY: usize = 1024 * 1024;

impl Segmenter {
    /// A segmenter with nothing buffered.
    pub fn new(config: SegmenterConfig) -> Self {
        let muxer = match config.container {
            Container::Ts => Muxer::Ts(TsMuxer::new()),
            Container::Fmp4 => Muxer::Fmp4(Fmp4Muxer::new()),
        };
        Segmenter {
            video: None,
            audio: None,
            timeline: Timeline::default(),
            pending_video: None,
            pending_audio: None,
            last_video_delta: 0,
            last_audio_delta: 0,
            preroll_audio: Vec::new(),
            open: None,
            segments: VecDeque::with_capacity(config.window + 1),
            next_msn: 0,
            discontinuity_sequence: 0,
            discontinuity_pending: false,
            config_changed: false,
            inits: VecDeque::new(),
            next_init_id: 0,
            muxer,
            pdt_base: None,
            max_segment_ms: 0,
            finished: false,
            out: BytesMut::new(),
            spare: Vec::new(),
            spare_parts: Vec::new(),
            last_segment_len: 0,
            config,
        }
    }

    /// The settings it was built with.
    pub fn config(&self) -> &SegmenterConfig {
        &self.config
    }

    /// Feeds one frame with the wall clock (Unix ms) at which it was received. Sequence
    /// headers configure the tracks; coded frames are buffered and cut into parts and
    /// segments. An error drops only that frame.
    pub fn push(&mut self, frame: &Frame, wall_clock_ms: u64) -> Result<Progress, PackageError> {
        let mut progress = Progress::default();
        self.finished = false;
        match parse_frame(frame)? {
            Parsed::Ignored => {}
            Parsed::VideoConfig(cfg) => {
                if self.video.as_ref().is_some_and(|v| v.record != cfg.record) {
                    self.config_changed = true;
                }
                if self.wants_video() {
                    if self.video.is_none() && self.open.is_some() {
                        self.config_changed = true;
                    }
                    self.video = Some(cfg);
                }
            }
            Parsed::AudioConfig(cfg) => {
                if self
                    .audio
                    .as_ref()
                    .is_some_and(|a| a.specific_config != cfg.specific_config)
                {
                    self.config_changed = true;
                }
                if self.wants_audio() {
                    if self.audio.is_none() && self.open.is_some() {
                        self.config_changed = true;
                    }
                    self.audio = Some(cfg);
                }
            }
            Parsed::Video {
                timestamp,
                cts,
                keyframe,
                data,
            } => {
                if self.video.is_none() || !self.wants_video() {
                    return Ok(progress);
                }
                let dts = self.map_time(timestamp, wall_clock_ms);
                let sample = Sample {
                    dts,
                    cts,
                    duration: 0,
                    keyframe,
                    data,
                };
                if let Some(mut prev) = self.pending_video.take() {
                    prev.duration = dts.saturating_sub(prev.dts) as u32;
                    self.last_video_delta = prev.duration;
                    self.commit_video(prev);
                }
                self.enforce_caps(dts, keyframe, &mut progress);
                self.lead_arrives(dts, keyframe, self.last_video_delta, &mut progress);
                self.pending_video = Some(sample);
            }
            Parsed::Audio { timestamp, data } => {
                if self.audio.is_none() || !self.wants_audio() {
                    return Ok(progress);
                }
                let dts = self.map_time(timestamp, wall_clock_ms);
                let sample = Sample {
                    dts,
                    cts: 0,
                    duration: 0,
                    keyframe: true,
                    data,
                };
                if let Some(mut prev) = self.pending_audio.take() {
                    prev.duration = dts.saturating_sub(prev.dts) as u32;
                    self.last_audio_delta = prev.duration;
                    self.commit_audio(prev);
                }
                // Audio frames are safe cut points only when audio leads.
                self.enforce_caps(dts, !self.video_leads(), &mut progress);
                if !self.video_leads() {
                    self.lead_arrives(dts, true, self.last_audio_delta, &mut progress);
                }
                self.pending_audio = Some(sample);
            }
        }
        Ok(progress)
    }

    /// Marks a discontinuity (the publisher changed): the open segment is closed now, the next
    /// one carries EXT-X-DISCONTINUITY, and the output timeline continues where it stopped.
    pub fn discontinuity(&mut self) -> Progress {
        let progress = self.flush();
        self.discontinuity_pending = true;
        self.timeline.reset = true;
        self.pdt_base = None;
        progress
    }

    /// Closes the open segment with what is buffered (end of stream). The last sample of each
    /// track gets the duration of the one before it.
    pub fn flush(&mut self) -> Progress {
        let mut progress = Progress::default();
        let video_leads = self.video_leads();
        let mut end = self.open.as_ref().map_or(0, |o| o.part_start_ms);
        if let Some(mut s) = self.pending_video.take() {
            s.duration = self.last_video_delta;
            if video_leads {
                end = end.max(s.dts + u64::from(s.duration));
            }
            self.commit_video(s);
        }
        if let Some(mut s) = self.pending_audio.take() {
            s.duration = self.last_audio_delta;
            if !video_leads {
                end = end.max(s.dts + u64::from(s.duration));
            }
            self.commit_audio(s);
        }
        self.preroll_audio.clear();
        if self.open.is_some() {
            self.close_segment(end, &mut progress);
        }
        self.timeline.end_out = self.timeline.end_out.max(end);
        progress
    }

    /// Ends the stream: flushes, and playlists get EXT-X-ENDLIST (a DASH MPD turns static)
    /// until the next frame arrives. The buffers kept for the next segments are freed: only
    /// the window (and the init segments it needs) stays.
    pub fn finish(&mut self) -> Progress {
        let progress = self.flush();
        self.finished = true;
        self.out = BytesMut::new();
        self.spare = Vec::new();
        self.spare_parts = Vec::new();
        self.preroll_audio = Vec::new();
        progress
    }

    /// True after [`Segmenter::finish`] until the next frame.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Completed segments in the window, oldest first.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &Segment> + '_ {
        self.segments.iter()
    }

    /// A completed segment by media sequence number, while it is in the window.
    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        self.segments
            .get(usize::try_from(msn.checked_sub(first)?).ok()?)
    }

    /// A part by media sequence number and index, from the window or the open segment.
    pub fn part(&self, msn: u64, index: usize) -> Option<&Part> {
        match &self.open {
            Some(open) if open.msn == msn => open.parts.get(index),
            _ => self.segment(msn)?.parts.get(index),
        }
    }

    /// An init segment by id (fMP4), while a segment in the window or the open one needs it.
    pub fn init(&self, id: u32) -> Option<&Bytes> {
        self.inits.iter().find(|(i, _)| *i == id).map(|(_, b)| b)
    }

    /// Id of the newest init segment (fMP4), if one was built.
    pub fn current_init_id(&self) -> Option<u32> {
        self.inits.back().map(|(i, _)| *i)
    }

    /// The segment being built: its msn and its completed parts.
    pub fn open_segment(&self) -> Option<(u64, &[Part])> {
        self.open.as_ref().map(|o| (o.msn, o.parts.as_slice()))
    }

    /// The open segment's init id, discontinuity flag and program date time.
    pub(crate) fn open_info(&self) -> Option<(u32, bool, u64)> {
        self.open
            .as_ref()
            .map(|o| (o.init_id, o.discontinuity, o.program_date_time_ms))
    }

    /// Media bytes (sample payloads) in the open segment so far; 0 when none is open.
    pub fn open_segment_bytes(&self) -> usize {
        self.open.as_ref().map_or(0, |o| o.bytes)
    }

    /// Buffer capacity held beyond the window's segments: the output buffer's free room and
    /// the allocations kept for reuse.
    pub fn spare_capacity(&self) -> usize {
        let spare = self.spare.iter().chain(&self.spare_parts);
        self.out.capacity() + spare.map(BytesMut::capacity).sum::<usize>()
    }

    /// Media sequence number the next segment to open will get.
    pub fn next_msn(&self) -> u64 {
        self.next_msn
    }

    /// The longest segment ever completed, milliseconds.
    pub fn max_segment_ms(&self) -> u32 {
        self.max_segment_ms
    }

    /// The target segment duration players are told, ms: the configured target, or the
    /// longest segment when a late keyframe made one longer (HLS EXT-X-TARGETDURATION, DASH
    /// maxSegmentDuration).
    pub fn target_ms(&self) -> u32 {
        self.config.target_duration_ms.max(self.max_segment_ms)
    }

    /// Codec configuration of the video track, once known.
    pub fn video_config(&self) -> Option<&VideoConfig> {
        self.video.as_ref()
    }

    /// Codec configuration of the audio track, once known.
    pub fn audio_config(&self) -> Option<&AudioConfig> {
        self.audio.as_ref()
    }

    /// Wall-clock Unix ms of output time 0 of the current timeline (DASH availabilityStartTime).
    pub fn wall_clock_origin_ms(&self) -> Option<i64> {
        self.pdt_base
    }

    fn wants_video(&self) -> bool {
        self.config.tracks != Tracks::AudioOnly
    }

    fn wants_audio(&self) -> bool {
        self.config.tracks != Tracks::VideoOnly
    }

    fn video_leads(&self) -> bool {
        self.video.is_some() && self.wants_video()
    }

    fn map_time(&mut self, ts: u32, wall_clock_ms: u64) -> u64 {
        let dts = self.timeline.map(ts);
        self.timeline.end_out = self.timeline.end_out.max(dts);
        if self.pdt_base.is_none() {
            self.pdt_base = Some(wall_clock_ms as i64 - dts as i64);
        }
        dts
    }

    fn commit_video(&mut self, s: Sample) {
        if let Some(open) = &mut self.open {
            open.bytes += s.data.len();
            open.part_video.push(s);
        }
        // Video before the first keyframe cannot be decoded: dropped.
    }

    fn commit_audio(&mut self, s: Sample) {
        match &mut self.open {
            Some(open) => {
                open.bytes += s.data.len();
                open.part_audio.push(s);
            }
            None => {
                // Audio ahead of the first keyframe joins the first segment (bounded).
                if self.preroll_audio.len() >= 256 {
                    self.preroll_audio.remove(0);
                }
                self.preroll_audio.push(s);
            }
        }
    }

    /// A sample arrives at `t` (not yet committed; `safe_cut`: a segment may start with it):
    /// cuts the open segment if it reached a cap, so it never grows without bound.
    fn enforce_caps(&mut self, t: u64, safe_cut: bool, progress: &mut Progress) {
        let Some(open) = &self.open else { return };
        let segment_ms = t.saturating_sub(open.start_ms);
        if safe_cut && segment_ms >= u64::from(self.config.target_duration_ms) {
            return; // the ordinary cut at the target ends it here
        }
        let reason = if segment_ms >= u64::from(self.config.segment_cap_ms) {
            CapReason::Duration {
                cap_ms: self.config.segment_cap_ms,
            }
        } else if open.bytes >= self.config.segment_cap_bytes {
            CapReason::Bytes {
                cap_bytes: self.config.segment_cap_bytes,
            }
        } else {
            return;
        };
        progress.capped = Some(SegmentCap {
            reason,
            segment_ms,
            segment_bytes: open.bytes,
            dropping: !safe_cut,
        });
        self.close_segment(t, progress);
        if safe_cut {
            self.open_segment_at(t);
        } else {
            // With no segment open, lead frames are dropped until a keyframe opens the next.
            self.discontinuity_pending = true;
        }
    }

    /// A lead-track sample arrives at `t` (not yet committed): cut parts and segments.
    fn lead_arrives(&mut self, t: u64, keyframe: bool, last_delta: u32, progress: &mut Progress) {
        let target = u64::from(self.config.target_duration_ms);
        let Some(open) = &self.open else {
            if keyframe {
                self.open_segment_at(t);
            }
            return;
        };
        let force = self.discontinuity_pending || self.config_changed;
        if keyframe && (t.saturating_sub(open.start_ms) >= target || force) {
            self.close_segment(t, progress);
            self.open_segment_at(t);
            return;
        }
        if let Some(part_target) = self.config.part_target_ms {
            let elapsed = t.saturating_sub(open.part_start_ms);
            let has_samples = !open.part_video.is_empty() || !open.part_audio.is_empty();
            if has_samples && elapsed + u64::from(last_delta) > u64::from(part_target) {
                self.close_part(t, progress);
            }
        }
    }

    fn open_segment_at(&mut self, t: u64) {
        let need_init = self.config.container == Container::Fmp4
            && (self.inits.is_empty() || self.config_changed);
        if need_init {
            let id = self.next_init_id;
            self.next_init_id += 1;
            let data = Fmp4Muxer::init_segment(self.video.as_ref(), self.audio.as_ref());
            self.inits.push_back((id, data));
        }
        let discontinuity =
            self.discontinuity_pending || (self.config_changed && self.next_msn > 0);
        if discontinuity {
            self.discontinuity_sequence += 1;
        }
        self.discontinuity_pending = false;
        self.config_changed = false;
        let pdt = (self.pdt_base.unwrap_or(0) + t as i64).max(0) as u64;
        self.size_output();
        let mut part_audio = std::mem::take(&mut self.preroll_audio);
        part_audio.retain(|s| s.dts + 1000 >= t);
        let bytes = part_audio.iter().map(|s| s.data.len()).sum();
        self.open = Some(OpenSegment {
            msn: self.next_msn,
            start_ms: t,
            discontinuity,
            discontinuity_sequence: self.discontinuity_sequence,
            program_date_time_ms: pdt,
            init_id: self.current_init_id().unwrap_or(0),
            parts: Vec::new(),
            part_ends: Vec::new(),
            part_start_ms: t,
            part_video: Vec::new(),
            part_audio,
            bytes,
        });
        self.next_msn += 1;
    }

    /// Makes room in the output buffer for a segment like the last one (call as a segment
    /// opens): in the current allocation when nothing else uses it any more, else in the
    /// spare buffer of a segment that left the window, else in a new one.
    fn size_output(&mut self) {
        let need = match self.last_segment_len {
            // Untouched capacity costs address space, not memory: a generous first guess
            // saves growing (and copying) the first segment step by step.
            0 => FIRST_SEGMENT_CAPACITY,
            last => last + last / 8 + SEGMENT_HEADROOM,
        };
        debug_assert!(self.out.is_empty(), "the last segment was split off");
        if self.out.try_reclaim(need) {
            return;
        }
        self.out = take_spare(&mut self.spare, need, need);
    }

    /// Keeps the allocation of a segment leaving the window, unless a reader still holds it.
    fn recycle(&mut self, segment: Segment) {
        let Segment { data, parts, .. } = segment;
        drop(parts);
        if self.spare.len() >= SPARE_BUFFERS {
            return;
        }
        if let Ok(mut buf) = data.try_into_mut() {
            buf.clear();
            // Back to the start of the allocation (the data may have been a slice of it).
            let capacity = buf.capacity();
            let _ = buf.try_reclaim(capacity + 1);
            self.spare.push(buf);
        }
    }

    fn close_part(&mut self, t: u64, progress: &mut Progress) {
        let Some(open) = &mut self.open else { return };
        if open.part_video.is_empty() && open.part_audio.is_empty() {
            return;
        }
        let independent = match open.part_video.first() {
            Some(v) => v.keyframe,
            None => !(self.video.is_some() && self.config.tracks != Tracks::AudioOnly),
        };
        let out = &mut self.out;
        let start = out.len();
        let video = if self.config.tracks == Tracks::AudioOnly {
            None
        } else {
            self.video.as_ref()
        };
        let audio = if self.config.tracks == Tracks::VideoOnly {
            None
        } else {
            self.audio.as_ref()
        };
        match &mut self.muxer {
            Muxer::Ts(m) => m.write_part(video, audio, &open.part_video, &open.part_audio, out),
            Muxer::Fmp4(m) => {
                m.write_fragment(video, audio, &open.part_video, &open.part_audio, out)
            }
        }
        open.part_video.clear();
        open.part_audio.clear();
        let duration_ms = t.saturating_sub(open.part_start_ms) as u32;
        let end = out.len();
        // Readers see parts only with LL-HLS; otherwise the segment's slice is set at close.
        let data = if self.config.part_target_ms.is_some() {
            let mut copy = take_spare(&mut self.spare_parts, end - start, (end - start) * 5 / 4);
            copy.extend_from_slice(&out[start..end]);
            copy.freeze()
        } else {
            Bytes::new()
        };
        open.part_ends.push(end);
        open.parts.push(Part {
            duration_ms,
            independent,
            data,
        });
        open.part_start_ms = t;
        progress.parts += 1;
    }

    fn close_segment(&mut self, t: u64, progress: &mut Progress) {
        self.close_part(t, progress);
        let Some(open) = self.open.take() else { return };
        if open.parts.is_empty() {
            // Nothing was written: the segment never existed, so its number and its
            // discontinuity go to the next one. The window's msns must stay consecutive:
            // `segment(msn)` indexes by them and players count them from the media sequence
            // (a gap served one segment under another's number; found by fuzz/package).
            debug_assert_eq!(open.msn + 1, self.next_msn, "one segment open at a time");
            self.next_msn = open.msn;
            if open.discontinuity {
                self.discontinuity_pending = true;
                self.discontinuity_sequence -= 1;
            }
            return;
        }
        let data = self.out.split().freeze();
        self.last_segment_len = data.len();
        let mut parts = open.parts;
        let mut offset = 0;
        for (part, &end) in parts.iter_mut().zip(&open.part_ends) {
            let copy = std::mem::replace(&mut part.data, data.slice(offset..end));
            offset = end;
            if self.spare_parts.len() < SPARE_PARTS {
                if let Ok(mut buf) = copy.try_into_mut() {
                    buf.clear();
                    self.spare_parts.push(buf);
                }
            }
        }
        debug_assert_eq!(offset, data.len(), "parts tile the segment");
        let duration_ms = t.saturating_sub(open.start_ms) as u32;
        self.max_segment_ms = self.max_segment_ms.max(duration_ms);
        self.segments.push_back(Segment {
            msn: open.msn,
            start_ms: open.start_ms,
            duration_ms,
            discontinuity: open.discontinuity,
            discontinuity_sequence: open.discontinuity_sequence,
            program_date_time_ms: open.program_date_time_ms,
            init_id: open.init_id,
            parts,
            data,
        });
        while self.segments.len() > self.config.window.max(1) {
            if let Some(old) = self.segments.pop_front() {
                self.recycle(old);
            }
        }
        let oldest = self.segments.front().map_or(0, |s| s.init_id);
        while self.inits.len() > 1 && self.inits.front().is_some_and(|(i, _)| *i < oldest) {
            self.inits.pop_front();
        }
        progress.segments += 1;
    }
}

/// An empty buffer with room for `need` bytes: a spare allocation that fits, else a new one of
/// `capacity` bytes.
fn take_spare(spare: &mut Vec<BytesMut>, need: usize, capacity: usize) -> BytesMut {
    match spare.iter().position(|b| b.capacity() >= need) {
        Some(i) => spare.swap_remove(i),
        None => BytesMut::with_capacity(capacity.max(need)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::FrameKind;

    /// An AVC sequence header with a minimal baseline SPS (16x16) and PPS.
    fn avc_header() -> Frame {
        let sps = [0x67, 0x42, 0x00, 0x0a, 0xf8, 0x41, 0xa2];
        let pps = [0x68, 0xce, 0x38, 0x80];
        let mut p = vec![
            0x17,
            0,
            0,
            0,
            0,
            1,
            0x42,
            0x00,
            0x0a,
            0xff,
            0xe1,
            0,
            sps.len() as u8,
        ];
        p.extend_from_slice(&sps);
        p.extend_from_slice(&[1, 0, pps.len() as u8]);
        p.extend_from_slice(&pps);
        Frame::new(FrameKind::Video, 0, Bytes::from(p))
    }

    fn video(ts: u32, key: bool) -> Frame {
        let nal = if key { 0x65 } else { 0x41 };
        let p = vec![
            if key { 0x17 } else { 0x27 },
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            2,
            nal,
            0x88,
        ];
        Frame::new(FrameKind::Video, ts, Bytes::from(p))
    }

    /// A video frame of `len` bytes of NAL unit.
    fn big_video(ts: u32, key: bool, len: usize) -> Frame {
        let mut p = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        p.extend_from_slice(&(len as u32).to_be_bytes());
        p.push(if key { 0x65 } else { 0x41 });
        p.resize(9 + len, 0x88);
        Frame::new(FrameKind::Video, ts, Bytes::from(p))
    }

    fn capped_segmenter(cap_ms: u32, cap_bytes: usize, part: Option<u32>) -> Segmenter {
        let mut s = Segmenter::new(SegmenterConfig {
            target_duration_ms: 1000,
            part_target_ms: part,
            segment_cap_ms: cap_ms,
            segment_cap_bytes: cap_bytes,
            ..Default::default()
        });
        let _ = s.push(&avc_header(), 0).unwrap();
        s
    }

    fn segmenter(part: Option<u32>) -> Segmenter {
        let mut s = Segmenter::new(SegmenterConfig {
            target_duration_ms: 1000,
            part_target_ms: part,
            ..Default::default()
        });
        let _ = s.push(&avc_header(), 0).unwrap();
        s
    }

    #[test]
    fn cuts_at_the_first_keyframe_at_or_after_the_target() {
        let mut s = segmenter(None);
        // 25 fps, keyframes every 600 ms: the 1000 ms target is reached at the 1200 ms key.
        for i in 0..100u32 {
            let _ = s.push(&video(i * 40, i % 15 == 0), 0).unwrap();
        }
        let starts: Vec<u64> = s.segments().map(|g| g.start_ms).collect();
        assert_eq!(starts, [0, 1200, 2400]);
        assert!(s.segments().all(|g| g.duration_ms == 1200));
        assert!(s
            .segments()
            .all(|g| g.parts.len() == 1 && g.parts[0].independent));
    }

    #[test]
    fn frames_before_the_first_keyframe_are_dropped() {
        let mut s = segmenter(None);
        for i in 0..10u32 {
            let _ = s.push(&video(i * 40, i == 5), 0).unwrap();
        }
        let _ = s.flush();
        assert_eq!(s.segments().next().map(|g| g.start_ms), Some(200));
    }

    #[test]
    fn parts_never_exceed_the_part_target_and_flag_keyframe_starts() {
        let mut s = segmenter(Some(300));
        for i in 0..200u32 {
            let _ = s.push(&video(i * 40, i % 25 == 0), 0).unwrap();
        }
        let _ = s.flush();
        for g in s.segments() {
            assert!(g.parts.iter().all(|p| p.duration_ms <= 300));
            assert_eq!(
                g.parts.iter().map(|p| p.duration_ms).sum::<u32>(),
                g.duration_ms
            );
            assert!(g.parts[0].independent);
            assert!(g.parts[1..].iter().all(|p| !p.independent));
        }
    }

    #[test]
    fn timestamps_continue_across_the_u32_wrap() {
        let mut t = Timeline::default();
        let a = t.map(u32::MAX - 39);
        let b = t.map(0);
        let c = t.map(40);
        assert_eq!((b - a, c - b), (40, 40));
    }

    #[test]
    fn segments_keep_coming_after_a_timestamp_jump_of_half_the_u32_range() {
        for jump in [1u32 << 31, (1 << 31) - 1, (1 << 31) + 1] {
            let mut s = segmenter(None);
            let mut ts = 0u32;
            // 8 s at 25 fps, a keyframe every second, the clock jumping at the fifth second.
            for i in 0..200u32 {
                if i == 100 {
                    ts = ts.wrapping_add(jump);
                }
                let _ = s.push(&video(ts, i % 25 == 0), 0).unwrap();
                ts = ts.wrapping_add(40);
            }
            assert_eq!(
                s.next_msn(),
                8,
                "a segment per keyframe after a jump of {jump}"
            );
            let mut end = s.segments().next().unwrap().start_ms;
            for g in s.segments() {
                assert_eq!(
                    g.start_ms, end,
                    "the output timeline has no gap (jump {jump})"
                );
                assert!((960..=1000).contains(&g.duration_ms), "{g:?}");
                end = g.start_ms + u64::from(g.duration_ms);
            }
        }
    }

    #[test]
    fn a_backwards_jump_continues_the_output_timeline() {
        let mut t = Timeline::default();
        t.map(5000);
        t.end_out = 5040;
        assert_eq!(t.map(0), 5040);
        assert_eq!(t.map(40), 5080);
    }

    #[test]
    fn a_segment_a_reader_still_holds_keeps_its_bytes_after_leaving_the_window() {
        for part in [None, Some(300)] {
            let mut s = Segmenter::new(SegmenterConfig {
                target_duration_ms: 1000,
                part_target_ms: part,
                window: 1,
                ..Default::default()
            });
            let _ = s.push(&avc_header(), 0).unwrap();
            let mut held = Vec::new();
            for i in 0..300u32 {
                let progress = s.push(&video(i * 40, i % 25 == 0), 0).unwrap();
                if progress.segments > 0 && i % 50 == 0 {
                    let seg = s.segments().last().unwrap();
                    let part = seg.parts.last().unwrap().data.clone();
                    held.push((
                        seg.data.clone(),
                        seg.data.to_vec(),
                        part.clone(),
                        part.to_vec(),
                    ));
                }
            }
            assert!(held.len() >= 3, "segments were held");
            for (data, copy, part, part_copy) in held {
                assert_eq!(data, copy, "a held segment is never reused");
                assert_eq!(part, part_copy, "a held part is never reused");
            }
        }
    }

    #[test]
    fn a_segment_without_keyframes_closes_at_the_duration_cap_and_resumes_at_a_keyframe() {
        for part in [None, Some(300)] {
            let mut s = capped_segmenter(4000, usize::MAX, part);
            let mut caps = Vec::new();
            // A keyframe, then 10 s of inter frames; keyframes again from 10 s on.
            for i in 0..300u32 {
                let key = i == 0 || (i >= 250 && i % 25 == 0);
                let p = s.push(&video(i * 40, key), 0).unwrap();
                caps.extend(p.capped);
                if (100..250).contains(&i) {
                    assert_eq!(
                        s.open_segment(),
                        None,
                        "inter frames past the cap are dropped"
                    );
                }
            }
            assert_eq!(
                caps,
                [SegmentCap {
                    reason: CapReason::Duration { cap_ms: 4000 },
                    segment_ms: 4000,
                    segment_bytes: 100 * 6, // frames 0..=99: NAL length + 2 bytes each
                    dropping: true,
                }],
                "one report for the whole run ({part:?})"
            );
            let segs: Vec<_> = s.segments().map(|g| (g.start_ms, g.duration_ms)).collect();
            assert_eq!(segs, [(0, 4000), (10_000, 1000)]);
            let resumed = s.segment(1).unwrap();
            assert!(resumed.discontinuity && resumed.parts[0].independent);
        }
    }

    #[test]
    fn a_segment_over_the_byte_cap_is_closed_and_memory_stays_bounded() {
        const CAP: usize = 256 * 1024;
        let mut s = capped_segmenter(u32::MAX, CAP, Some(300));
        let mut caps = 0;
        // 40 MB of inter frames after one keyframe, all at the same timestamp: no duration
        // ever passes, only bytes.
        for i in 0..4000u32 {
            let p = s.push(&big_video(0, i == 0, 10_000), 0).unwrap();
            caps += usize::from(p.capped.is_some());
            assert!(s.open_segment_bytes() <= CAP + 10_009);
        }
        assert_eq!(caps, 1, "one report for the whole run");
        let seg = s.segments().next().expect("the capped segment completed");
        assert!(seg.data.len() < 2 * CAP, "{} bytes", seg.data.len());
    }

    #[test]
    fn a_keyframe_past_the_byte_cap_cuts_before_the_target_without_dropping() {
        let mut s = capped_segmenter(u32::MAX, 64 * 1024, None);
        let mut caps = Vec::new();
        // 25 fps, a keyframe every 5 frames: a 62 kB keyframe and four 1 kB frames stay under
        // the cap, which the next keyframe finds reached.
        for i in 0..50u32 {
            let len = if i % 5 == 0 { 62_000 } else { 1_000 };
            let p = s.push(&big_video(i * 40, i % 5 == 0, len), 0).unwrap();
            caps.extend(p.capped);
        }
        assert!(caps
            .iter()
            .all(|c| !c.dropping && c.segment_bytes >= 64 * 1024));
        assert_eq!(
            s.next_msn(),
            10,
            "a segment per GOP, although the target is 1 s"
        );
        assert!(s
            .segments()
            .all(|g| g.duration_ms == 200 && !g.discontinuity));
    }

    #[test]
    fn finish_frees_the_buffers_kept_for_the_next_segments() {
        let mut s = segmenter(Some(300));
        for i in 0..300u32 {
            let _ = s.push(&big_video(i * 40, i % 25 == 0, 5_000), 0).unwrap();
        }
        assert!(
            s.spare_capacity() > 0,
            "a live segmenter keeps buffers for reuse"
        );
        let _ = s.finish();
        assert_eq!(s.spare_capacity(), 0);
        assert_eq!(s.segments().len(), 6, "the window stays for late viewers");
    }

    #[test]
    fn window_keeps_the_configured_number_of_segments() {
        let mut s = Segmenter::new(SegmenterConfig {
            target_duration_ms: 1000,
            window: 2,
            ..Default::default()
        });
        let _ = s.push(&avc_header(), 0).unwrap();
        for i in 0..200u32 {
            let _ = s.push(&video(i * 40, i % 25 == 0), 0).unwrap();
        }
        let msns: Vec<u64> = s.segments().map(|g| g.msn).collect();
        assert_eq!(msns, [5, 6]);
        assert!(s.segment(4).is_none() && s.segment(6).is_some());
    }

    /// A segment opened and closed before any sample was written (here a codec change forcing
    /// a cut, then frames that did not parse) used its msn up: the window read [0, 1, 2, 4],
    /// and `segment(3)` served segment 4. The input is fuzz/package's crash, minimized, replayed
    /// as that target reads it.
    #[test]
    fn a_segment_closed_with_nothing_in_it_does_not_use_up_its_msn() {
        let input = include_bytes!("testdata/fuzz_package_msn_gap.bin");
        let (&mode, mut rest) = input.split_first().unwrap();
        assert_eq!(mode, 3, "fMP4 with parts");
        let mut s = Segmenter::new(SegmenterConfig {
            container: Container::Fmp4,
            tracks: Tracks::All,
            target_duration_ms: 1000,
            part_target_ms: Some(200),
            window: 4,
            segment_cap_ms: 5000,
            segment_cap_bytes: 256 * 1024,
        });
        let mut ts = 0u32;
        let check = |s: &Segmenter| {
            let msns: Vec<u64> = s.segments().map(|g| g.msn).collect();
            assert!(msns.windows(2).all(|w| w[1] == w[0] + 1), "msns {msns:?}");
            for &m in &msns {
                assert_eq!(s.segment(m).map(|g| g.msn), Some(m));
            }
        };
        while rest.len() >= 5 {
            let kind = rest[0] % 5;
            ts = ts.wrapping_add(u32::from(u16::from_be_bytes([rest[1], rest[2]])));
            let len = usize::from(u16::from_be_bytes([rest[3], rest[4]])).min(rest.len() - 5);
            let payload = Bytes::copy_from_slice(&rest[5..5 + len]);
            rest = &rest[5 + len..];
            let wall = 1_700_000_000_000 + u64::from(ts);
            let _ = match kind {
                0 => s.push(&Frame::new(FrameKind::Audio, ts, payload), wall),
                1 => s.push(&Frame::new(FrameKind::Video, ts, payload), wall),
                2 => s.push(&Frame::new(FrameKind::Metadata, ts, payload), wall),
                3 => Ok(s.discontinuity()),
                _ => Ok(s.flush()),
            };
            check(&s);
        }
        let _ = s.finish();
        check(&s);
    }
}
