//! What both roles share once the handshake is over: the chunk decoder/encoder pair, the
//! outbound buffer, protocol control (chunk size, abort, window acknowledgements, ping) and
//! the helpers that put control messages, commands and data messages on the wire.

use bytes::{Bytes, BytesMut};

use super::{csid, SessionError};
use crate::rtmp::amf0::Amf0Value;
use crate::rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkError, RawMessage};
use crate::rtmp::command::{self, Command};
use crate::rtmp::message::{type_id, ControlMessage, UserControl};
use crate::rtmp::Limits;

/// The post-handshake half of a connection.
pub(crate) struct Link {
    pub(crate) decoder: ChunkDecoder,
    pub(crate) encoder: ChunkEncoder,
    /// Everything queued for the peer, handed out by `take_transmit`.
    out: BytesMut,
    /// Reused payload buffer for control messages and commands (cold path).
    scratch: BytesMut,
    /// Bytes received from the peer since the start (handshake included).
    bytes_in: u64,
    /// `bytes_in` when we last sent an Acknowledgement.
    last_ack: u64,
    /// Send an Acknowledgement each time this many bytes arrived since the last one.
    ack_window: u32,
}

impl Link {
    /// A link at the default chunk sizes, acknowledging every `ack_window` bytes until the peer
    /// announces its own Window Acknowledgement Size.
    pub(crate) fn new(limits: Limits, ack_window: u32) -> Self {
        Self {
            decoder: ChunkDecoder::new(&limits),
            encoder: ChunkEncoder::new(),
            out: BytesMut::new(),
            scratch: BytesMut::new(),
            bytes_in: 0,
            last_ack: 0,
            ack_window,
        }
    }

    /// Appends raw bytes (handshake packets) to the outbound queue.
    pub(crate) fn queue_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Everything queued so far, or `None`.
    pub(crate) fn take_transmit(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            None
        } else {
            // Hand the whole buffer over, so an idle connection keeps no output allocation.
            Some(std::mem::take(&mut self.out).freeze())
        }
    }

    fn count_received(&mut self, n: usize) {
        self.bytes_in += n as u64;
        self.maybe_ack();
    }

    /// Counts handshake bytes: they count towards acknowledgements, but no Acknowledgement
    /// may be sent before the handshake ends.
    pub(crate) fn count_handshake(&mut self, n: usize) {
        self.bytes_in += n as u64;
    }

    /// Bytes received since the start.
    pub(crate) fn bytes_received(&self) -> u64 {
        self.bytes_in
    }

    /// Decodes at most one message, counting the bytes consumed and acknowledging them when a
    /// window is full.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        let before = buf.len();
        let msg = self.decoder.decode(buf)?;
        let consumed = before.saturating_sub(buf.len());
        if consumed > 0 {
            self.count_received(consumed);
        }
        Ok(msg)
    }

    fn maybe_ack(&mut self) {
        if self.ack_window > 0 && self.bytes_in - self.last_ack >= u64::from(self.ack_window) {
            self.last_ack = self.bytes_in;
            // The sequence number is the byte count modulo 2^32, as every peer expects.
            let sequence = self.bytes_in as u32;
            self.send_control(&ControlMessage::Acknowledgement { sequence });
        }
    }

    /// Applies a protocol control message (types 1, 2, 3, 5, 6) or answers a ping. Returns
    /// the user control event for the caller when it is not a ping.
    pub(crate) fn apply_control(
        &mut self,
        msg: &RawMessage,
    ) -> Result<Option<UserControl>, SessionError> {
        let ctrl = ControlMessage::decode(msg.type_id, &msg.payload)?;
        match ctrl {
            ControlMessage::SetChunkSize(size) => {
                // The decoder enforces 1..=min(limit, 0x7FFF_FFFF).
                self.decoder.set_chunk_size(size)?;
                tracing::debug!(size, "peer set chunk size");
            }
            ControlMessage::Abort { csid } => self.decoder.abort(csid),
            ControlMessage::Acknowledgement { sequence } => {
                tracing::trace!(sequence, "peer acknowledged");
            }
            ControlMessage::WindowAckSize(size) => {
                tracing::debug!(size, "peer window acknowledgement size");
                self.ack_window = size;
            }
            ControlMessage::SetPeerBandwidth { size, limit_type } => {
                tracing::debug!(size, limit_type, "peer bandwidth");
            }
            ControlMessage::UserControl(UserControl::PingRequest(time)) => {
                self.send_control(&ControlMessage::UserControl(UserControl::PingResponse(
                    time,
                )));
            }
            ControlMessage::UserControl(event) => return Ok(Some(event)),
        }
        Ok(None)
    }

    /// Queues a protocol or user control message on csid 2, message stream 0.
    pub(crate) fn send_control(&mut self, msg: &ControlMessage) {
        self.scratch.clear();
        msg.encode_payload(&mut self.scratch);
        self.encoder.encode(
            csid::CONTROL,
            0,
            msg.type_id(),
            0,
            &self.scratch,
            &mut self.out,
        );
    }

    /// Announces a new outbound chunk size and switches the encoder right after it.
    pub(crate) fn set_outbound_chunk_size(&mut self, size: u32) {
        self.send_control(&ControlMessage::SetChunkSize(size));
        self.encoder.set_chunk_size(size);
    }

    /// Queues an AMF0 command on csid 3 for message stream `stream_id`.
    pub(crate) fn send_command(&mut self, stream_id: u32, cmd: &Command) {
        self.scratch.clear();
        cmd.encode(&mut self.scratch);
        self.encoder.encode(
            csid::COMMAND,
            0,
            type_id::COMMAND_AMF0,
            stream_id,
            &self.scratch,
            &mut self.out,
        );
    }

    /// Queues an AMF0 data message on csid 5 for message stream `stream_id`.
    pub(crate) fn send_data(&mut self, stream_id: u32, values: &[Amf0Value]) {
        self.scratch.clear();
        command::encode_data(values, &mut self.scratch);
        self.encoder.encode(
            csid::SESSION_DATA,
            0,
            type_id::DATA_AMF0,
            stream_id,
            &self.scratch,
            &mut self.out,
        );
    }

    /// Queues any message as given (client media).
    pub(crate) fn send_message(
        &mut self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) {
        self.encoder
            .encode(csid, timestamp, type_id, stream_id, payload, &mut self.out);
    }
}
