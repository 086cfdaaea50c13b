//! Feeds the HTTP request head path arbitrary bytes, as a worker does: `parse_request` on a
//! read buffer (pipelined requests one after another), then `route` and `blocking_params` on
//! what it parsed.
//!
//! Input layout: byte 0 picks where the bytes are cut into two reads; the rest is the
//! connection's input.
//! Properties checked, beyond "no panic":
//! - a head is consumed whole or not at all (`Ok(None)` and errors consume nothing), and never
//!   more than `max_head` bytes; an incomplete head over `max_head` is an error, not a wait;
//! - the requests parsed, whether the input ended in an error, and what is left unparsed do
//!   not depend on where the input was cut (the error itself may: a head cut short past
//!   `max_head` is too large before a later byte could show it malformed);
//! - a decoded path never holds a `.` or `..` segment, nor a `/` or NUL inside a segment, and
//!   every routed name re-encoded with `encode_segment` decodes back to itself (names `.` and
//!   `..` excepted: `/live/..m3u8` names stream `.`, a name an RTMP publisher may use too;
//!   names are never paths, see `record::names` and the hls_dir writer);
//! - `HttpError::status` is a 4xx for every error.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtmp_edge::http::{
    blocking_params, decode_path, encode_segment, parse_request, route, HttpError, Request, Route,
};

const MAX_HEAD: usize = 1024;

#[derive(Debug, PartialEq)]
struct Outcome {
    requests: Vec<Request>,
    error: Option<HttpError>,
    leftover: Vec<u8>,
}

fn run(data: &[u8], cut: usize) -> Outcome {
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    for piece in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match parse_request(&mut buf, MAX_HEAD) {
                Ok(Some(req)) => {
                    let consumed = before - buf.len();
                    assert!(consumed > 0 && consumed <= MAX_HEAD, "consumed {consumed}");
                    requests.push(req);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "a partial head consumed input");
                    assert!(buf.len() <= MAX_HEAD, "waiting on a head over max_head");
                    break;
                }
                Err(e) => {
                    assert_eq!(buf.len(), before, "an error consumed input");
                    let (status, _) = e.status();
                    assert!((400..500).contains(&status));
                    return Outcome {
                        requests,
                        error: Some(e),
                        leftover: buf.to_vec(),
                    };
                }
            }
        }
    }
    Outcome {
        requests,
        error: None,
        leftover: buf.to_vec(),
    }
}

fn check_names(names: &[&str]) {
    for name in names {
        assert!(!name.is_empty());
        assert!(!name.contains(['\0', '/']), "NUL or / in {name:?}");
        if *name == "." || *name == ".." {
            continue;
        }
        let encoded = encode_segment(name);
        assert_eq!(
            decode_path(&encoded).as_deref(),
            Ok(*name),
            "round trip of {name:?}"
        );
    }
}

/// An app may hold `/` (its segments are names each).
fn check_app(app: &str) {
    for part in app.split('/').filter(|p| !p.is_empty()) {
        check_names(&[part]);
    }
}

fn check_route(req: &Request) {
    if let Err(e) = blocking_params(&req.query) {
        assert_eq!(e.status().0, 400);
    }
    let Ok(decoded) = decode_path(&req.path) else {
        assert!(route(&req.path).is_err());
        return;
    };
    for segment in decoded.split('/') {
        assert!(
            segment != "." && segment != "..",
            "dot segment in {decoded:?}"
        );
        assert!(!segment.contains('\0'));
    }
    match route(&req.path).expect("a decodable path routes") {
        Route::Flv { app, stream }
        | Route::Playlist { app, stream }
        | Route::Manifest { app, stream } => {
            check_names(&[&stream]);
            check_app(&app);
        }
        Route::Segment {
            app,
            stream,
            rendition,
            ..
        } => {
            check_names(&[&stream]);
            if let Some(r) = &rendition {
                check_names(&[r]);
            }
            check_app(&app);
        }
        Route::Health | Route::NotFound => {}
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&cut, data)) = input.split_first() else {
        return;
    };
    let whole = run(data, data.len());
    let cut = usize::from(cut).min(data.len());
    let split = run(data, cut);
    assert_eq!(
        whole.requests, split.requests,
        "cutting at {cut} changed the requests"
    );
    assert_eq!(
        whole.error.is_some(),
        split.error.is_some(),
        "cutting at {cut}"
    );
    if whole.error.is_none() {
        assert_eq!(
            whole.leftover, split.leftover,
            "cutting at {cut} changed the leftover"
        );
    }
    for req in &whole.requests {
        check_route(req);
    }
});
