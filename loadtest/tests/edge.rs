//! CI smoke run: rtmp-load against rtmp-edge itself for a few seconds, checking delivery and
//! the absence of errors (not speed: figures live in BENCHMARKS.md).

mod common;

use common::{f, rtmp_load, u};
use rtmp_edge::config::Config;
use rtmp_edge::shard::Server;
use serde_json::Value;

/// rtmp-edge in this process on ephemeral loopback ports, 2 unpinned workers, HTTP on or off.
fn start_edge(http: bool) -> Server {
    start_edge_with(http, |_| {})
}

/// [`start_edge`] with `tweak` applied to the configuration first.
fn start_edge_with(http: bool, tweak: impl FnOnce(&mut Config)) -> Server {
    let config = loopback_config(|c| {
        c.http.enabled = http;
        c.http.listen = vec!["127.0.0.1:0".parse().unwrap()];
        tweak(c);
    });
    Server::start(config).expect("server starts")
}

/// rtmp-load with `pollers` HLS pollers per stream against `server`, 25 fps with 1 s GOPs.
fn run_hls_pollers(server: &Server, stream: &str, pollers: &str, players: &str) -> Value {
    let url = format!("rtmp://{}/live/{stream}", server.local_addrs()[0]);
    let http_port = server.http_addrs()[0].port().to_string();
    rtmp_load(&[
        "--url",
        &url,
        "--http-port",
        &http_port,
        "--players",
        players,
        "--hls-pollers",
        pollers,
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
    ])
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
    // The joins' own figures: the churn's players, not the 50 of the ramp.
    let joins = u(&r, &["join_first_frame_ms", "count"]);
    assert!(
        joins > 0 && joins <= u(&r, &["counters", "churn_joined"]),
        "{r:#}"
    );
    assert_eq!(
        u(&r, &["first_frame_ms", "count"]) - joins,
        50,
        "the whole run's first frames are the ramp's 50 and the joins': {r:#}"
    );
    assert!(u(&r, &["join_connect_to_play_ms", "count"]) >= joins);
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
fn hls_pollers_fetch_ll_hls_playlists_and_new_parts_from_rtmp_edge() {
    let server = start_edge(true);
    let r = run_hls_pollers(&server, "hlspoll", "5", "2");
    server.shutdown();
    server.join().expect("clean shutdown");
    assert_eq!(u(&r, &["counters", "errors"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "disconnects"]), 0, "{r:#}");
    // LL-HLS pollers follow 500 ms parts (about 8 each in 4 s), never whole segments.
    assert!(u(&r, &["counters", "hls_parts"]) >= 5 * 5, "{r:#}");
    assert_eq!(u(&r, &["counters", "hls_segments"]), 0, "{r:#}");
    assert!(u(&r, &["hls_part_ms", "count"]) >= 5 * 5, "{r:#}");
    // LL-HLS blocking reloads come back about once per 500 ms part, not in a busy loop.
    let playlists = u(&r, &["counters", "hls_playlists"]);
    assert!((5 * 4..=5 * 30).contains(&playlists), "{r:#}");
    assert!(
        f(&r, &["hls_playlist_ms", "p50"]) > 100.0,
        "blocking: {r:#}"
    );
    assert!(
        u(&r, &["counters", "hls_bytes"]) > 5 * 100_000,
        "parts carry the video: {r:#}"
    );
}

#[test]
fn ll_hls_parts_are_playable_about_one_part_after_they_were_published() {
    // 200 ms parts of 1 s segments (one 25-frame GOP each).
    let (part_ms, frame_ms) = (200.0, 40.0);
    let server = start_edge_with(true, |c| {
        c.http.hls_segment_ms = 1000;
        c.http.hls_part_ms = 200;
    });
    let r = run_hls_pollers(&server, "llhls", "2", "0");
    server.shutdown();
    server.join().expect("clean shutdown");
    assert_eq!(u(&r, &["counters", "errors"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "hls_without_pdt"]), 0, "{r:#}");
    assert_eq!(
        u(&r, &["counters", "hls_negative_latencies"]),
        0,
        "a part listed or received before its media ended means a wrong PDT: {r:#}"
    );
    // 2 pollers x about 5 parts/s x 3 s measured.
    let timed = u(&r, &["hls_part_playable_ms", "count"]);
    assert!(timed >= 2 * 10, "{r:#}");
    assert!(u(&r, &["hls_part_ready_ms", "count"]) >= 2 * 10, "{r:#}");
    // A part is complete when the frame after it arrives: its bytes cannot be playable before
    // its own duration (less the frame the server's clock may have seen early) has passed,
    // and with blocking reloads they arrive soon after. A PDT off by a segment, or part
    // starts that ignored the earlier parts (up to 800 ms late), land outside these bounds.
    let playable = f(&r, &["hls_part_playable_ms", "p50"]);
    assert!(
        playable > part_ms - frame_ms && playable < part_ms + 300.0,
        "publish to playable p50 {playable} ms: {r:#}"
    );
    let ready = f(&r, &["hls_part_ready_ms", "p50"]);
    assert!(ready < 150.0, "part ready p50 {ready} ms: {r:#}");
}

#[test]
fn plain_hls_segments_are_playable_about_one_segment_after_their_program_date_time() {
    let server = start_edge_with(true, |c| {
        c.http.hls_segment_ms = 1000;
        c.http.hls_part_ms = 0;
    });
    let r = run_hls_pollers(&server, "plainhls", "3", "0");
    server.shutdown();
    server.join().expect("clean shutdown");
    assert_eq!(u(&r, &["counters", "errors"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "hls_parts"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "hls_negative_latencies"]), 0, "{r:#}");
    assert!(u(&r, &["hls_segment_playable_ms", "count"]) >= 3, "{r:#}");
    // A 1 s segment is complete 1 s after its start and found by a reload every 500 ms.
    let p50 = f(&r, &["hls_segment_playable_ms", "p50"]);
    assert!(p50 > 960.0 && p50 < 1800.0, "p50 {p50} ms: {r:#}");
}

/// Counts the connections `server` closes per stream.
fn counting_closes(config: Config) -> (Server, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let closes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = closes.clone();
    let hooks = rtmp_edge::shard::Hooks {
        on_close: Some(std::sync::Arc::new(move |c: &rtmp_edge::shard::Closed| {
            if let Some(stream) = &c.stream {
                seen.lock().unwrap().push(stream.to_string());
            }
        })),
        dispatch: None,
    };
    (
        Server::start_with(config, hooks).expect("server starts"),
        closes,
    )
}

/// rtmp-edge's configuration on ephemeral loopback ports, 2 unpinned workers, HTTP off.
fn loopback_config(tweak: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    config.rtmp.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.http.enabled = false;
    config.workers.count = 2;
    config.workers.pin = false;
    tweak(&mut config);
    config
}

#[test]
fn players_on_an_edge_receive_what_is_published_on_its_origin() {
    let (origin, origin_closes) = counting_closes(loopback_config(|_| {}));
    let origin_url = format!("rtmp://{}/live/relayed", origin.local_addrs()[0]);
    let (edge, edge_closes) = counting_closes(loopback_config(|c| {
        c.relay.origins = vec![format!("rtmp://{}", origin.local_addrs()[0])];
    }));
    let url = format!("rtmp://{}/live/relayed", edge.local_addrs()[0]);
    let r = rtmp_load(&[
        "--url",
        &url,
        "--publish-url",
        &origin_url,
        "--players",
        "40",
        "--duration",
        "3",
        "--synthetic",
        "600k",
        "--fps",
        "25",
        "--gop",
        "25",
    ]);
    for server in [edge, origin] {
        server.shutdown();
        server.join().expect("clean shutdown");
    }
    assert_eq!(u(&r, &["counters", "errors"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "stalls"]), 0, "{r:#}");
    assert!(
        u(&r, &["counters", "player_video_frames"]) > 40 * 25 * 2,
        "the edge's players got the origin's frames: {r:#}"
    );
    assert_eq!(u(&r, &["counters", "frames_without_stamp"]), 0, "{r:#}");
    assert!(f(&r, &["latency_ms", "p50"]) < 200.0, "{r:#}");
    let of = |closes: &[String]| closes.iter().filter(|s| *s == "live/relayed").count();
    assert_eq!(
        of(&edge_closes.lock().unwrap()),
        40 + 1,
        "the players and the pull were on the edge"
    );
    assert_eq!(
        of(&origin_closes.lock().unwrap()),
        2,
        "the origin had the publisher and the edge's pull"
    );
}

#[test]
fn rtmps_players_and_publisher_receive_stamped_frames_over_tls() {
    let dir = std::env::temp_dir().join(format!("rtmp-load-rtmps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let server = start_edge_with(false, |c| {
        c.rtmps.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.rtmps.cert = cert_path.to_str().unwrap().to_string();
        c.rtmps.key = key_path.to_str().unwrap().to_string();
    });
    let url = format!("rtmps://{}/live/tls", server.rtmps_addrs()[0]);
    let r = rtmp_load(&[
        "--url",
        &url,
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
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(u(&r, &["counters", "errors"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "stalls"]), 0, "{r:#}");
    assert_eq!(u(&r, &["connections", "publishers_up"]), 1, "{r:#}");
    assert_eq!(u(&r, &["connections", "players_up"]), 20, "{r:#}");
    assert!(
        u(&r, &["counters", "player_video_frames"]) > 20 * 2 * 25,
        "{r:#}"
    );
    assert_eq!(u(&r, &["counters", "frames_without_stamp"]), 0, "{r:#}");
}
