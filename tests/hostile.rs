//! Regression tests for what hostile and careless clients did to the server (issue 15): each
//! attack runs beside a bystander publisher and player that must carry on unharmed.

mod common;

use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::time::Duration;

use common::{media, port_tag, serial, Bystander, Client, TestServer};
use rtmp_edge::config::Config;
use rtmp_edge::fanout::IngestError;
use rtmp_edge::rtmp::session::ClientEvent;
use rtmp_edge::shard::CloseReason;

const VIDEO: u8 = 9;
const AUDIO: u8 = 8;
const DATA: u8 = 18;

/// Server with idle and slow-player timeouts far beyond every wait here: only noticing the
/// peer's close can end a session in time, and a stuck player holds its queue until it goes.
fn server_that_never_idles_out() -> TestServer {
    let mut config = Config::default();
    config.timeouts.idle_ms = 120_000;
    config.timeouts.slow_player_ms = 120_000;
    TestServer::start(config)
}

#[test]
fn a_publisher_that_sends_media_and_closes_frees_its_name_at_once() {
    let _serial = serial();
    let server = server_that_never_idles_out();
    let mut bystander = Bystander::start(&server, "bystander");
    // The churn the issue measured: 2,000 connect/publish/close cycles, each reconnect at once.
    for round in 0..2000u32 {
        let mut p = Client::publish(server.addr, "live", "churn");
        let tag = port_tag(&p);
        // Media and FIN in one burst: the server sees data and the close in one wake-up.
        p.session.send_media(DATA, 0, &media::set_data_frame());
        p.session.send_media(VIDEO, 0, &media::avc_header());
        p.session
            .send_media(VIDEO, 40, &media::avc_frame(true, round, 1500));
        let mut burst = Vec::new();
        while let Some(bytes) = p.session.poll_transmit() {
            burst.extend_from_slice(&bytes);
        }
        p.stream.write_all(&burst).unwrap();
        p.stream.shutdown(Shutdown::Both).unwrap();
        assert_eq!(
            server.close_reason(&p),
            CloseReason::PeerClosed,
            "round {round} ({tag})"
        );
    }
    // The name is free again for the encoder's reconnect.
    let mut again = Client::publish(server.addr, "live", "churn");
    again.send(AUDIO, 0, &media::aac_header());
    bystander.check();
}

#[test]
fn a_reset_connection_ends_its_session_at_once() {
    let _serial = serial();
    let server = server_that_never_idles_out();
    let mut bystander = Bystander::start(&server, "bystander");
    for round in 0..20u32 {
        let p = Client::publish(server.addr, "live", "reset");
        let tag = port_tag(&p);
        let port = p.local_port();
        // SO_LINGER 0: close sends RST instead of FIN.
        socket2::SockRef::from(&p.stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        let mut p = p;
        p.send(VIDEO, 0, &media::avc_frame(true, round, 500));
        drop(p);
        let reason = server.closed(port).reason;
        assert!(
            matches!(&reason, CloseReason::PeerClosed)
                || matches!(&reason, CloseReason::ReadFailed(e) if e.kind == ErrorKind::ConnectionReset),
            "round {round} ({tag}): {reason:?}"
        );
    }
    Client::publish(server.addr, "live", "reset");
    bystander.check();
}

/// Resident memory of this process (the in-process server's with it), from /proc.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// A player that never reads: a tiny receive buffer, and nothing read after play started.
fn stuck_player(server: &TestServer, name: &str) -> Client {
    let stuck = Client::play(server.addr, "live", name);
    socket2::SockRef::from(&stuck.stream)
        .set_recv_buffer_size(4096)
        .unwrap();
    stuck
}

#[test]
fn repeated_metadata_for_a_player_that_never_reads_stays_bounded() {
    let _serial = serial();
    let server = server_that_never_idles_out();
    let mut bystander = Bystander::start(&server, "bystander");
    let mut publisher = Client::publish(server.addr, "live", "meta");
    let _stuck = stuck_player(&server, "meta");
    // One reading player on the same stream: once it has the last message, so has the server.
    let mut watcher = Client::play(server.addr, "live", "meta");
    let before = rss_bytes();
    const ROUNDS: u16 = 500;
    for round in 0..ROUNDS {
        let fill = (round % 251) as u8;
        let meta = media::padded_metadata(200_000, fill);
        publisher.send(DATA, 0, &meta);
        // The reader keeps up (it gets the latest, or a later one replaced it).
        watcher.wait_for("this round's metadata", |e| {
            matches!(e, ClientEvent::Media { type_id: DATA, payload, .. }
                if payload.len() > 4 && payload[payload.len() - 4] == fill)
        });
    }
    let grown = rss_bytes().saturating_sub(before);
    eprintln!(
        "{ROUNDS} x 200 KB metadata, stuck player: RSS grew {} KB",
        grown >> 10
    );
    assert!(
        grown < 24 << 20,
        "{ROUNDS} × 200 KB of metadata for a stuck player grew RSS by {} MB",
        grown >> 20
    );
    bystander.check();
}

#[test]
fn metadata_over_max_header_bytes_closes_only_that_publisher() {
    let _serial = serial();
    let server = TestServer::with_defaults();
    let mut bystander = Bystander::start(&server, "bystander");
    let mut publisher = Client::publish(server.addr, "live", "huge");
    let mut player = Client::play(server.addr, "live", "huge");
    let tag = port_tag(&publisher);
    publisher.send(DATA, 0, &media::padded_metadata(1 << 20, 7));
    publisher.wait_closed();
    let reason = server.close_reason(&publisher);
    assert!(
        matches!(
            reason,
            CloseReason::PublisherRefused(IngestError::HeaderTooLarge {
                kind: "metadata",
                max: 262_144,
                ..
            })
        ),
        "{reason:?} ({tag})"
    );
    // The player saw no part of it, and the name is free for a well-behaved publisher.
    let mut again = Client::publish(server.addr, "live", "huge");
    again.send(DATA, 0, &media::set_data_frame());
    let got = player.wait_for("the next publisher's metadata", |e| {
        matches!(e, ClientEvent::Media { type_id: DATA, .. })
    });
    let ClientEvent::Media { payload, .. } = got else {
        unreachable!()
    };
    assert!(
        payload.len() < 1000,
        "got the small metadata, not the huge one"
    );
    bystander.check();
}

#[test]
fn newlines_and_escape_bytes_in_names_cannot_forge_log_lines() {
    let _serial = serial();
    let server = TestServer::with_defaults();
    let mut bystander = Bystander::start(&server, "bystander");
    let name = "cam\nERROR forged line\r\u{1b}[31m role=admin";
    let app = "live\r\nERROR forged app";
    let mut p = Client::publish(server.addr, app, name);
    let tag = port_tag(&p);
    p.send(VIDEO, 0, &media::avc_frame(true, 1, 100));
    drop(p);
    let closed = common::wait_for_log(&["connection closed", &tag]);
    assert!(
        closed.contains(
            r#"stream="live\r\nERROR forged app/cam\nERROR forged line\r\u{1b}[31m role=admin""#
        ),
        "{closed}"
    );
    let publishing = common::wait_for_log(&["publishing", &tag]);
    assert!(
        publishing.contains(r#"\nERROR forged line\r\u{1b}[31m role=admin""#),
        "{publishing}"
    );
    let connect = common::wait_for_log(&["connect", &tag, "tc_url="]);
    assert!(
        connect.contains(r#"app="live\r\nERROR forged app""#),
        "{connect}"
    );
    for line in common::log_lines_with(&["forged"]) {
        assert!(!line.starts_with("ERROR forged"), "a forged line: {line:?}");
        assert!(
            !line.contains('\u{1b}') && !line.contains('\r'),
            "raw bytes: {line:?}"
        );
    }
    bystander.check();
}

#[test]
fn memory_held_for_stuck_players_goes_back_when_they_leave() {
    let _serial = serial();
    let server = server_that_never_idles_out();
    let mut bystander = Bystander::start(&server, "bystander");
    let before = rss_bytes();
    const STREAMS: u32 = 16;
    let mut pairs = Vec::new();
    for s in 0..STREAMS {
        let name = format!("peak{s}");
        let publisher = Client::publish(server.addr, "live", &name);
        let stuck = stuck_player(&server, &name);
        pairs.push((publisher, stuck));
    }
    // Fill every stuck player's queue to its 2 MB limit with distinct frames.
    for seq in 0..150u32 {
        for (publisher, _) in &mut pairs {
            publisher.send(
                VIDEO,
                seq * 40,
                &media::avc_frame(seq % 50 == 0, seq, 20_000),
            );
        }
    }
    bystander.check();
    let peak = rss_bytes();
    let tags: Vec<String> = pairs
        .iter()
        .map(|(p, s)| format!("{}|{}", port_tag(p), port_tag(s)))
        .collect();
    drop(pairs);
    for tag in &tags {
        for t in tag.split('|') {
            common::wait_for_log(&["connection closed", t]);
        }
    }
    bystander.check();
    // The worker gives freed pages back on a tick after the closes: the first trim that
    // finds only the bystander's two connections left.
    common::wait_for_log(&["free heap memory returned", "connections=2 "]);
    let after = rss_bytes();
    eprintln!(
        "RSS before {} MB, peak {} MB, after {} MB",
        before >> 20,
        peak >> 20,
        after >> 20
    );
    assert!(peak > before + (16 << 20), "the peak held the queued media");
    assert!(
        after < before + (8 << 20),
        "RSS after everyone left: {} MB over the start (peak {} MB over)",
        after.saturating_sub(before) >> 20,
        peak.saturating_sub(before) >> 20
    );
}

#[test]
fn a_peer_that_asks_and_never_reads_the_replies_is_closed_at_the_output_cap() {
    use rtmp_edge::rtmp::amf0::Amf0Value;
    use rtmp_edge::rtmp::chunk::ChunkEncoder;
    use rtmp_edge::rtmp::command::Command;
    let _serial = serial();
    let server = server_that_never_idles_out();
    let mut bystander = Bystander::start(&server, "bystander");
    let mut asker = Client::connect(server.addr, "live");
    asker.wait_for("connected", |e| matches!(e, ClientEvent::Connected));
    socket2::SockRef::from(&asker.stream)
        .set_recv_buffer_size(4096)
        .unwrap();
    // A thousand releaseStream calls per write, each answered with a _result.
    let mut batch = bytes::BytesMut::new();
    let mut encoder = ChunkEncoder::new();
    for tx in 0..1000 {
        let mut payload = bytes::BytesMut::new();
        Command::new(
            "releaseStream",
            2.0 + f64::from(tx),
            Amf0Value::Null,
            vec![],
        )
        .encode(&mut payload);
        encoder.encode(3, 0, 20, 0, &payload, &mut batch);
    }
    let before = rss_bytes();
    let mut sent = 0usize;
    while sent < 512 << 20 && asker.stream.write_all(&batch).is_ok() {
        sent += batch.len();
    }
    let reason = server.close_reason(&asker);
    assert!(
        matches!(reason, CloseReason::OutputOverflow { cap, .. } if cap == 2_097_152 + 3 * 262_144 + 1_048_576),
        "{reason:?} after {sent} bytes"
    );
    let grown = rss_bytes().saturating_sub(before);
    eprintln!(
        "{sent} bytes of requests, replies unread: RSS grew {} KB",
        grown >> 10
    );
    assert!(grown < 32 << 20, "RSS grew {} MB", grown >> 20);
    bystander.check();
}
