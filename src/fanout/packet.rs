//! A media message in the form every player of a stream shares.

use bytes::Bytes;

use crate::media;
use crate::rtmp::chunk::{EncodedMessage, Spare};
use crate::rtmp::message::type_id;
use crate::rtmp::session::csid;

/// What a packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
    Data,
}

/// One media message, chunk-encoded once, plus what the queues need to know to drop it safely.
/// Cloning is a few refcount increments.
#[derive(Debug, Clone)]
pub struct Packet {
    /// The wire form, at the stream's outbound chunk size, on message stream 1.
    pub wire: EncodedMessage,
    pub kind: MediaKind,
    /// Timestamp on the wire (already rebased to be monotonic).
    pub timestamp: u32,
    /// A decoder can start here (video keyframe; every audio frame of an audio-only stream).
    pub keyframe: bool,
    /// Codec configuration or metadata: never dropped, cached for late joiners.
    pub header: bool,
}

/// The message stream id players are given first; packets are encoded for it.
pub const SHARED_STREAM_ID: u32 = 1;

impl Packet {
    /// Classifies and encodes one publisher message. `timestamp` is the rebased one.
    /// `video_seen` tells whether the stream carries video (else audio frames are keyframes).
    pub fn encode(
        type_id_: u8,
        timestamp: u32,
        payload: Bytes,
        chunk_size: u32,
        video_seen: bool,
    ) -> Option<Self> {
        Self::encode_in(None, type_id_, timestamp, payload, chunk_size, video_seen)
    }

    /// [`encode`](Self::encode), in a spare message allocation when one is given (see
    /// [`EncodedMessage::into_spare`]).
    pub fn encode_in(
        spare: Option<Spare>,
        type_id_: u8,
        timestamp: u32,
        payload: Bytes,
        chunk_size: u32,
        video_seen: bool,
    ) -> Option<Self> {
        let (kind, csid, keyframe, header) = match type_id_ {
            type_id::VIDEO => {
                let info = media::inspect_video(&payload).unwrap_or_default();
                (
                    MediaKind::Video,
                    csid::VIDEO,
                    info.is_keyframe,
                    info.is_sequence_header,
                )
            }
            type_id::AUDIO => {
                let info = media::inspect_audio(&payload).unwrap_or_default();
                (
                    MediaKind::Audio,
                    csid::AUDIO,
                    !video_seen,
                    info.is_sequence_header,
                )
            }
            type_id::DATA_AMF0 => {
                let meta = media::is_metadata(&payload);
                (MediaKind::Data, csid::DATA, false, meta)
            }
            _ => return None,
        };
        let wire = EncodedMessage::new_in(
            spare,
            csid,
            timestamp,
            type_id_,
            SHARED_STREAM_ID,
            payload,
            chunk_size,
        );
        Some(Self {
            wire,
            kind,
            timestamp,
            keyframe,
            header,
        })
    }

    /// This packet stamped at `timestamp`: a re-headed copy of the small chunk header, the
    /// payload shared (a plain clone when the timestamp is already that).
    pub fn restamped(&self, timestamp: u32) -> Self {
        if timestamp == self.timestamp {
            return self.clone();
        }
        Self {
            wire: self.wire.with_timestamp(timestamp),
            timestamp,
            ..self.clone()
        }
    }

    /// This packet with a payload of its own (see [`EncodedMessage::compacted`]): what the
    /// stream caches as a header for its whole life.
    pub fn compacted(&self) -> Self {
        Self {
            wire: self.wire.compacted(),
            ..self.clone()
        }
    }

    /// Bytes on the wire.
    pub fn wire_len(&self) -> usize {
        self.wire.wire_len()
    }
}
