//! HTTP/1.1 on the worker loops, sans-IO: request heads in, routes and response heads out
//! for live HTTP-FLV (`/{app}/{stream}.flv`), HLS (`.m3u8` and its segments and parts) and
//! DASH (`.mpd`).

use bytes::{Bytes, BytesMut};

use crate::fanout::FlvBody;
use crate::package::hls::Resource;

/// A request head could not be accepted; each maps to the status answered before closing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("request head larger than {limit} bytes")]
    HeadTooLarge { limit: usize },
    #[error("request head with more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    #[error("malformed request: {0}")]
    Malformed(httparse::Error),
    /// `_HLS_msn`/`_HLS_part` that are not numbers, or a part without its segment.
    #[error("bad {0}")]
    BadBlockingReload(&'static str),
}

/// A request path that cannot name a stream; answered 400 (and the connection closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding")]
    InvalidPercentEncoding,
    /// A segment decodes to bytes that are not UTF-8 (stream names are UTF-8 strings).
    #[error("a decoded segment is not UTF-8")]
    NotUtf8,
    /// `%2F` or `%00`: a name cannot hold a path separator or NUL.
    #[error("a segment decodes to '/' or NUL")]
    SeparatorOrNul,
    /// A `.` or `..` segment (also as `%2E`): browsers resolve these before sending.
    #[error("a dot segment ('.' or '..')")]
    DotSegment,
}

impl HttpError {
    /// The status line answered for this error.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            HttpError::HeadTooLarge { .. } | HttpError::TooManyHeaders { .. } => {
                (431, "Request Header Fields Too Large")
            }
            HttpError::Malformed(_) | HttpError::BadBlockingReload(_) => (400, "Bad Request"),
        }
    }
}

/// The parts of a request the server acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: String,
    /// The client wants the connection kept open after the response.
    pub keep_alive: bool,
    /// A body follows the head (requests with bodies are refused: the server takes none).
    pub has_body: bool,
    /// The request is HTTP/1.0 (no chunked transfer coding in the response).
    pub http10: bool,
}

/// Most header fields accepted in one request head (431 past it). Browsers behind a few
/// proxies send 30 to 60 (cookies, `Forwarded`/`X-Forwarded-*`, `Sec-*`, tracing headers).
pub const MAX_HEADERS: usize = 100;

/// Parses a request head from the front of `buf`, consuming it. `Ok(None)`: incomplete.
pub fn parse_request(buf: &mut BytesMut, max_head: usize) -> Result<Option<Request>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(buf).map_err(|e| match e {
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders { limit: MAX_HEADERS },
        e => HttpError::Malformed(e),
    })?;
    let len = match status {
        httparse::Status::Partial => {
            if buf.len() > max_head {
                return Err(HttpError::HeadTooLarge { limit: max_head });
            }
            return Ok(None);
        }
        httparse::Status::Complete(len) => len,
    };
    if len > max_head {
        return Err(HttpError::HeadTooLarge { limit: max_head });
    }
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let http10 = req.version == Some(0);
    let mut keep_alive = !http10;
    let mut has_body = false;
    // Only the three headers acted on are looked at; no copy of any value.
    let has = |value: &[u8], word: &str| {
        value
            .windows(word.len())
            .any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
    };
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            if has(h.value, "close") {
                keep_alive = false;
            } else if has(h.value, "keep-alive") {
                keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            has_body = h.value.trim_ascii() != b"0";
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            has_body = true;
        }
    }
    let request = Request {
        method: req.method.unwrap_or("").to_string(),
        path: path.to_string(),
        query: query.to_string(),
        keep_alive,
        has_body,
        http10,
    };
    let _ = buf.split_to(len);
    Ok(Some(request))
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /{app}/{stream}.flv`: live HTTP-FLV.
    Flv {
        app: String,
        stream: String,
    },
    /// `GET /{app}/{stream}.m3u8[?_HLS_msn=M[&_HLS_part=P]]`: the HLS media playlist.
    Playlist {
        app: String,
        stream: String,
    },
    /// `GET /{app}/{stream}.mpd`: the DASH manifest.
    Manifest {
        app: String,
        stream: String,
    },
    /// `GET /{app}/{stream}[/video|/audio]/{resource}`: a segment, part or init segment of a
    /// stream's HLS rendition, or of one of its DASH adaptation sets.
    Segment {
        app: String,
        stream: String,
        rendition: Option<String>,
        resource: Resource,
    },
    /// `GET /healthz`: 200 `ok` while serving, 503 while draining (for load balancers).
    Health,
    NotFound,
}

/// `_HLS_msn` and `_HLS_part` of a blocking playlist reload, when present.
pub fn blocking_params(query: &str) -> Result<Option<(u64, Option<u64>)>, HttpError> {
    let bad = HttpError::BadBlockingReload;
    let mut msn = None;
    let mut part = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "_HLS_msn" => msn = Some(v.parse::<u64>().map_err(|_| bad("_HLS_msn"))?),
            "_HLS_part" => part = Some(v.parse::<u64>().map_err(|_| bad("_HLS_part"))?),
            _ => {}
        }
    }
    match (msn, part) {
        (None, None) => Ok(None),
        (Some(m), p) => Ok(Some((m, p))),
        (None, Some(_)) => Err(bad("_HLS_part without _HLS_msn")),
    }
}

/// Percent-decodes one path segment (no `/` in it). `+` is a plus sign in paths.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    if !raw.contains('%') {
        return Ok(raw.to_string());
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex);
            let lo = bytes.get(i + 2).copied().and_then(hex);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::InvalidPercentEncoding);
            };
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

/// The request path with each `/`-separated segment percent-decoded and joined again by `/`
/// (so a `/` in the result is always a separator): the names a stream is published under.
pub fn decode_path(path: &str) -> Result<String, PathError> {
    let mut out = String::with_capacity(path.len());
    for (i, raw) in path.split('/').enumerate() {
        let segment = decode_segment(raw)?;
        if segment.contains(['/', '\0']) {
            return Err(PathError::SeparatorOrNul);
        }
        if segment == "." || segment == ".." {
            return Err(PathError::DotSegment);
        }
        if i > 0 {
            out.push('/');
        }
        out.push_str(&segment);
    }
    Ok(out)
}

/// `name` as one path segment of a URI: every byte but the unreserved ones (RFC 3986 letters,
/// digits, `-._~`) percent-encoded. Playlists and manifests write stream names this way so a
/// player following their relative URIs comes back to the same stream (and no name can read
/// as a scheme, a query, an XML or attribute delimiter, or a DASH `$` template).
pub fn encode_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `app/stream` split at its last `/`, both non-empty.
fn app_stream(path: &str) -> Option<(String, String)> {
    let (app, stream) = path.rsplit_once('/')?;
    (!app.is_empty() && !stream.is_empty()).then(|| (app.to_string(), stream.to_string()))
}

/// Maps a request path to a route. Each segment is percent-decoded first ([`decode_path`]), so
/// `/live/caf%C3%A9.flv` is stream `café` of app `live`, as an RTMP publisher names it.
pub fn route(path: &str) -> Result<Route, PathError> {
    let decoded = decode_path(path)?;
    Ok(route_decoded(&decoded))
}

/// Maps a decoded path (every `/` a separator) to a route.
fn route_decoded(path: &str) -> Route {
    if path == "/healthz" {
        return Route::Health;
    }
    let trimmed = path.trim_start_matches('/');
    let named = |suffix: &str| trimmed.strip_suffix(suffix).and_then(app_stream);
    if let Some((app, stream)) = named(".m3u8") {
        return Route::Playlist { app, stream };
    }
    if let Some((app, stream)) = named(".mpd") {
        return Route::Manifest { app, stream };
    }
    if let Some((dir, name)) = trimmed.rsplit_once('/') {
        if let Some(resource) = Resource::parse(name) {
            let (dir, rendition) = match dir.rsplit_once('/') {
                Some((rest, r @ ("video" | "audio"))) => (rest, Some(r.to_string())),
                _ => (dir, None),
            };
            if let Some((app, stream)) = app_stream(dir) {
                return Route::Segment {
                    app,
                    stream,
                    rendition,
                    resource,
                };
            }
        }
    }
    if let Some((app, stream)) = named(".flv") {
        return Route::Flv { app, stream };
    }
    Route::NotFound
}

fn cors_header(out: &mut String, cors: &str) {
    if !cors.is_empty() {
        out.push_str("Access-Control-Allow-Origin: ");
        out.push_str(cors);
        out.push_str("\r\n");
    }
}

/// A complete response with a body of `content_type`.
pub fn body_response(
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    cors: &str,
    cache: &str,
) -> Bytes {
    let mut head = String::from("HTTP/1.1 200 OK\r\nServer: rtmp-edge\r\n");
    cors_header(&mut head, cors);
    head.push_str(&format!(
        "Content-Type: {content_type}\r\nCache-Control: {cache}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    ));
    let mut out = BytesMut::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out.freeze()
}

/// The head of a complete response (through the blank line), for answering HEAD requests.
pub fn head_of(response: Bytes) -> Bytes {
    match response.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => response.slice(..end + 4),
        None => response,
    }
}

/// The head of a 200 response whose body (`len` bytes) is sent separately from shared bytes.
pub fn body_head(
    content_type: &str,
    len: usize,
    keep_alive: bool,
    cors: &str,
    cache: &str,
) -> Bytes {
    let mut head = String::from("HTTP/1.1 200 OK\r\nServer: rtmp-edge\r\n");
    cors_header(&mut head, cors);
    head.push_str(&format!(
        "Content-Type: {content_type}\r\nCache-Control: {cache}\r\nContent-Length: {len}\r\nConnection: {}\r\n\r\n",
        if keep_alive { "keep-alive" } else { "close" }
    ));
    Bytes::from(head)
}

/// A complete small response (errors, OPTIONS).
pub fn simple_response(
    status: u16,
    reason: &str,
    body: &str,
    keep_alive: bool,
    cors: &str,
) -> Bytes {
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nServer: rtmp-edge\r\n");
    cors_header(&mut head, cors);
    if status == 204 {
        head.push_str("Access-Control-Allow-Methods: GET, HEAD, OPTIONS\r\nAccess-Control-Allow-Headers: *\r\n");
    }
    if status == 405 {
        head.push_str("Allow: GET, HEAD, OPTIONS\r\n");
    }
    head.push_str(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    ));
    head.push_str(body);
    Bytes::from(head)
}

/// `302 Found` to `location` (a busy edge sending a player to another), then close.
pub fn redirect_response(location: &str, cors: &str) -> Bytes {
    let mut head = format!("HTTP/1.1 302 Found\r\nServer: rtmp-edge\r\nLocation: {location}\r\n");
    cors_header(&mut head, cors);
    head.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    Bytes::from(head)
}

/// The head of a live FLV response followed by the FLV file header (audio and video flags
/// set, PreviousTagSize0). A chunked body carries one tag per chunk and ends with the zero
/// chunk when the stream stops; otherwise it runs until either side closes.
pub fn flv_stream_head(cors: &str, body: FlvBody) -> Bytes {
    let mut head = String::from(
        "HTTP/1.1 200 OK\r\nServer: rtmp-edge\r\nContent-Type: video/x-flv\r\nCache-Control: no-cache\r\nConnection: close\r\n",
    );
    if body == FlvBody::Chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
    }
    cors_header(&mut head, cors);
    head.push_str("\r\n");
    let mut out = BytesMut::from(head.as_bytes());
    let file_header = [b'F', b'L', b'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0];
    if body == FlvBody::Chunked {
        out.extend_from_slice(format!("{:x}\r\n", file_header.len()).as_bytes());
        out.extend_from_slice(&file_header);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(&file_header);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(path: &str) -> Route {
        route(path).unwrap()
    }

    fn parse(text: &str) -> Result<Option<Request>, HttpError> {
        parse_request(&mut BytesMut::from(text.as_bytes()), 8192)
    }

    #[test]
    fn parses_a_get_and_consumes_exactly_its_head() {
        let mut buf = BytesMut::from(&b"GET /live/a.flv?x=1 HTTP/1.1\r\nHost: h\r\n\r\nNEXT"[..]);
        let req = parse_request(&mut buf, 8192).unwrap().unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/live/a.flv");
        assert_eq!(req.query, "x=1");
        assert!(req.keep_alive);
        assert_eq!(&buf[..], b"NEXT");
    }

    #[test]
    fn an_incomplete_head_needs_more_input() {
        assert_eq!(parse("GET /live/a.flv HTTP/1.1\r\nHost:"), Ok(None));
    }

    #[test]
    fn http10_and_connection_close_do_not_keep_alive() {
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().keep_alive);
        assert!(
            !parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap()
                .unwrap()
                .keep_alive
        );
        assert!(
            parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap()
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn rejects_garbage_and_oversized_heads() {
        assert!(matches!(
            parse("\x01\x02 nonsense\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
        assert_eq!(parse(&big), Err(HttpError::HeadTooLarge { limit: 8192 }));
        assert_eq!(HttpError::HeadTooLarge { limit: 1 }.status().0, 431);
    }

    #[test]
    fn accepts_the_header_cap_and_answers_431_one_past_it() {
        let head = |n: usize| {
            let fields: String = (0..n).map(|i| format!("X-{i}: v\r\n")).collect();
            format!("GET / HTTP/1.1\r\n{fields}\r\n")
        };
        assert!(parse(&head(MAX_HEADERS)).unwrap().is_some());
        let err = parse(&head(MAX_HEADERS + 1)).unwrap_err();
        assert_eq!(err, HttpError::TooManyHeaders { limit: MAX_HEADERS });
        assert_eq!(err.status().0, 431);
    }

    #[test]
    fn routes_flv_paths() {
        assert_eq!(
            routed("/live/cam1.flv"),
            Route::Flv {
                app: "live".into(),
                stream: "cam1".into()
            }
        );
        assert_eq!(
            routed("/a/b/c.flv"),
            Route::Flv {
                app: "a/b".into(),
                stream: "c".into()
            }
        );
        assert_eq!(routed("/cam1.flv"), Route::NotFound);
        assert_eq!(routed("/healthz"), Route::Health);
        assert_eq!(routed("/live/healthz"), Route::NotFound);
        assert_eq!(
            routed("/live/cam1.m3u8"),
            Route::Playlist {
                app: "live".into(),
                stream: "cam1".into()
            }
        );
        assert_eq!(
            routed("/live/cam1/seg-12.ts"),
            Route::Segment {
                app: "live".into(),
                stream: "cam1".into(),
                rendition: None,
                resource: Resource::Segment(12)
            }
        );
        assert_eq!(
            routed("/live/cam1/video/init-0.mp4"),
            Route::Segment {
                app: "live".into(),
                stream: "cam1".into(),
                rendition: Some("video".into()),
                resource: Resource::Init(0)
            }
        );
        assert_eq!(
            routed("/live/cam1.mpd"),
            Route::Manifest {
                app: "live".into(),
                stream: "cam1".into()
            }
        );
        assert_eq!(routed("/live/cam1/other.txt"), Route::NotFound);
        assert_eq!(
            blocking_params("_HLS_msn=4&_HLS_part=2"),
            Ok(Some((4, Some(2))))
        );
        assert_eq!(blocking_params("x=1"), Ok(None));
        assert!(blocking_params("_HLS_part=2").is_err());
    }

    #[test]
    fn route_percent_decodes_each_segment_to_the_published_name() {
        assert_eq!(
            routed("/live/caf%C3%A9%20100%25%2Bx+y.flv"),
            Route::Flv {
                app: "live".into(),
                stream: "café 100%+x+y".into()
            }
        );
        assert_eq!(
            routed("/l%69ve/a%3Fb/video/init-0.mp4"),
            Route::Segment {
                app: "live".into(),
                stream: "a?b".into(),
                rendition: Some("video".into()),
                resource: Resource::Init(0)
            }
        );
        // An encoded suffix is the suffix (RFC 3986: %2E is `.`).
        assert_eq!(
            routed("/live/cam%2Em3u8"),
            Route::Playlist {
                app: "live".into(),
                stream: "cam".into()
            }
        );
    }

    #[test]
    fn rejects_paths_that_cannot_name_a_stream() {
        for (path, err) in [
            ("/live/a%2Fb.flv", PathError::SeparatorOrNul),
            ("/live/a%2fb.flv", PathError::SeparatorOrNul),
            ("/live/a%00.flv", PathError::SeparatorOrNul),
            ("/live/%zz.flv", PathError::InvalidPercentEncoding),
            ("/live/a%2.flv", PathError::InvalidPercentEncoding),
            ("/live/a%", PathError::InvalidPercentEncoding),
            ("/live/%FF.flv", PathError::NotUtf8),
            ("/live/../x.flv", PathError::DotSegment),
            ("/live/./x.flv", PathError::DotSegment),
            ("/live/%2e%2E/x/seg-1.ts", PathError::DotSegment),
        ] {
            assert_eq!(route(path), Err(err), "{path}");
        }
    }

    #[test]
    fn encoded_names_decode_back_to_themselves() {
        let names = [
            "cam",
            "café 100%",
            "a:b",
            "a\"b&c<$x$>#?",
            "日本",
            "-._~",
            "+",
        ];
        for name in names {
            let encoded = encode_segment(name);
            assert!(
                encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
                "{encoded}"
            );
            assert_eq!(decode_path(&encoded).as_deref(), Ok(name));
        }
        assert_eq!(encode_segment("café 1"), "caf%C3%A9%201");
    }

    #[test]
    fn flv_head_ends_with_the_flv_file_header() {
        let head = flv_stream_head("*", FlvBody::UntilClose);
        let text = String::from_utf8_lossy(&head);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Type: video/x-flv"));
        assert!(text.contains("Access-Control-Allow-Origin: *"));
        assert!(!text.contains("Transfer-Encoding"));
        assert_eq!(&head[head.len() - 13..head.len() - 10], b"FLV");
        // Chunked: the file header is the first chunk.
        let head = flv_stream_head("*", FlvBody::Chunked);
        let text = String::from_utf8_lossy(&head);
        assert!(text.contains("Transfer-Encoding: chunked\r\n"));
        assert!(text.ends_with("\r\n\r\nd\r\nFLV\u{1}\u{5}\0\0\0\u{9}\0\0\0\0\r\n"));
    }
}
