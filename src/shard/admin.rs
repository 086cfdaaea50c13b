//! The workers' side of the admin API: snapshots of their streams and clients and kicks,
//! asked over the bus ([`AdminQuery`]) and answered from each worker's loop, and the
//! [`Control`] the admin thread holds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bus::{Bus, BusMsg};
use super::close::CloseReason;
use super::conn::{Conn, Role};
use super::worker::Worker;
use crate::admin::api::{ClientInfo, Control, Kicked, StreamInfo, WorkerSnapshot};
use crate::fanout::{ConnKey, Source, StreamKey};
use crate::package::codec::{parse_frame, Parsed};
use crate::package::{Frame, FrameKind};

/// How long an HLS/DASH viewer counts after its last playlist or manifest request.
const VIEWER_WINDOW: Duration = Duration::from_secs(30);

/// HLS/DASH viewers seen by this worker: per stream and protocol, each address's last
/// playlist or manifest request (viewers are requests, not connections).
#[derive(Debug, Default)]
pub struct HttpViewers {
    seen: HashMap<(StreamKey, &'static str), HashMap<IpAddr, Instant>>,
}

impl HttpViewers {
    /// `ip` asked for `key`'s playlist (`proto` = `hls`) or manifest (`dash`) at `now`.
    pub fn seen(&mut self, key: &StreamKey, proto: &'static str, ip: IpAddr, now: Instant) {
        self.seen
            .entry((key.clone(), proto))
            .or_default()
            .insert(ip, now);
    }

    /// Whether `ip` has fetched `key`'s playlist or manifest (`proto`) within the window:
    /// a viewer watching here (per worker: its connections' worker).
    pub fn is_watching(&self, key: &StreamKey, proto: &'static str, ip: IpAddr) -> bool {
        self.seen
            .get(&(key.clone(), proto))
            .is_some_and(|ips| ips.contains_key(&ip))
    }

    /// Forgets viewers quiet for the window (call from the timer).
    pub fn prune(&mut self, now: Instant) {
        self.seen.retain(|_, ips| {
            ips.retain(|_, at| now.duration_since(*at) < VIEWER_WINDOW);
            !ips.is_empty()
        });
    }

    fn count(&self, key: &StreamKey, proto: &'static str) -> usize {
        self.seen.get(&(key.clone(), proto)).map_or(0, HashMap::len)
    }

    fn keys(&self) -> impl Iterator<Item = &StreamKey> {
        self.seen.keys().map(|(k, _)| k)
    }
}

/// What connections that left this worker had queued and dropped, so the counters (the
/// worker's and, for players, their stream's) stay monotonic when connections go.
#[derive(Debug, Default)]
pub struct Departed {
    media_out: u64,
    dropped: u64,
    by_stream: HashMap<StreamKey, StreamOut>,
}

/// Bytes sent to a stream's players and frames they dropped.
#[derive(Debug, Default, Clone, Copy)]
struct StreamOut {
    bytes: u64,
    dropped: u64,
}

impl Departed {
    /// `conn` is closing.
    pub fn left(&mut self, conn: &Conn) {
        self.media_out += conn.out.queued_media();
        self.dropped += conn.out.dropped_frames();
        if let (Role::Player { .. }, Some(key)) = (conn.role, &conn.last_stream) {
            let out = self.by_stream.entry(key.clone()).or_default();
            out.bytes += conn.bytes_out;
            out.dropped += conn.out.dropped_frames();
        }
    }

    /// Forgets the streams this worker no longer has (their series end with them).
    pub fn prune(&mut self, hub: &crate::fanout::Hub) {
        self.by_stream.retain(|key, _| hub.stream(key).is_some());
    }
}

/// A question from the admin thread to one worker.
#[derive(Debug)]
pub enum AdminQuery {
    /// Describe your streams and clients.
    Snapshot(Sender<WorkerSnapshot>),
    /// Close connection `key` (answer whether it was there).
    Kick { key: ConnKey, reply: Sender<bool> },
}

/// The admin thread's handle on the workers.
pub struct ShardControl {
    bus: Arc<Bus>,
    /// Set by `run`: SIGHUP is handled, so a reload request raises it.
    pub(super) signals: AtomicBool,
}

impl ShardControl {
    pub fn new(bus: Arc<Bus>) -> Self {
        Self {
            bus,
            signals: AtomicBool::new(false),
        }
    }
}

impl Control for ShardControl {
    fn snapshot(&self, timeout: Duration) -> Vec<WorkerSnapshot> {
        let (tx, rx) = channel();
        self.bus
            .broadcast(|| BusMsg::Admin(AdminQuery::Snapshot(tx.clone())));
        drop(tx);
        let deadline = Instant::now() + timeout;
        let mut all: Vec<WorkerSnapshot> = Vec::with_capacity(self.bus.workers());
        while all.len() < self.bus.workers() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(snapshot) => all.push(snapshot),
                Err(_) => break, // a worker that does not answer in time is left out
            }
        }
        all.sort_by_key(|s| s.worker);
        all
    }

    fn kick(&self, id: &str, timeout: Duration) -> Kicked {
        let mut parts = id.split('-').map(str::parse::<u64>);
        let (Some(Ok(worker)), Some(Ok(index)), Some(Ok(generation)), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Kicked::NotFound;
        };
        if worker as usize >= self.bus.workers() {
            return Kicked::NotFound;
        }
        let key = ConnKey {
            index: index as u32,
            generation: generation as u32,
        };
        let (reply, rx) = channel();
        self.bus.send(
            worker as usize,
            BusMsg::Admin(AdminQuery::Kick { key, reply }),
        );
        match rx.recv_timeout(timeout) {
            Ok(true) => Kicked::Closed,
            _ => Kicked::NotFound,
        }
    }

    fn drain(&self) {
        self.bus.begin_drain();
    }

    fn reload(&self) -> Result<(), String> {
        if !self.signals.load(Ordering::Acquire) {
            return Err("this server was started without a configuration file to reload".into());
        }
        signal_hook::low_level::raise(signal_hook::consts::SIGHUP).map_err(|e| e.to_string())
    }
}

impl Worker {
    /// From the timer: refreshes this worker's gauges for the admin listener's scrapes
    /// (connections by protocol, the player-queue histogram, streams, origins up).
    pub(super) fn publish_gauges(&self, now: Instant) {
        let stats = &self.stats;
        stats.open.store(
            self.conns.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        stats.streams.store(
            self.hub.stream_count() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        stats.publishers_polled.store(
            self.polled_publishers() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut open_by = [0u64; crate::admin::metrics::OPEN_LABELS.len()];
        let mut le = [0u64; crate::admin::metrics::QUEUE_BUCKETS.len() + 1];
        let mut queued_sum = 0u64;
        let (mut media_out, mut dropped) = (self.departed.media_out, self.departed.dropped);
        for (_, conn) in self.conns.iter() {
            if let Role::Player { .. } = conn.role {
                let queued = conn.out.queued_bytes() as u64;
                queued_sum += queued;
                let first = crate::admin::metrics::QUEUE_BUCKETS
                    .iter()
                    .position(|b| queued <= *b)
                    .unwrap_or(le.len() - 1);
                for count in &mut le[first..] {
                    *count += 1;
                }
            }
            media_out += conn.out.queued_media();
            dropped += conn.out.dropped_frames();
            open_by[conn.label_index()] += 1;
        }
        for (gauge, n) in stats.open_by.iter().zip(open_by) {
            gauge.store(n, std::sync::atomic::Ordering::Relaxed);
        }
        stats
            .media_out
            .store(media_out, std::sync::atomic::Ordering::Relaxed);
        stats
            .frames_dropped
            .store(dropped, std::sync::atomic::Ordering::Relaxed);
        for (gauge, n) in stats.queue_le.iter().zip(le) {
            gauge.store(n, std::sync::atomic::Ordering::Relaxed);
        }
        stats
            .queue_sum
            .store(queued_sum, std::sync::atomic::Ordering::Relaxed);
        let origins = self.relay.origins_health(now);
        stats.origins_up.store(
            origins.iter().filter(|(_, up)| *up).count() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        *stats.origins.lock().unwrap_or_else(|e| e.into_inner()) = origins;
        *stats.pushes.lock().unwrap_or_else(|e| e.into_inner()) = self.relay.pushes_health();
    }

    /// Answers an admin question.
    pub(super) fn admin_query(&mut self, query: AdminQuery, now: Instant) {
        match query {
            AdminQuery::Snapshot(reply) => {
                let _ = reply.send(self.snapshot(now));
            }
            AdminQuery::Kick { key, reply } => {
                let found = self.conns.get(key).is_some();
                if found {
                    self.close(key, CloseReason::Kicked, now);
                }
                let _ = reply.send(found);
            }
        }
    }

    fn snapshot(&self, now: Instant) -> WorkerSnapshot {
        let clients = self
            .conns
            .iter()
            .map(|(key, c)| {
                let (proto, role) = c.labels();
                ClientInfo {
                    id: format!("{}-{}-{}", self.index, key.index, key.generation),
                    worker: self.index,
                    peer: c.peer.to_string(),
                    role,
                    proto,
                    stream: c.last_stream.as_ref().map(ToString::to_string),
                    bytes_in: c.bytes_in,
                    bytes_out: c.bytes_out,
                    queue_bytes: c.out.queued_bytes(),
                    dropped_frames: c.out.dropped_frames(),
                    connected_ms: now.duration_since(c.opened).as_millis() as u64,
                }
            })
            .collect();
        // What this worker's players of each stream were sent and dropped.
        let mut out: HashMap<&StreamKey, StreamOut> = HashMap::new();
        for (_, c) in self.conns.iter() {
            if let (Role::Player { .. }, Some(key)) = (c.role, &c.last_stream) {
                let o = out.entry(key).or_default();
                o.bytes += c.bytes_out;
                o.dropped += c.out.dropped_frames();
            }
        }
        for (key, gone) in &self.departed.by_stream {
            let o = out.entry(key).or_default();
            o.bytes += gone.bytes;
            o.dropped += gone.dropped;
        }
        let streams = self
            .hub
            .streams()
            .map(|stream| {
                let sent = out.get(&stream.key).copied().unwrap_or_default();
                let feeder = match stream.source {
                    Source::Local(conn) => Some(conn),
                    Source::Pulled => self.relay.feeder(&stream.key),
                    Source::Remote(_) | Source::None => None,
                };
                let feeder = feeder.and_then(|k| self.conns.get(k));
                let (video, audio) = stream.headers();
                let video = video.and_then(|p| {
                    let frame = Frame::new(FrameKind::Video, 0, p.wire.payload().clone());
                    match parse_frame(&frame) {
                        Ok(Parsed::VideoConfig(c)) => Some(c),
                        _ => None,
                    }
                });
                let audio = audio.and_then(|p| {
                    let frame = Frame::new(FrameKind::Audio, 0, p.wire.payload().clone());
                    match parse_frame(&frame) {
                        Ok(Parsed::AudioConfig(c)) => Some(c.codec_string),
                        _ => None,
                    }
                });
                let http_flv = stream.players.iter().filter(|p| p.flv.is_some()).count();
                let viewers = &self.http_viewers;
                StreamInfo {
                    key: stream.key.to_string(),
                    source: match stream.source {
                        Source::Local(_) => "local",
                        Source::Pulled => "pulled",
                        Source::Remote(_) => "remote",
                        Source::None => "waiting",
                    },
                    worker: self.index,
                    players_rtmp: stream.players.len() - http_flv,
                    players_http_flv: http_flv,
                    viewers_hls: viewers.count(&stream.key, "hls"),
                    viewers_dash: viewers.count(&stream.key, "dash"),
                    publisher: feeder.map(|c| c.peer.to_string()),
                    bytes_in: feeder.map_or(0, |c| c.bytes_in),
                    bytes_out: sent.bytes,
                    dropped_frames: sent.dropped,
                    uptime_ms: feeder
                        .map_or(0, |c| now.duration_since(c.opened).as_millis() as u64),
                    width: video.as_ref().map(|c| c.width).filter(|w| *w > 0),
                    height: video.as_ref().map(|c| c.height).filter(|h| *h > 0),
                    video_codec: video.map(|c| c.codec_string),
                    audio_codec: audio,
                }
            })
            .collect::<Vec<StreamInfo>>();
        // Streams this worker serves over HLS/DASH without a hub entry (packaged elsewhere).
        let mut streams = streams;
        let extra: Vec<StreamKey> = self
            .http_viewers
            .keys()
            .filter(|k| self.hub.stream(k).is_none())
            .cloned()
            .collect();
        for key in extra {
            if streams.iter().any(|s| s.key == key.as_str()) {
                continue;
            }
            streams.push(StreamInfo {
                key: key.to_string(),
                source: "remote",
                worker: self.index,
                players_rtmp: 0,
                players_http_flv: 0,
                viewers_hls: self.http_viewers.count(&key, "hls"),
                viewers_dash: self.http_viewers.count(&key, "dash"),
                publisher: None,
                bytes_in: 0,
                bytes_out: 0,
                dropped_frames: 0,
                uptime_ms: 0,
                video_codec: None,
                width: None,
                height: None,
                audio_codec: None,
            });
        }
        WorkerSnapshot {
            worker: self.index,
            streams,
            clients,
        }
    }
}
