//! CI smoke run: rtmp-load against rtmp-edge itself for a few seconds, checking delivery and
//! the absence of errors (not speed: figures live in BENCHMARKS.md).

mod common;

use common::{f, rtmp_load, u};
use rtmp_edge::config::Config;
use rtmp_edge::shard::Server;

/// rtmp-edge in this process on ephemeral loopback ports, 2 unpinned workers, HTTP on or off.
fn start_edge(http: bool) -> Server {
    let mut config = Config::default();
    config.rtmp.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.http.enabled = http;
    config.http.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.workers.count = 2;
    config.workers.pin = false;
    Server::start(config).expect("server starts")
}

#[test]
fn players_receive_stamped_frames_from_rtmp_edge_without_errors() {
    let server = start_edge(false);
    let url = format!("rtmp://{}/live/smoke", server.local_addrs()[0]);
    let pid = std::process::id().to_string();
    let r = rtmp_load(&[
        "--url",
        &url,
        "--players",
        "50",
        "--duration",
        "3",
        "--synthetic",
        "600k",
        "--fps",
        "25",
        "--gop",
        "25",
        "--churn",
        "10",
        "--server-pid",
        &pid,
    ]);
    server.shutdown();
    server.join().expect("clean shutdown");
    assert_eq!(u(&r, &["counters", "errors"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "stalls"]), 0, "{r:#}");
    assert_eq!(u(&r, &["connections", "publishers_up"]), 1);
    assert!(
        u(&r, &["counters", "player_video_frames"]) > 40 * 25,
        "{r:#}"
    );
    assert!(
        u(&r, &["latency_ms", "count"]) > 40 * 25,
        "latency was measured: {r:#}"
    );
    assert_eq!(u(&r, &["counters", "frames_without_stamp"]), 0);
    // Joiners get the GOP cache (up to one 1 s GOP old), which the generator counts as latency.
    assert!(f(&r, &["latency_ms", "p50"]) < 200.0, "{r:#}");
    assert!(f(&r, &["latency_ms", "max"]) < 2000.0, "{r:#}");
    assert!(u(&r, &["counters", "first_frame_keyframe"]) >= 50, "{r:#}");
    assert_eq!(
        u(&r, &["counters", "first_frame_not_keyframe"]),
        0,
        "every player, joiners included, starts on a keyframe (GOP cache): {r:#}"
    );
}

#[test]
fn http_flv_viewers_receive_stamped_keyframe_first_video_from_rtmp_edge() {
    let server = start_edge(true);
    let url = format!("rtmp://{}/live/httpflv", server.local_addrs()[0]);
    let http_port = server.http_addrs()[0].port().to_string();
    let r = rtmp_load(&[
        "--url",
        &url,
        "--player-proto",
        "http-flv",
        "--http-port",
        &http_port,
        "--players",
        "20",
        "--duration",
        "3",
        "--synthetic",
        "600k",
        "--fps",
        "25",
        "--gop",
        "25",
    ]);
    server.shutdown();
    server.join().expect("clean shutdown");
    assert_eq!(r["scenario"]["player_proto"], "http-flv", "{r:#}");
    assert_eq!(u(&r, &["counters", "errors"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "stalls"]), 0, "{r:#}");
    assert_eq!(u(&r, &["connections", "publishers_up"]), 1);
    assert_eq!(u(&r, &["connections", "players_up"]), 20, "{r:#}");
    assert!(
        u(&r, &["counters", "player_video_frames"]) > 15 * 25,
        "{r:#}"
    );
    assert!(
        u(&r, &["latency_ms", "count"]) > 15 * 25,
        "latency was measured from the FLV tags' stamps: {r:#}"
    );
    assert_eq!(u(&r, &["counters", "frames_without_stamp"]), 0, "{r:#}");
    assert!(f(&r, &["latency_ms", "p50"]) < 200.0, "{r:#}");
    assert!(
        f(&r, &["latency_ms", "max"]) < 2000.0,
        "GOP-cache age included: {r:#}"
    );
    assert_eq!(u(&r, &["counters", "first_frame_keyframe"]), 20, "{r:#}");
    assert_eq!(u(&r, &["counters", "first_frame_not_keyframe"]), 0, "{r:#}");
    assert!(u(&r, &["window", "player_bytes"]) > 0, "{r:#}");
}

#[test]
fn hls_pollers_fetch_ll_hls_playlists_and_new_segments_from_rtmp_edge() {
    let server = start_edge(true);
    let url = format!("rtmp://{}/live/hlspoll", server.local_addrs()[0]);
    let http_port = server.http_addrs()[0].port().to_string();
    let r = rtmp_load(&[
        "--url",
        &url,
        "--http-port",
        &http_port,
        "--players",
        "2",
        "--hls-pollers",
        "5",
        "--duration",
        "4",
        "--warmup",
        "1",
        "--synthetic",
        "600k",
        "--fps",
        "25",
        "--gop",
        "25",
    ]);
    server.shutdown();
    server.join().expect("clean shutdown");
    assert_eq!(u(&r, &["counters", "errors"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "disconnects"]), 0, "{r:#}");
    // Every poller fetched the live-edge segment and at least one new one (2 s segments).
    assert!(u(&r, &["counters", "hls_segments"]) >= 10, "{r:#}");
    assert!(u(&r, &["hls_segment_ms", "count"]) >= 10, "{r:#}");
    // LL-HLS blocking reloads come back about once per 500 ms part, not in a busy loop.
    let playlists = u(&r, &["counters", "hls_playlists"]);
    assert!((5 * 4..=5 * 30).contains(&playlists), "{r:#}");
    assert!(
        f(&r, &["hls_playlist_ms", "p50"]) > 100.0,
        "blocking: {r:#}"
    );
    assert!(
        u(&r, &["counters", "hls_bytes"]) > 10 * 100_000,
        "segments carry the video: {r:#}"
    );
}
