//! The server role: answers connect/createStream/publish/play and friends the way ffmpeg,
//! librtmp, GStreamer and OBS expect, and reports requests as events for the runtime to
//! accept or reject.

use bytes::{Bytes, BytesMut};

use super::{PublishMode, SessionError};
use crate::rtmp::handshake::RANDOM_LEN;
use crate::rtmp::Limits;

/// What the server sends at connect and how it bounds the peer.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub limits: Limits,
    /// Outbound chunk size, announced with Set Chunk Size right after connect.
    pub chunk_size: u32,
    /// Window Acknowledgement Size announced to the client (and used for our acks).
    pub window_ack_size: u32,
    /// Set Peer Bandwidth value (limit type dynamic).
    pub peer_bandwidth: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
        }
    }
}

/// What the client asked for or did. Requests wait for `accept_*`/`reject_*`.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `connect`: answer with `accept_connect` or `reject_connect`.
    ConnectRequested { app: String, tc_url: String },
    /// `publish`: answer with `accept_publish` or `reject_publish`.
    PublishRequested {
        stream_id: u32,
        name: String,
        query: String,
        mode: PublishMode,
    },
    /// `play`/`play2`: answer with `accept_play` or `reject_play`.
    PlayRequested {
        stream_id: u32,
        name: String,
        query: String,
        start: f64,
        duration: f64,
        reset: bool,
    },
    /// Audio (8), video (9) or data (18) from an accepted publisher. For data, a leading
    /// `@setDataFrame` is already stripped, so the payload is e.g. `onMetaData` + object,
    /// byte-for-byte as the publisher encoded it.
    Media {
        stream_id: u32,
        type_id: u8,
        timestamp: u32,
        payload: Bytes,
    },
    /// The publisher stopped (FCUnpublish, closeStream or deleteStream).
    Unpublished { stream_id: u32 },
    /// A player stopped (closeStream or deleteStream).
    PlayStopped { stream_id: u32 },
    /// `pause` from a player.
    Paused { stream_id: u32, paused: bool },
    /// `receiveAudio`/`receiveVideo` from a player.
    ReceiveChanged {
        stream_id: u32,
        audio: Option<bool>,
        video: Option<bool>,
    },
}

/// Server role state machine.
pub struct ServerSession {
    _private: (),
}

impl ServerSession {
    /// `random` fills S1; `epoch` is S1's time field.
    pub fn new(config: ServerConfig, random: &[u8; RANDOM_LEN], epoch: u32) -> Self {
        let _ = (config, random, epoch);
        todo!()
    }

    /// Feeds bytes read from the peer; consumes what it used (a partial chunk stays in `buf`).
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), SessionError> {
        let _ = buf;
        todo!()
    }

    /// Next event, in the order they happened.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        todo!()
    }

    /// Bytes to write, in order (handshake, control, command answers).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        todo!()
    }

    /// True once the handshake is complete.
    pub fn is_established(&self) -> bool {
        todo!()
    }

    /// The app from `connect`, once requested.
    pub fn app(&self) -> Option<&str> {
        todo!()
    }

    /// The outbound chunk size in force (media must be encoded at this size).
    pub fn outbound_chunk_size(&self) -> u32 {
        todo!()
    }

    /// Accepts `connect`: Window Ack Size, Set Peer Bandwidth, Set Chunk Size, StreamBegin 0,
    /// then `_result` (fmsVer, capabilities, NetConnection.Connect.Success, objectEncoding).
    pub fn accept_connect(&mut self) {
        todo!()
    }

    /// Rejects `connect` with `_error` NetConnection.Connect.Rejected.
    pub fn reject_connect(&mut self, description: &str) {
        let _ = description;
        todo!()
    }

    /// Accepts `publish`: StreamBegin, NetStream.Publish.Start (and onFCPublish if asked).
    pub fn accept_publish(&mut self, stream_id: u32) {
        let _ = stream_id;
        todo!()
    }

    /// Rejects `publish` with an onStatus error `code` such as NetStream.Publish.BadName.
    pub fn reject_publish(&mut self, stream_id: u32, code: &str, description: &str) {
        let _ = (stream_id, code, description);
        todo!()
    }

    /// Accepts `play`: StreamBegin (+ StreamIsRecorded never), NetStream.Play.Reset when asked,
    /// NetStream.Play.Start, |RtmpSampleAccess, NetStream.Data.Start.
    pub fn accept_play(&mut self, stream_id: u32) {
        let _ = stream_id;
        todo!()
    }

    /// Rejects `play` with an onStatus error `code` such as NetStream.Play.StreamNotFound.
    pub fn reject_play(&mut self, stream_id: u32, code: &str, description: &str) {
        let _ = (stream_id, code, description);
        todo!()
    }

    /// Tells a player its stream's publisher left: StreamEOF, NetStream.Play.UnpublishNotify.
    pub fn notify_unpublished(&mut self, stream_id: u32) {
        let _ = stream_id;
        todo!()
    }

    /// Tells a waiting player the stream is back: StreamBegin, NetStream.Play.PublishNotify.
    pub fn notify_republished(&mut self, stream_id: u32) {
        let _ = stream_id;
        todo!()
    }

    /// Tells a player the stream ended for good (shutdown): StreamEOF, NetStream.Play.Stop.
    pub fn notify_stopped(&mut self, stream_id: u32) {
        let _ = stream_id;
        todo!()
    }
}
