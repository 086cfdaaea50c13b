//! Unit tests for the simple and digest handshakes in both roles: byte layouts, digests,
//! split reads and errors.

use super::*;

const CLIENT_RANDOM: [u8; RANDOM_LEN] = filled(0x11);
const SERVER_RANDOM: [u8; RANDOM_LEN] = filled(0x5a);

/// Deterministic, non-uniform bytes, so digest offsets differ between seeds.
const fn filled(seed: u8) -> [u8; RANDOM_LEN] {
    let mut out = [0u8; RANDOM_LEN];
    let mut i = 0;
    let mut x = seed as u32;
    while i < RANDOM_LEN {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out[i] = (x >> 16) as u8;
        i += 1;
    }
    out
}

/// Everything a handshake produced, for comparing runs.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    sent: Vec<u8>,
    done: bool,
    kind: Option<HandshakeKind>,
    leftover: Vec<u8>,
    error: Option<HandshakeError>,
}

trait Role {
    fn input(&mut self, buf: &mut BytesMut) -> Result<(), HandshakeError>;
    fn output(&mut self) -> Option<Bytes>;
    fn done(&self) -> bool;
    fn kind_seen(&self) -> Option<HandshakeKind>;
}

impl Role for ServerHandshake {
    fn input(&mut self, buf: &mut BytesMut) -> Result<(), HandshakeError> {
        self.handle_input(buf)
    }
    fn output(&mut self) -> Option<Bytes> {
        self.poll_transmit()
    }
    fn done(&self) -> bool {
        self.is_done()
    }
    fn kind_seen(&self) -> Option<HandshakeKind> {
        self.kind()
    }
}

impl Role for ClientHandshake {
    fn input(&mut self, buf: &mut BytesMut) -> Result<(), HandshakeError> {
        self.handle_input(buf)
    }
    fn output(&mut self) -> Option<Bytes> {
        self.poll_transmit()
    }
    fn done(&self) -> bool {
        self.is_done()
    }
    fn kind_seen(&self) -> Option<HandshakeKind> {
        self.kind()
    }
}

/// Feeds `input` to `role` in the given pieces, as a connection would.
fn feed<R: Role>(mut role: R, pieces: &[&[u8]]) -> Outcome {
    let mut buf = BytesMut::new();
    let mut sent = Vec::new();
    let mut error = None;
    while let Some(bytes) = role.output() {
        sent.extend_from_slice(&bytes);
    }
    let mut fed = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        fed.extend_from_slice(piece);
        let result = role.input(&mut buf);
        // Only ever a prefix of the input is consumed.
        assert_eq!(&buf[..], &fed[fed.len() - buf.len()..]);
        if let Err(e) = result {
            error = Some(e);
            break;
        }
        while let Some(bytes) = role.output() {
            sent.extend_from_slice(&bytes);
        }
    }
    Outcome {
        sent,
        done: role.done(),
        kind: role.kind_seen(),
        leftover: buf.to_vec(),
        error,
    }
}

/// Runs a client against a server in memory; returns (client→server, server→client) bytes.
fn exchange(client: &mut ClientHandshake, server: &mut ServerHandshake) -> (Vec<u8>, Vec<u8>) {
    let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
    let (mut c2s, mut s2c) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        while let Some(bytes) = client.poll_transmit() {
            c2s.extend_from_slice(&bytes);
            to_server.extend_from_slice(&bytes);
        }
        server.handle_input(&mut to_server).expect("server accepts");
        while let Some(bytes) = server.poll_transmit() {
            s2c.extend_from_slice(&bytes);
            to_client.extend_from_slice(&bytes);
        }
        client.handle_input(&mut to_client).expect("client accepts");
    }
    assert!(client.is_done() && server.is_done());
    assert!(to_server.is_empty() && to_client.is_empty());
    (c2s, s2c)
}

// Independent re-implementation of ffmpeg's checks (rtmpproto.c), written from its layout:
// calc_digest_pos(buf, off, 728, off + 4) and HMAC over the packet without the digest.
fn hmac(key: &[u8], data: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for d in data {
        mac.update(d);
    }
    mac.finalize().into_bytes().to_vec()
}

fn ffmpeg_digest_pos(packet: &[u8], off: usize) -> usize {
    packet[off..off + 4]
        .iter()
        .map(|&b| b as usize)
        .sum::<usize>()
        % 728
        + off
        + 4
}

fn ffmpeg_validates(packet: &[u8], off: usize, key: &[u8]) -> Option<usize> {
    let pos = ffmpeg_digest_pos(packet, off);
    let digest = hmac(key, &[&packet[..pos], &packet[pos + 32..]]);
    (digest == packet[pos..pos + 32]).then_some(pos)
}

/// What ffmpeg (as a player) checks of S1 and S2 after sending the scheme-0 digest `c1`.
fn ffmpeg_accepts(c1: &[u8], s1: &[u8], s2: &[u8]) -> bool {
    let fms_public = b"Genuine Adobe Flash Media Server 001";
    if s1[4] < 3 {
        return false;
    }
    if ffmpeg_validates(s1, 772, fms_public).is_none()
        && ffmpeg_validates(s1, 8, fms_public).is_none()
    {
        return false;
    }
    let client_pos = ffmpeg_digest_pos(c1, 8);
    let key = hmac(&FMS_KEY, &[&c1[client_pos..client_pos + 32]]);
    hmac(&key, &[&s2[..1504]]) == s2[1504..]
}

fn all_cuts(bytes: &[u8]) -> impl Iterator<Item = [&[u8]; 2]> {
    (0..=bytes.len()).map(|k| [&bytes[..k], &bytes[k..]])
}

#[test]
fn key_constants_have_the_published_lengths_and_prefixes() {
    assert_eq!(
        &FP_KEY[..FP_KEY_PUBLIC_LEN],
        b"Genuine Adobe Flash Player 001"
    );
    assert_eq!(
        &FMS_KEY[..FMS_KEY_PUBLIC_LEN],
        b"Genuine Adobe Flash Media Server 001"
    );
    assert_eq!(FP_KEY[30..], FMS_KEY[36..]);
    assert_eq!(&FMS_KEY[36..40], &[0xF0, 0xEE, 0xC2, 0x4A]);
    assert_eq!(&FMS_KEY[64..], &[0xCF, 0xEB, 0x31, 0xAE]);
}

#[test]
fn digest_offsets_follow_the_sum_mod_728_rule() {
    let mut packet = [0u8; PACKET_LEN];
    assert_eq!(digest_offset(&packet, 0), 12);
    assert_eq!(digest_offset(&packet, 1), 776);
    packet[8..12].copy_from_slice(&[255; 4]);
    packet[772..776].copy_from_slice(&[200, 200, 200, 200]);
    assert_eq!(digest_offset(&packet, 0), 12 + 1020 % 728);
    assert_eq!(digest_offset(&packet, 1), 776 + 800 % 728);
}

#[test]
fn simple_client_and_server_complete_against_each_other() {
    let mut client = ClientHandshake::new(&CLIENT_RANDOM, 1_000, false);
    let mut server = ServerHandshake::new(&SERVER_RANDOM, 2_000);
    let (c2s, s2c) = exchange(&mut client, &mut server);
    assert_eq!(server.kind(), Some(HandshakeKind::Simple));
    assert_eq!(client.kind(), Some(HandshakeKind::Simple));
    assert_eq!(c2s.len(), 1 + 2 * PACKET_LEN);
    assert_eq!(s2c.len(), 1 + 2 * PACKET_LEN);
    let (c1, c2) = (&c2s[1..1 + PACKET_LEN], &c2s[1 + PACKET_LEN..]);
    let (s1, s2) = (&s2c[1..1 + PACKET_LEN], &s2c[1 + PACKET_LEN..]);
    assert_eq!((c2s[0], s2c[0]), (3, 3));
    assert_eq!(&c1[..8], &[0, 0, 0x03, 0xe8, 0, 0, 0, 0]);
    assert_eq!(&c1[8..], &CLIENT_RANDOM[..]);
    assert_eq!(&s1[..8], &[0, 0, 0x07, 0xd0, 0, 0, 0, 0]);
    assert_eq!(&s1[8..], &SERVER_RANDOM[..]);
    // S2: C1's time, our time2, C1's random. C2: S1 verbatim.
    assert_eq!(&s2[..4], &c1[..4]);
    assert_eq!(&s2[4..8], &2_000u32.to_be_bytes());
    assert_eq!(&s2[8..], &c1[8..]);
    assert_eq!(c2, s1);
}

#[test]
fn digest_client_against_server_agrees_on_digest_scheme_0() {
    let mut client = ClientHandshake::new(&CLIENT_RANDOM, 1_000, true);
    let mut server = ServerHandshake::new(&SERVER_RANDOM, 2_000);
    let (c2s, s2c) = exchange(&mut client, &mut server);
    assert_eq!(server.kind(), Some(HandshakeKind::Digest { scheme: 0 }));
    assert_eq!(client.kind(), Some(HandshakeKind::Digest { scheme: 0 }));
    let c1 = &c2s[1..1 + PACKET_LEN];
    assert_eq!(&c1[4..8], &CLIENT_VERSION);
    assert!(ffmpeg_accepts(
        c1,
        &s2c[1..1 + PACKET_LEN],
        &s2c[1 + PACKET_LEN..]
    ));
}

#[test]
fn digest_client_against_server_agrees_on_digest_scheme_1() {
    let mut client = ClientHandshake::with_digest_scheme(&CLIENT_RANDOM, 1_000, 1);
    let mut server = ServerHandshake::new(&SERVER_RANDOM, 2_000);
    let (c2s, s2c) = exchange(&mut client, &mut server);
    assert_eq!(server.kind(), Some(HandshakeKind::Digest { scheme: 1 }));
    assert_eq!(client.kind(), Some(HandshakeKind::Digest { scheme: 1 }));
    let (c1, s1) = (&c2s[1..1 + PACKET_LEN], &s2c[1..1 + PACKET_LEN]);
    // The client's digest is where scheme 1 puts it, keyed with the FP key's public part.
    assert!(ffmpeg_validates(c1, 772, b"Genuine Adobe Flash Player 001").is_some());
    assert!(ffmpeg_validates(c1, 8, b"Genuine Adobe Flash Player 001").is_none());
    // The server answered in the same scheme.
    assert!(ffmpeg_validates(s1, 772, b"Genuine Adobe Flash Media Server 001").is_some());
    assert_eq!(&s1[4..8], &SERVER_VERSION);
}

#[test]
fn digest_c2_is_signed_with_the_server_digest_and_the_full_player_key() {
    let mut client = ClientHandshake::new(&CLIENT_RANDOM, 1_000, true);
    let mut server = ServerHandshake::new(&SERVER_RANDOM, 2_000);
    let (c2s, s2c) = exchange(&mut client, &mut server);
    let s1 = &s2c[1..1 + PACKET_LEN];
    let c2 = &c2s[1 + PACKET_LEN..];
    let pos = ffmpeg_validates(s1, 8, b"Genuine Adobe Flash Media Server 001").unwrap();
    let key = hmac(&FP_KEY, &[&s1[pos..pos + 32]]);
    assert_eq!(hmac(&key, &[&c2[..1504]]), c2[1504..]);
}

#[test]
fn server_detects_ffmpeg_digest_c1_and_answers_so_ffmpeg_accepts() {
    let c0c1 = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/handshake/ffmpeg_c0c1.bin"
    ));
    assert_eq!(c0c1.len(), 1 + PACKET_LEN);
    let mut server = ServerHandshake::new(&SERVER_RANDOM, 2_000);
    let mut buf = BytesMut::from(&c0c1[..]);
    server.handle_input(&mut buf).unwrap();
    assert!(buf.is_empty());
    assert_eq!(server.kind(), Some(HandshakeKind::Digest { scheme: 0 }));
    let reply = server.poll_transmit().unwrap();
    assert_eq!(reply.len(), 1 + 2 * PACKET_LEN);
    assert_eq!(reply[0], RTMP_VERSION);
    let c1 = &c0c1[1..];
    assert!(ffmpeg_accepts(
        c1,
        &reply[1..1 + PACKET_LEN],
        &reply[1 + PACKET_LEN..]
    ));
    assert!(!server.is_done());
}

#[test]
fn server_falls_back_to_simple_when_c1_has_a_version_but_no_valid_digest() {
    let mut c0c1 = vec![3, 0, 0, 0, 1, 9, 0, 124, 2];
    c0c1.extend_from_slice(&CLIENT_RANDOM);
    let outcome = feed(ServerHandshake::new(&SERVER_RANDOM, 7), &[&c0c1]);
    assert_eq!(outcome.kind, Some(HandshakeKind::Simple));
    let s2 = &outcome.sent[1 + PACKET_LEN..];
    assert_eq!(&s2[..4], &c0c1[1..5]);
    assert_eq!(&s2[8..], &c0c1[9..]);
    assert_eq!(
        &outcome.sent[5..9],
        &[0; 4],
        "a simple S1 has a zero version"
    );
}

#[test]
fn server_rejects_rtmpe_version_at_once_without_waiting_for_c1() {
    let mut server = ServerHandshake::new(&SERVER_RANDOM, 0);
    let mut buf = BytesMut::from(&[6u8][..]);
    assert_eq!(
        server.handle_input(&mut buf),
        Err(HandshakeError::UnsupportedVersion(6))
    );
    assert_eq!(server.poll_transmit(), None);
    // The error sticks.
    buf.extend_from_slice(&[0; PACKET_LEN]);
    assert_eq!(
        server.handle_input(&mut buf),
        Err(HandshakeError::UnsupportedVersion(6))
    );
    assert!(!server.is_done());
}

#[test]
fn server_rejects_an_http_request() {
    let outcome = feed(
        ServerHandshake::new(&SERVER_RANDOM, 0),
        &[b"GET / HTTP/1.1\r\n"],
    );
    assert_eq!(
        outcome.error,
        Some(HandshakeError::UnsupportedVersion(b'G'))
    );
    assert!(outcome.sent.is_empty());
}

#[test]
fn client_rejects_a_server_answering_another_version() {
    let outcome = feed(ClientHandshake::new(&CLIENT_RANDOM, 0, true), &[&[6]]);
    assert_eq!(outcome.error, Some(HandshakeError::UnsupportedVersion(6)));
    assert_eq!(outcome.sent.len(), 1 + PACKET_LEN, "only C0C1 went out");
}

#[test]
fn short_input_consumes_nothing_and_is_not_an_error() {
    let mut server = ServerHandshake::new(&SERVER_RANDOM, 0);
    let mut buf = BytesMut::new();
    server.handle_input(&mut buf).unwrap();
    buf.extend_from_slice(&[3; 100]);
    server.handle_input(&mut buf).unwrap();
    assert_eq!(buf.len(), 99, "C0 is consumed, partial C1 stays");
    assert_eq!(server.poll_transmit(), None);
    assert_eq!(server.kind(), None);
}

#[test]
fn bytes_after_c2_stay_in_the_servers_buffer() {
    let mut client = ClientHandshake::new(&CLIENT_RANDOM, 1, true);
    let (c2s, _) = exchange(&mut client, &mut ServerHandshake::new(&SERVER_RANDOM, 2));
    let mut input = c2s.clone();
    input.extend_from_slice(b"\x02chunk");
    let outcome = feed(ServerHandshake::new(&SERVER_RANDOM, 2), &[&input]);
    assert!(outcome.done);
    assert_eq!(outcome.leftover, b"\x02chunk");
}

#[test]
fn bytes_after_s2_stay_in_the_clients_buffer() {
    let mut server = ServerHandshake::new(&SERVER_RANDOM, 2);
    let (_, s2c) = exchange(
        &mut ClientHandshake::new(&CLIENT_RANDOM, 1, true),
        &mut server,
    );
    let mut input = s2c.clone();
    input.extend_from_slice(b"\x02more");
    let outcome = feed(ClientHandshake::new(&CLIENT_RANDOM, 1, true), &[&input]);
    assert!(outcome.done);
    assert_eq!(outcome.leftover, b"\x02more");
}

#[test]
fn a_finished_handshake_consumes_nothing_more_and_transmits_once() {
    let mut client = ClientHandshake::new(&CLIENT_RANDOM, 1, false);
    let mut server = ServerHandshake::new(&SERVER_RANDOM, 2);
    exchange(&mut client, &mut server);
    let mut buf = BytesMut::from(&b"rest"[..]);
    server.handle_input(&mut buf).unwrap();
    client.handle_input(&mut buf).unwrap();
    assert_eq!(&buf[..], b"rest");
    assert_eq!(server.poll_transmit(), None);
    assert_eq!(client.poll_transmit(), None);
}

#[test]
fn digest_client_accepts_a_simple_answering_server() {
    // An nginx-rtmp-like answer: zero version in S1, S2 echoing C1 loosely.
    let mut s0s1s2 = vec![3, 0, 0, 0, 9, 0, 0, 0, 0];
    s0s1s2.extend_from_slice(&SERVER_RANDOM);
    s0s1s2.extend_from_slice(&[0xAB; PACKET_LEN]);
    let outcome = feed(ClientHandshake::new(&CLIENT_RANDOM, 1, true), &[&s0s1s2]);
    assert_eq!(outcome.error, None);
    assert!(outcome.done);
    assert_eq!(outcome.kind, Some(HandshakeKind::Simple));
    assert_eq!(&outcome.sent[1 + PACKET_LEN..], &s0s1s2[1..1 + PACKET_LEN]);
}

#[test]
fn digest_client_takes_a_versioned_s1_without_digest_as_simple() {
    let mut s0s1s2 = vec![3, 0, 0, 0, 9, 4, 5, 0, 1];
    s0s1s2.extend_from_slice(&SERVER_RANDOM);
    s0s1s2.extend_from_slice(&[0xAB; PACKET_LEN]);
    let outcome = feed(ClientHandshake::new(&CLIENT_RANDOM, 1, true), &[&s0s1s2]);
    assert!(outcome.done);
    assert_eq!(outcome.kind, Some(HandshakeKind::Simple));
}

#[test]
fn digest_client_refuses_an_s2_not_signed_for_its_c1() {
    let mut server = ServerHandshake::new(&SERVER_RANDOM, 2);
    let (_, mut s2c) = exchange(
        &mut ClientHandshake::new(&CLIENT_RANDOM, 1, true),
        &mut server,
    );
    let last = s2c.len() - 1;
    s2c[last] ^= 1;
    let outcome = feed(ClientHandshake::new(&CLIENT_RANDOM, 1, true), &[&s2c]);
    assert!(matches!(
        outcome.error,
        Some(HandshakeError::InvalidServerResponse(_))
    ));
    assert!(!outcome.done);
    assert_eq!(outcome.sent.len(), 1 + PACKET_LEN, "no C2 went out");
}

proptest::proptest! {
    #[test]
    fn server_outcome_does_not_depend_on_how_any_input_is_cut(
        prefix in 0..3usize,
        noise in proptest::collection::vec(proptest::num::u8::ANY, 0..2000),
        mut cuts in proptest::collection::vec(0..5000usize, 0..6),
    ) {
        // Valid C0C1(+C2) of each kind, or nothing, followed by arbitrary bytes.
        let mut input = match prefix {
            0 => Vec::new(),
            n => {
                let mut client = ClientHandshake::new(&CLIENT_RANDOM, 1, n == 2);
                exchange(&mut client, &mut ServerHandshake::new(&SERVER_RANDOM, 2)).0
            }
        };
        input.extend_from_slice(&noise);
        cuts.push(0);
        cuts.push(input.len());
        cuts.iter_mut().for_each(|c| *c = (*c).min(input.len()));
        cuts.sort_unstable();
        let pieces: Vec<&[u8]> = cuts.windows(2).map(|w| &input[w[0]..w[1]]).collect();
        let whole = feed(ServerHandshake::new(&SERVER_RANDOM, 2), &[&input]);
        let split = feed(ServerHandshake::new(&SERVER_RANDOM, 2), &pieces);
        proptest::prop_assert_eq!(&split.sent, &whole.sent);
        proptest::prop_assert_eq!(split.kind, whole.kind);
        proptest::prop_assert_eq!(split.done, whole.done);
        proptest::prop_assert_eq!(&split.error, &whole.error);
        if whole.error.is_none() {
            proptest::prop_assert_eq!(&split.leftover, &whole.leftover);
        }
        if prefix > 0 {
            proptest::prop_assert!(whole.done);
            proptest::prop_assert_eq!(&whole.leftover, &noise);
        }
    }
}

#[test]
fn server_results_are_identical_for_every_split_of_the_input() {
    for digest in [false, true] {
        let mut client = ClientHandshake::new(&CLIENT_RANDOM, 1, digest);
        let (mut c2s, _) = exchange(&mut client, &mut ServerHandshake::new(&SERVER_RANDOM, 2));
        c2s.extend_from_slice(b"tail");
        let whole = feed(ServerHandshake::new(&SERVER_RANDOM, 2), &[&c2s]);
        assert!(whole.done && whole.error.is_none());
        assert_eq!(whole.leftover, b"tail");
        for pieces in all_cuts(&c2s) {
            assert_eq!(
                feed(ServerHandshake::new(&SERVER_RANDOM, 2), &pieces),
                whole
            );
        }
        let bytes: Vec<&[u8]> = c2s.chunks(1).collect();
        assert_eq!(feed(ServerHandshake::new(&SERVER_RANDOM, 2), &bytes), whole);
    }
}

#[test]
fn client_results_are_identical_for_every_split_of_the_input() {
    for digest in [false, true] {
        let mut server = ServerHandshake::new(&SERVER_RANDOM, 2);
        let (_, mut s2c) = exchange(
            &mut ClientHandshake::new(&CLIENT_RANDOM, 1, digest),
            &mut server,
        );
        s2c.extend_from_slice(b"tail");
        let fresh = || ClientHandshake::new(&CLIENT_RANDOM, 1, digest);
        let whole = feed(fresh(), &[&s2c]);
        assert!(whole.done && whole.error.is_none());
        assert_eq!(whole.leftover, b"tail");
        for pieces in all_cuts(&s2c) {
            assert_eq!(feed(fresh(), &pieces), whole);
        }
        let bytes: Vec<&[u8]> = s2c.chunks(1).collect();
        assert_eq!(feed(fresh(), &bytes), whole);
    }
}
