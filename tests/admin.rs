//! The admin listener's `/metrics`, scraped while streams flow: the exposition parses with a
//! Prometheus text parser, counters move with the traffic, closes are counted by reason, and
//! a bearer token guards it when configured.

mod common;

use common::metrics::{scrape, scrape_until, total};
use common::{get, media, publish_frames, Client, TestServer, WAIT};
use rtmp_edge::config::Config;

const VIDEO: u8 = 9;

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
    // The gauges are refreshed by the workers' 100 ms tick: poll until they show everyone.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let s = scrape(&server);
        let rtmp = s
            .samples
            .iter()
            .filter(|x| x.metric == "rtmp_edge_connections_open_by_proto")
            .filter(|x| x.labels.get("proto") == Some("rtmp"))
            .map(|x| match x.value {
                prometheus_parse::Value::Gauge(v) => v,
                _ => 0.0,
            })
            .sum::<f64>();
        if rtmp == 7.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "open RTMP connections: {rtmp}"
        );
    }
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
    for path in ["/metrics", "/api/v1/streams"] {
        let (head, _) = get(addr, path);
        assert!(head.starts_with("HTTP/1.1 401"), "{path}: {head}");
    }
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    use std::io::Write;
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let (head, body) = common::read_response(&mut c);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("rtmp_edge_connections_open"));
}

/// Sends one request with `method` to the admin listener of `server`; the answer.
fn call(server: &TestServer, method: &str, path: &str) -> (String, serde_json::Value) {
    use std::io::Write;
    let addr = server.server().admin_addr().unwrap();
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(c, "{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let (head, body) = common::read_response(&mut c);
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (head, json)
}

#[test]
fn the_api_lists_streams_and_clients_across_workers_and_kicks_by_id() {
    let mut config = Config::default();
    config.workers.count = 2;
    let server = TestServer::start(config);
    let tags = common::fixture_tags();
    let mut publisher = Client::publish(server.addr, "live", "api");
    for tag in &tags {
        publisher.send(tag.tag_type, tag.timestamp, &tag.data);
    }
    // Enough players that both workers have some (the kernel spreads connections).
    let mut players: Vec<Client> = (0..8)
        .map(|_| Client::play(server.addr, "live", "api"))
        .collect();
    for p in &mut players {
        p.media(3);
    }
    let (head, streams) = call(&server, "GET", "/api/v1/streams");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let stream = streams
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == "api")
        .unwrap_or_else(|| panic!("listed: {streams}"));
    assert_eq!(stream["app"], "live");
    assert_eq!(stream["source"], "local");
    assert_eq!(
        stream["players"]["rtmp"], 8,
        "players of every worker: {stream}"
    );
    assert!(
        stream["video_codec"]
            .as_str()
            .is_some_and(|c| c.starts_with("avc1.")),
        "{stream}"
    );
    assert!(stream["width"].as_u64().is_some_and(|w| w > 0), "{stream}");
    assert_eq!(
        stream["publisher"],
        format!("127.0.0.1:{}", publisher.local_port())
    );
    let (_, one) = call(&server, "GET", "/api/v1/streams/live/api");
    assert_eq!(one["stream"], "api");
    let (head, _) = call(&server, "GET", "/api/v1/streams/live/nope");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    let (_, clients) = call(&server, "GET", "/api/v1/clients?stream=live/api");
    let clients = clients.as_array().unwrap().clone();
    assert_eq!(clients.len(), 9, "the publisher and 8 players: {clients:?}");
    let owner = clients.iter().find(|c| c["role"] == "publisher").unwrap()["worker"].clone();
    // Kick a player on the other worker than the publisher's, by id.
    let victim = clients
        .iter()
        .find(|c| c["role"] == "player" && c["worker"] != owner)
        .or_else(|| clients.iter().find(|c| c["role"] == "player"))
        .unwrap();
    let id = victim["id"].as_str().unwrap().to_string();
    let port: u16 = victim["peer"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (head, kicked) = call(&server, "DELETE", &format!("/api/v1/clients/{id}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(kicked["kicked"], true);
    assert_eq!(
        server.closed(port).reason,
        rtmp_edge::shard::CloseReason::Kicked
    );
    let (head, _) = call(&server, "DELETE", &format!("/api/v1/clients/{id}"));
    assert!(
        head.starts_with("HTTP/1.1 404"),
        "a kick never reaches a reused slot: {head}"
    );
    // The others play on.
    publish_frames(&mut publisher, 500, 25);
    for p in players.iter_mut().filter(|p| p.local_port() != port) {
        p.media(1);
    }
    // Reload needs a configuration file (in process there is none); drain works.
    let (head, _) = call(&server, "POST", "/api/v1/reload");
    assert!(head.starts_with("HTTP/1.1 501"), "{head}");
    let (head, _) = call(&server, "POST", "/api/v1/drain");
    assert!(head.starts_with("HTTP/1.1 202"), "{head}");
    common::wait_for_log_count(&["drain started"], 2, WAIT);
    let (head, _) = get(server.http, "/healthz");
    assert!(head.starts_with("HTTP/1.1 503"), "draining: {head}");
}

#[test]
fn per_stream_series_are_opt_in_and_parse() {
    let mut config = Config::default();
    config.admin.stream_metrics = true;
    let server = TestServer::start(config);
    let mut publisher = Client::publish(server.addr, "live", "per");
    publisher.send(VIDEO, 0, &media::avc_header());
    let mut players: Vec<Client> = (0..3)
        .map(|_| Client::play(server.addr, "live", "per"))
        .collect();
    publish_frames(&mut publisher, 0, 10);
    for p in &mut players {
        p.media(11);
    }
    let players_rtmp: f64 = scrape(&server)
        .samples
        .iter()
        .filter(|s| s.metric == "rtmp_edge_stream_players")
        .filter(|s| {
            s.labels.get("stream") == Some("live/per") && s.labels.get("proto") == Some("rtmp")
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => v,
            _ => -1.0,
        })
        .sum();
    assert_eq!(players_rtmp, 3.0);
    // Off by default.
    let plain = TestServer::with_defaults();
    assert!(!scrape(&plain)
        .samples
        .iter()
        .any(|s| s.metric.starts_with("rtmp_edge_stream_")));
}

#[test]
fn hls_and_dash_viewers_are_counted_per_stream_by_address() {
    let server = TestServer::with_defaults();
    let mut publisher = Client::publish(server.addr, "live", "v");
    for tag in common::fixture_tags() {
        publisher.send(tag.tag_type, tag.timestamp, &tag.data);
    }
    // Two playlist requests from one address are one HLS viewer; a manifest request is DASH.
    let _a = common::send_get(server.http, "/live/v.m3u8");
    let _b = common::send_get(server.http, "/live/v.m3u8");
    let _c = common::send_get(server.http, "/live/v.mpd");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, streams) = call(&server, "GET", "/api/v1/streams/live/v");
        if streams["players"]["hls"] == 1 && streams["players"]["dash"] == 1 {
            assert_eq!(streams["players"]["rtmp"], 0);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{streams}");
    }
}

/// The value of the one sample of `name` whose labels include every pair of `labels`,
/// summed over workers.
fn labelled(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn a_slow_players_drops_are_counted_while_it_is_still_connected() {
    let mut config = Config::default();
    config.streams.player_queue_bytes = 128 * 1024;
    config.timeouts.slow_player_ms = 60_000; // it stays: its drops must show before it goes
    config.workers.socket_send_buffer = 64 * 1024;
    config.admin.stream_metrics = true;
    let server = TestServer::start(config);
    let mut publisher = Client::publish(server.addr, "live", "drops");
    publisher.send(VIDEO, 0, &media::avc_header());
    let mut good = Client::play(server.addr, "live", "drops");
    let stuck = Client::play(server.addr, "live", "drops");
    socket2::SockRef::from(&stuck.stream)
        .set_recv_buffer_size(4096)
        .unwrap();
    let dropped = |s: &prometheus_parse::Scrape| {
        (
            total(s, "rtmp_edge_player_frames_dropped_total", None),
            labelled(
                s,
                "rtmp_edge_stream_player_frames_dropped_total",
                &[("stream", "live/drops")],
            ),
        )
    };
    assert_eq!(dropped(&scrape(&server)), (0.0, 0.0));
    // Frame by frame (the good player reads each) until the stuck one's queue overflows.
    let deadline = std::time::Instant::now() + WAIT;
    let mut seq = 0;
    let s = loop {
        publisher.send(
            VIDEO,
            seq * 40,
            &media::avc_frame(seq % 25 == 0, seq, 20_000),
        );
        good.media(1);
        seq += 1;
        let s = scrape(&server);
        let (worker, stream) = dropped(&s);
        if worker > 0.0 && stream > 0.0 {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "no drops counted");
    };
    // The worker's counter follows its tick, the stream's the scrape: they meet.
    scrape_until(&server, "one stream, the same drops", |s| {
        let (worker, stream) = dropped(s);
        worker == stream
    });
    let out = total(&s, "rtmp_edge_media_messages_out_total", None);
    assert!(
        out >= f64::from(seq),
        "the good player alone was queued {seq} frames: {out}"
    );
    // The good player read the header and seq - 1 frames at least.
    let frames = f64::from(seq - 1) * 20_000.0;
    let sent = labelled(
        &s,
        "rtmp_edge_stream_sent_bytes_total",
        &[("stream", "live/drops")],
    );
    assert!(sent > frames, "sent to the stream's players: {sent}");
    let received = labelled(
        &s,
        "rtmp_edge_stream_received_bytes_total",
        &[("stream", "live/drops")],
    );
    assert!(received > frames, "received: {received}");
    // The API names the one dropping.
    let (_, clients) = call(&server, "GET", "/api/v1/clients?stream=live/drops");
    let port = stuck.local_port().to_string();
    let stuck_info = clients
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["peer"].as_str().unwrap().ends_with(&format!(":{port}")))
        .unwrap_or_else(|| panic!("{clients}"));
    assert!(
        stuck_info["dropped_frames"].as_u64().unwrap() > 0,
        "{stuck_info}"
    );
    // When the stuck player goes, the counters keep what it dropped.
    let before = dropped(&scrape(&server));
    drop(stuck);
    server.closed(port.parse().unwrap());
    publisher.send(VIDEO, seq * 40, &media::avc_frame(true, seq, 100));
    good.media(1);
    let after = scrape_until(&server, "counters kept", |s| {
        let c = dropped(s);
        c.0 >= before.0 && c.1 >= before.1
    });
    assert!(dropped(&after).0 >= before.0);
}

#[test]
fn connections_are_labelled_by_protocol_and_role_and_setup_failures_by_reason() {
    let server = TestServer::with_defaults();
    let mut publisher = Client::publish(server.addr, "live", "lab");
    publisher.send(VIDEO, 0, &media::avc_header());
    let mut player = Client::play(server.addr, "live", "lab");
    publish_frames(&mut publisher, 0, 3);
    player.media(4);
    let open = |s: &prometheus_parse::Scrape, proto, role| {
        labelled(
            s,
            "rtmp_edge_connections_open_by_proto",
            &[("proto", proto), ("role", role)],
        )
    };
    scrape_until(&server, "a publisher and a player", |s| {
        open(s, "rtmp", "publisher") == 1.0 && open(s, "rtmp", "player") == 1.0
    });
    let (_, clients) = call(&server, "GET", "/api/v1/clients");
    let roles: Vec<(String, String)> = clients
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["proto"].to_string(), c["role"].to_string()))
        .collect();
    assert!(
        roles.contains(&("\"rtmp\"".into(), "\"publisher\"".into())),
        "{roles:?}"
    );
    // A client that fails its handshake (version 9) is a setup failure; the others play on.
    let failures = |s: &prometheus_parse::Scrape| {
        labelled(
            s,
            "rtmp_edge_setup_failures_total",
            &[("reason", "protocol")],
        )
    };
    let before = failures(&scrape(&server));
    let mut bad = std::net::TcpStream::connect(server.addr).unwrap();
    std::io::Write::write_all(&mut bad, &[9u8; 1537]).unwrap();
    let port = bad.local_addr().unwrap().port();
    server.closed(port);
    assert_eq!(failures(&scrape(&server)), before + 1.0);
    assert_eq!(
        labelled(
            &scrape(&server),
            "rtmp_edge_setup_failures_total",
            &[("reason", "peer_closed")]
        ),
        0.0,
        "players that played are not setup failures"
    );
    publish_frames(&mut publisher, 3, 2);
    player.media(2);
}

#[test]
fn each_configured_origin_has_an_up_gauge_that_falls_when_it_fails() {
    // A port nothing listens on: the pull a player asks for fails, and the origin backs off.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let mut config = Config::default();
    config.relay.origins = vec![format!("rtmp://127.0.0.1:{dead_port}")];
    let server = TestServer::start(config);
    let origin = format!("rtmp://127.0.0.1:{dead_port}");
    let up = |s: &prometheus_parse::Scrape| {
        labelled(s, "rtmp_edge_relay_origin_up", &[("origin", &origin)])
    };
    scrape_until(&server, "the origin listed up", |s| up(s) == 1.0);
    // A player asks for a stream nobody has here: the edge tries to pull it.
    let mut player = Client::connect(server.addr, "live");
    player.session.play("far");
    player.flush();
    let deadline = std::time::Instant::now() + WAIT;
    while up(&scrape(&server)) != 0.0 {
        player.pump(std::time::Duration::from_millis(20));
        assert!(
            std::time::Instant::now() < deadline,
            "the failed origin never shown down"
        );
    }
}
