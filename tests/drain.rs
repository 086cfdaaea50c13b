//! Graceful drain and reload in process: E-RTMP ReconnectRequests to the clients that can
//! reconnect, the others served until `timeouts.drain_ms` and then closed with a typed reason,
//! `/healthz` answering 503, RTMP refused, a drain that ends when everyone has left, and a
//! reload whose limits take effect.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{get, media, wait_for_log, Client, TestServer, WAIT};
use rtmp_edge::config::Config;
use rtmp_edge::rtmp::session::ClientEvent;
use rtmp_edge::shard::CloseReason;

const VIDEO: u8 = 9;
const AUDIO: u8 = 8;

fn drain_config(drain_ms: u64, redirect: &str) -> Config {
    let mut config = Config::default();
    config.timeouts.drain_ms = drain_ms;
    config.drain.redirect_url = redirect.to_string();
    config
}

/// Headers and a keyframe, so players have something to start with.
fn start_stream(p: &mut Client) {
    p.send(VIDEO, 0, &media::avc_header());
    p.send(AUDIO, 0, &media::aac_header());
    p.send(VIDEO, 0, &media::avc_frame(true, 0, 2000));
}

/// Polls `f` until it returns `Some`, bounded by WAIT.
fn poll_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn reconnect_request(c: &mut Client) -> Option<String> {
    match c.wait_for("reconnect request", |e| {
        matches!(e, ClientEvent::ReconnectRequest { .. })
    }) {
        ClientEvent::ReconnectRequest { tc_url, .. } => tc_url,
        _ => unreachable!(),
    }
}

#[test]
fn reconnect_capable_publishers_and_players_are_asked_to_reconnect_to_the_redirect_url() {
    let redirect = "rtmp://127.0.0.1:1936/live";
    let server = TestServer::start(drain_config(2000, redirect));
    let mut publisher = Client::publish(server.addr, "live", "cam");
    start_stream(&mut publisher);
    let mut player = Client::play(server.addr, "live", "cam");
    player.media(3);
    server.server().drain();
    assert_eq!(reconnect_request(&mut player).as_deref(), Some(redirect));
    assert_eq!(reconnect_request(&mut publisher).as_deref(), Some(redirect));
    // Both are served as before while they stay.
    publisher.send(VIDEO, 40, &media::avc_frame(false, 1, 2000));
    let got = player.media(1);
    assert_eq!(
        got[0].2.as_ref(),
        media::avc_frame(false, 1, 2000).as_slice()
    );
    wait_for_log(&["drain started", "worker=0"]);
}

#[test]
fn players_are_asked_before_publishers() {
    // Two capable clients over a 1 s spread: one at once, the other half a second later.
    let server = TestServer::start(drain_config(2000, ""));
    let mut publisher = Client::publish(server.addr, "live", "cam");
    start_stream(&mut publisher);
    let mut player = Client::play(server.addr, "live", "cam");
    player.media(3);
    server.server().drain();
    reconnect_request(&mut player);
    reconnect_request(&mut publisher);
    let asked = common::wait_for_log_count(&["asked to reconnect"], 2, WAIT);
    let player_tag = format!(":{} ", player.local_port());
    let publisher_tag = format!(":{} ", publisher.local_port());
    assert!(asked[0].contains(&player_tag), "{asked:?}");
    assert!(asked[1].contains(&publisher_tag), "{asked:?}");
}

#[test]
fn without_a_redirect_url_the_request_names_no_tc_url() {
    let server = TestServer::start(drain_config(2000, ""));
    let mut player = Client::play(server.addr, "live", "cam");
    server.server().drain();
    assert_eq!(reconnect_request(&mut player), None);
}

#[test]
fn a_client_without_caps_ex_plays_until_drain_ms_and_is_then_closed_for_the_drain() {
    let drain_ms = 800;
    let server = TestServer::start(drain_config(drain_ms, ""));
    let mut publisher = Client::publish(server.addr, "live", "cam");
    start_stream(&mut publisher);
    let mut legacy = Client::play_with_caps(server.addr, "live", "cam", 0);
    legacy.media(3);
    let drained = Instant::now();
    server.server().drain();
    wait_for_log(&["drain started"]);
    // Still served during the drain.
    for seq in 1..5u32 {
        publisher.send(VIDEO, seq * 40, &media::avc_frame(false, seq, 2000));
        let got = legacy.media(1);
        assert_eq!(
            got[0].2.as_ref(),
            media::avc_frame(false, seq, 2000).as_slice()
        );
    }
    let closed = server.closed(legacy.local_port());
    assert_eq!(closed.reason, CloseReason::DrainDeadline { ms: drain_ms });
    assert!(
        drained.elapsed() >= Duration::from_millis(drain_ms),
        "closed only at the drain deadline, after {:?}",
        drained.elapsed()
    );
    legacy.wait_closed();
    wait_for_log(&["drain ended: deadline passed"]);
}

#[test]
fn a_legacy_client_never_gets_a_reconnect_request() {
    let server = TestServer::start(drain_config(600, "rtmp://127.0.0.1:1936/live"));
    let mut legacy = Client::play_with_caps(server.addr, "live", "cam", 0);
    server.server().drain();
    let deadline = Instant::now() + WAIT;
    while !legacy.closed {
        assert!(
            Instant::now() < deadline,
            "not closed at the drain deadline"
        );
        legacy.pump(Duration::from_millis(100));
        assert!(
            !legacy
                .events
                .iter()
                .any(|e| matches!(e, ClientEvent::ReconnectRequest { .. })),
            "{:?}",
            legacy.events
        );
    }
    let stop = legacy
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Status { code, .. } if code == "NetStream.Play.Stop"));
    assert!(
        stop,
        "told the stream stopped at the deadline: {:?}",
        legacy.events
    );
}

#[test]
fn healthz_answers_ok_and_then_503_while_draining_and_rtmp_is_refused() {
    let server = TestServer::start(drain_config(60_000, ""));
    let (head, body) = get(server.http, "/healthz");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"ok\n");
    // Someone stays, so the drain lasts.
    let _player = Client::play_with_caps(server.addr, "live", "cam", 0);
    server.server().drain();
    let (head, body) = poll_until("healthz 503", || {
        let (head, body) = get(server.http, "/healthz");
        head.starts_with("HTTP/1.1 503").then_some((head, body))
    });
    assert!(head.contains("503 Service Unavailable"), "{head}");
    assert_eq!(body, b"draining\n");
    let refused = poll_until("RTMP refused", || TcpStream::connect(server.addr).err());
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn a_drain_ends_as_soon_as_every_client_has_left() {
    let server = TestServer::start(drain_config(60_000, ""));
    let mut player = Client::play(server.addr, "live", "cam");
    let started = Instant::now();
    server.server().drain();
    reconnect_request(&mut player);
    drop(player);
    let server = server.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(server.join()));
    rx.recv_timeout(WAIT)
        .expect("the workers end once their clients left, long before drain_ms")
        .expect("clean end");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn shutdown_during_a_drain_stops_at_once() {
    let server = TestServer::start(drain_config(60_000, ""));
    let legacy = Client::play_with_caps(server.addr, "live", "cam", 0);
    server.server().drain();
    wait_for_log(&["drain started"]);
    server.server().shutdown();
    let closed = server.closed(legacy.local_port());
    assert_eq!(closed.reason, CloseReason::ShuttingDown);
    wait_for_log(&["drain ended: shutdown asked for"]);
}

#[test]
fn a_reload_applies_a_new_per_ip_limit_to_new_connections_and_keeps_old_ones() {
    let server = TestServer::start(Config::default());
    let mut publisher = Client::publish(server.addr, "live", "cam");
    start_stream(&mut publisher);
    let mut player = Client::play(server.addr, "live", "cam");
    player.media(3);
    let mut config = Config::default();
    config.rtmp.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.http.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.workers.count = 1;
    config.workers.pin = false;
    config.workers.max_connections_per_ip = 1;
    server.server().reload(config);
    wait_for_log(&["configuration reloaded"]);
    poll_until("the new limit refuses a third connection", || {
        let mut c = Client::connect(server.addr, "live");
        let deadline = Instant::now() + Duration::from_secs(2);
        while !c.closed && !c.session.is_connected() && Instant::now() < deadline {
            c.pump(Duration::from_millis(50));
        }
        c.closed.then_some(())
    });
    wait_for_log(&["connection refused: max_connections_per_ip reached"]);
    // Those already connected go on.
    publisher.send(VIDEO, 40, &media::avc_frame(false, 1, 2000));
    assert_eq!(
        player.media(1)[0].2.as_ref(),
        media::avc_frame(false, 1, 2000).as_slice()
    );
}

#[test]
fn a_reload_that_changes_a_listener_names_it_in_one_warning() {
    let server = TestServer::start(Config::default());
    let mut config = Config::default();
    config.rtmp.listen = vec!["127.0.0.1:1".parse().unwrap()];
    // What the test server was started with (port 0, resolved at bind).
    config.http.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.workers.count = 1;
    config.workers.pin = false;
    server.server().reload(config);
    let line = wait_for_log(&["need a restart"]);
    assert!(line.contains("rtmp.listen"), "{line}");
    assert!(!line.contains("http.listen"), "{line}");
    // Still serving on the old address.
    let _ = Client::play(server.addr, "live", "cam");
}

#[test]
fn a_reload_that_sets_record_dir_records_streams_published_afterwards() {
    let dir = std::env::temp_dir().join(format!("rtmp-edge-reload-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = TestServer::start(Config::default());
    // Published before the reload: not recorded.
    let mut before = Client::publish(server.addr, "live", "before");
    start_stream(&mut before);
    let mut config = Config::default();
    config.rtmp.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.http.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.workers.count = 1;
    config.workers.pin = false;
    config.record.dir = dir.to_string_lossy().into_owned();
    server.server().reload(config);
    wait_for_log(&["configuration reloaded"]);
    let mut after = Client::publish(server.addr, "live", "after");
    start_stream(&mut after);
    after.session.stop();
    after.flush();
    let line = wait_for_log(&["recording closed", "stream=live/after "]);
    let path = line
        .split("path=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let path = std::path::PathBuf::from(path.trim_matches('"'));
    assert!(path.starts_with(&dir), "{path:?}");
    assert!(std::fs::metadata(&path).unwrap().len() > 0);
    before.session.stop();
    before.flush();
    server.shutdown();
    let recorded: Vec<_> = walk(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        recorded.len(),
        1,
        "only the stream published after: {recorded:?}"
    );
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// ffmpeg does not implement ReconnectRequest: its publisher and player are served through
/// the drain and closed cleanly at `drain_ms` (typed reason); the player's recording decodes.
#[test]
fn ffmpeg_publisher_and_player_are_served_until_drain_ms_then_closed_cleanly() {
    use common::procs::{ffmpeg_play, ffmpeg_publish, h264_source, run_ok};
    use common::tools::{tool, Dir};
    let ffmpeg = tool("ffmpeg");
    let ffprobe = tool("ffprobe");
    let dir = Dir::new("drain-ffmpeg");
    let source = h264_source(&dir, "source", "testsrc=size=320x240:rate=25", 20);
    let drain_ms = 1_500;
    let server = TestServer::start(drain_config(drain_ms, ""));
    let url = format!("rtmp://{}/live/ff", server.addr);
    let _publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &url, "publisher");
    let out = dir.path("played.flv");
    let mut player = ffmpeg_play(&dir, &ffmpeg, &url, &out, "player");
    common::wait_for_log_count(&["live/ff", "playing"], 1, WAIT);
    let mut watcher = Client::play(server.addr, "live", "ff");
    watcher.media(25);
    let drained = Instant::now();
    server.server().drain();
    let journal = server.journal();
    let deadline = CloseReason::DrainDeadline { ms: drain_ms };
    // ffmpeg's two connections (not the watcher) close at the deadline, with its reason.
    let seen = std::cell::RefCell::new(Vec::new());
    for who in ["one ffmpeg", "the other ffmpeg"] {
        let closed = journal.wait_for(who, |c| {
            c.reason == deadline
                && c.peer.port() != watcher.local_port()
                && !seen.borrow().contains(&c.peer.port())
        });
        seen.borrow_mut().push(closed.peer.port());
        assert!(
            drained.elapsed() >= Duration::from_millis(drain_ms),
            "{who}: {closed:?}"
        );
    }
    let status = player.wait(WAIT);
    assert!(
        status.success(),
        "ffmpeg's player ends cleanly: {}",
        player.output()
    );
    let frames = run_ok(
        "ffprobe",
        std::process::Command::new(&ffprobe)
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(&out),
    );
    let frames: u32 = frames.trim().parse().unwrap();
    assert!(frames >= 25, "the recording decodes ({frames} frames)");
}
