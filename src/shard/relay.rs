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
use std::sync::{mpsc, Arc};
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::close::{CloseReason, ClusterEnd, RelayEnd};
use super::conn::{Conn, Proto};
use super::worker::Worker;
use crate::cluster;
use crate::config::Config;
use crate::fanout::{ConnKey, OutputQueue, StreamKey};
use crate::relay::PUSH_TO_ORIGINS;
use crate::relay::{
    Endpoint, FailureKind, OriginUrl, Origins, Pull, PullAction, PushAction, PushState, PushTarget,
    PushUrl, RelaySettings, StreamUrl,
};
use crate::rtmp::session::{ClientConfig, ClientEvent, ClientSession};

/// How often a pull connected without media asks the cluster directory again.
const LOOKUP_AGAIN: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// A second connection opened make-before-break (the origin asked us to reconnect, or a
    /// reload removed it), to this origin: it replaces `upstream` at its first media.
    standby: Option<(ConnKey, usize)>,
    /// When the cluster directory was last asked about this stream.
    looked_up: Option<Instant>,
}

/// One push target of one stream: its policy, its connection, and a standby connection
/// (make-before-break on a ReconnectRequest) that replaces it once it publishes.
struct Slot {
    push: PushTarget,
    conn: Option<ConnKey>,
    standby: Option<ConnKey>,
}

/// One published stream's push targets.
struct PushEntry {
    targets: Vec<Slot>,
}

/// A worker's relay state.
pub struct Relay {
    settings: RelaySettings,
    origins: Origins,
    pushes_configured: Vec<(String, PushTo)>,
    pulls: HashMap<StreamKey, PullEntry>,
    pushes: HashMap<StreamKey, PushEntry>,
    /// Host names resolved at start (and on reload), so the loop never waits on DNS.
    addresses: HashMap<Endpoint, SocketAddr>,
    /// The TLS client side of `rtmps://` upstreams (`rtmps.ca_file`, else the system roots);
    /// None if the CA file could not be loaded (logged; rtmps upstreams then fail to open).
    tls_client: Option<Arc<rustls::ClientConfig>>,
    /// The cluster's stream directory (`cluster.directory = "redis"`).
    cluster: Option<ClusterLink>,
    /// Pulls waiting for the directory's answer before they start (`true`: claimed for
    /// HLS/DASH packaging).
    locating: HashMap<StreamKey, bool>,
}

/// A worker's way to the cluster directory thread.
struct ClusterLink {
    requests: mpsc::Sender<cluster::Request>,
    /// This server takes a lease for each stream published on it (an origin).
    registers: bool,
    /// The live origins, least loaded first.
    nodes: cluster::SharedNodes,
}

/// Where a `[[relay.push]]` target publishes.
#[derive(Debug, Clone)]
enum PushTo {
    Url(PushUrl),
    /// One of the origins ([`PUSH_TO_ORIGINS`]).
    Origins,
}

impl PushTo {
    /// Where a push URL connects (`None` for the origins, resolved with them).
    fn endpoint(&self) -> Option<&Endpoint> {
        match self {
            PushTo::Url(url) => Some(url.endpoint()),
            PushTo::Origins => None,
        }
    }

    /// The target's name: its URL (`endpoint/app`) or `origins`.
    fn name(&self) -> String {
        match self {
            PushTo::Url(url) => url.to_string(),
            PushTo::Origins => PUSH_TO_ORIGINS.to_owned(),
        }
    }
}

impl Relay {
    /// The relay of `config`, with every configured host resolved now (before the loop).
    pub fn new(config: &Config) -> Self {
        let settings = RelaySettings::from_config(&config.relay);
        let pushes_configured = push_urls(config);
        let mut addresses = HashMap::new();
        let push_endpoints: Vec<Endpoint> = pushes_configured
            .iter()
            .filter_map(|(_, to)| to.endpoint().cloned())
            .collect();
        let endpoints = settings
            .origins
            .iter()
            .map(|o| o.endpoint().clone())
            .chain(push_endpoints);
        for endpoint in endpoints {
            if let Some(addr) = resolve(&endpoint) {
                addresses.insert(endpoint, addr);
            }
        }
        let mut relay = Self {
            origins: settings.origins(),
            settings,
            pushes_configured,
            pulls: HashMap::new(),
            pushes: HashMap::new(),
            addresses,
            tls_client: None,
            cluster: None,
            locating: HashMap::new(),
        };
        relay.load_tls_client(&config.rtmps.ca_file);
        relay
    }

    /// Pulls look streams up in the cluster directory first, and, when `registers`, streams
    /// published here take a lease in it.
    pub fn join_cluster(
        &mut self,
        requests: mpsc::Sender<cluster::Request>,
        registers: bool,
        nodes: cluster::SharedNodes,
    ) {
        self.cluster = Some(ClusterLink {
            requests,
            registers,
            nodes,
        });
    }

    /// Where a new player goes while this edge is busy (`cluster.redirect_when_busy`).
    pub(super) fn busy_redirect(&self) -> Option<cluster::Redirect> {
        self.cluster.as_ref()?.nodes.redirect()
    }

    /// The origins a push of `key` to the origins tries, best first: the cluster's live
    /// origins least loaded first, then the others known here in the stream's rendezvous
    /// order.
    fn origin_candidates(&self, key: &StreamKey) -> Vec<OriginUrl> {
        let mut candidates: Vec<OriginUrl> = self
            .cluster
            .iter()
            .flat_map(|link| link.nodes.ranked())
            .filter_map(|url| OriginUrl::parse(&url).ok())
            .collect();
        let (app, name) = app_and_name(key);
        let urls = self.origins.urls();
        for i in crate::relay::rendezvous_order(&crate::relay::stream_key(app, name), urls) {
            if !candidates.contains(&urls[i]) {
                candidates.push(urls[i].clone());
            }
        }
        candidates
    }

    /// Sends the lease `request` when this server takes leases (an origin in a cluster).
    pub(super) fn lease(&self, request: impl FnOnce() -> cluster::Request) {
        if let Some(link) = self.cluster.as_ref().filter(|l| l.registers) {
            // The directory thread ends only after the workers: a send cannot fail before.
            let _ = link.requests.send(request());
        }
    }

    /// Asks the directory which origin has `key` (answered over the bus); false without one.
    fn look_up(&self, key: &StreamKey, worker: usize) -> bool {
        let Some(link) = &self.cluster else {
            return false;
        };
        let request = cluster::Request::Lookup {
            worker,
            key: key.clone(),
        };
        link.requests.send(request).is_ok()
    }

    /// (Re)reads the CA certificates `rtmps://` upstreams are verified against (`ca_file`,
    /// else the built-in roots); upstreams opened from then on use them. On an error the
    /// ones loaded before stay (none at start: rtmps:// upstreams then fail to open).
    pub fn load_tls_client(&mut self, ca_file: &str) {
        match crate::net::tls::client_config(ca_file) {
            Ok(tls) => self.tls_client = Some(tls),
            Err(error) => {
                tracing::error!(%error, "rtmps.ca_file not loaded: rtmps:// upstreams keep the CAs loaded before, if any");
            }
        }
    }

    /// The endpoints of the push URLs configured (resolved at start and on reload).
    fn push_endpoints(&self) -> Vec<Endpoint> {
        let to = self.pushes_configured.iter();
        to.filter_map(|(_, to)| to.endpoint().cloned()).collect()
    }

    /// Each configured origin and whether it is up (not in backoff) at `now`.
    pub fn origins_health(&self, now: Instant) -> Vec<(String, bool)> {
        let urls = self.origins.urls().iter().enumerate();
        urls.map(|(i, url)| (url.to_string(), self.origins.health(i).is_up(now)))
            .collect()
    }

    /// Each configured push target (`endpoint/app`, or `origins`) and how many streams
    /// publish to it now.
    pub fn pushes_health(&self) -> Vec<(String, u64)> {
        let mut targets: Vec<(String, u64)> = Vec::new();
        for (_, to) in &self.pushes_configured {
            let name = to.name();
            if !targets.iter().any(|(n, _)| *n == name) {
                targets.push((name, 0));
            }
        }
        for slot in self.pushes.values().flat_map(|e| &e.targets) {
            if let PushState::Publishing { .. } = slot.push.state() {
                let name = slot.push.target();
                if let Some((_, n)) = targets.iter_mut().find(|(t, _)| t == name) {
                    *n += 1;
                }
            }
        }
        targets
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

/// `[[relay.push]]` as (app pattern, target) pairs (validated: every URL parses).
fn push_urls(config: &Config) -> Vec<(String, PushTo)> {
    let to = |url: &str| match url {
        PUSH_TO_ORIGINS => Some(PushTo::Origins),
        _ => PushUrl::parse(url).ok().map(PushTo::Url),
    };
    config
        .relay
        .push
        .iter()
        .filter_map(|p| Some((p.app.clone(), to(&p.url)?)))
        .collect()
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
    /// In a cluster the directory is asked first; the pull starts with its answer.
    pub(super) fn start_pull(&mut self, key: StreamKey, for_packaging: bool, now: Instant) {
        if self.relay.pulls.contains_key(&key) || self.relay.locating.contains_key(&key) {
            return;
        }
        if self.relay.look_up(&key, self.index) {
            self.relay.locating.insert(key, for_packaging);
            return;
        }
        self.begin_pull(key, for_packaging, None, now);
    }

    /// Starts `key`'s pull, from `preferred` first (the origin the directory named).
    fn begin_pull(
        &mut self,
        key: StreamKey,
        for_packaging: bool,
        preferred: Option<usize>,
        now: Instant,
    ) {
        let (app, name) = app_and_name(&key);
        let players = self.pull_audience(&key) + usize::from(for_packaging);
        let timeouts = self.relay.settings.pull_timeouts();
        let origins = &self.relay.origins;
        let pull = Pull::new(app, name, players, timeouts, origins, preferred, now);
        if pull.is_closed() {
            // Whoever wanted it left in the same wake-up (a push target's connection closed
            // with its publisher): the hub's claim is released below.
            tracing::debug!(stream = %key, "no pull: no players left");
        } else {
            tracing::info!(stream = %key, players, "pulling from an origin");
            crate::admin::WorkerStats::add(&self.stats.pulls_started, 1);
        }
        let entry = PullEntry {
            pull,
            upstream: None,
            standby: None,
            looked_up: Some(now),
        };
        self.relay.pulls.insert(key.clone(), entry);
        self.apply_pull(&key, now);
    }

    /// A local publisher took `key` over from its pull.
    pub(super) fn stop_pull(&mut self, key: &StreamKey, now: Instant) {
        self.relay.locating.remove(key);
        if let Some(entry) = self.relay.pulls.remove(key) {
            tracing::info!(stream = %key, "pull stopped: published here");
            let standby = entry.standby.map(|(conn, _)| conn);
            for conn in entry.upstream.into_iter().chain(standby) {
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
                    // Any attempt after the first (a failure, a refusal, a silent origin): the
                    // stream may have moved; ask the directory again.
                    if entry.looked_up.is_some_and(|at| at != now) {
                        entry.looked_up = Some(now);
                        self.relay.look_up(key, self.index);
                    }
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
                    let end = match entry.pull.state() {
                        crate::relay::PullState::Closed => RelayEnd::Idle,
                        _ => RelayEnd::FailedOver,
                    };
                    if end == RelayEnd::FailedOver {
                        crate::admin::WorkerStats::add(&self.stats.relay_failovers, 1);
                    }
                    // A standby goes with it: the pull moves on (or ends) from here.
                    let standby = entry.standby.take().map(|(conn, _)| conn);
                    for conn in entry.upstream.take().into_iter().chain(standby) {
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
        // rtmps://: a TLS client session, its SNI and verified name the URL's host.
        let tls = match (url.endpoint().scheme, &self.relay.tls_client) {
            (crate::relay::Scheme::Rtmp, _) => None,
            (crate::relay::Scheme::Rtmps, None) => {
                tracing::warn!(%url, "cannot open rtmps:// upstream: no usable rtmps.ca_file");
                return None;
            }
            (crate::relay::Scheme::Rtmps, Some(config)) => {
                match crate::net::tls::connect(config, &url.endpoint().host) {
                    Ok(tls) => Some(Box::new(tls)),
                    Err(e) => {
                        tracing::warn!(%url, error = %e, "cannot open rtmps:// upstream");
                        return None;
                    }
                }
            }
        };
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
        // It announces E-RTMP's Reconnect capability (the default): a draining origin or
        // target asks it to reconnect, and it does so make-before-break.
        let mut session = session;
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
        conn.tls = tls;
        self.conns.insert(conn);
        self.pump(key);
        Some(key)
    }

    /// Runs what an upstream connection's session has to say after a read.
    pub(super) fn upstream_events(&mut self, conn: ConnKey, now: Instant) {
        self.pump(conn);
        // The stream and job are the connection's for its life: read once per pass, not
        // per message.
        let Some((stream, job)) = self.conns.get(conn).and_then(|c| match &c.proto {
            Proto::Upstream(up) => Some((up.stream.clone(), up.job.clone())),
            _ => None,
        }) else {
            return;
        };
        while let Some((event, fresh)) = self.conns.get_mut(conn).and_then(|c| {
            let Proto::Upstream(up) = &mut c.proto else {
                return None;
            };
            let event = up.session.poll_event()?;
            let fresh = up.fresh;
            up.fresh = fresh && !matches!(event, ClientEvent::Media { .. });
            Some((event, fresh))
        }) {
            // Media logs nothing and skips the envelope (as for publishers).
            let span = match event {
                ClientEvent::Media { .. } => None,
                _ => self.conns.get(conn).map(|c| c.span.clone()),
            };
            let _envelope = span.as_ref().map(tracing::Span::enter);
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
        let Some(entry) = relay.pulls.get_mut(stream) else {
            return;
        };
        if let Some((standby, origin)) = entry.standby.filter(|(c, _)| *c == conn) {
            match &event {
                ClientEvent::Media { .. } => {
                    // The standby delivers: it is the pull's connection from here on.
                    entry.standby = None;
                    let old = entry.upstream.replace(standby);
                    entry.pull.handed_over(origin, &mut relay.origins, now);
                    tracing::info!(stream = %stream, origin, "pull handed over to a new connection");
                    if let Some(old) = old {
                        self.close(old, CloseReason::Relay(RelayEnd::HandedOver), now);
                    }
                }
                ClientEvent::Status { level, code, .. } if refuses_pull(level, code) => {
                    tracing::info!(stream = %stream, %code, "standby connection refused");
                    entry.standby = None;
                    self.close(conn, CloseReason::Relay(RelayEnd::FailedOver), now);
                    return;
                }
                _ => return,
            }
        }
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
                crate::admin::WorkerStats::add(&self.stats.media_in, 1);
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
            ClientEvent::Status {
                level,
                code,
                redirect: Some(target),
                ..
            } if code == "NetConnection.Connect.Rejected" => {
                tracing::info!(%level, %code, %target, "origin redirects the pull");
                entry.pull.redirect(&target, &mut relay.origins, now);
            }
            ClientEvent::Status { level, code, .. } => {
                tracing::debug!(%level, %code, "origin status");
                if refuses_pull(&level, &code) {
                    tracing::info!(%code, "origin refused the pull");
                    entry
                        .pull
                        .failed(FailureKind::Refused, &mut relay.origins, now);
                }
            }
            ClientEvent::ReconnectRequest { tc_url, .. } => {
                if entry.standby.is_some() {
                    return;
                }
                let standby = entry
                    .pull
                    .reconnect(tc_url.as_deref(), &mut relay.origins, now);
                tracing::info!(?tc_url, standby = ?standby.as_ref().map(|(_, u)| u.to_string()),
                    "origin asks the pull to reconnect");
                if let Some((origin, url)) = standby {
                    self.open_standby(stream, origin, &url, now);
                }
            }
            ClientEvent::StreamEof { .. }
            | ClientEvent::StreamBegin { .. }
            | ClientEvent::Publishing { .. } => return,
        }
        self.apply_pull(stream, now);
    }

    /// Opens `stream`'s standby connection to `url` (origin `origin`), unless one is open.
    fn open_standby(&mut self, stream: &StreamKey, origin: usize, url: &StreamUrl, now: Instant) {
        if self
            .relay
            .pulls
            .get(stream)
            .map_or(true, |e| e.standby.is_some())
        {
            return;
        }
        tracing::info!(stream = %stream, %url, origin, "pull: opening a standby connection");
        if let Some(conn) = self.open_upstream(url, stream.clone(), Job::Pull, now) {
            if let Some(entry) = self.relay.pulls.get_mut(stream) {
                entry.standby = Some((conn, origin));
            }
        }
    }

    /// `stream`'s pull failed on its current upstream for `kind`. In a cluster the directory
    /// is asked again: the stream may have moved to another origin.
    fn pull_failed(&mut self, stream: &StreamKey, kind: FailureKind, now: Instant) {
        let relay = &mut self.relay;
        if let Some(entry) = relay.pulls.get_mut(stream) {
            entry.pull.failed(kind, &mut relay.origins, now);
        }
        self.apply_pull(stream, now);
    }

    /// A note from the cluster directory thread.
    pub(super) fn cluster_note(&mut self, note: cluster::Note, now: Instant) {
        match note {
            cluster::Note::Located { key, origin } => self.located(key, origin, now),
            cluster::Note::Lease(event) => {
                let (key, publisher, holder, why) = match event {
                    cluster::LeaseEvent::Refused {
                        key,
                        publisher,
                        holder,
                        ..
                    } => (key, publisher, holder, ClusterEnd::PublishedElsewhere),
                    cluster::LeaseEvent::Lost {
                        key,
                        publisher,
                        holder,
                        ..
                    } => (key, publisher, holder, ClusterEnd::TakenOverElsewhere),
                };
                // Only the publisher the lease was for: a newer one has its own lease.
                if self.hub.publisher(&key) != Some(publisher) {
                    return;
                }
                tracing::warn!(stream = %key, origin = %holder, "{why}: closing the publisher here");
                self.close(publisher, CloseReason::Cluster(why), now);
            }
        }
    }

    /// The directory's answer for `key`: the origin's advertised URL, or none (unknown, or
    /// the directory unreachable: the rendezvous order decides).
    fn located(&mut self, key: StreamKey, origin: Option<String>, now: Instant) {
        let index = origin.and_then(|url| match OriginUrl::parse(&url) {
            Ok(url) => self.relay.origins.learn(url),
            Err(error) => {
                tracing::warn!(stream = %key, %url, %error, "directory names an unusable origin");
                None
            }
        });
        if let Some(for_packaging) = self.relay.locating.remove(&key) {
            tracing::debug!(stream = %key, ?index, "directory answered: pulling");
            self.begin_pull(key, for_packaging, index, now);
            return;
        }
        // Asked again after a failure: a pull waiting for a backoff moves at once.
        if let (Some(index), Some(entry)) = (index, self.relay.pulls.get_mut(&key)) {
            entry.pull.prefer(index, &self.relay.origins, now);
            self.apply_pull(&key, now);
        }
    }

    /// An upstream connection closed: if it was not the relay's doing (it forgets its
    /// connections before closing them), its pull or push failed.
    pub(super) fn upstream_closed(&mut self, conn: ConnKey, up: &Upstream, now: Instant) {
        match up.job {
            Job::Pull => {
                let relay = &mut self.relay;
                let Some(entry) = relay.pulls.get_mut(&up.stream) else {
                    return;
                };
                if entry.standby.is_some_and(|(c, _)| c == conn) {
                    entry.standby = None; // the current connection goes on
                    return;
                }
                if entry.upstream != Some(conn) {
                    return;
                }
                entry.upstream = None;
                if let Some((standby, origin)) = entry.standby.take() {
                    // Already connecting elsewhere (a drain): it takes over now.
                    entry.upstream = Some(standby);
                    entry.pull.handed_over(origin, &mut relay.origins, now);
                    tracing::info!(stream = %up.stream, origin,
                        "pull connection lost: its standby takes over");
                    return;
                }
                let kind = if up.session.is_connected() {
                    FailureKind::Stall
                } else {
                    FailureKind::ConnectFailed
                };
                self.pull_failed(&up.stream, kind, now);
            }
            Job::Push { target } => {
                let Some(slot) = self.slot(&up.stream, target) else {
                    return;
                };
                if slot.standby == Some(conn) {
                    slot.standby = None; // the current connection goes on
                    return;
                }
                if slot.conn != Some(conn) {
                    return;
                }
                slot.conn = slot.standby.take();
                if slot.conn.is_some() {
                    // Already connecting elsewhere (a drain): it takes over now.
                    return;
                }
                let kind = if up.session.stream_id().is_some() {
                    FailureKind::Stall
                } else {
                    FailureKind::ConnectFailed
                };
                tracing::info!(url = %slot.push.url(), ?kind, "push target lost");
                slot.push.failed(kind, now);
                self.apply_push(&up.stream, target, now);
            }
        }
    }

    /// Push target `target` of `key`, if it is still there.
    fn slot(&mut self, key: &StreamKey, target: usize) -> Option<&mut Slot> {
        self.relay.pushes.get_mut(key)?.targets.get_mut(target)
    }

    /// The push targets `[[relay.push]]` gives `key` (by URL, in configuration order).
    fn push_targets_for(&self, key: &StreamKey) -> Vec<PushTarget> {
        let (app, name) = app_and_name(key);
        let backoff = self.relay.settings.backoff;
        let timeout = self.relay.settings.origin_timeout;
        self.relay
            .pushes_configured
            .iter()
            .filter(|(pattern, _)| app_matches(pattern, app))
            .filter_map(|(_, to)| match to {
                PushTo::Url(url) => Some(PushTarget::new(url, name, backoff, timeout)),
                PushTo::Origins => {
                    let urls: Vec<StreamUrl> = self
                        .relay
                        .origin_candidates(key)
                        .iter()
                        .map(|o| o.pull_url(app, name))
                        .collect();
                    if urls.is_empty() {
                        tracing::warn!(stream = %key, "push to the origins: no origin known");
                        return None;
                    }
                    Some(PushTarget::to_any(to.name(), urls, backoff, timeout))
                }
            })
            .collect()
    }

    /// `key` was published here: start its push targets.
    pub(super) fn start_pushes(&mut self, key: &StreamKey, now: Instant) {
        if let Some(old) = self.relay.pushes.remove(key) {
            self.disconnect_pushes(old, RelayEnd::PushStopped, now);
        }
        let targets = self.push_targets_for(key);
        self.set_pushes(key, targets, now);
    }

    /// Makes `targets` `key`'s push targets: one already pushing to the same URL goes on
    /// (its connection keeps its place), the others stop; new ones start.
    fn set_pushes(&mut self, key: &StreamKey, targets: Vec<PushTarget>, now: Instant) {
        let mut old = self
            .relay
            .pushes
            .remove(key)
            .map(|e| e.targets)
            .unwrap_or_default();
        let mut slots = Vec::with_capacity(targets.len());
        let mut started = Vec::new();
        for push in targets {
            match old.iter().position(|s| s.push.target() == push.target()) {
                Some(at) => {
                    let slot = old.remove(at);
                    let index = slots.len();
                    for conn in slot.conn.iter().chain(&slot.standby) {
                        if let Some(Proto::Upstream(up)) =
                            self.conns.get_mut(*conn).map(|c| &mut c.proto)
                        {
                            up.job = Job::Push { target: index };
                        }
                    }
                    slots.push(slot);
                }
                None => {
                    started.push(slots.len());
                    slots.push(Slot {
                        push,
                        conn: None,
                        standby: None,
                    });
                }
            }
        }
        self.disconnect_pushes(PushEntry { targets: old }, RelayEnd::PushRemoved, now);
        if slots.is_empty() {
            return;
        }
        self.relay
            .pushes
            .insert(key.clone(), PushEntry { targets: slots });
        for target in started {
            if let Some(slot) = self.slot(key, target) {
                tracing::info!(stream = %key, url = %slot.push.url(), "pushing");
                slot.push.start(now);
                crate::admin::WorkerStats::add(&self.stats.pushes_started, 1);
            }
            self.apply_push(key, target, now);
        }
    }

    /// `key`'s publisher left: its pushes stop.
    pub(super) fn stop_pushes(&mut self, key: &StreamKey, now: Instant) {
        if let Some(entry) = self.relay.pushes.remove(key) {
            self.disconnect_pushes(entry, RelayEnd::PushStopped, now);
        }
    }

    fn disconnect_pushes(&mut self, entry: PushEntry, why: RelayEnd, now: Instant) {
        for slot in entry.targets {
            for conn in slot.conn.into_iter().chain(slot.standby) {
                self.close(conn, CloseReason::Relay(why), now);
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
        let Some(slot) = self.slot(stream, target) else {
            return;
        };
        let standby = slot.standby == Some(conn);
        if !standby && slot.conn != Some(conn) {
            return;
        }
        match event {
            ClientEvent::Publishing { stream_id } => {
                let mut old = None;
                if standby {
                    // The standby publishes: it replaces the current connection.
                    slot.standby = None;
                    old = slot.conn.replace(conn);
                    tracing::info!(url = %slot.push.url(), "push handed over to a new connection");
                } else {
                    slot.push.publishing(now);
                    tracing::info!(url = %slot.push.url(), "push target publishing");
                }
                if let Some(old) = old {
                    self.close(old, CloseReason::Relay(RelayEnd::HandedOver), now);
                }
                // The target is a player of the stream from here on (fast start, then each
                // packet, through its own bounded queue).
                let (hub, mut door) = self.door(now);
                hub.attach(conn, stream_id, stream.clone(), None, &mut door);
                self.apply_hub(now);
            }
            ClientEvent::Status { level, code, .. } if level == "error" => {
                tracing::info!(url = %slot.push.url(), %code, "push target refused");
                if standby {
                    slot.standby = None;
                    self.close(conn, CloseReason::Relay(RelayEnd::FailedOver), now);
                } else {
                    slot.push.failed(FailureKind::Refused, now);
                    self.apply_push(stream, target, now);
                }
            }
            ClientEvent::ReconnectRequest { tc_url, .. } if !standby && slot.standby.is_none() => {
                let url = match tc_url.as_deref().map(|t| slot.push.url().redirected(t)) {
                    Some(Ok(url)) => url,
                    _ => slot.push.url().clone(),
                };
                tracing::info!(?tc_url, %url, "push target asks to reconnect: opening a standby");
                let opened = self.open_upstream(&url, stream.clone(), Job::Push { target }, now);
                if let Some(slot) = self.slot(stream, target) {
                    slot.standby = opened;
                }
            }
            _ => {}
        }
    }

    fn apply_push(&mut self, key: &StreamKey, target: usize, now: Instant) {
        loop {
            let Some(slot) = self.slot(key, target) else {
                return;
            };
            let Some(action) = slot.push.poll_action() else {
                return;
            };
            match action {
                PushAction::Connect { url } => {
                    let opened = self.open_upstream(&url, key.clone(), Job::Push { target }, now);
                    let Some(slot) = self.slot(key, target) else {
                        return;
                    };
                    match opened {
                        Some(conn) => slot.conn = Some(conn),
                        None => slot.push.failed(FailureKind::ConnectFailed, now),
                    }
                }
                PushAction::Disconnect => {
                    let conns: Vec<ConnKey> = slot
                        .conn
                        .take()
                        .into_iter()
                        .chain(slot.standby.take())
                        .collect();
                    for conn in conns {
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
                // Connected somewhere that delivers nothing yet (an origin holding the play
                // until a publisher comes): ask the directory again, once a second.
                let connecting = matches!(
                    entry.pull.state(),
                    crate::relay::PullState::Connecting { .. }
                );
                if connecting && entry.looked_up.is_some_and(|at| now - at >= LOOKUP_AGAIN) {
                    entry.looked_up = Some(now);
                    relay.look_up(&key, self.index);
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
            if let Some(slot) = self.slot(&key, target) {
                if slot.push.poll_timeout().is_some_and(|at| now >= at) {
                    slot.push.handle_timeout(now);
                }
            }
            self.apply_push(&key, target, now);
        }
    }

    /// A reload changed `[relay]`: origins are swapped in (each kept origin keeps its
    /// health; a pull on a removed one hands over to the next make-before-break), new hosts
    /// are resolved, and every stream published here gets the push targets of the new
    /// `[[relay.push]]` (a target kept by URL goes on untouched).
    pub(super) fn relay_reconfigure(&mut self, now: Instant) {
        let settings = RelaySettings::from_config(&self.config.relay);
        self.relay.pushes_configured = push_urls(&self.config);
        let endpoints: Vec<Endpoint> = settings
            .origins
            .iter()
            .map(|o| o.endpoint().clone())
            .chain(self.relay.push_endpoints())
            .collect();
        for endpoint in endpoints {
            let _ = self.relay.address(&endpoint);
        }
        let remap = self.relay.origins.reconfigure(settings.origins.clone());
        self.relay.settings = settings;
        let keys: Vec<StreamKey> = self.relay.pulls.keys().cloned().collect();
        for key in keys {
            let relay = &mut self.relay;
            let standby = relay
                .pulls
                .get_mut(&key)
                .and_then(|e| e.pull.reconfigured(&remap, &mut relay.origins, now));
            if let Some((origin, url)) = standby {
                self.open_standby(&key, origin, &url, now);
            }
            self.apply_pull(&key, now);
        }
        let published: Vec<StreamKey> = self.hub.published_here().cloned().collect();
        for key in published {
            let targets = self.push_targets_for(&key);
            self.set_pushes(&key, targets, now);
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
