//! The RTMP handshake, both roles: C0/C1/C2 and S0/S1/S2, simple and complex (digest).
//!
//! Push parser: feed bytes with `handle_input`, send what `poll_transmit` returns, until
//! `is_done()`. Bytes after the handshake stay in the caller's buffer for the chunk decoder.
//! Randomness and the epoch come from the caller.
//!
//! Wire format (every packet but C0/S0 is [`PACKET_LEN`] bytes):
//! ```text
//! C0/S0  version (1 byte, 3)
//! C1/S1  time (4) | zero or peer version (4) | random (1528)
//! C2/S2  simple: echo of the peer's C1/S1 (time, time2, random)
//!        digest: filler (1504) | HMAC-SHA256(HMAC-SHA256(full key, peer's digest), filler)
//! ```
//! The complex ("digest") handshake, used by Flash-era players, ffmpeg, librtmp and many
//! hardware encoders, hides a 32-byte HMAC-SHA256 of C1/S1 inside the random part, keyed with
//! the public prefix of the "Genuine Adobe Flash Player 001" (client) or "Genuine Adobe Flash
//! Media Server 001" (server) key. Its offset is chosen by one of two schemes, see
//! [`HandshakeKind::Digest`]. A server answers a digest C1 with a digest S1 in the same scheme
//! and an S2 signed with the client's digest; anything else gets the simple echo.
//!
//! ```
//! use bytes::BytesMut;
//! use rtmp_edge::rtmp::handshake::{ClientHandshake, HandshakeKind, ServerHandshake, RANDOM_LEN};
//!
//! let mut client = ClientHandshake::new(&[7; RANDOM_LEN], 1_000, true);
//! let mut server = ServerHandshake::new(&[9; RANDOM_LEN], 2_000);
//! let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
//! while !(client.is_done() && server.is_done()) {
//!     while let Some(bytes) = client.poll_transmit() {
//!         to_server.extend_from_slice(&bytes);
//!     }
//!     server.handle_input(&mut to_server)?;
//!     while let Some(bytes) = server.poll_transmit() {
//!         to_client.extend_from_slice(&bytes);
//!     }
//!     client.handle_input(&mut to_client)?;
//! }
//! assert_eq!(server.kind(), Some(HandshakeKind::Digest { scheme: 0 }));
//! # Ok::<(), rtmp_edge::rtmp::handshake::HandshakeError>(())
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of the random part of C1/S1 (1536 − time − version/zero).
pub const RANDOM_LEN: usize = 1528;
/// Size of C1, S1, C2 and S2.
pub const PACKET_LEN: usize = 1536;
/// The only RTMP version this speaks (plain RTMP, no RTMPE).
pub const RTMP_VERSION: u8 = 3;

/// Length of an HMAC-SHA256 digest.
const DIGEST_LEN: usize = 32;
/// The digest sits within this many bytes after its scheme's 4 offset bytes.
const DIGEST_SPAN: usize = 728;
/// Where a C2/S2 signature starts: everything before it is filler.
const SIGNATURE_AT: usize = PACKET_LEN - DIGEST_LEN;

/// "Genuine Adobe Flash Player 001" followed by 32 fixed bytes. The first 30 bytes key the
/// client's C1 digest; all 62 key the C2 signature.
const FP_KEY: [u8; 62] = *b"Genuine Adobe Flash Player 001\
    \xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\
    \x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93\xB8\xE6\x36\xCF\xEB\x31\xAE";
const FP_KEY_PUBLIC_LEN: usize = 30;

/// "Genuine Adobe Flash Media Server 001" followed by the same 32 bytes. The first 36 bytes key
/// the server's S1 digest; all 68 key the S2 signature.
const FMS_KEY: [u8; 68] = *b"Genuine Adobe Flash Media Server 001\
    \xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\
    \x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93\xB8\xE6\x36\xCF\xEB\x31\xAE";
const FMS_KEY_PUBLIC_LEN: usize = 36;

/// The version a digest S1 announces. ffmpeg only checks a server's digest when the first byte
/// is at least 3, so any real-looking FMS version works.
const SERVER_VERSION: [u8; 4] = [5, 0, 3, 1];
/// The version a digest C1 announces (the Flash Player version ffmpeg and librtmp send).
const CLIENT_VERSION: [u8; 4] = [9, 0, 124, 2];

/// Why a handshake failed. All are fatal for the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("peer asked for RTMP version {0}; only version 3 is served")]
    UnsupportedVersion(u8),
    #[error("server's S1/S2 failed validation: {0}")]
    InvalidServerResponse(&'static str),
}

/// Which handshake a client used, as detected by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    Simple,
    /// Digest at the offset scheme 0 (digest after the 8-byte header block) or 1.
    ///
    /// Scheme 0: offset = (sum of bytes 8..12) mod 728 + 12.
    /// Scheme 1: offset = (sum of bytes 772..776) mod 728 + 776.
    Digest {
        scheme: u8,
    },
}

// ---------------------------------------------------------------------------------------------
// Digest arithmetic. Every `packet` here is exactly PACKET_LEN bytes (C1 or S1 without C0/S0);
// callers only pass slices they cut to that length, so indexing cannot go out of bounds.

// The largest offsets leave room for the digest: scheme 0's before scheme 1's offset bytes,
// scheme 1's before the end of the packet.
const _: () = assert!(12 + DIGEST_SPAN - 1 + DIGEST_LEN <= 772);
const _: () = assert!(776 + DIGEST_SPAN - 1 + DIGEST_LEN <= PACKET_LEN);

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Where the digest of `packet` sits under `scheme` (0 or 1).
fn digest_offset(packet: &[u8], scheme: u8) -> usize {
    debug_assert_eq!(packet.len(), PACKET_LEN);
    let base = if scheme == 0 { 8 } else { 772 };
    let sum: usize = packet[base..base + 4].iter().map(|&b| usize::from(b)).sum();
    base + 4 + sum % DIGEST_SPAN
}

/// HMAC of `packet` with the 32 bytes at `offset` left out.
fn packet_digest(packet: &[u8], offset: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    hmac_sha256(
        key,
        &[&packet[..offset], &packet[offset + DIGEST_LEN..PACKET_LEN]],
    )
}

/// Writes the digest into `packet` under `scheme`; returns its offset.
fn embed_digest(packet: &mut [u8], scheme: u8, key: &[u8]) -> usize {
    let offset = digest_offset(packet, scheme);
    let digest = packet_digest(packet, offset, key);
    packet[offset..offset + DIGEST_LEN].copy_from_slice(&digest);
    offset
}

/// Finds a valid digest in `packet` (scheme 0 first, then 1): its scheme and bytes.
fn find_digest(packet: &[u8], key: &[u8]) -> Option<(u8, [u8; DIGEST_LEN])> {
    [0u8, 1].into_iter().find_map(|scheme| {
        let offset = digest_offset(packet, scheme);
        let found = &packet[offset..offset + DIGEST_LEN];
        (packet_digest(packet, offset, key) == found).then(|| {
            let mut digest = [0; DIGEST_LEN];
            digest.copy_from_slice(found);
            (scheme, digest)
        })
    })
}

/// The signature ending a digest C2/S2: HMAC(HMAC(full_key, peer_digest), filler).
fn response_signature(full_key: &[u8], peer_digest: &[u8], filler: &[u8]) -> [u8; DIGEST_LEN] {
    let key = hmac_sha256(full_key, &[peer_digest]);
    hmac_sha256(&key, &[filler])
}

/// A digest C2/S2: `filler` (its first 1504 bytes are used) followed by its signature.
fn put_signed_response(out: &mut BytesMut, full_key: &[u8], peer_digest: &[u8], filler: &[u8]) {
    let filler = &filler[..SIGNATURE_AT];
    out.extend_from_slice(filler);
    out.extend_from_slice(&response_signature(full_key, peer_digest, filler));
}

/// True if `response` (a C2/S2) is signed for `our_digest` with `full_key`.
fn is_signed_response(response: &[u8], full_key: &[u8], our_digest: &[u8]) -> bool {
    let (filler, signature) = response.split_at(SIGNATURE_AT);
    response_signature(full_key, our_digest, filler) == signature
}

// ---------------------------------------------------------------------------------------------

/// Server side: reads C0 C1, answers S0 S1 S2, reads C2.
///
/// Call order: [`new`](Self::new); then, each time bytes arrive, append them to the
/// connection's read buffer, call [`handle_input`](Self::handle_input) and send whatever
/// [`poll_transmit`](Self::poll_transmit) returns (S0+S1+S2, once, as soon as C0+C1 are in);
/// repeat until [`is_done`](Self::is_done). The buffer then holds the first chunk bytes, if any.
/// [`kind`](Self::kind) tells which handshake the client used once C1 is in.
pub struct ServerHandshake {
    state: ServerState,
    transmit: Option<Bytes>,
    kind: Option<HandshakeKind>,
}

enum ServerState {
    /// `s0s1` is S0 and a simple S1, prebuilt; S2 is appended once C1 is in.
    ExpectC0 {
        s0s1: BytesMut,
        epoch: u32,
    },
    ExpectC1 {
        s0s1: BytesMut,
        epoch: u32,
    },
    ExpectC2,
    Done,
    Failed(HandshakeError),
}

impl ServerHandshake {
    /// `random` fills S1; `epoch` is S1's time field.
    pub fn new(random: &[u8; RANDOM_LEN], epoch: u32) -> Self {
        let mut s0s1 = BytesMut::with_capacity(1 + 2 * PACKET_LEN);
        s0s1.put_u8(RTMP_VERSION);
        s0s1.put_u32(epoch);
        s0s1.put_u32(0);
        s0s1.extend_from_slice(random);
        Self {
            state: ServerState::ExpectC0 { s0s1, epoch },
            transmit: None,
            kind: None,
        }
    }

    /// Consumes handshake bytes from `buf`; leaves anything after C2 untouched.
    ///
    /// Call after appending newly read bytes. Short input is not an error: what is there stays
    /// in `buf` until the rest arrives. A C0 other than version 3 fails at once; the error is
    /// then returned by every later call, and nothing more is consumed.
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), HandshakeError> {
        loop {
            let state = std::mem::replace(&mut self.state, ServerState::Done);
            let (next, progressed) = self.step(state, buf);
            self.state = next;
            if let ServerState::Failed(error) = &self.state {
                return Err(error.clone());
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Handles one packet if it is complete; returns the next state and whether it moved.
    fn step(&mut self, state: ServerState, buf: &mut BytesMut) -> (ServerState, bool) {
        match state {
            ServerState::ExpectC0 { s0s1, epoch } => match buf.first() {
                None => (ServerState::ExpectC0 { s0s1, epoch }, false),
                Some(&RTMP_VERSION) => {
                    buf.advance(1);
                    (ServerState::ExpectC1 { s0s1, epoch }, true)
                }
                Some(&other) => (
                    ServerState::Failed(HandshakeError::UnsupportedVersion(other)),
                    false,
                ),
            },
            ServerState::ExpectC1 { s0s1, epoch } if buf.len() >= PACKET_LEN => {
                let (transmit, kind) = answer_c1(s0s1, epoch, &buf[..PACKET_LEN]);
                buf.advance(PACKET_LEN);
                self.transmit = Some(transmit);
                self.kind = Some(kind);
                (ServerState::ExpectC2, true)
            }
            ServerState::ExpectC2 if buf.len() >= PACKET_LEN => {
                // C2 is not checked: clients send echoes, signed responses and plain junk.
                buf.advance(PACKET_LEN);
                (ServerState::Done, true)
            }
            other => (other, false),
        }
    }

    /// Bytes to send to the client, once each.
    ///
    /// Call after every [`handle_input`](Self::handle_input); S0+S1+S2 come out as one `Bytes`.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.take()
    }

    /// True once C2 has been read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, ServerState::Done)
    }

    /// The client's handshake kind, once C1 has been read.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }
}

/// Builds S0+S1+S2 for `c1` on top of the prebuilt S0 and simple S1.
fn answer_c1(mut out: BytesMut, epoch: u32, c1: &[u8]) -> (Bytes, HandshakeKind) {
    let client_digest = if c1[4..8] == [0; 4] {
        None
    } else {
        find_digest(c1, &FP_KEY[..FP_KEY_PUBLIC_LEN])
    };
    match client_digest {
        Some((scheme, digest)) => {
            // S2's filler: the caller's random bytes, taken before S1's digest overwrites some.
            let mut filler = [0u8; SIGNATURE_AT];
            filler.copy_from_slice(&out[1 + 8..1 + 8 + SIGNATURE_AT]);
            let s1 = &mut out[1..1 + PACKET_LEN];
            s1[4..8].copy_from_slice(&SERVER_VERSION);
            embed_digest(s1, scheme, &FMS_KEY[..FMS_KEY_PUBLIC_LEN]);
            put_signed_response(&mut out, &FMS_KEY, &digest, &filler);
            (out.freeze(), HandshakeKind::Digest { scheme })
        }
        None => {
            // Simple S2: C1's time, our time2, C1's random.
            out.extend_from_slice(&c1[..4]);
            out.put_u32(epoch);
            out.extend_from_slice(&c1[8..PACKET_LEN]);
            (out.freeze(), HandshakeKind::Simple)
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Client side: sends C0 C1, reads S0 S1 S2, sends C2.
///
/// Call order: [`new`](Self::new) (or [`with_digest_scheme`](Self::with_digest_scheme)) queues
/// C0+C1: send what [`poll_transmit`](Self::poll_transmit) returns at once. Then, each time
/// bytes arrive, append them to the read buffer, call [`handle_input`](Self::handle_input) and
/// send what `poll_transmit` returns (C2, once S2 is in); [`is_done`](Self::is_done) is then
/// true and the buffer holds the first chunk bytes, if any. [`kind`](Self::kind) tells how the
/// server answered.
///
/// Leniency, as real clients: an S2 of a simple server is not checked; a server that sets a
/// version in S1 but carries no valid digest is taken as simple. Only a server whose S1 digest
/// validates but whose S2 is not signed for our C1 is refused, as ffmpeg and librtmp do.
pub struct ClientHandshake {
    state: ClientState,
    transmit: Option<Bytes>,
    kind: Option<HandshakeKind>,
}

enum ClientState {
    /// `our_digest` is C1's digest when we sent a digest C1.
    ExpectS0 {
        our_digest: Option<[u8; DIGEST_LEN]>,
        c1: Bytes,
    },
    ExpectS1 {
        our_digest: Option<[u8; DIGEST_LEN]>,
        c1: Bytes,
    },
    /// `server_digest` is S1's digest when the server answered with a valid one.
    ExpectS2 {
        s1: Bytes,
        c1: Bytes,
        our_digest: Option<[u8; DIGEST_LEN]>,
        server_digest: Option<[u8; DIGEST_LEN]>,
    },
    Done,
    Failed(HandshakeError),
}

impl ClientHandshake {
    /// `random` fills C1; `epoch` is C1's time field. `digest` selects the complex handshake.
    ///
    /// The complex handshake uses digest scheme 0, as ffmpeg and librtmp do.
    pub fn new(random: &[u8; RANDOM_LEN], epoch: u32, digest: bool) -> Self {
        Self::build(random, epoch, digest.then_some(0))
    }

    /// A complex-handshake client whose C1 digest uses `scheme` (1 selects scheme 1; any other
    /// value selects scheme 0).
    pub fn with_digest_scheme(random: &[u8; RANDOM_LEN], epoch: u32, scheme: u8) -> Self {
        debug_assert!(scheme <= 1, "digest schemes are 0 and 1");
        Self::build(random, epoch, Some(u8::from(scheme == 1)))
    }

    fn build(random: &[u8; RANDOM_LEN], epoch: u32, scheme: Option<u8>) -> Self {
        let mut c0c1 = BytesMut::with_capacity(1 + PACKET_LEN);
        c0c1.put_u8(RTMP_VERSION);
        c0c1.put_u32(epoch);
        c0c1.put_slice(if scheme.is_some() {
            &CLIENT_VERSION
        } else {
            &[0; 4]
        });
        c0c1.extend_from_slice(random);
        let our_digest = scheme.map(|scheme| {
            let c1 = &mut c0c1[1..];
            let offset = embed_digest(c1, scheme, &FP_KEY[..FP_KEY_PUBLIC_LEN]);
            let mut digest = [0; DIGEST_LEN];
            digest.copy_from_slice(&c1[offset..offset + DIGEST_LEN]);
            digest
        });
        let c0c1 = c0c1.freeze();
        Self {
            state: ClientState::ExpectS0 {
                our_digest,
                c1: c0c1.slice(1..),
            },
            transmit: Some(c0c1),
            kind: None,
        }
    }

    /// Consumes handshake bytes from `buf`; leaves anything after S2 untouched.
    ///
    /// Call after appending newly read bytes. Short input is not an error. An S0 other than
    /// version 3 fails at once; errors are returned again by every later call.
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), HandshakeError> {
        loop {
            let state = std::mem::replace(&mut self.state, ClientState::Done);
            let (next, progressed) = self.step(state, buf);
            self.state = next;
            if let ClientState::Failed(error) = &self.state {
                return Err(error.clone());
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    fn step(&mut self, state: ClientState, buf: &mut BytesMut) -> (ClientState, bool) {
        match state {
            ClientState::ExpectS0 { our_digest, c1 } => match buf.first() {
                None => (ClientState::ExpectS0 { our_digest, c1 }, false),
                Some(&RTMP_VERSION) => {
                    buf.advance(1);
                    (ClientState::ExpectS1 { our_digest, c1 }, true)
                }
                Some(&other) => (
                    ClientState::Failed(HandshakeError::UnsupportedVersion(other)),
                    false,
                ),
            },
            ClientState::ExpectS1 { our_digest, c1 } if buf.len() >= PACKET_LEN => {
                let s1 = buf.split_to(PACKET_LEN).freeze();
                let server_digest = match our_digest {
                    Some(_) if s1[4..8] != [0; 4] => {
                        find_digest(&s1, &FMS_KEY[..FMS_KEY_PUBLIC_LEN])
                    }
                    _ => None,
                };
                self.kind = Some(match server_digest {
                    Some((scheme, _)) => HandshakeKind::Digest { scheme },
                    None => HandshakeKind::Simple,
                });
                let next = ClientState::ExpectS2 {
                    s1,
                    c1,
                    our_digest,
                    server_digest: server_digest.map(|(_, digest)| digest),
                };
                (next, true)
            }
            ClientState::ExpectS2 {
                s1,
                c1,
                our_digest,
                server_digest,
            } if buf.len() >= PACKET_LEN => {
                let c2 = match (our_digest, server_digest) {
                    (Some(ours), Some(theirs)) => {
                        if !is_signed_response(&buf[..PACKET_LEN], &FMS_KEY, &ours) {
                            let error = HandshakeError::InvalidServerResponse(
                                "S1 carries a valid digest but S2 is not signed for our C1",
                            );
                            return (ClientState::Failed(error), false);
                        }
                        let mut c2 = BytesMut::with_capacity(PACKET_LEN);
                        put_signed_response(&mut c2, &FP_KEY, &theirs, &c1[8..]);
                        c2.freeze()
                    }
                    // Simple: echo S1 as it came (zero-copy); S2 is not checked.
                    _ => s1,
                };
                buf.advance(PACKET_LEN);
                self.queue(c2);
                (ClientState::Done, true)
            }
            other => (other, false),
        }
    }

    /// Queues `bytes` after anything not yet polled.
    fn queue(&mut self, bytes: Bytes) {
        self.transmit = Some(match self.transmit.take() {
            None => bytes,
            Some(pending) => {
                let mut both = BytesMut::with_capacity(pending.len() + bytes.len());
                both.extend_from_slice(&pending);
                both.extend_from_slice(&bytes);
                both.freeze()
            }
        });
    }

    /// Bytes to send to the server (C0C1 at first, then C2), once each.
    ///
    /// Call right after construction and after every [`handle_input`](Self::handle_input).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.take()
    }

    /// True once S2 has been read and C2 queued.
    pub fn is_done(&self) -> bool {
        matches!(self.state, ClientState::Done)
    }

    /// How the server answered, once S1 has been read: `Digest` if S1 carried a valid server
    /// digest for our digest C1, else `Simple`.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
