//! The stream hub on one worker: publish and play requests, encode-once ingest, fan-out to
//! local players, and the bus protocol that mirrors streams owned by other workers.

use std::time::Instant;

use super::bus::BusMsg;
use super::conn::{Conn, MediaOffset, Player, Role};
use super::conns::Conns;
use super::directory::Claim;
use super::worker::{workers_in, Worker};
use crate::fanout::{
    ConnKey, FlvBody, FlvFramings, IngestError, Packet, PlayerQueue, PushOutcome, Source, Stream,
    StreamKey, StreamSettings,
};
use crate::rtmp::session::ServerSession;

/// Why a second publish or play on one connection is refused.
const ALREADY_HAS_A_STREAM: &str = "connection already has a stream";

impl Worker {
    pub(super) fn new_stream(&self, key: StreamKey) -> Stream {
        let s = &self.config.streams;
        let settings = StreamSettings {
            chunk_size: self.config.rtmp.chunk_size,
            gop_cache: s.gop_cache,
            gop_cache_max_bytes: s.gop_cache_max_bytes,
            max_header_bytes: s.max_header_bytes,
        };
        Stream::new(key, settings)
    }

    /// The app of an RTMP connection asking to publish or play; `None`, after answering with
    /// `reject`, when the connection already has a stream (one stream per connection).
    fn stream_request(
        &mut self,
        key: ConnKey,
        reject: impl FnOnce(&mut ServerSession),
    ) -> Option<String> {
        let conn = self.conns.get_mut(key)?;
        let pending = conn.role == Role::Pending;
        let session = conn.rtmp()?;
        if pending {
            return Some(session.app().unwrap_or_default().to_string());
        }
        reject(session);
        self.pump(key);
        None
    }

    pub(super) fn publish(&mut self, key: ConnKey, stream_id: u32, name: &str, now: Instant) {
        let Some(app) = self.stream_request(key, |session| {
            session.reject_publish(
                stream_id,
                "NetStream.Publish.BadConnection",
                ALREADY_HAS_A_STREAM,
            )
        }) else {
            return;
        };
        let skey = StreamKey::new(&app, name);
        let takeover = self.config.streams.publish_takeover;
        if let Some(Source::Local(other)) = self.streams.get(&skey).map(|s| s.source) {
            if !takeover {
                self.reject_publish(key, stream_id, &skey);
                return;
            }
            self.close(
                other,
                "publisher taken over by a new publisher".to_string(),
                now,
            );
        }
        let claim = self.directory.claim(&skey, self.index, takeover);
        let waiters = match claim {
            Claim::InUse { .. } => {
                self.reject_publish(key, stream_id, &skey);
                return;
            }
            Claim::Granted { waiters } => waiters,
            Claim::TakenOver { previous, waiters } => {
                self.bus
                    .send(previous, BusMsg::KickPublisher { key: skey.clone() });
                waiters
            }
        };
        let index = self.index;
        let mut stream = self
            .streams
            .remove(&skey)
            .unwrap_or_else(|| self.new_stream(skey.clone()));
        if let Source::Remote(_) = stream.source {
            // Our players were fed from elsewhere: the new source starts a new timeline here.
            stream.unpublish();
        }
        stream.source = Source::Local(key);
        stream.remote_workers |= waiters;
        for worker in workers_in(waiters) {
            self.bus.send(
                worker,
                BusMsg::Started {
                    key: skey.clone(),
                    owner: index,
                    snapshot: Vec::new(),
                },
            );
        }
        let players = stream.players.clone();
        self.streams.insert(skey.clone(), stream);
        if let Some(conn) = self.conns.get_mut(key) {
            if let Some(session) = conn.rtmp() {
                session.accept_publish(stream_id);
            }
            conn.set_role(Role::Publisher {
                key: skey.clone(),
                stream_id,
            });
            tracing::info!(worker = index, conn = conn.id, peer = %conn.peer, stream = %skey, role = "publisher", "publishing");
        }
        self.pump(key);
        self.hls_publish(&skey, now);
        for player in players {
            self.start_player(player, true);
        }
    }

    pub(super) fn reject_publish(&mut self, key: ConnKey, stream_id: u32, skey: &StreamKey) {
        if let Some(conn) = self.conns.get_mut(key) {
            tracing::info!(worker = self.index, conn = conn.id, peer = %conn.peer, stream = %skey,
                "publish rejected: stream already published");
            if let Some(session) = conn.rtmp() {
                session.reject_publish(
                    stream_id,
                    "NetStream.Publish.BadName",
                    "stream is already being published",
                );
            }
        }
        self.pump(key);
    }

    /// A player (re)starts receiving a stream that just went live: tell it, and give it the
    /// fast-start cache unless it already has this publish's media.
    pub(super) fn start_player(&mut self, key: ConnKey, notify: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Role::Player(player) = &mut conn.role else {
            return;
        };
        if player.primed {
            return;
        }
        player.primed = true;
        let stream_id = player.stream_id;
        let skey = player.key.clone();
        if notify {
            if let Some(session) = conn.rtmp() {
                session.notify_republished(stream_id);
            }
        }
        self.pump(key);
        let Some(stream) = self.streams.get(&skey) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Conn {
            role: Role::Player(player),
            out,
            ..
        } = conn
        else {
            return;
        };
        for packet in stream.fast_start() {
            push_to_player(out, player, &packet, &mut FlvFramings::default());
        }
        if !stream.starts_on_keyframe() {
            conn.out.wait_for_keyframe();
        }
        conn.schedule_write(&mut self.write_list);
    }

    pub(super) fn play(&mut self, key: ConnKey, stream_id: u32, name: &str) {
        let Some(app) = self.stream_request(key, |session| {
            session.reject_play(stream_id, "NetStream.Play.Failed", ALREADY_HAS_A_STREAM)
        }) else {
            return;
        };
        let skey = StreamKey::new(&app, name);
        if !self.open_stream(&skey) {
            if let Some(session) = self.conns.get_mut(key).and_then(|c| c.rtmp()) {
                session.reject_play(
                    stream_id,
                    "NetStream.Play.StreamNotFound",
                    "stream is not published",
                );
            }
            self.pump(key);
            return;
        }
        if let Some(session) = self.conns.get_mut(key).and_then(|c| c.rtmp()) {
            session.accept_play(stream_id);
        }
        self.pump(key);
        self.attach_player(key, skey, stream_id, None);
    }

    /// Makes sure this worker has an entry for `skey`: subscribed to its owner elsewhere, or
    /// waiting for a publisher. False (and nothing kept) when it is not published and players
    /// are configured not to wait.
    pub(super) fn open_stream(&mut self, skey: &StreamKey) -> bool {
        let index = self.index;
        let mut stream = self
            .streams
            .remove(skey)
            .unwrap_or_else(|| self.new_stream(skey.clone()));
        if stream.source == Source::None && stream.players.is_empty() {
            match self.directory.subscribe(skey, index) {
                Some(owner) if owner != index => {
                    stream.source = Source::Remote(owner);
                    self.bus.send(
                        owner,
                        BusMsg::Subscribe {
                            key: skey.clone(),
                            from: index,
                        },
                    );
                }
                _ => {}
            }
        }
        if stream.source == Source::None && !self.config.streams.wait_for_publisher {
            if stream.is_idle() {
                self.directory.unsubscribe(skey, index);
            } else {
                self.streams.insert(skey.clone(), stream);
            }
            return false;
        }
        self.streams.insert(skey.clone(), stream);
        true
    }

    /// Adds an accepted player (RTMP, or HTTP-FLV with `flv`) to an opened stream; it gets the
    /// fast-start cache now if the stream is live, else when it starts.
    pub(super) fn attach_player(
        &mut self,
        key: ConnKey,
        skey: StreamKey,
        stream_id: u32,
        flv: Option<FlvBody>,
    ) {
        let index = self.index;
        let Some(stream) = self.streams.get_mut(&skey) else {
            return;
        };
        let live = match stream.source {
            Source::Local(_) => true,
            Source::Remote(_) => stream.fast_start().next().is_some(),
            Source::None => false,
        };
        stream.players.push(key);
        if let Some(conn) = self.conns.get_mut(key) {
            conn.set_role(Role::Player(Player {
                key: skey.clone(),
                stream_id,
                audio: true,
                video: true,
                paused: false,
                video_waits_keyframe: false,
                primed: false,
                flv,
            }));
            let role = if flv.is_some() { "http-flv" } else { "player" };
            tracing::info!(worker = index, conn = conn.id, peer = %conn.peer, stream = %skey, role,
                live, "playing");
        }
        if live {
            self.start_player(key, false);
        }
    }

    /// Publisher media: encode once, cache, then fan out to local players and subscribed workers.
    pub(super) fn ingest(
        &mut self,
        skey: &StreamKey,
        type_id: u8,
        timestamp: u32,
        payload: bytes::Bytes,
        now: Instant,
    ) -> Result<(), IngestError> {
        let Some(stream) = self.streams.get_mut(skey) else {
            return Ok(());
        };
        let Some(packet) = stream.ingest(type_id, timestamp, payload)? else {
            return Ok(());
        };
        // Arrival on the wall clock, read once per message: dates HLS/DASH media.
        let wall = crate::shard::hls::wall_clock_ms();
        if let Source::Local(publisher) = stream.source {
            if let Some(conn) = self.conns.get_mut(publisher) {
                let restart = packet.keyframe && packet.kind == crate::fanout::MediaKind::Video;
                MediaOffset::observe(&mut conn.media_offset, packet.timestamp, wall, restart, now);
            }
        }
        // Same policy as a slow player's queue: after a drop, a worker skips media to the next
        // video keyframe (headers always go), and the drop run is logged once.
        let resumes = packet.keyframe && packet.kind == crate::fanout::MediaKind::Video;
        for worker in workers_in(stream.remote_workers) {
            let bit = 1u64 << worker;
            if stream.bus_behind & bit != 0 {
                if !(resumes || packet.header) {
                    continue;
                }
                if resumes {
                    stream.bus_behind &= !bit;
                }
            }
            let msg = BusMsg::Media {
                key: skey.clone(),
                owner: self.index,
                packet: packet.clone(),
            };
            if !self.bus.send(worker, msg) && stream.bus_behind & bit == 0 {
                stream.bus_behind |= bit;
                tracing::warn!(worker = self.index, to = worker, stream = %skey,
                    "bus full: that worker's players skip to the next keyframe");
            }
        }
        deliver(
            &mut self.conns,
            &mut self.media_list,
            &stream.players,
            &packet,
            now,
        );
        self.hls_package(skey, &packet, wall);
        Ok(())
    }

    /// The stream's local publisher left.
    pub(super) fn unpublish(&mut self, skey: &StreamKey, now: Instant) {
        let index = self.index;
        let Some(stream) = self.streams.get_mut(skey) else {
            return;
        };
        stream.unpublish();
        let remote = std::mem::take(&mut stream.remote_workers);
        let players = stream.players.clone();
        self.directory.release(skey, index);
        self.hls_unpublish(skey, now);
        for worker in workers_in(remote) {
            self.bus.send(
                worker,
                BusMsg::Unpublished {
                    key: skey.clone(),
                    owner: index,
                },
            );
            self.resubscribe(skey, worker);
        }
        tracing::info!(worker = index, stream = %skey, players = players.len(), "unpublished");
        self.players_lost_source(skey, &players, now);
    }

    /// Points worker `worker`'s interest in `key` at the current owner (or records it as waiting).
    pub(super) fn resubscribe(&mut self, skey: &StreamKey, worker: usize) {
        match self.directory.subscribe(skey, worker) {
            Some(owner) if owner == worker => {}
            Some(owner) if owner == self.index => self.serve_subscriber(skey, worker),
            Some(owner) => {
                self.bus.send(
                    owner,
                    BusMsg::Subscribe {
                        key: skey.clone(),
                        from: worker,
                    },
                );
            }
            None => {}
        }
    }

    /// Owner side: worker `worker` has players of `skey`: it gets every packet from now on,
    /// starting with the fast-start cache.
    fn serve_subscriber(&mut self, skey: &StreamKey, worker: usize) {
        if let Some(stream) = self.streams.get_mut(skey) {
            stream.remote_workers |= 1 << worker;
        }
        let snapshot = self.snapshot(skey);
        let msg = BusMsg::Started {
            key: skey.clone(),
            owner: self.index,
            snapshot,
        };
        self.bus.send(worker, msg);
    }

    pub(super) fn snapshot(&self, skey: &StreamKey) -> Vec<Packet> {
        self.streams
            .get(skey)
            .map(|s| s.fast_start().collect())
            .unwrap_or_default()
    }

    /// Local players of `skey` lost their source: tell them, keep them waiting or stop them.
    pub(super) fn players_lost_source(
        &mut self,
        skey: &StreamKey,
        players: &[ConnKey],
        now: Instant,
    ) {
        let keep = self.config.streams.keep_players_on_unpublish;
        for &p in players {
            let Some(conn) = self.conns.get_mut(p) else {
                continue;
            };
            let Role::Player(player) = &mut conn.role else {
                continue;
            };
            player.primed = false;
            let stream_id = player.stream_id;
            if keep {
                if let Some(session) = conn.rtmp() {
                    session.notify_unpublished(stream_id);
                }
            } else {
                conn.stop_playing();
                conn.closing = Some("stream ended".to_string());
            }
            self.pump(p);
            // An HTTP/1.0 FLV viewer has nothing left to send: close it now (others close
            // once their queue is written).
            if !keep && self.conns.get(p).is_some_and(|c| c.out.is_empty()) {
                self.close(p, "stream ended".to_string(), now);
            }
        }
        let index = self.index;
        let Some(stream) = self.streams.get_mut(skey) else {
            return;
        };
        if !keep {
            stream.players.clear();
        }
        if stream.players.is_empty() {
            if stream.is_idle() {
                self.streams.remove(skey);
            }
            return;
        }
        match self.directory.subscribe(skey, index) {
            Some(owner) if owner != index => {
                stream.source = Source::Remote(owner);
                self.bus.send(
                    owner,
                    BusMsg::Subscribe {
                        key: skey.clone(),
                        from: index,
                    },
                );
            }
            _ => stream.source = Source::None,
        }
    }

    /// A player leaves `skey` (stop or close).
    pub(super) fn leave(&mut self, key: ConnKey, skey: &StreamKey) {
        let index = self.index;
        let Some(stream) = self.streams.get_mut(skey) else {
            return;
        };
        stream.players.retain(|&p| p != key);
        if !stream.players.is_empty() {
            return;
        }
        match stream.source {
            Source::Remote(owner) => {
                self.bus.send(
                    owner,
                    BusMsg::Unsubscribe {
                        key: skey.clone(),
                        from: index,
                    },
                );
                self.directory.unsubscribe(skey, index);
                self.streams.remove(skey);
            }
            Source::None => {
                self.directory.unsubscribe(skey, index);
                if stream.is_idle() {
                    self.streams.remove(skey);
                }
            }
            Source::Local(_) => {}
        }
    }

    pub(super) fn on_bus(&mut self, msg: BusMsg, now: Instant) {
        let index = self.index;
        match msg {
            BusMsg::Subscribe { key, from } => {
                let owned = matches!(
                    self.streams.get(&key).map(|s| s.source),
                    Some(Source::Local(_))
                );
                if owned {
                    self.serve_subscriber(&key, from);
                } else {
                    self.resubscribe(&key, from);
                }
            }
            BusMsg::Unsubscribe { key, from } => {
                if let Some(stream) = self.streams.get_mut(&key) {
                    stream.remote_workers &= !(1 << from);
                    stream.bus_behind &= !(1 << from);
                    if stream.is_idle() {
                        self.streams.remove(&key);
                    }
                }
            }
            BusMsg::Started {
                key,
                owner,
                snapshot,
            } => {
                let Some(stream) = self.streams.get_mut(&key).filter(|s| !s.players.is_empty())
                else {
                    self.bus.send(
                        owner,
                        BusMsg::Unsubscribe {
                            key: key.clone(),
                            from: index,
                        },
                    );
                    self.directory.unsubscribe(&key, index);
                    return;
                };
                if stream.source != Source::Remote(owner) {
                    stream.unpublish();
                }
                stream.source = Source::Remote(owner);
                for packet in &snapshot {
                    stream.remember(packet);
                }
                let players = stream.players.clone();
                for p in players {
                    self.start_player(p, true);
                }
            }
            BusMsg::Media { key, owner, packet } => {
                let Some(stream) = self.streams.get_mut(&key) else {
                    return;
                };
                if stream.source != Source::Remote(owner) {
                    return;
                }
                stream.remember(&packet);
                deliver(
                    &mut self.conns,
                    &mut self.media_list,
                    &stream.players,
                    &packet,
                    now,
                );
            }
            BusMsg::Unpublished { key, owner } => {
                let Some(stream) = self.streams.get_mut(&key) else {
                    return;
                };
                if stream.source != Source::Remote(owner) {
                    return;
                }
                stream.unpublish();
                let players = stream.players.clone();
                self.players_lost_source(&key, &players, now);
            }
            BusMsg::HlsProgress { key } => self.hls_progress(&key, now),
            BusMsg::HlsStart { key } => self.hls_start(&key, now),
            BusMsg::KickPublisher { key } => {
                if let Some(Source::Local(publisher)) = self.streams.get(&key).map(|s| s.source) {
                    self.close(
                        publisher,
                        "publisher taken over on another worker".to_string(),
                        now,
                    );
                }
            }
        }
    }
}

/// Clones `packet` into one player's queue, honouring its filters (refcounts only, unless the
/// player uses a message stream id other than the shared one).
fn push_to_player(
    out: &mut PlayerQueue,
    player: &mut Player,
    packet: &Packet,
    flv: &mut FlvFramings,
) -> Option<PushOutcome> {
    use crate::fanout::MediaKind;
    let wanted = match packet.kind {
        MediaKind::Audio => player.audio || packet.header,
        MediaKind::Video if packet.header => true,
        MediaKind::Video => {
            if player.video_waits_keyframe && player.video && !player.paused {
                if !packet.keyframe {
                    return None;
                }
                player.video_waits_keyframe = false;
            }
            player.video
        }
        MediaKind::Data => true,
    };
    if !wanted || (player.paused && !packet.header) {
        return None;
    }
    let mut packet = packet.clone();
    if !player.video && packet.kind == MediaKind::Audio {
        // With video turned off, any audio frame is a place to resume after drops.
        packet.keyframe = true;
    }
    let outcome = if let Some(body) = player.flv {
        let framing = flv.get(&packet, body);
        out.push_flv(packet, framing)
    } else if player.stream_id == crate::fanout::SHARED_STREAM_ID {
        out.push_media(packet)
    } else {
        packet.wire = packet.wire.with_stream_id(player.stream_id);
        out.push_media(packet)
    };
    Some(outcome)
}

/// The fan-out hot path: one packet into every local player's queue.
pub(super) fn deliver(
    conns: &mut Conns,
    write_list: &mut Vec<ConnKey>,
    players: &[ConnKey],
    packet: &Packet,
    now: Instant,
) {
    let mut flv = FlvFramings::default();
    for &key in players {
        let Some(conn) = conns.get_mut(key) else {
            continue;
        };
        let Conn {
            role,
            out,
            stalled_since,
            id,
            ..
        } = &mut *conn;
        let Role::Player(player) = role else { continue };
        if !player.primed {
            continue;
        }
        if let Some(PushOutcome::Overflowed) = push_to_player(out, player, packet, &mut flv) {
            tracing::debug!(conn = *id, stream = %player.key, queued = out.queued_bytes(),
                "player behind: dropping to the next keyframe");
            stalled_since.get_or_insert(now);
        }
        conn.schedule_write(write_list);
    }
}
