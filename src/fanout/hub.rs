//! The stream hub of one worker, as a sans-IO state machine: who publishes and who plays
//! which stream here, the fast-start caches, players waiting for a publisher, and the
//! mirrors of streams owned by other workers.
//!
//! # Doors
//!
//! Inputs are method calls, each with the [`Door`] to the worker's connections:
//! [`publish`](Hub::publish), [`play`](Hub::play) / [`open`](Hub::open) +
//! [`attach`](Hub::attach), [`ingest`](Hub::ingest), [`unpublish`](Hub::unpublish),
//! [`stop`](Hub::stop), [`pause`](Hub::pause), [`receive`](Hub::receive),
//! [`gone`](Hub::gone), [`on_mail`](Hub::on_mail), [`mailbox_full`](Hub::mailbox_full) and
//! [`shutdown`](Hub::shutdown). Nothing here reads a clock, touches a socket or a thread.
//!
//! A connection's session answers and its media share one ordered output queue, so the hub
//! writes both through the door as it goes ([`Door::notify`], [`Door::write`]): a player
//! told `Play.PublishNotify` gets it before the fast-start cache that follows. Everything
//! that can wait comes back as an [`Action`] from [`poll_action`](Hub::poll_action), to be
//! applied in order after the input: mail for other workers, connections to close,
//! packaging to start or finish.
//!
//! # Across workers
//!
//! A stream is owned by the worker of its publisher (the shared [`Directory`] records which).
//! A worker with players of a stream owned elsewhere keeps a mirror and subscribes
//! ([`Mail::Subscribe`]); the owner answers with [`Mail::Started`] (the fast-start cache)
//! and then sends each packet once per subscribed worker ([`Mail::Media`]). The states of a
//! stream entry and their transitions are drawn in `docs/LIFECYCLE-hub.md`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use super::conn_key::ConnKey;
use super::directory::{Claim, Directory};
use super::packet::{MediaKind, Packet};
use super::player::Player;
use super::queue::{FlvBody, FlvFramings, OutputQueue, PushOutcome};
use super::stream::{IngestError, Source, Stream, StreamKey, StreamMap, StreamSettings};

/// How the hub treats publishers and players (the `[streams]` config).
#[derive(Debug, Clone, Copy)]
pub struct HubSettings {
    pub stream: StreamSettings,
    /// A second publisher of a name takes over (else it is refused with BadName).
    pub publish_takeover: bool,
    /// A player of a stream not yet published waits for it (else it is refused).
    pub wait_for_publisher: bool,
    /// Players stay when the publisher leaves and get the republished stream.
    pub keep_players_on_unpublish: bool,
    /// A stream played here that nobody publishes is pulled from an origin (`[relay]` has
    /// origins): the first worker to want it claims it and pulls ([`Action::Pull`]).
    pub pull: bool,
}

/// The worker's side of the hub: its connections' sessions and output queues.
pub trait Door {
    /// Runs `write` on `conn`'s output queue and schedules the connection for writing (and,
    /// when the queue fell behind, for the slow-player clock). `None`: `conn` has gone.
    fn write<R>(&mut self, conn: ConnKey, write: impl FnOnce(&mut OutputQueue) -> R) -> Option<R>;
    /// Tells `conn`'s session (or HTTP response) `notice`, now, ahead of what follows.
    fn notify(&mut self, conn: ConnKey, notice: Notice);
    /// `conn`'s queue overflowed: it is behind (the slow-player clock starts).
    fn behind(&mut self, conn: ConnKey);
}

/// What a connection is told, in order with its media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `NetStream.Publish.Start`: `conn` publishes `key`.
    PublishAccepted { stream_id: u32, key: StreamKey },
    /// The publish is refused with this onStatus.
    PublishRejected {
        stream_id: u32,
        code: &'static str,
        description: &'static str,
    },
    /// `conn` plays `key` (RTMP: `NetStream.Play.Start`; HTTP-FLV: its body streams).
    Playing {
        stream_id: u32,
        key: StreamKey,
        flv: Option<FlvBody>,
    },
    /// The play is refused with this onStatus.
    PlayRejected {
        stream_id: u32,
        code: &'static str,
        description: &'static str,
    },
    /// The stream is live again: StreamBegin, `NetStream.Play.PublishNotify`.
    Republished { stream_id: u32 },
    /// The publisher left; the player waits: StreamEOF, `NetStream.Play.UnpublishNotify`.
    Unpublished { stream_id: u32 },
    /// The stream is over for this player: `NetStream.Play.Stop`, or the end of a chunked
    /// HTTP-FLV body.
    Stopped { stream_id: u32 },
}

/// Mail between the hubs of different workers (over the bus).
#[derive(Debug)]
pub enum Mail {
    /// Worker `from` has players of `key`.
    Subscribe { key: StreamKey, from: usize },
    /// Worker `from` has no players of `key` any more.
    Unsubscribe { key: StreamKey, from: usize },
    /// The owner serves `key` from now on; `snapshot` is its fast-start cache.
    Started {
        key: StreamKey,
        owner: usize,
        snapshot: Vec<Packet>,
    },
    /// One packet of `key`, from its owner.
    Media {
        key: StreamKey,
        owner: usize,
        packet: Packet,
    },
    /// `key`'s publisher on `owner` left.
    Unpublished { key: StreamKey, owner: usize },
    /// A publisher on another worker took `key` over: close ours.
    KickPublisher { key: StreamKey },
}

/// Why the hub closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// A new publisher of the same stream on this worker took over.
    TakenOver,
    /// A new publisher of the same stream on another worker took over.
    TakenOverElsewhere,
    /// The publisher left and players are not kept (`keep_players_on_unpublish = false`).
    StreamEnded,
    /// The stream's pull gave up: no origin delivered it within `relay.player_wait_ms`.
    NoOrigin,
}

/// What the worker applies after an input, in order.
#[derive(Debug)]
pub enum Action {
    /// Put `mail` in worker `to`'s mailbox; call [`Hub::mailbox_full`] if it is full.
    Send { to: usize, mail: Mail },
    /// Close `conn`: at once, or once its queue is written (`after_flush`).
    Close {
        conn: ConnKey,
        reason: Close,
        after_flush: bool,
    },
    /// `key` started publishing here (HLS/DASH packaging may start).
    Published { key: StreamKey },
    /// `key`'s publisher here left (packaging finishes the presentation).
    Unpublished { key: StreamKey },
    /// Pull `key` from an origin: this worker claimed it for players that want it, or for an
    /// HLS/DASH viewer (`for_packaging`: its packaging starts next and is the audience).
    Pull { key: StreamKey, for_packaging: bool },
    /// A publisher here took over `key`, which was being pulled: stop the pull.
    StopPull { key: StreamKey },
}

/// Which stream a connection publishes or plays here.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Member {
    Publisher { key: StreamKey },
    Player { key: StreamKey },
}

/// Why a second publish or play on one connection is refused.
const ALREADY_HAS_A_STREAM: &str = "connection already has a stream";

/// Splits `bits` into worker indexes.
pub fn workers_in(mut bits: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if bits == 0 {
            return None;
        }
        let i = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        Some(i)
    })
}

/// One worker's streams; see the module doc.
pub struct Hub {
    /// This worker's index (its bit in the directory and on the bus).
    me: usize,
    settings: HubSettings,
    directory: Arc<Directory>,
    streams: StreamMap<Stream>,
    members: HashMap<ConnKey, Member>,
    actions: VecDeque<Action>,
}

impl Hub {
    /// The hub of worker `me`, sharing `directory` with the other workers' hubs.
    pub fn new(me: usize, settings: HubSettings, directory: Arc<Directory>) -> Self {
        Self {
            me,
            settings,
            directory,
            streams: StreamMap::default(),
            members: HashMap::new(),
            actions: VecDeque::new(),
        }
    }

    /// Replaces the settings (a configuration reload). Streams already open keep the
    /// [`StreamSettings`] they were created with; new streams and every later publish, play
    /// and unpublish decision use these.
    pub fn set_settings(&mut self, settings: HubSettings) {
        self.settings = settings;
    }

    /// The next thing to apply after an input.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn send(&mut self, to: usize, mail: Mail) {
        self.actions.push_back(Action::Send { to, mail });
    }

    fn new_stream(&self, key: StreamKey) -> Stream {
        Stream::new(key, self.settings.stream)
    }

    /// True while `conn` publishes or plays here, or is held as a player waiting for its
    /// stream (a publisher, an origin's first frames).
    pub fn is_member(&self, conn: ConnKey) -> bool {
        self.members.contains_key(&conn)
    }

    /// The stream `key` as this worker has it (owned or mirrored), if any.
    pub fn stream(&self, key: &StreamKey) -> Option<&Stream> {
        self.streams.get(key)
    }

    /// The connection publishing `key` here, if it is published on this worker.
    pub fn publisher(&self, key: &StreamKey) -> Option<ConnKey> {
        match self.streams.get(key)?.source {
            Source::Local(conn) => Some(conn),
            _ => None,
        }
    }

    /// True when `key`'s media enters the hub on this worker (a local publisher or a pull).
    pub fn feeds(&self, key: &StreamKey) -> bool {
        self.streams
            .get(key)
            .is_some_and(|s| matches!(s.source, Source::Local(_) | Source::Pulled))
    }

    /// Who watches `key` through this worker: its local players plus one per worker
    /// subscribed to it (what keeps a pull open).
    pub fn audience(&self, key: &StreamKey) -> usize {
        self.streams.get(key).map_or(0, |s| {
            s.players.len() + s.remote_workers.count_ones() as usize
        })
    }

    /// Every stream with an entry here (owned, mirrored or waited for).
    pub fn streams(&self) -> impl Iterator<Item = &Stream> {
        self.streams.values()
    }

    /// The streams published here by a local publisher.
    pub fn published_here(&self) -> impl Iterator<Item = &StreamKey> {
        self.streams
            .iter()
            .filter(|(_, s)| matches!(s.source, Source::Local(_)))
            .map(|(k, _)| k)
    }

    /// The stream `conn` publishes here.
    pub fn published_by(&self, conn: ConnKey) -> Option<&StreamKey> {
        match self.members.get(&conn)? {
            Member::Publisher { key } => Some(key),
            Member::Player { .. } => None,
        }
    }

    /// The fast-start cache of `key`: what a new player or packager starts with.
    pub fn snapshot(&self, key: &StreamKey) -> Vec<Packet> {
        self.streams
            .get(key)
            .map(|s| s.fast_start().collect())
            .unwrap_or_default()
    }

    /// Streams with an entry here (owned, mirrored or waited for).
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// `conn` asks to publish `key` on message stream `stream_id`.
    pub fn publish(&mut self, conn: ConnKey, stream_id: u32, key: StreamKey, door: &mut impl Door) {
        if self.members.contains_key(&conn) {
            door.notify(
                conn,
                Notice::PublishRejected {
                    stream_id,
                    code: "NetStream.Publish.BadConnection",
                    description: ALREADY_HAS_A_STREAM,
                },
            );
            return;
        }
        let takeover = self.settings.publish_takeover;
        if let Some(other) = self.publisher(&key) {
            if !takeover {
                self.reject_publish(conn, stream_id, &key, door);
                return;
            }
            // The old publisher's stream ends (its players are told) before the new one
            // starts it again.
            self.members.remove(&other);
            self.stream_unpublished(&key, door);
            self.actions.push_back(Action::Close {
                conn: other,
                reason: Close::TakenOver,
                after_flush: false,
            });
        }
        let waiters = match self.directory.claim(&key, self.me, takeover) {
            Claim::InUse { .. } => {
                self.reject_publish(conn, stream_id, &key, door);
                return;
            }
            Claim::Granted { waiters } => waiters,
            Claim::TakenOver { previous, waiters } => {
                self.send(previous, Mail::KickPublisher { key: key.clone() });
                waiters
            }
        };
        let me = self.me;
        let mut stream = self
            .streams
            .remove(&key)
            .unwrap_or_else(|| self.new_stream(key.clone()));
        match stream.source {
            // Our players were fed from elsewhere: the new source starts a new timeline here.
            Source::Remote(_) => stream.unpublish(),
            Source::Pulled => {
                stream.unpublish();
                self.actions
                    .push_back(Action::StopPull { key: key.clone() });
            }
            Source::None | Source::Local(_) => {}
        }
        stream.source = Source::Local(conn);
        stream.remote_workers |= waiters;
        self.streams.insert(key.clone(), stream);
        for worker in workers_in(waiters) {
            let mail = Mail::Started {
                key: key.clone(),
                owner: me,
                snapshot: Vec::new(),
            };
            self.send(worker, mail);
        }
        self.members
            .insert(conn, Member::Publisher { key: key.clone() });
        door.notify(
            conn,
            Notice::PublishAccepted {
                stream_id,
                key: key.clone(),
            },
        );
        // Logged in the connection's envelope, which names the stream and role by now.
        tracing::info!("publishing");
        self.actions
            .push_back(Action::Published { key: key.clone() });
        self.prime(&key, None, true, door);
    }

    fn reject_publish(&self, conn: ConnKey, stream_id: u32, key: &StreamKey, door: &mut impl Door) {
        tracing::info!(stream = %key, "publish rejected: stream already published");
        door.notify(
            conn,
            Notice::PublishRejected {
                stream_id,
                code: "NetStream.Publish.BadName",
                description: "stream is already being published",
            },
        );
    }

    /// An RTMP player `conn` asks to play `key` on message stream `stream_id`.
    pub fn play(&mut self, conn: ConnKey, stream_id: u32, key: StreamKey, door: &mut impl Door) {
        if self.members.contains_key(&conn) {
            let notice = Notice::PlayRejected {
                stream_id,
                code: "NetStream.Play.Failed",
                description: ALREADY_HAS_A_STREAM,
            };
            door.notify(conn, notice);
            return;
        }
        if !self.open(&key) {
            let notice = Notice::PlayRejected {
                stream_id,
                code: "NetStream.Play.StreamNotFound",
                description: "stream is not published",
            };
            door.notify(conn, notice);
            return;
        }
        self.attach(conn, stream_id, key, None, door);
    }

    /// Makes sure this worker has an entry for `key`: subscribed to its owner elsewhere, or
    /// waiting for a publisher. False (and nothing kept) when it is not published and players
    /// are configured not to wait. Call before [`attach`](Self::attach).
    pub fn open(&mut self, key: &StreamKey) -> bool {
        let me = self.me;
        let mut stream = self
            .streams
            .remove(key)
            .unwrap_or_else(|| self.new_stream(key.clone()));
        if stream.source == Source::None && stream.players.is_empty() {
            stream.source = self.follow_owner(key);
        }
        if stream.source == Source::None && self.settings.pull {
            stream.source = self.claim_pull(key, &mut stream);
        }
        if stream.source == Source::None && !self.settings.wait_for_publisher {
            if stream.is_idle() {
                self.directory.unsubscribe(key, me);
            } else {
                self.streams.insert(key.clone(), stream);
            }
            return false;
        }
        self.streams.insert(key.clone(), stream);
        true
    }

    /// Nobody publishes `key`: this worker claims it in the directory and pulls it (workers
    /// already waiting for it are told it started, like for a publisher); if another worker
    /// claimed it first, this one subscribes to it.
    fn claim_pull(&mut self, key: &StreamKey, stream: &mut Stream) -> Source {
        if self.try_pull(key, stream, false) {
            Source::Pulled
        } else {
            self.follow_owner(key)
        }
    }

    /// Claims `key` for a pull from here, unless another worker has it: true when claimed.
    fn try_pull(&mut self, key: &StreamKey, stream: &mut Stream, for_packaging: bool) -> bool {
        let Claim::Granted { waiters } = self.directory.claim(key, self.me, false) else {
            return false;
        };
        stream.remote_workers |= waiters;
        for worker in workers_in(waiters) {
            let mail = Mail::Started {
                key: key.clone(),
                owner: self.me,
                snapshot: Vec::new(),
            };
            self.send(worker, mail);
        }
        self.actions.push_back(Action::Pull {
            key: key.clone(),
            for_packaging,
        });
        true
    }

    /// An HLS/DASH viewer (not a player of the hub) asks for `key`: when no worker has it and
    /// pulls are on, this worker pulls it, so packaging can start.
    pub fn want(&mut self, key: &StreamKey) {
        if !self.settings.pull || self.directory.owner(key).is_some() {
            return;
        }
        let mut stream = self
            .streams
            .remove(key)
            .unwrap_or_else(|| self.new_stream(key.clone()));
        if stream.source == Source::None && self.try_pull(key, &mut stream, true) {
            stream.source = Source::Pulled;
        }
        if !stream.is_idle() {
            self.streams.insert(key.clone(), stream);
        }
    }

    /// Adds player `conn` (RTMP, or HTTP-FLV with `flv`) to a stream [`open`](Self::open)
    /// said it may play: it gets the fast-start cache now if the stream is live, else when it
    /// starts.
    pub fn attach(
        &mut self,
        conn: ConnKey,
        stream_id: u32,
        key: StreamKey,
        flv: Option<FlvBody>,
        door: &mut impl Door,
    ) {
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        let live = match stream.source {
            Source::Local(_) => true,
            Source::Remote(_) => stream.mirrored || stream.has_fast_start(),
            Source::Pulled => stream.has_fast_start(),
            Source::None => false,
        };
        let mut player = Player::new(conn, stream_id, flv);
        // A pull not delivering yet: the answer waits for its first frames (see `prime`).
        player.answered = live || stream.source != Source::Pulled;
        let answered = player.answered;
        stream.players.push(player);
        self.members
            .insert(conn, Member::Player { key: key.clone() });
        if answered {
            door.notify(
                conn,
                Notice::Playing {
                    stream_id,
                    key: key.clone(),
                    flv,
                },
            );
        }
        if answered {
            tracing::info!(live, "playing");
        } else {
            // Its envelope names the stream once it is answered.
            tracing::info!(stream = %key, "playing: waiting for the origin's first frames");
        }
        if live {
            self.prime(&key, Some(conn), false, door);
        }
    }

    /// Primes the unprimed players of `key` (all of them, or only `only`): the stream is
    /// live here. Each is told it is republished (`notify`) and gets the fast-start cache,
    /// which is built once for all of them (restamped headers included) and, for HTTP-FLV
    /// viewers, framed once per packet.
    fn prime(
        &mut self,
        key: &StreamKey,
        only: Option<ConnKey>,
        notify: bool,
        door: &mut impl Door,
    ) {
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        let wanted = |p: &Player| !p.primed && only.map_or(true, |c| c == p.conn);
        if !stream.players.iter().any(wanted) {
            return;
        }
        let waits = !stream.starts_on_keyframe();
        let cache: Vec<Packet> = stream.fast_start().collect();
        let mut framings: Vec<FlvFramings> = cache.iter().map(|_| FlvFramings::default()).collect();
        let players = stream.players.iter_mut().filter(|p| wanted(p));
        for player in players {
            player.primed = true;
            let stream_id = player.stream_id;
            if !player.answered {
                player.answered = true;
                let flv = player.flv;
                let key = key.clone();
                door.notify(
                    player.conn,
                    Notice::Playing {
                        stream_id,
                        key,
                        flv,
                    },
                );
            } else if notify {
                door.notify(player.conn, Notice::Republished { stream_id });
            }
            door.write(player.conn, |out| {
                for (packet, framing) in cache.iter().zip(&mut framings) {
                    player.push(out, packet, framing);
                }
                if waits {
                    out.wait_for_keyframe();
                }
            });
        }
    }

    /// Publisher media from `conn`, which publishes `key` (the worker keeps that on the
    /// connection, so the hot path hashes only the stream name): encoded once, cached, fanned
    /// out to local players and subscribed workers. The packet, for packaging; `None` when
    /// not forwarded, or when `conn` does not publish `key` here.
    pub fn ingest(
        &mut self,
        conn: ConnKey,
        key: &StreamKey,
        type_id: u8,
        timestamp: u32,
        payload: Bytes,
        door: &mut impl Door,
    ) -> Result<Option<Packet>, IngestError> {
        self.feed_from(Source::Local(conn), key, type_id, timestamp, payload, door)
    }

    /// Media of `key` from the origin this worker pulls it from (the worker passes only
    /// what the pull's current upstream connection delivers): as [`ingest`](Self::ingest).
    pub fn ingest_pulled(
        &mut self,
        key: &StreamKey,
        type_id: u8,
        timestamp: u32,
        payload: Bytes,
        door: &mut impl Door,
    ) -> Result<Option<Packet>, IngestError> {
        self.feed_from(Source::Pulled, key, type_id, timestamp, payload, door)
    }

    /// One message of `key`, fed only if `source` is what feeds it here.
    fn feed_from(
        &mut self,
        source: Source,
        key: &StreamKey,
        type_id: u8,
        timestamp: u32,
        payload: Bytes,
        door: &mut impl Door,
    ) -> Result<Option<Packet>, IngestError> {
        let me = self.me;
        let Some(stream) = self.streams.get_mut(key).filter(|s| s.source == source) else {
            return Ok(None);
        };
        feed(
            me,
            stream,
            key,
            type_id,
            timestamp,
            payload,
            &mut self.actions,
            door,
        )
    }

    /// A new upstream connection of `key`'s pull starts delivering (the first, or one after
    /// a failover): its timestamps continue the stream's timeline, and players still waiting
    /// for the stream's first frames get them from here on.
    pub fn pull_feeding(&mut self, key: &StreamKey, door: &mut impl Door) {
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        if stream.source != Source::Pulled {
            return;
        }
        stream.restart_clock();
        self.prime(key, None, false, door);
    }

    /// `key`'s pull ended: it went idle (no audience), or it gave up (`gave_up`: no origin
    /// delivered): players that never got a frame are refused StreamNotFound, the others are
    /// stopped, and both are closed once told. Subscribed workers are told it ended.
    pub fn pull_ended(&mut self, key: &StreamKey, gave_up: bool, door: &mut impl Door) {
        let me = self.me;
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        if stream.source != Source::Pulled {
            return;
        }
        let players = std::mem::take(&mut stream.players);
        // Subscribed workers' players pull again from there if they still want it.
        self.end_feed(key);
        tracing::info!(worker = me, stream = %key, players = players.len(), gave_up, "pull ended");
        for player in players {
            let stream_id = player.stream_id;
            let notice = if player.answered {
                Notice::Stopped { stream_id }
            } else {
                Notice::PlayRejected {
                    stream_id,
                    code: "NetStream.Play.StreamNotFound",
                    description: "no origin has the stream",
                }
            };
            door.notify(player.conn, notice);
            self.members.remove(&player.conn);
            self.actions.push_back(Action::Close {
                conn: player.conn,
                reason: Close::NoOrigin,
                after_flush: true,
            });
        }
        self.streams.remove(key);
    }

    /// Worker `to`'s mailbox refused media of `key`: its players skip to the next keyframe.
    pub fn mailbox_full(&mut self, to: usize, key: &StreamKey) {
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        let bit = 1u64 << to;
        if stream.bus_behind & bit == 0 {
            stream.bus_behind |= bit;
            tracing::warn!(worker = self.me, to, stream = %key,
                "bus full: that worker's players skip to the next keyframe");
        }
    }

    /// Publisher `conn` stopped publishing (FCUnpublish/deleteStream) but stays connected.
    /// (A player's membership is left alone.)
    pub fn unpublish(&mut self, conn: ConnKey, door: &mut impl Door) {
        if let Some(Member::Publisher { .. }) = self.members.get(&conn) {
            self.gone(conn, door);
        }
    }

    /// Player `conn` stopped playing (closeStream/deleteStream) but stays connected.
    /// (A publisher's membership is left alone.)
    pub fn stop(&mut self, conn: ConnKey, door: &mut impl Door) {
        if let Some(Member::Player { .. }) = self.members.get(&conn) {
            self.gone(conn, door);
        }
    }

    /// Player `conn` paused (`true`) or resumed; on resume it starts at the next keyframe.
    pub fn pause(&mut self, conn: ConnKey, paused: bool, door: &mut impl Door) {
        if let Some(player) = self.player_mut(conn) {
            player.paused = paused;
            if !paused {
                door.write(conn, OutputQueue::wait_for_keyframe);
            }
        }
    }

    /// Player `conn` turned audio or video on or off (receiveAudio/receiveVideo).
    pub fn receive(&mut self, conn: ConnKey, audio: Option<bool>, video: Option<bool>) {
        if let Some(player) = self.player_mut(conn) {
            player.audio = audio.unwrap_or(player.audio);
            if let Some(video) = video {
                // Only video waits for its keyframe: audio is not cut.
                player.video_waits_keyframe |= video && !player.video;
                player.video = video;
            }
        }
    }

    fn player_mut(&mut self, conn: ConnKey) -> Option<&mut Player> {
        let Some(Member::Player { key }) = self.members.get(&conn) else {
            return None;
        };
        self.streams
            .get_mut(key)?
            .players
            .iter_mut()
            .find(|p| p.conn == conn)
    }

    /// Connection `conn` closed: it leaves whatever it published or played.
    pub fn gone(&mut self, conn: ConnKey, door: &mut impl Door) {
        match self.members.remove(&conn) {
            Some(Member::Publisher { key }) if self.publisher(&key) == Some(conn) => {
                self.stream_unpublished(&key, door);
            }
            Some(Member::Player { key }) => self.leave(conn, &key),
            Some(Member::Publisher { .. }) | None => {}
        }
    }

    /// Server shutdown: every player is told its stream stopped.
    pub fn shutdown(&mut self, door: &mut impl Door) {
        for stream in self.streams.values() {
            for player in &stream.players {
                let stream_id = player.stream_id;
                door.notify(player.conn, Notice::Stopped { stream_id });
            }
        }
    }

    /// The stream's local publisher left.
    fn stream_unpublished(&mut self, key: &StreamKey, door: &mut impl Door) {
        let Some(remote) = self.end_feed(key) else {
            return;
        };
        for worker in workers_in(remote) {
            self.resubscribe(key, worker);
        }
        let players = self.streams.get(key).map_or(0, |s| s.players.len());
        tracing::info!(worker = self.me, stream = %key, players, "unpublished");
        self.players_lost_source(key, door);
    }

    /// `key`'s feed here (publisher or pull) ended: its media is forgotten, the directory
    /// entry released, packaging told, and each subscribed worker told it ended. Returns those
    /// workers (`None`: no such stream).
    fn end_feed(&mut self, key: &StreamKey) -> Option<u64> {
        let me = self.me;
        let stream = self.streams.get_mut(key)?;
        stream.unpublish();
        let remote = std::mem::take(&mut stream.remote_workers);
        stream.bus_behind = 0;
        self.directory.release(key, me);
        self.actions
            .push_back(Action::Unpublished { key: key.clone() });
        for worker in workers_in(remote) {
            let mail = Mail::Unpublished {
                key: key.clone(),
                owner: me,
            };
            self.send(worker, mail);
        }
        Some(remote)
    }

    /// Points worker `worker`'s interest in `key` at the current owner (or records it as
    /// waiting).
    fn resubscribe(&mut self, key: &StreamKey, worker: usize) {
        match self.directory.subscribe(key, worker) {
            Some(owner) if owner == worker => {}
            Some(owner) if owner == self.me => self.serve_subscriber(key, worker),
            Some(owner) => {
                let mail = Mail::Subscribe {
                    key: key.clone(),
                    from: worker,
                };
                self.send(owner, mail);
            }
            None => {}
        }
    }

    /// Owner side: worker `worker` has players of `key`: it gets every packet from now on,
    /// starting with the fast-start cache.
    fn serve_subscriber(&mut self, key: &StreamKey, worker: usize) {
        if let Some(stream) = self.streams.get_mut(key) {
            stream.remote_workers |= 1 << worker;
        }
        let mail = Mail::Started {
            key: key.clone(),
            owner: self.me,
            snapshot: self.snapshot(key),
        };
        self.send(worker, mail);
    }

    /// Local players of `key` lost their source: tell them, keep them waiting or stop them.
    fn players_lost_source(&mut self, key: &StreamKey, door: &mut impl Door) {
        let keep = self.settings.keep_players_on_unpublish;
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        for player in &mut stream.players {
            player.primed = false;
            let stream_id = player.stream_id;
            if keep {
                door.notify(player.conn, Notice::Unpublished { stream_id });
            } else {
                door.notify(player.conn, Notice::Stopped { stream_id });
                self.members.remove(&player.conn);
                self.actions.push_back(Action::Close {
                    conn: player.conn,
                    reason: Close::StreamEnded,
                    after_flush: true,
                });
            }
        }
        if !keep {
            stream.players.clear();
        }
        if stream.players.is_empty() {
            if stream.is_idle() {
                self.streams.remove(key);
            }
            return;
        }
        let mut source = self.follow_owner(key);
        if let Some(mut stream) = self.streams.remove(key) {
            if source == Source::None && self.settings.pull {
                // Its pull ended elsewhere with players still here: pull it from here.
                source = self.claim_pull(key, &mut stream);
            }
            stream.source = source;
            self.streams.insert(key.clone(), stream);
        }
    }

    /// This worker wants `key`: subscribed to its owner when another worker publishes it
    /// (`Remote`), else listed in the directory as waiting for a publisher (`None`).
    fn follow_owner(&mut self, key: &StreamKey) -> Source {
        match self.directory.subscribe(key, self.me) {
            Some(owner) if owner != self.me => {
                let from = self.me;
                self.send(
                    owner,
                    Mail::Subscribe {
                        key: key.clone(),
                        from,
                    },
                );
                Source::Remote(owner)
            }
            _ => Source::None,
        }
    }

    /// Player `conn` leaves `key` (stop or close).
    fn leave(&mut self, conn: ConnKey, key: &StreamKey) {
        let me = self.me;
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        stream.players.retain(|p| p.conn != conn);
        if !stream.players.is_empty() {
            return;
        }
        match stream.source {
            Source::Remote(owner) => {
                self.directory.unsubscribe(key, me);
                self.streams.remove(key);
                let mail = Mail::Unsubscribe {
                    key: key.clone(),
                    from: me,
                };
                self.send(owner, mail);
            }
            Source::None => {
                self.directory.unsubscribe(key, me);
                if stream.is_idle() {
                    self.streams.remove(key);
                }
            }
            Source::Local(_) | Source::Pulled => {}
        }
    }

    /// Mail from another worker's hub.
    pub fn on_mail(&mut self, mail: Mail, door: &mut impl Door) {
        let me = self.me;
        match mail {
            Mail::Subscribe { key, from } => {
                if self.feeds(&key) {
                    self.serve_subscriber(&key, from);
                } else {
                    self.resubscribe(&key, from);
                }
            }
            Mail::Unsubscribe { key, from } => {
                if let Some(stream) = self.streams.get_mut(&key) {
                    stream.remote_workers &= !(1 << from);
                    stream.bus_behind &= !(1 << from);
                    if stream.is_idle() {
                        self.streams.remove(&key);
                    }
                }
            }
            Mail::Started {
                key,
                owner,
                snapshot,
            } => {
                let Some(stream) = self.streams.get_mut(&key).filter(|s| !s.players.is_empty())
                else {
                    self.directory.unsubscribe(&key, me);
                    self.send(owner, Mail::Unsubscribe { key, from: me });
                    return;
                };
                if stream.source != Source::Remote(owner) {
                    stream.unpublish();
                }
                stream.source = Source::Remote(owner);
                stream.mirrored = true;
                for packet in &snapshot {
                    stream.remember(packet);
                }
                self.prime(&key, None, true, door);
            }
            Mail::Media { key, owner, packet } => {
                let Some(stream) = self.streams.get_mut(&key) else {
                    return;
                };
                if stream.source != Source::Remote(owner) {
                    return;
                }
                stream.remember(&packet);
                deliver(&mut stream.players, &packet, door);
            }
            Mail::Unpublished { key, owner } => {
                let Some(stream) = self.streams.get_mut(&key) else {
                    return;
                };
                if stream.source != Source::Remote(owner) {
                    return;
                }
                stream.unpublish();
                self.players_lost_source(&key, door);
            }
            Mail::KickPublisher { key } => {
                if let Some(publisher) = self.publisher(&key) {
                    // Its stream ends here (the directory already names the new owner, which
                    // the local players now subscribe to).
                    self.members.remove(&publisher);
                    self.stream_unpublished(&key, door);
                    self.actions.push_back(Action::Close {
                        conn: publisher,
                        reason: Close::TakenOverElsewhere,
                        after_flush: false,
                    });
                }
            }
        }
    }
}

/// The owner's side of one message of `key` from its feed (local publisher or pull): encoded
/// once and cached, sent once to each subscribed worker, delivered to the local players.
// The hub's fields are passed apart so `stream` can stay borrowed from its map.
#[allow(clippy::too_many_arguments)]
fn feed(
    me: usize,
    stream: &mut Stream,
    key: &StreamKey,
    type_id: u8,
    timestamp: u32,
    payload: Bytes,
    actions: &mut VecDeque<Action>,
    door: &mut impl Door,
) -> Result<Option<Packet>, IngestError> {
    let Some(packet) = stream.ingest(type_id, timestamp, payload)? else {
        return Ok(None);
    };
    // Same policy as a slow player's queue: after a drop, a worker skips media to the next
    // video keyframe (headers always go).
    let resumes = packet.keyframe && packet.kind == MediaKind::Video;
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
        let mail = Mail::Media {
            key: key.clone(),
            owner: me,
            packet: packet.clone(),
        };
        actions.push_back(Action::Send { to: worker, mail });
    }
    deliver(&mut stream.players, &packet, door);
    Ok(Some(packet))
}

/// The fan-out hot path: one packet into every primed local player's queue.
fn deliver(players: &mut [Player], packet: &Packet, door: &mut impl Door) {
    let mut flv = FlvFramings::default();
    for player in players {
        if !player.primed {
            continue;
        }
        let outcome = door.write(player.conn, |out| player.push(out, packet, &mut flv));
        if let Some(Some(PushOutcome::Overflowed)) = outcome {
            door.behind(player.conn);
        }
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
