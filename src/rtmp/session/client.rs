//! The client role: connect, createStream, publish or play. Used by the load generator, the
//! tests, and the edge relay.

use bytes::{Bytes, BytesMut};

use super::{PublishMode, SessionError};
use crate::rtmp::handshake::RANDOM_LEN;
use crate::rtmp::Limits;

/// Where and how the client connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub app: String,
    pub tc_url: String,
    pub flash_ver: String,
    pub limits: Limits,
    /// Outbound chunk size announced after connect (publishers).
    pub chunk_size: u32,
    /// Use the complex (digest) handshake.
    pub digest_handshake: bool,
}

/// What the server said or sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// A stream is ready: `publish` or `play` was accepted (NetStream.Publish.Start or
    /// NetStream.Play.Start arrived).
    Publishing {
        stream_id: u32,
    },
    Playing {
        stream_id: u32,
    },
    /// Any onStatus (or _error) from the server, including the ones above and failures.
    Status {
        level: String,
        code: String,
        description: String,
    },
    /// A User Control event such as StreamBegin/StreamEOF.
    StreamEof {
        stream_id: u32,
    },
    StreamBegin {
        stream_id: u32,
    },
    /// Audio (8), video (9) or data (18) for a playing stream.
    Media {
        type_id: u8,
        timestamp: u32,
        payload: Bytes,
    },
}

/// Client role state machine.
pub struct ClientSession {
    _private: (),
}

impl ClientSession {
    /// Queues C0C1 at once; sends `connect` when the handshake completes.
    pub fn new(config: ClientConfig, random: &[u8; RANDOM_LEN], epoch: u32) -> Self {
        let _ = (config, random, epoch);
        todo!()
    }

    /// Feeds bytes read from the server; consumes what it used.
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), SessionError> {
        let _ = buf;
        todo!()
    }

    /// Next event, in order.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        todo!()
    }

    /// Bytes to write, in order.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        todo!()
    }

    /// Asks to publish `name` (may be called before `Connected`; sent once connected):
    /// releaseStream, FCPublish, createStream, publish.
    pub fn publish(&mut self, name: &str, mode: PublishMode) {
        let _ = (name, mode);
        todo!()
    }

    /// Asks to play `name` (may be called before `Connected`): createStream, play, buffer length.
    pub fn play(&mut self, name: &str) {
        let _ = name;
        todo!()
    }

    /// Sends audio (8), video (9) or data (18) on the publishing stream. Data payloads are sent
    /// as given (prefix `@setDataFrame` yourself for metadata).
    pub fn send_media(&mut self, type_id: u8, timestamp: u32, payload: &[u8]) {
        let _ = (type_id, timestamp, payload);
        todo!()
    }

    /// Stops publishing or playing: FCUnpublish (publishers) and deleteStream.
    pub fn stop(&mut self) {
        todo!()
    }
}
