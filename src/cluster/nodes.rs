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
}

impl NodeLoad {
    /// Orders origins for placement: the busier loop last, then more connections.
    fn rank(&self) -> (u64, u64) {
        // Busy time in 1 % steps, so equal idle origins are ordered by their connections.
        let busy = (self.busy * 100.0).round().clamp(0.0, 100.0) as u64;
        (busy, self.connections)
    }
}

/// The live origins and their loads, least loaded first; written by the directory thread,
/// read by workers when a push to the origins starts.
#[derive(Debug, Default)]
pub struct Nodes(Mutex<Vec<(String, NodeLoad)>>);

impl Nodes {
    /// The advertised URLs of the live origins, least loaded first.
    pub fn ranked(&self) -> Vec<String> {
        let nodes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        nodes.iter().map(|(url, _)| url.clone()).collect()
    }

    /// Replaces the list with `nodes` (any order).
    pub fn set(&self, mut nodes: Vec<(String, NodeLoad)>) {
        nodes.sort_by(|a, b| a.1.rank().cmp(&b.1.rank()).then_with(|| a.0.cmp(&b.0)));
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = nodes;
    }
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
        }
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
