//! Node load in the directory: every origin (a server with `cluster.advertise`) writes its
//! load under `rtmp-edge:node:{advertise}` every `renew_ms`, expiring after `lease_ms`, and
//! adds itself to the set `rtmp-edge:nodes`; every server in the cluster reads them back at
//! the same pace, so an ingest edge pushes a new stream to the least-loaded live origin.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::admin::metrics::Registry;

/// The set of advertised origins.
pub const NODES_KEY: &str = "rtmp-edge:nodes";
/// The set of advertised edges (redirect targets).
pub const EDGES_KEY: &str = "rtmp-edge:edges";
/// The prefix of each origin's load key.
pub const NODE_PREFIX: &str = "rtmp-edge:node:";

/// One origin's load as it last wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Connections open on all its workers.
    pub connections: u64,
    /// Share of its workers' time spent handling events since its last write (0 to 1).
    pub busy: f64,
    /// Bytes sent per second since its last write.
    pub bytes_out_per_s: u64,
    /// An edge's HTTP address for players (`cluster.advertise_http`; empty for origins).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub http: String,
}

/// When an edge counts as busy (`cluster.busy_percent`, `cluster.busy_connections`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BusyAt {
    pub percent: u64,
    /// 0: connections not counted.
    pub connections: u64,
}

impl BusyAt {
    pub fn is_busy(&self, load: &NodeLoad) -> bool {
        load.busy * 100.0 >= self.percent as f64
            || (self.connections > 0 && load.connections >= self.connections)
    }
}

/// Where a busy edge sends new players: another edge's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// `rtmp://host:port` (the app and stream are the player's).
    pub rtmp: String,
    /// `http://host:port`, or empty (HTTP players are then served here).
    pub http: String,
}

impl NodeLoad {
    /// Orders origins for placement: the busier loop last, then more connections.
    fn rank(&self) -> (u64, u64) {
        // Busy time in 1 % steps, so equal idle origins are ordered by their connections.
        let busy = (self.busy * 100.0).round().clamp(0.0, 100.0) as u64;
        (busy, self.connections)
    }
}

/// The live origins and their loads, least loaded first, and where this edge sends new
/// players while it is busy; written by the directory thread every `renew_ms`, read by
/// workers when a push to the origins starts and when a player arrives.
#[derive(Debug, Default)]
pub struct Nodes {
    origins: Mutex<Vec<(String, NodeLoad)>>,
    redirect: Mutex<Option<Redirect>>,
}

impl Nodes {
    /// The advertised URLs of the live origins, least loaded first.
    pub fn ranked(&self) -> Vec<String> {
        let nodes = self.origins.lock().unwrap_or_else(|e| e.into_inner());
        nodes.iter().map(|(url, _)| url.clone()).collect()
    }

    /// Replaces the origins with `nodes` (any order).
    pub fn set(&self, nodes: Vec<(String, NodeLoad)>) {
        *self.origins.lock().unwrap_or_else(|e| e.into_inner()) = rank(nodes);
    }

    /// Where to send a new player now (`None`: serve it here).
    pub fn redirect(&self) -> Option<Redirect> {
        self.redirect
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets where new players go (`None`: served here).
    pub fn set_redirect(&self, redirect: Option<Redirect>) {
        *self.redirect.lock().unwrap_or_else(|e| e.into_inner()) = redirect;
    }
}

/// `nodes` least loaded first (ties by URL).
pub fn rank(mut nodes: Vec<(String, NodeLoad)>) -> Vec<(String, NodeLoad)> {
    nodes.sort_by(|a, b| a.1.rank().cmp(&b.1.rank()).then_with(|| a.0.cmp(&b.0)));
    nodes
}

/// Where a busy edge (`me`) sends new players: the least-loaded live edge other than itself
/// that is not busy; `None` when it is not busy or no such edge exists.
pub fn redirect_target(
    me: &str,
    own: &NodeLoad,
    edges: Vec<(String, NodeLoad)>,
    busy: BusyAt,
) -> Option<Redirect> {
    if !busy.is_busy(own) {
        return None;
    }
    rank(edges)
        .into_iter()
        .find(|(url, load)| url != me && !busy.is_busy(load))
        .map(|(rtmp, load)| Redirect {
            rtmp,
            http: load.http,
        })
}

/// This server's own load, measured between two calls from the workers' counters.
pub struct OwnLoad {
    stats: Registry,
    last: Option<(Instant, u64, u64)>,
}

impl OwnLoad {
    pub fn new(stats: Registry) -> Self {
        Self { stats, last: None }
    }

    /// The load since the last call (busy and rate 0 on the first).
    pub fn sample(&mut self, now: Instant) -> NodeLoad {
        use std::sync::atomic::Ordering::Relaxed;
        let sum = |read: fn(&crate::admin::WorkerStats) -> u64| -> u64 {
            self.stats.iter().map(|s| read(s)).sum()
        };
        let connections = sum(|s| s.open.load(Relaxed));
        let busy_ns = sum(|s| s.busy_ns.load(Relaxed));
        let bytes = sum(|s| s.bytes_out.load(Relaxed));
        let (busy, bytes_out_per_s) = match self.last {
            Some((then, busy_then, bytes_then)) if now > then => {
                let wall = (now - then).as_secs_f64();
                let workers = self.stats.len().max(1) as f64;
                let busy = busy_ns.saturating_sub(busy_then) as f64 / 1e9 / wall / workers;
                let rate = bytes.saturating_sub(bytes_then) as f64 / wall;
                (busy.clamp(0.0, 1.0), rate as u64)
            }
            _ => (0.0, 0),
        };
        self.last = Some((now, busy_ns, bytes));
        NodeLoad {
            connections,
            busy,
            bytes_out_per_s,
            http: String::new(),
        }
    }
}

/// Shared between the directory thread and the workers.
pub type SharedNodes = Arc<Nodes>;

#[cfg(test)]
mod tests {
    use super::*;

    fn load(connections: u64, busy: f64) -> NodeLoad {
        NodeLoad {
            connections,
            busy,
            bytes_out_per_s: 0,
            http: String::new(),
        }
    }

    #[test]
    fn a_busy_edge_sends_players_to_the_least_loaded_edge_that_is_not_busy() {
        let busy = BusyAt {
            percent: 80,
            connections: 1000,
        };
        let edges = || {
            vec![
                ("rtmp://me".to_string(), load(1200, 0.1)),
                ("rtmp://hot".to_string(), load(10, 0.95)),
                ("rtmp://full".to_string(), load(1000, 0.2)),
                ("rtmp://ok".to_string(), load(500, 0.3)),
                ("rtmp://better".to_string(), load(100, 0.25)),
            ]
        };
        let target = redirect_target("rtmp://me", &load(1200, 0.1), edges(), busy);
        assert_eq!(target.map(|r| r.rtmp).as_deref(), Some("rtmp://better"));
        // Not busy: players are served here.
        assert_eq!(
            redirect_target("rtmp://me", &load(999, 0.79), edges(), busy),
            None
        );
        // Busy, but every other edge is too: served here.
        let hot = vec![("rtmp://hot".to_string(), load(10, 0.95))];
        assert_eq!(redirect_target("rtmp://me", &load(1, 0.9), hot, busy), None);
    }

    #[test]
    fn origins_are_ranked_by_busy_time_then_connections() {
        let nodes = Nodes::default();
        nodes.set(vec![
            ("rtmp://busy".into(), load(1, 0.60)),
            ("rtmp://crowded".into(), load(900, 0.001)),
            ("rtmp://idle".into(), load(3, 0.002)),
        ]);
        assert_eq!(
            nodes.ranked(),
            ["rtmp://idle", "rtmp://crowded", "rtmp://busy"]
        );
    }

    #[test]
    fn own_load_is_measured_from_the_worker_counters() {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = crate::admin::metrics::registry(2);
        let mut own = OwnLoad::new(stats.clone());
        let t0 = Instant::now();
        assert_eq!(own.sample(t0), load(0, 0.0));
        stats[0].open.store(5, Relaxed);
        stats[1].open.store(2, Relaxed);
        // One worker busy half of one second: a quarter of two workers' time.
        stats[0].busy_ns.store(500_000_000, Relaxed);
        stats[1].bytes_out.store(2_000_000, Relaxed);
        let l = own.sample(t0 + std::time::Duration::from_secs(1));
        assert_eq!((l.connections, l.bytes_out_per_s), (7, 2_000_000));
        assert!((l.busy - 0.25).abs() < 1e-9, "{}", l.busy);
    }
}
