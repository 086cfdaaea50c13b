//! The result of a run: a serialisable [`Report`], its text table, and the server's cost.

use std::fmt::Write as _;

use serde::Serialize;

use crate::procstat::ProcSample;
use crate::scenario::{PlayerProto, Scenario};
use crate::stats::{Counters, Percentiles};

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    /// What publishers sent.
    pub source: String,
    /// Whole run, ramp-up included, in seconds.
    pub elapsed_s: f64,
    /// The measurement window (after ramp-up), in seconds.
    pub measured_s: f64,
    pub connections: Connections,
    /// Counters over the whole run.
    pub counters: Counters,
    /// Rates over the measurement window.
    pub window: Window,
    /// End-to-end latency of video frames in the measurement window.
    pub latency_ms: Percentiles,
    /// Over the whole run (ramp-up and churn included).
    pub connect_to_play_ms: Percentiles,
    /// Over the whole run (ramp-up and churn included).
    pub first_frame_ms: Percentiles,
    /// The churn's joins only (not the ramp's players, not reconnects; all zero, count 0,
    /// without churn).
    pub join_connect_to_play_ms: Percentiles,
    /// The churn's joins only (as `join_connect_to_play_ms`).
    pub join_first_frame_ms: Percentiles,
    /// HLS pollers' playlist request latency (blocking reloads wait for the next part), in
    /// the measurement window.
    pub hls_playlist_ms: Percentiles,
    /// HLS pollers' segment request latency, in the measurement window.
    pub hls_segment_ms: Percentiles,
    /// LL-HLS pollers' part request latency, in the measurement window.
    pub hls_part_ms: Percentiles,
    /// LL-HLS "part ready": blocking playlist answer first listing a part − the part's media
    /// end (PDT-derived start + duration), in the measurement window.
    pub hls_part_ready_ms: Percentiles,
    /// LL-HLS "publish to playable": part bytes received − the part's media start wall time
    /// (its segment's EXT-X-PROGRAM-DATE-TIME + earlier parts), in the measurement window.
    pub hls_part_playable_ms: Percentiles,
    /// Plain HLS "publish to playable": segment received − its EXT-X-PROGRAM-DATE-TIME.
    pub hls_segment_playable_ms: Percentiles,
    pub errors: Vec<ErrorKind>,
    pub loader: LoaderCpu,
    pub server: Option<ServerCost>,
    /// Reasons not to trust the figures (saturated load generator, oversubscribed machine).
    pub warnings: Vec<String>,
}

/// Connection counts.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Connections {
    pub publishers_target: u64,
    pub publishers_up: u64,
    pub players_target: u64,
    /// Players playing when the run ended.
    pub players_up: u64,
    /// Most connections open at once.
    pub peak_open: u64,
}

/// Delivery rates in the measurement window.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Window {
    pub player_bytes: u64,
    pub player_messages: u64,
    pub throughput_mbit_s: f64,
    pub messages_per_s: f64,
    /// HLS pollers' playlist responses in the window.
    pub hls_playlists: u64,
    /// HLS pollers' segment responses in the window.
    pub hls_segments: u64,
    /// LL-HLS pollers' part responses in the window.
    pub hls_parts: u64,
    /// HLS pollers' response body bytes in the window.
    pub hls_bytes: u64,
}

/// One distinct error message.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorKind {
    pub what: String,
    pub count: u64,
}

/// The load generator's own CPU use.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoaderCpu {
    /// Average over the measurement window, percent of one core.
    pub cpu_percent_avg: f64,
    /// Highest one-second reading.
    pub cpu_percent_max: f64,
    /// Seconds in which it used more than [`SATURATION_PERCENT`] of a core.
    pub saturated_seconds: u32,
    /// Share of the window it was runnable but waiting for a CPU.
    pub runqueue_wait_percent: f64,
    /// Its resident memory at the end, KiB.
    pub rss_kb: u64,
}

/// Above this share of one core the load generator may be the bottleneck.
pub const SATURATION_PERCENT: f64 = 90.0;
/// Above this share of the window spent waiting for a CPU, a process was starved by others.
pub const RUNQUEUE_WAIT_PERCENT: f64 = 10.0;

/// What the measured window cost the server.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ServerCost {
    pub pid: u32,
    /// Server CPU (user + system) during the window, seconds.
    pub cpu_seconds: f64,
    /// The same as a share of one core.
    pub cpu_percent: f64,
    /// CPU seconds per GB (1e9 bytes) delivered to players.
    pub cpu_s_per_gb: Option<f64>,
    /// CPU microseconds per 1000 messages delivered to players.
    pub cpu_us_per_1k_msgs: Option<f64>,
    pub rss_start_kb: u64,
    pub rss_end_kb: u64,
    /// (RSS at the end − RSS before any connection) / connections open at the end, KiB.
    pub rss_per_conn_kb: Option<f64>,
    /// Share of the window its threads were runnable but waiting for a CPU (summed over
    /// threads, so it can exceed 100 with several threads).
    pub runqueue_wait_percent: f64,
}

impl ServerCost {
    /// Derives the cost figures. `idle` is sampled before the first connection, `from` when the
    /// window starts and `to` when it ends; `bytes` and `msgs` were delivered in the window.
    #[allow(clippy::too_many_arguments)]
    pub fn compute(
        pid: u32,
        idle: ProcSample,
        from: ProcSample,
        to: ProcSample,
        window_s: f64,
        bytes: u64,
        msgs: u64,
        open_conns: u64,
    ) -> Self {
        let cpu = (to.cpu_seconds - from.cpu_seconds).max(0.0);
        Self {
            pid,
            cpu_seconds: cpu,
            cpu_percent: if window_s > 0.0 {
                cpu / window_s * 100.0
            } else {
                0.0
            },
            cpu_s_per_gb: (bytes > 0).then(|| cpu / (bytes as f64 / 1e9)),
            cpu_us_per_1k_msgs: (msgs > 0).then(|| cpu * 1e6 / (msgs as f64 / 1000.0)),
            rss_start_kb: idle.rss_kb,
            rss_end_kb: to.rss_kb,
            rss_per_conn_kb: (open_conns > 0)
                .then(|| (to.rss_kb as f64 - idle.rss_kb as f64) / open_conns as f64),
            runqueue_wait_percent: if window_s > 0.0 {
                (to.runqueue_wait_seconds - from.runqueue_wait_seconds).max(0.0) / window_s * 100.0
            } else {
                0.0
            },
        }
    }
}

/// Reasons not to trust a run's figures.
pub fn warnings(loader: &LoaderCpu, server: Option<&ServerCost>) -> Vec<String> {
    let mut w = Vec::new();
    if loader.saturated_seconds > 0 || loader.cpu_percent_avg > SATURATION_PERCENT {
        w.push(format!(
            "the load generator used over {SATURATION_PERCENT}% of a core for {} s \
             (avg {:.0}%): it may be the bottleneck; split the load over more rtmp-load processes",
            loader.saturated_seconds, loader.cpu_percent_avg
        ));
    }
    if loader.runqueue_wait_percent > RUNQUEUE_WAIT_PERCENT {
        w.push(format!(
            "the load generator waited for a CPU {:.0}% of the time: the machine is \
             oversubscribed, latency figures include that wait",
            loader.runqueue_wait_percent
        ));
    }
    if let Some(s) = server {
        if s.runqueue_wait_percent > RUNQUEUE_WAIT_PERCENT {
            w.push(format!(
                "the server waited for a CPU {:.0}% of the time: the machine is oversubscribed \
                 (pin the server and rtmp-load to separate idle cores)",
                s.runqueue_wait_percent
            ));
        }
    }
    w
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.prec$}"))
}

fn pct_line(out: &mut String, label: &str, p: &Percentiles) {
    let _ = writeln!(
        out,
        "{label:<22} p50 {:>8.2}  p90 {:>8.2}  p99 {:>8.2}  p99.9 {:>8.2}  max {:>8.2} ms  (n={})",
        p.p50, p.p90, p.p99, p.p999, p.max, p.count
    );
}

impl Report {
    /// The human-readable final table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let sc = &self.scenario;
        let c = &self.counters;
        let _ = writeln!(o, "== rtmp-load: {}/{}", sc.url.tc_url, sc.url.stream);
        let _ = writeln!(o, "{:<22} {}", "source", self.source);
        let _ = writeln!(
            o,
            "{:<22} {} publishers, {} streams x {} {}players, ramp {}/s, churn {}/s",
            "scenario",
            sc.publishers,
            sc.streams,
            sc.players_per_stream,
            match sc.player_proto {
                PlayerProto::Rtmp => String::new(),
                PlayerProto::HttpFlv => format!("HTTP-FLV (port {}) ", sc.http_port),
            },
            sc.ramp_per_s,
            sc.churn_per_s
        );
        let _ = writeln!(
            o,
            "{:<22} {:.1} s measured ({:.1} s total)",
            "time", self.measured_s, self.elapsed_s
        );
        let k = &self.connections;
        let _ = writeln!(
            o,
            "{:<22} publishers {}/{}  players {}/{}  peak open {}",
            "connections",
            k.publishers_up,
            k.publishers_target,
            k.players_up,
            k.players_target,
            k.peak_open
        );
        let w = &self.window;
        let _ = writeln!(
            o,
            "{:<22} {:.1} Mbit/s  {:.0} msg/s  ({} bytes, {} msgs)",
            "delivered to players",
            w.throughput_mbit_s,
            w.messages_per_s,
            w.player_bytes,
            w.player_messages
        );
        let _ = writeln!(
            o,
            "{:<22} {} bytes, {} msgs",
            "sent by publishers", c.publisher_bytes, c.publisher_messages
        );
        pct_line(&mut o, "latency (end-to-end)", &self.latency_ms);
        pct_line(&mut o, "connect to play", &self.connect_to_play_ms);
        pct_line(&mut o, "time to first frame", &self.first_frame_ms);
        if self.join_connect_to_play_ms.count > 0 {
            pct_line(
                &mut o,
                "connect to play (joins)",
                &self.join_connect_to_play_ms,
            );
            pct_line(&mut o, "first frame (joins)", &self.join_first_frame_ms);
        }
        if sc.hls_pollers > 0 {
            let _ = writeln!(
                o,
                "{:<22} {} pollers/stream: {} playlists, {} segments, {} parts, {} bytes \
                 ({} playlist 404s before the first segment)",
                "HLS",
                sc.hls_pollers,
                c.hls_playlists,
                c.hls_segments,
                c.hls_parts,
                c.hls_bytes,
                c.hls_playlists_not_ready
            );
            let _ = writeln!(
                o,
                "{:<22} {} playlists, {} segments, {} parts, {} bytes",
                "HLS in window", w.hls_playlists, w.hls_segments, w.hls_parts, w.hls_bytes
            );
            pct_line(&mut o, "HLS playlist request", &self.hls_playlist_ms);
            if c.hls_segments > 0 {
                pct_line(&mut o, "HLS segment request", &self.hls_segment_ms);
                pct_line(
                    &mut o,
                    "HLS seg pub->playable",
                    &self.hls_segment_playable_ms,
                );
            }
            if c.hls_parts > 0 {
                pct_line(&mut o, "LL-HLS part request", &self.hls_part_ms);
                pct_line(&mut o, "LL-HLS part ready", &self.hls_part_ready_ms);
                pct_line(&mut o, "LL-HLS pub->playable", &self.hls_part_playable_ms);
            }
            let _ = writeln!(
                o,
                "{:<22} negative beyond 10 ms {}  without PDT {}",
                "HLS PDT check", c.hls_negative_latencies, c.hls_without_pdt
            );
        }
        let _ = writeln!(
            o,
            "{:<22} keyframe {}  not keyframe {}",
            "first video frame", c.first_frame_keyframe, c.first_frame_not_keyframe
        );
        let _ = writeln!(
            o,
            "{:<22} stalls {}  disconnects {}  errors {}  unstamped frames {}",
            "trouble", c.stalls, c.disconnects, c.errors, c.frames_without_stamp
        );
        let _ = writeln!(
            o,
            "{:<22} {} reconnects  {} video frames lost  {} duplicates dropped",
            "continuity", c.reconnects, c.video_frames_lost, c.video_frames_duplicate
        );
        let _ = writeln!(
            o,
            "{:<22} left {}  joined {}  still starting at end {}",
            "churn", c.churn_left, c.churn_joined, c.players_starting_at_end
        );
        for e in &self.errors {
            let _ = writeln!(o, "{:<22} {} x {}", "", e.count, e.what);
        }
        let l = &self.loader;
        let _ = writeln!(
            o,
            "{:<22} avg {:.0}%  max {:.0}% of a core  run-queue wait {:.0}%  rss {} KiB",
            "load generator",
            l.cpu_percent_avg,
            l.cpu_percent_max,
            l.runqueue_wait_percent,
            l.rss_kb
        );
        if let Some(s) = &self.server {
            let _ = writeln!(
                o,
                "{:<22} pid {}  {:.2} CPU-s ({:.1}% of a core)  {} CPU-s/GB  {} µs/1k msgs",
                "server cpu",
                s.pid,
                s.cpu_seconds,
                s.cpu_percent,
                opt(s.cpu_s_per_gb, 3),
                opt(s.cpu_us_per_1k_msgs, 1)
            );
            let _ = writeln!(
                o,
                "{:<22} {} -> {} KiB  {} KiB/conn  run-queue wait {:.0}%",
                "server rss",
                s.rss_start_kb,
                s.rss_end_kb,
                opt(s.rss_per_conn_kb, 1),
                s.runqueue_wait_percent
            );
        }
        for w in &self.warnings {
            let _ = writeln!(o, "WARNING: {w}");
        }
        o
    }
}

/// One line per run of a sweep.
pub fn sweep_table(reports: &[Report]) -> String {
    let mut o = String::from(
        "| players | Mbit/s | msg/s | p50 ms | p99 ms | max ms | stalls | errors | server CPU % | CPU-s/GB | KiB/conn | loader CPU % |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in reports {
        let s = r.server.as_ref();
        let _ = writeln!(
            o,
            "| {} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {:.0} |",
            r.connections.players_target,
            r.window.throughput_mbit_s,
            r.window.messages_per_s,
            r.latency_ms.p50,
            r.latency_ms.p99,
            r.latency_ms.max,
            r.counters.stalls,
            r.counters.errors + r.counters.disconnects,
            opt(s.map(|s| s.cpu_percent), 1),
            opt(s.and_then(|s| s.cpu_s_per_gb), 3),
            opt(s.and_then(|s| s.rss_per_conn_kb), 1),
            r.loader.cpu_percent_avg
        );
    }
    o
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::scenario::Knobs;

    fn sample(cpu: f64, rss: u64) -> ProcSample {
        ProcSample {
            cpu_seconds: cpu,
            rss_kb: rss,
            runqueue_wait_seconds: cpu / 10.0,
        }
    }

    #[test]
    fn server_cost_is_per_gb_per_message_and_per_connection() {
        let c = ServerCost::compute(
            7,
            sample(1.0, 10_000),
            sample(2.0, 12_000),
            sample(4.0, 30_000),
            10.0,
            4_000_000_000,
            1_000_000,
            1000,
        );
        assert!((c.cpu_seconds - 2.0).abs() < 1e-9);
        assert!((c.cpu_percent - 20.0).abs() < 1e-9);
        assert!((c.cpu_s_per_gb.unwrap() - 0.5).abs() < 1e-9);
        assert!((c.cpu_us_per_1k_msgs.unwrap() - 2000.0).abs() < 1e-6);
        assert!((c.rss_per_conn_kb.unwrap() - 20.0).abs() < 1e-9);
        assert!((c.runqueue_wait_percent - 2.0).abs() < 1e-9);
    }

    #[test]
    fn oversubscription_and_saturation_are_warned_about() {
        let quiet = LoaderCpu {
            cpu_percent_avg: 30.0,
            runqueue_wait_percent: 1.0,
            ..Default::default()
        };
        assert!(warnings(&quiet, None).is_empty());
        let busy = LoaderCpu {
            saturated_seconds: 2,
            runqueue_wait_percent: 40.0,
            ..Default::default()
        };
        assert_eq!(warnings(&busy, None).len(), 2);
        let starved = ServerCost {
            runqueue_wait_percent: 25.0,
            ..Default::default()
        };
        let w = warnings(&quiet, Some(&starved));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("server waited"), "{w:?}");
    }

    #[test]
    fn server_cost_without_delivery_has_no_ratios() {
        let c = ServerCost::compute(
            7,
            sample(0.0, 1),
            sample(0.0, 1),
            sample(0.5, 1),
            1.0,
            0,
            0,
            0,
        );
        assert_eq!(c.cpu_s_per_gb, None);
        assert_eq!(c.cpu_us_per_1k_msgs, None);
        assert_eq!(c.rss_per_conn_kb, None);
    }

    /// A report with a few figures set, for tests elsewhere too.
    pub(crate) fn report() -> Report {
        let scenario = Scenario::from_knobs(Knobs::default()).unwrap();
        Report {
            scenario,
            source: "synthetic".into(),
            elapsed_s: 12.0,
            measured_s: 10.0,
            connections: Connections {
                players_target: 10,
                players_up: 10,
                ..Default::default()
            },
            counters: Counters {
                stalls: 2,
                ..Default::default()
            },
            window: Window {
                throughput_mbit_s: 6.5,
                hls_segments: 7,
                ..Default::default()
            },
            latency_ms: Percentiles {
                p99: 12.5,
                count: 3,
                ..Default::default()
            },
            connect_to_play_ms: Percentiles::default(),
            first_frame_ms: Percentiles::default(),
            join_connect_to_play_ms: Percentiles::default(),
            join_first_frame_ms: Percentiles::default(),
            hls_playlist_ms: Percentiles::default(),
            hls_segment_ms: Percentiles::default(),
            hls_part_ms: Percentiles::default(),
            hls_part_ready_ms: Percentiles::default(),
            hls_part_playable_ms: Percentiles {
                p50: 612.5,
                count: 40,
                ..Default::default()
            },
            hls_segment_playable_ms: Percentiles::default(),
            errors: vec![ErrorKind {
                what: "connection refused".into(),
                count: 3,
            }],
            loader: LoaderCpu::default(),
            server: Some(ServerCost {
                pid: 9,
                cpu_s_per_gb: Some(1.25),
                ..Default::default()
            }),
            warnings: vec!["saturated".into()],
        }
    }

    #[test]
    fn table_shows_the_key_figures() {
        let t = report().table();
        assert!(t.contains("6.5 Mbit/s"), "{t}");
        assert!(t.contains("p99    12.50"), "{t}");
        assert!(t.contains("stalls 2"), "{t}");
        assert!(t.contains("3 x connection refused"), "{t}");
        assert!(t.contains("WARNING: saturated"), "{t}");
        assert!(t.contains("1.250 CPU-s/GB"), "{t}");
    }

    #[test]
    fn table_shows_ll_hls_part_latency_and_the_pdt_check() {
        let mut r = report();
        r.scenario.hls_pollers = 2;
        r.counters.hls_parts = 40;
        r.counters.hls_negative_latencies = 3;
        let t = r.table();
        assert!(t.contains("40 parts"), "{t}");
        assert!(t.contains("LL-HLS pub->playable   p50   612.50"), "{t}");
        assert!(t.contains("LL-HLS part ready"), "{t}");
        assert!(t.contains("negative beyond 10 ms 3"), "{t}");
        assert!(
            !t.contains("HLS segment request"),
            "no segments fetched: {t}"
        );
    }

    #[test]
    fn json_has_stable_field_names() {
        let v: serde_json::Value = serde_json::to_value(report()).unwrap();
        assert_eq!(v["latency_ms"]["p99"], 12.5);
        assert_eq!(v["counters"]["stalls"], 2);
        assert_eq!(v["server"]["cpu_s_per_gb"], 1.25);
        assert_eq!(v["scenario"]["mode"], "full");
        assert_eq!(v["scenario"]["duration"], 10.0);
        assert_eq!(v["hls_part_playable_ms"]["p50"], 612.5);
        assert_eq!(v["counters"]["hls_negative_latencies"], 0);
        assert_eq!(v["window"]["hls_segments"], 7);
        assert_eq!(v["window"]["hls_bytes"], 0);
    }

    #[test]
    fn sweep_table_has_one_row_per_run() {
        let t = sweep_table(&[report(), report()]);
        assert_eq!(t.lines().count(), 4);
        assert!(t.lines().nth(2).unwrap().starts_with("| 10 | 6.5 |"));
    }
}
