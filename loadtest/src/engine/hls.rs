//! HLS pollers: a viewer that GETs the media playlist, then new media once, on one keep-alive
//! connection. With `EXT-X-SERVER-CONTROL` (LL-HLS) the playlist is reloaded with a blocking
//! request (`_HLS_msn`/`_HLS_part`) for the part after the last one seen; otherwise the engine
//! reloads it after half a target duration. Sans-IO: the engine writes the requests and feeds
//! the bytes read, with the wall clock, to [`HlsPoller::parse`].
//!
//! Playlists with parts (`EXT-X-PART-INF` or `EXT-X-PART`) are followed part by part, with no
//! whole-segment download; others segment by segment. Each part's media start wall time is the
//! `EXT-X-PROGRAM-DATE-TIME` of its segment plus the durations of the segment's earlier parts,
//! which gives two measurements per part (see [`Response`]): how late the server listed it
//! beyond its own media ("part ready"), and when its bytes were playable ("publish to
//! playable"). A joining poller fetches the live edge unmeasured: it was not listed just now.
//!
//! ```text
//!   reload ──► playlist ──► new parts/segments queued ──► GET each in order ──► next():
//!     ▲                                                     LL-HLS: blocking reload now
//!     └──────────────────────────────────────────────────── plain: reload after target/2
//! ```

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};

pub(super) use crate::stats::HlsFetch as Fetch;

/// A response head longer than this is an error.
const MAX_HEAD: usize = 16 * 1024;
/// A response body larger than this is an error (segments are a few hundred KiB).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// One complete response.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Response {
    pub what: Fetch,
    /// Body bytes.
    pub bytes: usize,
    /// A playlist: for each part it lists for the first time, the answer's arrival minus the
    /// part's media end (start + duration), µs; negative when the PDT is ahead of our clock.
    pub parts_ready_us: Vec<i64>,
    /// A measured part or segment: its bytes' arrival minus its media start wall time, µs.
    pub playable_us: Option<i64>,
    /// New parts or segments whose start is unknown (no EXT-X-PROGRAM-DATE-TIME).
    pub without_pdt: u64,
    /// A 404 for the playlist before any playlist was read: the stream has no segment yet
    /// (nginx-rtmp writes its playlist when the first fragment closes). Not a playlist served;
    /// the poller asks again after half a target duration, as players do.
    pub not_ready: bool,
}

/// What to do after a response.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Send this request now.
    Request(Vec<u8>),
    /// Reload the playlist (call [`HlsPoller::reload`]) after this many milliseconds.
    ReloadAfterMs(u64),
}

/// A part or segment to fetch.
#[derive(Debug, PartialEq, Eq)]
struct Queued {
    what: Fetch,
    path: String,
    /// Media start wall time, Unix µs, when it is measured.
    start_us: Option<i64>,
}

/// One poller's state.
#[derive(Debug)]
pub(super) struct HlsPoller {
    host: String,
    playlist: String,
    /// The playlist's directory, with a trailing slash, for relative URIs.
    dir: String,
    /// What the request in flight fetches, and the media start of a measured one.
    in_flight: Option<(Fetch, Option<i64>)>,
    /// Head parsed: (body length).
    body_len: Option<usize>,
    /// Parts or segments still to fetch.
    queue: VecDeque<Queued>,
    /// Highest media sequence number of a segment queued (plain HLS).
    last_msn: Option<u64>,
    /// `(msn, index)` of the last part queued (LL-HLS).
    last_part: Option<(u64, usize)>,
    /// The next blocking reload's `_HLS_msn`/`_HLS_part`.
    blocking: Option<(u64, usize)>,
    target_ms: u64,
    /// Playlists that had `EXT-X-SERVER-CONTROL`.
    pub ll_hls: bool,
    /// A playlist was read: a 404 for it is an error from now on.
    seen_playlist: bool,
    /// The response being read is a 404 for a playlist not there yet.
    not_ready: bool,
}

impl HlsPoller {
    /// A poller of `playlist` (an absolute path such as `/live/x.m3u8`) on `host:port`.
    pub fn new(host: &str, port: u16, playlist: &str) -> Self {
        let host = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let dir = match playlist.rfind('/') {
            Some(i) => playlist[..=i].to_string(),
            None => "/".to_string(),
        };
        Self {
            host,
            playlist: playlist.to_string(),
            dir,
            in_flight: None,
            body_len: None,
            queue: VecDeque::new(),
            last_msn: None,
            last_part: None,
            blocking: None,
            target_ms: 2000,
            ll_hls: false,
            seen_playlist: false,
            not_ready: false,
        }
    }

    fn get(&mut self, what: Fetch, start_us: Option<i64>, path: &str) -> Vec<u8> {
        self.in_flight = Some((what, start_us));
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rtmp-load\r\nAccept: */*\r\n\r\n",
            self.host
        )
        .into_bytes()
    }

    /// The playlist request (the first one, or a timed reload).
    pub fn reload(&mut self) -> Vec<u8> {
        let path = match self.blocking.take() {
            Some((msn, part)) => format!("{}?_HLS_msn={msn}&_HLS_part={part}", self.playlist),
            None => self.playlist.clone(),
        };
        self.get(Fetch::Playlist, None, &path)
    }

    /// Whether a request is waiting for its response.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The next step once a response is complete.
    pub fn next(&mut self) -> Next {
        if let Some(q) = self.queue.pop_front() {
            return Next::Request(self.get(q.what, q.start_us, &q.path));
        }
        if self.blocking.is_some() {
            return Next::Request(self.reload());
        }
        Next::ReloadAfterMs((self.target_ms / 2).max(100))
    }

    /// Consumes a complete response from `buf` if there is one; `now_us` is the wall clock
    /// (Unix µs) when its last bytes were read. Short input is `Ok(None)`; a non-200 status
    /// (except a 404 for the playlist before the first one, see [`Response::not_ready`]), a
    /// response without Content-Length or a bad playlist is an error.
    pub fn parse(&mut self, buf: &mut BytesMut, now_us: i64) -> Result<Option<Response>, String> {
        let Some((what, start_us)) = self.in_flight else {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err("bytes received with no request in flight".into());
        };
        if self.body_len.is_none() {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                if buf.len() > MAX_HEAD {
                    return Err(format!("HTTP response head over {MAX_HEAD} bytes"));
                }
                return Ok(None);
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap_or_default();
            let mut words = status.split_ascii_whitespace();
            if !words.next().unwrap_or_default().starts_with("HTTP/1.") {
                return Err(format!("not an HTTP response: {status:?}"));
            }
            let code = words.next();
            self.not_ready = code == Some("404") && what == Fetch::Playlist && !self.seen_playlist;
            if code != Some("200") && !self.not_ready {
                return Err(format!("HTTP status {} for a {what:?}", status.trim()));
            }
            let len = lines
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .ok_or("HTTP response without a Content-Length")?;
            if len > MAX_BODY {
                return Err(format!("HTTP body of {len} bytes"));
            }
            buf.advance(end + 4);
            self.body_len = Some(len);
        }
        let len = self.body_len.unwrap_or_default();
        if buf.len() < len {
            return Ok(None);
        }
        let body = buf.split_to(len);
        self.body_len = None;
        self.in_flight = None;
        let mut resp = Response {
            what,
            bytes: len,
            parts_ready_us: Vec::new(),
            playable_us: start_us.map(|s| now_us - s),
            without_pdt: 0,
            not_ready: std::mem::take(&mut self.not_ready),
        };
        if what == Fetch::Playlist && !resp.not_ready {
            self.seen_playlist = true;
            let text = std::str::from_utf8(&body).map_err(|_| "playlist is not UTF-8")?;
            self.on_playlist(&parse_playlist(text)?, now_us, &mut resp);
        }
        Ok(Some(resp))
    }

    fn path_of(&self, uri: &str) -> String {
        if uri.starts_with('/') {
            uri.to_string()
        } else {
            format!("{}{uri}", self.dir)
        }
    }

    /// Queues what is new in playlist `pl` (answered at `now_us`) and notes the next blocking
    /// reload, recording the new parts' ready delays in `resp`.
    fn on_playlist(&mut self, pl: &MediaPlaylist, now_us: i64, resp: &mut Response) {
        self.target_ms = pl.target_ms.unwrap_or(self.target_ms);
        self.ll_hls = pl.can_block_reload;
        self.blocking = None;
        if pl.has_parts {
            let joining = self.last_part.is_none();
            let new: Vec<&Item> = match self.last_part {
                Some(last) => pl.parts.iter().filter(|p| p.key() > last).collect(),
                None => pl.parts.last().into_iter().collect(),
            };
            for p in new {
                let start_us = if joining { None } else { p.start_us };
                match start_us {
                    Some(s) => resp.parts_ready_us.push(now_us - (s + p.duration_us)),
                    None if !joining => resp.without_pdt += 1,
                    None => {}
                }
                self.queue.push_back(Queued {
                    what: Fetch::Part,
                    path: self.path_of(&p.uri),
                    start_us,
                });
                self.last_part = Some(p.key());
            }
            self.blocking = self.last_part.map(|last| pl.part_after(last));
        } else {
            let joining = self.last_msn.is_none();
            let new: Vec<&Item> = match self.last_msn {
                Some(last) => pl.segments.iter().filter(|s| s.msn > last).collect(),
                // Joining: only the live edge's segment.
                None => pl.segments.last().into_iter().collect(),
            };
            for s in new {
                let start_us = if joining { None } else { s.start_us };
                if start_us.is_none() && !joining {
                    resp.without_pdt += 1;
                }
                self.queue.push_back(Queued {
                    what: Fetch::Segment,
                    path: self.path_of(&s.uri),
                    start_us,
                });
                self.last_msn = Some(s.msn);
            }
        }
        if self.blocking.is_none() {
            self.blocking = pl.hint;
        }
        if !self.ll_hls {
            self.blocking = None;
        }
    }
}

/// A part or whole segment a playlist lists.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Item {
    msn: u64,
    /// The part's index within its segment; 0 for a whole segment.
    index: usize,
    uri: String,
    /// Media start wall time, Unix µs, when the playlist dates it.
    start_us: Option<i64>,
    duration_us: i64,
}

impl Item {
    fn key(&self) -> (u64, usize) {
        (self.msn, self.index)
    }
}

/// What a poller needs from a media playlist.
#[derive(Debug, Default, PartialEq, Eq)]
struct MediaPlaylist {
    target_ms: Option<u64>,
    /// `EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES`.
    can_block_reload: bool,
    /// `EXT-X-PART-INF` or any `EXT-X-PART`: follow parts, not segments.
    has_parts: bool,
    /// Complete segments (`EXTINF` + URI), in order.
    segments: Vec<Item>,
    /// Every part, those of the open segment included, in order.
    parts: Vec<Item>,
    /// `(msn, part)` of the `EXT-X-PRELOAD-HINT`.
    hint: Option<(u64, usize)>,
}

impl MediaPlaylist {
    /// The part a blocking reload asks for after part `last`: the next one of its segment, or
    /// the first of the next segment when `last` ended a complete segment.
    fn part_after(&self, (msn, index): (u64, usize)) -> (u64, usize) {
        let complete = self.segments.iter().any(|s| s.msn == msn);
        let last_of_segment = !self.parts.iter().any(|p| p.msn == msn && p.index > index);
        if complete && last_of_segment {
            (msn + 1, 0)
        } else {
            (msn, index + 1)
        }
    }
}

/// Parses a media playlist. A segment's start is its `EXT-X-PROGRAM-DATE-TIME`, or the previous
/// segment's start plus its `EXTINF` (unknown after a discontinuity without a new date); a
/// part's start is its segment's plus the durations of the segment's earlier parts.
fn parse_playlist(text: &str) -> Result<MediaPlaylist, String> {
    if !text.starts_with("#EXTM3U") {
        return Err("playlist does not start with #EXTM3U".into());
    }
    let mut pl = MediaPlaylist::default();
    let mut msn = 0u64;
    // The current segment's start, its parts so far and their summed duration, its EXTINF.
    let mut start: Option<i64> = None;
    let mut index = 0usize;
    let mut offset_us = 0i64;
    let mut extinf_us = 0i64;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = v.parse().map_err(|_| format!("bad media sequence {v:?}"))?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            pl.target_ms = v.parse::<u64>().ok().map(|s| s * 1000);
        } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            pl.can_block_reload = attr(v, "CAN-BLOCK-RELOAD") == Some("YES");
        } else if line.starts_with("#EXT-X-PART-INF:") {
            pl.has_parts = true;
        } else if line == "#EXT-X-DISCONTINUITY" {
            start = None;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            let ms = parse_iso8601_ms(v).ok_or_else(|| format!("bad program date time {v:?}"))?;
            start = Some(ms * 1000);
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
            pl.has_parts = true;
            let d = attr(v, "DURATION").ok_or_else(|| format!("part without DURATION: {v:?}"))?;
            let duration_us = seconds_us(d).ok_or_else(|| format!("bad part duration {d:?}"))?;
            let uri = attr(v, "URI").ok_or_else(|| format!("part without URI: {v:?}"))?;
            pl.parts.push(Item {
                msn,
                index,
                uri: uri.to_string(),
                start_us: start.map(|s| s + offset_us),
                duration_us,
            });
            index += 1;
            offset_us += duration_us;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d = v.split(',').next().unwrap_or_default();
            extinf_us = seconds_us(d).ok_or_else(|| format!("bad EXTINF {v:?}"))?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            pl.hint = part_of_hint(v);
        } else if !line.is_empty() && !line.starts_with('#') {
            pl.segments.push(Item {
                msn,
                index: 0,
                uri: line.to_string(),
                start_us: start,
                duration_us: extinf_us,
            });
            msn += 1;
            start = start.map(|s| s + extinf_us);
            (index, offset_us, extinf_us) = (0, 0, 0);
        }
    }
    Ok(pl)
}

/// The value of attribute `key` in an attribute list (`A=1,B="x,y"`), quotes removed.
fn attr<'a>(list: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = list;
    loop {
        let (k, after) = rest.split_once('=')?;
        let (value, tail) = match after.strip_prefix('"') {
            Some(q) => {
                let (v, t) = q.split_once('"')?;
                (v, t.strip_prefix(',').unwrap_or(t))
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        if k.trim() == key {
            return Some(value);
        }
        rest = tail;
    }
}

/// Decimal seconds (`0.500`) as microseconds.
fn seconds_us(s: &str) -> Option<i64> {
    let v: f64 = s.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * 1e6).round() as i64)
}

/// `(msn, part)` of a `TYPE=PART,URI="…/part-M.P.ext"` preload hint.
fn part_of_hint(attrs: &str) -> Option<(u64, usize)> {
    let uri = attr(attrs, "URI")?;
    let name = uri.rsplit('/').next()?;
    let mut it = name.strip_prefix("part-")?.split('.');
    let msn = it.next()?.parse().ok()?;
    let part = it.next()?.parse().ok()?;
    Some((msn, part))
}

/// Parses an ISO 8601 date-time as EXT-X-PROGRAM-DATE-TIME carries it,
/// `YYYY-MM-DDThh:mm:ss[.fff…](Z|±hh:mm)`, to Unix milliseconds (fraction digits beyond the
/// millisecond are dropped).
pub(super) fn parse_iso8601_ms(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let d = b.get(from..from + len)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0i64, |n, c| n * 10 + i64::from(c - b'0')))
    };
    let sep = |at: usize, c: u8| b.get(at) == Some(&c);
    if !(sep(4, b'-') && sep(7, b'-') && (sep(10, b'T') || sep(10, b't')) && sep(13, b':'))
        || !sep(16, b':')
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, min, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut at = 19;
    let mut ms = 0i64;
    if sep(at, b'.') || sep(at, b',') {
        at += 1;
        let digits = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for i in 0..3 {
            ms = ms * 10 + if i < digits { num(at + i, 1)? } else { 0 };
        }
        at += digits;
    }
    let offset_min = match b.get(at..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == at + 6 && sep(at + 3, b':') => {
            let m = num(at + 1, 2)? * 60 + num(at + 4, 2)?;
            if *sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_min * 60;
    Some(secs * 1000 + ms)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-02-29T10:00:00.000Z (a leap day), in Unix µs.
    const T0: i64 = 1_709_200_800_000_000;
    const MS: i64 = 1000;

    /// Segment 4 (2 s, parts 0.5 + 0.5 + 1.0), then open segment 5 with parts 0 and 1.
    const LL: &str = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,HOLD-BACK=6\n\
        #EXT-X-PART-INF:PART-TARGET=0.500\n#EXT-X-MEDIA-SEQUENCE:3\n\
        #EXT-X-PROGRAM-DATE-TIME:2024-02-29T09:59:58.000Z\n#EXTINF:2.000,\nx/seg-3.ts\n\
        #EXT-X-PROGRAM-DATE-TIME:2024-02-29T10:00:00.000Z\n\
        #EXT-X-PART:DURATION=0.500,URI=\"x/part-4.0.ts\",INDEPENDENT=YES\n\
        #EXT-X-PART:DURATION=0.500,URI=\"x/part-4.1.ts\"\n\
        #EXT-X-PART:DURATION=1.000,URI=\"x/part-4.2.ts\"\n\
        #EXTINF:2.000,\nx/seg-4.ts\n\
        #EXT-X-PROGRAM-DATE-TIME:2024-02-29T10:00:02.000Z\n\
        #EXT-X-PART:DURATION=0.500,URI=\"x/part-5.0.ts\",INDEPENDENT=YES\n\
        #EXT-X-PART:DURATION=0.500,URI=\"x/part-5.1.ts\"\n\
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"x/part-5.2.ts\"\n";

    fn response(body: &str) -> BytesMut {
        BytesMut::from(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    }

    fn request_line(req: &[u8]) -> String {
        String::from_utf8_lossy(req)
            .lines()
            .next()
            .unwrap()
            .to_string()
    }

    fn next_request(p: &mut HlsPoller) -> String {
        match p.next() {
            Next::Request(req) => request_line(&req),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    /// A poller that has joined on `LL` at T0 + 3 s and fetched the edge part 5.1.
    fn joined() -> HlsPoller {
        let mut p = HlsPoller::new("127.0.0.1", 8080, "/live/x.m3u8");
        p.reload();
        let r = p.parse(&mut response(LL), T0 + 3000 * MS).unwrap().unwrap();
        assert!(r.parts_ready_us.is_empty(), "joining measures nothing");
        assert_eq!(next_request(&mut p), "GET /live/x/part-5.1.ts HTTP/1.1");
        let r = p
            .parse(&mut response("edge"), T0 + 3010 * MS)
            .unwrap()
            .unwrap();
        assert_eq!((r.what, r.playable_us), (Fetch::Part, None));
        p
    }

    #[test]
    fn iso8601_dates_parse_to_unix_milliseconds() {
        assert_eq!(parse_iso8601_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_iso8601_ms("2024-02-29T23:59:59.999Z"),
            Some(1_709_251_199_999),
            "a leap day, to the millisecond"
        );
        assert_eq!(
            parse_iso8601_ms("2000-02-29T12:00:00.001Z"),
            Some(951_825_600_001)
        );
        assert_eq!(
            parse_iso8601_ms("2100-03-01T00:00:00Z"),
            Some(4_107_542_400_000)
        );
        assert_eq!(
            parse_iso8601_ms("2024-02-29T10:00:00.5Z"),
            Some(T0 / 1000 + 500),
            "a short fraction is tenths"
        );
        assert_eq!(
            parse_iso8601_ms("2024-02-29T10:00:00.123456Z"),
            Some(T0 / 1000 + 123)
        );
        assert_eq!(
            parse_iso8601_ms("2024-02-29T12:30:00.000+02:30"),
            Some(T0 / 1000)
        );
    }

    #[test]
    fn iso8601_rejects_malformed_and_impossible_dates() {
        for bad in [
            "2023-02-29T00:00:00.000Z",
            "2100-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00",
            "2024-01-01 00:00:00Z",
            "2024-1-01T00:00:00Z",
            "",
        ] {
            assert_eq!(parse_iso8601_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn iso8601_reads_back_what_the_server_writes() {
        let mut ms = 0u64;
        while ms < 5_000_000_000_000 {
            let text = rtmp_edge::package::hls::iso8601(ms);
            assert_eq!(parse_iso8601_ms(&text), Some(ms as i64), "{text}");
            ms = ms * 3 + 86_399_999;
        }
    }

    #[test]
    fn part_starts_are_the_segment_date_plus_earlier_parts() {
        let pl = parse_playlist(LL).unwrap();
        assert!(pl.has_parts && pl.can_block_reload);
        let starts: Vec<_> = pl
            .parts
            .iter()
            .map(|p| {
                (
                    p.msn,
                    p.index,
                    p.start_us.map(|s| (s - T0) / MS),
                    p.duration_us / MS,
                )
            })
            .collect();
        assert_eq!(
            starts,
            vec![
                (4, 0, Some(0), 500),
                (4, 1, Some(500), 500),
                (4, 2, Some(1000), 1000),
                (5, 0, Some(2000), 500),
                (5, 1, Some(2500), 500),
            ]
        );
        let segs: Vec<_> = pl
            .segments
            .iter()
            .map(|s| (s.msn, s.start_us.map(|t| (t - T0) / MS)))
            .collect();
        assert_eq!(segs, vec![(3, Some(-2000)), (4, Some(0))]);
        assert_eq!(pl.hint, Some((5, 2)));
    }

    #[test]
    fn a_segment_without_a_date_follows_the_previous_one_until_a_discontinuity() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n\
            #EXT-X-PROGRAM-DATE-TIME:2024-02-29T10:00:00.000Z\n#EXTINF:1.500,\nseg-10.ts\n\
            #EXTINF:2.000,\nseg-11.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\nseg-12.ts\n\
            #EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2024-02-29T11:00:00.000Z\n\
            #EXT-X-PART:DURATION=0.250,URI=\"part-13.0.ts\"\n\
            #EXT-X-PART:DURATION=0.250,URI=\"part-13.1.ts\"\n";
        let pl = parse_playlist(text).unwrap();
        let segs: Vec<_> = pl
            .segments
            .iter()
            .map(|s| (s.msn, s.start_us.map(|t| (t - T0) / MS)))
            .collect();
        assert_eq!(segs, vec![(10, Some(0)), (11, Some(1500)), (12, None)]);
        let parts: Vec<_> = pl
            .parts
            .iter()
            .map(|p| (p.msn, p.index, p.start_us.map(|t| (t - T0) / MS)))
            .collect();
        assert_eq!(
            parts,
            vec![(13, 0, Some(3_600_000)), (13, 1, Some(3_600_250))],
            "after a discontinuity the new date counts, not the old timeline"
        );
    }

    #[test]
    fn ll_hls_poller_fetches_only_new_parts_and_blocks_on_the_part_after_the_last() {
        let mut p = joined();
        assert!(p.ll_hls);
        assert_eq!(
            next_request(&mut p),
            "GET /live/x.m3u8?_HLS_msn=5&_HLS_part=2 HTTP/1.1"
        );
        // Part 5.2 (start +3000 ms, 500 ms) is listed 20 ms after its media ended.
        let next = LL.replace(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"x/part-5.2.ts\"",
            "#EXT-X-PART:DURATION=0.500,URI=\"x/part-5.2.ts\"\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"x/part-5.3.ts\"",
        );
        let r = p
            .parse(&mut response(&next), T0 + 3520 * MS)
            .unwrap()
            .unwrap();
        assert_eq!(r.what, Fetch::Playlist);
        assert_eq!(r.parts_ready_us, vec![20 * MS]);
        assert_eq!(next_request(&mut p), "GET /live/x/part-5.2.ts HTTP/1.1");
        let r = p
            .parse(&mut response("part"), T0 + 3530 * MS)
            .unwrap()
            .unwrap();
        assert_eq!((r.what, r.bytes), (Fetch::Part, 4));
        assert_eq!(r.playable_us, Some(530 * MS), "received − part start");
        assert_eq!(
            next_request(&mut p),
            "GET /live/x.m3u8?_HLS_msn=5&_HLS_part=3 HTTP/1.1",
            "no whole-segment download in between"
        );
    }

    #[test]
    fn segment_rollover_fetches_the_closed_segments_last_part_then_the_new_ones() {
        let mut p = joined();
        p.next();
        // Segment 5 closes with part 5.2; open segment 6 already has part 6.0.
        let next = LL.replace(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"x/part-5.2.ts\"",
            "#EXT-X-PART:DURATION=1.000,URI=\"x/part-5.2.ts\"\n#EXTINF:2.000,\nx/seg-5.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2024-02-29T10:00:04.000Z\n\
             #EXT-X-PART:DURATION=0.500,URI=\"x/part-6.0.ts\",INDEPENDENT=YES\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"x/part-6.1.ts\"",
        );
        let r = p
            .parse(&mut response(&next), T0 + 4600 * MS)
            .unwrap()
            .unwrap();
        assert_eq!(r.parts_ready_us, vec![600 * MS, 100 * MS]);
        assert_eq!(next_request(&mut p), "GET /live/x/part-5.2.ts HTTP/1.1");
        let r = p
            .parse(&mut response("a"), T0 + 4610 * MS)
            .unwrap()
            .unwrap();
        assert_eq!(r.playable_us, Some(1610 * MS));
        assert_eq!(next_request(&mut p), "GET /live/x/part-6.0.ts HTTP/1.1");
        let r = p
            .parse(&mut response("b"), T0 + 4620 * MS)
            .unwrap()
            .unwrap();
        assert_eq!(r.playable_us, Some(620 * MS));
        assert_eq!(
            next_request(&mut p),
            "GET /live/x.m3u8?_HLS_msn=6&_HLS_part=1 HTTP/1.1"
        );
    }

    #[test]
    fn the_part_after_the_end_of_a_complete_segment_is_the_next_segments_first() {
        // The playlist ends on a closed segment whose next part does not exist yet.
        let text = LL.replace(
            "#EXT-X-PROGRAM-DATE-TIME:2024-02-29T10:00:02.000Z\n\
             #EXT-X-PART:DURATION=0.500,URI=\"x/part-5.0.ts\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.500,URI=\"x/part-5.1.ts\"\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"x/part-5.2.ts\"\n",
            "",
        );
        let pl = parse_playlist(&text).unwrap();
        assert_eq!(pl.parts.last().map(Item::key), Some((4, 2)));
        assert_eq!(pl.part_after((4, 2)), (5, 0));
        assert_eq!(pl.part_after((4, 1)), (4, 2));
        let mut p = HlsPoller::new("127.0.0.1", 8080, "/live/x.m3u8");
        p.reload();
        p.parse(&mut response(&text), T0).unwrap().unwrap();
        assert_eq!(next_request(&mut p), "GET /live/x/part-4.2.ts HTTP/1.1");
        p.parse(&mut response("x"), T0).unwrap().unwrap();
        assert_eq!(
            next_request(&mut p),
            "GET /live/x.m3u8?_HLS_msn=5&_HLS_part=0 HTTP/1.1"
        );
    }

    #[test]
    fn a_reload_with_nothing_new_queues_nothing_and_asks_again() {
        let mut p = joined();
        p.next();
        let r = p.parse(&mut response(LL), T0 + 3100 * MS).unwrap().unwrap();
        assert!(r.parts_ready_us.is_empty());
        assert_eq!(
            next_request(&mut p),
            "GET /live/x.m3u8?_HLS_msn=5&_HLS_part=2 HTTP/1.1"
        );
    }

    #[test]
    fn a_date_ahead_of_our_clock_gives_negative_latencies() {
        let mut p = joined();
        p.next();
        let next = LL.replace("10:00:02.000Z", "10:00:09.000Z").replace(
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"x/part-5.2.ts\"",
            "#EXT-X-PART:DURATION=0.500,URI=\"x/part-5.2.ts\"",
        );
        let r = p
            .parse(&mut response(&next), T0 + 3520 * MS)
            .unwrap()
            .unwrap();
        assert!(r.parts_ready_us[0] < 0, "{r:?}");
        p.next();
        let r = p
            .parse(&mut response("x"), T0 + 3530 * MS)
            .unwrap()
            .unwrap();
        assert!(r.playable_us.unwrap() < 0, "{r:?}");
    }

    #[test]
    fn plain_hls_fetches_segments_timed_from_their_date_and_reloads_after_half_a_target() {
        let mut p = HlsPoller::new("127.0.0.1", 8080, "/live/x.m3u8");
        p.reload();
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n\
            #EXT-X-PROGRAM-DATE-TIME:2024-02-29T10:00:00.000Z\n#EXTINF:4,\nseg-0.ts\n";
        p.parse(&mut response(text), T0 + 5000 * MS)
            .unwrap()
            .unwrap();
        assert!(!p.ll_hls);
        assert_eq!(next_request(&mut p), "GET /live/seg-0.ts HTTP/1.1");
        let r = p
            .parse(&mut response("x"), T0 + 5000 * MS)
            .unwrap()
            .unwrap();
        assert_eq!((r.what, r.playable_us), (Fetch::Segment, None), "the join");
        assert_eq!(p.next(), Next::ReloadAfterMs(2000));
        p.reload();
        let text = format!("{text}#EXTINF:4,\nseg-1.ts\n");
        p.parse(&mut response(&text), T0 + 9000 * MS)
            .unwrap()
            .unwrap();
        assert_eq!(next_request(&mut p), "GET /live/seg-1.ts HTTP/1.1");
        let r = p
            .parse(&mut response("x"), T0 + 9100 * MS)
            .unwrap()
            .unwrap();
        assert_eq!(
            r.playable_us,
            Some(5100 * MS),
            "fetched − segment 1's start"
        );
    }

    #[test]
    fn attribute_lists_with_quoted_commas_are_read() {
        let list = "TYPE=PART,URI=\"a,b/part-1.2.ts\",DURATION=0.333";
        assert_eq!(attr(list, "URI"), Some("a,b/part-1.2.ts"));
        assert_eq!(attr(list, "DURATION"), Some("0.333"));
        assert_eq!(attr(list, "TYPE"), Some("PART"));
        assert_eq!(attr(list, "GAP"), None);
        assert_eq!(part_of_hint(list), Some((1, 2)));
    }

    #[test]
    fn errors_are_reported_not_ignored() {
        let mut p = joined();
        p.next();
        let mut buf = BytesMut::from(&b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"[..]);
        assert!(
            p.parse(&mut buf, T0).unwrap_err().contains("404"),
            "a playlist that went away is an error"
        );
        let mut p = HlsPoller::new("127.0.0.1", 8080, "/live/x.m3u8");
        p.reload();
        assert!(p.parse(&mut response("not a playlist"), T0).is_err());
        let mut p = HlsPoller::new("127.0.0.1", 8080, "/live/x.m3u8");
        assert!(p.parse(&mut BytesMut::from(&b"junk"[..]), T0).is_err());
        let bad_date = LL.replace("10:00:02.000Z", "yesterday");
        assert!(parse_playlist(&bad_date).unwrap_err().contains("date"));
    }

    #[test]
    fn a_playlist_not_there_yet_is_asked_for_again_until_it_is() {
        let mut p = HlsPoller::new("127.0.0.1", 8080, "/live/x.m3u8");
        p.reload();
        let not_found = "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!";
        let mut buf = BytesMut::from(not_found.as_bytes());
        let r = p.parse(&mut buf, T0).unwrap().unwrap();
        assert!(r.not_ready && r.what == Fetch::Playlist, "{r:?}");
        assert!(buf.is_empty(), "the 404's body is consumed");
        assert_eq!(
            p.next(),
            Next::ReloadAfterMs(1000),
            "half the default target"
        );
        p.reload();
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
            #EXTINF:2.000,\nx-0.ts\n";
        let r = p.parse(&mut response(text), T0).unwrap().unwrap();
        assert!(!r.not_ready);
        assert_eq!(next_request(&mut p), "GET /live/x-0.ts HTTP/1.1");
        let mut buf = BytesMut::from(not_found.as_bytes());
        assert!(
            p.parse(&mut buf, T0).unwrap_err().contains("404"),
            "a missing segment is an error"
        );
    }

    #[test]
    fn short_input_waits_for_the_rest_of_the_body() {
        let mut p = HlsPoller::new("127.0.0.1", 8080, "/live/x.m3u8");
        p.reload();
        let mut buf = response(LL);
        let tail = buf.split_off(buf.len() - 10);
        assert_eq!(p.parse(&mut buf, T0).unwrap(), None);
        buf.extend_from_slice(&tail);
        let r = p.parse(&mut buf, T0).unwrap().unwrap();
        assert_eq!((r.what, r.bytes), (Fetch::Playlist, LL.len()));
    }
}
