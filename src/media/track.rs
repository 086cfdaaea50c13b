//! The Enhanced RTMP header prelude shared by audio and video (ModEx chains, the multitrack
//! header) and the walk over the per-track bodies that follows it.
//!
//! Wire shape after the first byte (E-RTMP v2, "ExVideoTagHeader" / "ExAudioTagHeader"):
//! ```text
//! while packetType == ModEx:  size UI8+1 (0xFF -> UI16+1) | data[size] | modExType:4 packetType:4
//! if packetType == Multitrack: multitrackType:4 packetType:4 | FourCC unless ManyTracksManyCodecs
//! else:                        FourCC
//! tracks: [FourCC if ManyTracksManyCodecs] | trackId UI8 | [size UI24 unless OneTrack] | body
//! ```

use super::cursor::Cursor;
use super::MediaError;

/// A FourCC codec identifier as it appears on the wire (e.g. `*b"hvc1"`).
pub type FourCc = [u8; 4];

/// Packet type value that introduces a ModEx (modifier extension) prelude, audio and video.
pub(crate) const PACKET_TYPE_MOD_EX: u8 = 7;
/// ModEx type carrying a UI24 nanosecond offset added to the message timestamp.
const MOD_EX_TIMESTAMP_OFFSET_NANO: u8 = 0;

/// How the tracks of an Enhanced RTMP multitrack message are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvMultitrackType {
    /// One track, no size field; the body runs to the end of the message.
    OneTrack,
    /// Several tracks of one codec, each with a UI24 size.
    ManyTracks,
    /// Several tracks, each with its own FourCC and a UI24 size.
    ManyTracksManyCodecs,
}

impl AvMultitrackType {
    pub(crate) fn from_nibble(v: u8) -> Result<Self, MediaError> {
        match v {
            0 => Ok(Self::OneTrack),
            1 => Ok(Self::ManyTracks),
            2 => Ok(Self::ManyTracksManyCodecs),
            value => Err(MediaError::ReservedMultitrackType { value }),
        }
    }
}

/// Result of a ModEx chain: the packet type that follows it and the modifiers found.
pub(crate) struct ModEx {
    pub(crate) packet_type: u8,
    pub(crate) timestamp_offset_nanos: Option<u32>,
}

/// Consumes ModEx entries while `packet_type` is ModEx. Terminates: each entry consumes at
/// least two bytes of a finite payload.
pub(crate) fn read_mod_ex(cur: &mut Cursor<'_>, mut packet_type: u8) -> Result<ModEx, MediaError> {
    let mut timestamp_offset_nanos = None;
    while packet_type == PACKET_TYPE_MOD_EX {
        let mut size = usize::from(cur.u8()?) + 1;
        if size == 256 {
            size = usize::from(cur.u16()?) + 1;
        }
        let data = cur.take(size)?;
        let b = cur.u8()?;
        if b >> 4 == MOD_EX_TIMESTAMP_OFFSET_NANO && data.len() >= 3 {
            timestamp_offset_nanos = Some(u32::from_be_bytes([0, data[0], data[1], data[2]]));
        }
        packet_type = b & 0x0f;
    }
    Ok(ModEx {
        packet_type,
        timestamp_offset_nanos,
    })
}

/// One track body located inside a message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawTrack<'a> {
    pub(crate) track_id: u8,
    pub(crate) fourcc: Option<FourCc>,
    pub(crate) body: &'a [u8],
    /// Offset of `body` from the start of the message payload.
    pub(crate) body_offset: usize,
}

/// Walks track bodies. `layout` is `None` for a single-track message (the body is the rest
/// of the payload, track id 0).
#[derive(Debug, Clone)]
pub(crate) struct TrackWalker<'a> {
    cur: Cursor<'a>,
    layout: Option<AvMultitrackType>,
    shared_fourcc: Option<FourCc>,
    done: bool,
}

impl<'a> TrackWalker<'a> {
    pub(crate) fn new(
        payload: &'a [u8],
        start: usize,
        layout: Option<AvMultitrackType>,
        shared_fourcc: Option<FourCc>,
        what: &'static str,
    ) -> Self {
        Self {
            cur: Cursor::at(payload, start, what),
            layout,
            shared_fourcc,
            done: false,
        }
    }

    /// The next track, `Ok(None)` at the end. After an error the walker is finished.
    pub(crate) fn next_track(&mut self) -> Result<Option<RawTrack<'a>>, MediaError> {
        if self.done {
            return Ok(None);
        }
        let r = self.step();
        if r.is_err() {
            self.done = true;
        }
        r
    }

    fn step(&mut self) -> Result<Option<RawTrack<'a>>, MediaError> {
        let Some(layout) = self.layout else {
            self.done = true;
            let body_offset = self.cur.pos();
            let body = self.cur.rest();
            return Ok(Some(RawTrack {
                track_id: 0,
                fourcc: self.shared_fourcc,
                body,
                body_offset,
            }));
        };
        if layout != AvMultitrackType::OneTrack && self.cur.remaining() == 0 {
            self.done = true;
            return Ok(None);
        }
        let fourcc = if layout == AvMultitrackType::ManyTracksManyCodecs {
            Some(self.cur.fourcc()?)
        } else {
            self.shared_fourcc
        };
        let track_id = self.cur.u8()?;
        let body = if layout == AvMultitrackType::OneTrack {
            self.done = true;
            let b = self.cur.rest();
            self.cur.skip(b.len())?;
            b
        } else {
            let size = self.cur.u24()? as usize;
            let remaining = self.cur.remaining();
            if size > remaining {
                return Err(MediaError::TrackOverrunsPayload {
                    track_id,
                    size,
                    remaining,
                });
            }
            self.cur.take(size)?
        };
        let body_offset = self.cur.pos() - body.len();
        Ok(Some(RawTrack {
            track_id,
            fourcc,
            body,
            body_offset,
        }))
    }
}
