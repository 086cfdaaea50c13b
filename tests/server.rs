//! Loopback end-to-end tests of the server with the project's own client session:
//! publish, play, late join, many streams, reject/takeover, republish, slow players,
//! cross-worker delivery, limits and bad input.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{media, Client, TestServer, WAIT};
use rtmp_edge::config::Config;
use rtmp_edge::fanout::Close;
use rtmp_edge::rtmp::amf0::AmfError;
use rtmp_edge::rtmp::chunk::ChunkError;
use rtmp_edge::rtmp::handshake::HandshakeError;
use rtmp_edge::rtmp::session::{ClientEvent, SessionError};
use rtmp_edge::shard::CloseReason;

const VIDEO: u8 = 9;
const AUDIO: u8 = 8;
const DATA: u8 = 18;

fn port_tag(c: &Client) -> String {
    format!(":{}", c.local_port())
}

/// Publishes headers + one GOP of `frames` video frames (keyframe first) with audio between.
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

#[test]
fn publish_then_play_delivers_media_in_order_and_byte_exact() {
    let server = TestServer::with_defaults();
    let mut publisher = Client::publish(server.addr, "live", "a");
    let mut player = Client::play(server.addr, "live", "a");
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, 10, 0);
    let got = player.media(23);
    assert_eq!(got[0].0, DATA);
    assert!(
        got[0].2.starts_with(&[0x02, 0x00, 0x0a]),
        "metadata arrives as onMetaData"
    );
    assert_eq!(&got[0].2[3..13], b"onMetaData");
    assert_eq!(got[1].2.as_ref(), media::avc_header().as_slice());
    assert_eq!(got[2].2.as_ref(), media::aac_header().as_slice());
    for i in 0..10u32 {
        let (t, ts, payload) = &got[3 + 2 * i as usize];
        assert_eq!(*t, VIDEO);
        assert_eq!(*ts, i * 40);
        assert_eq!(
            payload.as_ref(),
            media::avc_frame(i == 0, i, 3000).as_slice()
        );
        assert_eq!(
            got[4 + 2 * i as usize].2.as_ref(),
            media::aac_frame(i).as_slice()
        );
    }
}

#[test]
fn late_joiner_starts_with_metadata_headers_and_the_gop_from_its_keyframe() {
    let server = TestServer::with_defaults();
    let mut publisher = Client::publish(server.addr, "live", "late");
    let mut early = Client::play(server.addr, "live", "late");
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, 5, 0);
    publish_gop(&mut publisher, 200, 4, 100);
    // The early player saw everything, so the server has processed it all.
    early.media(3 + 18);
    let mut late = Client::play(server.addr, "live", "late");
    let got = late.media(3 + 8);
    assert_eq!(got[0].0, DATA);
    assert_eq!(got[1].2.as_ref(), media::avc_header().as_slice());
    assert_eq!(got[2].2.as_ref(), media::aac_header().as_slice());
    assert_eq!(
        got[3].2.as_ref(),
        media::avc_frame(true, 100, 3000).as_slice(),
        "first frame is the last keyframe"
    );
    assert_eq!(got[3].1, 200);
    let later: Vec<u32> = got[3..].iter().map(|m| m.1).collect();
    assert!(
        later.windows(2).all(|w| w[0] <= w[1] + 40),
        "timestamps stay ordered: {later:?}"
    );
}

#[test]
fn a_late_joiner_gets_headers_and_metadata_stamped_at_its_first_frame() {
    let server = TestServer::with_defaults();
    let mut publisher = Client::publish(server.addr, "live", "restamp");
    let mut early = Client::play(server.addr, "live", "restamp");
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, 50, 0);
    publish_gop(&mut publisher, 2000, 5, 100);
    early.media(3 + 110);
    let mut late = Client::play(server.addr, "live", "restamp");
    let got = late.media(3 + 10);
    assert_eq!(
        got[3].2.as_ref(),
        media::avc_frame(true, 100, 3000).as_slice()
    );
    let stamps: Vec<u32> = got.iter().map(|m| m.1).collect();
    assert_eq!(
        &stamps[..4],
        &[2000; 4],
        "metadata and both headers carry the first frame's time: {stamps:?}"
    );
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1] && w[1] - w[0] <= 40),
        "no jump or step back at the start: {stamps:?}"
    );
}

#[test]
fn a_token_on_the_app_or_the_key_does_not_change_the_stream_name() {
    let server = TestServer::with_defaults();
    let mut player = Client::play(server.addr, "live", "demo");
    let mut publisher = Client::publish(server.addr, "live?token=app-s3cret", "demo");
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, 2, 0);
    let got = player.media(3 + 4);
    assert_eq!(got[1].2.as_ref(), media::avc_header().as_slice());
    assert_eq!(
        got[3].2.as_ref(),
        media::avc_frame(true, 0, 3000).as_slice()
    );
    let mut keyed = Client::play(server.addr, "live?token=app-s3cret", "demo?sig=key-s3cret");
    assert_eq!(keyed.media(3)[1].2.as_ref(), media::avc_header().as_slice());
    common::wait_for_log(&["playing", "stream=live/demo", &port_tag(&keyed)]);
    let logs = common::log_lines_with(&[""]).join("\n");
    assert!(!logs.contains("s3cret"), "a token in the logs:\n{logs}");
}

#[test]
fn without_gop_cache_a_late_joiner_waits_for_the_next_keyframe() {
    let mut config = Config::default();
    config.streams.gop_cache = false;
    let server = TestServer::start(config);
    let mut publisher = Client::publish(server.addr, "live", "nocache");
    let mut early = Client::play(server.addr, "live", "nocache");
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, 5, 0);
    early.media(3 + 10);
    let mut late = Client::play(server.addr, "live", "nocache");
    publish_gop(&mut publisher, 200, 3, 50);
    let got = late.media(3 + 1);
    assert_eq!(got[1].2.as_ref(), media::avc_header().as_slice());
    let first_video = got.iter().skip(3).find(|m| m.0 == VIDEO).expect("a frame");
    assert_eq!(
        first_video.2.as_ref(),
        media::avc_frame(true, 50, 3000).as_slice()
    );
}

#[test]
fn four_streams_at_once_do_not_cross_talk() {
    let server = TestServer::with_defaults();
    let names = ["s0", "s1", "s2", "s3"];
    let mut publishers: Vec<Client> = names
        .iter()
        .map(|n| Client::publish(server.addr, "live", n))
        .collect();
    let mut players: Vec<Client> = names
        .iter()
        .map(|n| Client::play(server.addr, "live", n))
        .collect();
    for round in 0..5u32 {
        for (i, p) in publishers.iter_mut().enumerate() {
            p.send(
                VIDEO,
                round * 40,
                &media::avc_frame(round == 0, 1000 * i as u32 + round, 500),
            );
        }
    }
    for (i, player) in players.iter_mut().enumerate() {
        let got = player.media(5);
        for (round, m) in got.iter().enumerate() {
            assert_eq!(
                m.2.as_ref(),
                media::avc_frame(round == 0, 1000 * i as u32 + round as u32, 500).as_slice()
            );
        }
    }
}

#[test]
fn second_publisher_on_a_name_in_use_is_rejected_with_bad_name() {
    let server = TestServer::with_defaults();
    let _first = Client::publish(server.addr, "live", "taken");
    let mut second = Client::connect(server.addr, "live");
    second
        .session
        .publish("taken", rtmp_edge::rtmp::session::PublishMode::Live);
    second.flush();
    let status = second.wait_for(
        "BadName",
        |e| matches!(e, ClientEvent::Status { code, .. } if code == "NetStream.Publish.BadName"),
    );
    assert!(matches!(status, ClientEvent::Status { level, .. } if level == "error"));
}

#[test]
fn takeover_replaces_the_publisher_when_configured() {
    let mut config = Config::default();
    config.streams.publish_takeover = true;
    let server = TestServer::start(config);
    let mut first = Client::publish(server.addr, "live", "tk");
    let mut player = Client::play(server.addr, "live", "tk");
    first.send(VIDEO, 0, &media::avc_frame(true, 1, 100));
    player.media(1);
    let mut second = Client::publish(server.addr, "live", "tk");
    first.wait_closed();
    assert_eq!(
        server.close_reason(&first),
        CloseReason::Hub(Close::TakenOver)
    );
    second.send(VIDEO, 0, &media::avc_frame(true, 2, 100));
    let got = player.media(1);
    assert_eq!(got[0].2.as_ref(), media::avc_frame(true, 2, 100).as_slice());
}

use common::wait_for_log;

#[test]
fn player_waiting_for_a_stream_starts_when_it_is_published() {
    let server = TestServer::with_defaults();
    let mut player = Client::play(server.addr, "live", "later");
    let mut publisher = Client::publish(server.addr, "live", "later");
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, 2, 7);
    let got = player.media(5);
    assert_eq!(
        got[3].2.as_ref(),
        media::avc_frame(true, 7, 3000).as_slice()
    );
}

#[test]
fn players_are_told_of_unpublish_and_receive_the_republished_stream_with_monotonic_time() {
    let server = TestServer::with_defaults();
    let mut player = Client::play(server.addr, "live", "re");
    let mut publisher = Client::publish(server.addr, "live", "re");
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 1000, 3, 0);
    let first = player.media(3 + 6);
    publisher.session.stop();
    publisher.flush();
    player.wait_for("UnpublishNotify", |e| {
        matches!(e, ClientEvent::Status { code, .. } if code == "NetStream.Play.UnpublishNotify")
    });
    drop(publisher);
    let mut again = Client::publish(server.addr, "live", "re");
    send_headers(&mut again);
    publish_gop(&mut again, 0, 3, 500);
    let second = player.media(3 + 6);
    let last_before = first.iter().map(|m| m.1).max().unwrap();
    let video_after: Vec<u32> = second
        .iter()
        .filter(|m| m.0 == VIDEO && m.2.len() > 100)
        .map(|m| m.1)
        .collect();
    assert_eq!(
        second[3].2.as_ref(),
        media::avc_frame(true, 500, 3000).as_slice()
    );
    assert!(
        video_after[0] > last_before,
        "republished timestamps continue: {last_before} then {video_after:?}"
    );
}

#[test]
fn slow_player_loses_frames_then_is_dropped_while_publisher_and_others_carry_on() {
    let mut config = Config::default();
    config.streams.player_queue_bytes = 256 * 1024;
    config.timeouts.slow_player_ms = 500;
    config.workers.socket_send_buffer = 64 * 1024;
    let server = TestServer::start(config);
    let mut publisher = Client::publish(server.addr, "live", "slow");
    let mut good = Client::play(server.addr, "live", "slow");
    let stuck = Client::play(server.addr, "live", "slow");
    stuck.stream.set_nonblocking(true).unwrap();
    let shrink = socket2::SockRef::from(&stuck.stream);
    shrink.set_recv_buffer_size(4096).unwrap();
    let tag = port_tag(&stuck);
    let started = Instant::now();
    let mut seq = 0;
    // Frame by frame, far more than the stuck player's socket buffers and queue can hold.
    while log_closed(&tag).is_none() {
        assert!(started.elapsed() < WAIT, "slow player never dropped");
        let keyframe = seq % 25 == 0;
        publisher.send(VIDEO, seq * 40, &media::avc_frame(keyframe, seq, 20_000));
        let got = good.media(1);
        assert_eq!(
            got[0].2.as_ref(),
            media::avc_frame(keyframe, seq, 20_000).as_slice(),
            "the good player misses nothing"
        );
        seq += 1;
    }
    let CloseReason::SlowPlayer { queued, .. } = server.close_reason(&stuck) else {
        panic!("closed as a slow player");
    };
    assert!(
        queued <= 256 * 1024 + 21_000,
        "queue stayed bounded: {queued} bytes"
    );
    // The publisher and the good player are unharmed.
    publisher.send(VIDEO, seq * 40, &media::avc_frame(true, seq, 100));
    assert_eq!(
        good.media(1)[0].2.as_ref(),
        media::avc_frame(true, seq, 100).as_slice()
    );
}

fn log_closed(tag: &str) -> Option<String> {
    common::log_lines_with(&["connection closed", tag])
        .into_iter()
        .next()
}

#[test]
fn a_player_on_another_worker_gets_the_stream_published_on_the_first() {
    let mut config = Config::default();
    config.workers.count = 2;
    let server = TestServer::start(config);
    let mut publisher = Client::publish(server.addr, "live", "x");
    let publisher_worker = worker_of(&publisher);
    // The kernel spreads connections over the two workers; keep connecting until a player
    // lands on the other one (2^-32 odds of never, bounded).
    let mut players = Vec::new();
    let remote = loop {
        assert!(
            players.len() < 32,
            "every player landed on the publisher's worker"
        );
        let player = Client::play(server.addr, "live", "x");
        if worker_of(&player) != publisher_worker {
            break player;
        }
        players.push(player);
    };
    let mut remote = remote;
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, 4, 40);
    let got = remote.media(3 + 8);
    assert_eq!(got[1].2.as_ref(), media::avc_header().as_slice());
    assert_eq!(
        got[3].2.as_ref(),
        media::avc_frame(true, 40, 3000).as_slice()
    );
    // A late joiner on the other worker gets the mirror's fast-start cache.
    let mut late = loop {
        let player = Client::play(server.addr, "live", "x");
        if worker_of(&player) != publisher_worker {
            break player;
        }
        players.push(player);
        assert!(players.len() < 64);
    };
    let got = late.media(4);
    assert_eq!(
        got[3].2.as_ref(),
        media::avc_frame(true, 40, 3000).as_slice()
    );
}

fn worker_of(c: &Client) -> String {
    let line = wait_for_log(&["role=\"", &port_tag(c)]);
    let start = line.find("worker=").expect("worker field") + 7;
    line[start..].split_whitespace().next().unwrap().to_string()
}

#[test]
fn a_trickling_handshake_is_closed_at_the_deadline_and_others_carry_on() {
    let mut config = Config::default();
    config.timeouts.handshake_ms = 300;
    let server = TestServer::start(config);
    let mut trickle = TcpStream::connect(server.addr).unwrap();
    trickle.write_all(&[3, 0, 0]).unwrap();
    let tag = format!(":{}", trickle.local_addr().unwrap().port());
    assert_eq!(
        server.closed(trickle.local_addr().unwrap().port()).reason,
        CloseReason::HandshakeTimeout { ms: 300 }
    );
    let _ = tag;
    trickle.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    let _ = trickle.read_to_end(&mut rest);
    let mut publisher = Client::publish(server.addr, "live", "ok");
    let mut player = Client::play(server.addr, "live", "ok");
    publisher.send(VIDEO, 0, &media::avc_frame(true, 1, 100));
    player.media(1);
}

#[test]
fn a_silent_publisher_is_closed_after_the_idle_timeout() {
    let mut config = Config::default();
    config.timeouts.idle_ms = 300;
    let server = TestServer::start(config);
    let mut publisher = Client::publish(server.addr, "live", "quiet");
    publisher.wait_closed();
    assert_eq!(
        server.close_reason(&publisher),
        CloseReason::Idle { ms: 300 }
    );
}

#[test]
fn a_wrong_version_byte_closes_with_a_clear_reason() {
    let server = TestServer::with_defaults();
    let mut bad = TcpStream::connect(server.addr).unwrap();
    bad.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let tag = format!(":{}", bad.local_addr().unwrap().port());
    let reason = server.closed(bad.local_addr().unwrap().port()).reason;
    assert!(
        matches!(
            reason,
            CloseReason::Protocol(SessionError::Handshake(HandshakeError::UnsupportedVersion(
                b'G'
            )))
        ),
        "{reason:?}"
    );
    let _ = tag;
    let mut publisher = Client::publish(server.addr, "live", "v");
    publisher.send(VIDEO, 0, &media::avc_frame(true, 1, 10));
}

#[test]
fn connections_over_the_per_worker_cap_are_refused_while_others_carry_on() {
    let mut config = Config::default();
    config.workers.max_connections = 2;
    let server = TestServer::start(config);
    let mut publisher = Client::publish(server.addr, "live", "cap");
    let mut player = Client::play(server.addr, "live", "cap");
    let mut third = TcpStream::connect(server.addr).unwrap();
    third.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 16];
    let n = third.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the third connection is closed without a handshake");
    wait_for_log(&["connection refused", "max_connections"]);
    publisher.send(VIDEO, 0, &media::avc_frame(true, 3, 10));
    player.media(1);
}

#[test]
fn per_ip_cap_refuses_extra_connections_from_one_address() {
    let mut config = Config::default();
    config.workers.max_connections_per_ip = 1;
    let server = TestServer::start(config);
    let _first = Client::publish(server.addr, "live", "ip");
    let mut second = TcpStream::connect(server.addr).unwrap();
    second.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(second.read(&mut buf).unwrap_or(0), 0);
    wait_for_log(&["connection refused", "max_connections_per_ip"]);
}

#[test]
fn an_invalid_set_chunk_size_closes_only_that_connection() {
    let server = TestServer::with_defaults();
    let mut publisher = Client::publish(server.addr, "live", "csz");
    let mut player = Client::play(server.addr, "live", "csz");
    let mut bad = Client::connect(server.addr, "live");
    bad.wait_for("connected", |e| matches!(e, ClientEvent::Connected));
    // Set Chunk Size 0 on csid 2: fmt 0 header, type 1, stream 0, length 4.
    let frame = [0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    bad.stream.write_all(&frame).unwrap();
    bad.wait_closed();
    let reason = server.close_reason(&bad);
    assert!(
        matches!(
            reason,
            CloseReason::Protocol(SessionError::Chunk(ChunkError::InvalidChunkSize {
                size: 0,
                ..
            }))
        ),
        "{reason:?}"
    );
    publisher.send(VIDEO, 0, &media::avc_frame(true, 9, 10));
    player.media(1);
}

#[test]
fn shutdown_tells_players_the_stream_stopped_and_closes_connections() {
    let server = TestServer::with_defaults();
    let mut publisher = Client::publish(server.addr, "live", "bye");
    let mut player = Client::play(server.addr, "live", "bye");
    publisher.send(VIDEO, 0, &media::avc_frame(true, 1, 10));
    player.media(1);
    let started = Instant::now();
    server.shutdown();
    assert!(started.elapsed() < Duration::from_secs(5));
    player.wait_for(
        "Play.Stop",
        |e| matches!(e, ClientEvent::Status { code, .. } if code == "NetStream.Play.Stop"),
    );
    player.wait_closed();
}

#[test]
fn at_shutdown_a_player_that_reads_nothing_is_closed_at_the_flush_deadline() {
    let mut config = Config::default();
    config.timeouts.shutdown_ms = 300;
    config.timeouts.slow_player_ms = 60_000;
    config.workers.socket_send_buffer = 16 * 1024;
    // Room for every frame: no drop may empty the stuck player's queue before the shutdown.
    config.streams.player_queue_bytes = 16 << 20;
    let server = TestServer::start(config);
    let mut publisher = Client::publish(server.addr, "live", "deadline");
    let mut good = Client::play(server.addr, "live", "deadline");
    let stuck = Client::play(server.addr, "live", "deadline");
    socket2::SockRef::from(&stuck.stream)
        .set_recv_buffer_size(4096)
        .unwrap();
    // More than the stuck player's socket buffers hold: the rest waits in its queue.
    for i in 0..40u32 {
        publisher.send(VIDEO, i * 40, &media::avc_frame(i % 10 == 0, i, 64 * 1024));
    }
    // A last small keyframe: once the reading player has it, the server has ingested every
    // frame and the stuck player's queue holds what its socket did not take.
    let last = media::avc_frame(true, 1000, 100);
    publisher.send(VIDEO, 40 * 40, &last);
    good.wait_for(
        "the last frame",
        |e| matches!(e, ClientEvent::Media { payload, .. } if payload.as_ref() == last.as_slice()),
    );
    let good_port = good.local_port();
    // The reading player reads on while the server shuts down.
    let reader = std::thread::spawn(move || {
        good.wait_for(
            "Play.Stop",
            |e| matches!(e, ClientEvent::Status { code, .. } if code == "NetStream.Play.Stop"),
        );
        good.wait_closed();
    });
    let started = Instant::now();
    let journal = server.journal();
    let stuck_port = stuck.local_port();
    server.shutdown();
    assert_eq!(
        journal.closed(stuck_port).reason,
        CloseReason::ShutdownDeadline
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not before the deadline"
    );
    // The player that reads was told and closed cleanly.
    assert_eq!(journal.closed(good_port).reason, CloseReason::ShuttingDown);
    reader
        .join()
        .expect("the reading player got Play.Stop and the close");
}

#[test]
fn a_publisher_that_stops_mid_message_is_closed_after_the_idle_timeout() {
    let mut config = Config::default();
    config.timeouts.idle_ms = 300;
    let server = TestServer::start(config);
    let mut publisher = Client::publish(server.addr, "live", "half");
    let mut player = Client::play(server.addr, "live", "half");
    // A fmt 0 video header announcing 5000 bytes on csid 6, then only 100 of them.
    let mut half = vec![0x06, 0, 0, 0, 0x00, 0x13, 0x88, VIDEO, 1, 0, 0, 0];
    half.extend_from_slice(&[0x17; 100]);
    publisher.stream.write_all(&half).unwrap();
    publisher.wait_closed();
    assert!(matches!(
        server.close_reason(&publisher),
        CloseReason::Idle { .. }
    ));
    player.wait_for("UnpublishNotify", |e| {
        matches!(e, ClientEvent::Status { code, .. } if code == "NetStream.Play.UnpublishNotify")
    });
}

#[test]
fn ipv6_loopback_clients_publish_and_play() {
    let mut config = Config::default();
    config.workers.count = 1;
    config.workers.pin = false;
    config.rtmp.listen = vec!["[::1]:0".parse().unwrap()];
    config.http.enabled = false;
    let server = rtmp_edge::shard::Server::start(config).expect("IPv6 loopback available");
    let addr = server.local_addrs()[0];
    assert!(addr.is_ipv6());
    let mut publisher = Client::publish(addr, "live", "v6");
    let mut player = Client::play(addr, "live", "v6");
    publisher.send(VIDEO, 0, &media::avc_frame(true, 6, 100));
    assert_eq!(
        player.media(1)[0].2.as_ref(),
        media::avc_frame(true, 6, 100).as_slice()
    );
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn a_publisher_on_another_worker_takes_over_and_players_follow() {
    let mut config = Config::default();
    config.workers.count = 2;
    config.streams.publish_takeover = true;
    let server = TestServer::start(config);
    let mut first = Client::publish(server.addr, "live", "tk2");
    let first_worker = worker_of(&first);
    let mut player = Client::play(server.addr, "live", "tk2");
    first.send(VIDEO, 0, &media::avc_frame(true, 1, 100));
    player.media(1);
    // Connect publishers until one lands on the other worker (bounded), each rejected
    // connection attempt is a fresh connect that never publishes.
    let mut spare = Vec::new();
    let mut second = loop {
        assert!(spare.len() < 32, "never reached the other worker");
        let mut c = Client::connect(server.addr, "live");
        c.wait_for("connected", |e| matches!(e, ClientEvent::Connected));
        let tag = port_tag(&c);
        let line = wait_for_log(&["connect", "tc_url", &tag]);
        if !line.contains(&format!("worker={first_worker} ")) {
            break c;
        }
        spare.push(c);
    };
    second
        .session
        .publish("tk2", rtmp_edge::rtmp::session::PublishMode::Live);
    second.flush();
    second.wait_for("publish start", |e| {
        matches!(e, ClientEvent::Publishing { .. })
    });
    first.wait_closed();
    assert_eq!(
        server.close_reason(&first),
        CloseReason::Hub(Close::TakenOverElsewhere)
    );
    second.send(VIDEO, 0, &media::avc_frame(true, 2, 100));
    let got = player.wait_for("new publisher's frame", |e| {
        matches!(e, ClientEvent::Media { payload, .. } if payload.as_ref() == media::avc_frame(true, 2, 100).as_slice())
    });
    assert!(matches!(got, ClientEvent::Media { .. }));
}

// ---- pause, receiveAudio, receiveVideo on a live player ----

/// The `seq` tag `media::avc_frame` writes into a video frame.
fn video_seq(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload[9..13].try_into().unwrap())
}

/// The `seq` tag `media::aac_frame` writes into an audio frame.
fn audio_seq(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload[2..6].try_into().unwrap())
}

/// `(kind, seq)` of each media message (`u32::MAX` for sequence headers), to compare what a player got with what was sent.
fn tags(got: &[(u8, u32, bytes::Bytes)]) -> Vec<(u8, u32)> {
    got.iter()
        .map(|(t, _, p)| match *t {
            // Sequence headers (packet type 0) carry no tag.
            _ if p.get(1) == Some(&0) => (*t, u32::MAX),
            VIDEO => (VIDEO, video_seq(p)),
            AUDIO => (AUDIO, audio_seq(p)),
            other => (other, 0),
        })
        .collect()
}

/// Writes `name(tx, null, args...)` on message stream `stream_id` as one whole chunk on a chunk
/// stream the project client never uses, so it cannot disturb the client's own header
/// compression.
fn raw_call(
    c: &mut Client,
    stream_id: u32,
    name: &str,
    tx: f64,
    args: Vec<rtmp_edge::rtmp::amf0::Amf0Value>,
) {
    use rtmp_edge::rtmp::amf0::Amf0Value;
    use rtmp_edge::rtmp::chunk::ChunkEncoder;
    use rtmp_edge::rtmp::command::Command;
    let mut payload = bytes::BytesMut::new();
    Command::new(name, tx, Amf0Value::Null, args).encode(&mut payload);
    let mut wire = bytes::BytesMut::new();
    ChunkEncoder::new().encode(40, 0, 20, stream_id, &payload, &mut wire);
    c.stream.write_all(&wire).expect("write raw command");
}

/// Returns once the server has processed everything `c` sent so far: an unknown call and
/// its `_error`. Commands on one connection are served in order.
fn barrier(c: &mut Client) {
    raw_call(c, 0, "barrier", 99.0, vec![]);
    c.wait_for(
        "barrier answer",
        |e| matches!(e, ClientEvent::Status { code, .. } if code == "NetConnection.Call.Failed"),
    );
}

/// A publisher and a player of `name` that already received headers and a first GOP of
/// `frames` (seq 0..).
fn playing_pair(server: &TestServer, name: &str, frames: u32) -> (Client, Client) {
    let mut publisher = Client::publish(server.addr, "live", name);
    let mut player = Client::play(server.addr, "live", name);
    send_headers(&mut publisher);
    publish_gop(&mut publisher, 0, frames, 0);
    let got = player.media(3 + 2 * frames as usize);
    assert_eq!(
        tags(&got[3..])[..2],
        [(VIDEO, 0), (AUDIO, 0)],
        "the first GOP arrives"
    );
    (publisher, player)
}

fn status_code(e: &ClientEvent) -> Option<&str> {
    match e {
        ClientEvent::Status { code, .. } => Some(code),
        _ => None,
    }
}

#[test]
fn a_paused_player_gets_no_media_and_after_unpause_starts_at_the_next_keyframe() {
    let server = TestServer::with_defaults();
    let (mut publisher, mut player) = playing_pair(&server, "pause", 3);
    player.session.pause(true, 120.0);
    player.flush();
    player.wait_for("pause notify", |e| {
        status_code(e) == Some("NetStream.Pause.Notify")
    });
    // A whole GOP while paused: none of it may arrive.
    publish_gop(&mut publisher, 120, 3, 100);
    player.session.pause(false, 120.0);
    player.flush();
    player.wait_for("unpause notify", |e| {
        status_code(e) == Some("NetStream.Unpause.Notify")
    });
    // Mid-GOP after unpause: an inter frame and its audio are skipped, play resumes at the
    // keyframe with audio from there on.
    publisher.send(VIDEO, 240, &media::avc_frame(false, 200, 3000));
    publisher.send(AUDIO, 245, &media::aac_frame(200));
    publish_gop(&mut publisher, 280, 2, 300);
    let got = player.media(4);
    assert_eq!(
        tags(&got),
        vec![(VIDEO, 300), (AUDIO, 300), (VIDEO, 301), (AUDIO, 301)],
        "nothing from the paused GOP nor before the next keyframe"
    );
    assert_eq!(got[0].1, 280);
}

#[test]
fn receive_video_false_stops_video_while_audio_continues() {
    let server = TestServer::with_defaults();
    let (mut publisher, mut player) = playing_pair(&server, "novideo", 2);
    player.session.receive_video(false);
    player.flush();
    barrier(&mut player);
    publish_gop(&mut publisher, 80, 3, 10);
    let got = player.media(3);
    assert_eq!(tags(&got), vec![(AUDIO, 10), (AUDIO, 11), (AUDIO, 12)]);
}

#[test]
fn receive_video_true_resumes_video_at_the_next_keyframe_without_interrupting_audio() {
    let server = TestServer::with_defaults();
    let (mut publisher, mut player) = playing_pair(&server, "revideo", 2);
    player.session.receive_video(false);
    player.flush();
    barrier(&mut player);
    publish_gop(&mut publisher, 80, 2, 10);
    assert_eq!(tags(&player.media(2)), vec![(AUDIO, 10), (AUDIO, 11)]);
    player.session.receive_video(true);
    player.flush();
    barrier(&mut player);
    // Mid-GOP: the inter frame is skipped, audio keeps flowing, video starts at the keyframe.
    publisher.send(VIDEO, 160, &media::avc_frame(false, 20, 3000));
    publisher.send(AUDIO, 165, &media::aac_frame(20));
    publish_gop(&mut publisher, 200, 2, 30);
    assert_eq!(
        tags(&player.media(5)),
        vec![
            (AUDIO, 20),
            (VIDEO, 30),
            (AUDIO, 30),
            (VIDEO, 31),
            (AUDIO, 31)
        ]
    );
}

#[test]
fn receive_audio_false_stops_audio_while_video_continues() {
    let server = TestServer::with_defaults();
    let (mut publisher, mut player) = playing_pair(&server, "noaudio", 2);
    player.session.receive_audio(false);
    player.flush();
    barrier(&mut player);
    publish_gop(&mut publisher, 80, 3, 10);
    let got = player.media(3);
    assert_eq!(tags(&got), vec![(VIDEO, 10), (VIDEO, 11), (VIDEO, 12)]);
    player.session.receive_audio(true);
    player.flush();
    barrier(&mut player);
    publish_gop(&mut publisher, 200, 1, 20);
    assert_eq!(tags(&player.media(2)), vec![(VIDEO, 20), (AUDIO, 20)]);
}

#[test]
fn a_refused_play2_switch_keeps_playing_and_a_later_delete_stream_stops_the_media() {
    use rtmp_edge::rtmp::amf0::Amf0Value;
    let server = TestServer::with_defaults();
    let (mut publisher, mut player) = playing_pair(&server, "low", 1);
    let mut witness = Client::play(server.addr, "live", "low");
    let id = player.session.stream_id().expect("playing");
    let options = Amf0Value::Object(vec![
        ("streamName".into(), Amf0Value::String("high".into())),
        ("oldStreamName".into(), Amf0Value::String("low".into())),
        ("start".into(), Amf0Value::Number(0.0)),
        ("len".into(), Amf0Value::Number(-1.0)),
        ("transition".into(), Amf0Value::String("switch".into())),
    ]);
    raw_call(&mut player, id, "play2", 0.0, vec![options]);
    player.wait_for("switch refused", |e| {
        status_code(e) == Some("NetStream.Play.Failed")
    });
    publish_gop(&mut publisher, 40, 1, 10);
    assert_eq!(
        tags(&player.media(2)),
        vec![(VIDEO, 10), (AUDIO, 10)],
        "still playing low"
    );
    // ffmpeg's close: deleteStream(tx, null, id) on stream 0.
    raw_call(
        &mut player,
        0,
        "deleteStream",
        50.0,
        vec![Amf0Value::Number(f64::from(id))],
    );
    barrier(&mut player);
    publish_gop(&mut publisher, 80, 1, 20);
    // The witness got the frames, so the same fan-out pass left nothing for the player.
    let mut seen = Vec::new();
    while seen.last() != Some(&(AUDIO, 20)) {
        seen.extend(tags(&witness.media(1)));
    }
    assert!(seen.contains(&(VIDEO, 20)), "{seen:?}");
    player.pump(Duration::from_millis(200));
    let late: Vec<(u8, u32)> = player
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Media {
                type_id, timestamp, ..
            } => Some((*type_id, *timestamp)),
            _ => None,
        })
        .collect();
    assert!(late.is_empty(), "media after deleteStream: {late:?}");
}

/// Sends raw chunk bytes on an established connection and checks it is closed for the
/// session error `broken` expects, while a publisher and player on the same worker carry on.
fn closes_only_the_offender(
    config: Config,
    stream: &str,
    bytes: &[u8],
    broken: impl Fn(&SessionError) -> bool,
) {
    let server = TestServer::start(config);
    let mut publisher = Client::publish(server.addr, "live", stream);
    let mut player = Client::play(server.addr, "live", stream);
    let mut bad = Client::connect(server.addr, "live");
    bad.wait_for("connected", |e| matches!(e, ClientEvent::Connected));
    bad.stream.write_all(bytes).unwrap();
    bad.wait_closed();
    let reason = server.close_reason(&bad);
    assert!(
        matches!(&reason, CloseReason::Protocol(e) if broken(e)),
        "{reason:?}"
    );
    publisher.send(VIDEO, 0, &media::avc_frame(true, 5, 10));
    assert_eq!(
        player.media(1)[0].2.as_ref(),
        media::avc_frame(true, 5, 10).as_slice()
    );
}

#[test]
fn a_message_over_max_message_size_closes_only_that_connection() {
    let mut config = Config::default();
    config.rtmp.max_message_size = 64 * 1024;
    // fmt 0 on csid 6 announcing a 1 MB video message.
    let header = [0x06, 0, 0, 0, 0x10, 0x00, 0x00, VIDEO, 1, 0, 0, 0];
    closes_only_the_offender(config, "big", &header, |e| {
        *e == SessionError::Chunk(ChunkError::MessageTooLarge {
            size: 0x10_0000,
            limit: 64 * 1024,
        })
    });
}

#[test]
fn a_chunk_size_over_max_chunk_size_closes_only_that_connection() {
    let mut config = Config::default();
    config.rtmp.max_chunk_size = 4096;
    // Set Chunk Size 65536 on csid 2: legal under the spec, over the configured cap.
    let bytes = [
        0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, // fmt 0, 4-byte message, type 1, stream 0
        0x00, 0x01, 0x00, 0x00,
    ];
    closes_only_the_offender(config, "bigchunks", &bytes, |e| {
        *e == SessionError::Chunk(ChunkError::InvalidChunkSize {
            size: 65536,
            max: 4096,
        })
    });
}

#[test]
fn too_many_chunk_streams_close_only_that_connection() {
    let mut config = Config::default();
    config.rtmp.max_chunk_streams = 8;
    // Twenty chunk streams each holding an unfinished 1000-byte message (one 128-byte chunk
    // of it at the initial chunk size).
    let mut bytes = Vec::new();
    for csid in 10u8..30 {
        bytes.extend_from_slice(&[csid, 0, 0, 0, 0, 0x03, 0xe8, AUDIO, 1, 0, 0, 0]);
        bytes.extend_from_slice(&[0xaf; 128]);
    }
    closes_only_the_offender(config, "many", &bytes, |e| {
        *e == SessionError::Chunk(ChunkError::TooManyChunkStreams { limit: 8 })
    });
}

#[test]
fn amf_nested_deeper_than_max_amf_depth_closes_only_that_connection() {
    let mut config = Config::default();
    config.rtmp.max_amf_depth = 4;
    // A command whose object nests 10 deep: "x", 1.0, {a:{a:{...}}}.
    let mut payload = vec![0x02, 0, 1, b'x', 0x00];
    payload.extend_from_slice(&1f64.to_be_bytes());
    for _ in 0..10 {
        payload.extend_from_slice(&[0x03, 0, 1, b'a']);
    }
    payload.push(0x05);
    for _ in 0..10 {
        payload.extend_from_slice(&[0, 0, 9]);
    }
    let len = payload.len() as u32;
    let mut bytes = vec![0x03, 0, 0, 0];
    bytes.extend_from_slice(&len.to_be_bytes()[1..]);
    bytes.extend_from_slice(&[20, 0, 0, 0, 0]);
    bytes.extend_from_slice(&payload);
    closes_only_the_offender(config, "deep", &bytes, |e| {
        *e == SessionError::Amf(AmfError::TooDeep { limit: 4 })
    });
}
