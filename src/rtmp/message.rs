//! Typed RTMP messages: protocol control (types 1–6) and user control events (type 4).

use bytes::{Bytes, BytesMut};

/// Message type ids.
pub mod type_id {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// Chunk stream and message stream ids used for protocol control.
pub const CONTROL_CSID: u32 = 2;

/// A protocol control message could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("{what} message is {len} bytes, needs {need}")]
    Truncated {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("type {0} is not a protocol control message")]
    NotControl(u8),
}

/// User Control events (message type 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength {
        stream_id: u32,
        buffer_ms: u32,
    },
    StreamIsRecorded(u32),
    PingRequest(u32),
    PingResponse(u32),
    /// An event type we do not interpret (kept, never fatal).
    Other {
        event_type: u16,
        data: Bytes,
    },
}

/// Protocol control messages (types 1, 2, 3, 4, 5, 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    SetChunkSize(u32),
    Abort { csid: u32 },
    Acknowledgement { sequence: u32 },
    WindowAckSize(u32),
    SetPeerBandwidth { size: u32, limit_type: u8 },
    UserControl(UserControl),
}

impl ControlMessage {
    /// Parses a control message of type `type_id` (1..=6). Set Chunk Size values are returned
    /// as sent (top bit included) so the caller can reject them with a precise reason.
    pub fn decode(type_id: u8, payload: &[u8]) -> Result<Self, MessageError> {
        let _ = (type_id, payload);
        todo!()
    }

    /// The message type id of this message.
    pub fn type_id(&self) -> u8 {
        todo!()
    }

    /// Appends the payload (not the chunk header) to `out`.
    pub fn encode_payload(&self, out: &mut BytesMut) {
        let _ = out;
        todo!()
    }
}
