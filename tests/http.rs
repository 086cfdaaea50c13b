//! HTTP on the workers: live HTTP-FLV, and clear answers to bad requests.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use bytes::BytesMut;
use common::{media, Client, TestServer, WAIT};
use rtmp_edge::http::{HttpError, PathError};
use rtmp_edge::media::flv::FlvReader;
use rtmp_edge::shard::CloseReason;

const VIDEO: u8 = 9;
const AUDIO: u8 = 8;
const DATA: u8 = 18;

/// Sends `request` and reads the response head (through the blank line); the rest stays in `rest`.
fn request(stream: &mut TcpStream, request: &str, rest: &mut BytesMut) -> String {
    stream.write_all(request.as_bytes()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&rest[..end + 4]).into_owned();
            let _ = rest.split_to(end + 4);
            return head;
        }
        let n = stream.read(&mut buf).expect("response");
        assert!(n > 0, "connection closed before a response head");
        rest.extend_from_slice(&buf[..n]);
    }
}

fn body_of(head: &str, stream: &mut TcpStream, rest: &mut BytesMut) -> String {
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("content length")
        .trim()
        .parse()
        .unwrap();
    let mut buf = [0u8; 4096];
    while rest.len() < len {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0);
        rest.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&rest.split_to(len)).into_owned()
}

/// Takes one complete chunk of a chunked body from the front of `rest` (`None`: not all
/// there yet); the zero chunk ends the body and comes back empty.
fn next_chunk(rest: &mut BytesMut) -> Option<BytesMut> {
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let size = usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap(), 16)
        .expect("a hex chunk size");
    if size == 0 {
        if rest.len() < end + 4 {
            return None;
        }
        assert_eq!(
            &rest[end..end + 4],
            b"\r\n\r\n",
            "the last chunk has no trailers"
        );
        let _ = rest.split_to(end + 4);
        return Some(BytesMut::new());
    }
    if rest.len() < end + 2 + size + 2 {
        return None;
    }
    let _ = rest.split_to(end + 2);
    let data = rest.split_to(size);
    assert_eq!(&rest.split_to(2)[..], b"\r\n", "chunk data ends with CRLF");
    Some(data)
}

/// Reads chunks from `viewer` until `n` have arrived (or the body ended).
fn read_chunks(viewer: &mut TcpStream, rest: &mut BytesMut, n: usize) -> Vec<BytesMut> {
    let mut chunks = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + WAIT;
    loop {
        while let Some(chunk) = next_chunk(rest) {
            let last = chunk.is_empty();
            chunks.push(chunk);
            if last || chunks.len() == n {
                return chunks;
            }
        }
        assert!(
            Instant::now() < deadline,
            "only {} chunks arrived",
            chunks.len()
        );
        let got = viewer.read(&mut buf).unwrap();
        assert!(got > 0, "viewer closed after {} chunks", chunks.len());
        rest.extend_from_slice(&buf[..got]);
    }
}

#[test]
fn http_flv_viewer_gets_header_metadata_sequence_headers_and_frames_byte_exact() {
    let server = TestServer::with_defaults();
    let mut publisher = Client::publish(server.addr, "live", "f");
    publisher.send(DATA, 0, &media::set_data_frame());
    publisher.send(VIDEO, 0, &media::avc_header());
    publisher.send(AUDIO, 0, &media::aac_header());
    publisher.send(VIDEO, 0, &media::avc_frame(true, 1, 30_000));
    let mut viewer = TcpStream::connect(server.http).unwrap();
    let mut rest = BytesMut::new();
    let head = request(
        &mut viewer,
        "GET /live/f.flv HTTP/1.1\r\nHost: x\r\n\r\n",
        &mut rest,
    );
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: video/x-flv"));
    assert!(head.contains("Access-Control-Allow-Origin: *"));
    for i in 2..6u32 {
        publisher.send(VIDEO, i * 40, &media::avc_frame(false, i, 5000));
        publisher.send(AUDIO, i * 40 + 5, &media::aac_frame(i));
    }
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    // HTTP/1.1: a chunked body, the FLV header first, then exactly one tag per chunk.
    let chunks = read_chunks(&mut viewer, &mut rest, 1 + 4 + 8);
    assert_eq!(
        &chunks[0][..],
        &[b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0]
    );
    let mut body = BytesMut::new();
    for chunk in &chunks {
        body.extend_from_slice(chunk);
    }
    for chunk in &chunks[1..] {
        // One whole tag per chunk: header, payload, and its own PreviousTagSize.
        let data_size = u32::from_be_bytes([0, chunk[1], chunk[2], chunk[3]]) as usize;
        assert_eq!(chunk.len(), 11 + data_size + 4, "one tag per chunk");
        let previous = u32::from_be_bytes(chunk[chunk.len() - 4..].try_into().unwrap());
        assert_eq!(previous as usize, 11 + data_size);
    }
    let mut reader = FlvReader::new();
    let mut tags = Vec::new();
    while let Some(tag) = reader.next_tag(&mut body).expect("valid FLV") {
        tags.push(tag);
    }
    assert_eq!(tags.len(), 12);
    assert_eq!(tags[0].tag_type, DATA);
    assert_eq!(&tags[0].data[3..13], b"onMetaData");
    assert_eq!(tags[1].data.as_ref(), media::avc_header().as_slice());
    assert_eq!(tags[2].data.as_ref(), media::aac_header().as_slice());
    assert_eq!(
        tags[3].data.as_ref(),
        media::avc_frame(true, 1, 30_000).as_slice(),
        "fast start from the keyframe"
    );
    assert_eq!(
        tags[4].data.as_ref(),
        media::avc_frame(false, 2, 5000).as_slice()
    );
    assert_eq!(tags[4].timestamp, 80);
    assert_eq!(tags[5].data.as_ref(), media::aac_frame(2).as_slice());
    assert_eq!(
        reader.previous_size_mismatches(),
        0,
        "every PreviousTagSize is right"
    );
}

#[test]
fn a_chunked_http_flv_body_ends_with_the_zero_chunk_and_http_1_0_is_delimited_by_close() {
    let mut config = rtmp_edge::config::Config::default();
    config.streams.keep_players_on_unpublish = false;
    let server = TestServer::start(config);
    let mut publisher = Client::publish(server.addr, "live", "end");
    publisher.send(VIDEO, 0, &media::avc_header());
    publisher.send(VIDEO, 0, &media::avc_frame(true, 1, 3000));
    let mut chunked = TcpStream::connect(server.http).unwrap();
    let mut rest11 = BytesMut::new();
    let head = request(
        &mut chunked,
        "GET /live/end.flv HTTP/1.1\r\nHost: x\r\n\r\n",
        &mut rest11,
    );
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    let mut plain = TcpStream::connect(server.http).unwrap();
    let mut rest10 = BytesMut::new();
    let head = request(
        &mut plain,
        "GET /live/end.flv HTTP/1.0\r\n\r\n",
        &mut rest10,
    );
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        !head.contains("Transfer-Encoding"),
        "HTTP/1.0 gets no chunks: {head}"
    );
    // Header + sequence header + keyframe, then the publisher leaves.
    let first = read_chunks(&mut chunked, &mut rest11, 3);
    assert_eq!(first.len(), 3);
    drop(publisher);
    let last = read_chunks(&mut chunked, &mut rest11, usize::MAX);
    assert!(
        last.last().is_some_and(|c| c.is_empty()),
        "the body ends with the zero chunk"
    );
    let mut after = Vec::new();
    chunked.read_to_end(&mut after).unwrap();
    assert!(
        after.is_empty() && rest11.is_empty(),
        "nothing after the last chunk"
    );
    // HTTP/1.0: the FLV bytes as they are, ended by the close.
    plain.read_to_end(&mut after).unwrap();
    rest10.extend_from_slice(&after);
    assert_eq!(&rest10[..3], b"FLV");
    let mut body = rest10;
    let mut reader = FlvReader::new();
    let mut tags = 0;
    while let Some(_tag) = reader.next_tag(&mut body).expect("valid FLV") {
        tags += 1;
    }
    assert_eq!(tags, 2);
    // All that is left is the last tag's PreviousTagSize (the reader takes it with a next tag).
    assert_eq!(body.len(), 4, "the body ends on a tag boundary");
}

#[test]
fn unknown_paths_get_404_and_the_connection_is_kept_alive() {
    let server = TestServer::with_defaults();
    let mut c = TcpStream::connect(server.http).unwrap();
    let mut rest = BytesMut::new();
    let head = request(
        &mut c,
        "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n",
        &mut rest,
    );
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    let body = body_of(&head, &mut c, &mut rest);
    assert!(body.contains("no such resource"));
    let head = request(
        &mut c,
        "GET /live/absent.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n",
        &mut rest,
    );
    assert!(
        head.starts_with("HTTP/1.1 404 "),
        "a second request on the same connection: {head}"
    );
}

#[test]
fn a_stream_nobody_publishes_is_404_when_players_do_not_wait() {
    let mut config = rtmp_edge::config::Config::default();
    config.streams.wait_for_publisher = false;
    let server = TestServer::start(config);
    let mut c = TcpStream::connect(server.http).unwrap();
    let mut rest = BytesMut::new();
    let head = request(&mut c, "GET /live/none.flv HTTP/1.1\r\n\r\n", &mut rest);
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    assert!(body_of(&head, &mut c, &mut rest).contains("not published"));
}

#[test]
fn bad_requests_get_clear_statuses_and_are_closed_while_others_carry_on() {
    let server = TestServer::with_defaults();
    let mut publisher = Client::publish(server.addr, "live", "ok");
    let mut player = Client::play(server.addr, "live", "ok");
    for (req, status) in [
        (
            "POST /live/ok.flv HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_string(),
            "413",
        ),
        ("DELETE /live/ok.flv HTTP/1.1\r\n\r\n".to_string(), "405"),
        ("\x01\x02garbage\r\n\r\n".to_string(), "400"),
        (
            format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(10_000)),
            "431",
        ),
    ] {
        let mut c = TcpStream::connect(server.http).unwrap();
        let port = format!(":{}", c.local_addr().unwrap().port());
        let mut rest = BytesMut::new();
        let head = request(&mut c, &req, &mut rest);
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{req:?} → {head}"
        );
        if status != "413" && status != "405" {
            let reason = server.closed(c.local_addr().unwrap().port()).reason;
            assert!(
                matches!(reason, CloseReason::BadHttpRequest(_)),
                "{req:?}: {reason:?}"
            );
            let _ = port;
        }
    }
    publisher.send(VIDEO, 0, &media::avc_frame(true, 1, 10));
    player.media(1);
}

#[test]
fn options_answers_cors_preflight() {
    let server = TestServer::with_defaults();
    let mut c = TcpStream::connect(server.http).unwrap();
    let mut rest = BytesMut::new();
    let head = request(
        &mut c,
        "OPTIONS /live/x.flv HTTP/1.1\r\nOrigin: http://a\r\n\r\n",
        &mut rest,
    );
    assert!(head.starts_with("HTTP/1.1 204 "), "{head}");
    assert!(head.contains("Access-Control-Allow-Methods: GET, HEAD, OPTIONS"));
}

#[test]
fn an_http_request_head_that_never_completes_is_closed_at_the_deadline() {
    let mut config = rtmp_edge::config::Config::default();
    config.timeouts.handshake_ms = 300;
    let server = TestServer::start(config);
    let mut publisher = Client::publish(server.addr, "live", "slowloris");
    let mut player = Client::play(server.addr, "live", "slowloris");
    let mut slow = TcpStream::connect(server.http).unwrap();
    slow.write_all(b"GET /live/slowloris.flv HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let port = format!(":{}", slow.local_addr().unwrap().port());
    assert!(matches!(
        server.closed(slow.local_addr().unwrap().port()).reason,
        CloseReason::HttpHeadTimeout { .. }
    ));
    let _ = port;
    slow.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(rest.is_empty(), "no response to an incomplete head");
    publisher.send(VIDEO, 0, &media::avc_frame(true, 1, 10));
    player.media(1);
}

#[test]
fn a_kept_alive_connection_left_idle_is_closed_as_idle_after_its_answer() {
    let mut config = rtmp_edge::config::Config::default();
    config.timeouts.handshake_ms = 300;
    let server = TestServer::start(config);
    let mut c = TcpStream::connect(server.http).unwrap();
    let mut rest = BytesMut::new();
    let head = request(
        &mut c,
        "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n",
        &mut rest,
    );
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    let _ = body_of(&head, &mut c, &mut rest);
    // Kept alive, then nothing: closed with the idle reason, not as a broken request.
    let port = format!(":{}", c.local_addr().unwrap().port());
    assert_eq!(
        server.closed(c.local_addr().unwrap().port()).reason,
        CloseReason::HttpIdle { ms: 300 }
    );
    let _ = port;
    let mut after = Vec::new();
    c.read_to_end(&mut after).unwrap();
    assert!(after.is_empty(), "closed without another answer");
}

#[test]
fn a_request_head_over_the_configured_max_request_bytes_is_431_and_closed_alone() {
    let mut config = rtmp_edge::config::Config::default();
    config.http.max_request_bytes = 512;
    let server = TestServer::start(config);
    let mut big = TcpStream::connect(server.http).unwrap();
    let mut rest = BytesMut::new();
    let filler = "x".repeat(600);
    let head = request(
        &mut big,
        &format!("GET /nothing HTTP/1.1\r\nHost: x\r\nX-Fill: {filler}\r\n\r\n"),
        &mut rest,
    );
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    let port = format!(":{}", big.local_addr().unwrap().port());
    assert_eq!(
        server.closed(big.local_addr().unwrap().port()).reason,
        CloseReason::BadHttpRequest(HttpError::HeadTooLarge { limit: 512 })
    );
    let _ = port;
    // A request under the limit on another connection is answered as usual.
    let mut small = TcpStream::connect(server.http).unwrap();
    let mut rest = BytesMut::new();
    let head = request(
        &mut small,
        "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n",
        &mut rest,
    );
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
}

#[test]
fn a_head_with_many_headers_is_served_and_one_past_the_cap_is_431_and_closed_alone() {
    let server = TestServer::with_defaults();
    let headers = |n: usize| -> String {
        (0..n)
            .map(|i| format!("X-Proxy-{i}: hop\r\n"))
            .collect::<String>()
    };
    // What browsers send behind a few proxies: 60 headers, well over the old cap of 32.
    let mut c = TcpStream::connect(server.http).unwrap();
    let mut rest = BytesMut::new();
    let head = request(
        &mut c,
        &format!("GET /nothing HTTP/1.1\r\nHost: x\r\n{}\r\n", headers(59)),
        &mut rest,
    );
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    let _ = body_of(&head, &mut c, &mut rest);
    // Past the cap (100 headers): 431, and only that connection is closed, with the reason.
    let mut many = TcpStream::connect(server.http).unwrap();
    let mut rest_many = BytesMut::new();
    let head = request(
        &mut many,
        &format!("GET /nothing HTTP/1.1\r\nHost: x\r\n{}\r\n", headers(100)),
        &mut rest_many,
    );
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    let port = format!(":{}", many.local_addr().unwrap().port());
    assert_eq!(
        server.closed(many.local_addr().unwrap().port()).reason,
        CloseReason::BadHttpRequest(HttpError::TooManyHeaders { limit: 100 })
    );
    let _ = port;
    // The first connection, kept alive, carries on.
    let head = request(
        &mut c,
        "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n",
        &mut rest,
    );
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
}

#[test]
fn paths_with_bad_percent_encodings_are_400_and_closed_while_others_carry_on() {
    let mut config = rtmp_edge::config::Config::default();
    config.streams.wait_for_publisher = false;
    let server = TestServer::start(config);
    let mut publisher = Client::publish(server.addr, "live", "ok");
    let mut player = Client::play(server.addr, "live", "ok");
    for (path, error) in [
        ("/live/a%2Fb.flv", PathError::SeparatorOrNul),
        ("/live/a%00b.m3u8", PathError::SeparatorOrNul),
        ("/live/%zz.flv", PathError::InvalidPercentEncoding),
        ("/live/a%2.mpd", PathError::InvalidPercentEncoding),
        ("/live/%C3.m3u8", PathError::NotUtf8),
        ("/live/../ok.flv", PathError::DotSegment),
        ("/live/%2e%2E/ok/seg-0.ts", PathError::DotSegment),
    ] {
        let mut c = TcpStream::connect(server.http).unwrap();
        let mut rest = BytesMut::new();
        let head = request(
            &mut c,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"),
            &mut rest,
        );
        assert!(head.starts_with("HTTP/1.1 400 "), "{path} → {head}");
        assert_eq!(
            server.closed(c.local_addr().unwrap().port()).reason,
            CloseReason::BadHttpPath {
                path: path.to_string(),
                error
            },
            "{path}"
        );
    }
    publisher.send(VIDEO, 0, &media::avc_frame(true, 1, 10));
    player.media(1);
}

#[test]
fn an_http_flv_path_is_percent_decoded_to_the_rtmp_stream_name() {
    let mut config = rtmp_edge::config::Config::default();
    config.streams.wait_for_publisher = false;
    let server = TestServer::start(config);
    let name = "café 100% a:b";
    let mut publisher = Client::publish(server.addr, "live", name);
    let mut viewer = TcpStream::connect(server.http).unwrap();
    let mut rest = BytesMut::new();
    let head = request(
        &mut viewer,
        "GET /live/caf%C3%A9%20100%25%20a%3Ab.flv HTTP/1.1\r\nHost: x\r\n\r\n",
        &mut rest,
    );
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    publisher.send(VIDEO, 0, &media::avc_header());
    publisher.send(VIDEO, 0, &media::avc_frame(true, 7, 64));
    let chunks = read_chunks(&mut viewer, &mut rest, 2);
    assert_eq!(&chunks[0][..3], b"FLV", "the FLV file header, then tags");
    assert_eq!(
        chunks[1][0], VIDEO,
        "the publisher's video reaches the viewer"
    );
}
