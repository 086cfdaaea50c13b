//! The edge relay through real sockets, in process: an edge pulls from origins on demand
//! (once per stream, failing over), and pushes what is published on it. Each server is a
//! full `Server` on its own loopback port.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::procs::name_pulled_first_from;
use common::{media, Client, TestServer, WAIT};
use rtmp_edge::config::{Config, PushConfig};
use rtmp_edge::fanout::Close;
use rtmp_edge::rtmp::session::ClientEvent;
use rtmp_edge::shard::CloseReason;

const VIDEO: u8 = 9;
const AUDIO: u8 = 8;
const DATA: u8 = 18;

fn publish_gop(p: &mut Client, first_ts: u32, frames: u32, seq0: u32) {
    for i in 0..frames {
        let ts = first_ts + i * 40;
        p.send(VIDEO, ts, &media::avc_frame(i == 0, seq0 + i, 3000));
        p.send(AUDIO, ts + 5, &media::aac_frame(seq0 + i));
    }
}

fn send_headers(p: &mut Client) {
    p.send(DATA, 0, &media::set_data_frame());
    p.send(VIDEO, 0, &media::avc_header());
    p.send(AUDIO, 0, &media::aac_header());
}

/// An edge pulling from `origins` (`rtmp://127.0.0.1:port`), with `workers` workers.
fn edge(origins: &[&TestServer], workers: usize, tune: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = Config::default();
    config.workers.count = workers;
    config.relay.origins = origins
        .iter()
        .map(|o| format!("rtmp://{}", o.addr))
        .collect();
    tune(&mut config);
    TestServer::start(config)
}

/// Waits (bounded) until `player` has a video frame whose payload is `frame`; returns its
/// timestamp and every media message before it.
fn wait_for_frame(player: &mut Client, frame: &[u8]) -> (u32, Vec<(u8, u32, bytes::Bytes)>) {
    let mut seen = Vec::new();
    loop {
        let (t, ts, payload) = player.media(1).remove(0);
        if t == VIDEO && payload.as_ref() == frame {
            return (ts, seen);
        }
        seen.push((t, ts, payload));
    }
}

#[test]
fn an_edge_pulls_a_stream_once_for_twenty_players_on_two_workers() {
    let origin = TestServer::with_defaults();
    let mut publisher = Client::publish(origin.addr, "live", "pulled");
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, 10, 0);

    let edge = edge(&[&origin], 2, |_| {});
    let mut players: Vec<Client> = (0..20)
        .map(|_| Client::play(edge.addr, "live", "pulled"))
        .collect();
    // Every player starts with the origin's fast start: metadata, both headers, the GOP.
    for player in &mut players {
        let got = player.media(3);
        let kinds: HashSet<u8> = got.iter().map(|m| m.0).collect();
        assert_eq!(kinds, HashSet::from([DATA, VIDEO, AUDIO]), "headers first");
        assert!(got
            .iter()
            .any(|m| m.2.as_ref() == media::avc_header().as_slice()));
        assert!(got
            .iter()
            .any(|m| m.2.as_ref() == media::aac_header().as_slice()));
    }
    publish_gop(&mut publisher, 400, 5, 100);
    for player in &mut players {
        let (_, before) = wait_for_frame(player, &media::avc_frame(true, 100, 3000));
        let stamps: Vec<u32> = before.iter().map(|m| m.1).collect();
        assert!(
            stamps.windows(2).all(|w| w[1] + 40 >= w[0]),
            "timestamps ordered: {stamps:?}"
        );
        let next = player.media(2);
        assert!(next
            .iter()
            .any(|m| m.2.as_ref() == media::aac_frame(100).as_slice()));
    }
    drop(players);
    edge.shutdown();
    drop(publisher);
    let journal = origin.journal();
    origin.shutdown();
    // The origin served one play connection to the edge, whatever the number of players
    // and workers there: with the publisher, two connections of the stream.
    let closes = journal.all();
    let of_stream = closes
        .iter()
        .filter(|c| {
            c.stream
                .as_ref()
                .is_some_and(|s| s.as_str() == "live/pulled")
        })
        .count();
    assert_eq!(of_stream, 2, "the publisher and one pull: {closes:?}");
}

/// Plays `count` frames (video and audio) of a stream published in lock step on two
/// origins; shuts down whichever origin the edge pulls from; the players carry on with the
/// other one's frames: same connections, timestamps monotonic, no gap over 2 s.
#[test]
fn players_carry_on_from_the_second_origin_when_the_first_goes_away() {
    let a = TestServer::with_defaults();
    let b = TestServer::with_defaults();
    let origins = vec![format!("rtmp://{}", a.addr), format!("rtmp://{}", b.addr)];
    let name = name_pulled_first_from(0, &origins);
    let mut pub_a = Client::publish(a.addr, "live", &name);
    let a_addr = a.addr;
    let mut pub_b = Client::publish(b.addr, "live", &name);
    for p in [&mut pub_a, &mut pub_b] {
        send_headers(p);
        publish_gop(p, 0, 5, 0);
    }
    let edge = edge(&[&a, &b], 2, |_| {});
    let mut players: Vec<Client> = (0..4)
        .map(|_| Client::play(edge.addr, "live", &name))
        .collect();
    let mut last_ts = vec![0u32; players.len()];
    for (player, last) in players.iter_mut().zip(&mut last_ts) {
        let (ts, _) = wait_for_frame(player, &media::avc_frame(false, 4, 3000));
        *last = ts;
    }
    common::wait_for_log(&["pull: connecting to origin", &a_addr.to_string()]);
    let failed_at = Instant::now();
    // A goes away (its publisher first, then the server) while B's publisher carries on.
    let stopping = std::thread::spawn(move || {
        drop(pub_a);
        a.shutdown();
    });
    // B's next GOP reaches every player on its existing connection.
    publish_gop(&mut pub_b, 200, 5, 100);
    for (player, last) in players.iter_mut().zip(&last_ts) {
        let (ts, before) = wait_for_frame(player, &media::avc_frame(true, 100, 3000));
        assert!(
            failed_at.elapsed() < Duration::from_secs(2),
            "failover took {:?}",
            failed_at.elapsed()
        );
        let mut stamps: Vec<u32> = before
            .iter()
            .filter(|m| m.0 == VIDEO)
            .map(|m| m.1)
            .collect();
        stamps.push(ts);
        assert!(
            stamps.iter().all(|t| t >= last) && stamps.windows(2).all(|w| w[0] <= w[1]),
            "video timestamps monotonic across the failover (from {last}): {stamps:?}"
        );
        assert!(!player.closed, "the player was not disconnected");
    }
    common::wait_for_log(&["pull: connecting to origin", &b.addr.to_string()]);
    stopping.join().unwrap();
}

/// An origin that accepts TCP and then says nothing: after `origin_timeout_ms` the edge
/// marks it down and pulls from the next.
#[test]
fn a_silent_origin_is_failed_over_after_the_origin_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let b = TestServer::with_defaults();
    let origins = vec![
        format!("rtmp://{silent_addr}"),
        format!("rtmp://{}", b.addr),
    ];
    let name = name_pulled_first_from(0, &origins);
    let mut publisher = Client::publish(b.addr, "live", &name);
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, 5, 0);
    let edge = {
        let mut config = Config::default();
        config.workers.count = 1;
        config.relay.origins = origins.clone();
        config.relay.origin_timeout_ms = 500;
        TestServer::start(config)
    };
    let started = Instant::now();
    let mut player = Client::play(edge.addr, "live", &name);
    let (accepted, _) = silent
        .accept()
        .expect("the edge tries the silent origin first");
    wait_for_frame(&mut player, &media::avc_frame(true, 0, 3000));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < WAIT,
        "failed over after the origin timeout: {took:?}"
    );
    drop(accepted);
}

/// An origin that refuses the play (it does not have the stream, and its players do not
/// wait) is failed over at once.
#[test]
fn an_origin_that_refuses_the_play_is_failed_over_at_once() {
    let mut refusing = Config::default();
    refusing.streams.wait_for_publisher = false;
    let a = TestServer::start(refusing);
    let b = TestServer::with_defaults();
    let origins = vec![format!("rtmp://{}", a.addr), format!("rtmp://{}", b.addr)];
    let name = name_pulled_first_from(0, &origins);
    let mut publisher = Client::publish(b.addr, "live", &name);
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, 5, 0);
    let edge = edge(&[&a, &b], 1, |c| c.relay.origin_timeout_ms = 5_000);
    let started = Instant::now();
    let mut player = Client::play(edge.addr, "live", &name);
    wait_for_frame(&mut player, &media::avc_frame(true, 0, 3000));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no wait for the origin timeout: {:?}",
        started.elapsed()
    );
    common::wait_for_log(&["origin refused the pull", "StreamNotFound"]);
}

/// No origin has the stream: players are answered StreamNotFound after `player_wait_ms`
/// and closed with a typed reason; the edge keeps serving others.
#[test]
fn players_of_a_stream_no_origin_has_are_refused_after_the_wait_bound() {
    let mut refusing = Config::default();
    refusing.streams.wait_for_publisher = false;
    let a = TestServer::start(refusing);
    let edge = edge(&[&a], 1, |c| c.relay.player_wait_ms = 800);
    let mut player = Client::connect(edge.addr, "live");
    player.session.play("nowhere");
    player.flush();
    let status = player.wait_for("StreamNotFound", |e| {
        matches!(e, ClientEvent::Status { code, .. } if code == "NetStream.Play.StreamNotFound")
    });
    assert!(matches!(status, ClientEvent::Status { .. }));
    assert_eq!(
        edge.close_reason(&player),
        CloseReason::Hub(Close::NoOrigin)
    );
    // The origin is in backoff, but a stream it has is pulled when it comes back.
    let mut publisher = Client::publish(a.addr, "live", "somewhere");
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, 5, 0);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut other = Client::play(edge.addr, "live", "somewhere");
        other.pump(Duration::from_millis(2_500));
        let got = other
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::Media { .. }));
        if got {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the edge never pulled a published stream"
        );
    }
}

/// Streams published on the edge are pushed to each matching `[[relay.push]]` target; a
/// target that is down is retried with backoff while the publisher carries on.
#[test]
fn a_published_stream_is_pushed_to_every_matching_target() {
    let target_a = TestServer::with_defaults();
    let target_b = TestServer::with_defaults();
    let mut config = Config::default();
    config.workers.count = 1;
    config.relay.push = vec![
        PushConfig {
            app: "live".into(),
            url: format!("rtmp://{}/live", target_a.addr),
        },
        PushConfig {
            app: "*".into(),
            url: format!("rtmp://{}/ingest", target_b.addr),
        },
        PushConfig {
            app: "other".into(),
            url: format!("rtmp://{}/never", target_b.addr),
        },
    ];
    let edge = TestServer::start(config);
    let mut publisher = Client::publish(edge.addr, "live", "pushed");
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, 5, 0);
    common::wait_for_log_count(&["push target publishing"], 2, WAIT);
    let mut on_a = Client::play(target_a.addr, "live", "pushed");
    let mut on_b = Client::play(target_b.addr, "ingest", "pushed");
    for player in [&mut on_a, &mut on_b] {
        // The target got the edge's fast start: headers and the GOP so far.
        wait_for_frame(player, &media::avc_frame(true, 0, 3000));
    }
    publish_gop(&mut publisher, 200, 5, 100);
    for player in [&mut on_a, &mut on_b] {
        wait_for_frame(player, &media::avc_frame(true, 100, 3000));
    }
    assert!(
        common::log_lines_with(&["pushing", "never"]).is_empty(),
        "the target of another app is not pushed to"
    );
    // The admin listener shows each configured target with the streams publishing to it.
    let admin = edge.server().admin_addr().expect("admin listener");
    let gauge = |target: String| {
        format!("rtmp_edge_relay_pushes_publishing{{worker=\"0\",target=\"{target}\"}}")
    };
    let expected: Vec<String> = [
        (format!("rtmp://{}/live", target_a.addr), 1),
        (format!("rtmp://{}/ingest", target_b.addr), 1),
        (format!("rtmp://{}/never", target_b.addr), 0),
    ]
    .into_iter()
    .map(|(target, n)| format!("{} {n}\n", gauge(target)))
    .collect();
    // (Gauges follow the worker's 100 ms tick.)
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let metrics = String::from_utf8(common::get(admin, "/metrics").1).unwrap();
        if expected.iter().all(|line| metrics.contains(line)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{expected:?} in\n{metrics}"
        );
    }
    // The publisher leaves: the pushes stop (their connections close with a typed reason).
    drop(publisher);
    common::wait_for_log_count(&["push stopped: the publisher left"], 2, WAIT);
}

/// Publishes `loops` times the fixture's tags (headers only the first time from 0),
/// continuing the timeline at `offset_ms`; returns where the next loop starts.
fn publish_fixture(p: &mut Client, loops: u32, offset_ms: u32) -> u32 {
    let tags = common::fixture_tags();
    let span = tags.iter().map(|t| t.timestamp).max().unwrap() + 40;
    for l in 0..loops {
        for (i, tag) in tags.iter().enumerate() {
            if i < 3 && (l > 0 || offset_ms > 0) {
                continue;
            }
            p.send(
                tag.tag_type,
                offset_ms + l * span + tag.timestamp,
                &tag.data,
            );
        }
    }
    offset_ms + loops * span
}

/// An HLS viewer of a stream the edge does not have makes it pull the stream; the first
/// playlist request is held until a segment is complete, then served; the segments decode
/// as MPEG-TS. DASH goes the same way.
#[test]
fn hls_and_dash_viewers_of_a_stream_the_edge_lacks_make_it_pull() {
    let origin = TestServer::with_defaults();
    let mut publisher = Client::publish(origin.addr, "live", "hlspull");
    let mut next = publish_fixture(&mut publisher, 1, 0);
    let edge = edge(&[&origin], 2, |_| {});
    let mut first = common::send_get(edge.http, "/live/hlspull.m3u8");
    common::wait_for_log(&["pull: connecting to origin", "hlspull"]);
    let deadline = Instant::now() + WAIT;
    let (head, body) = loop {
        next = publish_fixture(&mut publisher, 1, next);
        first
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut peek = [0u8; 1];
        if first.peek(&mut peek).is_ok_and(|n| n > 0) {
            first.set_read_timeout(None).unwrap();
            break common::read_response(&mut first);
        }
        assert!(
            Instant::now() < deadline,
            "the first playlist was never served"
        );
    };
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let playlist = String::from_utf8(body).unwrap();
    let segment = playlist
        .lines()
        .find(|l| l.starts_with("hlspull/seg-"))
        .unwrap_or_else(|| panic!("a segment: {playlist}"))
        .to_string();
    let (head, ts) = common::get(edge.http, &format!("/live/{segment}"));
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        !ts.is_empty() && ts.len() % 188 == 0 && ts[0] == 0x47,
        "MPEG-TS"
    );
    let (head, mpd) = common::get(edge.http, "/live/hlspull.mpd");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        String::from_utf8_lossy(&mpd).contains("<MPD"),
        "a DASH manifest"
    );
    assert_eq!(
        common::log_lines_with(&["pulling from an origin", "hlspull"]).len(),
        1,
        "one pull for every request"
    );
}

/// The pull outlives its last player by `pull_idle_ms`: a player back within that time
/// starts from the cached GOP on the same pull; after it, the upstream is closed as idle.
#[test]
fn a_pull_lingers_for_returning_players_then_closes_when_idle() {
    let origin = TestServer::with_defaults();
    let mut publisher = Client::publish(origin.addr, "live", "linger");
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, 5, 0);
    let edge = edge(&[&origin], 1, |c| c.relay.pull_idle_ms = 1_000);
    let mut player = Client::play(edge.addr, "live", "linger");
    wait_for_frame(&mut player, &media::avc_frame(false, 4, 3000));
    drop(player);
    let left = Instant::now();
    let mut back = Client::play(edge.addr, "live", "linger");
    let got = back.media(4);
    assert!(
        left.elapsed() < Duration::from_millis(1_000),
        "back within pull_idle"
    );
    assert!(
        got.iter()
            .any(|m| m.2.as_ref() == media::avc_frame(true, 0, 3000).as_slice()),
        "the cached GOP at once"
    );
    drop(back);
    let idle = CloseReason::Relay(rtmp_edge::shard::RelayEnd::Idle);
    edge.journal()
        .wait_for("the idle pull", |c| c.reason == idle);
    assert_eq!(
        common::log_lines_with(&["pulling from an origin", "linger"]).len(),
        1,
        "the returning player used the same pull"
    );
}

/// Publishes on every client in lock step at 25 fps (a keyframe a second) for `seconds`,
/// paced like a live encoder, from a thread; the clients come back at the end.
fn live_feed(mut clients: Vec<Client>, seconds: u32) -> std::thread::JoinHandle<Vec<Client>> {
    std::thread::spawn(move || {
        for c in &mut clients {
            send_headers(c);
        }
        let start = Instant::now();
        for i in 0..seconds * 25 {
            let due = start + Duration::from_millis(u64::from(i) * 40);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            for c in &mut clients {
                c.send(VIDEO, i * 40, &media::avc_frame(i % 25 == 0, i, 1500));
            }
        }
        clients
    })
}

/// Video frames of `player` for `span`: (arrival, timestamp, frame sequence).
fn watch(player: &mut Client, span: Duration) -> Vec<(Instant, u32, u32)> {
    let end = Instant::now() + span;
    let mut seen = Vec::new();
    while Instant::now() < end {
        player.pump(Duration::from_millis(50));
        while let Some(event) = player.events.pop_front() {
            if let ClientEvent::Media {
                type_id: VIDEO,
                timestamp,
                payload,
            } = event
            {
                if payload.len() >= 9 && payload[1] == 1 {
                    let seq = u32::from_be_bytes([payload[5], payload[6], payload[7], payload[8]]);
                    seen.push((Instant::now(), timestamp, seq));
                }
            }
        }
        assert!(!player.closed, "the player stays connected");
    }
    seen
}

/// The largest gap between arrivals, and whether timestamps never go back.
fn gap_and_order(frames: &[(Instant, u32, u32)]) -> (Duration, bool) {
    let gap = frames
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default();
    (gap, frames.windows(2).all(|w| w[0].1 <= w[1].1))
}

/// The origin an edge pulls from drains (E-RTMP ReconnectRequest, no redirect): the edge
/// opens a connection to the next origin and drops the old one only once the new one
/// delivers, so its player sees no gap over 1 s and stays on its connection.
#[test]
fn a_pulling_edge_moves_to_the_next_origin_without_a_gap_when_its_origin_drains() {
    let mut draining = Config::default();
    draining.timeouts.drain_ms = 2_000;
    let a = TestServer::start(draining);
    let b = TestServer::with_defaults();
    let origins = vec![format!("rtmp://{}", a.addr), format!("rtmp://{}", b.addr)];
    let name = name_pulled_first_from(0, &origins);
    let feed = live_feed(
        vec![
            Client::publish(a.addr, "live", &name),
            Client::publish(b.addr, "live", &name),
        ],
        6,
    );
    let edge = edge(&[&a, &b], 1, |_| {});
    let mut player = Client::play(edge.addr, "live", &name);
    let before = watch(&mut player, Duration::from_millis(800));
    assert!(!before.is_empty(), "frames from the first origin");
    a.server().drain();
    let after = watch(&mut player, Duration::from_millis(3_000));
    common::wait_for_log(&["origin asks the pull to reconnect"]);
    common::wait_for_log(&["pull handed over to a new connection"]);
    let handed = CloseReason::Relay(rtmp_edge::shard::RelayEnd::HandedOver);
    edge.journal()
        .wait_for("the drained pull connection", |c| c.reason == handed);
    let all: Vec<_> = before.into_iter().chain(after).collect();
    let (gap, ordered) = gap_and_order(&all);
    assert!(gap <= Duration::from_secs(1), "largest gap {gap:?}");
    assert!(ordered, "timestamps monotonic");
    assert!(
        all.last().unwrap().2 >= 100,
        "still playing after the drain: {:?}",
        all.last()
    );
    drop(feed.join().unwrap());
}

/// SIGHUP-style reload of an edge with 50 players: its only origin is replaced (the pull
/// hands over to the new one, make-before-break) and a push target is added (a stream
/// already published on the edge starts pushing); every player keeps playing.
#[test]
fn a_reload_moves_pulls_to_new_origins_and_starts_new_pushes_with_players_kept() {
    let a = TestServer::with_defaults();
    let b = TestServer::with_defaults();
    let c = TestServer::with_defaults();
    let feed = live_feed(
        vec![
            Client::publish(a.addr, "live", "kept"),
            Client::publish(b.addr, "live", "kept"),
        ],
        7,
    );
    let mut config = Config::default();
    config.workers.count = 2;
    config.relay.origins = vec![format!("rtmp://{}", a.addr)];
    let edge = TestServer::start(config.clone());
    let local_feed = live_feed(vec![Client::publish(edge.addr, "live", "local")], 7);
    let mut players: Vec<Client> = (0..50)
        .map(|_| Client::play(edge.addr, "live", "kept"))
        .collect();
    for p in &mut players {
        p.media(1);
    }
    config.relay.origins = vec![format!("rtmp://{}", b.addr)];
    config.relay.push = vec![PushConfig {
        app: "live".into(),
        url: format!("rtmp://{}/live", c.addr),
    }];
    // What TestServer::start set, so that nothing needs a restart.
    config.rtmp.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.http.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.workers.pin = false;
    edge.server().reload(config);
    common::wait_for_log(&["pull handed over to a new connection"]);
    common::wait_for_log(&["push target publishing"]);
    let restart = common::log_lines_with(&["need a restart"]);
    assert!(restart.is_empty(), "{restart:?}");
    // Every player is still on its connection and gets frames after the hand-over.
    for p in &mut players {
        let frames = watch(p, Duration::from_millis(100));
        let more = if frames.is_empty() {
            watch(p, Duration::from_millis(1_000))
        } else {
            frames
        };
        assert!(!more.is_empty(), "a player got nothing after the reload");
    }
    // The stream published on the edge before the reload is pushed to the new target.
    let mut on_c = Client::play(c.addr, "live", "local");
    assert!(!watch(&mut on_c, Duration::from_millis(1_500)).is_empty());
    drop(feed.join().unwrap());
    drop(local_feed.join().unwrap());
}

/// An origin that answers `connect` with a redirect (`NetConnection.Connect.Rejected` with
/// `ex.redirect`, as SRS does) to `target`: one connection, from a thread.
fn redirecting_origin(target: String) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    use rtmp_edge::rtmp::session::{ServerConfig, ServerEvent, ServerSession};
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        let random = [7u8; rtmp_edge::rtmp::handshake::RANDOM_LEN];
        let mut session = ServerSession::new(ServerConfig::default(), &random, 0);
        let mut buf = bytes::BytesMut::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(out) = session.poll_transmit() {
                socket.write_all(&out).unwrap();
            }
            let Ok(n) = socket.read(&mut chunk) else {
                return;
            };
            if n == 0 {
                return; // the edge went on elsewhere
            }
            buf.extend_from_slice(&chunk[..n]);
            session.handle_input(&mut buf).unwrap();
            while let Some(event) = session.poll_event() {
                if let ServerEvent::ConnectRequested { .. } = event {
                    session.redirect_connect(&target);
                }
            }
        }
    });
    (addr, thread)
}

/// The edge follows an origin's redirect (same app and stream, the redirect's host).
#[test]
fn a_redirect_from_an_origin_is_followed() {
    let b = TestServer::with_defaults();
    let mut publisher = Client::publish(b.addr, "live", "moved");
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, 5, 0);
    let (redirector, thread) = redirecting_origin(format!("rtmp://{}/live", b.addr));
    let mut config = Config::default();
    config.workers.count = 1;
    config.relay.origins = vec![format!("rtmp://{redirector}")];
    let edge = TestServer::start(config);
    let mut player = Client::play(edge.addr, "live", "moved");
    wait_for_frame(&mut player, &media::avc_frame(true, 0, 3000));
    common::wait_for_log(&["origin redirects the pull", &b.addr.to_string()]);
    thread.join().unwrap();
}

/// A push target that accepts and then says nothing is given up after `origin_timeout_ms`
/// (its connection closed as failed over) and retried with backoff, while the publisher and
/// a player on the edge carry on unharmed.
#[test]
fn a_dead_push_target_is_retried_with_backoff_and_slows_nobody() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::default();
    config.workers.count = 1;
    config.relay.origin_timeout_ms = 300;
    config.relay.push = vec![PushConfig {
        app: "live".into(),
        url: format!("rtmp://{}/live", dead.local_addr().unwrap()),
    }];
    let edge = TestServer::start(config);
    let mut publisher = Client::publish(edge.addr, "live", "deadpush");
    let mut player = Client::play(edge.addr, "live", "deadpush");
    send_headers(&mut publisher);
    // Accept only once the edge has dialled (logged), so a missing dial fails, not hangs.
    common::wait_for_log_count(&["upstream connection opened", "deadpush"], 1, WAIT);
    let (first, _) = dead.accept().expect("the edge dials the target");
    let failed = CloseReason::Relay(rtmp_edge::shard::RelayEnd::FailedOver);
    edge.journal()
        .wait_for("the silent push connection", |c| c.reason == failed);
    // Meanwhile, and after, the edge's own player gets every GOP at once.
    for gop in 0..3 {
        publish_gop(&mut publisher, gop * 200, 5, gop * 10);
        wait_for_frame(&mut player, &media::avc_frame(true, gop * 10, 3000));
    }
    // The target is dialled again after its backoff (1 s).
    common::wait_for_log_count(&["upstream connection opened", "deadpush"], 2, WAIT);
    let (second, _) = dead.accept().expect("retried");
    drop((first, second));
    assert!(!player.closed && !publisher.closed);
}
