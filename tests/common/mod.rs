//! Shared test harness: an in-process server with captured logs, and a blocking RTMP client
//! built on the project's own ClientSession.
#![allow(dead_code)]

pub mod metrics;
pub mod procs;
pub mod tools;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtmp_edge::config::Config;
use rtmp_edge::rtmp::handshake::RANDOM_LEN;
use rtmp_edge::rtmp::session::{ClientConfig, ClientEvent, ClientSession, PublishMode};
use rtmp_edge::rtmp::Limits;
use rtmp_edge::shard::{CloseReason, Closed, Hooks, Server};

/// Every bounded wait in the tests gives up after this.
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
struct LogBuffer(Arc<(Mutex<Vec<u8>>, Condvar)>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 .0.lock().unwrap().extend_from_slice(buf);
        self.0 .1.notify_all();
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A subscriber like the server's (escaped fields, no colour) writing into `buffer`.
fn subscriber_into(buffer: &LogBuffer) -> tracing::Dispatch {
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("rtmp_edge=debug")
        .with_ansi(false)
        .fmt_fields(rtmp_edge::logging::EscapedFields)
        .with_writer(move || writer.clone())
        .finish();
    tracing::Dispatch::new(subscriber)
}

thread_local! {
    /// The log of the servers this test thread started: each test reads its own servers'
    /// lines only, even when tests run as threads of one process (`cargo test`).
    static TEST_LOG: std::cell::RefCell<Option<LogBuffer>> = const { std::cell::RefCell::new(None) };
}

/// Everything else (the test's own client sessions) logs to one process-wide buffer.
fn global_log() -> &'static LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        let _ = tracing::dispatcher::set_global_default(subscriber_into(&buffer));
        buffer
    })
}

/// This test thread's server log (or, before any server, the global one).
fn logs() -> LogBuffer {
    TEST_LOG
        .with(|log| log.borrow().clone())
        .unwrap_or_else(|| global_log().clone())
}

fn matching(text: &[u8], needles: &[&str]) -> Vec<String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// Log lines so far that contain every one of `needles`.
pub fn log_lines_with(needles: &[&str]) -> Vec<String> {
    matching(&logs().0 .0.lock().unwrap(), needles)
}

/// Waits (woken by every log write, bounded by WAIT) for a line containing all `needles`.
pub fn wait_for_log(needles: &[&str]) -> String {
    wait_for_log_count(needles, 1, WAIT).remove(0)
}

/// Waits (woken by every log write, bounded by `timeout`) for `n` lines containing all `needles`.
pub fn wait_for_log_count(needles: &[&str], n: usize, timeout: Duration) -> Vec<String> {
    let log = logs();
    let (lock, written) = &*log.0;
    let deadline = Instant::now() + timeout;
    let mut text = lock.lock().unwrap();
    loop {
        let lines = matching(&text, needles);
        if lines.len() >= n {
            return lines;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "fewer than {n} log lines with {needles:?}: {lines:?}"
        );
        text = written.wait_timeout(text, left).unwrap().0;
    }
}

/// A server on 127.0.0.1 with an ephemeral port, shut down when dropped. Its workers log
/// to this test thread's log, and every connection they close is journaled with its typed
/// reason ([`TestServer::closed`]).
pub struct TestServer {
    pub addr: SocketAddr,
    /// The RTMP listener on `[::1]`, when the config listed `[::1]:0`.
    pub addr6: Option<SocketAddr>,
    /// The HTTP listener (HTTP-FLV).
    pub http: SocketAddr,
    /// The RTMPS listener, when the config has `[rtmps] listen`.
    pub rtmps: Option<SocketAddr>,
    server: Option<Server>,
    closes: Journal,
}

/// The connections a test server closed, with their typed reasons.
#[derive(Clone, Default)]
pub struct Journal(Arc<(Mutex<Vec<Closed>>, Condvar)>);

impl Journal {
    /// Waits (woken by each close, bounded by WAIT) for a close matching `pred`.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Closed) -> bool) -> Closed {
        let (lock, closed) = &*self.0;
        let deadline = Instant::now() + WAIT;
        let mut journal = lock.lock().unwrap();
        loop {
            if let Some(found) = journal.iter().find(|c| pred(c)) {
                return found.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no close of {what}");
            journal = closed.wait_timeout(journal, left).unwrap().0;
        }
    }

    /// Every close so far.
    pub fn all(&self) -> Vec<Closed> {
        self.0 .0.lock().unwrap().clone()
    }

    /// Waits (bounded by WAIT) until the connection from local port `port` is closed; how.
    /// The entry is taken out, so a port the kernel hands out again is waited for afresh.
    pub fn closed(&self, port: u16) -> Closed {
        let (lock, closed) = &*self.0;
        let deadline = Instant::now() + WAIT;
        let mut journal = lock.lock().unwrap();
        loop {
            if let Some(at) = journal.iter().position(|c| c.peer.port() == port) {
                return journal.remove(at);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the connection from port {port} was not closed"
            );
            journal = closed.wait_timeout(journal, left).unwrap().0;
        }
    }
}

impl TestServer {
    pub fn start(mut config: Config) -> Self {
        global_log();
        let log = TEST_LOG.with(|log| {
            log.borrow_mut()
                .get_or_insert_with(LogBuffer::default)
                .clone()
        });
        let closes = Journal::default();
        let journal = closes.clone();
        let hooks = Hooks {
            on_close: Some(Arc::new(move |closed: &Closed| {
                journal.0 .0.lock().unwrap().push(closed.clone());
                journal.0 .1.notify_all();
            })),
            dispatch: Some(subscriber_into(&log)),
        };
        // A test that lists `[::1]:0` gets an IPv6 listener too (`addr6`).
        let v6 = config
            .rtmp
            .listen
            .iter()
            .any(|a| a.ip().is_loopback() && a.is_ipv6());
        config.rtmp.listen = vec!["127.0.0.1:0".parse().unwrap()];
        if v6 {
            config.rtmp.listen.push("[::1]:0".parse().unwrap());
        }
        config.http.listen = vec!["127.0.0.1:0".parse().unwrap()];
        if !config.admin.listen.is_empty() {
            config.admin.listen = "127.0.0.1:0".into();
        }
        if !config.rtmps.listen.is_empty() {
            config.rtmps.listen = vec!["127.0.0.1:0".parse().unwrap()];
        }
        config.workers.pin = false;
        if config.workers.count == 0 {
            config.workers.count = 1;
        }
        let server = Server::start_with(config, hooks).expect("server starts");
        let addr = server.local_addrs()[0];
        let addr6 = server
            .local_addrs()
            .iter()
            .copied()
            .find(SocketAddr::is_ipv6);
        let http = server.http_addrs()[0];
        let rtmps = server.rtmps_addrs().first().copied();
        Self {
            addr,
            addr6,
            http,
            rtmps,
            server: Some(server),
            closes,
        }
    }

    /// Waits (bounded by WAIT) until the connection from local port `port` is closed; how.
    pub fn closed(&self, port: u16) -> Closed {
        self.closes.closed(port)
    }

    /// The journal of closes, to read after [`shutdown`](Self::shutdown).
    pub fn journal(&self) -> Journal {
        self.closes.clone()
    }

    /// Why the connection from `client` was closed (waiting, bounded, for it).
    pub fn close_reason(&self, client: &Client) -> CloseReason {
        self.closed(client.local_port()).reason
    }

    pub fn with_defaults() -> Self {
        Self::start(Config::default())
    }

    /// The running server (drain, reload, addresses).
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }

    /// Takes the server out (to join it), leaving nothing to shut down on drop.
    pub fn take(mut self) -> Server {
        self.server.take().expect("server running")
    }

    pub fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
            server.join().expect("clean shutdown");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
            let _ = server.join();
        }
    }
}

/// A blocking RTMP client over a real socket.
pub struct Client {
    pub stream: TcpStream,
    pub session: ClientSession,
    buf: BytesMut,
    pub events: std::collections::VecDeque<ClientEvent>,
    pub closed: bool,
}

impl Client {
    pub fn connect(addr: SocketAddr, app: &str) -> Self {
        Self::connect_with_caps(addr, app, rtmp_edge::rtmp::command::CAPS_EX_RECONNECT)
    }

    /// [`connect`](Self::connect) announcing `caps_ex` (0: a client from before E-RTMP).
    pub fn connect_with_caps(addr: SocketAddr, app: &str, caps_ex: u32) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        let config = ClientConfig {
            app: app.to_string(),
            tc_url: format!("rtmp://{addr}/{app}"),
            flash_ver: "LNX 9,0,124,2".to_string(),
            limits: Limits::default(),
            chunk_size: 4096,
            digest_handshake: false,
        };
        let mut session = ClientSession::new(config, &[0x5a; RANDOM_LEN], 0);
        session.set_caps_ex(caps_ex);
        let mut client = Self {
            stream,
            session,
            buf: BytesMut::new(),
            events: Default::default(),
            closed: false,
        };
        client.flush();
        client
    }

    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().unwrap().port()
    }

    pub fn flush(&mut self) {
        while let Some(bytes) = self.session.poll_transmit() {
            if self.stream.write_all(&bytes).is_err() {
                self.closed = true;
                return;
            }
        }
    }

    /// Reads once (bounded by `timeout`), feeds the session, queues its events.
    /// Returns false when the server closed the connection.
    pub fn pump(&mut self, timeout: Duration) -> bool {
        self.stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .unwrap();
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.closed = true;
                return false;
            }
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => {
                self.closed = true;
                return false;
            }
        }
        self.session
            .handle_input(&mut self.buf)
            .expect("server speaks valid RTMP");
        while let Some(event) = self.session.poll_event() {
            self.events.push_back(event);
        }
        self.flush();
        true
    }

    /// Waits for the first event matching `pred`, returning it (events before it are dropped).
    pub fn wait_for(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&ClientEvent) -> bool,
    ) -> ClientEvent {
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

    /// Collects media events until `n` have arrived.
    pub fn media(&mut self, n: usize) -> Vec<(u8, u32, Bytes)> {
        let mut out = Vec::new();
        while out.len() < n {
            if let ClientEvent::Media {
                type_id,
                timestamp,
                payload,
            } = self.wait_for("media", |e| matches!(e, ClientEvent::Media { .. }))
            {
                out.push((type_id, timestamp, payload));
            }
        }
        out
    }

    pub fn publish(addr: SocketAddr, app: &str, name: &str) -> Self {
        let mut c = Self::connect(addr, app);
        c.session.publish(name, PublishMode::Live);
        c.flush();
        c.wait_for("publish start", |e| {
            matches!(e, ClientEvent::Publishing { .. })
        });
        c
    }

    pub fn play(addr: SocketAddr, app: &str, name: &str) -> Self {
        Self::play_with_caps(addr, app, name, rtmp_edge::rtmp::command::CAPS_EX_RECONNECT)
    }

    /// [`play`](Self::play) announcing `caps_ex` in connect.
    pub fn play_with_caps(addr: SocketAddr, app: &str, name: &str, caps_ex: u32) -> Self {
        let mut c = Self::connect_with_caps(addr, app, caps_ex);
        c.session.play(name);
        c.flush();
        c.wait_for("play start", |e| matches!(e, ClientEvent::Playing { .. }));
        c
    }

    pub fn send(&mut self, type_id: u8, timestamp: u32, payload: &[u8]) {
        self.session.send_media(type_id, timestamp, payload);
        self.flush();
    }

    /// Waits until the server closes this connection (bounded).
    pub fn wait_closed(&mut self) {
        let deadline = Instant::now() + WAIT;
        while !self.closed {
            assert!(
                Instant::now() < deadline,
                "server did not close the connection"
            );
            self.pump(Duration::from_millis(200));
            self.events.clear();
        }
    }
}

/// Synthetic media in FLV tag-body form.
pub mod media {
    /// AVC sequence header (keyframe, packet type 0) with a tiny fake config record.
    pub fn avc_header() -> Vec<u8> {
        vec![
            0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x04, 0x67, 0x64, 0x00,
            0x1f, 0x01, 0x00, 0x02, 0x68, 0xee,
        ]
    }
    /// An AVC frame: keyframe or inter frame, with `len` bytes of payload tagged with `seq`.
    pub fn avc_frame(keyframe: bool, seq: u32, len: usize) -> Vec<u8> {
        let mut v = vec![if keyframe { 0x17 } else { 0x27 }, 0x01, 0, 0, 0];
        let nal_len = (len.max(8) - 4) as u32;
        v.extend_from_slice(&nal_len.to_be_bytes());
        v.extend_from_slice(&seq.to_be_bytes());
        v.resize(5 + 4 + nal_len as usize, (seq % 251) as u8);
        v
    }
    /// AAC sequence header.
    pub fn aac_header() -> Vec<u8> {
        vec![0xaf, 0x00, 0x12, 0x10]
    }
    /// An AAC frame tagged with `seq`.
    pub fn aac_frame(seq: u32) -> Vec<u8> {
        let mut v = vec![0xaf, 0x01];
        v.extend_from_slice(&seq.to_be_bytes());
        v.resize(200, 0x11);
        v
    }
    /// `@setDataFrame onMetaData` + an ECMA array of one property named `name`, whose value
    /// (already AMF0-encoded, marker included) is `value`.
    pub fn data_frame_with(name: &str, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for s in ["@setDataFrame", "onMetaData"] {
            v.push(0x02);
            v.extend_from_slice(&(s.len() as u16).to_be_bytes());
            v.extend_from_slice(s.as_bytes());
        }
        v.extend_from_slice(&[0x08, 0, 0, 0, 1]);
        v.extend_from_slice(&(name.len() as u16).to_be_bytes());
        v.extend_from_slice(name.as_bytes());
        v.extend_from_slice(value);
        v.extend_from_slice(&[0, 0, 9]);
        v
    }
    /// `@setDataFrame` + `onMetaData` + an ECMA array with width.
    pub fn set_data_frame() -> Vec<u8> {
        let mut width = vec![0x00];
        width.extend_from_slice(&320f64.to_be_bytes());
        data_frame_with("width", &width)
    }
    /// Metadata of about `len` bytes: a long string `pad` of `fill` bytes.
    pub fn padded_metadata(len: usize, fill: u8) -> Vec<u8> {
        let mut pad = vec![0x0c];
        pad.extend_from_slice(&(len as u32).to_be_bytes());
        pad.resize(pad.len() + len, fill);
        data_frame_with("pad", &pad)
    }
}

/// The tags of the H.264 + AAC fixture FLV (`tests/fixtures/media/h264_aac.flv`).
pub fn fixture_tags() -> Vec<rtmp_edge::media::flv::FlvTag> {
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/media/h264_aac.flv"
    ))
    .unwrap();
    let mut buf = BytesMut::from(&data[..]);
    let mut reader = rtmp_edge::media::flv::FlvReader::new();
    let mut tags = Vec::new();
    while let Some(tag) = reader.next_tag(&mut buf).unwrap() {
        tags.push(tag);
    }
    tags
}

/// Sends `GET path` with `Connection: close` on a new connection, without reading the answer.
pub fn send_get(addr: SocketAddr, path: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    c
}

/// Reads a whole `Connection: close` response: head text and body.
pub fn read_response(c: &mut TcpStream) -> (String, Vec<u8>) {
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    (
        String::from_utf8_lossy(&all[..end]).into_owned(),
        all[end..].to_vec(),
    )
}

/// `GET path` on a new connection: the response head and body.
pub fn get(addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
    read_response(&mut send_get(addr, path))
}

/// Tests of time bounds or process-wide memory run one at a time (each test binary has its
/// own lock), so no test's burst or allocations show in another's measurement.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// `:PORT ` as a connection's envelope names it in a log line.
pub fn port_tag(c: &Client) -> String {
    format!(":{} ", c.local_port())
}

/// A publisher and a player of `name` that exchange one keyframe, to check on afterwards.
pub struct Bystander {
    pub publisher: Client,
    pub player: Client,
    seq: u32,
}

impl Bystander {
    pub fn start(server: &TestServer, name: &str) -> Self {
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
    pub fn check(&mut self) {
        self.seq += 1;
        let frame = media::avc_frame(true, self.seq, 2000);
        self.publisher.send(
            rtmp_edge::rtmp::message::type_id::VIDEO,
            self.seq * 40,
            &frame,
        );
        let got = self.player.media(1);
        assert_eq!(
            got[0].2.as_ref(),
            frame.as_slice(),
            "bystander got its frame"
        );
    }
}

/// Sends video frames `from..from + n` (40 ms apart, 4,000 bytes, a keyframe every 25).
pub fn publish_frames(p: &mut Client, from: u32, n: u32) {
    for i in from..from + n {
        p.send(9, i * 40, &media::avc_frame(i % 25 == 0, i, 4000));
    }
}
