//! Feeds a whole `ServerSession` arbitrary bytes after a valid handshake (made here with a
//! `ClientHandshake`), answering its requests as a worker would.
//!
//! Input layout: byte 0 is the answer policy (bit 0 accepts connect, bit 1 publish, bit 2
//! play, bit 3 sends unpublish/stopped notices after accepting), byte 1 the read size (1..=256,
//! 0 = everything at once); the rest is what the client sends after C2.
//! Properties checked, beyond "no panic":
//! - `handle_input` only ever consumes a prefix of the buffer;
//! - `unfinished_message` is `Some` whenever unread bytes remain (so the worker's
//!   `timeouts.message_ms` bounds every partial message);
//! - the outcome (events, error) does not depend on how the input was cut
//!   (the order of answers may: a ping is answered at once, a command held behind a pending
//!   request is answered when it is processed); when
//!   the input is bad, both ways end in an error, though not always the same one (fed at once,
//!   a chunk error further on can surface before a bad command held back behind a pending
//!   `connect`; fed in pieces, the command is processed first). Checked without the
//!   server-side notices of bit 3, which land between other client messages when cut.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtmp_edge::rtmp::handshake::{ClientHandshake, RANDOM_LEN};
use rtmp_edge::rtmp::session::{ServerConfig, ServerEvent, ServerSession, SessionError};
use rtmp_edge::rtmp::Limits;

#[derive(Debug, PartialEq)]
struct Outcome {
    sent: Vec<u8>,
    events: Vec<ServerEvent>,
    error: Option<SessionError>,
}

fn config() -> ServerConfig {
    ServerConfig {
        limits: Limits {
            max_message_size: 64 * 1024,
            max_chunk_size: 0x7FFF_FFFF,
            max_chunk_streams: 16,
            max_amf_depth: 16,
        },
        chunk_size: 4096,
        window_ack_size: 2_500_000,
        peer_bandwidth: 2_500_000,
    }
}

/// A session past a valid plain handshake, with its handshake bytes taken.
fn established() -> ServerSession {
    let mut server = ServerSession::new(config(), &[0x5a; RANDOM_LEN], 0);
    let mut client = ClientHandshake::new(&[0xa5; RANDOM_LEN], 0, false);
    let (mut c2s, mut s2c) = (BytesMut::new(), BytesMut::new());
    for _ in 0..4 {
        while let Some(t) = client.poll_transmit() {
            c2s.extend_from_slice(&t);
        }
        server.handle_input(&mut c2s).expect("valid handshake");
        while let Some(t) = server.poll_transmit() {
            s2c.extend_from_slice(&t);
        }
        client.handle_input(&mut s2c).expect("valid handshake");
    }
    assert!(server.is_established() && client.is_done());
    assert!(c2s.is_empty());
    server
}

fn answer(server: &mut ServerSession, policy: u8, events: &mut Vec<ServerEvent>) {
    while let Some(event) = server.poll_event() {
        match &event {
            ServerEvent::ConnectRequested { .. } if policy & 1 != 0 => server.accept_connect(),
            ServerEvent::ConnectRequested { .. } => server.reject_connect("no"),
            ServerEvent::PublishRequested { stream_id, .. } if policy & 2 != 0 => {
                server.accept_publish(*stream_id);
                if policy & 8 != 0 {
                    server.notify_unpublished(*stream_id);
                    server.notify_republished(*stream_id);
                }
            }
            ServerEvent::PublishRequested { stream_id, .. } => {
                server.reject_publish(*stream_id, "NetStream.Publish.BadName", "no")
            }
            ServerEvent::PlayRequested { stream_id, .. } if policy & 4 != 0 => {
                server.accept_play(*stream_id);
                if policy & 8 != 0 {
                    server.notify_stopped(*stream_id);
                }
            }
            ServerEvent::PlayRequested { stream_id, .. } => {
                server.reject_play(*stream_id, "NetStream.Play.StreamNotFound", "no")
            }
            _ => {}
        }
        events.push(event);
    }
}

fn run(data: &[u8], step: usize, policy: u8) -> Outcome {
    let mut server = established();
    let mut buf = BytesMut::new();
    let mut sent = Vec::new();
    let mut events = Vec::new();
    let mut error = None;
    let mut fed = 0;
    while fed < data.len() {
        let len = step.clamp(1, data.len() - fed);
        buf.extend_from_slice(&data[fed..fed + len]);
        fed += len;
        let before = buf.len();
        let result = server.handle_input(&mut buf);
        assert!(buf.len() <= before, "handle_input grew the buffer");
        let consumed = fed - buf.len();
        assert_eq!(
            &buf[..],
            &data[consumed..fed],
            "consumed something but a prefix"
        );
        answer(&mut server, policy, &mut events);
        while let Some(t) = server.poll_transmit() {
            sent.extend_from_slice(&t);
        }
        if let Err(e) = result {
            error = Some(e);
            break;
        }
        if !buf.is_empty() {
            assert!(
                server.unfinished_message(buf.len()).is_some(),
                "unread bytes but no unfinished message"
            );
        }
    }
    // An error met in the backlog inside `accept_*`/`reject_*` comes back from the next
    // `handle_input` (the worker's next read): make that call.
    if error.is_none() {
        error = server.handle_input(&mut buf).err();
        answer(&mut server, policy, &mut events);
        while let Some(t) = server.poll_transmit() {
            sent.extend_from_slice(&t);
        }
    }
    Outcome {
        sent,
        events,
        error,
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let (policy, step, data) = (input[0], usize::from(input[1]), &input[2..]);
    let whole = run(data, data.len().max(1), policy);
    // Server-side notices (bit 3) are timing by nature: sent after a different number of the
    // client's messages, they meet another session state. Compare only without them.
    if step != 0 && policy & 8 == 0 {
        let cut = run(data, step, policy);
        let why = format!("cutting the input into {step}-byte reads changed the outcome");
        assert_eq!(
            whole.error.is_some(),
            cut.error.is_some(),
            "{why}: {whole:?} {cut:?}"
        );
        if whole.error.is_none() {
            // Protocol control is answered at once while commands wait behind a pending
            // request, so a ping's answer may go out before or after a command's: the same
            // events and the same messages, not always in the same order (nor, as chunk headers
            // compress against the previous message on their csid, the same bytes).
            // Compared as text: a NaN (play's `start`, from the peer) is not equal to itself.
            let text = |o: &Outcome| format!("{:?}", o.events);
            assert_eq!(text(&whole), text(&cut), "{why}");
        }
    }
});
