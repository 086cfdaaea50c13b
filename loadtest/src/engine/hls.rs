//! HLS pollers: a viewer that GETs the media playlist, then every new segment once, on one
//! keep-alive connection. With `EXT-X-SERVER-CONTROL` (LL-HLS) the playlist is reloaded
//! with a blocking request for the next part (`_HLS_msn`/`_HLS_part`, from the preload hint);
//! otherwise the engine reloads it after half a target duration. Sans-IO: the engine writes
//! the requests and feeds the bytes read to [`HlsPoller::parse`].

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};

/// A response head longer than this is an error.
const MAX_HEAD: usize = 16 * 1024;
/// A response body larger than this is an error (segments are a few hundred KiB).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// What a request fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fetch {
    Playlist,
    Segment,
}

/// One complete response.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Response {
    pub what: Fetch,
    /// Body bytes.
    pub bytes: usize,
}

/// What to do after a response.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Send this request now.
    Request(Vec<u8>),
    /// Reload the playlist (call [`HlsPoller::reload`]) after this many milliseconds.
    ReloadAfterMs(u64),
}

/// One poller's state.
#[derive(Debug)]
pub(super) struct HlsPoller {
    host: String,
    playlist: String,
    /// The playlist's directory, with a trailing slash, for relative URIs.
    dir: String,
    /// What the request in flight fetches.
    in_flight: Option<Fetch>,
    /// Head parsed: (body length).
    body_len: Option<usize>,
    /// Segment paths still to fetch.
    queue: VecDeque<String>,
    /// Highest media sequence number queued.
    last_msn: Option<u64>,
    /// The next blocking reload's `_HLS_msn`/`_HLS_part`.
    blocking: Option<(u64, u64)>,
    target_ms: u64,
    /// Playlists that had `EXT-X-SERVER-CONTROL`.
    pub ll_hls: bool,
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
            blocking: None,
            target_ms: 2000,
            ll_hls: false,
        }
    }

    fn get(&mut self, what: Fetch, path: &str) -> Vec<u8> {
        self.in_flight = Some(what);
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
        self.get(Fetch::Playlist, &path)
    }

    /// Whether a request is waiting for its response.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The next step once a response is complete.
    pub fn next(&mut self) -> Next {
        if let Some(path) = self.queue.pop_front() {
            return Next::Request(self.get(Fetch::Segment, &path));
        }
        if self.blocking.is_some() {
            return Next::Request(self.reload());
        }
        Next::ReloadAfterMs((self.target_ms / 2).max(100))
    }

    /// Consumes a complete response from `buf` if there is one. Short input is `Ok(None)`;
    /// a non-200 status, a response without Content-Length or a bad playlist is an error.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Response>, String> {
        let Some(what) = self.in_flight else {
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
            if words.next() != Some("200") {
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
        if what == Fetch::Playlist {
            let text = std::str::from_utf8(&body).map_err(|_| "playlist is not UTF-8")?;
            self.on_playlist(text)?;
        }
        Ok(Some(Response { what, bytes: len }))
    }

    /// Queues the new segments of a playlist and notes the next blocking reload.
    fn on_playlist(&mut self, text: &str) -> Result<(), String> {
        if !text.starts_with("#EXTM3U") {
            return Err("playlist does not start with #EXTM3U".into());
        }
        let mut msn = 0u64;
        let mut segments = Vec::new();
        self.blocking = None;
        for line in text.lines().map(str::trim) {
            if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                msn = v.parse().map_err(|_| format!("bad media sequence {v:?}"))?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                if let Ok(s) = v.parse::<u64>() {
                    self.target_ms = s * 1000;
                }
            } else if line.starts_with("#EXT-X-SERVER-CONTROL:") {
                self.ll_hls = line.contains("CAN-BLOCK-RELOAD=YES");
            } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
                self.blocking = part_of_hint(v);
            } else if !line.is_empty() && !line.starts_with('#') {
                segments.push((msn, line.to_string()));
                msn += 1;
            }
        }
        if !self.ll_hls {
            self.blocking = None;
        }
        let first_poll = self.last_msn.is_none();
        for (i, (msn, uri)) in segments.iter().enumerate() {
            let new = match self.last_msn {
                Some(last) => *msn > last,
                // Joining: only the live edge's segment.
                None => i + 1 == segments.len(),
            };
            if new {
                let path = if uri.starts_with('/') {
                    uri.clone()
                } else {
                    format!("{}{uri}", self.dir)
                };
                self.queue.push_back(path);
                self.last_msn = Some(*msn);
            }
        }
        if first_poll && self.last_msn.is_none() && !segments.is_empty() {
            self.last_msn = segments.last().map(|s| s.0);
        }
        Ok(())
    }
}

/// `(msn, part)` of a `TYPE=PART,URI="…/part-M.P.ext"` preload hint.
fn part_of_hint(attrs: &str) -> Option<(u64, u64)> {
    let uri = attrs.split("URI=\"").nth(1)?.split('"').next()?;
    let name = uri.rsplit('/').next()?;
    let mut it = name.strip_prefix("part-")?.split('.');
    let msn = it.next()?.parse().ok()?;
    let part = it.next()?.parse().ok()?;
    Some((msn, part))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LL: &str = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,HOLD-BACK=6\n\
        #EXT-X-PART-INF:PART-TARGET=0.500\n#EXT-X-MEDIA-SEQUENCE:3\n\
        #EXTINF:2.000,\nx/seg-3.ts\n#EXTINF:2.000,\nx/seg-4.ts\n\
        #EXT-X-PART:DURATION=0.500,URI=\"x/part-5.0.ts\",INDEPENDENT=YES\n\
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"x/part-5.1.ts\"\n";

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

    #[test]
    fn ll_hls_poller_fetches_the_edge_segment_then_blocks_on_the_hinted_part() {
        let mut p = HlsPoller::new("127.0.0.1", 8080, "/live/x.m3u8");
        assert_eq!(request_line(&p.reload()), "GET /live/x.m3u8 HTTP/1.1");
        let mut buf = response(LL);
        let tail = buf.split_off(buf.len() - 10);
        assert_eq!(p.parse(&mut buf).unwrap(), None, "short body waits");
        buf.extend_from_slice(&tail);
        let r = p.parse(&mut buf).unwrap().unwrap();
        assert_eq!((r.what, r.bytes), (Fetch::Playlist, LL.len()));
        assert!(p.ll_hls);
        let Next::Request(req) = p.next() else {
            panic!("a segment request")
        };
        assert_eq!(request_line(&req), "GET /live/x/seg-4.ts HTTP/1.1");
        let mut buf = response("0123456789");
        let r = p.parse(&mut buf).unwrap().unwrap();
        assert_eq!((r.what, r.bytes), (Fetch::Segment, 10));
        let Next::Request(req) = p.next() else {
            panic!("a blocking reload")
        };
        assert_eq!(
            request_line(&req),
            "GET /live/x.m3u8?_HLS_msn=5&_HLS_part=1 HTTP/1.1"
        );
        // The next playlist has segment 5: only it is new.
        let next = LL.replace("#EXT-X-PART:", "#EXTINF:2.000,\nx/seg-5.ts\n#EXT-X-PART:");
        let mut buf = response(&next);
        p.parse(&mut buf).unwrap().unwrap();
        let Next::Request(req) = p.next() else {
            panic!("a segment request")
        };
        assert_eq!(request_line(&req), "GET /live/x/seg-5.ts HTTP/1.1");
    }

    #[test]
    fn plain_hls_reloads_after_half_a_target_duration() {
        let mut p = HlsPoller::new("127.0.0.1", 8080, "/live/x.m3u8");
        p.reload();
        let text =
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:4,\nseg-0.ts\n";
        let mut buf = response(text);
        p.parse(&mut buf).unwrap().unwrap();
        assert!(!p.ll_hls);
        let Next::Request(req) = p.next() else {
            panic!("segment")
        };
        assert_eq!(request_line(&req), "GET /live/seg-0.ts HTTP/1.1");
        p.parse(&mut response("x")).unwrap().unwrap();
        assert_eq!(p.next(), Next::ReloadAfterMs(2000));
    }

    #[test]
    fn errors_are_reported_not_ignored() {
        let mut p = HlsPoller::new("127.0.0.1", 8080, "/live/x.m3u8");
        p.reload();
        let mut buf = BytesMut::from(&b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"[..]);
        assert!(p.parse(&mut buf).unwrap_err().contains("404"));
        let mut p = HlsPoller::new("127.0.0.1", 8080, "/live/x.m3u8");
        p.reload();
        assert!(p.parse(&mut response("not a playlist")).is_err());
        let mut p = HlsPoller::new("127.0.0.1", 8080, "/live/x.m3u8");
        assert!(p.parse(&mut BytesMut::from(&b"junk"[..])).is_err());
    }
}
