//! One player of a stream, as its stream's hub sees it: what it asked to receive, and the
//! filter every packet passes on its way into the player's queue.

use super::conn_key::ConnKey;
use super::packet::{MediaKind, Packet, SHARED_STREAM_ID};
use super::queue::{FlvBody, FlvFramings, OutputQueue, PushOutcome};

/// A playing connection's state in its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player {
    pub conn: ConnKey,
    /// The RTMP message stream it plays on (packets are re-headed when not the shared one).
    pub stream_id: u32,
    pub audio: bool,
    pub video: bool,
    pub paused: bool,
    /// receiveVideo(true) after receiveVideo(false): video is skipped until its next
    /// keyframe while audio flows on.
    pub video_waits_keyframe: bool,
    /// Got the fast-start cache for the current publish (else waits for the next start).
    pub primed: bool,
    /// An HTTP-FLV viewer (and how its body is delimited): media goes out as FLV tags.
    pub flv: Option<FlvBody>,
    /// Told its play started. A player of a stream being pulled is answered when the first
    /// frames arrive (so one no origin has can still be refused StreamNotFound).
    pub answered: bool,
}

impl Player {
    /// A player of everything, not yet primed.
    pub fn new(conn: ConnKey, stream_id: u32, flv: Option<FlvBody>) -> Self {
        Self {
            conn,
            stream_id,
            audio: true,
            video: true,
            paused: false,
            video_waits_keyframe: false,
            primed: false,
            flv,
            answered: true,
        }
    }

    /// Clones `packet` into this player's queue `out`, honouring its filters (refcounts only,
    /// unless it plays on a message stream other than the shared one). `None`: filtered out.
    pub fn push(
        &mut self,
        out: &mut OutputQueue,
        packet: &Packet,
        flv: &mut FlvFramings,
    ) -> Option<PushOutcome> {
        let wanted = match packet.kind {
            MediaKind::Audio => self.audio || packet.header,
            MediaKind::Video if packet.header => true,
            MediaKind::Video => {
                if self.video_waits_keyframe && self.video && !self.paused {
                    if !packet.keyframe {
                        return None;
                    }
                    self.video_waits_keyframe = false;
                }
                self.video
            }
            MediaKind::Data => true,
        };
        if !wanted || (self.paused && !packet.header) {
            return None;
        }
        let mut packet = packet.clone();
        if !self.video && packet.kind == MediaKind::Audio {
            // With video turned off, any audio frame is a place to resume after drops.
            packet.keyframe = true;
        }
        let outcome = if let Some(body) = self.flv {
            let framing = flv.get(&packet, body);
            out.push_flv(packet, framing)
        } else if self.stream_id == SHARED_STREAM_ID {
            out.push_media(packet)
        } else {
            packet.wire = packet.wire.with_stream_id(self.stream_id);
            out.push_media(packet)
        };
        Some(outcome)
    }
}
