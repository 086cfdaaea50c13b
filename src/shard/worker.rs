//! One worker: a mio Poll, SO_REUSEPORT listeners, a preallocated Slab of connections, the
//! streams seen on this core, and a mailbox on the cross-worker bus.
//!
//! Each wake-up: accept (budgeted), read ready connections (budgeted) and run their
//! sessions, fan media out into player queues, then flush every dirtied connection with
//! one vectored write pass. A timer tick every 100 ms enforces timeouts.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::auth::Gate;
use super::batching::{release_at, LoopLoad};
use super::bus::Bus;
use super::close::{CloseReason, ClusterEnd};
use super::conn::{Conn, HttpPhase, MediaOffset, Proto, Role};
use super::conns::Conns;
use super::hls::{HlsShelf, Packaging};
use super::memory::Trim;
use super::rate::{Admission, RateLimit};
use super::relay::Relay;
use super::reload::{hub_settings, output_cap, session_config, socket_options};
use super::unwatched::PollClock;
use crate::admin::WorkerStats;
use crate::auth::Role as AuthRole;
use crate::config::{Config, IoBackend};
use crate::fanout::{ConnKey, Directory, Hub, OutputQueue, StreamKey};
use crate::net::tls::{read_tls_some, write_tls_queue, TlsReadError};
use crate::net::{
    read_direct, read_some, write_queue, ReadOutcome, SendRing, Sent, SocketOptions, WriteOutcome,
};
use crate::record::Recording;
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
/// Most players one write pass takes from the media queue before the loop polls again (a few
/// hundred µs of writes; see `flush` and BENCHMARKS.md, "sliced write passes").
const WRITE_SLICE: usize = 64;
/// The slice while connections are setting up (a connection admitted, or a read from one
/// that [sets up](Conn::sets_up), within [`SETUP_RECENT`]): each of a setup's round trips
/// (handshake, `connect`, `createStream`, `play`) waits for the pass under way, so passes are
/// shorter while someone waits for an answer (see BENCHMARKS.md, "time to first frame").
const SETUP_SLICE: usize = 16;
/// How long after such a read the write passes stay short.
const SETUP_RECENT: Duration = Duration::from_millis(20);
/// Size of the worker's read scratch buffer (one per worker, not per connection).
const SCRATCH_BYTES: usize = 64 * 1024;
/// A drained connection keeps at most this much read buffer.
const IDLE_READ_BUFFER: usize = 4 * 1024;

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Rtmp,
    /// RTMP over TLS (`[rtmps]`): each accepted connection gets a TLS session.
    Rtmps,
    Http,
}

/// Everything one worker owns.
pub struct Worker {
    pub(super) index: usize,
    pub(super) poll: Poll,
    /// Listening sockets, each with what it serves.
    pub(super) listeners: Vec<(TcpListener, Listener)>,
    /// The TLS server configuration of `[rtmps]` listeners (loaded once at start).
    pub(super) tls_server: Option<Arc<rustls::ServerConfig>>,
    pub(super) conns: Conns,
    /// The streams published and played here (sans-IO; applied through `door.rs`).
    pub(super) hub: Hub,
    pub(super) per_ip: HashMap<IpAddr, usize>,
    /// New connections per IP per second (`workers.max_new_connections_per_ip_per_s`).
    new_per_ip: RateLimit,
    pub(super) bus: Arc<Bus>,
    /// HLS/DASH: packaging the streams published here, serving and holding requests.
    pub(super) packaging: Packaging,
    /// The edge relay: pulls from origins and pushes to targets, on upstream connections.
    pub(super) relay: Relay,
    /// Recording the streams published here (`[record]`; off until the server sets it).
    pub(super) recording: Recording,
    pub(super) config: Arc<Config>,
    pub(super) session_config: ServerConfig,
    pub(super) socket_options: SocketOptions,
    /// Every read lands here first, so idle connections hold no read buffer.
    pub(super) scratch: Box<[u8]>,
    /// Where media senders' plain reads land (`net::read_direct`) and their sessions decode
    /// from; empty between passes (see `read`).
    pub(super) media_in: BytesMut,
    /// Connections with unread input left after their budget.
    pub(super) read_again: Vec<ConnKey>,
    /// Publishers of unwatched streams, read by `poll_clock` instead of on arrival (see
    /// `unwatched`).
    pub(super) polled: Vec<ConnKey>,
    pub(super) poll_clock: PollClock,
    /// The write list's spare (see `flush`).
    write_spare: Vec<ConnKey>,
    /// Connections with queued output to flush this wake-up.
    pub(super) write_list: Vec<ConnKey>,
    /// The media queue: players whose media is due, written [`WRITE_SLICE`] a pass in order
    /// (see `flush`), and connections with more output than one pass wrote.
    write_rest: VecDeque<ConnKey>,
    /// Players with media queued and not yet released to the write list (see `batching`).
    pub(super) media_list: Vec<ConnKey>,
    /// The earliest time a held player's media must leave (when `media_list` holds any).
    pub(super) next_media_flush: Instant,
    /// The loop's busy share over the last tick: a lightly loaded loop holds no media.
    load: LoopLoad,
    /// `workers.io` as the server settled it (io_uring only where it is available).
    pub(super) io: IoBackend,
    /// The io_uring pass's connections, results and outcomes (kept for their capacity).
    batch_keys: Vec<ConnKey>,
    batch_sent: Vec<Sent>,
    batch_done: Vec<(ConnKey, io::Result<WriteOutcome>)>,
    /// How many of `media_list`'s entries the last `release_media` saw (later ones are new).
    media_scanned: usize,
    /// When a connection that [sets up](Conn::sets_up) last had input, or one was admitted:
    /// write passes are short until [`SETUP_RECENT`] later.
    setup_seen: Option<Instant>,
    pub(super) accept_again: bool,
    pub(super) started: Instant,
    pub(super) next_conn: u64,
    pub(super) rng: u64,
    pub(super) shutdown_deadline: Option<Instant>,
    /// Gives freed memory back to the OS after connections close.
    trim: Trim,
    /// HLS/DASH viewers seen here lately, for the admin API.
    pub(super) http_viewers: super::admin::HttpViewers,
    /// What closed connections had queued and dropped, for the counters.
    pub(super) departed: super::admin::Departed,
    /// This worker's counters, read by the admin listener's scrapes.
    pub(super) stats: Arc<crate::admin::WorkerStats>,
    /// When worker 0 last reported the log lines the repeat limit dropped.
    suppressed_reported: Instant,
    /// Told of every close (tests; later metrics).
    pub(super) on_close: Option<super::OnClose>,
    /// Most bytes an RTMP connection's output may hold: its media limit, the latest header of
    /// each kind, and room for replies. Only a peer that does not read its replies gets there.
    pub(super) output_cap: usize,
    /// Set while draining (SIGTERM), until the drain deadline starts the shutdown.
    pub(super) drain: Option<super::drain::Drain>,
    /// `[auth]`: decides publish and play requests, holds those waiting for a webhook.
    pub(super) gate: Gate,
}

impl Worker {
    /// A worker around an existing Poll (whose waker is already on the bus) and its listeners.
    pub fn new(
        index: usize,
        poll: Poll,
        mut listeners: Vec<(TcpListener, Listener)>,
        bus: Arc<Bus>,
        directory: Arc<Directory>,
        hls: Arc<HlsShelf>,
        config: Arc<Config>,
    ) -> io::Result<Self> {
        for (i, (listener, _)) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(listener, Token(LISTENER_BASE + i), Interest::READABLE)?;
        }
        let session_config = session_config(&config, config.rtmp.chunk_size);
        let socket_options = socket_options(&config);
        let settings = hub_settings(&config, config.rtmp.chunk_size);
        let hub = Hub::new(index, settings, directory.clone());
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Ok(Self {
            index,
            poll,
            listeners,
            tls_server: None,
            conns: Conns::with_capacity(config.workers.max_connections),
            hub,
            per_ip: HashMap::new(),
            new_per_ip: RateLimit::default(),
            bus,
            packaging: Packaging::new(index, config.http.clone(), hls, directory, Instant::now()),
            relay: Relay::new(&config),
            recording: Recording::off(index),
            session_config,
            socket_options,
            scratch: vec![0u8; SCRATCH_BYTES].into_boxed_slice(),
            media_in: BytesMut::with_capacity(SCRATCH_BYTES),
            read_again: Vec::new(),
            polled: Vec::new(),
            poll_clock: PollClock::new(Instant::now()),
            write_spare: Vec::new(),
            write_list: Vec::new(),
            write_rest: VecDeque::new(),
            media_list: Vec::new(),
            next_media_flush: Instant::now(),
            load: LoopLoad::new(Instant::now()),
            media_scanned: 0,
            setup_seen: None,
            io: IoBackend::Epoll,
            batch_keys: Vec::new(),
            batch_sent: Vec::new(),
            batch_done: Vec::new(),
            accept_again: false,
            started: Instant::now(),
            next_conn: 0,
            rng: seed ^ ((index as u64 + 1) << 32) | 1,
            shutdown_deadline: None,
            trim: Trim::new(Instant::now()),
            suppressed_reported: Instant::now(),
            stats: Arc::default(),
            http_viewers: Default::default(),
            departed: Default::default(),
            on_close: None,
            output_cap: output_cap(&config),
            drain: None,
            gate: Gate::new(&config),
            config,
        })
    }

    /// Runs until shutdown completes.
    pub fn run(mut self) -> io::Result<()> {
        // The io_uring backend's ring: made here, on the worker's own thread (it is
        // single-issuer and not `Send`), and kept in this frame.
        let mut ring = None;
        if self.io == IoBackend::IoUring {
            match SendRing::new() {
                Ok(made) => ring = Some(made),
                Err(e) => tracing::warn!(worker = self.index, error = %e,
                    "io_uring unavailable: this worker writes with epoll"),
            }
        }
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        let mut mail = VecDeque::new();
        let mut readable: Vec<ConnKey> = Vec::new();
        let mut next_tick = Instant::now() + TICK;
        loop {
            let busy = self.accept_again
                || !self.read_again.is_empty()
                || !self.write_list.is_empty()
                || !self.write_rest.is_empty()
                || self.media_list.len() > self.media_scanned;
            let mut wake_at = next_tick;
            if !self.media_list.is_empty() {
                wake_at = wake_at.min(self.next_media_flush);
            }
            if !self.polled.is_empty() {
                wake_at = wake_at.min(self.poll_clock.next());
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
            WorkerStats::add(&self.stats.wakeups, 1);
            // Reused across wake-ups (no allocation per loop): this wake-up's readable keys.
            readable.clear();
            readable.append(&mut self.read_again);
            let mut mail_waiting = false;
            for event in events.iter() {
                match event.token() {
                    WAKER_TOKEN => mail_waiting = true,
                    Token(t) if t >= LISTENER_BASE => self.accept_again = true,
                    Token(index) => {
                        // The event names the slot; it concerns whoever holds it now.
                        let Some(key) = self.conns.key_at(index) else {
                            continue;
                        };
                        if event.is_read_closed() || event.is_error() {
                            if let Some(conn) = self.conns.get_mut(key) {
                                conn.peer_closed = true;
                            }
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            readable.push(key);
                        } else if let Some(conn) = self.conns.get_mut(key) {
                            // Off read readiness, a polled publisher's FIN comes as a mere
                            // writable event: read it to the end now, not at the poll after next.
                            if conn.polled {
                                conn.read_to_end = true;
                                readable.push(key);
                            }
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
                self.apply_hub(now);
            }
            if self.accept_again && self.shutdown_deadline.is_none() {
                self.accept(now);
            }
            self.poll_tick(now, &mut readable);
            readable.sort_unstable();
            readable.dedup();
            for key in readable.drain(..) {
                self.read(key, now);
            }
            if now >= self.next_media_flush || self.media_list.len() > self.media_scanned {
                self.release_media(now);
            }
            self.flush(now, ring.as_mut());
            let busy_ns = now.elapsed().as_nanos() as u64;
            WorkerStats::add(&self.stats.busy_ns, busy_ns);
            if now >= next_tick {
                next_tick = now + TICK;
                self.load.tick(now, self.stats.busy_ns.load(Relaxed));
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
                match self.listeners[i].0.accept() {
                    Ok((stream, peer)) => {
                        accepted += 1;
                        let kind = self.listeners[i].1;
                        let open = self.conns.len();
                        self.admit(stream, peer, now, kind);
                        if self.conns.len() > open {
                            self.setup_seen = Some(now);
                        }
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

    fn admit(&mut self, mut socket: TcpStream, peer: SocketAddr, now: Instant, kind: Listener) {
        let limits = &self.config.workers;
        if self.conns.len() >= limits.max_connections {
            tracing::warn!(worker = self.index, %peer, limit = limits.max_connections,
                "connection refused: worker at max_connections");
            WorkerStats::add(&self.stats.refused, 1);
            return;
        }
        let ip = peer.ip();
        if limits.max_connections_per_ip > 0
            && self.per_ip.get(&ip).copied().unwrap_or(0) >= limits.max_connections_per_ip
        {
            tracing::warn!(worker = self.index, %peer, limit = limits.max_connections_per_ip,
                "connection refused: max_connections_per_ip reached");
            WorkerStats::add(&self.stats.refused, 1);
            return;
        }
        let rate = limits.max_new_connections_per_ip_per_s;
        if let Admission::Refuse { warn } = self.new_per_ip.admit(ip, rate, now) {
            // One line a second at most: a flood must not flood the log too.
            if let Some(refused) = warn {
                tracing::warn!(worker = self.index, %peer, limit = rate, refused,
                    "connections refused: max_new_connections_per_ip_per_s reached");
            }
            WorkerStats::add(&self.stats.refused, 1);
            return;
        }
        if let Err(e) = self.socket_options.apply(&socket) {
            tracing::warn!(worker = self.index, %peer, error = %e, "cannot set socket options");
        }
        let tls = match (kind, &self.tls_server) {
            (Listener::Rtmps, Some(config)) => match crate::net::tls::accept(config) {
                Ok(tls) => Some(Box::new(tls)),
                Err(e) => {
                    tracing::warn!(worker = self.index, %peer, error = %e, "cannot start TLS");
                    return;
                }
            },
            _ => None,
        };
        let index = self.conns.next_index();
        if let Err(e) = self.poll.registry().register(
            &mut socket,
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            tracing::warn!(worker = self.index, %peer, error = %e, "cannot register connection");
            return;
        }
        let random = self.random_block();
        let epoch = now.duration_since(self.started).as_millis() as u32;
        let id = self.next_conn;
        self.next_conn += 1;
        *self.per_ip.entry(ip).or_insert(0) += 1;
        let proto = if kind == Listener::Http {
            Proto::Http(HttpPhase::Request)
        } else {
            Proto::Rtmp(Box::new(ServerSession::new(
                self.session_config.clone(),
                &random,
                epoch,
            )))
        };
        let key = ConnKey {
            index: index as u32,
            generation: id as u32,
        };
        let queue = OutputQueue::new(self.config.streams.player_queue_bytes);
        // Peer first: tests and greps find a connection by `:port `.
        let span = tracing::info_span!("conn", %peer, worker = self.index, conn = id,
            stream = tracing::field::Empty, role = tracing::field::Empty);
        span.in_scope(|| tracing::debug!(tls = tls.is_some(), "connection accepted"));
        let mut conn = Conn::new(id, key, peer, socket, proto, queue, now, span);
        conn.tls = tls;
        self.conns.insert(conn);
        WorkerStats::add(&self.stats.accepted, 1);
    }

    /// Handshake randomness (xorshift: unpredictable enough for a handshake's filler).
    pub(super) fn random_block(&mut self) -> [u8; RANDOM_LEN] {
        let mut block = [0u8; RANDOM_LEN];
        for chunk in block.chunks_mut(8) {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            chunk.copy_from_slice(&self.rng.to_le_bytes()[..chunk.len()]);
        }
        block
    }

    fn mark_writable(&mut self, key: ConnKey) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.write_blocked = false;
            if conn.out.is_empty() {
                conn.stalled_since = None;
            }
            conn.schedule_write(&mut self.write_list);
        }
    }

    /// Moves the session's pending bytes into the connection's queue.
    pub(super) fn pump(&mut self, key: ConnKey) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.pump_session();
        conn.schedule_write(&mut self.write_list);
    }

    fn read(&mut self, key: ConnKey, now: Instant) {
        let budget = self.config.workers.read_budget_bytes;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.closing.is_some() {
            return;
        }
        if conn.sets_up() {
            self.setup_seen = Some(now);
        }
        // One branch per pass: media senders (publishers, pulls) on plain sockets read
        // straight into the worker's media buffer (below); other plain sockets read through
        // the worker's scratch buffer (they keep none of their own between reads); RTMPS
        // decrypts.
        let direct = conn.reads_media() && conn.tls.is_none();
        // Read on to WouldBlock or the EOF (not taking a short read as drained) once the peer
        // has closed, or for a polled publisher's event (see the loop).
        let to_end = conn.peer_closed || std::mem::take(&mut conn.read_to_end);
        // Holds no bytes between passes (cleared here, emptied below).
        self.media_in.clear();
        let outcome = match conn.tls.as_deref_mut() {
            None if direct => read_direct(&conn.socket, &mut self.media_in, budget, to_end)
                .map_err(|e| CloseReason::ReadFailed(e.into())),
            None => read_some(
                &mut conn.socket,
                &mut self.scratch,
                &mut conn.read_buf,
                budget,
                to_end,
            )
            .map_err(|e| CloseReason::ReadFailed(e.into())),
            Some(tls) => read_tls_some(
                &mut conn.socket,
                tls,
                &mut self.scratch,
                &mut conn.read_buf,
                budget,
            )
            .map_err(|e| match e {
                TlsReadError::Io(e) => CloseReason::ReadFailed(e.into()),
                TlsReadError::Tls(e) => CloseReason::TlsFailed(e),
            }),
        };
        let (bytes, more, eof) = match outcome {
            Ok(ReadOutcome::Drained { bytes }) => (bytes, false, false),
            Ok(ReadOutcome::Budget { bytes }) => (bytes, true, false),
            Ok(ReadOutcome::Closed { bytes }) => (bytes, false, true),
            Err(reason) => {
                self.close(key, reason, now);
                return;
            }
        };
        if bytes > 0 {
            WorkerStats::add(&self.stats.bytes_in, bytes as u64);
            conn.bytes_in += bytes as u64;
            conn.last_read = now;
        }
        // A media sender's session decodes straight from the media buffer when no bytes of
        // an earlier pass wait in its own: the kernel copied into memory that one buffer
        // reused by every media sender keeps in cache (a buffer per connection is cold by
        // its next read: the kernel's copy cost twice as much, measured), and the one
        // user-space copy of a payload, into its pooled block, reads it from there. Only an
        // unfinished chunk is kept in the connection's buffer for the next pass.
        let from_media_in = direct && conn.read_buf.is_empty();
        if direct && !from_media_in {
            conn.read_buf.extend_from_slice(&self.media_in);
            self.media_in.clear();
        }
        let input = if from_media_in {
            &mut self.media_in
        } else {
            &mut conn.read_buf
        };
        let result = match &mut conn.proto {
            Proto::Rtmp(session) => {
                let result = session.handle_input(input);
                // Times the oldest unfinished message (`timeouts.message_ms`, in `tick`).
                conn.unfinished = match session.unfinished_message(input.len()) {
                    None => None,
                    Some(ordinal) => match conn.unfinished {
                        Some((same, since)) if same == ordinal => Some((same, since)),
                        _ => Some((ordinal, now)),
                    },
                };
                result
            }
            Proto::Upstream(up) => up.session.handle_input(input),
            Proto::Http(_) => Ok(()),
        };
        if from_media_in && !self.media_in.is_empty() {
            conn.read_buf.extend_from_slice(&self.media_in);
            self.media_in.clear();
        }
        if matches!(conn.proto, Proto::Http(_)) {
            let span = conn.span.clone();
            let _envelope = span.enter();
            self.http_input(key, now);
            if let Some(conn) = self.conns.get_mut(key) {
                conn.note_http_head(now);
            }
        } else if matches!(conn.proto, Proto::Upstream(_)) {
            self.upstream_events(key, now);
        } else {
            self.pump(key);
            while let Some(event) = self.conns.get_mut(key).and_then(|c| c.rtmp()?.poll_event()) {
                // Media logs nothing: it skips the envelope (a span costs ~600 instructions a
                // message, measured with callgrind).
                let span = match event {
                    ServerEvent::Media { .. } => None,
                    _ => self.conns.get(key).map(|c| c.span.clone()),
                };
                let _envelope = span.as_ref().map(tracing::Span::enter);
                self.on_event(key, event, now);
            }
            self.pump(key);
        }
        if let Some(conn) = self.conns.get_mut(key) {
            // Media senders keep their buffer (they read all the time); others give it back.
            if !conn.reads_media()
                && conn.read_buf.is_empty()
                && conn.read_buf.capacity() > IDLE_READ_BUFFER
            {
                conn.read_buf = BytesMut::new();
            }
        }
        // Media is dropped and headers replace each other, so only the peer's own replies
        // (HTTP bodies are shared, not copied, and may be large) can grow past the cap.
        let overflow = self.conns.get(key).and_then(|c| {
            let queued = c.out.queued_bytes();
            (matches!(c.proto, Proto::Rtmp(_)) && queued > self.output_cap).then_some(queued)
        });
        if let Err(e) = result {
            self.close(key, CloseReason::Protocol(e), now);
        } else if let Some(queued) = overflow {
            let cap = self.output_cap;
            self.close(key, CloseReason::OutputOverflow { queued, cap }, now);
        } else if eof {
            self.close(key, CloseReason::PeerClosed, now);
        } else if more {
            // A polled publisher's pass that ended on its budget reads on to the end next time.
            if let Some(conn) = self.conns.get_mut(key) {
                conn.read_to_end |= to_end;
            }
            self.read_again.push(key);
        }
    }

    pub(super) fn on_event(&mut self, key: ConnKey, event: ServerEvent, now: Instant) {
        match event {
            ServerEvent::ConnectRequested { app, tc_url, .. } => {
                let redirect = self.relay.busy_redirect();
                if let Some(conn) = self.conns.get_mut(key) {
                    tracing::debug!(%app, %tc_url, "connect");
                    let Some(session) = conn.rtmp() else {
                        return;
                    };
                    let Some(to) = redirect else {
                        session.accept_connect();
                        return;
                    };
                    // A busy edge (`cluster.redirect_when_busy`) sends the client elsewhere.
                    let target = format!("{}/{app}", to.rtmp);
                    session.redirect_connect(&target);
                    conn.pump_session();
                    conn.closing =
                        Some(CloseReason::Cluster(ClusterEnd::Redirected { to: target }));
                    conn.read_buf.clear();
                    conn.schedule_write(&mut self.write_list);
                }
            }
            // `[auth]` decides first (shard/auth.rs); allowed requests go to the hub.
            ServerEvent::PublishRequested {
                stream_id,
                name,
                query,
                ..
            } => self.rtmp_request(key, AuthRole::Publish, stream_id, &name, query, now),
            ServerEvent::PlayRequested {
                stream_id,
                name,
                query,
                ..
            } => self.rtmp_request(key, AuthRole::Play, stream_id, &name, query, now),
            ServerEvent::Media {
                type_id,
                timestamp,
                payload,
                ..
            } => {
                WorkerStats::add(&self.stats.media_in, 1);
                // The stream a publisher publishes is on its connection: no lookup by key.
                let Some(stream) = self.conns.get(key).and_then(Conn::published) else {
                    return;
                };
                let (hub, mut door) = self.door(now);
                match hub.ingest(key, &stream, type_id, timestamp, payload, &mut door) {
                    Ok(Some(packet)) => self.packaged(key, &stream, &packet, now),
                    Ok(None) => {}
                    Err(e) => self.close(key, CloseReason::PublisherRefused(e), now),
                }
            }
            ServerEvent::Unpublished { .. } => {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.role = Role::Pending;
                }
                // What it says next (a play, say) is read on arrival.
                self.read_on_arrival(key);
                self.auth_done(key);
                let (hub, mut door) = self.door(now);
                hub.unpublish(key, &mut door);
            }
            ServerEvent::PlayStopped { .. } => {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.role = Role::Pending;
                }
                self.auth_done(key);
                let (hub, mut door) = self.door(now);
                hub.stop(key, &mut door);
            }
            ServerEvent::Paused { paused, .. } => {
                let (hub, mut door) = self.door(now);
                hub.pause(key, paused, &mut door);
            }
            ServerEvent::ReceiveChanged { audio, video, .. } => {
                self.hub.receive(key, audio, video);
            }
        }
        self.apply_hub(now);
    }

    /// Publisher media the hub took: dates it against the publisher's clock and hands it to
    /// HLS/DASH packaging and to recording.
    pub(super) fn packaged(
        &mut self,
        key: ConnKey,
        stream: &StreamKey,
        packet: &crate::fanout::Packet,
        now: Instant,
    ) {
        // Arrival on the wall clock, read once per message: dates HLS/DASH media.
        let wall = crate::shard::hls::wall_clock_ms();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let restart = packet.keyframe && packet.kind == crate::fanout::MediaKind::Video;
        MediaOffset::observe(&mut conn.media_offset, packet.timestamp, wall, restart, now);
        self.recording.packet(stream, packet);
        self.packaging.package(stream, packet, wall, now);
        self.apply_packaging(now);
    }

    /// Moves the players whose held media is due (see `batching`) to the media queue, and
    /// sets when the next of those still held is.
    fn release_media(&mut self, now: Instant) {
        if self.media_list.is_empty() {
            self.media_scanned = 0;
            self.next_media_flush = now + TICK;
            return;
        }
        let heavy = self.load.is_heavy();
        let budget = Duration::from_millis(self.config.workers.write_delay(heavy));
        let light = self.load.is_light();
        let mut next: Option<Instant> = None;
        let mut i = 0;
        while i < self.media_list.len() {
            let key = self.media_list[i];
            let at = match self.conns.get_mut(key) {
                // Gone, or already written with a reply (its media left with it).
                None => None,
                Some(c) if c.write_listed || c.out.is_empty() => {
                    c.media_held = false;
                    None
                }
                Some(c) => match release_at(c.last_write, c.out.queued_bytes(), budget, light, now)
                {
                    Some(at) => Some(at),
                    None => {
                        c.media_held = false;
                        c.schedule_write(&mut self.write_rest);
                        None
                    }
                },
            };
            match at {
                Some(at) => {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    i += 1;
                }
                None => {
                    self.media_list.swap_remove(i);
                }
            }
        }
        self.media_scanned = self.media_list.len();
        self.next_media_flush = next.unwrap_or(now + TICK);
    }

    /// Writes every connection on the write list (replies, writable sockets) and the first
    /// [`WRITE_SLICE`] of the media queue `write_rest` ([`SETUP_SLICE`] while connections set
    /// up), one vectored pass each (budgeted).
    /// With the io_uring backend (`ring`), the plain sockets' writes go in one submission.
    ///
    /// A fan-out to thousands of players is so written in slices, the loop polling between
    /// them: what arrived meanwhile (a joining player's handshake, its play) is answered at the
    /// next pass instead of after the whole fan-out, and the media queue is served in order.
    fn flush(&mut self, now: Instant, ring: Option<&mut SendRing>) {
        let budget = self.config.workers.write_budget_bytes;
        // Swap in the spare list, so both keep their capacity across wake-ups.
        let mut list = std::mem::take(&mut self.write_spare);
        std::mem::swap(&mut list, &mut self.write_list);
        let most = match self.setup_seen {
            Some(at) if now.saturating_duration_since(at) < SETUP_RECENT => SETUP_SLICE,
            _ => WRITE_SLICE,
        };
        let slice = self.write_rest.len().min(most);
        list.extend(self.write_rest.drain(..slice));
        if let Some(ring) = ring {
            self.flush_batched(&mut list, ring, now);
        }
        for key in list.drain(..) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            conn.write_listed = false;
            // One branch per pass: RTMPS encrypts the queued slices into TLS records.
            let written = match conn.tls.as_deref_mut() {
                None => write_queue(&mut conn.socket, &mut conn.out, budget),
                Some(tls) => write_tls_queue(&mut conn.socket, tls, &mut conn.out, budget),
            };
            self.wrote(key, written, now);
        }
        self.write_spare = list;
    }

    /// The io_uring backend: one send per plain socket with output on `list`, all in one
    /// submission; takes them off `list` (TLS connections and empty queues stay for `flush`).
    /// Every queue is consumed by what its send took before any outcome is acted on (a close
    /// may touch other players' queues).
    fn flush_batched(&mut self, list: &mut Vec<ConnKey>, ring: &mut SendRing, now: Instant) {
        let mut keys = std::mem::take(&mut self.batch_keys);
        let mut sent = std::mem::take(&mut self.batch_sent);
        let mut done = std::mem::take(&mut self.batch_done);
        keys.clear();
        let conns = &self.conns;
        list.retain(|&key| match conns.get(key) {
            Some(c) if c.tls.is_none() && !c.out.is_empty() => {
                keys.push(key);
                false
            }
            _ => true,
        });
        if !keys.is_empty() {
            // Every key was just found: nothing closes between here and the sends.
            let sends = keys
                .iter()
                .filter_map(|&key| conns.get(key))
                .map(|c| (c.socket.as_fd(), &c.out));
            ring.send_all(sends, &mut sent);
            WorkerStats::add(&self.stats.uring_submissions, 1);
        }
        for (&key, sent) in keys.iter().zip(sent.drain(..)) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            conn.write_listed = false;
            let written = sent.outcome(&mut conn.out);
            done.push((key, written));
        }
        for (key, written) in done.drain(..) {
            self.wrote(key, written, now);
        }
        self.batch_keys = keys;
        self.batch_sent = sent;
        self.batch_done = done;
    }

    /// What a write pass of `key` did: counters, and what comes next for the connection.
    fn wrote(&mut self, key: ConnKey, written: io::Result<WriteOutcome>, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Ok(outcome) = written {
            let bytes = outcome.bytes();
            conn.bytes_out += bytes as u64;
            // A TLS handshake still under way wrote no media.
            if !matches!(outcome, WriteOutcome::Waiting { .. }) {
                conn.last_write = now;
                WorkerStats::add(&self.stats.bytes_out, bytes as u64);
            }
        }
        match written {
            Ok(WriteOutcome::Flushed { .. }) => {
                conn.stalled_since = None;
                if let Some(reason) = conn.closing.clone() {
                    self.close(key, reason, now);
                }
            }
            Ok(WriteOutcome::Blocked { .. }) => {
                conn.write_blocked = true;
                conn.stalled_since.get_or_insert(now);
            }
            // Back in line behind the media queue: no connection keeps the slices to itself.
            Ok(WriteOutcome::Budget { .. }) => conn.schedule_write(&mut self.write_rest),
            // A TLS handshake still under way: its next read schedules the rest.
            Ok(WriteOutcome::Waiting { .. }) => {}
            Err(e) => self.close(key, CloseReason::WriteFailed(e.into()), now),
        }
    }

    /// Enforces timeouts; drives shutdown. Returns true when the worker is done.
    fn tick(&mut self, now: Instant) -> bool {
        self.http_viewers.prune(now);
        self.departed.prune(&self.hub);
        self.poll_unwatched(now);
        self.publish_gauges(now);
        self.packaging.tick(now);
        self.apply_packaging(now);
        self.relay_tick(now);
        if self.bus.is_shutting_down() && self.shutdown_deadline.is_none() {
            if self.drain.take().is_some() {
                tracing::info!(worker = self.index, "drain ended: shutdown asked for");
            }
            self.begin_shutdown(now, CloseReason::ShuttingDown);
        } else if self.bus.is_draining() && self.drain.is_none() && self.shutdown_deadline.is_none()
        {
            self.begin_drain(now);
        }
        if self.drain_tick(now) {
            return true;
        }
        self.new_per_ip.prune(now);
        let t = &self.config.timeouts;
        let handshake = Duration::from_millis(t.handshake_ms);
        let idle = Duration::from_millis(t.idle_ms);
        let setup = Duration::from_millis(t.setup_ms);
        let message = Duration::from_millis(t.message_ms);
        let slow = Duration::from_millis(t.slow_player_ms);
        let mut expired = Vec::new();
        for (key, conn) in self.conns.iter() {
            // HTTP keep-alive: each request head has the handshake bound from its first byte
            // (a head trickled a byte at a time gets no more), or, with nothing of a next
            // request, from the last read.
            let since = if matches!(conn.proto, Proto::Http(_)) {
                conn.http_head_since().unwrap_or(conn.last_read)
            } else {
                conn.opened
            };
            let upstream = matches!(conn.proto, Proto::Upstream(_));
            let reason = if !conn.is_established() && now.duration_since(since) > handshake {
                let ms = t.handshake_ms;
                Some(match conn.proto {
                    Proto::Rtmp(_) | Proto::Upstream(_) => CloseReason::HandshakeTimeout { ms },
                    // Nothing of a next request: a kept-alive connection left idle.
                    Proto::Http(_) if conn.read_buf.is_empty() => CloseReason::HttpIdle { ms },
                    Proto::Http(_) => CloseReason::HttpHeadTimeout { ms },
                })
            } else if matches!(conn.proto, Proto::Rtmp(_))
                && conn.last_stream.is_none()
                && now.duration_since(conn.opened) > setup
                && !self.hub.is_member(key)
            {
                Some(CloseReason::SetupTimeout { ms: t.setup_ms })
            } else if matches!(conn.proto, Proto::Rtmp(_))
                && conn
                    .unfinished
                    .is_some_and(|(_, since)| now.duration_since(since) > message)
            {
                Some(CloseReason::MessageTimeout { ms: t.message_ms })
            } else if !matches!(conn.role, Role::Player { .. })
                && !upstream
                && now.duration_since(conn.last_read) > idle
            {
                Some(CloseReason::Idle { ms: t.idle_ms })
            } else if conn
                .stalled_since
                .is_some_and(|since| now.duration_since(since) > slow)
            {
                Some(CloseReason::SlowPlayer {
                    ms: t.slow_player_ms,
                    queued: conn.out.queued_bytes(),
                    dropped: conn.out.dropped_frames(),
                })
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
        if self.index == 0 && now.duration_since(self.suppressed_reported) >= Duration::from_secs(1)
        {
            self.suppressed_reported = now;
            crate::logging::report_suppressed();
        }
        if self.trim.on_tick(now) {
            tracing::debug!(
                connections = self.conns.len(),
                worker = self.index,
                "free heap memory returned to the OS"
            );
        }
        if let Some(deadline) = self.shutdown_deadline {
            if now >= deadline {
                for key in self.conns.keys() {
                    self.close(key, CloseReason::ShutdownDeadline, now);
                }
            }
            return self.conns.is_empty();
        }
        false
    }

    /// Stops accepting, tells players their stream stopped, and closes every connection for
    /// `reason` once flushed (or at `timeouts.shutdown_ms`).
    pub(super) fn begin_shutdown(&mut self, now: Instant, reason: CloseReason) {
        self.shutdown_deadline =
            Some(now + Duration::from_millis(self.config.timeouts.shutdown_ms));
        for (mut listener, _) in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        // Every player is told its stream stopped (once: one already closing was told).
        let (hub, mut door) = self.door(now);
        hub.shutdown(&mut door);
        for key in self.conns.keys() {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.closing = Some(reason.clone());
            }
            if self.conns.get(key).is_some_and(|c| c.out.is_empty()) {
                self.close(key, reason.clone(), now);
            }
        }
        tracing::info!(worker = self.index, "shutting down");
    }

    /// Closes a connection now, logging why, and detaches it from its stream.
    pub(super) fn close(&mut self, key: ConnKey, reason: CloseReason, now: Instant) {
        let Some(mut conn) = self.conns.remove(key) else {
            return;
        };
        self.packaging.gone(key);
        self.auth_done(key);
        self.trim.freed();
        if let Some(tls) = conn.tls.as_deref_mut() {
            if !matches!(reason, CloseReason::TlsFailed(_)) {
                crate::net::tls::close_notify(&mut conn.socket, tls);
            }
        }
        let _ = self.poll.registry().deregister(&mut conn.socket);
        if let Some(count) = self.per_ip.get_mut(&conn.peer.ip()) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&conn.peer.ip());
            }
        }
        let in_setup = matches!(conn.proto, Proto::Rtmp(_)) && conn.role == Role::Pending;
        self.stats.closed(reason.kind(), in_setup);
        self.departed.left(&conn);
        let _envelope = conn.span.enter();
        tracing::info!(
            bytes_in = conn.bytes_in,
            bytes_out = conn.bytes_out,
            duration_ms = now.duration_since(conn.opened).as_millis() as u64,
            %reason,
            "connection closed"
        );
        if let Some(on_close) = &self.on_close {
            on_close(&super::Closed {
                worker: self.index,
                conn: conn.id,
                peer: conn.peer,
                stream: conn.last_stream.clone(),
                reason,
            });
        }
        let (hub, mut door) = self.door(now);
        hub.gone(key, &mut door);
        self.apply_hub(now);
        if let Proto::Upstream(up) = &conn.proto {
            self.upstream_closed(key, up, now);
        }
    }
}
