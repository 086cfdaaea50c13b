//! A dynamic DASH MPD (ISO/IEC 23009-1, isoff-live profile) over fMP4 segmenters: one
//! AdaptationSet per segmenter, SegmentTemplate with `$Number$` and a SegmentTimeline in
//! milliseconds, so variable GOPs need no fixed @duration.
//!
//! dash.js does not play multiplexed representations, so run one [`Tracks::VideoOnly`] and one
//! [`Tracks::AudioOnly`] segmenter for DASH; a [`Tracks::All`] segmenter becomes one muxed
//! AdaptationSet (fine for ffmpeg and Shaka, not for dash.js).

use std::fmt::Write;

use super::hls::{iso8601, Resource};
use super::segmenter::{Container, Segmenter, Tracks};

/// One AdaptationSet: a segmenter and the path prefix its resources are served under
/// (e.g. `"video/"`), relative to the MPD.
#[derive(Debug, Clone, Copy)]
pub struct DashTrack<'a> {
    /// An fMP4 segmenter.
    pub segmenter: &'a Segmenter,
    /// Prefix of its init and segment URLs.
    pub prefix: &'a str,
}

/// Renders the MPD at wall-clock `now_ms` (Unix ms). Dynamic while live; static (with
/// mediaPresentationDuration) once every segmenter is [`Segmenter::finish`]ed.
pub fn mpd(tracks: &[DashTrack<'_>], now_ms: u64) -> String {
    let target_ms = tracks
        .iter()
        .map(|t| t.segmenter.target_ms())
        .max()
        .unwrap_or(2000);
    let finished = !tracks.is_empty() && tracks.iter().all(|t| t.segmenter.is_finished());
    let origin = tracks
        .iter()
        .filter_map(|t| t.segmenter.wall_clock_origin_ms())
        .min()
        .unwrap_or(now_ms as i64)
        .max(0) as u64;
    let window_ms = tracks
        .iter()
        .map(|t| {
            t.segmenter
                .segments()
                .map(|s| u64::from(s.duration_ms))
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    let end_ms = tracks
        .iter()
        .filter_map(|t| {
            t.segmenter
                .segments()
                .last()
                .map(|s| s.start_ms + u64::from(s.duration_ms))
        })
        .max()
        .unwrap_or(0);
    let mut out = String::with_capacity(2048);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" ",
    );
    if finished {
        let _ = write!(
            out,
            "type=\"static\" mediaPresentationDuration=\"{}\" ",
            duration(end_ms)
        );
    } else {
        let _ = write!(
            out,
            "type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" \
             minimumUpdatePeriod=\"{}\" timeShiftBufferDepth=\"{}\" \
             suggestedPresentationDelay=\"{}\" ",
            iso8601(origin),
            iso8601(now_ms),
            duration(u64::from(target_ms)),
            duration(window_ms.max(u64::from(target_ms))),
            duration(3 * u64::from(target_ms)),
        );
    }
    let _ = writeln!(out, "minBufferTime=\"{}\">", duration(u64::from(target_ms)));
    out.push_str("  <Period id=\"0\" start=\"PT0S\">\n");
    for (i, t) in tracks.iter().enumerate() {
        adaptation_set(&mut out, i, t);
    }
    out.push_str("  </Period>\n");
    if !finished {
        // The server's clock, so players need no external time server (dash.js otherwise
        // asks one on the internet and fails without it).
        let _ = writeln!(
            out,
            "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"{}\"/>",
            iso8601(now_ms)
        );
    }
    out.push_str("</MPD>\n");
    out
}

fn adaptation_set(out: &mut String, index: usize, t: &DashTrack<'_>) {
    let seg = t.segmenter;
    debug_assert_eq!(seg.config().container, Container::Fmp4);
    let video = seg
        .video_config()
        .filter(|_| seg.config().tracks != Tracks::AudioOnly);
    let audio = seg
        .audio_config()
        .filter(|_| seg.config().tracks != Tracks::VideoOnly);
    let codecs: Vec<&str> = video
        .map(|v| v.codec_string.as_str())
        .into_iter()
        .chain(audio.map(|a| a.codec_string.as_str()))
        .collect();
    let (content, mime) = if video.is_some() {
        ("video", "video/mp4")
    } else {
        ("audio", "audio/mp4")
    };
    let (bytes, ms) = seg.segments().fold((0u64, 0u64), |(b, d), s| {
        (b + s.data.len() as u64, d + u64::from(s.duration_ms))
    });
    let bandwidth = (bytes * 8000).checked_div(ms).unwrap_or(1_000_000);
    let _ = writeln!(
        out,
        "    <AdaptationSet id=\"{index}\" contentType=\"{content}\" mimeType=\"{mime}\" \
         segmentAlignment=\"true\" startWithSAP=\"1\">"
    );
    let _ = write!(
        out,
        "      <Representation id=\"{content}{index}\" codecs=\"{}\" bandwidth=\"{bandwidth}\"",
        codecs.join(",")
    );
    if let Some(v) = video.filter(|v| v.width > 0) {
        let _ = write!(out, " width=\"{}\" height=\"{}\"", v.width, v.height);
    }
    if let Some(a) = audio {
        let _ = write!(out, " audioSamplingRate=\"{}\"", a.sample_rate);
    }
    out.push_str(">\n");
    if let Some(a) = audio.filter(|_| video.is_none()) {
        let _ = writeln!(
            out,
            "        <AudioChannelConfiguration \
             schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"{}\"/>",
            a.channels
        );
    }
    let start = seg.segments().next().map_or(seg.next_msn(), |s| s.msn);
    let init = seg.current_init_id().unwrap_or(0);
    let _ = writeln!(
        out,
        "        <SegmentTemplate timescale=\"1000\" initialization=\"{p}{}\" \
         media=\"{p}seg-$Number$.m4s\" startNumber=\"{start}\">",
        Resource::Init(init).uri(Container::Fmp4),
        p = t.prefix,
    );
    out.push_str("          <SegmentTimeline>\n");
    let mut next_t = None;
    for s in seg.segments() {
        if next_t == Some(s.start_ms) {
            let _ = writeln!(out, "            <S d=\"{}\"/>", s.duration_ms);
        } else {
            let _ = writeln!(
                out,
                "            <S t=\"{}\" d=\"{}\"/>",
                s.start_ms, s.duration_ms
            );
        }
        next_t = Some(s.start_ms + u64::from(s.duration_ms));
    }
    out.push_str("          </SegmentTimeline>\n        </SegmentTemplate>\n");
    out.push_str("      </Representation>\n    </AdaptationSet>\n");
}

/// Milliseconds as an xs:duration (`PT2.000S`).
fn duration(ms: u64) -> String {
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}
