//! RTMPS: RTMP over TLS on the same workers as plain RTMP, against a self-signed
//! certificate each test generates (rcgen). Real clients (ffmpeg, with GnuTLS in Debian's
//! build) publish and play over `rtmps://`; an in-process TLS client (rustls around the
//! project's own ClientSession) checks bystanders, slow players and the relay's TLS client.
//! A missing tool is a failure, never a skip.

mod common;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::procs::{assert_same_frames, ffmpeg_play, ffmpeg_publish, frame_md5s, h264_source};
use common::tools::{tool, Dir};
use common::{media, wait_for_log_count, Client, TestServer, WAIT};
use rtmp_edge::config::{Config, PushConfig};
use rtmp_edge::rtmp::handshake::RANDOM_LEN;
use rtmp_edge::rtmp::session::{ClientConfig, ClientEvent, ClientSession, PublishMode};
use rtmp_edge::rtmp::Limits;
use rtmp_edge::shard::CloseReason;

const VIDEO: u8 = 9;
const AUDIO: u8 = 8;
const DATA: u8 = 18;

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
struct Cert {
    cert: String,
    key: String,
}

impl Cert {
    fn new(dir: &Dir) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_path, key_path) = (dir.path("cert.pem"), dir.path("key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Self {
            cert: cert_path.to_str().unwrap().to_string(),
            key: key_path.to_str().unwrap().to_string(),
        }
    }

    /// `config` with an RTMPS listener serving this certificate.
    fn serve(&self, mut config: Config) -> Config {
        config.rtmps.listen = vec!["127.0.0.1:0".parse().unwrap()];
        config.rtmps.cert = self.cert.clone();
        config.rtmps.key = self.key.clone();
        config
    }
}

/// A server with an RTMPS listener for `cert`; its RTMPS address.
fn tls_server(cert: &Cert, tune: impl FnOnce(&mut Config)) -> (TestServer, SocketAddr) {
    let mut config = cert.serve(Config::default());
    tune(&mut config);
    config.validate().expect("a valid RTMPS config");
    let server = TestServer::start(config);
    let addr = server.rtmps.expect("an RTMPS listener");
    (server, addr)
}

/// A blocking RTMPS client: rustls (trusting the test's certificate as its CA) around the
/// project's ClientSession.
struct TlsClient {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    session: ClientSession,
    buf: BytesMut,
    events: VecDeque<ClientEvent>,
    closed: bool,
}

impl TlsClient {
    fn connect(addr: SocketAddr, ca: &Cert, app: &str) -> Self {
        let config = rtmp_edge::net::tls::client_config(&ca.cert).expect("the test CA loads");
        let name = "localhost".try_into().unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        let socket = TcpStream::connect(addr).expect("connect");
        socket.set_nodelay(true).unwrap();
        let session = ClientSession::new(
            ClientConfig {
                app: app.to_string(),
                tc_url: format!("rtmps://localhost:{}/{app}", addr.port()),
                flash_ver: "LNX 9,0,124,2".to_string(),
                limits: Limits::default(),
                chunk_size: 4096,
                digest_handshake: false,
            },
            &[0x5a; RANDOM_LEN],
            0,
        );
        let mut client = Self {
            tls: rustls::StreamOwned::new(conn, socket),
            session,
            buf: BytesMut::new(),
            events: VecDeque::new(),
            closed: false,
        };
        client.flush();
        client
    }

    fn local_port(&self) -> u16 {
        self.tls.sock.local_addr().unwrap().port()
    }

    fn flush(&mut self) {
        while let Some(bytes) = self.session.poll_transmit() {
            if self
                .tls
                .write_all(&bytes)
                .and_then(|_| self.tls.flush())
                .is_err()
            {
                self.closed = true;
                return;
            }
        }
    }

    fn pump(&mut self, timeout: Duration) {
        self.tls.sock.set_read_timeout(Some(timeout)).unwrap();
        let mut chunk = [0u8; 65536];
        match self.tls.read(&mut chunk) {
            Ok(0) => self.closed = true,
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => self.closed = true,
        }
        self.session
            .handle_input(&mut self.buf)
            .expect("server speaks valid RTMP");
        while let Some(event) = self.session.poll_event() {
            self.events.push_back(event);
        }
        self.flush();
    }

    fn wait_for(&mut self, what: &str, mut pred: impl FnMut(&ClientEvent) -> bool) -> ClientEvent {
        let deadline = Instant::now() + WAIT;
        loop {
            while let Some(event) = self.events.pop_front() {
                if pred(&event) {
                    return event;
                }
            }
            assert!(!self.closed, "connection closed while waiting for {what}");
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}");
            self.pump(left.min(Duration::from_millis(200)));
        }
    }

    fn publish(addr: SocketAddr, ca: &Cert, app: &str, name: &str) -> Self {
        let mut c = Self::connect(addr, ca, app);
        c.session.publish(name, PublishMode::Live);
        c.flush();
        c.wait_for("publish start", |e| {
            matches!(e, ClientEvent::Publishing { .. })
        });
        c
    }

    fn play(addr: SocketAddr, ca: &Cert, app: &str, name: &str) -> Self {
        let mut c = Self::connect(addr, ca, app);
        c.session.play(name);
        c.flush();
        c.wait_for("play start", |e| matches!(e, ClientEvent::Playing { .. }));
        c
    }

    fn send(&mut self, type_id: u8, timestamp: u32, payload: &[u8]) {
        self.session.send_media(type_id, timestamp, payload);
        self.flush();
    }

    /// The next media message's type and payload.
    fn next_media(&mut self) -> (u8, Bytes) {
        match self.wait_for("media", |e| matches!(e, ClientEvent::Media { .. })) {
            ClientEvent::Media {
                type_id, payload, ..
            } => (type_id, payload),
            _ => unreachable!(),
        }
    }

    /// Waits (bounded) for the video frame `frame`, skipping what comes before it.
    fn wait_for_frame(&mut self, frame: &[u8]) {
        while self.next_media() != (VIDEO, Bytes::copy_from_slice(frame)) {}
    }
}

fn send_headers(send: &mut impl FnMut(u8, u32, &[u8])) {
    send(DATA, 0, &media::set_data_frame());
    send(VIDEO, 0, &media::avc_header());
    send(AUDIO, 0, &media::aac_header());
}

#[test]
fn ffmpeg_publishes_and_plays_over_rtmps_with_the_same_frames() {
    let ffmpeg = tool("ffmpeg");
    let dir = Dir::new("rtmps-ffmpeg");
    let cert = Cert::new(&dir);
    let source = h264_source(&dir, "src.flv", "testsrc", 4);
    let (server, addr) = tls_server(&cert, |_| {});
    // Debian's ffmpeg (GnuTLS) does not verify the peer by default (`-tls_verify 0`).
    let url = format!("rtmps://127.0.0.1:{}/live/secret", addr.port());
    let out = dir.path("played.flv");
    let mut player = ffmpeg_play(&dir, &ffmpeg, &url, &out, "ffmpeg-player");
    wait_for_log_count(
        &["playing", "stream=live/secret"],
        1,
        Duration::from_secs(30),
    );
    let mut publisher = ffmpeg_publish(&dir, &ffmpeg, &source, &url, "ffmpeg-publisher");
    assert!(
        publisher.wait(Duration::from_secs(60)).success(),
        "publisher failed:\n{}",
        publisher.output()
    );
    player.stop_after(Duration::from_secs(5), libc::SIGINT);
    server.shutdown();
    assert_same_frames(
        "ffmpeg over rtmps",
        &frame_md5s(&ffmpeg, &source),
        &frame_md5s(&ffmpeg, &out),
        false,
    );
}

#[test]
fn a_plain_rtmp_client_on_the_tls_port_is_closed_while_a_bystander_plays_on() {
    let dir = Dir::new("rtmps-plain");
    let cert = Cert::new(&dir);
    let (server, addr) = tls_server(&cert, |_| {});
    let mut publisher = TlsClient::publish(addr, &cert, "live", "x");
    let mut bystander = TlsClient::play(addr, &cert, "live", "x");
    send_headers(&mut |t, ts, p| publisher.send(t, ts, p));
    publisher.send(VIDEO, 0, &media::avc_frame(true, 0, 2000));
    bystander.wait_for_frame(&media::avc_frame(true, 0, 2000));

    // An RTMP handshake (C0 + C1) where a TLS ClientHello belongs.
    let mut plain = Client::connect(addr, "live");
    let closed = server.close_reason(&plain);
    assert!(
        matches!(
            closed,
            CloseReason::TlsFailed(rustls::Error::InvalidMessage(_))
        ),
        "closed as not TLS: {closed:?}"
    );
    // The server answered with a TLS alert and closed: the client reads to the EOF.
    plain.stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut rest = Vec::new();
    plain.stream.read_to_end(&mut rest).expect("a clean close");
    assert_eq!(rest.first(), Some(&21), "a TLS alert record: {rest:?}");

    for seq in 1..=5 {
        publisher.send(VIDEO, seq * 40, &media::avc_frame(false, seq, 2000));
        bystander.wait_for_frame(&media::avc_frame(false, seq, 2000));
    }
    // The plain port serves plain RTMP as before.
    let mut plain_player = Client::play(server.addr, "live", "x");
    publisher.send(VIDEO, 400, &media::avc_frame(true, 10, 2000));
    let frame = media::avc_frame(true, 10, 2000);
    loop {
        let (t, _, payload) = plain_player.media(1).remove(0);
        if t == VIDEO && payload.as_ref() == frame.as_slice() {
            break;
        }
    }
}

#[test]
fn a_tls_client_that_never_finishes_its_handshake_is_closed_at_the_handshake_timeout() {
    let dir = Dir::new("rtmps-hs-timeout");
    let cert = Cert::new(&dir);
    let (server, addr) = tls_server(&cert, |c| c.timeouts.handshake_ms = 300);
    let silent = TcpStream::connect(addr).unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    let closed = server.closed(port);
    assert_eq!(closed.reason, CloseReason::HandshakeTimeout { ms: 300 });
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_tls_player_that_stops_reading_is_dropped_as_slow_while_another_plays_on() {
    let dir = Dir::new("rtmps-slow");
    let cert = Cert::new(&dir);
    let (server, addr) = tls_server(&cert, |c| {
        c.streams.player_queue_bytes = 256 * 1024;
        c.timeouts.slow_player_ms = 500;
        c.workers.socket_send_buffer = 64 * 1024;
    });
    let mut publisher = TlsClient::publish(addr, &cert, "live", "slow");
    let mut good = TlsClient::play(addr, &cert, "live", "slow");
    let stuck = TlsClient::play(addr, &cert, "live", "slow");
    socket2::SockRef::from(&stuck.tls.sock)
        .set_recv_buffer_size(4096)
        .unwrap();
    let stuck_port = stuck.local_port();
    let journal = server.journal();
    let started = Instant::now();
    let mut seq = 0;
    // Frame by frame, far more than the stuck player's socket buffers, rustls's buffer and
    // its queue can hold.
    while !journal.all().iter().any(|c| c.peer.port() == stuck_port) {
        assert!(started.elapsed() < WAIT, "slow TLS player never dropped");
        let keyframe = seq % 25 == 0;
        let frame = media::avc_frame(keyframe, seq, 20_000);
        publisher.send(VIDEO, seq * 40, &frame);
        assert_eq!(
            good.next_media(),
            (VIDEO, Bytes::from(frame)),
            "the good player misses nothing"
        );
        seq += 1;
    }
    let CloseReason::SlowPlayer { queued, .. } = server.closed(stuck_port).reason else {
        panic!("closed as a slow player");
    };
    assert!(
        queued <= 256 * 1024 + 21_000,
        "the queue stayed bounded: {queued} bytes"
    );
    let frame = media::avc_frame(true, seq, 100);
    publisher.send(VIDEO, seq * 40, &frame);
    assert_eq!(good.next_media(), (VIDEO, Bytes::from(frame)));
    drop(stuck);
}

/// An edge whose `[relay]` is tuned by `tune`, trusting `ca` for rtmps:// upstreams.
fn edge(ca: &str, tune: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = Config::default();
    config.rtmps.ca_file = ca.to_string();
    tune(&mut config);
    config.validate().expect("a valid edge config");
    TestServer::start(config)
}

#[test]
fn an_edge_pulls_from_an_rtmps_origin_it_trusts_and_refuses_one_it_does_not() {
    let dir = Dir::new("rtmps-pull");
    let cert = Cert::new(&dir);
    let (_origin, origin_tls) = tls_server(&cert, |_| {});
    let mut publisher = TlsClient::publish(origin_tls, &cert, "live", "pulled");
    send_headers(&mut |t, ts, p| publisher.send(t, ts, p));
    publisher.send(VIDEO, 0, &media::avc_frame(true, 0, 3000));

    // The origin by name: SNI and the verified name are `localhost`.
    let origins = vec![format!("rtmps://localhost:{}", origin_tls.port())];
    let edge_ok = edge(&cert.cert, |c| c.relay.origins = origins.clone());
    let mut player = Client::play(edge_ok.addr, "live", "pulled");
    let first = media::avc_frame(true, 0, 3000);
    loop {
        let (t, _, payload) = player.media(1).remove(0);
        if t == VIDEO && payload.as_ref() == first.as_slice() {
            break;
        }
    }
    for seq in 1..=5 {
        let frame = media::avc_frame(false, seq, 3000);
        publisher.send(VIDEO, seq * 40, &frame);
        loop {
            let (t, _, payload) = player.media(1).remove(0);
            if t == VIDEO && payload.as_ref() == frame.as_slice() {
                break;
            }
        }
    }

    // Trusting only the system roots, the edge refuses the self-signed origin.
    let edge_strict = edge("", |c| {
        c.relay.origins = origins.clone();
        c.relay.player_wait_ms = 1000;
    });
    let mut waiting = Client::connect(edge_strict.addr, "live");
    waiting.session.play("pulled");
    waiting.flush();
    let journal = edge_strict.journal();
    let started = Instant::now();
    let upstream = loop {
        let closes = journal.all();
        if let Some(c) = closes
            .iter()
            .find(|c| matches!(c.reason, CloseReason::TlsFailed(_)))
        {
            break c.clone();
        }
        assert!(started.elapsed() < WAIT, "no TLS failure: {closes:?}");
        waiting.pump(Duration::from_millis(50));
    };
    assert!(
        matches!(
            upstream.reason,
            CloseReason::TlsFailed(rustls::Error::InvalidCertificate(_))
        ),
        "the origin's certificate is not trusted: {:?}",
        upstream.reason
    );
}

#[test]
fn an_edge_pushes_to_an_rtmps_target() {
    let dir = Dir::new("rtmps-push");
    let cert = Cert::new(&dir);
    let (target, target_tls) = tls_server(&cert, |_| {});
    let mut remote_player = TlsClient::play(target_tls, &cert, "live", "pushed");
    let url = format!("rtmps://127.0.0.1:{}/live", target_tls.port());
    let edge = edge(&cert.cert, |c| {
        c.relay.push = vec![PushConfig {
            app: "live".into(),
            url,
        }]
    });
    let mut publisher = Client::publish(edge.addr, "live", "pushed");
    publisher.send(DATA, 0, &media::set_data_frame());
    publisher.send(VIDEO, 0, &media::avc_header());
    publisher.send(AUDIO, 0, &media::aac_header());
    for seq in 0..5 {
        let frame = media::avc_frame(seq == 0, seq, 3000);
        publisher.send(VIDEO, seq * 40, &frame);
        remote_player.wait_for_frame(&frame);
    }
    drop(target);
}

/// A certificate renewed in place (same paths, new files) is served to connections made after
/// a reload, while sessions made before play on; a file that does not load is logged and the
/// running certificate kept.
#[test]
fn a_reload_serves_a_renewed_certificate_to_new_connections_while_old_ones_play_on() {
    let (old_dir, new_dir, served_dir) = (
        Dir::new("rtmps-cert-old"),
        Dir::new("rtmps-cert-new"),
        Dir::new("rtmps-cert-served"),
    );
    let (old, new) = (Cert::new(&old_dir), Cert::new(&new_dir));
    let served = Cert {
        cert: served_dir.path("cert.pem").to_str().unwrap().to_string(),
        key: served_dir.path("key.pem").to_str().unwrap().to_string(),
    };
    let install = |c: &Cert| {
        std::fs::copy(&c.cert, &served.cert).unwrap();
        std::fs::copy(&c.key, &served.key).unwrap();
    };
    install(&old);
    let (server, addr) = tls_server(&served, |c| c.workers.count = 2);
    let config = || {
        let mut c = served.serve(Config::default());
        c.workers.count = 2;
        c
    };
    let mut publisher = TlsClient::publish(addr, &old, "live", "renew");
    let mut before = TlsClient::play(addr, &old, "live", "renew");
    send_headers(&mut |t, ts, p| publisher.send(t, ts, p));
    publisher.send(VIDEO, 0, &media::avc_frame(true, 0, 2000));
    before.wait_for_frame(&media::avc_frame(true, 0, 2000));

    install(&new);
    server.server().reload(config());
    wait_for_log_count(&["RTMPS certificate reloaded"], 1, WAIT);
    wait_for_log_count(&["configuration reloaded"], 2, WAIT);
    let mut after = TlsClient::play(addr, &new, "live", "renew");
    // A client that trusts only the old certificate now refuses the server's.
    let stale = TlsClient::connect(addr, &old, "live");
    assert!(stale.closed, "the old certificate is no longer served");
    for seq in 1..=5 {
        publisher.send(VIDEO, seq * 40, &media::avc_frame(seq == 1, seq, 2000));
        let frame = media::avc_frame(seq == 1, seq, 2000);
        before.wait_for_frame(&frame);
        after.wait_for_frame(&frame);
    }

    // A renewal that left a broken file: logged, and the running certificate stays.
    std::fs::write(&served.cert, "not a certificate").unwrap();
    server.server().reload(config());
    wait_for_log_count(&["RTMPS certificate not reloaded"], 1, WAIT);
    wait_for_log_count(&["configuration reloaded"], 4, WAIT);
    let mut still = TlsClient::play(addr, &new, "live", "renew");
    publisher.send(VIDEO, 400, &media::avc_frame(true, 10, 2000));
    still.wait_for_frame(&media::avc_frame(true, 10, 2000));
    before.wait_for_frame(&media::avc_frame(true, 10, 2000));
}
