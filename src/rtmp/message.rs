//! Typed RTMP messages: protocol control (types 1–6) and user control events (type 4).

use bytes::{BufMut, Bytes, BytesMut};

use crate::rtmp::chunk::ChunkEncoder;

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

/// User Control event type numbers (the first two bytes of a type 4 payload).
pub mod event_type {
    pub const STREAM_BEGIN: u16 = 0;
    pub const STREAM_EOF: u16 = 1;
    pub const STREAM_DRY: u16 = 2;
    pub const SET_BUFFER_LENGTH: u16 = 3;
    pub const STREAM_IS_RECORDED: u16 = 4;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// Reads a big-endian u32 at `at`, or says how short `payload` is.
fn be32(what: &'static str, payload: &[u8], at: usize) -> Result<u32, MessageError> {
    match payload.get(at..at + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(MessageError::Truncated {
            what,
            len: payload.len(),
            need: at + 4,
        }),
    }
}

impl UserControl {
    /// Parses a User Control payload (event type, then event data). Unknown event types are
    /// kept as [`UserControl::Other`]; trailing bytes after a known event are ignored.
    pub fn decode(payload: &[u8]) -> Result<Self, MessageError> {
        let Some(head) = payload.get(..2) else {
            return Err(MessageError::Truncated {
                what: "User Control",
                len: payload.len(),
                need: 2,
            });
        };
        let event = u16::from_be_bytes([head[0], head[1]]);
        let arg = |what| be32(what, payload, 2);
        Ok(match event {
            event_type::STREAM_BEGIN => Self::StreamBegin(arg("Stream Begin")?),
            event_type::STREAM_EOF => Self::StreamEof(arg("Stream EOF")?),
            event_type::STREAM_DRY => Self::StreamDry(arg("Stream Dry")?),
            event_type::SET_BUFFER_LENGTH => Self::SetBufferLength {
                stream_id: arg("Set Buffer Length")?,
                buffer_ms: be32("Set Buffer Length", payload, 6)?,
            },
            event_type::STREAM_IS_RECORDED => Self::StreamIsRecorded(arg("Stream Is Recorded")?),
            event_type::PING_REQUEST => Self::PingRequest(arg("Ping Request")?),
            event_type::PING_RESPONSE => Self::PingResponse(arg("Ping Response")?),
            other => Self::Other {
                event_type: other,
                data: Bytes::copy_from_slice(&payload[2..]),
            },
        })
    }

    /// The event type number.
    pub fn event_type(&self) -> u16 {
        match self {
            Self::StreamBegin(_) => event_type::STREAM_BEGIN,
            Self::StreamEof(_) => event_type::STREAM_EOF,
            Self::StreamDry(_) => event_type::STREAM_DRY,
            Self::SetBufferLength { .. } => event_type::SET_BUFFER_LENGTH,
            Self::StreamIsRecorded(_) => event_type::STREAM_IS_RECORDED,
            Self::PingRequest(_) => event_type::PING_REQUEST,
            Self::PingResponse(_) => event_type::PING_RESPONSE,
            Self::Other { event_type, .. } => *event_type,
        }
    }

    /// Appends the payload (event type, then event data) to `out`.
    pub fn encode_payload(&self, out: &mut BytesMut) {
        out.put_u16(self.event_type());
        match self {
            Self::StreamBegin(v)
            | Self::StreamEof(v)
            | Self::StreamDry(v)
            | Self::StreamIsRecorded(v)
            | Self::PingRequest(v)
            | Self::PingResponse(v) => out.put_u32(*v),
            Self::SetBufferLength {
                stream_id,
                buffer_ms,
            } => {
                out.put_u32(*stream_id);
                out.put_u32(*buffer_ms);
            }
            Self::Other { data, .. } => out.put_slice(data),
        }
    }
}

impl ControlMessage {
    /// Parses a control message of type `type_id` (1..=6). Set Chunk Size values are returned
    /// as sent (top bit included) so the caller can reject them with a precise reason.
    ///
    /// Payloads shorter than the message needs are [`MessageError::Truncated`]; trailing bytes
    /// are ignored.
    pub fn decode(type_id: u8, payload: &[u8]) -> Result<Self, MessageError> {
        Ok(match type_id {
            type_id::SET_CHUNK_SIZE => Self::SetChunkSize(be32("Set Chunk Size", payload, 0)?),
            type_id::ABORT => Self::Abort {
                csid: be32("Abort", payload, 0)?,
            },
            type_id::ACKNOWLEDGEMENT => Self::Acknowledgement {
                sequence: be32("Acknowledgement", payload, 0)?,
            },
            type_id::USER_CONTROL => Self::UserControl(UserControl::decode(payload)?),
            type_id::WINDOW_ACK_SIZE => {
                Self::WindowAckSize(be32("Window Acknowledgement Size", payload, 0)?)
            }
            type_id::SET_PEER_BANDWIDTH => {
                let size = be32("Set Peer Bandwidth", payload, 0)?;
                let Some(&limit_type) = payload.get(4) else {
                    return Err(MessageError::Truncated {
                        what: "Set Peer Bandwidth",
                        len: payload.len(),
                        need: 5,
                    });
                };
                Self::SetPeerBandwidth { size, limit_type }
            }
            other => return Err(MessageError::NotControl(other)),
        })
    }

    /// The message type id of this message.
    pub fn type_id(&self) -> u8 {
        match self {
            Self::SetChunkSize(_) => type_id::SET_CHUNK_SIZE,
            Self::Abort { .. } => type_id::ABORT,
            Self::Acknowledgement { .. } => type_id::ACKNOWLEDGEMENT,
            Self::WindowAckSize(_) => type_id::WINDOW_ACK_SIZE,
            Self::SetPeerBandwidth { .. } => type_id::SET_PEER_BANDWIDTH,
            Self::UserControl(_) => type_id::USER_CONTROL,
        }
    }

    /// Appends the payload (not the chunk header) to `out`.
    pub fn encode_payload(&self, out: &mut BytesMut) {
        match self {
            Self::SetChunkSize(v)
            | Self::Abort { csid: v }
            | Self::Acknowledgement { sequence: v }
            | Self::WindowAckSize(v) => out.put_u32(*v),
            Self::SetPeerBandwidth { size, limit_type } => {
                out.put_u32(*size);
                out.put_u8(*limit_type);
            }
            Self::UserControl(uc) => uc.encode_payload(out),
        }
    }

    /// Encodes this message with `encoder` on the control chunk stream (csid 2, message
    /// stream 0), as the spec requires for protocol control messages.
    pub fn encode(&self, timestamp: u32, encoder: &mut ChunkEncoder, out: &mut BytesMut) {
        let mut payload = BytesMut::with_capacity(16);
        self.encode_payload(&mut payload);
        encoder.encode(CONTROL_CSID, timestamp, self.type_id(), 0, &payload, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: ControlMessage) -> Vec<u8> {
        let mut out = BytesMut::new();
        m.encode_payload(&mut out);
        assert_eq!(ControlMessage::decode(m.type_id(), &out), Ok(m));
        out.to_vec()
    }

    #[test]
    fn protocol_control_messages_have_spec_payloads() {
        assert_eq!(
            round_trip(ControlMessage::SetChunkSize(4096)),
            [0, 0, 0x10, 0]
        );
        assert_eq!(round_trip(ControlMessage::Abort { csid: 5 }), [0, 0, 0, 5]);
        assert_eq!(
            round_trip(ControlMessage::Acknowledgement {
                sequence: 0x0102_0304
            }),
            [1, 2, 3, 4]
        );
        assert_eq!(
            round_trip(ControlMessage::WindowAckSize(2_500_000)),
            [0x00, 0x26, 0x25, 0xA0]
        );
        assert_eq!(
            round_trip(ControlMessage::SetPeerBandwidth {
                size: 2_500_000,
                limit_type: 2
            }),
            [0x00, 0x26, 0x25, 0xA0, 2]
        );
    }

    #[test]
    fn type_ids_match_the_spec() {
        let ids: Vec<u8> = [
            ControlMessage::SetChunkSize(1),
            ControlMessage::Abort { csid: 3 },
            ControlMessage::Acknowledgement { sequence: 0 },
            ControlMessage::UserControl(UserControl::StreamBegin(1)),
            ControlMessage::WindowAckSize(1),
            ControlMessage::SetPeerBandwidth {
                size: 1,
                limit_type: 0,
            },
        ]
        .iter()
        .map(ControlMessage::type_id)
        .collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn user_control_events_have_spec_payloads() {
        let uc = |u| round_trip(ControlMessage::UserControl(u));
        assert_eq!(uc(UserControl::StreamBegin(1)), [0, 0, 0, 0, 0, 1]);
        assert_eq!(uc(UserControl::StreamEof(1)), [0, 1, 0, 0, 0, 1]);
        assert_eq!(uc(UserControl::StreamDry(1)), [0, 2, 0, 0, 0, 1]);
        assert_eq!(
            uc(UserControl::SetBufferLength {
                stream_id: 1,
                buffer_ms: 3000
            }),
            [0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8]
        );
        assert_eq!(uc(UserControl::StreamIsRecorded(1)), [0, 4, 0, 0, 0, 1]);
        assert_eq!(uc(UserControl::PingRequest(77)), [0, 6, 0, 0, 0, 77]);
        assert_eq!(uc(UserControl::PingResponse(77)), [0, 7, 0, 0, 0, 77]);
        assert_eq!(
            uc(UserControl::Other {
                event_type: 31,
                data: Bytes::from_static(&[9, 9, 9])
            }),
            [0, 31, 9, 9, 9]
        );
    }

    #[test]
    fn set_chunk_size_is_returned_as_sent_with_top_bit() {
        assert_eq!(
            ControlMessage::decode(1, &[0x80, 0, 0, 1]),
            Ok(ControlMessage::SetChunkSize(0x8000_0001))
        );
    }

    #[test]
    fn truncated_control_message_says_what_it_needed() {
        assert_eq!(
            ControlMessage::decode(1, &[0, 0, 1]),
            Err(MessageError::Truncated {
                what: "Set Chunk Size",
                len: 3,
                need: 4
            })
        );
        assert_eq!(
            ControlMessage::decode(6, &[0, 0, 0, 1]),
            Err(MessageError::Truncated {
                what: "Set Peer Bandwidth",
                len: 4,
                need: 5
            })
        );
        assert_eq!(
            ControlMessage::decode(4, &[0]),
            Err(MessageError::Truncated {
                what: "User Control",
                len: 1,
                need: 2
            })
        );
        assert_eq!(
            ControlMessage::decode(4, &[0, 3, 0, 0, 0, 1, 0, 0]),
            Err(MessageError::Truncated {
                what: "Set Buffer Length",
                len: 8,
                need: 10
            })
        );
    }

    #[test]
    fn rejects_non_control_type() {
        assert_eq!(
            ControlMessage::decode(9, &[0; 8]),
            Err(MessageError::NotControl(9))
        );
    }

    #[test]
    fn trailing_bytes_are_ignored() {
        assert_eq!(
            ControlMessage::decode(5, &[0, 0, 1, 0, 0xEE]),
            Ok(ControlMessage::WindowAckSize(256))
        );
    }

    #[test]
    fn encode_uses_control_chunk_stream_and_stream_zero() {
        let mut enc = ChunkEncoder::new();
        let mut out = BytesMut::new();
        ControlMessage::SetChunkSize(4096).encode(0, &mut enc, &mut out);
        assert_eq!(
            &out[..],
            &[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x10, 0]
        );
    }
}
