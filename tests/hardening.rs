//! Hardening (issue 11): every way a client could hold a slot or a resource has a bound, and
//! each attack is closed with its typed reason while a bystander publisher and player carry on
//! (as in tests/hostile.rs; kept apart so that file's RSS measurements see only its own tests).

mod common;

use std::io::{ErrorKind, Write};
use std::time::Duration;

use common::{media, port_tag, serial, Bystander, Client, TestServer};
use rtmp_edge::config::Config;
use rtmp_edge::rtmp::session::ClientEvent;
use rtmp_edge::shard::CloseReason;

const VIDEO: u8 = 9;
const AUDIO: u8 = 8;

/// Server whose setup and message bounds are short (`ms`) and whose idle and slow-player
/// timeouts are far beyond every wait here: only the bound under test can end a session.
fn server_with_short_setup_and_message_bounds(ms: u64) -> TestServer {
    let mut config = Config::default();
    config.timeouts.setup_ms = ms;
    config.timeouts.message_ms = ms;
    config.timeouts.idle_ms = 120_000;
    config.timeouts.slow_player_ms = 120_000;
    TestServer::start(config)
}

/// A whole Window Acknowledgement Size message (csid 2, stream 0): harmless, complete, and
/// neither a publish nor a play.
const WINDOW_ACK_SIZE: [u8; 16] = [
    0x02, 0, 0, 0, 0, 0, 4, 5, 0, 0, 0, 0, 0x00, 0x26, 0x25, 0xA0,
];

/// The first 12 + 10 bytes of a 1,000-byte video message on csid 6, stream 1 (fmt 0 header).
fn ten_bytes_of_a_thousand_byte_message() -> Vec<u8> {
    let mut wire = vec![0x06, 0, 0, 0, 0x00, 0x03, 0xE8, VIDEO, 1, 0, 0, 0];
    wire.extend_from_slice(&[0x17; 10]);
    wire
}

#[test]
fn a_client_that_connects_and_never_publishes_or_plays_is_closed_at_setup_ms() {
    let _serial = serial();
    let server = server_with_short_setup_and_message_bounds(1000);
    let mut bystander = Bystander::start(&server, "bystander");
    let started = std::time::Instant::now();
    let mut loiterer = Client::connect(server.addr, "live");
    loiterer.wait_for("connected", |e| matches!(e, ClientEvent::Connected));
    let tag = port_tag(&loiterer);
    // Whole, valid messages every 200 ms: never idle, never mid-message, never set up.
    while loiterer.stream.write_all(&WINDOW_ACK_SIZE).is_ok() && !loiterer.closed {
        loiterer.pump(Duration::from_millis(200));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still open ({tag})"
        );
    }
    assert_eq!(
        server.close_reason(&loiterer),
        CloseReason::SetupTimeout { ms: 1000 },
        "{tag}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "{tag}");
    bystander.check();
}

#[test]
fn a_player_waiting_for_a_publisher_is_not_closed_at_setup_ms() {
    let _serial = serial();
    let server = server_with_short_setup_and_message_bounds(500);
    let mut waiting = Client::play(server.addr, "live", "later");
    std::thread::sleep(Duration::from_millis(1500));
    let mut publisher = Client::publish(server.addr, "live", "later");
    let frame = media::avc_frame(true, 1, 1000);
    publisher.send(VIDEO, 0, &frame);
    assert_eq!(waiting.media(1)[0].2.as_ref(), frame.as_slice());
}

#[test]
fn a_publisher_that_stops_mid_message_is_closed_at_message_ms() {
    let _serial = serial();
    let server = server_with_short_setup_and_message_bounds(1000);
    let mut bystander = Bystander::start(&server, "bystander");
    let mut stalled = Client::publish(server.addr, "live", "stalled");
    let tag = port_tag(&stalled);
    let started = std::time::Instant::now();
    stalled
        .stream
        .write_all(&ten_bytes_of_a_thousand_byte_message())
        .unwrap();
    stalled.wait_closed();
    assert_eq!(
        server.close_reason(&stalled),
        CloseReason::MessageTimeout { ms: 1000 },
        "{tag}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?} ({tag})"
    );
    // The name is free again.
    Client::publish(server.addr, "live", "stalled");
    bystander.check();
}

#[test]
fn a_player_trickling_one_byte_at_a_time_is_closed_at_message_ms() {
    let _serial = serial();
    let server = server_with_short_setup_and_message_bounds(1000);
    let mut bystander = Bystander::start(&server, "bystander");
    // Players are never idle-timed (they only read): only the message bound catches this.
    let mut trickler = Client::play(server.addr, "live", "bystander");
    let tag = port_tag(&trickler);
    let started = std::time::Instant::now();
    let wire = ten_bytes_of_a_thousand_byte_message();
    for byte in wire.iter().cycle() {
        if trickler.stream.write_all(&[*byte]).is_err()
            || !trickler.pump(Duration::from_millis(200))
        {
            break;
        }
        trickler.events.clear();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still open ({tag})"
        );
    }
    assert_eq!(
        server.close_reason(&trickler),
        CloseReason::MessageTimeout { ms: 1000 },
        "{tag}"
    );
    bystander.check();
}

/// True when the server closed `stream` (EOF or reset) within `wait`; false while it is open.
fn closed_by_server(stream: &mut std::net::TcpStream, wait: Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(wait)).unwrap();
    match stream.read(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

#[test]
fn connections_from_one_ip_past_the_rate_limit_are_refused_at_accept() {
    let _serial = serial();
    let mut config = Config::default();
    config.workers.max_new_connections_per_ip_per_s = 5;
    let server = TestServer::start(config);
    let mut bystander = Bystander::start(&server, "bystander");
    // A new window, then a burst of 20 from the same IP (the bystander's).
    std::thread::sleep(Duration::from_millis(1100));
    let mut burst: Vec<_> = (0..20)
        .map(|_| std::net::TcpStream::connect(server.addr).unwrap())
        .collect();
    let refused = burst
        .iter_mut()
        .filter_map(|s| closed_by_server(s, Duration::from_millis(300)).then_some(()))
        .count();
    assert_eq!(refused, 15, "20 in a burst, 5 admitted");
    // One warning for the whole burst (at its first refusal; the next one, a second later at
    // the earliest, counts those refused in between).
    let warnings = common::log_lines_with(&["max_new_connections_per_ip_per_s reached"]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("refused=1"), "{warnings:?}");
    // Those admitted and the bystander carry on; the next second admits again.
    bystander.check();
    drop(burst);
    std::thread::sleep(Duration::from_millis(1100));
    let mut again = Client::publish(server.addr, "live", "after");
    again.send(AUDIO, 0, &media::aac_header());
    bystander.check();
}

#[test]
fn an_http_request_head_trickled_a_byte_at_a_time_is_closed_at_handshake_ms() {
    let _serial = serial();
    let mut config = Config::default();
    config.timeouts.handshake_ms = 1000;
    let server = TestServer::start(config);
    let mut bystander = Bystander::start(&server, "bystander");
    let mut slow = std::net::TcpStream::connect(server.http).unwrap();
    let port = slow.local_addr().unwrap().port();
    let head = b"GET /live/bystander.flv HTTP/1.1\r\nHost: edge\r\nX-Padding: ".to_vec();
    let started = std::time::Instant::now();
    // One byte every 300 ms: each read used to restart the head's clock.
    for byte in head.iter().chain(std::iter::repeat(&b'a')) {
        if slow.write_all(&[*byte]).is_err()
            || closed_by_server(&mut slow, Duration::from_millis(300))
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still open");
    }
    assert_eq!(
        server.closed(port).reason,
        CloseReason::HttpHeadTimeout { ms: 1000 }
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    bystander.check();
}

#[test]
fn an_http_request_with_an_endless_body_is_answered_413_and_closed() {
    let _serial = serial();
    let server = TestServer::with_defaults();
    let mut bystander = Bystander::start(&server, "bystander");
    let mut poster = std::net::TcpStream::connect(server.http).unwrap();
    let port = poster.local_addr().unwrap().port();
    poster
        .write_all(
            b"POST /live/x.flv HTTP/1.1\r\nHost: edge\r\nContent-Length: 100000000000\r\n\r\n",
        )
        .unwrap();
    let body = vec![0u8; 64 * 1024];
    let started = std::time::Instant::now();
    while poster.write_all(&body).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still taking the body"
        );
    }
    let closed = server.closed(port);
    assert!(
        matches!(&closed.reason, CloseReason::HttpAnswered { method, .. } if method == "POST"),
        "{:?}",
        closed.reason
    );
    bystander.check();
}
