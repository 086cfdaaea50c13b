//! Per-worker counters and their Prometheus text exposition.
//!
//! Each worker owns one [`WorkerStats`] and is its only writer (relaxed atomic adds, no
//! locks); a scrape reads every worker's and renders them side by side with a `worker`
//! label, so it never stops a worker. Labels come only from bounded sets (worker index,
//! close reason kinds).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Why connections closed, as a bounded label set (`CloseReason::kind`).
pub const CLOSE_KINDS: &[&str] = &[
    "peer_closed",
    "io_error",
    "protocol",
    "publisher_refused",
    "hub",
    "http",
    "timeout",
    "slow_player",
    "output_overflow",
    "relay",
    "shutdown",
    "drain",
    "kicked",
    "denied",
    "tls",
    "cluster",
    "other",
];

/// The `(proto, role)` label pairs a connection can have (`Conn::labels`): the bounded set
/// of `rtmp_edge_connections_open_by_proto` and the API's client list.
pub const OPEN_LABELS: &[(&str, &str)] = &[
    ("rtmp", "pending"),
    ("rtmp", "publisher"),
    ("rtmp", "player"),
    ("rtmps", "pending"),
    ("rtmps", "publisher"),
    ("rtmps", "player"),
    ("http-flv", "player"),
    ("hls", "viewer"),
    ("dash", "viewer"),
    ("http", "request"),
    ("relay", "pull"),
    ("relay", "push"),
];

/// Upper bounds (bytes) of the player-queue histogram's buckets (`+Inf` follows).
pub const QUEUE_BUCKETS: [u64; 5] = [16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20];

/// One worker's counters (monotonic unless said otherwise).
#[derive(Debug)]
pub struct WorkerStats {
    pub accepted: AtomicU64,
    /// Refused at accept (connection caps).
    pub refused: AtomicU64,
    /// Gauge: connections in the worker's slab now.
    pub open: AtomicU64,
    /// Closed, by [`CLOSE_KINDS`] index.
    pub closed: Vec<AtomicU64>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Media messages taken from publishers and pulls.
    pub media_in: AtomicU64,
    /// Media messages queued to players (as of the last tick: players gone plus players here).
    pub media_out: AtomicU64,
    /// Frames dropped by the slow-player policy (as of the last tick, like `media_out`).
    pub frames_dropped: AtomicU64,
    /// RTMP connections closed before they published or played, by [`CLOSE_KINDS`] index:
    /// handshake and setup failures.
    pub setup_failed: Vec<AtomicU64>,
    pub bus_sent: AtomicU64,
    /// Media refused by a full mailbox (its worker skips to the next keyframe).
    pub bus_dropped: AtomicU64,
    pub wakeups: AtomicU64,
    /// Time spent handling events, in nanoseconds.
    pub busy_ns: AtomicU64,
    /// io_uring submissions, one per write pass with plain-socket writes (`workers.io = "io_uring"`).
    pub uring_submissions: AtomicU64,
    /// Gauge: streams with an entry on this worker.
    pub streams: AtomicU64,
    /// Gauge: publishers of unwatched streams read by the clock (`workers.unwatched_read_ms`).
    pub publishers_polled: AtomicU64,
    pub pulls_started: AtomicU64,
    pub pushes_started: AtomicU64,
    /// Pull connections given up for the next origin.
    pub relay_failovers: AtomicU64,
    /// Gauge: configured origins up (not in backoff) as this worker sees them.
    pub origins_up: AtomicU64,
    pub auth_allowed: AtomicU64,
    pub auth_denied: AtomicU64,
    /// HLS/DASH requests (playlists, manifests, segments, parts).
    pub hls_requests: AtomicU64,
    /// HLS/DASH parts and segments completed by this worker's packagers.
    pub hls_parts: AtomicU64,
    /// Gauges: connections open by [`OPEN_LABELS`] pair.
    pub open_by: Vec<AtomicU64>,
    /// Each configured origin (URL) and whether it is up (not in backoff), as of the last
    /// tick; a lock taken there and by scrapes only.
    pub origins: Mutex<Vec<(String, bool)>>,
    /// Each configured push target (`endpoint/app`) and the streams publishing to it, as of
    /// the last tick (the same lock discipline).
    pub pushes: Mutex<Vec<(String, u64)>>,
    /// Snapshot at the last tick: players by queued bytes, cumulative per
    /// [`QUEUE_BUCKETS`] bound, then everyone (`+Inf`); and the bytes queued in all.
    pub queue_le: Vec<AtomicU64>,
    pub queue_sum: AtomicU64,
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self {
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            open: AtomicU64::new(0),
            closed: CLOSE_KINDS.iter().map(|_| AtomicU64::new(0)).collect(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            media_in: AtomicU64::new(0),
            media_out: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            setup_failed: CLOSE_KINDS.iter().map(|_| AtomicU64::new(0)).collect(),
            bus_sent: AtomicU64::new(0),
            bus_dropped: AtomicU64::new(0),
            wakeups: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            uring_submissions: AtomicU64::new(0),
            streams: AtomicU64::new(0),
            publishers_polled: AtomicU64::new(0),
            pulls_started: AtomicU64::new(0),
            pushes_started: AtomicU64::new(0),
            relay_failovers: AtomicU64::new(0),
            origins_up: AtomicU64::new(0),
            auth_allowed: AtomicU64::new(0),
            auth_denied: AtomicU64::new(0),
            hls_requests: AtomicU64::new(0),
            hls_parts: AtomicU64::new(0),
            open_by: OPEN_LABELS.iter().map(|_| AtomicU64::new(0)).collect(),
            origins: Mutex::new(Vec::new()),
            pushes: Mutex::new(Vec::new()),
            queue_le: (0..=QUEUE_BUCKETS.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            queue_sum: AtomicU64::new(0),
        }
    }
}

impl WorkerStats {
    /// Adds `n` to `counter` (the worker is the only writer).
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Counts one close of kind `kind` (one of [`CLOSE_KINDS`]); `in_setup`: an RTMP
    /// connection that never published or played.
    pub fn closed(&self, kind: &str, in_setup: bool) {
        let i = CLOSE_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(CLOSE_KINDS.len() - 1);
        Self::add(&self.closed[i], 1);
        if in_setup {
            Self::add(&self.setup_failed[i], 1);
        }
    }
}

/// Every worker's stats, in worker order: what a scrape reads.
pub type Registry = Arc<Vec<Arc<WorkerStats>>>;

/// A new registry of `workers` zeroed workers.
pub fn registry(workers: usize) -> Registry {
    Arc::new((0..workers).map(|_| Arc::default()).collect())
}

/// One metric family: name, help, type, and how to read it from a worker.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    read: fn(&WorkerStats) -> f64,
}

fn v(counter: &AtomicU64) -> f64 {
    counter.load(Relaxed) as f64
}

const FAMILIES: &[Family] = &[
    Family {
        name: "rtmp_edge_connections_accepted_total",
        help: "Connections accepted.",
        kind: "counter",
        read: |s| v(&s.accepted),
    },
    Family {
        name: "rtmp_edge_connections_refused_total",
        help: "Connections refused at accept (connection caps).",
        kind: "counter",
        read: |s| v(&s.refused),
    },
    Family {
        name: "rtmp_edge_connections_open",
        help: "Connections open now (clients and relay upstreams).",
        kind: "gauge",
        read: |s| v(&s.open),
    },
    Family {
        name: "rtmp_edge_received_bytes_total",
        help: "Bytes read from sockets.",
        kind: "counter",
        read: |s| v(&s.bytes_in),
    },
    Family {
        name: "rtmp_edge_sent_bytes_total",
        help: "Bytes written to sockets.",
        kind: "counter",
        read: |s| v(&s.bytes_out),
    },
    Family {
        name: "rtmp_edge_media_messages_in_total",
        help: "Media messages taken in from publishers and pulls.",
        kind: "counter",
        read: |s| v(&s.media_in),
    },
    Family {
        name: "rtmp_edge_media_messages_out_total",
        help: "Media messages queued to players (as of the worker's last 100 ms tick).",
        kind: "counter",
        read: |s| v(&s.media_out),
    },
    Family {
        name: "rtmp_edge_player_frames_dropped_total",
        help: "Frames dropped by the slow-player policy (as of the worker's last 100 ms tick).",
        kind: "counter",
        read: |s| v(&s.frames_dropped),
    },
    Family {
        name: "rtmp_edge_bus_messages_sent_total",
        help: "Messages sent to other workers.",
        kind: "counter",
        read: |s| v(&s.bus_sent),
    },
    Family {
        name: "rtmp_edge_bus_media_dropped_total",
        help: "Media refused by a full mailbox (that worker's players skip to a keyframe).",
        kind: "counter",
        read: |s| v(&s.bus_dropped),
    },
    Family {
        name: "rtmp_edge_loop_wakeups_total",
        help: "Event loop wake-ups.",
        kind: "counter",
        read: |s| v(&s.wakeups),
    },
    Family {
        name: "rtmp_edge_loop_busy_seconds_total",
        help: "Time the event loop spent handling events.",
        kind: "counter",
        read: |s| s.busy_ns.load(Relaxed) as f64 / 1e9,
    },
    Family {
        name: "rtmp_edge_io_uring_submissions_total",
        help:
            "io_uring submissions, each carrying the plain-socket writes of one write pass (0 with epoll).",
        kind: "counter",
        read: |s| v(&s.uring_submissions),
    },
    Family {
        name: "rtmp_edge_streams",
        help: "Streams with an entry on the worker (published, mirrored or waited for).",
        kind: "gauge",
        read: |s| v(&s.streams),
    },
    Family {
        name: "rtmp_edge_publishers_polled",
        help: "Publishers of streams nobody watches, read by the clock (workers.unwatched_read_ms) instead of as their bytes arrive.",
        kind: "gauge",
        read: |s| v(&s.publishers_polled),
    },
    Family {
        name: "rtmp_edge_relay_pulls_started_total",
        help: "Pulls from origins started.",
        kind: "counter",
        read: |s| v(&s.pulls_started),
    },
    Family {
        name: "rtmp_edge_relay_failovers_total",
        help: "Pull connections given up for the next origin (failed, refused, stalled).",
        kind: "counter",
        read: |s| v(&s.relay_failovers),
    },
    Family {
        name: "rtmp_edge_relay_origins_up",
        help: "Configured origins up (not in backoff), as the worker sees them.",
        kind: "gauge",
        read: |s| v(&s.origins_up),
    },
    Family {
        name: "rtmp_edge_auth_allowed_total",
        help: "Publish/play/view requests the authorisation stages allowed.",
        kind: "counter",
        read: |s| v(&s.auth_allowed),
    },
    Family {
        name: "rtmp_edge_auth_denied_total",
        help: "Publish/play/view requests the authorisation stages denied.",
        kind: "counter",
        read: |s| v(&s.auth_denied),
    },
    Family {
        name: "rtmp_edge_hls_requests_total",
        help: "HLS/DASH requests (playlists, manifests, segments, parts).",
        kind: "counter",
        read: |s| v(&s.hls_requests),
    },
    Family {
        name: "rtmp_edge_hls_parts_total",
        help: "HLS/DASH parts and segments completed by the worker's packagers.",
        kind: "counter",
        read: |s| v(&s.hls_parts),
    },
    Family {
        name: "rtmp_edge_relay_pushes_started_total",
        help: "Push target connections started.",
        kind: "counter",
        read: |s| v(&s.pushes_started),
    },
];

/// The Prometheus text exposition (format 0.0.4) of every worker's counters.
pub fn render(registry: &[Arc<WorkerStats>]) -> String {
    let mut out = String::with_capacity(4096);
    for family in FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        for (worker, stats) in registry.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}{{worker=\"{worker}\"}} {}",
                family.name,
                (family.read)(stats)
            );
        }
    }
    let name = "rtmp_edge_player_queue_bytes";
    let _ = writeln!(
        out,
        "# HELP {name} Bytes queued per player, as of the worker's last 100 ms tick."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (worker, stats) in registry.iter().enumerate() {
        let bounds = QUEUE_BUCKETS.iter().map(|b| b.to_string());
        for (le, count) in bounds.chain(["+Inf".to_string()]).zip(&stats.queue_le) {
            let _ = writeln!(
                out,
                "{name}_bucket{{worker=\"{worker}\",le=\"{le}\"}} {}",
                v(count)
            );
        }
        let _ = writeln!(
            out,
            "{name}_sum{{worker=\"{worker}\"}} {}",
            v(&stats.queue_sum)
        );
        let all = stats.queue_le.last().map_or(0.0, v);
        let _ = writeln!(out, "{name}_count{{worker=\"{worker}\"}} {all}");
    }
    let name = "rtmp_edge_connections_open_by_proto";
    let _ = writeln!(
        out,
        "# HELP {name} Connections open now, by protocol and role (as of the last tick)."
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (worker, stats) in registry.iter().enumerate() {
        for ((proto, role), gauge) in OPEN_LABELS.iter().zip(&stats.open_by) {
            let _ = writeln!(
                out,
                "{name}{{worker=\"{worker}\",proto=\"{proto}\",role=\"{role}\"}} {}",
                v(gauge)
            );
        }
    }
    let name = "rtmp_edge_relay_origin_up";
    let _ = writeln!(
        out,
        "# HELP {name} 1 while a configured origin is up (not in backoff), as each worker sees it."
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (worker, stats) in registry.iter().enumerate() {
        let origins = stats.origins.lock().unwrap_or_else(|e| e.into_inner());
        for (origin, up) in origins.iter() {
            let _ = writeln!(
                out,
                "{name}{{worker=\"{worker}\",origin=\"{}\"}} {}",
                label(origin),
                u8::from(*up)
            );
        }
    }
    let name = "rtmp_edge_relay_pushes_publishing";
    let _ = writeln!(
        out,
        "# HELP {name} Streams publishing to a configured push target now."
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (worker, stats) in registry.iter().enumerate() {
        let pushes = stats.pushes.lock().unwrap_or_else(|e| e.into_inner());
        for (target, n) in pushes.iter() {
            let _ = writeln!(
                out,
                "{name}{{worker=\"{worker}\",target=\"{}\"}} {n}",
                label(target)
            );
        }
    }
    let name = "rtmp_edge_connections_closed_total";
    let _ = writeln!(out, "# HELP {name} Connections closed, by reason kind.");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (worker, stats) in registry.iter().enumerate() {
        for (kind, count) in CLOSE_KINDS.iter().zip(&stats.closed) {
            let _ = writeln!(
                out,
                "{name}{{worker=\"{worker}\",reason=\"{kind}\"}} {}",
                v(count)
            );
        }
    }
    let name = "rtmp_edge_setup_failures_total";
    let _ = writeln!(
        out,
        "# HELP {name} RTMP connections closed before publishing or playing (handshake, connect, authorisation), by reason kind."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for (worker, stats) in registry.iter().enumerate() {
        for (kind, count) in CLOSE_KINDS.iter().zip(&stats.setup_failed) {
            let _ = writeln!(
                out,
                "{name}{{worker=\"{worker}\",reason=\"{kind}\"}} {}",
                v(count)
            );
        }
    }
    out
}

/// Appends the cluster directory's series (`cluster.directory = "redis"`).
pub fn render_directory(out: &mut String, stats: &crate::cluster::DirectoryStats) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut one = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    one(
        "rtmp_edge_cluster_directory_up",
        "gauge",
        "1 while the last call to the stream directory (Redis) reached it.",
        u64::from(stats.up.load(Relaxed)),
    );
    one(
        "rtmp_edge_cluster_leases",
        "gauge",
        "Stream leases this origin holds in the directory (or wants while it is away).",
        stats.leases.load(Relaxed) as u64,
    );
    one(
        "rtmp_edge_cluster_leases_refused_total",
        "counter",
        "Publishes closed because another origin held the stream.",
        stats.refused.load(Relaxed),
    );
    one(
        "rtmp_edge_cluster_leases_lost_total",
        "counter",
        "Publishers closed because another origin took the stream over.",
        stats.lost.load(Relaxed),
    );
    let name = "rtmp_edge_cluster_lookups_total";
    let _ = writeln!(
        out,
        "# HELP {name} Directory lookups before a pull, by result (found, missing, failed: pulled by rendezvous hashing)."
    );
    let _ = writeln!(out, "# TYPE {name} counter");
    for (result, count) in [
        ("found", &stats.found),
        ("missing", &stats.missing),
        ("failed", &stats.failed),
    ] {
        let _ = writeln!(out, "{name}{{result=\"{result}\"}} {}", count.load(Relaxed));
    }
}

/// A label value in the exposition format: backslash, quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Appends per-stream series for the `max` streams with the most players.
pub fn render_streams(out: &mut String, mut streams: Vec<super::api::StreamSummary>, max: usize) {
    let players = |s: &super::api::StreamSummary| s.players.values().sum::<usize>();
    streams.sort_by_key(|s| std::cmp::Reverse(players(s)));
    streams.truncate(max);
    let name = "rtmp_edge_stream_players";
    let _ = writeln!(out, "# HELP {name} Players of the stream, by protocol.");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for s in &streams {
        let stream = label(&format!("{}/{}", s.app, s.stream));
        for (proto, n) in &s.players {
            let _ = writeln!(out, "{name}{{stream=\"{stream}\",proto=\"{proto}\"}} {n}");
        }
    }
    let name = "rtmp_edge_stream_bitrate_in_bits";
    let _ = writeln!(
        out,
        "# HELP {name} Average bitrate in since the feed started."
    );
    let _ = writeln!(out, "# TYPE {name} gauge");
    for s in &streams {
        let stream = label(&format!("{}/{}", s.app, s.stream));
        let _ = writeln!(
            out,
            "{name}{{stream=\"{stream}\"}} {}",
            s.bitrate_in_kbps * 1000
        );
    }
    let name = "rtmp_edge_stream_uptime_seconds";
    let _ = writeln!(out, "# HELP {name} Time since the feed started.");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for s in &streams {
        let stream = label(&format!("{}/{}", s.app, s.stream));
        let _ = writeln!(out, "{name}{{stream=\"{stream}\"}} {}", s.uptime_s);
    }
    type Read = fn(&super::api::StreamSummary) -> u64;
    let counters: [(&str, &str, Read); 3] = [
        (
            "rtmp_edge_stream_received_bytes_total",
            "Bytes the stream's feed brought in since it started.",
            |s| s.bytes_in,
        ),
        (
            "rtmp_edge_stream_sent_bytes_total",
            "Bytes sent to the stream's RTMP and HTTP-FLV players (per worker while it has the stream).",
            |s| s.bytes_out,
        ),
        (
            "rtmp_edge_stream_player_frames_dropped_total",
            "Frames the stream's players dropped (slow-player policy).",
            |s| s.dropped_frames,
        ),
    ];
    for (name, help, read) in counters {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for s in &streams {
            let stream = label(&format!("{}/{}", s.app, s.stream));
            let _ = writeln!(out, "{name}{{stream=\"{stream}\"}} {}", read(s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_type_and_one_sample_per_worker() {
        let reg = registry(2);
        WorkerStats::add(&reg[1].bytes_out, 1234);
        reg[0].closed("slow_player", false);
        reg[0].closed("not a kind", true);
        *reg[1].origins.lock().unwrap() = vec![("rtmp://o1/\"x\"".into(), true)];
        *reg[0].pushes.lock().unwrap() = vec![("rtmp://p:1935/live".into(), 3)];
        let text = render(&reg);
        assert!(text.contains("rtmp_edge_sent_bytes_total{worker=\"1\"} 1234\n"));
        assert!(text.contains("rtmp_edge_sent_bytes_total{worker=\"0\"} 0\n"));
        assert!(text.contains(
            "rtmp_edge_connections_closed_total{worker=\"0\",reason=\"slow_player\"} 1\n"
        ));
        assert!(
            text.contains("rtmp_edge_connections_closed_total{worker=\"0\",reason=\"other\"} 1\n")
        );
        assert!(text.contains("rtmp_edge_setup_failures_total{worker=\"0\",reason=\"other\"} 1\n"));
        assert!(text
            .contains("rtmp_edge_setup_failures_total{worker=\"0\",reason=\"slow_player\"} 0\n"));
        assert!(text.contains(
            "rtmp_edge_relay_origin_up{worker=\"1\",origin=\"rtmp://o1/\\\"x\\\"\"} 1\n"
        ));
        assert!(text.contains(
            "rtmp_edge_relay_pushes_publishing{worker=\"0\",target=\"rtmp://p:1935/live\"} 3\n"
        ));
        for family in FAMILIES {
            assert_eq!(text.matches(&format!("# TYPE {} ", family.name)).count(), 1);
            assert_eq!(text.matches(&format!("\n{}{{", family.name)).count(), 2);
        }
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(
            samples,
            2 * FAMILIES.len()
                + 2 * 2 * CLOSE_KINDS.len()
                + 2 * OPEN_LABELS.len()
                + 2
                + 2 * (QUEUE_BUCKETS.len() + 3),
            "bounded"
        );
    }
}

#[cfg(test)]
mod stream_tests {
    use super::super::api::StreamSummary;
    use super::*;

    fn summary(i: usize) -> StreamSummary {
        StreamSummary {
            app: "live".into(),
            stream: if i == 0 {
                "odd\"name\\\n".into()
            } else {
                format!("s{i}")
            },
            source: "local",
            owner: Some(0),
            publisher: None,
            video_codec: None,
            width: None,
            height: None,
            audio_codec: None,
            bitrate_in_kbps: 100,
            bytes_in: 1000,
            bytes_out: 2000,
            dropped_frames: 0,
            players: std::collections::BTreeMap::from([("rtmp", i), ("http-flv", 0)]),
            uptime_s: 5,
        }
    }

    #[test]
    fn two_thousand_streams_give_series_for_the_top_of_them_only() {
        let mut out = String::new();
        render_streams(&mut out, (0..2_000).map(summary).collect(), 100);
        let samples = out.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, 100 * 2 + 100 * 5, "bounded by stream_metrics_max");
        assert!(
            out.contains("rtmp_edge_stream_players{stream=\"live/s1999\",proto=\"rtmp\"} 1999\n")
        );
        assert!(!out.contains("live/s1899\""), "the 101st is left out");
        let mut out = String::new();
        render_streams(&mut out, vec![summary(0)], 100);
        assert!(
            out.contains("stream=\"live/odd\\\"name\\\\\\n\""),
            "label values escaped: {out}"
        );
    }
}

#[cfg(test)]
mod dashboard_tests {
    use super::*;

    /// Every metric the shipped Grafana dashboard queries is one this server exports.
    #[test]
    fn the_grafana_dashboard_queries_only_exported_metrics() {
        let dashboard = include_str!("../../tools/deploy/grafana-dashboard.json");
        let value: serde_json::Value = serde_json::from_str(dashboard).expect("valid JSON");
        let exported = render(&registry(1));
        let mut queried = std::collections::HashSet::new();
        for panel in value["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for name in expr
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with("rtmp_edge_"))
                {
                    queried.insert(name.to_owned());
                    let family = name.strip_suffix("_bucket").unwrap_or(name);
                    assert!(
                        exported.contains(&format!("# TYPE {family} ")),
                        "the dashboard queries {name}, which is not exported"
                    );
                }
            }
        }
        for family in FAMILIES {
            assert!(
                queried.contains(family.name),
                "no panel shows {}",
                family.name
            );
        }
    }
}
