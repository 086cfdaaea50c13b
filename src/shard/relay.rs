//! The worker's side of the edge relay: the sockets of the sans-IO [`relay`](crate::relay)
//! policy. Pulls (a stream nobody publishes here, wanted by players: [`Action::Pull`]) and
//! pushes (a stream published here, on an app with `[[relay.push]]` targets) each run a
//! client session on an upstream connection in this worker's slab ([`Proto::Upstream`]).
//!
//! - A pull's upstream media enters the hub with [`Hub::ingest_pulled`], so fast start, the
//!   GOP cache, cross-worker fan-out, HTTP delivery and the slow-player policy apply as to a
//!   local publisher. The [`Pull`] decides when to connect, fail over and close; a failover
//!   keeps the hub's stream (and its players), and the new feed continues its timeline.
//! - A push target's connection is a player of the stream in the hub, attached once the
//!   target answers Publish.Start: it gets the fast-start cache, then every packet, through
//!   its own bounded queue (a slow target drops to the next keyframe, then is closed and
//!   retried with backoff by its [`PushTarget`]); it never slows the publisher.
//!
//! [`Action::Pull`]: crate::fanout::Action::Pull
//! [`Hub::ingest_pulled`]: crate::fanout::Hub::ingest_pulled

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::close::{CloseReason, RelayEnd};
use super::conn::{Conn, Proto};
use super::worker::Worker;
use crate::config::Config;
use crate::fanout::{ConnKey, OutputQueue, StreamKey};
use crate::relay::{
    Endpoint, FailureKind, Origins, Pull, PullAction, PushAction, PushTarget, PushUrl,
    RelaySettings, StreamUrl,
};
use crate::rtmp::session::{ClientConfig, ClientEvent, ClientSession};

/// `flashVer` of the relay's client sessions.
const FLASH_VER: &str = "FMLE/3.0 (compatible; rtmp-edge)";

/// What an upstream connection is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Plays `stream` from an origin for the hub.
    Pull,
    /// Publishes `stream` to the push target `target` (index into the stream's targets).
    Push { target: usize },
}

/// The protocol state of an upstream (client) connection.
pub struct Upstream {
    pub session: ClientSession,
    /// The stream it pulls or pushes.
    pub stream: StreamKey,
    pub job: Job,
    /// No media delivered on this connection yet (a pull's new feed starts at the first).
    pub fresh: bool,
}

/// One stream's pull: its policy and its current upstream connection.
struct PullEntry {
    pull: Pull,
    upstream: Option<ConnKey>,
}

/// One published stream's push targets and their connections.
struct PushEntry {
    targets: Vec<(PushTarget, Option<ConnKey>)>,
}

/// A worker's relay state.
pub struct Relay {
    settings: RelaySettings,
    origins: Origins,
    pushes_configured: Vec<(String, PushUrl)>,
    pulls: HashMap<StreamKey, PullEntry>,
    pushes: HashMap<StreamKey, PushEntry>,
    /// Host names resolved at start (and on reload), so the loop never waits on DNS.
    addresses: HashMap<Endpoint, SocketAddr>,
}

impl Relay {
    /// The relay of `config`, with every configured host resolved now (before the loop).
    pub fn new(config: &Config) -> Self {
        let settings = RelaySettings::from_config(&config.relay);
        let pushes_configured: Vec<(String, PushUrl)> = config
            .relay
            .push
            .iter()
            .filter_map(|p| Some((p.app.clone(), PushUrl::parse(&p.url).ok()?)))
            .collect();
        let mut addresses = HashMap::new();
        let endpoints = settings
            .origins
            .iter()
            .map(|o| o.endpoint().clone())
            .chain(pushes_configured.iter().map(|(_, p)| p.endpoint().clone()));
        for endpoint in endpoints {
            if let Some(addr) = resolve(&endpoint) {
                addresses.insert(endpoint, addr);
            }
        }
        Self {
            origins: settings.origins(),
            settings,
            pushes_configured,
            pulls: HashMap::new(),
            pushes: HashMap::new(),
            addresses,
        }
    }

    /// The upstream connection feeding `key`'s pull now, if any.
    pub fn feeder(&self, key: &StreamKey) -> Option<ConnKey> {
        self.pulls.get(key)?.upstream
    }

    fn address(&mut self, endpoint: &Endpoint) -> Option<SocketAddr> {
        if let Some(addr) = self.addresses.get(endpoint) {
            return Some(*addr);
        }
        // A redirect to a host not configured: resolved once, then remembered.
        let addr = resolve(endpoint)?;
        self.addresses.insert(endpoint.clone(), addr);
        Some(addr)
    }
}

/// The address of `endpoint`: an IP literal or `localhost` at once, else by the system
/// resolver (blocking: called at start and for a redirect's new host only).
fn resolve(endpoint: &Endpoint) -> Option<SocketAddr> {
    let host = endpoint.host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, endpoint.port));
    }
    if host == "localhost" {
        return Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            endpoint.port,
        ));
    }
    match (host, endpoint.port).to_socket_addrs() {
        Ok(mut addrs) => addrs.next(),
        Err(e) => {
            tracing::warn!(%endpoint, error = %e, "cannot resolve relay host");
            None
        }
    }
}

/// `key` as the app and stream name a client session asks for (split at the first `/`).
fn app_and_name(key: &StreamKey) -> (&str, &str) {
    key.as_str().split_once('/').unwrap_or((key.as_str(), ""))
}

/// True when push target app `pattern` covers `app`.
fn app_matches(pattern: &str, app: &str) -> bool {
    pattern == "*" || pattern == app
}

impl Worker {
    /// The hub claimed `key` for this worker to pull (players want it, nobody publishes it).
    /// (`for_packaging`: an HLS/DASH request claimed it; its packaging, which starts right
    /// after, is the audience.)
    pub(super) fn start_pull(&mut self, key: StreamKey, for_packaging: bool, now: Instant) {
        if self.relay.pulls.contains_key(&key) {
            return;
        }
        let (app, name) = app_and_name(&key);
        let players = self.pull_audience(&key) + usize::from(for_packaging);
        let timeouts = self.relay.settings.pull_timeouts();
        let pull = Pull::new(app, name, players, timeouts, &self.relay.origins, now);
        if pull.is_closed() {
            // Whoever wanted it left in the same wake-up (a push target's connection closed
            // with its publisher): the hub's claim is released below.
            tracing::debug!(stream = %key, "no pull: no players left");
        } else {
            tracing::info!(stream = %key, players, "pulling from an origin");
        }
        let entry = PullEntry {
            pull,
            upstream: None,
        };
        self.relay.pulls.insert(key.clone(), entry);
        self.apply_pull(&key, now);
    }

    /// A local publisher took `key` over from its pull.
    pub(super) fn stop_pull(&mut self, key: &StreamKey, now: Instant) {
        if let Some(entry) = self.relay.pulls.remove(key) {
            tracing::info!(stream = %key, "pull stopped: published here");
            if let Some(conn) = entry.upstream {
                self.close(conn, CloseReason::Relay(RelayEnd::Replaced), now);
            }
        }
    }

    /// Applies `key`'s pull actions, in order; ends the hub's stream when the pull is over.
    fn apply_pull(&mut self, key: &StreamKey, now: Instant) {
        loop {
            let Some(entry) = self.relay.pulls.get_mut(key) else {
                return;
            };
            let Some(action) = entry.pull.poll_action() else {
                break;
            };
            match action {
                PullAction::Connect { origin, url } => {
                    tracing::info!(stream = %key, %url, origin, "pull: connecting to origin");
                    match self.open_upstream(&url, key.clone(), Job::Pull, now) {
                        Some(conn) => {
                            if let Some(entry) = self.relay.pulls.get_mut(key) {
                                entry.upstream = Some(conn);
                            }
                        }
                        None => {
                            let relay = &mut self.relay;
                            if let Some(entry) = relay.pulls.get_mut(key) {
                                entry.pull.failed(
                                    FailureKind::ConnectFailed,
                                    &mut relay.origins,
                                    now,
                                );
                            }
                        }
                    }
                }
                PullAction::Disconnect => {
                    if let Some(conn) = entry.upstream.take() {
                        let end = match entry.pull.state() {
                            crate::relay::PullState::Closed => RelayEnd::Idle,
                            _ => RelayEnd::FailedOver,
                        };
                        self.close(conn, CloseReason::Relay(end), now);
                    }
                }
                PullAction::GiveUp => {
                    tracing::warn!(stream = %key, "pull gave up: no origin delivered the stream");
                    let (hub, mut door) = self.door(now);
                    hub.pull_ended(key, true, &mut door);
                    self.apply_hub(now);
                }
            }
        }
        if self
            .relay
            .pulls
            .get(key)
            .is_some_and(|e| e.pull.is_closed())
        {
            self.relay.pulls.remove(key);
            let (hub, mut door) = self.door(now);
            hub.pull_ended(key, false, &mut door);
            self.apply_hub(now);
        }
    }

    /// Opens a connection to `url` for `job` on `stream`; `None` (logged) if it cannot start.
    fn open_upstream(
        &mut self,
        url: &StreamUrl,
        stream: StreamKey,
        job: Job,
        now: Instant,
    ) -> Option<ConnKey> {
        if self.shutdown_deadline.is_some() {
            return None; // shutting down: no new connections
        }
        if url.endpoint().scheme != crate::relay::Scheme::Rtmp {
            tracing::warn!(%url, "rtmps:// upstreams are not supported yet");
            return None;
        }
        let addr = self.relay.address(url.endpoint())?;
        if self.conns.len() >= self.config.workers.max_connections {
            tracing::warn!(%url, "cannot open upstream connection: worker at max_connections");
            return None;
        }
        let mut socket = match TcpStream::connect(addr) {
            Ok(socket) => socket,
            Err(e) => {
                tracing::warn!(%url, error = %e, "cannot open upstream connection");
                return None;
            }
        };
        if let Err(e) = self.socket_options.apply(&socket) {
            tracing::debug!(%url, error = %e, "cannot set socket options");
        }
        let index = self.conns.next_index();
        if let Err(e) = self.poll.registry().register(
            &mut socket,
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            tracing::warn!(%url, error = %e, "cannot register upstream connection");
            return None;
        }
        let session = ClientSession::new(
            ClientConfig {
                app: url.app().to_owned(),
                tc_url: url.tc_url(),
                flash_ver: FLASH_VER.to_owned(),
                limits: self.config.rtmp.limits(),
                chunk_size: self.config.rtmp.chunk_size,
                digest_handshake: false,
            },
            &self.random_block(),
            now.duration_since(self.started).as_millis() as u32,
        );
        let mut session = session;
        // The relay does not act on E-RTMP ReconnectRequests yet, so it does not announce
        // that it can: a draining origin closes the pull at its deadline and it fails over.
        session.set_caps_ex(0);
        let role = match job {
            Job::Pull => {
                session.play(url.stream());
                "pull"
            }
            Job::Push { .. } => {
                session.publish(url.stream(), crate::rtmp::session::PublishMode::Live);
                "push"
            }
        };
        let id = self.next_conn;
        self.next_conn += 1;
        let key = ConnKey {
            index: index as u32,
            generation: id as u32,
        };
        // Its own envelope, not a child of whatever connection's event started it.
        let span = tracing::info_span!(parent: None, "conn", peer = %addr, worker = self.index, conn = id,
            stream = %stream, role);
        span.in_scope(|| tracing::debug!(%url, "upstream connection opened"));
        let upstream = Upstream {
            session,
            stream: stream.clone(),
            job,
            fresh: true,
        };
        let queue = OutputQueue::new(self.config.streams.player_queue_bytes);
        let mut conn = Conn::new(
            id,
            key,
            addr,
            socket,
            Proto::Upstream(Box::new(upstream)),
            queue,
            now,
            span,
        );
        conn.last_stream = Some(stream);
        self.conns.insert(conn);
        self.pump(key);
        Some(key)
    }

    /// Runs what an upstream connection's session has to say after a read.
    pub(super) fn upstream_events(&mut self, conn: ConnKey, now: Instant) {
        self.pump(conn);
        while let Some((event, stream, job, fresh)) = self.conns.get_mut(conn).and_then(|c| {
            let Proto::Upstream(up) = &mut c.proto else {
                return None;
            };
            let event = up.session.poll_event()?;
            let fresh = up.fresh;
            up.fresh = fresh && !matches!(event, ClientEvent::Media { .. });
            Some((event, up.stream.clone(), up.job.clone(), fresh))
        }) {
            match job {
                Job::Pull => self.pull_event(conn, &stream, event, fresh, now),
                Job::Push { target } => self.push_event(conn, &stream, target, event, now),
            }
        }
        self.pump(conn);
    }

    fn pull_event(
        &mut self,
        conn: ConnKey,
        stream: &StreamKey,
        event: ClientEvent,
        fresh: bool,
        now: Instant,
    ) {
        let relay = &mut self.relay;
        let Some(entry) = relay
            .pulls
            .get_mut(stream)
            .filter(|e| e.upstream == Some(conn))
        else {
            return;
        };
        match event {
            ClientEvent::Media {
                type_id,
                timestamp,
                payload,
            } => {
                entry.pull.media(&mut relay.origins, now);
                let (hub, mut door) = self.door(now);
                if fresh {
                    hub.pull_feeding(stream, &mut door);
                }
                match hub.ingest_pulled(stream, type_id, timestamp, payload, &mut door) {
                    Ok(Some(packet)) => self.packaged(conn, stream, &packet, now),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "origin sent a header over the cap");
                        self.pull_failed(stream, FailureKind::Refused, now);
                        return;
                    }
                }
                // Mail for subscribed workers, closes.
                self.apply_hub(now);
                return;
            }
            ClientEvent::Connected => entry.pull.connected(now),
            ClientEvent::Playing { .. } => entry.pull.playing(now),
            ClientEvent::Status { level, code, .. } => {
                tracing::debug!(%level, %code, "origin status");
                if refuses_pull(&level, &code) {
                    tracing::info!(%code, "origin refused the pull");
                    entry
                        .pull
                        .failed(FailureKind::Refused, &mut relay.origins, now);
                }
            }
            ClientEvent::StreamEof { .. }
            | ClientEvent::StreamBegin { .. }
            | ClientEvent::Publishing { .. }
            | ClientEvent::ReconnectRequest { .. } => return,
        }
        self.apply_pull(stream, now);
    }

    /// `stream`'s pull failed on its current upstream for `kind`.
    fn pull_failed(&mut self, stream: &StreamKey, kind: FailureKind, now: Instant) {
        let relay = &mut self.relay;
        if let Some(entry) = relay.pulls.get_mut(stream) {
            entry.pull.failed(kind, &mut relay.origins, now);
        }
        self.apply_pull(stream, now);
    }

    /// An upstream connection closed: if it was not the relay's doing (it forgets its
    /// connections before closing them), its pull or push failed.
    pub(super) fn upstream_closed(&mut self, conn: ConnKey, up: &Upstream, now: Instant) {
        match up.job {
            Job::Pull => {
                let Some(entry) = self
                    .relay
                    .pulls
                    .get_mut(&up.stream)
                    .filter(|e| e.upstream == Some(conn))
                else {
                    return;
                };
                entry.upstream = None;
                let kind = if up.session.is_connected() {
                    FailureKind::Stall
                } else {
                    FailureKind::ConnectFailed
                };
                self.pull_failed(&up.stream, kind, now);
            }
            Job::Push { target } => {
                let Some((push, slot)) = self
                    .relay
                    .pushes
                    .get_mut(&up.stream)
                    .and_then(|e| e.targets.get_mut(target))
                    .filter(|(_, c)| *c == Some(conn))
                else {
                    return;
                };
                *slot = None;
                let kind = if up.session.stream_id().is_some() {
                    FailureKind::Stall
                } else {
                    FailureKind::ConnectFailed
                };
                tracing::info!(url = %push.url(), ?kind, "push target lost");
                push.failed(kind, now);
                self.apply_push(&up.stream, target, now);
            }
        }
    }

    /// `key` was published here: start its push targets.
    pub(super) fn start_pushes(&mut self, key: &StreamKey, now: Instant) {
        let (app, name) = app_and_name(key);
        let backoff = self.relay.settings.backoff;
        let timeout = self.relay.settings.origin_timeout;
        let targets: Vec<(PushTarget, Option<ConnKey>)> = self
            .relay
            .pushes_configured
            .iter()
            .filter(|(pattern, _)| app_matches(pattern, app))
            .map(|(_, url)| (PushTarget::new(url, name, backoff, timeout), None))
            .collect();
        if targets.is_empty() {
            return;
        }
        let count = targets.len();
        if let Some(old) = self.relay.pushes.insert(key.clone(), PushEntry { targets }) {
            self.disconnect_pushes(old, now);
        }
        for target in 0..count {
            if let Some((push, _)) = self
                .relay
                .pushes
                .get_mut(key)
                .and_then(|e| e.targets.get_mut(target))
            {
                tracing::info!(stream = %key, url = %push.url(), "pushing");
                push.start(now);
            }
            self.apply_push(key, target, now);
        }
    }

    /// `key`'s publisher left: its pushes stop.
    pub(super) fn stop_pushes(&mut self, key: &StreamKey, now: Instant) {
        if let Some(entry) = self.relay.pushes.remove(key) {
            self.disconnect_pushes(entry, now);
        }
    }

    fn disconnect_pushes(&mut self, entry: PushEntry, now: Instant) {
        for (_, conn) in entry.targets {
            if let Some(conn) = conn {
                self.close(conn, CloseReason::Relay(RelayEnd::PushStopped), now);
            }
        }
    }

    fn push_event(
        &mut self,
        conn: ConnKey,
        stream: &StreamKey,
        target: usize,
        event: ClientEvent,
        now: Instant,
    ) {
        let Some((push, _)) = self
            .relay
            .pushes
            .get_mut(stream)
            .and_then(|e| e.targets.get_mut(target))
            .filter(|(_, c)| *c == Some(conn))
        else {
            return;
        };
        match event {
            ClientEvent::Publishing { stream_id } => {
                push.publishing(now);
                tracing::info!(url = %push.url(), "push target publishing");
                // The target is a player of the stream from here on (fast start, then each
                // packet, through its own bounded queue).
                let (hub, mut door) = self.door(now);
                hub.attach(conn, stream_id, stream.clone(), None, &mut door);
                self.apply_hub(now);
            }
            ClientEvent::Status { level, code, .. } if level == "error" => {
                tracing::info!(url = %push.url(), %code, "push target refused");
                push.failed(FailureKind::Refused, now);
                self.apply_push(stream, target, now);
            }
            _ => {}
        }
    }

    fn apply_push(&mut self, key: &StreamKey, target: usize, now: Instant) {
        loop {
            let Some((push, conn)) = self
                .relay
                .pushes
                .get_mut(key)
                .and_then(|e| e.targets.get_mut(target))
            else {
                return;
            };
            let Some(action) = push.poll_action() else {
                return;
            };
            match action {
                PushAction::Connect { url } => {
                    let opened = self.open_upstream(&url, key.clone(), Job::Push { target }, now);
                    let Some((push, slot)) = self
                        .relay
                        .pushes
                        .get_mut(key)
                        .and_then(|e| e.targets.get_mut(target))
                    else {
                        return;
                    };
                    match opened {
                        Some(conn) => *slot = Some(conn),
                        None => push.failed(FailureKind::ConnectFailed, now),
                    }
                }
                PushAction::Disconnect => {
                    if let Some(conn) = conn.take() {
                        self.close(conn, CloseReason::Relay(RelayEnd::FailedOver), now);
                    }
                }
            }
        }
    }

    /// Who keeps `key`'s pull wanted: the hub's audience, and its HLS/DASH packaging.
    fn pull_audience(&self, key: &StreamKey) -> usize {
        self.hub.audience(key) + usize::from(self.packaging.is_active(key))
    }

    /// From the timer: pulls learn their audience and fire their timeouts; push targets
    /// retry after their backoff.
    pub(super) fn relay_tick(&mut self, now: Instant) {
        let keys: Vec<StreamKey> = self.relay.pulls.keys().cloned().collect();
        for key in keys {
            let audience = self.pull_audience(&key);
            let relay = &mut self.relay;
            if let Some(entry) = relay.pulls.get_mut(&key) {
                if entry.pull.players() != audience {
                    entry.pull.players_changed(audience, now);
                }
                if entry.pull.poll_timeout().is_some_and(|at| now >= at) {
                    entry.pull.handle_timeout(&mut relay.origins, now);
                }
            }
            self.apply_pull(&key, now);
        }
        let pushes: Vec<(StreamKey, usize)> = self
            .relay
            .pushes
            .iter()
            .flat_map(|(k, e)| (0..e.targets.len()).map(move |i| (k.clone(), i)))
            .collect();
        for (key, target) in pushes {
            if let Some((push, _)) = self
                .relay
                .pushes
                .get_mut(&key)
                .and_then(|e| e.targets.get_mut(target))
            {
                if push.poll_timeout().is_some_and(|at| now >= at) {
                    push.handle_timeout(now);
                }
            }
            self.apply_push(&key, target, now);
        }
    }
}

/// An onStatus from an origin that means the pull will not get media there.
fn refuses_pull(level: &str, code: &str) -> bool {
    level == "error"
        || matches!(
            code,
            "NetStream.Play.UnpublishNotify"
                | "NetStream.Play.Stop"
                | "NetStream.Play.StreamNotFound"
        )
}
