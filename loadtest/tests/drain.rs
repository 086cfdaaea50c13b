//! rtmp-load through a draining rtmp-edge: server A drains with `drain.redirect_url` pointing
//! at server B; the load generator's publisher and players honour the E-RTMP
//! ReconnectRequest make-before-break, and the run completes with every client reconnected
//! and no video frame lost.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::u;
use rtmp_edge::config::Config;
use rtmp_edge::shard::Server;
use serde_json::Value;

fn edge(tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::default();
    config.rtmp.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.http.enabled = false;
    config.workers.count = 2;
    config.workers.pin = false;
    tweak(&mut config);
    Server::start(config).expect("server starts")
}

/// `[   2s] pub 1/1 play 8/8 | in 1.2 Mbit/s 250 msg/s | ...`: every connection open and
/// media flowing.
fn all_flowing(line: &str, players: u32) -> bool {
    let msgs = line
        .split(" msg/s")
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok());
    line.contains("pub 1/1")
        && line.contains(&format!("play {players}/{players}"))
        && msgs > Some(0)
}

#[test]
fn a_load_run_through_a_draining_edge_reconnects_everyone_to_the_redirect_without_loss() {
    let players = 8;
    let b = edge(|_| {});
    let redirect = format!("rtmp://{}/live", b.local_addrs()[0]);
    let a = edge(|c| {
        c.timeouts.drain_ms = 3000;
        c.drain.redirect_url = redirect.clone();
    });
    let url = format!("rtmp://{}/live/drained", a.local_addrs()[0]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtmp-load"))
        .args(["--url", &url, "--players", &players.to_string()])
        .args(["--duration", "7", "--warmup", "1"])
        .args([
            "--synthetic",
            "600k",
            "--fps",
            "25",
            "--gop",
            "25",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rtmp-load runs");
    // Drain A once the run is up: the progress line (one a second) shows it.
    let mut progress = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "the run never got going");
        let line = progress
            .next()
            .expect("rtmp-load ended before media flowed")
            .unwrap();
        eprintln!("{line}");
        if all_flowing(&line, players) {
            break;
        }
    }
    let drained = Instant::now();
    a.drain();
    let rest = std::thread::spawn(move || {
        for line in progress.map_while(Result::ok) {
            eprintln!("{line}");
        }
    });
    let out = child.wait_with_output().expect("rtmp-load finishes");
    rest.join().unwrap();
    assert!(out.status.success(), "rtmp-load failed: {:?}", out.status);
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON report");

    // A's clients all left for B, so A ended before its drain deadline.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(a.join()));
    rx.recv_timeout(Duration::from_secs(10))
        .expect("A ends")
        .expect("A ends cleanly");
    assert!(drained.elapsed() < Duration::from_secs(15));
    b.shutdown();
    b.join().unwrap();

    assert_eq!(
        u(&r, &["counters", "reconnects"]),
        u64::from(players) + 1,
        "every player and the publisher switched: {r:#}"
    );
    assert_eq!(u(&r, &["counters", "video_frames_lost"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "errors"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "disconnects"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "stalls"]), 0, "{r:#}");
    assert_eq!(u(&r, &["connections", "publishers_up"]), 1, "{r:#}");
    assert_eq!(
        u(&r, &["connections", "players_up"]),
        u64::from(players),
        "{r:#}"
    );
    assert!(
        u(&r, &["counters", "player_video_frames"]) > u64::from(players) * 5 * 25,
        "{r:#}"
    );
}
