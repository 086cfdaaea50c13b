//! The cluster's stream directory: which origin has which live stream, kept in Redis
//! (`[cluster] directory = "redis"`) so that every edge pulls a stream from the origin that
//! has it, and two origins do not both take the same stream.
//!
//! # Pieces
//!
//! - [`Leases`] (sans-IO, over any [`Store`]): an origin's lease per stream published on it
//!   (`rtmp-edge:stream:{app}/{stream} -> its advertised URL`, set only if absent or already
//!   its own, with an expiry, renewed while the stream lives, deleted when it ends); what a
//!   stream held elsewhere means ([`LeaseEvent`]).
//! - [`RedisStore`]: the [`Store`] on a Redis server, with timeouts, failing fast while the
//!   server is unreachable.
//! - Node load ([`NodeLoad`], [`Nodes`]): each origin writes its load (connections, loop
//!   busy time, bytes out per second) with an expiry every `renew_ms`; every server reads
//!   the live origins back, least loaded first, for pushes to the origins.
//! - [`Directory`]: the control thread that owns the store. Workers send it [`Request`]s and
//!   never wait: answers and events come back as [`Note`]s through the bus. So an outage or
//!   a slow Redis never stalls a worker loop; lookups then answer "unknown" at once and the
//!   edge pulls by rendezvous hashing, and streams already flowing are not touched.

mod leases;
mod nodes;
mod redis_store;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use leases::{LeaseEvent, Leases, Store, StoreError, RETRY};
pub use nodes::{
    redirect_target, BusyAt, NodeLoad, Nodes, OwnLoad, Redirect, SharedNodes, EDGES_KEY, NODES_KEY,
    NODE_PREFIX,
};
pub use redis_store::RedisStore;

use crate::config::{Config, DirectoryKind, NodeRole};
use crate::fanout::StreamKey;

/// The prefix of every stream key in the directory.
pub const KEY_PREFIX: &str = "rtmp-edge:stream:";

/// `url` with any password replaced, for logs and errors.
pub fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// From a worker to the directory thread.
#[derive(Debug)]
pub enum Request {
    /// `key` was published on `worker` by `publisher`: hold its lease (origins only).
    Publish {
        worker: usize,
        publisher: crate::fanout::ConnKey,
        key: StreamKey,
    },
    /// `key`'s publisher on `worker` left: release its lease.
    Unpublish { worker: usize, key: StreamKey },
    /// Which origin has `key`? Answered to `worker` with [`Note::Located`].
    Lookup { worker: usize, key: StreamKey },
}

/// From the directory thread to a worker (over the bus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The answer to a lookup: the origin's advertised URL, or `None` (not in the
    /// directory, or the directory unreachable).
    Located {
        key: StreamKey,
        origin: Option<String>,
    },
    /// A lease was refused or lost: the stream's publisher here must go.
    Lease(LeaseEvent),
}

/// Hands a note to worker `usize` (the server sends it over the bus).
pub type Deliver = Box<dyn Fn(usize, Note) + Send>;

/// The directory's counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct DirectoryStats {
    /// The last call to the store reached it.
    pub up: AtomicBool,
    /// Leases held (or wanted while the store is away).
    pub leases: AtomicUsize,
    /// Lookups that named an origin.
    pub found: AtomicU64,
    /// Lookups of a stream not in the directory.
    pub missing: AtomicU64,
    /// Lookups that failed (the store unreachable or erring).
    pub failed: AtomicU64,
    /// Publishes refused because another origin held the stream.
    pub refused: AtomicU64,
    /// Leases lost to another origin.
    pub lost: AtomicU64,
}

/// The directory thread's handle: send requests, then [`stop`](Self::stop) it.
pub struct Directory {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<DirectoryStats>,
    nodes: SharedNodes,
    /// This server takes leases.
    pub registers: bool,
}

impl Directory {
    /// Starts the directory thread for `config` when `cluster.directory = "redis"`; `None`
    /// for the static directory.
    /// `workers`: the workers' counters, for this origin's load.
    pub fn start(
        config: &Config,
        workers: crate::admin::metrics::Registry,
        deliver: Deliver,
        dispatch: Option<tracing::Dispatch>,
    ) -> std::io::Result<Option<Self>> {
        let cluster = &config.cluster;
        if cluster.directory != DirectoryKind::Redis {
            return Ok(None);
        }
        let store = RedisStore::new(
            &cluster.redis_url,
            Duration::from_millis(cluster.redis_timeout_ms),
        )
        .map_err(|e| std::io::Error::other(format!("cluster.redis_url: {e}")))?;
        let leases = Leases::new(
            KEY_PREFIX,
            &cluster.advertise,
            Duration::from_millis(cluster.lease_ms),
            Duration::from_millis(cluster.renew_ms),
            config.streams.publish_takeover,
        );
        let stats = Arc::new(DirectoryStats::default());
        let nodes = SharedNodes::default();
        let (tx, rx) = mpsc::channel();
        let url = redacted_url(&cluster.redis_url);
        let registers = cluster.role == NodeRole::Origin && !cluster.advertise.is_empty();
        let advertised = (!cluster.advertise.is_empty()).then(|| Advertised {
            set: match cluster.role {
                NodeRole::Origin => NODES_KEY,
                NodeRole::Edge => EDGES_KEY,
            },
            url: cluster.advertise.clone(),
            http: cluster.advertise_http.clone(),
        });
        let busy = cluster.redirect_when_busy.then_some(BusyAt {
            percent: cluster.busy_percent,
            connections: cluster.busy_connections,
        });
        let control = Control {
            store,
            leases,
            stats: stats.clone(),
            deliver,
            up: None,
            own: OwnLoad::new(workers),
            advertised,
            busy,
            busy_state: (false, None),
            nodes: nodes.clone(),
            lease: Duration::from_millis(cluster.lease_ms),
            beat_every: Duration::from_millis(cluster.renew_ms),
            next_beat: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("directory".into())
            .spawn(move || {
                let run = move || {
                    tracing::info!(redis = %url, "stream directory in Redis");
                    control.run(rx);
                };
                match dispatch {
                    Some(dispatch) => tracing::dispatcher::with_default(&dispatch, run),
                    None => run(),
                }
            })?;
        Ok(Some(Self {
            requests: Some(tx),
            thread: Some(thread),
            stats,
            nodes,
            registers,
        }))
    }

    /// A sender for one worker.
    pub fn sender(&self) -> mpsc::Sender<Request> {
        self.requests.clone().expect("directory running")
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<DirectoryStats> {
        self.stats.clone()
    }

    /// The live origins, least loaded first (refreshed every `renew_ms`).
    pub fn nodes(&self) -> SharedNodes {
        self.nodes.clone()
    }

    /// Releases the leases held (best effort) and ends the thread once every worker's
    /// sender is gone.
    pub fn stop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        self.stop();
    }
}

/// This server as the directory lists it.
struct Advertised {
    /// The set it is listed in (origins or edges).
    set: &'static str,
    url: String,
    http: String,
}

/// The directory thread's state.
struct Control {
    store: RedisStore,
    leases: Leases,
    stats: Arc<DirectoryStats>,
    deliver: Deliver,
    /// Whether the store was reachable at the last call (`None`: not yet asked).
    up: Option<bool>,
    /// This server's load, measured every beat.
    own: OwnLoad,
    /// Where this server writes its load (`None`: not advertised).
    advertised: Option<Advertised>,
    /// When this edge redirects new players (`cluster.redirect_when_busy`).
    busy: Option<BusyAt>,
    /// Whether it was busy at the last measure, and where players went.
    busy_state: (bool, Option<Redirect>),
    nodes: SharedNodes,
    lease: Duration,
    beat_every: Duration,
    next_beat: Instant,
}

impl Control {
    fn run(mut self, requests: mpsc::Receiver<Request>) {
        loop {
            let next = self
                .leases
                .next_tick()
                .map_or(self.next_beat, |at| at.min(self.next_beat));
            let wait = next.saturating_duration_since(Instant::now());
            match requests.recv_timeout(wait) {
                Ok(request) => self.on_request(request),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            let (events, error) = self.leases.tick(&mut self.store, Instant::now());
            self.observe(error.as_ref());
            for event in events {
                self.lease_event(event);
            }
            self.stats
                .leases
                .store(self.leases.len(), Ordering::Relaxed);
            if Instant::now() >= self.next_beat {
                self.beat();
            }
        }
        self.leases.release_all(&mut self.store);
    }

    /// Writes this server's load (when advertised), reads the live origins' back, and, on a
    /// busy-redirecting edge, decides where new players go.
    fn beat(&mut self) {
        let now = Instant::now();
        self.next_beat = now + self.beat_every;
        let mut own = self.own.sample(now);
        if let Err(error) = self.beat_store(&mut own) {
            self.observe(Some(&error));
            // Loads unknown: pushes to the origins fall back to the rendezvous order, and
            // players are served here.
            self.nodes.set(Vec::new());
            let busy = self.busy_state.0;
            self.set_redirect(busy, None);
            return;
        }
        self.observe(None);
    }

    fn beat_store(&mut self, own: &mut NodeLoad) -> Result<(), StoreError> {
        if let Some(me) = &self.advertised {
            own.http.clone_from(&me.http);
            let load = serde_json::to_string(&own).unwrap_or_default();
            let node_key = format!("{NODE_PREFIX}{}", me.url);
            self.store
                .beat(me.set, &node_key, &me.url, &load, self.lease)?;
        }
        let parse = |nodes: Vec<(String, String)>| -> Vec<(String, NodeLoad)> {
            nodes
                .into_iter()
                .filter_map(|(url, load)| Some((url, serde_json::from_str(&load).ok()?)))
                .collect()
        };
        let origins = self.store.nodes(NODES_KEY, NODE_PREFIX)?;
        self.nodes.set(parse(origins));
        if let Some(busy) = self.busy {
            let edges = parse(self.store.nodes(EDGES_KEY, NODE_PREFIX)?);
            let me = self.advertised.as_ref().map_or("", |a| a.url.as_str());
            let target = redirect_target(me, own, edges, busy);
            self.set_redirect(busy.is_busy(own), target);
        }
        Ok(())
    }

    /// Sets where new players go, logging the changes: busy or not, and where to.
    fn set_redirect(&mut self, busy: bool, redirect: Option<Redirect>) {
        let state = (busy, redirect);
        if self.busy_state == state {
            return;
        }
        match &state {
            (true, Some(to)) => {
                tracing::warn!(to = %to.rtmp, http = %to.http, "busy: new players are redirected")
            }
            (true, None) => {
                tracing::warn!(
                    "busy, but no other edge is live and not busy: new players are served here"
                )
            }
            (false, _) => tracing::info!("not busy: new players are served here"),
        }
        self.nodes.set_redirect(state.1.clone());
        self.busy_state = state;
    }

    fn on_request(&mut self, request: Request) {
        let now = Instant::now();
        match request {
            Request::Publish {
                worker,
                publisher,
                key,
            } => {
                match self
                    .leases
                    .publish(&mut self.store, worker, publisher, key, now)
                {
                    Ok(Some(event)) => {
                        self.observe(None);
                        self.lease_event(event);
                    }
                    Ok(None) => self.observe(None),
                    Err(error) => self.observe(Some(&error)),
                }
            }
            Request::Unpublish { worker, key } => {
                let result = self.leases.unpublish(&mut self.store, worker, &key);
                self.observe(result.as_ref().err());
            }
            Request::Lookup { worker, key } => {
                let skey = self.leases.store_key(&key);
                let origin = match self.store.get(&skey) {
                    Ok(origin) => {
                        self.observe(None);
                        let counter = match origin {
                            Some(_) => &self.stats.found,
                            None => &self.stats.missing,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        origin
                    }
                    Err(error) => {
                        self.observe(Some(&error));
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                };
                tracing::debug!(stream = %key, ?origin, "directory lookup");
                (self.deliver)(worker, Note::Located { key, origin });
            }
        }
    }

    fn lease_event(&self, event: LeaseEvent) {
        let (worker, counter) = match &event {
            LeaseEvent::Refused { worker, .. } => (*worker, &self.stats.refused),
            LeaseEvent::Lost { worker, .. } => (*worker, &self.stats.lost),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        (self.deliver)(worker, Note::Lease(event));
    }

    /// Logs the store going away and coming back (once each, not per call).
    fn observe(&mut self, error: Option<&StoreError>) {
        let up = error.is_none() && self.store.is_up();
        if self.up == Some(up) {
            return;
        }
        self.up = Some(up);
        self.stats.up.store(up, Ordering::Relaxed);
        match error {
            None => tracing::info!("directory reachable"),
            Some(error) => tracing::warn!(
                %error,
                "directory unreachable: edges pull by rendezvous hashing, flowing streams carry on, leases are retried every second"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redacted_url("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(redacted_url("redis://127.0.0.1"), "redis://127.0.0.1");
    }
}
