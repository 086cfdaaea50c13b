//! Per-core live streams, IO-free: each media message is encoded once into a [`Packet`],
//! cached for fast start, and cloned (refcounts only) into every player's bounded
//! [`OutputQueue`], which drops whole frames up to the next keyframe when a player falls behind.
//!
//! The runtime (`shard`) owns sockets and calls in here; nothing here reads a clock or a socket.

mod clock;
mod conn_key;
mod directory;
mod hub;
mod packet;
mod player;
mod queue;
mod stream;

pub use clock::Rebaser;
pub use conn_key::ConnKey;
pub use directory::{Claim, Directory};
pub use hub::{Action, Close, Door, Hub, HubSettings, Mail, Notice};
pub use packet::{MediaKind, Packet, SHARED_STREAM_ID};
pub use player::Player;
pub use queue::{FlvBody, FlvFraming, FlvFramings, OutItem, OutputQueue, PushOutcome};
pub use stream::{IngestError, Source, Stream, StreamKey, StreamMap, StreamSettings};
