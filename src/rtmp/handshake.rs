//! The RTMP handshake, both roles: C0/C1/C2 and S0/S1/S2, simple and complex (digest).
//!
//! Push parser: feed bytes with `handle_input`, send what `poll_transmit` returns, until
//! `is_done()`. Bytes after the handshake stay in the caller's buffer for the chunk decoder.
//! Randomness and the epoch come from the caller.

use bytes::{Bytes, BytesMut};

/// Length of the random part of C1/S1 (1536 − time − version/zero).
pub const RANDOM_LEN: usize = 1528;
/// Size of C1, S1, C2 and S2.
pub const PACKET_LEN: usize = 1536;
/// The only RTMP version this speaks (plain RTMP, no RTMPE).
pub const RTMP_VERSION: u8 = 3;

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
    Digest {
        scheme: u8,
    },
}

/// Server side: reads C0 C1, answers S0 S1 S2, reads C2.
pub struct ServerHandshake {
    _private: (),
}

impl ServerHandshake {
    /// `random` fills S1; `epoch` is S1's time field.
    pub fn new(random: &[u8; RANDOM_LEN], epoch: u32) -> Self {
        let _ = (random, epoch);
        todo!()
    }

    /// Consumes handshake bytes from `buf`; leaves anything after C2 untouched.
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), HandshakeError> {
        let _ = buf;
        todo!()
    }

    /// Bytes to send to the client, once each.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        todo!()
    }

    /// True once C2 has been read.
    pub fn is_done(&self) -> bool {
        todo!()
    }

    /// The client's handshake kind, once C1 has been read.
    pub fn kind(&self) -> Option<HandshakeKind> {
        todo!()
    }
}

/// Client side: sends C0 C1, reads S0 S1 S2, sends C2.
pub struct ClientHandshake {
    _private: (),
}

impl ClientHandshake {
    /// `random` fills C1; `epoch` is C1's time field. `digest` selects the complex handshake.
    pub fn new(random: &[u8; RANDOM_LEN], epoch: u32, digest: bool) -> Self {
        let _ = (random, epoch, digest);
        todo!()
    }

    /// Consumes handshake bytes from `buf`; leaves anything after S2 untouched.
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), HandshakeError> {
        let _ = buf;
        todo!()
    }

    /// Bytes to send to the server (C0C1 at first, then C2), once each.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        todo!()
    }

    /// True once S2 has been read and C2 queued.
    pub fn is_done(&self) -> bool {
        todo!()
    }
}
