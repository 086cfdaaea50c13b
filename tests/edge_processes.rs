//! The edge relay as processes: `rtmp-edge` binaries (origins and edges, each started with a
//! config file on loopback ports, two workers) with real clients (ffmpeg, rtmpdump, the
//! in-repo client) and nginx-rtmp. An edge pulls on demand from its origins, once per stream
//! whatever its players, fails over when an origin is killed, refuses or stays silent, and
//! pushes what is published on it. Frames are compared bit for bit (`-f framemd5`) with the
//! source. A missing tool is a failure, never a skip: `tools/test.sh` installs them.

mod common;

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::procs::{
    assert_run_of, assert_same_frames, assert_tail_of, ffmpeg_play, ffmpeg_publish, frame_md5s,
    h264_source, is_video_frame, name_pulled_first_from, pull_from, watch, Proc, ServerProc, FPS,
};
use common::tools::{tool, Dir};
use common::Client;

/// A publisher of a few seconds of media runs within this.
const PUBLISH_LIMIT: Duration = Duration::from_secs(30);
/// Players end by themselves within this once their stream has ended (the edge gives up on
/// an ended pull after `player_wait_ms`), else they are stopped with SIGINT.
const PLAYER_LIMIT: Duration = Duration::from_secs(15);
/// Every other bounded wait (a log line, a listener).
const WAIT: Duration = Duration::from_secs(10);

/// A config: workers not pinned (several processes share the cores), a short shutdown, then
/// the sections in `rest`.
fn config(rest: &str) -> String {
    format!("[workers]\npin = false\n\n[timeouts]\nshutdown_ms = 500\n\n{rest}")
}

/// An edge pulling from `origins`; its players are let go 2 s after their stream's last
/// media. `relay` goes on in the `[relay]` section (and may open more sections).
fn edge_config(origins: &[String], relay: &str) -> String {
    config(&format!(
        "[relay]\norigins = {origins:?}\nplayer_wait_ms = 2000\n{relay}"
    ))
}

/// An origin process (defaults), logging as `name`.
fn origin(dir: &Dir, name: &str) -> ServerProc {
    ServerProc::start(dir, name, &config(""))
}

/// Seconds since midnight of a log line's RFC 3339 timestamp (`2026-12-06T04:32:11.290527Z`).
fn log_time(line: &str) -> f64 {
    let time = &line[11..line.find('Z').expect("a timestamped log line")];
    let mut parts = time.split(':').map(|p| p.parse::<f64>().unwrap());
    let (h, m, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    h * 3600.0 + m * 60.0 + s
}

/// rtmpdump playing `url` live into `out`.
fn rtmpdump_play(dir: &Dir, url: &str, out: &Path, name: &str) -> Proc {
    Proc::spawn(
        name,
        dir,
        Command::new(tool("rtmpdump"))
            .args(["-q", "--live", "-r", url, "-o"])
            .arg(out),
    )
}

/// One ffmpeg publishing `source` in real time to every one of `urls` (the tee muxer; a
/// target that fails is dropped and the others carry on).
fn ffmpeg_publish_to_all(dir: &Dir, source: &Path, urls: &[String], name: &str) -> Proc {
    let targets: Vec<String> = urls
        .iter()
        .map(|u| format!("[f=flv:onfail=ignore]{u}"))
        .collect();
    Proc::spawn(
        name,
        dir,
        Command::new(tool("ffmpeg"))
            .args(["-v", "warning", "-nostats", "-re", "-i"])
            .arg(source)
            .args(["-map", "0", "-c", "copy", "-f", "tee"])
            .arg(targets.join("|")),
    )
}

/// Waits for `p` (a player) to end by itself, then SIGINT; returns its decoded frames.
fn frames_of(player: &mut Proc, out: &Path) -> Vec<String> {
    player.stop_after(PLAYER_LIMIT, libc::SIGINT);
    frame_md5s(&tool("ffmpeg"), out)
}

#[test]
fn ffmpeg_and_rtmpdump_on_an_edge_get_the_frames_published_on_its_origin() {
    let ffmpeg = tool("ffmpeg");
    let dir = Dir::new("edge-pull");
    let source = h264_source(&dir, "src.flv", "testsrc", 4);
    let mut origin = origin(&dir, "origin");
    let mut edge = ServerProc::start(&dir, "edge", &edge_config(&[origin.base_url()], ""));
    let url = edge.url("pulled");
    let (ff_out, rd_out) = (dir.path("ffmpeg.flv"), dir.path("rtmpdump.flv"));
    let mut players = [
        ffmpeg_play(&dir, &ffmpeg, &url, &ff_out, "ffmpeg-player"),
        rtmpdump_play(&dir, &url, &rd_out, "rtmpdump"),
    ];
    // Both wait on the edge, whose pull waits on the origin: they get the stream from its
    // first frame.
    edge.wait_for_log(&["fanout::hub: playing"], 2, WAIT);
    origin.wait_for_log(
        &["playing", "stream=live/pulled", "role=\"player\""],
        1,
        WAIT,
    );
    let mut publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &origin.url("pulled"), "pub");
    assert!(
        publisher.wait(PUBLISH_LIMIT).success(),
        "{}",
        publisher.output()
    );
    let expected = frame_md5s(&ffmpeg, &source);
    assert_eq!(expected.len(), 4 * FPS);
    for (player, out) in players.iter_mut().zip([&ff_out, &rd_out]) {
        let got = frames_of(player, out);
        assert_same_frames(&format!("{}", out.display()), &expected, &got, false);
    }
}

/// Starts an origin with `name` published (6 s, in real time) and an edge pulling from it;
/// returns them with the publisher and the source once the origin has the stream.
fn pulled_stream(dir: &Dir, name: &str) -> (ServerProc, ServerProc, Proc, std::path::PathBuf) {
    let source = h264_source(dir, "src.flv", "testsrc2", 6);
    let mut origin = origin(dir, "origin");
    let edge = ServerProc::start(dir, "edge", &edge_config(&[origin.base_url()], ""));
    let publisher = ffmpeg_publish(dir, &tool("ffmpeg"), &source, &origin.url(name), "pub");
    origin.wait_for_log(&["publishing", &format!("stream=live/{name}")], 1, WAIT);
    (origin, edge, publisher, source)
}

/// ffmpeg reading the edge's HLS playlist of `name` from its start (`-live_start_index 0`)
/// until the playlist ends: its frames are `source`'s from a keyframe to the end.
fn assert_hls_is_the_tail_of(source: &Path, dir: &Dir, edge: &ServerProc, name: &str) {
    let ffmpeg = tool("ffmpeg");
    let out = dir.path("hls.ts");
    let url = format!("http://{}/live/{name}.m3u8", edge.http);
    let mut reader = Proc::spawn(
        "hls-reader",
        dir,
        Command::new(&ffmpeg)
            .args(["-v", "warning", "-nostats", "-live_start_index", "0", "-i"])
            .arg(&url)
            .args(["-c", "copy", "-f", "mpegts", "-y"])
            .arg(&out),
    );
    let status = reader.wait(PUBLISH_LIMIT);
    assert!(status.success(), "HLS reader: {}", reader.output());
    let expected = frame_md5s(&ffmpeg, source);
    assert_tail_of(
        "ffmpeg over HLS",
        &expected,
        &frame_md5s(&ffmpeg, &out),
        2 * FPS,
    );
}

#[test]
fn ffmpeg_reads_the_edge_hls_of_a_stream_pulled_for_an_rtmp_player() {
    let dir = Dir::new("edge-hls");
    let (_origin, edge, mut publisher, source) = pulled_stream(&dir, "hls");
    // An RTMP player makes the edge pull the stream (answered once its media flows)...
    let _player = Client::play(edge.rtmp, "live", "hls");
    // ...and the edge packages it for HLS on demand; the playlist ends when the pull does.
    assert_hls_is_the_tail_of(&source, &dir, &edge, "hls");
    assert!(publisher.wait(PUBLISH_LIMIT).success());
}

#[test]
fn an_hls_request_alone_makes_the_edge_pull_the_stream() {
    let dir = Dir::new("edge-hls-alone");
    let (_origin, edge, mut publisher, source) = pulled_stream(&dir, "alone");
    assert_hls_is_the_tail_of(&source, &dir, &edge, "alone");
    assert!(publisher.wait(PUBLISH_LIMIT).success());
}

#[test]
fn twenty_players_on_both_edge_workers_make_one_pull_from_the_origin() {
    let dir = Dir::new("edge-one-pull");
    let (mut origin, mut edge, _publisher, _) = pulled_stream(&dir, "many");
    let mut players: Vec<Client> = (0..20)
        .map(|_| Client::play(edge.rtmp, "live", "many"))
        .collect();
    for player in &mut players {
        player.wait_for("a keyframe", |e| {
            is_video_frame(e).is_some_and(|(_, key)| key)
        });
    }
    drop(players);
    let closed = edge.wait_for_log(
        &["connection closed", "stream=live/many", "role=\"player\""],
        20,
        WAIT,
    );
    let workers: BTreeSet<&str> = closed
        .iter()
        .map(|l| {
            l.split("worker=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(workers.len(), 2, "players on both workers: {closed:?}");
    // The edge closes its pull on stop; the origin then logs the pull's close.
    edge.stop();
    let served = origin.wait_for_log(
        &["connection closed", "stream=live/many", "role=\"player\""],
        1,
        WAIT,
    );
    let plays = origin.log_lines_with(&["playing", "stream=live/many"]);
    assert_eq!(
        (served.len(), plays.len()),
        (1, 1),
        "one play connection from the edge: {served:?} {plays:?}"
    );
}

/// The in-repo client playing `name` on `edge` in a thread: sends the arrival time and the
/// timestamp of each video frame until the edge closes the connection (or `limit`).
#[test]
fn players_on_the_edge_carry_on_from_origin_b_when_origin_a_is_killed() {
    let ffmpeg = tool("ffmpeg");
    let dir = Dir::new("edge-sigkill");
    let source = h264_source(&dir, "src.flv", "testsrc", 6);
    let (mut a, mut b) = (origin(&dir, "origin-a"), origin(&dir, "origin-b"));
    let origins = [a.base_url(), b.base_url()];
    let name = name_pulled_first_from(0, &origins);
    let mut edge = ServerProc::start(&dir, "edge", &edge_config(&origins, ""));
    let mut publisher =
        ffmpeg_publish_to_all(&dir, &source, &[a.url(&name), b.url(&name)], "tee-pub");
    for origin in [&mut a, &mut b] {
        origin.wait_for_log(&["publishing", &format!("stream=live/{name}")], 1, WAIT);
    }
    let frames = watch(edge.rtmp, &name, Duration::from_secs(30));
    let out = dir.path("ffmpeg.flv");
    let mut player = ffmpeg_play(&dir, &ffmpeg, &edge.url(&name), &out, "ffmpeg-player");
    edge.wait_for_log(
        &["pull: connecting to origin", &pull_from(&a.url(&name))],
        1,
        WAIT,
    );
    let mut got = Vec::new();
    // Killed mid-GOP.
    while got.len() < FPS + FPS / 2 {
        got.push(frames.recv_timeout(WAIT).expect("frames from origin A"));
    }
    let killed_at = Instant::now();
    a.kill();
    edge.wait_for_log(
        &["pull: connecting to origin", &pull_from(&b.url(&name))],
        1,
        WAIT,
    );
    // Until the edge stops the player, the stream having ended on B too.
    got.extend(frames.iter());
    let after = got.iter().filter(|(at, _)| *at > killed_at).count();
    assert!(after >= 2 * FPS, "{after} frames from B after the kill");
    let gap = got.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap();
    assert!(
        gap <= Duration::from_secs(2),
        "a gap of {gap:?} between video frames"
    );
    let stamps: Vec<u32> = got.iter().map(|f| f.1).collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "timestamps monotonic across the failover: {stamps:?}"
    );
    let _ = publisher.wait(PUBLISH_LIMIT);
    // ffmpeg on the same connection: every frame from the source, through to its last.
    let expected = frame_md5s(&ffmpeg, &source);
    let decoded = frames_of(&mut player, &out);
    let at: Vec<usize> = decoded
        .iter()
        .map(|m| {
            expected
                .iter()
                .position(|e| e == m)
                .unwrap_or_else(|| panic!("ffmpeg decoded a frame not in the source"))
        })
        .collect();
    assert_eq!(
        at.last(),
        Some(&(expected.len() - 1)),
        "ffmpeg got to the end"
    );
    assert_run_of("ffmpeg before the kill", &expected, &decoded[..FPS]);
    // B starts the edge again from its GOP cache: frames in order, but for at most one step
    // back to a keyframe of B's cache (frames A had delivered since, shown again).
    let steps_back: Vec<&[usize]> = at.windows(2).filter(|w| w[1] != w[0] + 1).collect();
    assert!(
        steps_back.len() <= 1
            && steps_back
                .iter()
                .all(|w| w[1] <= w[0] && w[1] % FPS == 0 && w[0] - w[1] < 2 * FPS),
        "frames in source order but for one step back to a keyframe: {at:?}"
    );
}

/// Origin A (the first in the stream's order) does not deliver; B has the stream (published
/// 4 s in real time); ffmpeg on the edge gets it from B. Returns the edge's log.
fn a_fails_b_delivers(dir: &Dir, a_url: &str, relay: &str) -> Vec<String> {
    let source = h264_source(dir, "src.flv", "smptebars", 4);
    let mut b = origin(dir, "origin-b");
    let origins = [a_url.to_string(), b.base_url()];
    let name = name_pulled_first_from(0, &origins);
    let edge = ServerProc::start(dir, "edge", &edge_config(&origins, relay));
    let stream = format!("stream=live/{name}");
    publish_then_play(
        dir,
        &source,
        &b.url(&name),
        || drop(b.wait_for_log(&["publishing", &stream], 1, WAIT)),
        &edge.url(&name),
        "ffmpeg on the edge via B",
    );
    let pulls = edge.log_lines_with(&["pull: connecting to origin"]);
    assert!(
        pulls.len() >= 2
            && pulls[0].contains(&pull_from(&format!("{a_url}/live/{name}")))
            && pulls[1].contains(&pull_from(&b.url(&name))),
        "A first, then B: {pulls:?}"
    );
    edge.log_lines_with(&[""])
}

/// Seconds from the edge's first attempt at an origin to its second.
fn failover_time(edge_log: &[String]) -> f64 {
    let pulls: Vec<&String> = edge_log
        .iter()
        .filter(|l| l.contains("pull: connecting to origin"))
        .collect();
    log_time(pulls[1]) - log_time(pulls[0])
}

#[test]
fn an_origin_that_refuses_the_play_is_passed_over_for_the_next() {
    let dir = Dir::new("edge-refused");
    let a = ServerProc::start(
        &dir,
        "origin-a",
        &config("[streams]\nwait_for_publisher = false\n"),
    );
    let edge_log = a_fails_b_delivers(&dir, &a.base_url(), "");
    // Failed over on the refusal, not after the origin timeout (3 s).
    let took = failover_time(&edge_log);
    assert!(took < 1.0, "moved on after {took} s");
    assert!(
        edge_log
            .iter()
            .any(|l| l.contains("origin refused the pull code=NetStream.Play.StreamNotFound")),
        "{edge_log:?}"
    );
}

#[test]
fn an_origin_that_accepts_and_says_nothing_is_passed_over_after_the_origin_timeout() {
    let dir = Dir::new("edge-silent");
    // Accepts TCP (the kernel completes the connections) and never answers the handshake.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let a_url = format!("rtmp://{}", silent.local_addr().unwrap());
    let took = failover_time(&a_fails_b_delivers(
        &dir,
        &a_url,
        "origin_timeout_ms = 1000\n",
    ));
    assert!((1.0..2.0).contains(&took), "moved on after {took} s");
}

#[test]
fn a_stream_published_on_the_edge_is_pushed_to_the_origin_and_not_pulled_back_when_it_ends() {
    let ffmpeg = tool("ffmpeg");
    let dir = Dir::new("edge-push");
    let source = h264_source(&dir, "src.flv", "rgbtestsrc", 4);
    // The origin's players are let go when the pushed stream ends.
    let mut origin = ServerProc::start(
        &dir,
        "origin",
        &config("[streams]\nkeep_players_on_unpublish = false\n"),
    );
    // The edge pushes to the origin it also pulls from.
    let push = format!(
        "\n[[relay.push]]\napp = \"live\"\nurl = \"{}/live\"\n",
        origin.base_url()
    );
    let mut edge = ServerProc::start(&dir, "edge", &edge_config(&[origin.base_url()], &push));
    let out = dir.path("ffmpeg.flv");
    let mut player = ffmpeg_play(&dir, &ffmpeg, &origin.url("pushed"), &out, "ffmpeg-player");
    origin.wait_for_log(&["playing", "stream=live/pushed"], 1, WAIT);
    let mut publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &edge.url("pushed"), "pub");
    edge.wait_for_log(&["push target publishing"], 1, WAIT);
    assert!(
        publisher.wait(PUBLISH_LIMIT).success(),
        "{}",
        publisher.output()
    );
    let got = frames_of(&mut player, &out);
    assert_same_frames(
        "ffmpeg on the origin",
        &frame_md5s(&ffmpeg, &source),
        &got,
        false,
    );
    // The publisher's close is logged after what its leaving set off (the push stopped):
    // its stream was not pulled back from the origin for the push's connection.
    edge.wait_for_log(
        &[
            "connection closed",
            "stream=live/pushed",
            "role=\"publisher\"",
        ],
        1,
        WAIT,
    );
    assert_eq!(
        edge.log_lines_with(&["pull: connecting to origin", "live/pushed"]),
        Vec::<String>::new(),
        "a pull of the stream that was pushed"
    );
}

const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// nginx with the RTMP module on a free loopback port, as a child process killed by PID:
/// application `live` starts players on a keyframe and drops them with their publisher
/// (`idle_streams off`). Its error log (info) is its output.
fn nginx(dir: &Dir) -> (Proc, u16) {
    let nginx = tool("nginx");
    assert!(
        Path::new(RTMP_MODULE).exists(),
        "the nginx RTMP module ({RTMP_MODULE}) is missing: apt-get install -y libnginx-mod-rtmp"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let prefix = dir.path("nginx");
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let conf = format!(
        "load_module {RTMP_MODULE};\ndaemon off;\nmaster_process off;\nworker_processes 1;\n\
         pid {p}/nginx.pid;\nerror_log stderr info;\nevents {{ worker_connections 256; }}\n\
         rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
           application live {{ live on; record off; wait_key on; wait_video on; \
         idle_streams off; }} }} }}\n",
        p = prefix.display()
    );
    let path = prefix.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let mut proc = Proc::spawn(
        "nginx",
        dir,
        Command::new(nginx)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&path),
    );
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(proc.exited().is_none(), "nginx exited: {}", proc.output());
        assert!(
            Instant::now() < deadline,
            "nginx did not listen: {}",
            proc.output()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (proc, port)
}

/// ffmpeg publishes `source` in real time to `publish_to`; once `ready` has seen the stream
/// reach the server it is played from, ffmpeg plays `play_from` until the stream ends there:
/// its frames are the source's from a keyframe to the end.
fn publish_then_play(
    dir: &Dir,
    source: &Path,
    publish_to: &str,
    ready: impl FnOnce(),
    play_from: &str,
    who: &str,
) {
    let ffmpeg = tool("ffmpeg");
    let mut publisher = ffmpeg_publish(dir, &ffmpeg, source, publish_to, "pub");
    ready();
    let out = dir.path("ffmpeg.flv");
    let mut player = ffmpeg_play(dir, &ffmpeg, play_from, &out, "ffmpeg-player");
    assert!(
        publisher.wait(PUBLISH_LIMIT).success(),
        "{}",
        publisher.output()
    );
    let got = frames_of(&mut player, &out);
    assert_tail_of(who, &frame_md5s(&ffmpeg, source), &got, 2 * FPS);
}

#[test]
fn an_edge_pulls_from_nginx_rtmp_with_the_same_frames() {
    let dir = Dir::new("edge-nginx-pull");
    let source = h264_source(&dir, "src.flv", "testsrc", 5);
    let (mut nginx, port) = nginx(&dir);
    let nginx_url = format!("rtmp://127.0.0.1:{port}");
    let edge = ServerProc::start(
        &dir,
        "edge",
        &edge_config(std::slice::from_ref(&nginx_url), ""),
    );
    // nginx starts the edge at its next keyframe and drops it with the publisher.
    publish_then_play(
        &dir,
        &source,
        &format!("{nginx_url}/live/n"),
        || drop(nginx.wait_for_output(&["publish: name='n'"], 1, WAIT)),
        &edge.url("n"),
        "ffmpeg on the edge via nginx",
    );
}

#[test]
fn an_edge_pushes_to_nginx_rtmp_with_the_same_frames() {
    let dir = Dir::new("edge-nginx-push");
    let source = h264_source(&dir, "src.flv", "testsrc2", 5);
    let (mut nginx, port) = nginx(&dir);
    let push = format!("[[relay.push]]\napp = \"live\"\nurl = \"rtmp://127.0.0.1:{port}/live\"\n");
    let mut edge = ServerProc::start(&dir, "edge", &config(&push));
    publish_then_play(
        &dir,
        &source,
        &edge.url("p"),
        || {
            edge.wait_for_log(&["push target publishing"], 1, WAIT);
            nginx.wait_for_output(&["publish: name='p'"], 1, WAIT);
        },
        &format!("rtmp://127.0.0.1:{port}/live/p"),
        "ffmpeg on nginx",
    );
}
