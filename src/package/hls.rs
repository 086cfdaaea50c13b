//! HLS media playlists (RFC 8216, with the LL-HLS tags of draft-pantos-hls-rfc8216bis) over a
//! [`Segmenter`], resource names, and the blocking-reload decision (§6.2.5.2).
//!
//! Names, relative to the playlist: `seg-{msn}.ts|m4s`, `part-{msn}.{index}.ts|m4s`,
//! `init-{id}.mp4`; [`Resource::parse`] maps a request path back to them.

use std::fmt::Write;

use super::segmenter::{Container, Segmenter};

/// A resource a playlist refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A whole segment: [`Segmenter::segment`].
    Segment(u64),
    /// A part: [`Segmenter::part`].
    Part(u64, usize),
    /// An init segment: [`Segmenter::init`].
    Init(u32),
}

impl Resource {
    /// Parses the last path component of a request (`seg-12.ts`, `part-12.3.m4s`,
    /// `init-0.mp4`).
    pub fn parse(name: &str) -> Option<Resource> {
        let name = name.rsplit('/').next()?;
        if let Some(id) = name
            .strip_prefix("init-")
            .and_then(|n| n.strip_suffix(".mp4"))
        {
            return id.parse().ok().map(Resource::Init);
        }
        let stem = name
            .strip_suffix(".ts")
            .or_else(|| name.strip_suffix(".m4s"))?;
        if let Some(msn) = stem.strip_prefix("seg-") {
            return msn.parse().ok().map(Resource::Segment);
        }
        let (msn, idx) = stem.strip_prefix("part-")?.split_once('.')?;
        Some(Resource::Part(msn.parse().ok()?, idx.parse().ok()?))
    }

    /// The relative URI of this resource in a playlist of `container` segments.
    pub fn uri(self, container: Container) -> String {
        let ext = match container {
            Container::Ts => "ts",
            Container::Fmp4 => "m4s",
        };
        match self {
            Resource::Segment(msn) => format!("seg-{msn}.{ext}"),
            Resource::Part(msn, i) => format!("part-{msn}.{i}.{ext}"),
            Resource::Init(id) => format!("init-{id}.mp4"),
        }
    }
}

/// EXT-X-TARGETDURATION: the longest segment rounded to the nearest second (RFC 8216
/// §4.3.3.1: each EXTINF, rounded to the nearest integer, must not exceed it), never below the
/// configured target. A ceiling would turn 2.04 s segments into a 3 s target and make players
/// reload every 1.5 s instead of every second.
pub fn target_duration_secs(seg: &Segmenter) -> u64 {
    let target = u64::from(seg.target_ms());
    ((target + 500) / 1000).max(1)
}

/// Renders the media playlist. With LL-HLS parts configured it carries EXT-X-SERVER-CONTROL,
/// EXT-X-PART-INF, the parts of the last three target durations and a preload hint. Every
/// URI is written behind `prefix` (e.g. `"{stream}/"` for a playlist served as
/// `/{app}/{stream}.m3u8`).
pub fn media_playlist(seg: &Segmenter, prefix: &str) -> String {
    let cfg = seg.config();
    let container = cfg.container;
    let target = target_duration_secs(seg);
    let mut out = String::with_capacity(256 + 160 * seg.segments().len());
    let version = if container == Container::Fmp4 || cfg.part_target_ms.is_some() {
        6
    } else {
        3
    };
    let first = seg.segments().next();
    let media_sequence = first.map_or(seg.next_msn().saturating_sub(1), |s| s.msn);
    let disc_seq = first.map_or(0, |s| s.discontinuity_sequence - u64::from(s.discontinuity));
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-TARGETDURATION:{target}\n"
    );
    if let Some(part_ms) = cfg.part_target_ms {
        let part = secs(part_ms);
        let _ = write!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={},HOLD-BACK={}\n\
             #EXT-X-PART-INF:PART-TARGET={part}\n",
            secs(part_ms * 3),
            target * 3
        );
    }
    let _ = write!(
        out,
        "#EXT-X-MEDIA-SEQUENCE:{media_sequence}\n#EXT-X-DISCONTINUITY-SEQUENCE:{disc_seq}\n"
    );
    // Parts are listed for segments ending within three target durations of the live edge.
    let total: u64 = seg.segments().map(|s| u64::from(s.duration_ms)).sum();
    let mut elapsed = 0u64;
    let mut last_init = None;
    let mut write_head = |out: &mut String, init: u32, disc: bool, pdt: u64| {
        if disc {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if container == Container::Fmp4 && last_init != Some(init) {
            let _ = writeln!(
                out,
                "#EXT-X-MAP:URI=\"{prefix}{}\"",
                Resource::Init(init).uri(container)
            );
            last_init = Some(init);
        }
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(pdt));
    };
    for s in seg.segments() {
        elapsed += u64::from(s.duration_ms);
        write_head(&mut out, s.init_id, s.discontinuity, s.program_date_time_ms);
        if cfg.part_target_ms.is_some() && total - elapsed < 3 * target * 1000 {
            for (i, p) in s.parts.iter().enumerate() {
                write_part(
                    &mut out,
                    prefix,
                    container,
                    s.msn,
                    i,
                    p.duration_ms,
                    p.independent,
                );
            }
        }
        let _ = write!(
            out,
            "#EXTINF:{},\n{prefix}{}\n",
            secs(s.duration_ms),
            Resource::Segment(s.msn).uri(container)
        );
    }
    if seg.is_finished() {
        out.push_str("#EXT-X-ENDLIST\n");
        return out;
    }
    if let (Some(_), Some((msn, parts)), Some((init, disc, pdt))) =
        (cfg.part_target_ms, seg.open_segment(), seg.open_info())
    {
        if !parts.is_empty() {
            write_head(&mut out, init, disc, pdt);
        }
        for (i, p) in parts.iter().enumerate() {
            write_part(
                &mut out,
                prefix,
                container,
                msn,
                i,
                p.duration_ms,
                p.independent,
            );
        }
        let _ = writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{prefix}{}\"",
            Resource::Part(msn, parts.len()).uri(container)
        );
    }
    out
}

fn write_part(
    out: &mut String,
    prefix: &str,
    c: Container,
    msn: u64,
    i: usize,
    ms: u32,
    independent: bool,
) {
    let _ = writeln!(
        out,
        "#EXT-X-PART:DURATION={},URI=\"{prefix}{}\"{}",
        secs(ms),
        Resource::Part(msn, i).uri(c),
        if independent { ",INDEPENDENT=YES" } else { "" }
    );
}

/// Milliseconds as decimal seconds with three decimals.
fn secs(ms: u32) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Unix milliseconds as `YYYY-MM-DDThh:mm:ss.sssZ`.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// What to do with a blocking playlist request `_HLS_msn=M[&_HLS_part=P]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockingAnswer {
    /// The playlist already holds the requested segment or part: answer now.
    Ready,
    /// Hold the request; ask again after the next [`super::Progress`] with parts or segments.
    Wait,
    /// Too far in the future (beyond msn + 2 or the Advance Part Limit): answer 400 now.
    BadRequest,
}

/// Decides a blocking reload per draft-pantos-hls-rfc8216bis §6.2.5.2: ready once the
/// playlist contains segment `msn` (or, with `part`, that part of it; a part index past the
/// last part of a completed segment means part 0 of the next one); Bad Request when `msn` is
/// more than two past the last segment or `part` more than the Advance Part Limit (3 parts,
/// or 3 / PART-TARGET when the part target is under a second) past the last part.
pub fn blocking_reload(seg: &Segmenter, msn: u64, part: Option<u64>) -> BlockingAnswer {
    if seg.is_finished() {
        return BlockingAnswer::Ready;
    }
    let last_complete = seg.segments().last().map(|s| s.msn);
    if msn > last_complete.map_or(1, |m| m + 2) {
        return BlockingAnswer::BadRequest;
    }
    let Some(p) = part else {
        return if last_complete.is_some_and(|m| msn <= m) {
            BlockingAnswer::Ready
        } else {
            BlockingAnswer::Wait
        };
    };
    if let Some(s) = seg.segment(msn) {
        if (p as usize) < s.parts.len() {
            return BlockingAnswer::Ready;
        }
        return blocking_reload(seg, msn + 1, Some(0));
    }
    if seg.segments().next().is_some_and(|s| msn < s.msn) {
        return BlockingAnswer::Ready; // already slid out of the window
    }
    let Some((open_msn, parts)) = seg.open_segment() else {
        return BlockingAnswer::Wait;
    };
    if msn == open_msn && (p as usize) < parts.len() {
        return BlockingAnswer::Ready;
    }
    // Distance in parts from the last part in the playlist.
    let part_ms = u64::from(seg.config().part_target_ms.unwrap_or(1000).max(1));
    let per_segment = u64::from(seg.config().target_duration_ms)
        .div_ceil(part_ms)
        .max(1);
    // `p` comes from the client: saturate so an absurd part index is simply too far ahead.
    let have = open_msn * per_segment + parts.len() as u64;
    let want = (msn * per_segment).saturating_add(p).saturating_add(1);
    let limit = if part_ms < 1000 {
        3000u64.div_ceil(part_ms)
    } else {
        3
    };
    if want > have + limit {
        BlockingAnswer::BadRequest
    } else {
        BlockingAnswer::Wait
    }
}

/// Whether a segment, part or init segment can be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// In the window (or the open segment) now.
    Ready,
    /// The part the playlist's EXT-X-PRELOAD-HINT names: hold the request until it completes
    /// (draft-pantos-hls-rfc8216bis §4.4.5.3, §6.2.6); ask again after the next progress.
    Pending,
    /// Not there and not about to be: slid out of the window, never made, or too far ahead.
    Gone,
}

/// Decides a request for `resource`. Only the hinted part waits: every other missing
/// resource is gone, so a client cannot park requests on arbitrary future names.
pub fn availability(seg: &Segmenter, resource: Resource) -> Availability {
    let exists = match resource {
        Resource::Segment(msn) => seg.segment(msn).is_some(),
        Resource::Part(msn, i) => seg.part(msn, i).is_some(),
        Resource::Init(id) => seg.init(id).is_some(),
    };
    if exists {
        return Availability::Ready;
    }
    let hinted = match (resource, seg.open_segment()) {
        (Resource::Part(msn, i), Some((open, parts))) => msn == open && i == parts.len(),
        _ => false,
    };
    if hinted && !seg.is_finished() && seg.config().part_target_ms.is_some() {
        Availability::Pending
    } else {
        Availability::Gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_round_trip() {
        for r in [
            Resource::Segment(7),
            Resource::Part(7, 2),
            Resource::Init(1),
        ] {
            for c in [Container::Ts, Container::Fmp4] {
                assert_eq!(Resource::parse(&r.uri(c)), Some(r));
            }
        }
        assert_eq!(Resource::parse("/live/key/seg-x.ts"), None);
        assert_eq!(Resource::parse("part-1.ts"), None);
    }

    #[test]
    fn iso8601_formats_unix_milliseconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
