//! The JSON control API's model: what each worker reports of its streams and clients
//! ([`WorkerSnapshot`]), merged across workers for `/api/v1/streams`, and the [`Control`]
//! through which the admin thread reaches the workers (over their mailboxes, never by
//! stopping them).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// One connection as its worker sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ClientInfo {
    /// `{worker}-{slot}-{generation}`: names one connection for good (a kick never reaches
    /// a connection that reused the slot).
    pub id: String,
    pub worker: usize,
    pub peer: String,
    /// `pending`, `publisher` or `player` (RTMP/RTMPS), `player` (HTTP-FLV), `viewer`
    /// (HLS/DASH), `request` (other HTTP), `pull` or `push` (relay): see
    /// [`crate::admin::metrics::OPEN_LABELS`].
    pub role: &'static str,
    /// `rtmp`, `rtmps`, `http-flv`, `hls`, `dash`, `http` or `relay`.
    pub proto: &'static str,
    pub stream: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub queue_bytes: usize,
    pub dropped_frames: u64,
    pub connected_ms: u64,
}

/// One stream as one worker has it.
#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    pub key: String,
    /// `local` (published here), `pulled` (from an origin), `remote` (mirrored from another
    /// worker) or `waiting`.
    pub source: &'static str,
    pub worker: usize,
    pub players_rtmp: usize,
    pub players_http_flv: usize,
    /// HLS / DASH viewers: distinct addresses that asked for the playlist or manifest on this
    /// worker in the last 30 s.
    pub viewers_hls: usize,
    pub viewers_dash: usize,
    /// The feeding connection (publisher or pull), on the owning worker.
    pub publisher: Option<String>,
    pub bytes_in: u64,
    /// Sent to this worker's RTMP and HTTP-FLV players of the stream, those gone included.
    pub bytes_out: u64,
    /// Frames those players dropped (slow-player policy).
    pub dropped_frames: u64,
    pub uptime_ms: u64,
    pub video_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub audio_codec: Option<String>,
}

/// What one worker reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerSnapshot {
    pub worker: usize,
    pub streams: Vec<StreamInfo>,
    pub clients: Vec<ClientInfo>,
}

/// A stream across workers (`/api/v1/streams`).
#[derive(Debug, Clone, Serialize)]
pub struct StreamSummary {
    pub app: String,
    pub stream: String,
    /// Where its media enters: `local`, `pulled`, or `waiting` (players, no source yet).
    pub source: &'static str,
    pub owner: Option<usize>,
    pub publisher: Option<String>,
    pub video_codec: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub audio_codec: Option<String>,
    /// Average since the feed started.
    pub bitrate_in_kbps: u64,
    /// Bytes the feed brought in since it started.
    pub bytes_in: u64,
    /// Bytes sent to RTMP and HTTP-FLV players on every worker (HLS/DASH segments are not
    /// counted per stream).
    pub bytes_out: u64,
    /// Frames the stream's players dropped (slow-player policy).
    pub dropped_frames: u64,
    pub players: BTreeMap<&'static str, usize>,
    pub uptime_s: u64,
}

/// Merges the workers' views of each stream: the owner's facts, everyone's players.
pub fn streams(snapshots: &[WorkerSnapshot]) -> Vec<StreamSummary> {
    let mut by_key: BTreeMap<String, StreamSummary> = BTreeMap::new();
    for info in snapshots.iter().flat_map(|s| &s.streams) {
        let (app, stream) = info.key.split_once('/').unwrap_or((&info.key, ""));
        let entry = by_key
            .entry(info.key.clone())
            .or_insert_with(|| StreamSummary {
                app: app.to_owned(),
                stream: stream.to_owned(),
                source: "waiting",
                owner: None,
                publisher: None,
                video_codec: None,
                width: None,
                height: None,
                audio_codec: None,
                bitrate_in_kbps: 0,
                bytes_in: 0,
                bytes_out: 0,
                dropped_frames: 0,
                players: BTreeMap::from([("rtmp", 0), ("http-flv", 0), ("hls", 0), ("dash", 0)]),
                uptime_s: 0,
            });
        *entry.players.entry("rtmp").or_default() += info.players_rtmp;
        *entry.players.entry("http-flv").or_default() += info.players_http_flv;
        *entry.players.entry("hls").or_default() += info.viewers_hls;
        *entry.players.entry("dash").or_default() += info.viewers_dash;
        entry.bytes_out += info.bytes_out;
        entry.dropped_frames += info.dropped_frames;
        if matches!(info.source, "local" | "pulled") {
            entry.source = info.source;
            entry.owner = Some(info.worker);
            entry.publisher.clone_from(&info.publisher);
            entry.video_codec.clone_from(&info.video_codec);
            entry.width = info.width;
            entry.height = info.height;
            entry.audio_codec.clone_from(&info.audio_codec);
            entry.uptime_s = info.uptime_ms / 1000;
            entry.bytes_in = info.bytes_in;
            entry.bitrate_in_kbps = (info.bytes_in * 8)
                .checked_div(info.uptime_ms.max(1))
                .unwrap_or(0);
        }
    }
    by_key.into_values().collect()
}

/// What a kick found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kicked {
    Closed,
    NotFound,
}

/// The admin thread's way to the workers.
pub trait Control: Send + Sync {
    /// Every worker's snapshot (each answers from its own loop), within `timeout`.
    fn snapshot(&self, timeout: Duration) -> Vec<WorkerSnapshot>;
    /// Closes client `id` on its worker.
    fn kick(&self, id: &str, timeout: Duration) -> Kicked;
    /// Starts a drain (as SIGTERM).
    fn drain(&self);
    /// Reloads the configuration file (as SIGHUP); `Err` when this server has no file to
    /// reload (started in process).
    fn reload(&self) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(worker: usize, source: &'static str, players: usize) -> StreamInfo {
        StreamInfo {
            key: "live/a".into(),
            source,
            worker,
            players_rtmp: players,
            players_http_flv: 1,
            viewers_hls: 0,
            viewers_dash: 0,
            publisher: (source == "local").then(|| "127.0.0.1:5000".into()),
            bytes_in: 1_000_000,
            bytes_out: 300 * worker as u64,
            dropped_frames: worker as u64,
            uptime_ms: 4_000,
            video_codec: Some("avc1.64001f".into()),
            width: Some(1280),
            height: Some(720),
            audio_codec: None,
        }
    }

    #[test]
    fn a_stream_on_two_workers_is_one_summary_with_the_owners_facts_and_all_players() {
        let snapshots = vec![
            WorkerSnapshot {
                worker: 0,
                streams: vec![info(0, "remote", 3)],
                clients: vec![],
            },
            WorkerSnapshot {
                worker: 1,
                streams: vec![info(1, "local", 2)],
                clients: vec![],
            },
        ];
        let all = streams(&snapshots);
        assert_eq!(all.len(), 1);
        let s = &all[0];
        assert_eq!((s.app.as_str(), s.stream.as_str()), ("live", "a"));
        assert_eq!(s.owner, Some(1));
        assert_eq!(s.players["rtmp"], 5);
        assert_eq!(s.players["http-flv"], 2);
        assert_eq!(s.bitrate_in_kbps, 2_000, "1 MB in 4 s");
        assert_eq!(
            (s.bytes_out, s.dropped_frames),
            (300, 1),
            "summed over workers"
        );
        assert_eq!(s.width, Some(1280));
    }
}
