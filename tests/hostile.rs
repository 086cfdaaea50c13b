//! Regression tests for what hostile and careless clients did to the server (issue 15): each
//! attack runs beside a bystander publisher and player that must carry on unharmed.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::{media, Client, TestServer, WAIT};
use rtmp_edge::config::Config;

const VIDEO: u8 = 9;
const AUDIO: u8 = 8;
const DATA: u8 = 18;

fn port_tag(c: &Client) -> String {
    format!(":{} ", c.local_port())
}

/// A publisher and a player of `name` that exchange one keyframe, to check on afterwards.
struct Bystander {
    publisher: Client,
    player: Client,
    seq: u32,
}

impl Bystander {
    fn start(server: &TestServer, name: &str) -> Self {
        let publisher = Client::publish(server.addr, "live", name);
        let player = Client::play(server.addr, "live", name);
        let mut b = Self {
            publisher,
            player,
            seq: 0,
        };
        b.check();
        b
    }

    /// The bystander's next keyframe reaches its player byte for byte.
    fn check(&mut self) {
        self.seq += 1;
        let frame = media::avc_frame(true, self.seq, 2000);
        self.publisher.send(VIDEO, self.seq * 40, &frame);
        let got = self.player.media(1);
        assert_eq!(
            got[0].2.as_ref(),
            frame.as_slice(),
            "bystander got its frame"
        );
    }
}

/// Server with an idle timeout far beyond every wait here, so only noticing the peer's close
/// can end a session in time.
fn server_that_never_idles_out() -> TestServer {
    let mut config = Config::default();
    config.timeouts.idle_ms = 120_000;
    TestServer::start(config)
}

#[test]
fn a_publisher_that_sends_media_and_closes_frees_its_name_at_once() {
    let server = server_that_never_idles_out();
    let mut bystander = Bystander::start(&server, "bystander");
    for round in 0..40u32 {
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
        let line = common::wait_for_log_count(&["connection closed", &tag], 1, WAIT).remove(0);
        assert!(
            line.contains("peer closed the connection"),
            "round {round}: {line}"
        );
    }
    // The name is free again for the encoder's reconnect.
    let mut again = Client::publish(server.addr, "live", "churn");
    again.send(AUDIO, 0, &media::aac_header());
    bystander.check();
}

#[test]
fn a_reset_connection_ends_its_session_at_once() {
    let server = server_that_never_idles_out();
    let mut bystander = Bystander::start(&server, "bystander");
    for round in 0..20u32 {
        let p = Client::publish(server.addr, "live", "reset");
        let tag = port_tag(&p);
        // SO_LINGER 0: close sends RST instead of FIN.
        socket2::SockRef::from(&p.stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        let mut p = p;
        p.send(VIDEO, 0, &media::avc_frame(true, round, 500));
        drop(p);
        let started = Instant::now();
        common::wait_for_log_count(&["connection closed", &tag], 1, WAIT);
        assert!(started.elapsed() < WAIT);
    }
    Client::publish(server.addr, "live", "reset");
    bystander.check();
}
