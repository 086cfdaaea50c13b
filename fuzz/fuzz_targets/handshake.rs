//! Feeds arbitrary bytes, cut into arbitrary pieces, to a `ServerHandshake`.
//!
//! Input layout: byte 0 seeds the piece lengths; the rest is what the "client" sends.
//! Properties checked, beyond "no panic":
//! - only a prefix of the input is ever consumed: the buffer always holds exactly the input
//!   from some point on (so consumed ≤ input);
//! - once done, nothing more is consumed: the rest is exactly the input's suffix;
//! - an error is final and consumes nothing further;
//! - the outcome (transmit, kind, done, error, leftover) does not depend on how the input was cut.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtmp_edge::rtmp::handshake::{HandshakeError, HandshakeKind, ServerHandshake, RANDOM_LEN};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    sent: Vec<u8>,
    done: bool,
    kind: Option<HandshakeKind>,
    error: Option<HandshakeError>,
    leftover: Vec<u8>,
}

fn run(input: &[u8], mut next_len: impl FnMut() -> usize) -> Outcome {
    let mut server = ServerHandshake::new(&[0x5a; RANDOM_LEN], 1234);
    let mut buf = BytesMut::new();
    let mut sent = Vec::new();
    let mut fed = 0;
    let mut error = None;
    while fed < input.len() {
        let len = next_len().clamp(1, input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + len]);
        fed += len;
        let was_done = server.is_done();
        let before = buf.len();
        let result = server.handle_input(&mut buf);
        assert!(buf.len() <= before, "handle_input grew the buffer");
        let consumed = fed - buf.len();
        assert_eq!(
            &buf[..],
            &input[consumed..fed],
            "consumed something but a prefix"
        );
        if was_done {
            assert_eq!(
                buf.len(),
                before,
                "consumed input after the handshake was done"
            );
        }
        while let Some(bytes) = server.poll_transmit() {
            sent.extend_from_slice(&bytes);
        }
        if let Err(e) = result {
            assert!(!server.is_done(), "failed yet done");
            let mut again = BytesMut::from(&buf[..]);
            assert_eq!(
                server.handle_input(&mut again),
                Err(e.clone()),
                "error not sticky"
            );
            assert_eq!(again, buf, "consumed input after failing");
            error = Some(e);
            break;
        }
    }
    if server.is_done() {
        let consumed = fed - buf.len();
        assert_eq!(
            &buf[..],
            &input[consumed..fed],
            "leftover is not the input's suffix"
        );
    }
    Outcome {
        sent,
        done: server.is_done(),
        kind: server.kind(),
        error,
        leftover: buf.to_vec(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let mut state = u32::from(seed) | 1;
    let chunked = run(input, || {
        // xorshift: small and large pieces, around the 1/1536/1537 boundaries too.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        match state % 4 {
            0 => 1,
            1 => (state >> 8) as usize % 16,
            2 => 1536,
            _ => (state >> 8) as usize % 4000,
        }
    });
    let whole = run(input, || usize::MAX);
    // An error stops feeding, so the part after the failing piece may differ; compare the rest.
    assert_eq!(chunked.sent, whole.sent);
    assert_eq!(chunked.done, whole.done);
    assert_eq!(chunked.kind, whole.kind);
    assert_eq!(chunked.error, whole.error);
    if whole.error.is_none() {
        assert_eq!(chunked.leftover, whole.leftover);
    }
});
