//! The event loop: one thread, one mio `Poll`, a slab of connections, a timer heap for
//! publisher pacing. Publishers and players share one `Instant` base, so a frame's latency is
//! the player's receive time minus the stamp the publisher wrote into it.
//!
//! Phases of a run:
//! ```text
//!   ramp publishers ──(all opened, and all publishing or 5 s)──► ramp players
//!        ──(all opened)──► warm up `warmup` (players get their first keyframe)
//!        ──► measure `duration` (churn runs here) ──► end: count, close
//! ```
//! Each connection: TCP connect → writable (connected) → the [`ClientSession`] drives
//! handshake, connect, createStream, publish/play; bytes read are fed to the session after every
//! read, its transmits are queued and written with vectored writes until `WouldBlock`.
//! An E-RTMP ReconnectRequest starts a make-before-break reconnect (`reconnect.rs`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rtmp_edge::rtmp::handshake::RANDOM_LEN;
use rtmp_edge::rtmp::session::{ClientConfig, ClientEvent, ClientSession, PublishMode};
use rtmp_edge::rtmp::Limits;
use slab::Slab;

mod hls;
mod http;
mod media;
mod reconnect;
mod rng;
mod tls;

use self::hls::{HlsPoller, Next};
use self::http::HttpFlv;
use self::media::{on_player_video, publish_due, Ledger};
use self::reconnect::Successor;
use self::rng::Rng;
use crate::procstat::{self, ProcSample};
use crate::report::{
    self, Connections, ErrorKind, LoaderCpu, Report, ServerCost, Window, SATURATION_PERCENT,
};
use crate::scenario::{Mode, PlayerProto, RtmpUrl, Scenario};
use crate::source::{Cursor, MediaSource, VIDEO};
use crate::stats::{Counters, Percentiles, PlayerTrack, Stats};

/// How a run reports as it goes.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Process to sample for CPU and RSS.
    pub server_pid: Option<u32>,
    /// Print the once-a-second progress line on stderr.
    pub progress: bool,
}

/// A finished run: the report and the raw latency histogram (for plots).
pub struct RunOutput {
    pub report: Report,
    pub latency_us: hdrhistogram::Histogram<u64>,
}

/// Bytes read per `read` call: large, so a busy player is drained in few syscalls.
const READ_CHUNK: usize = 256 * 1024;
/// Initial per-connection read buffer; it grows with the messages (10,000 players × 64 KiB
/// up front would be 640 MB).
const INITIAL_READ_BUFFER: usize = 4096;
/// Slices per vectored write.
const MAX_IOVECS: usize = 64;
/// A publisher whose unsent bytes exceed this is closed (the server is not reading).
const MAX_PUBLISHER_BACKLOG: usize = 32 * 1024 * 1024;
/// Frames a publisher sends per timer wake-up at most (catch-up after a stall).
const MAX_FRAMES_PER_WAKE: usize = 256;
/// How long players wait for publishers to reach Publishing before starting anyway.
const PUBLISHER_WAIT: Duration = Duration::from_secs(5);
/// A player opened this recently that has not played when the run ends is still starting,
/// not failed.
const START_GRACE: Duration = Duration::from_secs(5);
/// Events per poll.
const EVENTS: usize = 4096;

enum Role {
    Publisher {
        stream: u32,
        started: Option<Instant>,
        cursor: Cursor,
    },
    Player {
        stream: u32,
        track: PlayerTrack,
        slot: usize,
        nal_length_size: usize,
    },
    HlsPoller {
        stream: u32,
        /// When the request in flight was queued.
        sent: Instant,
    },
}

/// The protocol a connection speaks.
enum Wire {
    Rtmp(Box<ClientSession>),
    /// An HTTP-FLV viewer.
    HttpFlv(HttpFlv),
    /// An HLS poller.
    Hls(Box<HlsPoller>),
}

struct Conn {
    sock: TcpStream,
    /// RTMPS (an `rtmps://` URL): the TLS session over `sock`.
    tls: Option<Box<rustls::ClientConnection>>,
    wire: Wire,
    connected: bool,
    rbuf: BytesMut,
    wq: VecDeque<Bytes>,
    wq_bytes: usize,
    /// Bytes of `wq.front()` already written.
    woff: usize,
    generation: u64,
    role: Role,
    /// Set on a connection asked to reconnect: the one opened to replace it.
    successor: Option<Successor>,
    /// Set on a connection opened to replace (key, generation) until it takes over.
    predecessor: Option<(usize, u64)>,
    /// Replaced by its successor: closed without counting anything.
    retired: bool,
    /// A successor player's coded video frames (and when each arrived), held until it takes
    /// over (`reconnect::player_switch`), then counted in order after its predecessor's.
    held: Vec<(Bytes, Instant)>,
}

/// Why a connection is being closed.
enum Close {
    Error(String),
    Disconnect(String),
    /// Churn: the player leaves on purpose.
    Leave,
}

struct Engine<'a> {
    sc: &'a Scenario,
    src: &'a MediaSource,
    /// Where publishers connect (`--publish-url`, else `--url`).
    addr: SocketAddr,
    /// Where players connect (the HTTP port for HTTP-FLV players).
    player_addr: SocketAddr,
    http_addr: SocketAddr,
    poll: Poll,
    conns: Slab<Conn>,
    /// (due, slab key, generation) of publishers' next frames.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// Keys of open players, for uniform churn picks.
    players: Vec<usize>,
    base: Instant,
    rng: Rng,
    stats: Stats,
    next_generation: u64,
    scratch: Vec<u8>,
    publishers_up: u64,
    peak_open: u64,
    /// Per stream, the video frames its publisher sent (loss and duplicate checks).
    ledgers: Vec<Ledger>,
    /// The TLS client config of `rtmps://` connections (made at the first).
    tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// Runs one scenario to completion.
pub fn run(sc: &Scenario, src: &MediaSource, opts: &RunOptions) -> Result<RunOutput> {
    let addr = sc.publish_url.socket_addr()?;
    let player_addr = sc.player_addr()?;
    let http_addr = sc.http_addr()?;
    procstat::warn_if_fd_limit_low(sc.total_connections());
    let mut e = Engine {
        sc,
        src,
        addr,
        player_addr,
        http_addr,
        poll: Poll::new().context("creating the poll")?,
        conns: Slab::with_capacity(sc.total_connections() as usize + 16),
        timers: BinaryHeap::new(),
        players: Vec::new(),
        base: Instant::now(),
        rng: Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id())),
        stats: Stats::new(sc.stall_threshold),
        next_generation: 0,
        scratch: vec![0; READ_CHUNK],
        publishers_up: 0,
        peak_open: 0,
        ledgers: (0..sc.streams).map(|_| Ledger::default()).collect(),
        tls_config: None,
    };
    e.run(opts)
}

/// Phase bookkeeping of the main loop.
struct Ramp {
    phase_start: Instant,
    opened_in_phase: u64,
    publishers_opened: u32,
    players_opened: u64,
    last_publisher_opened: Instant,
    players_phase: bool,
}

/// What was sampled when the measurement window opened.
struct WindowStart {
    at: Instant,
    counters: Counters,
    server: Option<ProcSample>,
    loader: ProcSample,
}

impl Engine<'_> {
    fn run(&mut self, opts: &RunOptions) -> Result<RunOutput> {
        let sc = self.sc;
        let start = Instant::now();
        let server_idle = match opts.server_pid {
            Some(pid) => Some(procstat::sample(Some(pid))?),
            None => None,
        };
        let players_target = u64::from(sc.streams) * u64::from(sc.players_per_stream);
        let ramp_secs = sc.total_connections() as f64 / sc.ramp_per_s;
        let hard_end = start
            + Duration::from_secs_f64(ramp_secs * 1.5)
            + PUBLISHER_WAIT
            + sc.warmup
            + sc.duration
            + Duration::from_secs(10);
        let mut ramp = Ramp {
            phase_start: start,
            opened_in_phase: 0,
            publishers_opened: 0,
            players_opened: 0,
            last_publisher_opened: start,
            players_phase: sc.publishers == 0,
        };
        let mut window: Option<WindowStart> = None;
        // Set when every connection is opened; the window opens `warmup` later.
        let mut warm_until: Option<Instant> = None;
        let mut churn_credit = 0.0f64;
        let mut last_tick = start;
        let mut next_progress = start + Duration::from_secs(1);
        let mut prev_counters = Counters::default();
        let mut prev_loader = procstat::sample(None)?;
        let mut prev_server = server_idle;
        let mut loader_max = 0.0f64;
        let mut saturated_seconds = 0u32;
        let mut events = Events::with_capacity(EVENTS);

        loop {
            let now = Instant::now();
            if let Some(w) = &window {
                if now >= w.at + sc.duration {
                    break;
                }
            }
            if now >= hard_end {
                self.stats
                    .error("run did not finish ramping up before its hard deadline");
                break;
            }

            // Ramp-up.
            if window.is_none() {
                self.ramp_step(&mut ramp, now);
                let all_open = ramp.players_phase
                    && ramp.players_opened
                        >= players_target + u64::from(sc.streams) * u64::from(sc.hls_pollers);
                if all_open && warm_until.is_none() {
                    warm_until = Some(now + sc.warmup);
                }
                if warm_until.is_some_and(|t| now >= t) {
                    // Latency is reported for the measurement window only (not the ramp).
                    self.stats.reset_window_latencies();
                    window = Some(WindowStart {
                        at: now,
                        counters: self.stats.counters.clone(),
                        server: match opts.server_pid {
                            Some(pid) => Some(procstat::sample(Some(pid))?),
                            None => None,
                        },
                        loader: procstat::sample(None)?,
                    });
                }
            } else if sc.churn_per_s > 0.0 {
                churn_credit += sc.churn_per_s * (now - last_tick).as_secs_f64();
                while churn_credit >= 1.0 && !self.players.is_empty() {
                    churn_credit -= 1.0;
                    self.churn_one(now);
                }
            }
            last_tick = now;

            self.fire_timers(now);

            if now >= next_progress {
                next_progress += Duration::from_secs(1);
                let loader = procstat::sample(None)?;
                let loader_pct = (loader.cpu_seconds - prev_loader.cpu_seconds) * 100.0;
                prev_loader = loader;
                if window.is_some() {
                    loader_max = loader_max.max(loader_pct);
                }
                if loader_pct > SATURATION_PERCENT {
                    saturated_seconds += 1;
                    eprintln!(
                        "rtmp-load: WARNING: load generator used {loader_pct:.0}% of a core; \
                         results may measure rtmp-load, not the server"
                    );
                }
                let server_pct = match (opts.server_pid, prev_server) {
                    (Some(pid), Some(prev)) => match procstat::sample(Some(pid)) {
                        Ok(s) => {
                            prev_server = Some(s);
                            Some((s.cpu_seconds - prev.cpu_seconds) * 100.0)
                        }
                        Err(_) => None,
                    },
                    _ => None,
                };
                if opts.progress {
                    eprintln!(
                        "{}",
                        self.progress_line(now - start, &prev_counters, loader_pct, server_pct)
                    );
                }
                prev_counters = self.stats.counters.clone();
            }

            let mut deadline = next_progress.min(hard_end);
            if let Some(w) = &window {
                deadline = deadline.min(w.at + sc.duration);
            } else if let Some(t) = warm_until {
                deadline = deadline.min(t);
            } else {
                deadline = deadline.min(now + Duration::from_millis(1));
            }
            if let Some(Reverse((due, _, _))) = self.timers.peek() {
                deadline = deadline.min(*due);
            }
            let timeout = deadline.saturating_duration_since(now);
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("poll"),
            }
            for ev in events.iter() {
                let key = ev.token().0;
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                let writable = ev.is_writable() || ev.is_error();
                self.on_ready(key, readable, writable);
            }
        }

        let end = Instant::now();
        let window = window.unwrap_or(WindowStart {
            at: end,
            counters: self.stats.counters.clone(),
            server: None,
            loader: prev_loader,
        });
        self.finish(end);
        let measured_s = (end - window.at).as_secs_f64();
        let c = &self.stats.counters;
        let bytes = c.player_bytes - window.counters.player_bytes;
        let msgs = c.player_messages - window.counters.player_messages;
        let w0 = &window.counters;
        let loader_end = procstat::sample(None)?;
        let loader_avg = if measured_s > 0.0 {
            (loader_end.cpu_seconds - window.loader.cpu_seconds) / measured_s * 100.0
        } else {
            0.0
        };
        let loader_wait = if measured_s > 0.0 {
            (loader_end.runqueue_wait_seconds - window.loader.runqueue_wait_seconds).max(0.0)
                / measured_s
                * 100.0
        } else {
            0.0
        };
        let server = match (opts.server_pid, server_idle, window.server) {
            (Some(pid), Some(idle), Some(from)) => {
                let to = procstat::sample(Some(pid))?;
                let open = self.conns.len() as u64;
                Some(ServerCost::compute(
                    pid, idle, from, to, measured_s, bytes, msgs, open,
                ))
            }
            _ => None,
        };
        let players_up = self
            .conns
            .iter()
            .filter(
                |(_, c)| matches!(&c.role, Role::Player { track, .. } if track.playing.is_some()),
            )
            .count() as u64;
        let mut report = Report {
            scenario: sc.clone(),
            source: self.src.description.clone(),
            elapsed_s: (end - start).as_secs_f64(),
            measured_s,
            connections: Connections {
                publishers_target: u64::from(sc.publishers),
                publishers_up: self.publishers_up,
                players_target,
                players_up,
                peak_open: self.peak_open,
            },
            counters: c.clone(),
            window: Window {
                player_bytes: bytes,
                player_messages: msgs,
                throughput_mbit_s: if measured_s > 0.0 {
                    bytes as f64 * 8.0 / measured_s / 1e6
                } else {
                    0.0
                },
                messages_per_s: if measured_s > 0.0 {
                    msgs as f64 / measured_s
                } else {
                    0.0
                },
                hls_playlists: c.hls_playlists - w0.hls_playlists,
                hls_segments: c.hls_segments - w0.hls_segments,
                hls_parts: c.hls_parts - w0.hls_parts,
                hls_bytes: c.hls_bytes - w0.hls_bytes,
            },
            latency_ms: Percentiles::of(&self.stats.latency_us),
            connect_to_play_ms: Percentiles::of(&self.stats.connect_to_play_us),
            first_frame_ms: Percentiles::of(&self.stats.first_frame_us),
            join_connect_to_play_ms: Percentiles::of(&self.stats.join_connect_to_play_us),
            join_first_frame_ms: Percentiles::of(&self.stats.join_first_frame_us),
            hls_playlist_ms: Percentiles::of(&self.stats.hls_playlist_us),
            hls_segment_ms: Percentiles::of(&self.stats.hls_segment_us),
            hls_part_ms: Percentiles::of(&self.stats.hls_part_us),
            hls_part_ready_ms: Percentiles::of(&self.stats.hls_part_ready_us),
            hls_part_playable_ms: Percentiles::of(&self.stats.hls_part_playable_us),
            hls_segment_playable_ms: Percentiles::of(&self.stats.hls_segment_playable_us),
            errors: self
                .stats
                .error_kinds
                .iter()
                .map(|(what, count)| ErrorKind {
                    what: what.clone(),
                    count: *count,
                })
                .collect(),
            loader: LoaderCpu {
                cpu_percent_avg: loader_avg,
                cpu_percent_max: loader_max,
                saturated_seconds,
                runqueue_wait_percent: loader_wait,
                rss_kb: loader_end.rss_kb,
            },
            warnings: Vec::new(),
            server,
        };
        report.warnings = report::warnings(&report.loader, report.server.as_ref());
        self.conns.clear();
        Ok(RunOutput {
            report,
            latency_us: self.stats.latency_us.clone(),
        })
    }

    /// Opens as many connections as the ramp rate allows by `now`.
    fn ramp_step(&mut self, r: &mut Ramp, now: Instant) {
        let sc = self.sc;
        let allowed = ((now - r.phase_start).as_secs_f64() * sc.ramp_per_s) as u64 + 1;
        let mut budget = allowed.saturating_sub(r.opened_in_phase).min(1000);
        if !r.players_phase {
            while budget > 0 && r.publishers_opened < sc.publishers {
                let stream = r.publishers_opened;
                r.publishers_opened += 1;
                r.opened_in_phase += 1;
                r.last_publisher_opened = now;
                budget -= 1;
                self.open(
                    Role::Publisher {
                        stream,
                        started: None,
                        cursor: Cursor::default(),
                    },
                    now,
                );
            }
            let all_publishing = self.publishers_up >= u64::from(sc.publishers);
            if r.publishers_opened == sc.publishers
                && (all_publishing || now - r.last_publisher_opened > PUBLISHER_WAIT)
            {
                if sc.mode == Mode::PublishOnly {
                    r.players_phase = true;
                    return;
                }
                r.players_phase = true;
                r.phase_start = now;
                r.opened_in_phase = 0;
            }
            return;
        }
        let players = u64::from(sc.streams) * u64::from(sc.players_per_stream);
        let target = players + u64::from(sc.streams) * u64::from(sc.hls_pollers);
        while budget > 0 && r.players_opened < target {
            let stream = (r.players_opened % u64::from(sc.streams)) as u32;
            let poller = r.players_opened >= players;
            r.players_opened += 1;
            r.opened_in_phase += 1;
            budget -= 1;
            if poller {
                self.open(Role::HlsPoller { stream, sent: now }, now);
            } else {
                self.open_player(stream, PlayerTrack::new(now));
            }
        }
    }

    fn open_player(&mut self, stream: u32, track: PlayerTrack) {
        let now = track.opened;
        let role = Role::Player {
            stream,
            track,
            slot: self.players.len(),
            nal_length_size: 4,
        };
        self.open(role, now);
    }

    /// One churn step: a random player leaves, a new one joins the same stream.
    fn churn_one(&mut self, now: Instant) {
        let key = self.players[self.rng.below(self.players.len())];
        let stream = match self.conns.get(key).map(|c| &c.role) {
            Some(Role::Player { stream, .. }) => *stream,
            _ => return,
        };
        self.close(key, Close::Leave);
        self.stats.counters.churn_left += 1;
        self.stats.counters.churn_joined += 1;
        self.open_player(stream, PlayerTrack::join(now));
    }

    /// Starts a TCP connect and a session for `role`.
    fn open(&mut self, role: Role, now: Instant) {
        let sc = self.sc;
        // Players (HTTP-FLV ones at the HTTP port) and pollers go to `--url`; publishers to
        // `--publish-url` (the same unless given).
        let (addr, url) = match &role {
            Role::Player { .. } => (self.player_addr, &sc.url),
            Role::HlsPoller { .. } => (self.http_addr, &sc.url),
            Role::Publisher { .. } => (self.addr, &sc.publish_url),
        };
        self.open_to(role, addr, url, None, now);
    }

    /// Starts a TCP connect to `addr` and a session for `role` (RTMP ones connect to `url`'s
    /// app); `predecessor` names the connection it is to replace. Returns its key and
    /// generation.
    fn open_to(
        &mut self,
        role: Role,
        addr: SocketAddr,
        url: &RtmpUrl,
        predecessor: Option<(usize, u64)>,
        now: Instant,
    ) -> Option<(usize, u64)> {
        let sc = self.sc;
        let http_player = match &role {
            Role::Player { stream, .. } if sc.player_proto == PlayerProto::HttpFlv => Some(*stream),
            _ => None,
        };
        let sock = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                let hint = if e.raw_os_error() == Some(24) {
                    " (raise `ulimit -n`)"
                } else {
                    ""
                };
                self.stats.error(format!("connect: {e}{hint}"));
                return None;
            }
        };
        let tls = if url.tls && !matches!(role, Role::HlsPoller { .. }) && http_player.is_none() {
            let config = self.tls_config.get_or_insert_with(tls::insecure_config);
            match tls::connect(config, &url.host) {
                Ok(tls) => Some(Box::new(tls)),
                Err(e) => {
                    self.stats.error(e);
                    return None;
                }
            }
        } else {
            None
        };
        let mut wq = VecDeque::new();
        let mut wq_bytes = 0;
        let wire = if let Some(stream) = http_player {
            let req = http::request(&sc.url.host, sc.http_port, &sc.flv_path(stream));
            wq_bytes = req.len();
            wq.push_back(Bytes::from(req));
            Wire::HttpFlv(HttpFlv::default())
        } else if let Role::HlsPoller { stream, .. } = &role {
            let mut p = HlsPoller::new(&sc.url.host, sc.http_port, &sc.hls_path(*stream));
            let req = p.reload();
            wq_bytes = req.len();
            wq.push_back(Bytes::from(req));
            Wire::Hls(Box::new(p))
        } else {
            Wire::Rtmp(Box::new(self.rtmp_session(&role, url, now)))
        };
        self.next_generation += 1;
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let mut conn = Conn {
            sock,
            tls,
            wire,
            connected: false,
            rbuf: BytesMut::with_capacity(INITIAL_READ_BUFFER),
            wq,
            wq_bytes,
            woff: 0,
            generation: self.next_generation,
            role,
            successor: None,
            predecessor,
            retired: false,
            held: Vec::new(),
        };
        if let Err(e) = self.poll.registry().register(
            &mut conn.sock,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.stats.error(format!("register: {e}"));
            return None;
        }
        // A successor joins the players (for churn picks) when it takes over.
        if let (Role::Player { slot, .. }, None) = (&mut conn.role, predecessor) {
            *slot = self.players.len();
            self.players.push(key);
        }
        let generation = conn.generation;
        entry.insert(conn);
        self.peak_open = self.peak_open.max(self.conns.len() as u64);
        Some((key, generation))
    }

    /// An RTMP client session that publishes or plays `role`'s stream on `url`'s app.
    fn rtmp_session(&mut self, role: &Role, url: &RtmpUrl, now: Instant) -> ClientSession {
        let sc = self.sc;
        let config = ClientConfig {
            app: url.app.clone(),
            tc_url: url.tc_url.clone(),
            flash_ver: "FMLE/3.0 (compatible; rtmp-load)".to_string(),
            limits: Limits::default(),
            chunk_size: 4096,
            digest_handshake: false,
        };
        let mut random = [0u8; RANDOM_LEN];
        self.rng.fill(&mut random);
        let epoch = (now - self.base).as_millis() as u32;
        let mut session = ClientSession::new(config, &random, epoch);
        let (name, publish) = match role {
            Role::Publisher { stream, .. } => (sc.stream_name(*stream), true),
            Role::Player { stream, .. } | Role::HlsPoller { stream, .. } => {
                (sc.stream_name(*stream), false)
            }
        };
        if publish {
            session.publish(&name, PublishMode::Live);
        } else {
            session.play(&name);
        }
        session
    }

    /// Removes a connection, counting why.
    fn close(&mut self, key: usize, why: Close) {
        if !self.conns.contains(key) {
            return;
        }
        let mut conn = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut conn.sock);
        if conn.retired {
            return;
        }
        if let Some(predecessor) = conn.predecessor {
            self.successor_failed(predecessor, why);
            return;
        }
        let kind = match &conn.role {
            Role::Publisher { started, .. } => {
                if started.is_some() {
                    self.publishers_up -= 1;
                }
                "publisher"
            }
            Role::Player { slot, .. } => {
                let slot = *slot;
                self.players.swap_remove(slot);
                if let Some(&moved) = self.players.get(slot) {
                    if let Some(Role::Player { slot: s, .. }) =
                        self.conns.get_mut(moved).map(|c| &mut c.role)
                    {
                        *s = slot;
                    }
                }
                "player"
            }
            Role::HlsPoller { .. } => "HLS poller",
        };
        match why {
            Close::Error(e) => self.stats.error(format!("{kind}: {e}")),
            Close::Disconnect(e) => self.stats.disconnect(format!("{kind}: {e}")),
            Close::Leave => {}
        }
    }

    /// Sends publishers' due frames.
    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((due, key, generation))) = self.timers.peek().copied() {
            if due > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.generation != generation {
                continue;
            }
            if let Wire::Hls(p) = &mut conn.wire {
                if !p.busy() {
                    let req = p.reload();
                    conn.wq_bytes += req.len();
                    conn.wq.push_back(Bytes::from(req));
                    if let Role::HlsPoller { sent, .. } = &mut conn.role {
                        *sent = now;
                    }
                }
                if let Err(why) = self.flush(key) {
                    self.close(key, why);
                }
                continue;
            }
            if self.hand_over_due(key, now) {
                continue;
            }
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let Role::Publisher { stream, .. } = conn.role else {
                continue;
            };
            // A successor ready to take over does so at the next keyframe: hold it back so
            // the timer comes round with it first in line (`hand_over_due` above).
            let hold_keyframe = matches!(
                conn.successor,
                Some(Successor {
                    ready_at: Some(_),
                    ..
                })
            );
            let ledger = &mut self.ledgers[stream as usize];
            let next = publish_due(
                conn,
                self.src,
                &mut self.stats.counters,
                ledger,
                now,
                self.base,
                hold_keyframe,
            );
            if let Some(next) = next {
                self.timers.push(Reverse((next, key, generation)));
            }
            if let Err(why) = self.flush(key) {
                self.close(key, why);
            }
        }
    }

    /// Handles readiness of connection `key`.
    fn on_ready(&mut self, key: usize, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.connected {
            match conn.sock.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    self.close(key, Close::Error(format!("connect: {e}")));
                    return;
                }
            }
            match conn.sock.peer_addr() {
                Ok(_) => {
                    conn.connected = true;
                    let _ = conn.sock.set_nodelay(true);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    self.close(key, Close::Error(format!("connect: {e}")));
                    return;
                }
            }
        }
        if writable {
            if let Err(why) = self.flush(key) {
                self.close(key, why);
                return;
            }
        }
        if readable {
            if let Err(why) = self.read(key) {
                self.close(key, why);
            }
        }
    }

    /// Reads until `WouldBlock`, feeding the session after every read.
    fn read(&mut self, key: usize) -> Result<(), Close> {
        loop {
            let conn = self.conns.get_mut(key).ok_or(Close::Leave)?;
            let n = if let Some(tls) = conn.tls.as_deref_mut() {
                match tls::read(&mut conn.sock, tls, &mut self.scratch, &mut conn.rbuf) {
                    Ok(tls::TlsRead::Data(n)) => n,
                    Ok(tls::TlsRead::WouldBlock) => return Ok(()),
                    Ok(tls::TlsRead::Closed) => {
                        return Err(Close::Disconnect("server closed the connection".into()))
                    }
                    Err(e) => return Err(Close::Disconnect(e)),
                }
            } else {
                let n = match conn.sock.read(&mut self.scratch) {
                    Ok(0) if matches!(&conn.wire, Wire::HttpFlv(f) if !f.head_done()) => {
                        return Err(Close::Error(
                            "server closed before the HTTP response head".into(),
                        ))
                    }
                    Ok(0) => return Err(Close::Disconnect("server closed the connection".into())),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Close::Disconnect(format!("read: {e}"))),
                };
                conn.rbuf.extend_from_slice(&self.scratch[..n]);
                n
            };
            let now = Instant::now();
            if matches!(conn.role, Role::Player { .. }) {
                self.stats.counters.player_bytes += n as u64;
            }
            match &mut conn.wire {
                Wire::Rtmp(session) => {
                    session
                        .handle_input(&mut conn.rbuf)
                        .map_err(|e| Close::Error(format!("session: {e}")))?;
                    self.drain_events(key, now)?;
                    self.flush(key)?;
                }
                Wire::HttpFlv(_) => self.on_http_flv_input(key, now)?,
                Wire::Hls(_) => {
                    self.on_hls_input(key, now)?;
                    self.flush(key)?;
                }
            }
        }
    }

    /// Parses what an HTTP-FLV viewer has read: the response head (its `200` counts as
    /// playing), then FLV tags, measured like RTMP media messages.
    fn on_http_flv_input(&mut self, key: usize, now: Instant) -> Result<(), Close> {
        let base = self.base;
        let Engine {
            conns,
            stats,
            ledgers,
            ..
        } = self;
        let conn = conns.get_mut(key).ok_or(Close::Leave)?;
        let Wire::HttpFlv(flv) = &mut conn.wire else {
            return Ok(());
        };
        let parsed = flv.parse(&mut conn.rbuf).map_err(Close::Error)?;
        if let Role::Player {
            stream,
            track,
            nal_length_size,
            ..
        } = &mut conn.role
        {
            if parsed.head_ok {
                stats.on_playing(track, now);
            }
            let ledger = ledgers.get(*stream as usize);
            for tag in &parsed.tags {
                stats.counters.player_messages += 1;
                if tag.tag_type == VIDEO {
                    on_player_video(stats, track, nal_length_size, &tag.data, ledger, now, base);
                }
            }
        }
        Ok(())
    }

    /// Handles an HLS poller's complete responses: records them, sends the next request or
    /// arms the reload timer.
    fn on_hls_input(&mut self, key: usize, now: Instant) -> Result<(), Close> {
        let Engine {
            conns,
            stats,
            timers,
            ..
        } = self;
        let conn = conns.get_mut(key).ok_or(Close::Leave)?;
        let (Wire::Hls(p), Role::HlsPoller { sent, .. }) = (&mut conn.wire, &mut conn.role) else {
            return Ok(());
        };
        let wall_us = unix_micros();
        while let Some(resp) = p.parse(&mut conn.rbuf, wall_us).map_err(Close::Error)? {
            if resp.not_ready {
                stats.counters.hls_playlists_not_ready += 1;
            } else {
                stats.on_hls_response(resp.what, now - *sent, resp.bytes);
            }
            for &us in &resp.parts_ready_us {
                stats.on_hls_part_ready(us);
            }
            if let Some(us) = resp.playable_us {
                stats.on_hls_playable(resp.what, us);
            }
            stats.counters.hls_without_pdt += resp.without_pdt;
            match p.next() {
                Next::Request(req) => {
                    conn.wq_bytes += req.len();
                    conn.wq.push_back(Bytes::from(req));
                    *sent = now;
                }
                Next::ReloadAfterMs(ms) => {
                    timers.push(Reverse((
                        now + Duration::from_millis(ms),
                        key,
                        conn.generation,
                    )));
                }
            }
        }
        Ok(())
    }

    /// Acts on every pending session event of `key`.
    fn drain_events(&mut self, key: usize, now: Instant) -> Result<(), Close> {
        let base = self.base;
        let mut reconnect = None;
        {
            let Engine {
                conns,
                stats,
                src,
                timers,
                publishers_up,
                ledgers,
                ..
            } = self;
            loop {
                let conn = conns.get_mut(key).ok_or(Close::Leave)?;
                let Wire::Rtmp(session) = &mut conn.wire else {
                    return Ok(());
                };
                let Some(ev) = session.poll_event() else {
                    break;
                };
                match ev {
                    ClientEvent::Publishing { .. } if conn.predecessor.is_some() => {
                        reconnect::successor_publishing(
                            conns,
                            key,
                            src,
                            stats,
                            timers,
                            publishers_up,
                            now,
                        );
                    }
                    ClientEvent::Publishing { .. } => {
                        if let Role::Publisher { started, .. } = &mut conn.role {
                            if started.is_none() {
                                *started = Some(now);
                                *publishers_up += 1;
                                for h in &src.headers {
                                    session.send_media(h.type_id, 0, &h.data);
                                    stats.counters.publisher_messages += 1;
                                }
                                timers.push(Reverse((now, key, conn.generation)));
                            }
                        }
                    }
                    ClientEvent::Playing { .. } => {
                        // A successor's track is its predecessor's, which already played.
                        if let (Role::Player { track, .. }, None) =
                            (&mut conn.role, conn.predecessor)
                        {
                            stats.on_playing(track, now);
                        }
                    }
                    ClientEvent::Status {
                        level,
                        code,
                        description,
                        ..
                    } => {
                        if level.eq_ignore_ascii_case("error") {
                            return Err(Close::Error(format!("{code}: {description}")));
                        }
                    }
                    ClientEvent::ReconnectRequest { tc_url, .. } => reconnect = Some(tc_url),
                    ClientEvent::Media {
                        type_id, payload, ..
                    } => {
                        if type_id == VIDEO
                            && conn.predecessor.is_some()
                            && matches!(conn.role, Role::Player { .. })
                            && media::coded_frame_is_keyframe(&payload).is_some()
                        {
                            // Make before break: the new connection's coded frames wait
                            // until it takes over (below), once the old one has delivered
                            // what came before them.
                            stats.counters.player_messages += 1;
                            conn.held.push((payload, now));
                            continue;
                        }
                        if let Role::Player {
                            stream,
                            track,
                            nal_length_size,
                            ..
                        } = &mut conn.role
                        {
                            stats.counters.player_messages += 1;
                            if type_id == VIDEO {
                                let ledger = ledgers.get(*stream as usize);
                                on_player_video(
                                    stats,
                                    track,
                                    nal_length_size,
                                    &payload,
                                    ledger,
                                    now,
                                    base,
                                );
                            }
                        }
                    }
                    ClientEvent::Connected
                    | ClientEvent::StreamBegin { .. }
                    | ClientEvent::StreamEof { .. } => {}
                }
            }
        }
        let retired = reconnect::player_switch(
            &mut self.conns,
            &mut self.players,
            &mut self.stats,
            &self.ledgers,
            key,
            now,
            base,
        );
        if let Some(old) = retired {
            self.close(old, Close::Leave);
        }
        if let Some(tc_url) = reconnect {
            self.on_reconnect_request(key, tc_url, now);
        }
        Ok(())
    }

    /// Moves the session's transmits to the write queue and writes until `WouldBlock`.
    fn flush(&mut self, key: usize) -> Result<(), Close> {
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(());
        };
        if let Wire::Rtmp(session) = &mut conn.wire {
            while let Some(b) = session.poll_transmit() {
                conn.wq_bytes += b.len();
                conn.wq.push_back(b);
            }
        }
        if !conn.connected {
            return Ok(());
        }
        let is_publisher = matches!(conn.role, Role::Publisher { .. });
        if let Some(tls) = conn.tls.as_deref_mut() {
            let n = tls::write(
                &mut conn.sock,
                tls,
                &mut conn.wq,
                &mut conn.woff,
                MAX_IOVECS,
            )
            .map_err(Close::Disconnect)?;
            conn.wq_bytes -= n;
            if is_publisher {
                self.stats.counters.publisher_bytes += n as u64;
            }
        }
        while conn.tls.is_none() && !conn.wq.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let mut n_iov = 0;
            for (i, b) in conn.wq.iter().take(MAX_IOVECS).enumerate() {
                iov[i] = IoSlice::new(if i == 0 { &b[conn.woff..] } else { &b[..] });
                n_iov += 1;
            }
            match conn.sock.write_vectored(&iov[..n_iov]) {
                Ok(0) => return Err(Close::Disconnect("write returned 0".into())),
                Ok(mut n) => {
                    conn.wq_bytes -= n;
                    if is_publisher {
                        self.stats.counters.publisher_bytes += n as u64;
                    }
                    while n > 0 {
                        let front_left = conn.wq[0].len() - conn.woff;
                        if n >= front_left {
                            n -= front_left;
                            conn.wq.pop_front();
                            conn.woff = 0;
                        } else {
                            conn.woff += n;
                            n = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Close::Disconnect(format!("write: {e}"))),
            }
        }
        if is_publisher && conn.wq_bytes > MAX_PUBLISHER_BACKLOG {
            return Err(Close::Error(format!(
                "more than {} MiB unsent: the server is not reading",
                MAX_PUBLISHER_BACKLOG >> 20
            )));
        }
        Ok(())
    }

    /// End of run: players still open are checked for never-played and final silence;
    /// publishers that never published are errors.
    fn finish(&mut self, now: Instant) {
        // A successor that has not taken over is not a player or publisher of its own.
        for (_, conn) in self.conns.iter().filter(|(_, c)| c.predecessor.is_none()) {
            match &conn.role {
                Role::Player { track, .. } => {
                    let stage = match &conn.wire {
                        _ if !conn.connected => "TCP connect",
                        Wire::HttpFlv(f) if !f.head_done() => "HTTP request, no response head",
                        Wire::HttpFlv(_) => "HTTP-FLV body",
                        Wire::Hls(_) => "HLS",
                        Wire::Rtmp(s) if !s.is_connected() => "handshake or connect",
                        Wire::Rtmp(_) => "createStream or play",
                    };
                    self.stats.on_player_end(track, now, START_GRACE, stage)
                }
                Role::Publisher { started: None, .. } => self
                    .stats
                    .error("publisher never reached NetStream.Publish.Start"),
                Role::Publisher { .. } | Role::HlsPoller { .. } => {}
            }
        }
    }

    fn progress_line(
        &self,
        elapsed: Duration,
        prev: &Counters,
        loader_pct: f64,
        server_pct: Option<f64>,
    ) -> String {
        let c = &self.stats.counters;
        let open_players = self.players.len();
        let p99 = if self.stats.latency_us.is_empty() {
            "-".to_string()
        } else {
            format!(
                "{:.1}",
                self.stats.latency_us.value_at_quantile(0.99) as f64 / 1000.0
            )
        };
        let server = server_pct
            .map(|p| format!(" srv {p:.0}%"))
            .unwrap_or_default();
        format!(
            "[{:>4}s] pub {}/{} play {}/{} | in {:.1} Mbit/s {} msg/s | p99 {} ms | stalls {} disc {} err {} | cpu self {:.0}%{}",
            elapsed.as_secs(),
            self.publishers_up,
            self.sc.publishers,
            open_players,
            u64::from(self.sc.streams) * u64::from(self.sc.players_per_stream),
            (c.player_bytes - prev.player_bytes) as f64 * 8.0 / 1e6,
            c.player_messages - prev.player_messages,
            p99,
            c.stalls,
            c.disconnects,
            c.errors,
            loader_pct,
            server
        )
    }
}

/// The wall clock as Unix microseconds (the clock EXT-X-PROGRAM-DATE-TIME is compared with).
fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
