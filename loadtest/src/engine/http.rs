//! HTTP-FLV viewers: the request, the response head check and the FLV body parse. Sans-IO:
//! the engine writes [`request`] and feeds every byte read to [`HttpFlv::parse`].

use bytes::{Buf, BytesMut};
use rtmp_edge::media::flv::{FlvReader, FlvTag};

/// A response head longer than this is an error (the server sends a few hundred bytes).
const MAX_HEAD: usize = 16 * 1024;

/// The GET request of one viewer.
pub(super) fn request(host: &str, port: u16, path: &str) -> Vec<u8> {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: rtmp-load\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes()
}

/// What one [`HttpFlv::parse`] call found.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    /// The `200` head was consumed in this call.
    pub head_ok: bool,
    /// FLV tags completed in this call.
    pub tags: Vec<FlvTag>,
}

/// One HTTP-FLV viewer's receive state.
#[derive(Debug, Default)]
pub(super) struct HttpFlv {
    head_done: bool,
    reader: FlvReader,
    /// The body uses chunked transfer coding: its decoder and the decoded bytes.
    chunked: Option<(Dechunk, BytesMut)>,
}

/// A chunk-size line longer than this is an error.
const MAX_CHUNK_LINE: usize = 64;

/// Chunked transfer decoding (RFC 9112 §7.1), push style.
#[derive(Debug, Default)]
struct Dechunk {
    /// Data bytes left in the current chunk.
    left: usize,
    /// The CRLF after a chunk's data is due.
    crlf: bool,
    /// The last (zero-size) chunk was read.
    done: bool,
}

impl Dechunk {
    /// Moves the chunk data at the front of `wire` into `body`; stops at short input.
    fn decode(&mut self, wire: &mut BytesMut, body: &mut BytesMut) -> Result<(), String> {
        loop {
            if self.done {
                wire.clear(); // trailers, ignored
                return Ok(());
            }
            if self.left > 0 {
                let n = self.left.min(wire.len());
                if n == 0 {
                    return Ok(());
                }
                body.extend_from_slice(&wire[..n]);
                wire.advance(n);
                self.left -= n;
                self.crlf = self.left == 0;
                continue;
            }
            if self.crlf {
                if wire.len() < 2 {
                    return Ok(());
                }
                if &wire[..2] != b"\r\n" {
                    return Err("chunk data not followed by CRLF".to_string());
                }
                wire.advance(2);
                self.crlf = false;
                continue;
            }
            let Some(end) = wire.windows(2).position(|w| w == b"\r\n") else {
                if wire.len() > MAX_CHUNK_LINE {
                    return Err(format!("chunk-size line over {MAX_CHUNK_LINE} bytes"));
                }
                return Ok(());
            };
            let line = String::from_utf8_lossy(&wire[..end]).into_owned();
            let hex = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(hex, 16)
                .ok()
                .filter(|_| hex.len() <= 8)
                .ok_or_else(|| format!("bad chunk size {line:?}"))?;
            wire.advance(end + 2);
            self.left = size;
            self.done = size == 0;
        }
    }
}

impl HttpFlv {
    /// Whether the `200` response head has been received.
    pub fn head_done(&self) -> bool {
        self.head_done
    }

    /// Consumes what it can from `buf`: the response head (which must be a `200`), then FLV
    /// tags. Short input is not an error; a non-200 status or a malformed body is.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Parsed, String> {
        let mut out = Parsed::default();
        if !self.head_done {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                if buf.len() > MAX_HEAD {
                    return Err(format!("HTTP response head over {MAX_HEAD} bytes"));
                }
                return Ok(out);
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = head.lines().next().unwrap_or_default();
            let mut words = status.split_ascii_whitespace();
            let version = words.next().unwrap_or_default();
            let code = words.next().unwrap_or_default();
            if !version.starts_with("HTTP/1.") {
                return Err(format!("not an HTTP response: {status:?}"));
            }
            if code != "200" {
                return Err(format!("HTTP status {}", status.trim()));
            }
            let chunked = head.lines().any(|l| {
                l.split_once(':').is_some_and(|(name, value)| {
                    name.trim().eq_ignore_ascii_case("transfer-encoding")
                        && value.to_ascii_lowercase().contains("chunked")
                })
            });
            if chunked {
                self.chunked = Some((Dechunk::default(), BytesMut::new()));
            }
            buf.advance(end + 4);
            self.head_done = true;
            out.head_ok = true;
        }
        let body = match &mut self.chunked {
            Some((dechunk, body)) => {
                dechunk.decode(buf, body)?;
                body
            }
            None => buf,
        };
        loop {
            match self.reader.next_tag(body) {
                Ok(Some(tag)) => out.tags.push(tag),
                Ok(None) => return Ok(out),
                Err(e) => return Err(format!("FLV body: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtmp_edge::media::flv::{header_bytes, write_tag, TAG_VIDEO};

    #[test]
    fn request_names_the_path_and_host() {
        let r = String::from_utf8(request("127.0.0.1", 8080, "/live/s.flv")).unwrap();
        assert!(r.starts_with("GET /live/s.flv HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
        let r = String::from_utf8(request("::1", 80, "/a/b.flv")).unwrap();
        assert!(r.contains("Host: [::1]:80\r\n"));
    }

    #[test]
    fn head_then_tags_are_parsed_across_split_reads() {
        let mut wire = BytesMut::from(&b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"[..]);
        wire.extend_from_slice(&header_bytes(true, true));
        write_tag(TAG_VIDEO, 40, &[0x17, 1, 0, 0, 0, 9, 9], &mut wire).unwrap();
        write_tag(TAG_VIDEO, 80, &[0x27, 1, 0, 0, 0], &mut wire).unwrap();
        let mut p = HttpFlv::default();
        let mut buf = BytesMut::new();
        let mut heads = 0;
        let mut tags = Vec::new();
        for b in wire.iter() {
            buf.extend_from_slice(&[*b]);
            let got = p.parse(&mut buf).unwrap();
            heads += usize::from(got.head_ok);
            tags.extend(got.tags);
        }
        assert_eq!(heads, 1);
        assert!(p.head_done());
        assert_eq!(tags.len(), 2);
        assert_eq!((tags[0].tag_type, tags[0].timestamp), (TAG_VIDEO, 40));
        assert_eq!(&tags[1].data[..], &[0x27, 1, 0, 0, 0]);
    }

    #[test]
    fn a_chunked_body_is_decoded_across_split_reads() {
        let mut flv = BytesMut::new();
        flv.extend_from_slice(&header_bytes(true, true));
        write_tag(TAG_VIDEO, 40, &[0x17, 1, 0, 0, 0, 9, 9], &mut flv).unwrap();
        write_tag(TAG_VIDEO, 80, &[0x27, 1, 0, 0, 0], &mut flv).unwrap();
        let mut wire = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"[..],
        );
        // Chunks that do not line up with tags, a chunk extension, then the last chunk.
        for (i, piece) in flv.chunks(7).enumerate() {
            let ext = if i == 1 { ";x=y" } else { "" };
            wire.extend_from_slice(format!("{:X}{ext}\r\n", piece.len()).as_bytes());
            wire.extend_from_slice(piece);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let mut p = HttpFlv::default();
        let mut buf = BytesMut::new();
        let mut tags = Vec::new();
        for b in wire.iter() {
            buf.extend_from_slice(&[*b]);
            tags.extend(p.parse(&mut buf).unwrap().tags);
        }
        assert_eq!(tags.len(), 2);
        assert_eq!((tags[1].tag_type, tags[1].timestamp), (TAG_VIDEO, 80));
        assert_eq!(&tags[0].data[..], &[0x17, 1, 0, 0, 0, 9, 9]);
        assert!(buf.is_empty());
        let mut p = HttpFlv::default();
        let mut bad =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..]);
        assert!(p.parse(&mut bad).unwrap_err().contains("chunk size"));
    }

    #[test]
    fn non_200_status_is_an_error() {
        let mut p = HttpFlv::default();
        let mut buf = BytesMut::from(&b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"[..]);
        let e = p.parse(&mut buf).unwrap_err();
        assert!(e.contains("404"), "{e}");
        let mut p = HttpFlv::default();
        let mut buf = BytesMut::from(&b"RTMP nonsense\r\n\r\n"[..]);
        assert!(p.parse(&mut buf).is_err());
    }

    #[test]
    fn a_head_without_end_waits_then_fails_when_oversized() {
        let mut p = HttpFlv::default();
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        assert!(!p.parse(&mut buf).unwrap().head_ok);
        buf.extend_from_slice(&vec![b'x'; MAX_HEAD]);
        assert!(p.parse(&mut buf).is_err());
    }
}
