//! The admin listener's `/metrics`, scraped while streams flow: the exposition parses with a
//! Prometheus text parser, counters move with the traffic, closes are counted by reason, and
//! a bearer token guards it when configured.

mod common;

use common::{get, media, Client, TestServer, WAIT};
use rtmp_edge::config::Config;

const VIDEO: u8 = 9;

/// Scrapes `/metrics` of `server` and parses it.
fn scrape(server: &TestServer) -> prometheus_parse::Scrape {
    let addr = server.server().admin_addr().expect("admin listener runs");
    let (head, body) = get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let text = String::from_utf8(body).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("valid exposition")
}

/// The sum over workers of `name` (with `reason` when given).
fn total(scrape: &prometheus_parse::Scrape, name: &str, reason: Option<&str>) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| reason.map_or(true, |r| s.labels.get("reason") == Some(r)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

fn publish_frames(p: &mut Client, from: u32, n: u32) {
    for i in from..from + n {
        p.send(VIDEO, i * 40, &media::avc_frame(i % 25 == 0, i, 4000));
    }
}

#[test]
fn metrics_move_with_the_traffic_and_count_closes_by_reason() {
    let mut config = Config::default();
    config.workers.count = 2;
    let server = TestServer::start(config);
    let before = scrape(&server);
    let series = before.samples.len();
    assert!(before
        .samples
        .iter()
        .all(|s| s.metric.starts_with("rtmp_edge_") && s.labels.get("worker").is_some()));
    let mut publisher = Client::publish(server.addr, "live", "m");
    publisher.send(VIDEO, 0, &media::avc_header());
    let mut one = Client::play(server.addr, "live", "m");
    publish_frames(&mut publisher, 0, 50);
    one.media(51);
    let with_one = scrape(&server);
    let sent_one = total(&with_one, "rtmp_edge_sent_bytes_total", None);
    let mut more: Vec<Client> = (0..5)
        .map(|_| Client::play(server.addr, "live", "m"))
        .collect();
    publish_frames(&mut publisher, 50, 50);
    one.media(50);
    for p in &mut more {
        p.media(50);
    }
    let with_six = scrape(&server);
    let sent_six = total(&with_six, "rtmp_edge_sent_bytes_total", None);
    assert!(
        sent_six - sent_one > 5.0 * 50.0 * 4000.0,
        "bytes out grow with the players: {sent_one} then {sent_six}"
    );
    assert!(total(&with_six, "rtmp_edge_media_messages_in_total", None) >= 101.0);
    assert!(total(&with_six, "rtmp_edge_connections_accepted_total", None) >= 7.0);
    assert_eq!(with_six.samples.len(), series, "the series set is fixed");
    // A player that leaves (with unread data: the kernel resets it) is counted by reason.
    let closed = |s: &prometheus_parse::Scrape| {
        let by = |r| total(s, "rtmp_edge_connections_closed_total", Some(r));
        (
            by("peer_closed") + by("io_error"),
            total(s, "rtmp_edge_connections_closed_total", None),
        )
    };
    let (left, all) = closed(&with_six);
    let port = more[0].local_port();
    drop(more.remove(0));
    server.closed(port);
    let after = scrape(&server);
    assert_eq!(closed(&after), (left + 1.0, all + 1.0));
}

#[test]
fn a_token_guards_the_metrics() {
    let mut config = Config::default();
    config.admin.token = "s3cret".into();
    let server = TestServer::start(config);
    let addr = server.server().admin_addr().unwrap();
    let (head, _) = get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    use std::io::Write;
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let (head, body) = common::read_response(&mut c);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("rtmp_edge_connections_open"));
}
