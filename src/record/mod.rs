//! Recording published streams to files (`[record]`): FLV, or fragmented MP4 through the
//! project's packager, one file per publish under `record.dir`.
//!
//! ```text
//!  worker (per core)                         one writer thread ("record")
//!  Recording::published ── Start ──┐
//!  Recording::packet ───── Media ──┼─ mpsc ─▶ Writer: Recorder per recording
//!  Recording::unpublished ─ Stop ──┘ (media     (sans-IO bytes) → file
//!                                     bounded
//!                                     in bytes)
//! ```
//! Module map:
//! - [`name`]: file names from client-chosen app and stream names, refused when unsafe.
//! - [`recorder`]: [`Recorder`], sans-IO: packets in, file bytes out; starts at a keyframe with
//!   the latest headers, timestamps from 0. [`flv`] and [`mp4`] are its two containers.
//! - [`recording`]: [`Recording`], the worker's side: which streams are recorded, and the
//!   hand-off to the writer (a packet clone, never a copy; a full queue drops to the next
//!   keyframe instead of blocking the worker).
//! - [`writer`]: the writer thread: files opened, written and closed.
//!
//! Call order on a worker: [`Recording::published`] when a local publisher starts,
//! [`Recording::packet`] for each packet the hub ingested from it, [`Recording::unpublished`]
//! when it leaves. [`Recording::set_settings`] applies to streams published afterwards.

pub mod flv;
pub mod mp4;
pub mod name;
pub mod recorder;
pub mod recording;
pub mod writer;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::fanout::{Packet, StreamKey};

pub use name::{NameError, NamePart, RecordName};
pub use recorder::{Recorder, Step};
pub use recording::{RecordQueue, Recording};
pub use writer::{spawn_writer, Writer};

/// The container recordings are written in (`record.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordFormat {
    /// FLV: every tag as published.
    #[default]
    Flv,
    /// Fragmented MP4 (init segment, then `moof` + `mdat` fragments).
    Mp4,
}

impl RecordFormat {
    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            RecordFormat::Flv => "flv",
            RecordFormat::Mp4 => "mp4",
        }
    }
}

/// What the workers record, and how (from `[record]`; swappable with
/// [`Recording::set_settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSettings {
    /// Where recordings go; empty: recording is off.
    pub dir: PathBuf,
    /// Apps recorded; `*` records every app.
    pub apps: Vec<String>,
    /// The container.
    pub format: RecordFormat,
    /// Most media bytes waiting for the writer, all workers together; past it a stream's
    /// media is dropped until its next keyframe.
    pub queue_bytes: usize,
}

impl Default for RecordSettings {
    fn default() -> Self {
        Self::from(&crate::config::RecordConfig::default())
    }
}

impl From<&crate::config::RecordConfig> for RecordSettings {
    fn from(config: &crate::config::RecordConfig) -> Self {
        Self {
            dir: PathBuf::from(&config.dir),
            apps: config.apps.clone(),
            format: config.format,
            queue_bytes: config.queue_bytes,
        }
    }
}

impl RecordSettings {
    /// True when streams of `app` are recorded.
    pub fn records(&self, app: &str) -> bool {
        !self.dir.as_os_str().is_empty() && self.apps.iter().any(|a| a == "*" || a == app)
    }
}

/// What a worker tells the writer thread.
#[derive(Debug)]
pub enum RecordMsg {
    /// A recording starts: its file is `{dir}/{app}/{stream}-{UTC start}.{ext}`, opened at its
    /// first keyframe.
    Start {
        id: u64,
        key: StreamKey,
        dir: PathBuf,
        name: RecordName,
        format: RecordFormat,
        started_unix_ms: u64,
    },
    /// One packet of recording `id` (counted in the queue's bytes until written).
    Media { id: u64, packet: Packet },
    /// Recording `id` ends: its file is completed and closed.
    Stop { id: u64 },
}

#[cfg(test)]
mod tests;
