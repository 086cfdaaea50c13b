//! Publishers of streams nobody watches are read by the clock (`workers.unwatched_read_ms`):
//! taken off read readiness while their stream is unwatched (checked in the epoll set itself,
//! through /proc), read on arrival again once a player joins, and nothing they sent meanwhile
//! is lost or reordered; a polled publisher that hangs up is closed at once.

mod common;

use common::metrics::{scrape_until, total};
use common::{media, publish_frames, wait_for_log, wait_for_log_count, Client, TestServer, WAIT};
use rtmp_edge::config::Config;

const VIDEO: u8 = 9;

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

/// Whether the server's socket of `client`'s connection is registered for read readiness
/// (EPOLLIN) in its worker's epoll set. The test server runs in this process: the socket is
/// found in /proc/self/net/tcp by its ports, its fd by its inode, and its registration in the
/// fdinfo of the epoll fd that holds it.
fn read_ready(server: &TestServer, client: &Client) -> bool {
    let (server_port, port) = (server.addr.port(), client.local_port());
    let port_of = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
    let tcp = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
    let inode = tcp
        .lines()
        .skip(1)
        .find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (port_of(f[1])? == server_port && port_of(f[2])? == port).then(|| f[9].to_string())
        })
        .expect("the server's socket of the connection");
    let socket = format!("socket:[{inode}]");
    let fd = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == socket))
        .expect("its file descriptor")
        .file_name()
        .into_string()
        .unwrap();
    for entry in std::fs::read_dir("/proc/self/fdinfo").unwrap().flatten() {
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        // An epoll fd lists its targets: "tfd:       12 events:  8000201d data: ...".
        for line in info.lines() {
            let mut words = line.split_whitespace();
            if (words.next(), words.next(), words.next())
                == (Some("tfd:"), Some(&*fd), Some("events:"))
            {
                let events = u32::from_str_radix(words.next().unwrap(), 16).unwrap();
                return events & libc::EPOLLIN as u32 != 0;
            }
        }
    }
    panic!("fd {fd} is in no epoll set");
}

#[test]
fn an_unwatched_publisher_is_read_by_the_clock_until_a_player_joins() {
    let mut config = Config::default();
    config.workers.unwatched_read_ms = 100;
    config.admin.listen = "127.0.0.1:0".into();
    let server = TestServer::start(config);
    let mut publisher = polled_publisher(&server, "quiet");
    assert!(!read_ready(&server, &publisher), "off read readiness");
    // The gauge is set right after, in the same worker tick.
    scrape_until(&server, "one publisher polled", |s| {
        total(s, "rtmp_edge_publishers_polled", None) == 1.0
    });
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
    assert!(read_ready(&server, &publisher), "back on read readiness");
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
    assert!(!read_ready(&server, &publisher));
    // The publisher was never closed for it.
    let port = publisher.local_port();
    let closes = server.journal().all();
    assert!(closes.iter().all(|c| c.peer.port() != port), "{closes:?}");
}

#[test]
fn a_polled_publisher_that_hangs_up_is_closed_at_once_and_its_name_is_free() {
    // Polled once a second: off read readiness a FIN is only a writable event, which must
    // have the connection read to the end at once, not at the next poll or the one after.
    let mut config = Config::default();
    config.workers.unwatched_read_ms = 1_000;
    let server = TestServer::start(config);
    let mut publisher = polled_publisher(&server, "gone");
    // Bytes left unread ahead of the FIN (within the receive window, so the FIN is not held
    // behind them in the publisher's kernel): read, and the FIN after them.
    publish_frames(&mut publisher, 10, 10);
    let port = publisher.local_port();
    drop(publisher);
    // Waits for the publish to start (a name still taken would be refused with BadName).
    let _next = Client::publish(server.addr, "live", "gone");
    assert!(matches!(
        server.closed(port).reason,
        rtmp_edge::shard::CloseReason::PeerClosed
    ));
}

#[test]
fn reloading_unwatched_read_ms_to_0_reads_polled_publishers_on_arrival_again() {
    let mut config = Config::default();
    config.workers.unwatched_read_ms = 100;
    let server = TestServer::start(config.clone());
    let mut publisher = polled_publisher(&server, "reload");
    assert!(!read_ready(&server, &publisher));
    config.workers.unwatched_read_ms = 0;
    server.server().reload(config);
    wait_for_log(&[
        "stream=live/reload",
        "unwatched_read_ms is 0: publisher read on arrival",
    ]);
    assert!(read_ready(&server, &publisher));
    // On arrival from now on: a player gets the cache and the live frames.
    let mut player = Client::play(server.addr, "live", "reload");
    publish_frames(&mut publisher, 10, 5);
    let stamps: Vec<u32> = player.media(16)[1..].iter().map(|m| m.1).collect();
    assert_eq!(stamps, (0..15).map(|i| i * 40).collect::<Vec<_>>());
}
