//! Publishers of streams nobody watches are read by the clock (`workers.unwatched_read_ms`):
//! taken off read readiness while their stream is unwatched, read on arrival again once a
//! player joins, and nothing they sent meanwhile is lost or reordered.

mod common;

use common::{media, wait_for_log, wait_for_log_count, Client, TestServer, WAIT};
use rtmp_edge::config::Config;

const VIDEO: u8 = 9;

fn publish_frames(p: &mut Client, from: u32, n: u32) {
    for i in from..from + n {
        p.send(VIDEO, i * 40, &media::avc_frame(i % 50 == 0, i, 3000));
    }
}

/// A publisher of `live/NAME` with a sequence header and 10 frames sent, once its worker
/// reads it by the clock (nobody watches it).
fn polled_publisher(server: &TestServer, name: &str) -> Client {
    let mut publisher = Client::publish(server.addr, "live", name);
    publisher.send(VIDEO, 0, &media::avc_header());
    publish_frames(&mut publisher, 0, 10);
    let stream = format!("stream=live/{name}");
    wait_for_log(&[&stream, "stream unwatched: publisher read by the clock"]);
    publisher
}

/// The publisher's polled state as the admin listener reports it.
fn polled(server: &TestServer) -> String {
    let addr = server.server().admin_addr().expect("admin listener runs");
    let (_, body) = common::get(addr, "/metrics");
    String::from_utf8(body)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("rtmp_edge_publishers_polled{"))
        .expect("the gauge is exported")
        .to_string()
}

#[test]
fn an_unwatched_publisher_is_read_by_the_clock_until_a_player_joins() {
    let mut config = Config::default();
    config.workers.unwatched_read_ms = 100;
    config.admin.listen = "127.0.0.1:0".into();
    let server = TestServer::start(config);
    let mut publisher = polled_publisher(&server, "quiet");
    // The gauge follows at the next worker tick (100 ms): scraped until it says so, bounded.
    let deadline = std::time::Instant::now() + WAIT;
    while !polled(&server).ends_with(" 1") {
        assert!(std::time::Instant::now() < deadline, "{}", polled(&server));
        std::thread::yield_now();
    }
    // Sent while polled: read at the next tick, into the GOP cache or to the player.
    publish_frames(&mut publisher, 10, 10);
    let mut player = Client::play(server.addr, "live", "quiet");
    let got = player.media(21);
    assert_eq!(
        got[0].2[..],
        media::avc_header()[..],
        "the sequence header first"
    );
    let stamps: Vec<u32> = got[1..].iter().map(|m| m.1).collect();
    let sent: Vec<u32> = (0..20).map(|i| i * 40).collect();
    assert_eq!(stamps, sent, "every frame, in order, none twice");
    wait_for_log(&[
        "stream=live/quiet",
        "stream watched: publisher read on arrival",
    ]);
    // Read on arrival: live frames keep coming.
    publish_frames(&mut publisher, 20, 5);
    let live: Vec<u32> = player.media(5).iter().map(|m| m.1).collect();
    assert_eq!(live, (20..25).map(|i| i * 40).collect::<Vec<_>>());
    // The player leaves: unwatched again, polled again.
    drop(player);
    wait_for_log_count(
        &[
            "stream=live/quiet",
            "stream unwatched: publisher read by the clock",
        ],
        2,
        WAIT,
    );
    // The publisher was never closed for it.
    let port = publisher.local_port();
    let closes = server.journal().all();
    assert!(closes.iter().all(|c| c.peer.port() != port), "{closes:?}");
}

#[test]
fn reloading_unwatched_read_ms_to_0_reads_polled_publishers_on_arrival_again() {
    let mut config = Config::default();
    config.workers.unwatched_read_ms = 100;
    let server = TestServer::start(config.clone());
    let mut publisher = polled_publisher(&server, "reload");
    config.workers.unwatched_read_ms = 0;
    server.server().reload(config);
    wait_for_log(&[
        "stream=live/reload",
        "unwatched_read_ms is 0: publisher read on arrival",
    ]);
    // On arrival from now on: a player gets the cache and the live frames.
    let mut player = Client::play(server.addr, "live", "reload");
    publish_frames(&mut publisher, 10, 5);
    let stamps: Vec<u32> = player.media(16)[1..].iter().map(|m| m.1).collect();
    assert_eq!(stamps, (0..15).map(|i| i * 40).collect::<Vec<_>>());
    assert_eq!(
        common::log_lines_with(&["stream=live/reload", "read by the clock"]).len(),
        1,
        "not polled again"
    );
}
