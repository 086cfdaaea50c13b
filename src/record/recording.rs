//! The worker's side of recording: which of its streams are recorded, and the hand-off of
//! their packets to the writer thread.
//!
//! The hand-off never blocks and never copies media: a packet is a refcount increment, sent
//! over an unbounded channel whose media is bounded in bytes by [`RecordQueue`] (the writer
//! gives bytes back as it writes them). When the writer is behind (a slow disk) and a packet
//! does not fit, the stream's media is dropped until its next keyframe, which is sent with
//! the latest metadata and sequence headers so the file goes on decodable; one warning per
//! stream per drop run. Start and stop always get through: they are not media.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use super::{name, RecordMsg, RecordSettings};
use crate::fanout::{MediaKind, Packet, StreamKey};

/// Bytes a queued packet is counted for beyond its payload (the message, the packet's
/// shared allocation), so a flood of tiny packets is bounded too.
pub const MESSAGE_OVERHEAD: usize = 64;

/// The sending end of the writer's queue; every worker holds a clone.
#[derive(Debug, Clone)]
pub struct RecordQueue {
    tx: Sender<RecordMsg>,
    queued: Arc<AtomicUsize>,
}

/// The receiving end, for the writer.
#[derive(Debug)]
pub struct RecordInbox {
    pub(super) rx: Receiver<RecordMsg>,
    queued: Arc<AtomicUsize>,
}

impl RecordQueue {
    /// A queue and its receiving end.
    pub fn new() -> (Self, RecordInbox) {
        let (tx, rx) = std::sync::mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let inbox = RecordInbox {
            rx,
            queued: queued.clone(),
        };
        (Self { tx, queued }, inbox)
    }

    /// Media bytes sent and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Sends a start or stop. False when the writer is gone.
    fn control(&self, msg: RecordMsg) -> bool {
        self.tx.send(msg).is_ok()
    }

    /// Sends `packets` of recording `id`, all or none: none when they would take the queue
    /// past `limit` bytes (or the writer is gone).
    fn media<'a>(
        &self,
        id: u64,
        packets: impl Iterator<Item = &'a Packet> + Clone,
        limit: usize,
    ) -> bool {
        let cost: usize = packets.clone().map(cost).sum();
        let before = self.queued.fetch_add(cost, Ordering::Relaxed);
        if before + cost > limit {
            self.queued.fetch_sub(cost, Ordering::Relaxed);
            return false;
        }
        for packet in packets {
            let msg = RecordMsg::Media {
                id,
                packet: packet.clone(),
            };
            if self.tx.send(msg).is_err() {
                return false;
            }
        }
        true
    }
}

impl RecordInbox {
    /// Gives back the bytes ([`cost`]) of a media message once it is written.
    pub fn written(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// What a queued packet counts for.
pub fn cost(packet: &Packet) -> usize {
    packet.wire.payload().len() + MESSAGE_OVERHEAD
}

/// One stream being recorded from this worker.
#[derive(Debug)]
struct Recorded {
    id: u64,
    /// The latest metadata, video and audio sequence headers, resent after a drop.
    headers: [Option<Packet>; 3],
    /// Packets dropped in the current drop run; `None` while media flows.
    dropping: Option<u64>,
}

/// Which streams of one worker are recorded. See the [module doc](self).
#[derive(Debug)]
pub struct Recording {
    worker: usize,
    settings: RecordSettings,
    /// The writer's queue; `None`: recording is off for good ([`off`](Self::off)).
    queue: Option<RecordQueue>,
    streams: HashMap<StreamKey, Recorded>,
    next_id: u64,
}

impl Recording {
    /// Worker `worker`'s recordings, handed to `queue`.
    pub fn new(worker: usize, settings: RecordSettings, queue: RecordQueue) -> Self {
        Self {
            worker,
            settings,
            queue: Some(queue),
            streams: HashMap::new(),
            next_id: 0,
        }
    }

    /// Worker `worker` with no writer: records nothing, whatever its settings.
    pub fn off(worker: usize) -> Self {
        Self {
            worker,
            settings: RecordSettings::default(),
            queue: None,
            streams: HashMap::new(),
            next_id: 0,
        }
    }

    /// New settings (a reload). Which streams are recorded, where and in what format applies
    /// to streams published from now on (those being recorded go on as they started); the
    /// queue bound applies at once.
    pub fn set_settings(&mut self, settings: RecordSettings) {
        self.settings = settings;
    }

    /// Call when a local publisher starts `key` (`now_unix_ms`: the wall clock, which names
    /// the file). Starts a recording when its app is recorded and its names are usable.
    pub fn published(&mut self, key: &StreamKey, now_unix_ms: u64) {
        self.unpublished(key); // a publish without an unpublish before it (takeover)
        let app = key.as_str().rsplit_once('/').map_or("", |(app, _)| app);
        let Some(queue) = self.queue.as_ref().filter(|_| self.settings.records(app)) else {
            return;
        };
        let name = match name::checked(key) {
            Ok(name) => name,
            Err((part, reason)) => {
                tracing::warn!(worker = self.worker, stream = %key, ?part, %reason,
                    "not recorded: the name cannot name a file");
                return;
            }
        };
        // Unique across workers: the worker's index in the top bits.
        let id = ((self.worker as u64) << 48) | self.next_id;
        self.next_id += 1;
        let start = RecordMsg::Start {
            id,
            key: key.clone(),
            dir: self.settings.dir.clone(),
            name,
            format: self.settings.format,
            started_unix_ms: now_unix_ms,
        };
        if !queue.control(start) {
            tracing::warn!(worker = self.worker, stream = %key, "not recorded: the writer is gone");
            return;
        }
        let recorded = Recorded {
            id,
            headers: [None, None, None],
            dropping: None,
        };
        self.streams.insert(key.clone(), recorded);
    }

    /// Call for every packet the hub ingested from `key`'s local publisher. Costs a map
    /// lookup when `key` is not recorded, a refcount increment and a channel send when it is.
    pub fn packet(&mut self, key: &StreamKey, packet: &Packet) {
        if self.streams.is_empty() {
            return;
        }
        let (Some(rec), Some(queue)) = (self.streams.get_mut(key), &self.queue) else {
            return;
        };
        if packet.header {
            let slot = match packet.kind {
                MediaKind::Data => 0,
                MediaKind::Video => 1,
                MediaKind::Audio => 2,
            };
            rec.headers[slot] = Some(packet.clone());
        }
        let limit = self.settings.queue_bytes;
        match rec.dropping {
            None => {
                if !queue.media(rec.id, std::iter::once(packet), limit) {
                    rec.dropping = Some(1);
                    tracing::warn!(worker = self.worker, stream = %key,
                        queued = queue.queued_bytes(), limit,
                        "recording is behind (slow disk?): dropping media to the next keyframe");
                }
            }
            Some(dropped) => {
                // Resume at a keyframe, after the headers it may need (the writer skips
                // those it has already written).
                let resume = packet.keyframe && !packet.header;
                let batch = rec.headers.iter().flatten().chain(std::iter::once(packet));
                if resume && queue.media(rec.id, batch, limit) {
                    rec.dropping = None;
                    tracing::info!(worker = self.worker, stream = %key, dropped,
                        "recording resumed at a keyframe");
                } else {
                    rec.dropping = Some(dropped + 1);
                }
            }
        }
    }

    /// Call when `key`'s local publisher leaves: its recording is completed and closed.
    pub fn unpublished(&mut self, key: &StreamKey) {
        if let (Some(rec), Some(queue)) = (self.streams.remove(key), &self.queue) {
            queue.control(RecordMsg::Stop { id: rec.id });
        }
    }

    /// Streams being recorded from this worker.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// True when no stream of this worker is recorded.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordFormat;
    use crate::rtmp::message::type_id;
    use bytes::Bytes;

    fn settings(queue_bytes: usize) -> RecordSettings {
        RecordSettings {
            dir: "/record".into(),
            apps: vec!["*".to_string()],
            format: RecordFormat::Flv,
            queue_bytes,
        }
    }

    fn packet(type_id: u8, timestamp: u32, payload: &[u8]) -> Packet {
        Packet::encode(
            type_id,
            timestamp,
            Bytes::copy_from_slice(payload),
            4096,
            true,
        )
        .unwrap()
    }

    fn video(timestamp: u32, keyframe: bool, len: usize) -> Packet {
        let mut body = vec![if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        body.resize(len, 0xab);
        packet(type_id::VIDEO, timestamp, &body)
    }

    /// What the writer would get: (timestamp, kind, header) of each media message.
    fn received(inbox: &RecordInbox) -> Vec<(u32, MediaKind, bool)> {
        let mut out = Vec::new();
        while let Ok(msg) = inbox.rx.try_recv() {
            if let RecordMsg::Media { packet, .. } = msg {
                inbox.written(cost(&packet));
                out.push((packet.timestamp, packet.kind, packet.header));
            }
        }
        out
    }

    #[test]
    fn a_full_queue_drops_to_the_next_keyframe_which_comes_with_the_headers() {
        let (queue, inbox) = RecordQueue::new();
        let frame = 1000;
        // Room for the header and two frames: the writer (this test) reads nothing meanwhile.
        let mut rec = Recording::new(
            0,
            settings(2 * (frame + MESSAGE_OVERHEAD) + 100),
            queue.clone(),
        );
        let key = StreamKey::new("live", "cam");
        rec.published(&key, 0);
        assert!(matches!(inbox.rx.try_recv(), Ok(RecordMsg::Start { .. })));
        let header = packet(type_id::VIDEO, 0, &[0x17, 0, 0, 0, 0, 1, 0x64]);
        assert!(header.header);
        rec.packet(&key, &header);
        rec.packet(&key, &video(0, true, frame));
        rec.packet(&key, &video(40, false, frame));
        // Full: this and everything up to the next keyframe is dropped, even what would fit
        // again once the writer catches up.
        rec.packet(&key, &video(80, false, frame));
        assert_eq!(
            received(&inbox).iter().map(|r| r.0).collect::<Vec<_>>(),
            [0, 0, 40]
        );
        assert_eq!(queue.queued_bytes(), 0, "the writer gave every byte back");
        rec.packet(&key, &video(120, false, frame));
        assert!(
            received(&inbox).is_empty(),
            "still dropping: no keyframe yet"
        );
        rec.packet(&key, &video(160, true, frame));
        rec.packet(&key, &video(200, false, frame));
        assert_eq!(
            received(&inbox),
            [
                (0, MediaKind::Video, true),
                (160, MediaKind::Video, false),
                (200, MediaKind::Video, false)
            ],
            "resumed on the keyframe, its sequence header first"
        );
    }

    /// Log output captured from the calls in `f`.
    fn logs_of(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = lines.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn a_drop_run_is_one_warning_however_many_packets_it_drops() {
        let (queue, inbox) = RecordQueue::new();
        let mut rec = Recording::new(0, settings(1500), queue);
        let key = StreamKey::new("live", "cam");
        rec.published(&key, 0);
        let logs = logs_of(|| {
            for run in 0..2 {
                let t = run * 1000;
                rec.packet(&key, &video(t, true, 1000));
                for i in 1..20 {
                    rec.packet(&key, &video(t + i * 40, false, 1000));
                }
                received(&inbox); // the writer catches up
            }
        });
        let warnings = logs
            .lines()
            .filter(|l| l.contains("dropping media"))
            .count();
        let resumed = logs.lines().filter(|l| l.contains("resumed")).count();
        assert_eq!((warnings, resumed), (2, 1), "{logs}");
        assert!(logs.contains("dropped=19"), "the run's count: {logs}");
    }

    #[test]
    fn a_keyframe_that_does_not_fit_either_keeps_the_drop_run_going() {
        let (queue, inbox) = RecordQueue::new();
        let mut rec = Recording::new(0, settings(2500), queue.clone());
        let key = StreamKey::new("live", "cam");
        rec.published(&key, 0);
        rec.packet(&key, &video(0, true, 2000));
        rec.packet(&key, &video(40, true, 2000)); // does not fit: dropping
        rec.packet(&key, &video(80, true, 2000)); // still does not fit
        let got = received(&inbox);
        assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), [0]);
        rec.packet(&key, &video(120, true, 2000)); // room again
        assert_eq!(
            received(&inbox).iter().map(|r| r.0).collect::<Vec<_>>(),
            [120]
        );
    }

    #[test]
    fn only_recorded_apps_with_usable_names_start_a_recording() {
        let (queue, inbox) = RecordQueue::new();
        let mut only_live = settings(1 << 20);
        only_live.apps = vec!["live".to_string()];
        let mut rec = Recording::new(3, only_live, queue);
        rec.published(&StreamKey::new("other", "cam"), 0);
        rec.published(&StreamKey::new("live", ".."), 0);
        rec.published(&StreamKey::new("live", "a\nb"), 0);
        assert!(rec.is_empty());
        assert!(inbox.rx.try_recv().is_err(), "nothing sent for them");
        rec.published(&StreamKey::new("live", "cam"), 0);
        match inbox.rx.try_recv() {
            Ok(RecordMsg::Start { id, name, .. }) => {
                assert_eq!(id >> 48, 3, "the worker is in the id");
                assert_eq!((name.app.as_str(), name.stream.as_str()), ("live", "cam"));
            }
            other => panic!("{other:?}"),
        }
        // Off: an empty dir records nothing, whatever the apps.
        rec.set_settings(RecordSettings {
            dir: "".into(),
            ..settings(1 << 20)
        });
        rec.published(&StreamKey::new("live", "later"), 0);
        assert_eq!(rec.len(), 1);
        // No writer: nothing, whatever the settings.
        let mut off = Recording::off(0);
        off.set_settings(settings(1 << 20));
        off.published(&StreamKey::new("live", "cam"), 0);
        assert!(off.is_empty());
    }

    #[test]
    fn a_republish_stops_the_old_recording_and_starts_a_new_one() {
        let (queue, inbox) = RecordQueue::new();
        let mut rec = Recording::new(0, settings(1 << 20), queue);
        let key = StreamKey::new("live", "cam");
        rec.published(&key, 0);
        rec.unpublished(&key);
        rec.published(&key, 1);
        rec.published(&key, 2); // a takeover: no unpublish in between
        let kinds: Vec<String> = inbox
            .rx
            .try_iter()
            .map(|m| match m {
                RecordMsg::Start { id, .. } => format!("start {id}"),
                RecordMsg::Stop { id } => format!("stop {id}"),
                RecordMsg::Media { .. } => "media".to_string(),
            })
            .collect();
        assert_eq!(kinds, ["start 0", "stop 0", "start 1", "stop 1", "start 2"]);
    }
}
