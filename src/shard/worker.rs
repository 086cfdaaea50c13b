//! One worker: a mio Poll, SO_REUSEPORT listeners, a preallocated Slab of connections, the
//! streams seen on this core, and a mailbox on the cross-worker bus.
//!
//! Each wake-up: accept (budgeted), read ready connections (budgeted) and run their
//! sessions, fan media out into player queues, then flush every dirtied connection with
//! one vectored write pass. A timer tick every 100 ms enforces timeouts.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::bus::{Bus, BusMsg};
use super::conn::{Conn, Player, Role};
use super::directory::{Claim, Directory};
use crate::config::Config;
use crate::fanout::{Packet, PlayerQueue, PushOutcome, Source, Stream, StreamKey};
use crate::net::{read_some, write_queue, ReadOutcome, SocketOptions, WriteOutcome};
use crate::rtmp::handshake::RANDOM_LEN;
use crate::rtmp::session::{ServerConfig, ServerEvent, ServerSession};

/// Token of the bus waker.
pub const WAKER_TOKEN: Token = Token(usize::MAX);
/// Listener `i` has token `LISTENER_BASE + i`.
const LISTENER_BASE: usize = usize::MAX / 2;
/// Timer resolution.
const TICK: Duration = Duration::from_millis(100);
/// Readiness events handled per poll.
const EVENTS_PER_POLL: usize = 1024;
/// Size of the worker's read scratch buffer (one per worker, not per connection).
const SCRATCH_BYTES: usize = 64 * 1024;
/// A drained connection keeps at most this much read buffer.
const IDLE_READ_BUFFER: usize = 4 * 1024;

/// Everything one worker owns.
pub struct Worker {
    index: usize,
    poll: Poll,
    listeners: Vec<TcpListener>,
    conns: Slab<Conn>,
    streams: HashMap<StreamKey, Stream>,
    per_ip: HashMap<IpAddr, usize>,
    bus: Arc<Bus>,
    directory: Arc<Directory>,
    config: Arc<Config>,
    session_config: ServerConfig,
    socket_options: SocketOptions,
    /// Every read lands here first, so idle connections hold no read buffer.
    scratch: Box<[u8]>,
    /// Connections with unread input left after their budget.
    read_again: Vec<usize>,
    /// Connections with queued output to flush this wake-up.
    write_list: Vec<usize>,
    /// Players with media queued, flushed every `write_coalesce_ms` (at once when 0).
    media_list: Vec<usize>,
    next_media_flush: Instant,
    accept_again: bool,
    started: Instant,
    next_conn: u64,
    rng: u64,
    shutdown_deadline: Option<Instant>,
}

/// Splits `bits` into worker indexes.
fn workers_in(mut bits: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if bits == 0 {
            return None;
        }
        let i = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        Some(i)
    })
}

impl Worker {
    /// A worker around an existing Poll (whose waker is already on the bus) and its listeners.
    pub fn new(
        index: usize,
        poll: Poll,
        mut listeners: Vec<TcpListener>,
        bus: Arc<Bus>,
        directory: Arc<Directory>,
        config: Arc<Config>,
    ) -> io::Result<Self> {
        for (i, listener) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(listener, Token(LISTENER_BASE + i), Interest::READABLE)?;
        }
        let session_config = ServerConfig {
            limits: config.rtmp.limits(),
            chunk_size: config.rtmp.chunk_size,
            window_ack_size: config.rtmp.window_ack_size,
            peer_bandwidth: config.rtmp.peer_bandwidth,
        };
        let socket_options = SocketOptions {
            nodelay: config.workers.tcp_nodelay,
            recv_buffer: config.workers.socket_recv_buffer,
            send_buffer: config.workers.socket_send_buffer,
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Ok(Self {
            index,
            poll,
            listeners,
            conns: Slab::with_capacity(config.workers.max_connections),
            streams: HashMap::new(),
            per_ip: HashMap::new(),
            bus,
            directory,
            session_config,
            socket_options,
            scratch: vec![0u8; SCRATCH_BYTES].into_boxed_slice(),
            read_again: Vec::new(),
            write_list: Vec::new(),
            media_list: Vec::new(),
            next_media_flush: Instant::now(),
            accept_again: false,
            started: Instant::now(),
            next_conn: 0,
            rng: seed ^ ((index as u64 + 1) << 32) | 1,
            shutdown_deadline: None,
            config,
        })
    }

    /// Runs until shutdown completes.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        let mut mail = VecDeque::new();
        let mut next_tick = Instant::now() + TICK;
        loop {
            let busy =
                self.accept_again || !self.read_again.is_empty() || !self.write_list.is_empty();
            let mut wake_at = next_tick;
            if !self.media_list.is_empty() {
                wake_at = wake_at.min(self.next_media_flush);
            }
            let timeout = if busy {
                Duration::ZERO
            } else {
                wake_at.saturating_duration_since(Instant::now())
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let now = Instant::now();
            let mut readable = std::mem::take(&mut self.read_again);
            let mut mail_waiting = false;
            for event in events.iter() {
                match event.token() {
                    WAKER_TOKEN => mail_waiting = true,
                    Token(t) if t >= LISTENER_BASE => self.accept_again = true,
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            readable.push(key);
                        }
                        if event.is_writable() || event.is_write_closed() {
                            self.mark_writable(key);
                        }
                    }
                }
            }
            if mail_waiting {
                self.bus.drain(self.index, &mut mail);
                while let Some(msg) = mail.pop_front() {
                    self.on_bus(msg, now);
                }
            }
            if self.accept_again && self.shutdown_deadline.is_none() {
                self.accept(now);
            }
            readable.sort_unstable();
            readable.dedup();
            for key in readable {
                self.read(key, now);
            }
            if !self.media_list.is_empty() && now >= self.next_media_flush {
                self.write_list.append(&mut self.media_list);
                self.next_media_flush =
                    now + Duration::from_millis(self.config.workers.write_coalesce_ms);
            }
            self.flush(now);
            if now >= next_tick {
                next_tick = now + TICK;
                if self.tick(now) {
                    return Ok(());
                }
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        let budget = self.config.workers.accept_budget;
        let mut accepted = 0;
        self.accept_again = false;
        for i in 0..self.listeners.len() {
            loop {
                if accepted >= budget {
                    self.accept_again = true;
                    return;
                }
                match self.listeners[i].accept() {
                    Ok((stream, peer)) => {
                        accepted += 1;
                        self.admit(stream, peer, now);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::warn!(worker = self.index, error = %e, "accept failed");
                        break;
                    }
                }
            }
        }
    }

    fn admit(&mut self, mut socket: TcpStream, peer: SocketAddr, now: Instant) {
        let limits = &self.config.workers;
        if self.conns.len() >= limits.max_connections {
            tracing::warn!(worker = self.index, %peer, limit = limits.max_connections,
                "connection refused: worker at max_connections");
            return;
        }
        let ip = peer.ip();
        if limits.max_connections_per_ip > 0
            && self.per_ip.get(&ip).copied().unwrap_or(0) >= limits.max_connections_per_ip
        {
            tracing::warn!(worker = self.index, %peer, limit = limits.max_connections_per_ip,
                "connection refused: max_connections_per_ip reached");
            return;
        }
        if let Err(e) = self.socket_options.apply(&socket) {
            tracing::warn!(worker = self.index, %peer, error = %e, "cannot set socket options");
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut socket,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            tracing::warn!(worker = self.index, %peer, error = %e, "cannot register connection");
            return;
        }
        let random = {
            let mut block = [0u8; RANDOM_LEN];
            for chunk in block.chunks_mut(8) {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                chunk.copy_from_slice(&self.rng.to_le_bytes()[..chunk.len()]);
            }
            block
        };
        let epoch = now.duration_since(self.started).as_millis() as u32;
        let id = self.next_conn;
        self.next_conn += 1;
        *self.per_ip.entry(ip).or_insert(0) += 1;
        entry.insert(Conn {
            id,
            peer,
            socket,
            session: ServerSession::new(self.session_config.clone(), &random, epoch),
            read_buf: BytesMut::new(),
            out: PlayerQueue::new(self.config.streams.player_queue_bytes),
            role: Role::Pending,
            opened: now,
            last_read: now,
            stalled_since: None,
            bytes_in: 0,
            bytes_out: 0,
            closing: None,
            last_stream: None,
            write_listed: false,
            write_blocked: false,
        });
        tracing::debug!(worker = self.index, conn = id, %peer, "connection accepted");
    }

    fn mark_writable(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.write_blocked = false;
            if conn.out.is_empty() {
                conn.stalled_since = None;
            }
            conn.schedule_write(key, &mut self.write_list);
        }
    }

    /// Moves the session's pending bytes into the connection's queue.
    fn pump(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        while let Some(bytes) = conn.session.poll_transmit() {
            conn.out.push_control(bytes);
        }
        conn.schedule_write(key, &mut self.write_list);
    }

    fn read(&mut self, key: usize, now: Instant) {
        let budget = self.config.workers.read_budget_bytes;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.closing.is_some() {
            return;
        }
        let outcome = read_some(
            &mut conn.socket,
            &mut self.scratch,
            &mut conn.read_buf,
            budget,
        );
        let (bytes, more, eof) = match outcome {
            Ok(ReadOutcome::Drained { bytes }) => (bytes, false, false),
            Ok(ReadOutcome::Budget { bytes }) => (bytes, true, false),
            Ok(ReadOutcome::Closed { bytes }) => (bytes, false, true),
            Err(e) => {
                self.close(key, format!("read error: {e}"), now);
                return;
            }
        };
        if bytes > 0 {
            conn.bytes_in += bytes as u64;
            conn.last_read = now;
        }
        let result = conn.session.handle_input(&mut conn.read_buf);
        if conn.read_buf.is_empty() && conn.read_buf.capacity() > IDLE_READ_BUFFER {
            conn.read_buf = BytesMut::new();
        }
        self.pump(key);
        while let Some(event) = self.conns.get_mut(key).and_then(|c| c.session.poll_event()) {
            self.on_event(key, event, now);
        }
        self.pump(key);
        if let Err(e) = result {
            self.close(key, format!("protocol error: {e}"), now);
        } else if eof {
            self.close(key, "peer closed the connection".to_string(), now);
        } else if more {
            self.read_again.push(key);
        }
    }

    fn on_event(&mut self, key: usize, event: ServerEvent, now: Instant) {
        match event {
            ServerEvent::ConnectRequested { app, tc_url } => {
                if let Some(conn) = self.conns.get_mut(key) {
                    tracing::debug!(worker = self.index, conn = conn.id, peer = %conn.peer, %app, %tc_url, "connect");
                    conn.session.accept_connect();
                }
            }
            ServerEvent::PublishRequested {
                stream_id, name, ..
            } => self.publish(key, stream_id, &name, now),
            ServerEvent::PlayRequested {
                stream_id, name, ..
            } => self.play(key, stream_id, &name),
            ServerEvent::Media {
                type_id,
                timestamp,
                payload,
                ..
            } => {
                let Some(Role::Publisher { key: skey, .. }) = self.conns.get(key).map(|c| &c.role)
                else {
                    return;
                };
                let skey = skey.clone();
                self.ingest(&skey, type_id, timestamp, payload, now);
            }
            ServerEvent::Unpublished { .. } => {
                if let Some(conn) = self.conns.get_mut(key) {
                    if let Role::Publisher { key: skey, .. } =
                        std::mem::replace(&mut conn.role, Role::Pending)
                    {
                        self.unpublish(&skey, now);
                    }
                }
            }
            ServerEvent::PlayStopped { .. } => {
                if let Some(conn) = self.conns.get_mut(key) {
                    if let Role::Player(player) = std::mem::replace(&mut conn.role, Role::Pending) {
                        self.leave(key, &player.key);
                    }
                }
            }
            ServerEvent::Paused { paused, .. } => {
                if let Some(conn) = self.conns.get_mut(key) {
                    if let Role::Player(player) = &mut conn.role {
                        player.paused = paused;
                        if !paused {
                            conn.out.wait_for_keyframe();
                        }
                    }
                }
            }
            ServerEvent::ReceiveChanged { audio, video, .. } => {
                if let Some(conn) = self.conns.get_mut(key) {
                    if let Role::Player(player) = &mut conn.role {
                        player.audio = audio.unwrap_or(player.audio);
                        if let Some(video) = video {
                            if video && !player.video {
                                conn.out.wait_for_keyframe();
                            }
                            player.video = video;
                        }
                    }
                }
            }
        }
    }

    fn new_stream(&self, key: StreamKey) -> Stream {
        let s = &self.config.streams;
        Stream::new(
            key,
            self.config.rtmp.chunk_size,
            s.gop_cache,
            s.gop_cache_max_bytes,
        )
    }

    fn publish(&mut self, key: usize, stream_id: u32, name: &str, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let app = conn.session.app().unwrap_or_default().to_string();
        if conn.role != Role::Pending {
            conn.session.reject_publish(
                stream_id,
                "NetStream.Publish.BadConnection",
                "connection already has a stream",
            );
            self.pump(key);
            return;
        }
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
            conn.session.accept_publish(stream_id);
            conn.set_role(Role::Publisher {
                key: skey.clone(),
                stream_id,
            });
            tracing::info!(worker = index, conn = conn.id, peer = %conn.peer, stream = %skey, role = "publisher", "publishing");
        }
        self.pump(key);
        for player in players {
            self.start_player(player, true);
        }
    }

    fn reject_publish(&mut self, key: usize, stream_id: u32, skey: &StreamKey) {
        if let Some(conn) = self.conns.get_mut(key) {
            tracing::info!(worker = self.index, conn = conn.id, peer = %conn.peer, stream = %skey,
                "publish rejected: stream already published");
            conn.session.reject_publish(
                stream_id,
                "NetStream.Publish.BadName",
                "stream is already being published",
            );
        }
        self.pump(key);
    }

    /// A player (re)starts receiving a stream that just went live: tell it, and give it the
    /// fast-start cache unless it already has this publish's media.
    fn start_player(&mut self, key: usize, notify: bool) {
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
            conn.session.notify_republished(stream_id);
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
            push_to_player(out, player, packet);
        }
        if !stream.starts_on_keyframe() {
            conn.out.wait_for_keyframe();
        }
        conn.schedule_write(key, &mut self.write_list);
    }

    fn play(&mut self, key: usize, stream_id: u32, name: &str) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let app = conn.session.app().unwrap_or_default().to_string();
        if conn.role != Role::Pending {
            conn.session.reject_play(
                stream_id,
                "NetStream.Play.Failed",
                "connection already has a stream",
            );
            self.pump(key);
            return;
        }
        let skey = StreamKey::new(&app, name);
        let index = self.index;
        let mut stream = self
            .streams
            .remove(&skey)
            .unwrap_or_else(|| self.new_stream(skey.clone()));
        if stream.source == Source::None && stream.players.is_empty() {
            match self.directory.subscribe(&skey, index) {
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
                self.directory.unsubscribe(&skey, index);
            } else {
                self.streams.insert(skey.clone(), stream);
            }
            if let Some(conn) = self.conns.get_mut(key) {
                conn.session.reject_play(
                    stream_id,
                    "NetStream.Play.StreamNotFound",
                    "stream is not published",
                );
            }
            self.pump(key);
            return;
        }
        let live = match stream.source {
            Source::Local(_) => true,
            Source::Remote(_) => stream.fast_start().next().is_some(),
            Source::None => false,
        };
        stream.players.push(key);
        self.streams.insert(skey.clone(), stream);
        if let Some(conn) = self.conns.get_mut(key) {
            conn.session.accept_play(stream_id);
            conn.set_role(Role::Player(Player {
                key: skey.clone(),
                stream_id,
                audio: true,
                video: true,
                paused: false,
                primed: false,
            }));
            tracing::info!(worker = index, conn = conn.id, peer = %conn.peer, stream = %skey, role = "player",
                live, "playing");
        }
        self.pump(key);
        if live {
            self.start_player(key, false);
        }
    }

    /// Publisher media: encode once, cache, then fan out to local players and subscribed workers.
    fn ingest(
        &mut self,
        skey: &StreamKey,
        type_id: u8,
        timestamp: u32,
        payload: bytes::Bytes,
        now: Instant,
    ) {
        let Some(stream) = self.streams.get_mut(skey) else {
            return;
        };
        let Some(packet) = stream.ingest(type_id, timestamp, payload) else {
            return;
        };
        for worker in workers_in(stream.remote_workers) {
            let msg = BusMsg::Media {
                key: skey.clone(),
                owner: self.index,
                packet: packet.clone(),
            };
            if !self.bus.send(worker, msg) {
                tracing::warn!(worker = self.index, to = worker, stream = %skey, "bus full: packet dropped");
            }
        }
        deliver(
            &mut self.conns,
            &mut self.media_list,
            &stream.players,
            &packet,
            now,
        );
    }

    /// The stream's local publisher left.
    fn unpublish(&mut self, skey: &StreamKey, now: Instant) {
        let index = self.index;
        let Some(stream) = self.streams.get_mut(skey) else {
            return;
        };
        stream.unpublish();
        let remote = std::mem::take(&mut stream.remote_workers);
        let players = stream.players.clone();
        self.directory.release(skey, index);
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
    fn resubscribe(&mut self, skey: &StreamKey, worker: usize) {
        match self.directory.subscribe(skey, worker) {
            Some(owner) if owner == worker => {}
            Some(owner) if owner == self.index => {
                if let Some(stream) = self.streams.get_mut(skey) {
                    stream.remote_workers |= 1 << worker;
                }
                let snapshot = self.snapshot(skey);
                self.bus.send(
                    worker,
                    BusMsg::Started {
                        key: skey.clone(),
                        owner,
                        snapshot,
                    },
                );
            }
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

    fn snapshot(&self, skey: &StreamKey) -> Vec<Packet> {
        self.streams
            .get(skey)
            .map(|s| s.fast_start().cloned().collect())
            .unwrap_or_default()
    }

    /// Local players of `skey` lost their source: tell them, keep them waiting or stop them.
    fn players_lost_source(&mut self, skey: &StreamKey, players: &[usize], now: Instant) {
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
                conn.session.notify_unpublished(stream_id);
            } else {
                conn.session.notify_stopped(stream_id);
                conn.closing = Some("stream ended".to_string());
            }
            self.pump(p);
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
        let _ = now;
    }

    /// A player leaves `skey` (stop or close).
    fn leave(&mut self, key: usize, skey: &StreamKey) {
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

    fn on_bus(&mut self, msg: BusMsg, now: Instant) {
        let index = self.index;
        match msg {
            BusMsg::Subscribe { key, from } => {
                let owned = matches!(
                    self.streams.get(&key).map(|s| s.source),
                    Some(Source::Local(_))
                );
                if owned {
                    if let Some(stream) = self.streams.get_mut(&key) {
                        stream.remote_workers |= 1 << from;
                    }
                    let snapshot = self.snapshot(&key);
                    self.bus.send(
                        from,
                        BusMsg::Started {
                            key,
                            owner: index,
                            snapshot,
                        },
                    );
                } else {
                    self.resubscribe(&key, from);
                }
            }
            BusMsg::Unsubscribe { key, from } => {
                if let Some(stream) = self.streams.get_mut(&key) {
                    stream.remote_workers &= !(1 << from);
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

    /// Writes every connection on the write list (one vectored pass each, budgeted).
    fn flush(&mut self, now: Instant) {
        let budget = self.config.workers.write_budget_bytes;
        let list = std::mem::take(&mut self.write_list);
        for key in list {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            conn.write_listed = false;
            match write_queue(&mut conn.socket, &mut conn.out, budget) {
                Ok(WriteOutcome::Flushed { bytes }) => {
                    conn.bytes_out += bytes as u64;
                    conn.stalled_since = None;
                    if let Some(reason) = conn.closing.clone() {
                        self.close(key, reason, now);
                    }
                }
                Ok(WriteOutcome::Blocked { bytes }) => {
                    conn.bytes_out += bytes as u64;
                    conn.write_blocked = true;
                    conn.stalled_since.get_or_insert(now);
                }
                Ok(WriteOutcome::Budget { bytes }) => {
                    conn.bytes_out += bytes as u64;
                    conn.write_listed = true;
                    self.write_list.push(key);
                }
                Err(e) => self.close(key, format!("write error: {e}"), now),
            }
        }
    }

    /// Enforces timeouts; drives shutdown. Returns true when the worker is done.
    fn tick(&mut self, now: Instant) -> bool {
        if self.bus.is_shutting_down() && self.shutdown_deadline.is_none() {
            self.begin_shutdown(now);
        }
        let t = &self.config.timeouts;
        let handshake = Duration::from_millis(t.handshake_ms);
        let idle = Duration::from_millis(t.idle_ms);
        let slow = Duration::from_millis(t.slow_player_ms);
        let mut expired = Vec::new();
        for (key, conn) in self.conns.iter() {
            let reason =
                if !conn.session.is_established() && now.duration_since(conn.opened) > handshake {
                    Some(format!(
                        "handshake not completed within {} ms",
                        t.handshake_ms
                    ))
                } else if !matches!(conn.role, Role::Player(_))
                    && now.duration_since(conn.last_read) > idle
                {
                    Some(format!("idle: nothing received for {} ms", t.idle_ms))
                } else if conn
                    .stalled_since
                    .is_some_and(|since| now.duration_since(since) > slow)
                {
                    Some(format!(
                    "slow player: not keeping up for {} ms ({} bytes queued, {} frames dropped)",
                    t.slow_player_ms,
                    conn.out.queued_bytes(),
                    conn.out.dropped_frames()
                ))
                } else {
                    None
                };
            if let Some(reason) = reason {
                expired.push((key, reason));
            }
        }
        for (key, reason) in expired {
            self.close(key, reason, now);
        }
        if let Some(deadline) = self.shutdown_deadline {
            if now >= deadline {
                let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                for key in keys {
                    self.close(
                        key,
                        "server shut down (flush deadline passed)".to_string(),
                        now,
                    );
                }
            }
            return self.conns.is_empty();
        }
        false
    }

    fn begin_shutdown(&mut self, now: Instant) {
        self.shutdown_deadline =
            Some(now + Duration::from_millis(self.config.timeouts.shutdown_ms));
        for mut listener in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(conn) = self.conns.get_mut(key) {
                if let Role::Player(player) = &conn.role {
                    conn.session.notify_stopped(player.stream_id);
                }
                conn.closing = Some("server shutting down".to_string());
            }
            self.pump(key);
            if self.conns.get(key).is_some_and(|c| c.out.is_empty()) {
                self.close(key, "server shutting down".to_string(), now);
            }
        }
        tracing::info!(worker = self.index, "shutting down");
    }

    /// Closes a connection now, logging why, and detaches it from its stream.
    fn close(&mut self, key: usize, reason: String, now: Instant) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.socket);
        if let Some(count) = self.per_ip.get_mut(&conn.peer.ip()) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&conn.peer.ip());
            }
        }
        tracing::info!(
            worker = self.index,
            conn = conn.id,
            peer = %conn.peer,
            stream = conn.stream_name(),
            role = conn.role_name(),
            bytes_in = conn.bytes_in,
            bytes_out = conn.bytes_out,
            duration_ms = now.duration_since(conn.opened).as_millis() as u64,
            %reason,
            "connection closed"
        );
        match std::mem::replace(&mut conn.role, Role::Pending) {
            Role::Publisher { key: skey, .. } => {
                if self.streams.get(&skey).map(|s| s.source) == Some(Source::Local(key)) {
                    self.unpublish(&skey, now);
                }
            }
            Role::Player(player) => self.leave(key, &player.key),
            Role::Pending => {}
        }
    }
}

/// Clones `packet` into one player's queue, honouring its filters (refcounts only, unless the
/// player uses a message stream id other than the shared one).
fn push_to_player(out: &mut PlayerQueue, player: &Player, packet: &Packet) -> Option<PushOutcome> {
    use crate::fanout::MediaKind;
    let wanted = match packet.kind {
        MediaKind::Audio => player.audio || packet.header,
        MediaKind::Video => player.video || packet.header,
        MediaKind::Data => true,
    };
    if !wanted || (player.paused && !packet.header) {
        return None;
    }
    let outcome = if player.stream_id == crate::fanout::SHARED_STREAM_ID {
        out.push_media(packet.clone())
    } else {
        let mut own = packet.clone();
        own.wire = packet.wire.with_stream_id(player.stream_id);
        out.push_media(own)
    };
    Some(outcome)
}

/// The fan-out hot path: one packet into every local player's queue.
fn deliver(
    conns: &mut Slab<Conn>,
    write_list: &mut Vec<usize>,
    players: &[usize],
    packet: &Packet,
    now: Instant,
) {
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
        if let Some(PushOutcome::Overflowed) = push_to_player(out, player, packet) {
            tracing::debug!(conn = *id, stream = %player.key, queued = out.queued_bytes(),
                "player behind: dropping to the next keyframe");
            stalled_since.get_or_insert(now);
        }
        conn.schedule_write(key, write_list);
    }
}
