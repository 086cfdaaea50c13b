//! `[auth]` end to end on in-process servers: IP rules (IPv4 and IPv6 clients), signed URLs
//! (RTMP and HTTP), and webhooks answered by a real HTTP server the test runs (allow, deny,
//! timeout, cache, a slow hook that holds only its own publish). Secrets and tokens never
//! reach the logs.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{fixture_tags, get, log_lines_with, media, Client, TestServer, WAIT};
use rtmp_edge::auth::sign::{signed_query, verify, Keys};
use rtmp_edge::auth::{Denial, Role};
use rtmp_edge::config::{AuthAppConfig, Config};
use rtmp_edge::rtmp::session::{ClientEvent, PublishMode};
use rtmp_edge::shard::CloseReason;

const SECRET: &str = "s3cret-do-not-log-0123456789";
const SECRET2: &str = "second-secret-never-logged-42";

fn unix_now() -> u64 {
    rtmp_edge::auth::unix_now()
}

/// A client that connects to `app`, asks to publish `name` (with its query) and returns the
/// first status answering it.
fn try_publish(addr: SocketAddr, app: &str, name: &str) -> (Client, String) {
    let mut c = Client::connect(addr, app);
    c.session.publish(name, PublishMode::Live);
    c.flush();
    let code = wait_status(&mut c, "NetStream.Publish.");
    (c, code)
}

/// As [`try_publish`], for `play`.
fn try_play(addr: SocketAddr, app: &str, name: &str) -> (Client, String) {
    let mut c = Client::connect(addr, app);
    c.session.play(name);
    c.flush();
    let code = wait_status(&mut c, "NetStream.Play.");
    (c, code)
}

/// The code of the first onStatus starting with `prefix` (Play.Reset skipped).
fn wait_status(c: &mut Client, prefix: &str) -> String {
    let event = c.wait_for(prefix, |e| {
        matches!(e, ClientEvent::Status { code, .. }
            if code.starts_with(prefix) && code != "NetStream.Play.Reset")
    });
    match event {
        ClientEvent::Status { code, .. } => code,
        _ => unreachable!(),
    }
}

fn denied(server: &TestServer, client: &Client) -> (Role, Denial) {
    match server.close_reason(client) {
        CloseReason::Denied { role, reason } => (role, reason),
        other => panic!("closed for {other:?}, not a denial"),
    }
}

/// Sends a keyframe from `publisher` and waits until `player` has it: one round trip.
fn round_trip(publisher: &mut Client, player: &mut Client, seq: u32) -> Duration {
    let start = Instant::now();
    publisher.send(9, 40 * seq, &media::avc_frame(true, seq, 64));
    loop {
        let (type_id, timestamp, _) = player.media(1).remove(0);
        if type_id == 9 && timestamp == 40 * seq {
            return start.elapsed();
        }
    }
}

fn start_stream(addr: SocketAddr, app: &str, name: &str) -> (Client, Client) {
    let mut publisher = Client::publish(addr, app, name);
    let mut player = Client::play(addr, app, name);
    publisher.send(9, 0, &media::avc_header());
    player.media(1);
    (publisher, player)
}

fn no_secret_in_logs(tokens: &[&str]) {
    for needle in [SECRET, SECRET2].iter().chain(tokens) {
        let lines = log_lines_with(&[needle]);
        assert!(lines.is_empty(), "{needle:?} was logged: {lines:?}");
    }
}

// ---------------------------------------------------------------------------------------
// IP rules

#[test]
fn a_deny_rule_for_loopback_refuses_an_ipv4_publisher_with_bad_name() {
    let mut config = Config::default();
    config.auth.deny_publish = vec!["127.0.0.0/8".into()];
    let server = TestServer::start(config);
    let (publisher, code) = try_publish(server.addr, "live", "cam");
    assert_eq!(code, "NetStream.Publish.BadName");
    assert_eq!(
        denied(&server, &publisher),
        (Role::Publish, Denial::IpDenied)
    );
    common::wait_for_log(&["denied", "ip rules", "deny rule"]);
    // Playing is another role: not denied.
    let (_player, code) = try_play(server.addr, "live", "cam");
    assert_eq!(code, "NetStream.Play.Start");
}

#[test]
fn an_ipv6_allow_rule_lets_an_ipv6_client_in_and_keeps_ipv4_out() {
    let mut config = Config::default();
    config.rtmp.listen.push("[::1]:0".parse().unwrap());
    config.auth.allow_publish = vec!["::1/128".into()];
    config.auth.app = vec![AuthAppConfig {
        name: "open".into(),
        allow_publish: Some(vec![]),
        ..AuthAppConfig::default()
    }];
    let server = TestServer::start(config);
    let v6 = server.addr6.expect("an IPv6 listener");

    let (refused, code) = try_publish(server.addr, "live", "cam");
    assert_eq!(code, "NetStream.Publish.BadName");
    assert_eq!(
        denied(&server, &refused),
        (Role::Publish, Denial::IpNotAllowed)
    );

    // From ::1 the publish is allowed, and an IPv4 player (allow_play empty) watches it.
    let (mut publisher, code) = try_publish(v6, "live", "cam");
    assert_eq!(code, "NetStream.Publish.Start");
    let mut player = Client::play(server.addr, "live", "cam");
    publisher.send(9, 0, &media::avc_header());
    player.media(1);
    round_trip(&mut publisher, &mut player, 1);

    // The `open` app's table clears the allow list: IPv4 publishes there.
    let (_open, code) = try_publish(server.addr, "open", "cam");
    assert_eq!(code, "NetStream.Publish.Start");
}

#[test]
fn ip_rules_apply_to_http_flv_viewers_with_403() {
    let mut config = Config::default();
    config.auth.deny_play = vec!["127.0.0.1".into()];
    let server = TestServer::start(config);
    let (_publisher, code) = try_publish(server.addr, "live", "cam");
    assert_eq!(code, "NetStream.Publish.Start");
    let (head, _) = get(server.http, "/live/cam.flv");
    assert!(head.starts_with("HTTP/1.1 403 Forbidden"), "{head}");
    let (head, _) = get(server.http, "/live/cam.m3u8");
    assert!(head.starts_with("HTTP/1.1 403 Forbidden"), "{head}");
    server.journal().wait_for("a denied viewer", |c| {
        matches!(
            c.reason,
            CloseReason::Denied {
                role: Role::Play,
                reason: Denial::IpDenied
            }
        )
    });
}

// ---------------------------------------------------------------------------------------
// Signed URLs

fn signing_config() -> Config {
    let mut config = Config::default();
    config.auth.sign_publish = true;
    config.auth.sign_play = true;
    config.auth.keys = [
        ("default".to_string(), SECRET.to_string()),
        ("k2".to_string(), SECRET2.to_string()),
    ]
    .into();
    config
}

fn signed(secret: &str, kid: Option<&str>, role: Role, stream: &str, exp: u64) -> String {
    let query = signed_query(secret.as_bytes(), kid, role, "live", stream, exp);
    format!("{stream}?{query}")
}

#[test]
fn signed_urls_valid_expired_tampered_and_wrong_kid() {
    let server = TestServer::start(signing_config());
    let later = unix_now() + 600;

    // Valid, with the default key (publish) and with kid k2 (play).
    let name = signed(SECRET, None, Role::Publish, "cam", later);
    let (mut publisher, code) = try_publish(server.addr, "live", &name);
    assert_eq!(code, "NetStream.Publish.Start");
    let name = signed(SECRET2, Some("k2"), Role::Play, "cam", later);
    let (mut player, code) = try_play(server.addr, "live", &name);
    assert_eq!(code, "NetStream.Play.Start");
    publisher.send(9, 0, &media::avc_header());
    player.media(1);

    // Missing.
    let (c, code) = try_play(server.addr, "live", "cam");
    assert_eq!(code, "NetStream.Play.Failed");
    assert_eq!(denied(&server, &c), (Role::Play, Denial::SignatureMissing));

    // Expired.
    let past = unix_now() - 1;
    let (c, code) = try_play(
        server.addr,
        "live",
        &signed(SECRET, None, Role::Play, "cam", past),
    );
    assert_eq!(code, "NetStream.Play.Failed");
    assert_eq!(
        denied(&server, &c),
        (Role::Play, Denial::SignatureExpired { exp: past })
    );

    // Tampered: another stream's signature, a later expiry, the publish role's signature.
    let other = signed(SECRET, None, Role::Play, "other", later).replace("other?", "cam?");
    let extended = signed(SECRET, None, Role::Play, "cam", later)
        .replace(&format!("exp={later}"), &format!("exp={}", later + 3600));
    let as_publish = signed(SECRET, None, Role::Publish, "cam", later);
    for name in [other, extended, as_publish] {
        let (c, code) = try_play(server.addr, "live", &name);
        assert_eq!(code, "NetStream.Play.Failed", "{name}");
        assert_eq!(denied(&server, &c), (Role::Play, Denial::SignatureInvalid));
    }

    // Wrong kid: signed with k2 but naming the default key; a kid that does not exist.
    let wrong = signed(SECRET2, Some("default"), Role::Play, "cam", later);
    let (c, _) = try_play(server.addr, "live", &wrong);
    assert_eq!(denied(&server, &c), (Role::Play, Denial::SignatureInvalid));
    let unknown = signed(SECRET2, Some("k9"), Role::Play, "cam", later);
    let (c, _) = try_play(server.addr, "live", &unknown);
    assert_eq!(
        denied(&server, &c),
        (Role::Play, Denial::UnknownKey { kid: "k9".into() })
    );

    // A publisher without a signature: BadName.
    let (c, code) = try_publish(server.addr, "live", "cam2");
    assert_eq!(code, "NetStream.Publish.BadName");
    assert_eq!(
        denied(&server, &c),
        (Role::Publish, Denial::SignatureMissing)
    );

    // The bystander pair kept working throughout.
    round_trip(&mut publisher, &mut player, 1);
    let sigs: Vec<String> = [SECRET, SECRET2]
        .iter()
        .map(|s| rtmp_edge::auth::sign::signature(s.as_bytes(), Role::Play, "live", "cam", later))
        .collect();
    no_secret_in_logs(&[&sigs[0], &sigs[1]]);
}

#[test]
fn a_signature_on_the_server_url_is_accepted_like_one_on_the_key() {
    // OBS puts the query on the server URL: `rtmp://host/live?exp=..&sig=..`, key `cam`.
    let server = TestServer::start(signing_config());
    let query = signed_query(
        SECRET.as_bytes(),
        None,
        Role::Publish,
        "live",
        "cam",
        unix_now() + 60,
    );
    let (_c, code) = try_publish(server.addr, &format!("live?{query}"), "cam");
    assert_eq!(code, "NetStream.Publish.Start");
    no_secret_in_logs(&[query.split("sig=").nth(1).unwrap()]);
}

#[test]
fn http_viewers_need_a_signature_once_per_session_401_without() {
    let mut config = signing_config();
    config.auth.sign_publish = false;
    config.http.hls_on_demand = false;
    let server = TestServer::start(config);
    let tags = fixture_tags();
    let mut publisher = Client::publish(server.addr, "live", "h");
    for l in 0..3u32 {
        let span = tags.iter().map(|t| t.timestamp).max().unwrap() + 40;
        for (i, tag) in tags.iter().enumerate() {
            if i < 3 && l > 0 {
                continue;
            }
            publisher.send(tag.tag_type, l * span + tag.timestamp, &tag.data);
        }
    }
    let later = unix_now() + 600;
    let query = signed_query(SECRET.as_bytes(), None, Role::Play, "live", "h", later);

    // HTTP-FLV: 401 without, 200 with.
    let (head, _) = get(server.http, "/live/h.flv");
    assert!(head.starts_with("HTTP/1.1 401 Unauthorized"), "{head}");
    let mut flv = common::send_get(server.http, &format!("/live/h.flv?{query}"));
    let mut line = String::new();
    BufReader::new(&mut flv).read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    drop(flv);

    // HLS: the playlist without a signature is 401, and so is a segment nobody was allowed.
    let (head, _) = get(server.http, "/live/h.m3u8");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    let (head, _) = get(server.http, "/live/h/seg-0.ts");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    // With it: the playlist, then its segments without any query.
    let (head, body) = get(server.http, &format!("/live/h.m3u8?{query}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let playlist = String::from_utf8(body).unwrap();
    let segments: Vec<&str> = playlist
        .lines()
        .filter(|l| l.starts_with("h/seg-"))
        .collect();
    assert!(!segments.is_empty(), "{playlist}");
    for segment in segments {
        let (head, ts) = get(server.http, &format!("/live/{segment}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(ts[0], 0x47);
    }
    // Reloads of the playlist ride on the allowance too.
    let (head, _) = get(server.http, "/live/h.m3u8");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    no_secret_in_logs(&[query.split("sig=").nth(1).unwrap()]);
}

#[test]
fn the_sign_command_prints_a_url_the_server_accepts() {
    let dir = std::env::temp_dir().join(format!("rtmp-edge-auth-sign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("edge.toml");
    std::fs::write(
        &file,
        format!("[auth.keys]\ndefault = \"{SECRET}\"\nk2 = \"{SECRET2}\"\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rtmp-edge"))
        .args(["sign", "--role", "play", "--app", "live", "--stream", "cam"])
        .args([
            "--ttl",
            "3600",
            "--kid",
            "k2",
            "--base",
            "rtmp://edge.example",
        ])
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap();
    let (base, query) = url.trim_end().split_once('?').unwrap();
    assert_eq!(base, "rtmp://edge.example/live/cam");
    assert!(query.contains("kid=k2"), "{query}");
    let keys = Keys::new([("default", SECRET), ("k2", SECRET2)]);
    assert_eq!(
        verify(&keys, Role::Play, "live", "cam", query, unix_now()),
        Ok(())
    );
    let exp: u64 = rtmp_edge::auth::sign::param(query, "exp")
        .unwrap()
        .parse()
        .unwrap();
    assert!((unix_now() + 3590..=unix_now() + 3600).contains(&exp));
}

// ---------------------------------------------------------------------------------------
// Webhooks

/// A hook server on 127.0.0.1: records each request's body, answers what `answer` says for
/// it (status, and a delay that is the hook's own slowness).
struct Hook {
    addr: SocketAddr,
    calls: Arc<(Mutex<Vec<String>>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl Hook {
    fn start(answer: impl Fn(&str) -> (u16, Duration) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let calls: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let answer = Arc::new(answer);
        let (c, s) = (calls.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Acquire) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (calls, answer) = (c.clone(), answer.clone());
                std::thread::spawn(move || serve_hook(conn, &calls, &*answer));
            }
        });
        Self { addr, calls, stop }
    }

    fn url(&self) -> String {
        format!("http://{}/hook?hook-token=h", self.addr)
    }

    fn calls(&self) -> Vec<String> {
        self.calls.0.lock().unwrap().clone()
    }

    /// Waits (bounded) until `n` calls whose body contains `needle` were made.
    fn wait_calls(&self, needle: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut calls = self.calls.0.lock().unwrap();
        loop {
            let found: Vec<String> = calls
                .iter()
                .filter(|b| b.contains(needle))
                .cloned()
                .collect();
            if found.len() >= n {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "fewer than {n} hook calls with {needle}: {calls:?}"
            );
            calls = self.calls.1.wait_timeout(calls, left).unwrap().0;
        }
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_hook(
    mut conn: TcpStream,
    calls: &(Mutex<Vec<String>>, Condvar),
    answer: &(dyn Fn(&str) -> (u16, Duration) + Send + Sync),
) {
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let body = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if data.len() >= end + 4 + len {
                assert!(
                    head.starts_with("post /hook?hook-token=h http/1.1"),
                    "{head}"
                );
                break String::from_utf8_lossy(&data[end + 4..end + 4 + len]).into_owned();
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    };
    let (status, delay) = answer(&body);
    {
        let mut list = calls.0.lock().unwrap();
        list.push(body);
        calls.1.notify_all();
    }
    // The hook's own slowness (what the server must not wait for on its loop).
    std::thread::sleep(delay);
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

fn hook_config(hook: &Hook) -> Config {
    let mut config = Config::default();
    config.auth.on_publish = hook.url();
    config.auth.on_play = hook.url();
    config.auth.on_done = hook.url();
    config
}

#[test]
fn a_webhook_2xx_allows_with_the_documented_body_and_done_is_told() {
    let hook = Hook::start(|_| (204, Duration::ZERO));
    let server = TestServer::start(hook_config(&hook));
    let (mut publisher, code) = try_publish(server.addr, "live", "cam?token=abc&sig=ff00");
    assert_eq!(code, "NetStream.Publish.Start");
    let body = hook.wait_calls("\"action\":\"publish\"", 1).remove(0);
    for field in [
        "\"role\":\"publish\"",
        "\"app\":\"live\"",
        "\"stream\":\"cam\"",
        "\"query\":\"token=abc\"",
        "\"ip\":\"127.0.0.1\"",
        "\"protocol\":\"rtmp\"",
        "\"worker\":0",
        "\"conn\":",
    ] {
        assert!(body.contains(field), "{field} in {body}");
    }
    assert!(!body.contains("ff00"), "the signature is not sent: {body}");
    // An HTTP-FLV viewer is held for its call, then streams; an RTMP player of the same
    // stream from the same address then uses the cached answer.
    let mut flv = common::send_get(server.http, "/live/cam.flv?token=v");
    let mut line = String::new();
    BufReader::new(&mut flv).read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let asked = hook.wait_calls("\"protocol\":\"http-flv\"", 1).remove(0);
    assert!(asked.contains("\"query\":\"token=v\""), "{asked}");
    let mut player = Client::play(server.addr, "live", "cam");
    publisher.send(9, 0, &media::avc_header());
    player.media(1);
    assert_eq!(hook.calls().len(), 2, "{:?}", hook.calls());
    drop(flv);
    hook.wait_calls("\"action\":\"done\"", 1);
    drop(publisher);
    let done = hook.wait_calls("\"role\":\"publish\"", 2).remove(1);
    assert!(done.contains("\"role\":\"publish\""), "{done}");
    assert!(done.contains("\"action\":\"done\""), "{done}");
    no_secret_in_logs(&["token=abc", "token=v", "hook-token"]);
}

#[test]
fn a_webhook_refusal_denies_with_bad_name_and_play_failed() {
    let hook = Hook::start(|_| (403, Duration::ZERO));
    let server = TestServer::start(hook_config(&hook));
    let (c, code) = try_publish(server.addr, "live", "cam");
    assert_eq!(code, "NetStream.Publish.BadName");
    assert_eq!(
        denied(&server, &c),
        (Role::Publish, Denial::HookRefused { status: 403 })
    );
    let (c, code) = try_play(server.addr, "live", "cam");
    assert_eq!(code, "NetStream.Play.Failed");
    assert_eq!(
        denied(&server, &c),
        (Role::Play, Denial::HookRefused { status: 403 })
    );
    let (head, _) = get(server.http, "/live/cam.flv");
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    common::wait_for_log(&["denied", "webhook", "answered 403"]);
}

#[test]
fn a_webhook_timeout_fails_closed_and_fail_open_allows() {
    let hook = Hook::start(|_| (200, Duration::from_secs(3)));
    let mut config = hook_config(&hook);
    config.auth.webhook_timeout_ms = 300;
    let server = TestServer::start(config.clone());
    let started = Instant::now();
    let (c, code) = try_publish(server.addr, "live", "cam");
    assert_eq!(code, "NetStream.Publish.BadName");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        denied(&server, &c),
        (Role::Publish, Denial::HookTimeout { ms: 300 })
    );
    drop(server);

    config.auth.webhook_fail_open = true;
    let server = TestServer::start(config);
    let (_c, code) = try_publish(server.addr, "live", "cam");
    assert_eq!(code, "NetStream.Publish.Start");
}

#[test]
fn twenty_quick_plays_make_one_webhook_call() {
    let hook = Hook::start(|_| (200, Duration::from_secs(1)));
    let mut config = hook_config(&hook);
    config.auth.on_publish = String::new();
    config.auth.on_done = String::new();
    let server = TestServer::start(config);
    let (_publisher, code) = try_publish(server.addr, "live", "cam");
    assert_eq!(code, "NetStream.Publish.Start");
    // Five at once (pumped in turn, so each sends `play` while the first call is in flight)
    // share that call; fifteen more afterwards hit the cached answer.
    let mut asking: Vec<Client> = (0..5)
        .map(|_| {
            let mut c = Client::connect(server.addr, "live");
            c.session.play("cam");
            c.flush();
            c
        })
        .collect();
    let mut codes: Vec<Option<String>> = vec![None; asking.len()];
    let deadline = Instant::now() + WAIT;
    while codes.iter().any(Option::is_none) {
        assert!(Instant::now() < deadline, "unanswered plays: {codes:?}");
        for (c, code) in asking.iter_mut().zip(codes.iter_mut()) {
            if code.is_some() {
                continue;
            }
            c.pump(Duration::from_millis(5));
            while let Some(event) = c.events.pop_front() {
                if let ClientEvent::Status { code: status, .. } = event {
                    if status.starts_with("NetStream.Play.") && status != "NetStream.Play.Reset" {
                        *code = Some(status);
                    }
                }
            }
        }
    }
    for code in &codes {
        assert_eq!(code.as_deref(), Some("NetStream.Play.Start"));
    }
    // They waited together: more than one request was held while one call was made.
    common::wait_for_log_count(&["waiting for the webhook"], 2, WAIT);
    for _ in 0..15 {
        let (_c, code) = try_play(server.addr, "live", "cam");
        assert_eq!(code, "NetStream.Play.Start");
    }
    assert_eq!(hook.calls().len(), 1, "{:?}", hook.calls());
}

#[test]
fn hls_viewers_are_asked_once_not_per_segment() {
    let hook = Hook::start(|_| (200, Duration::ZERO));
    let mut config = hook_config(&hook);
    config.auth.on_publish = String::new();
    config.auth.on_done = String::new();
    config.http.hls_on_demand = false;
    let server = TestServer::start(config);
    let tags = fixture_tags();
    let mut publisher = Client::publish(server.addr, "live", "h");
    for tag in &tags {
        publisher.send(tag.tag_type, tag.timestamp, &tag.data);
    }
    let span = tags.iter().map(|t| t.timestamp).max().unwrap() + 40;
    for tag in tags.iter().skip(3) {
        publisher.send(tag.tag_type, span + tag.timestamp, &tag.data);
    }
    let (head, body) = get(server.http, "/live/h.m3u8?token=t");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let playlist = String::from_utf8(body).unwrap();
    for segment in playlist.lines().filter(|l| l.starts_with("h/seg-")) {
        for _ in 0..3 {
            let (head, _) = get(server.http, &format!("/live/{segment}"));
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        }
    }
    let (head, _) = get(server.http, "/live/h.m3u8");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let calls = hook.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].contains("\"protocol\":\"hls\""), "{}", calls[0]);
}

#[test]
fn a_slow_webhook_holds_only_its_own_publish() {
    // One worker: the bystander shares the loop with the publish waiting 1.5 s for its hook.
    let hook = Hook::start(|body| {
        if body.contains("\"stream\":\"slow\"") {
            (200, Duration::from_millis(1500))
        } else {
            (200, Duration::ZERO)
        }
    });
    let mut config = hook_config(&hook);
    config.workers.count = 1;
    let server = TestServer::start(config);
    let (mut publisher, mut player) = start_stream(server.addr, "live", "bystander");

    let mut slow = Client::connect(server.addr, "live");
    slow.session.publish("slow", PublishMode::Live);
    slow.flush();
    // The client sends `publish` once `connect` is answered: pump it until the hook is asked.
    let deadline = Instant::now() + WAIT;
    while !hook
        .calls()
        .iter()
        .any(|b| b.contains("\"stream\":\"slow\""))
    {
        assert!(
            Instant::now() < deadline,
            "the slow publish never reached the hook"
        );
        slow.pump(Duration::from_millis(20));
    }
    let asked = Instant::now();
    // Frames keep flowing while the slow publish waits.
    let mut worst = Duration::ZERO;
    for seq in 1..=20 {
        worst = worst.max(round_trip(&mut publisher, &mut player, seq));
    }
    let during = asked.elapsed();
    assert!(
        during < Duration::from_millis(1400),
        "the bystander's frames went round within the hook's wait ({during:?})"
    );
    assert!(
        worst < Duration::from_millis(500),
        "worst round trip {worst:?}"
    );
    assert_eq!(
        wait_status(&mut slow, "NetStream.Publish."),
        "NetStream.Publish.Start"
    );
    assert!(
        asked.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        asked.elapsed()
    );
    // The publish, answered late, works like any other.
    let mut watcher = Client::play(server.addr, "live", "slow");
    slow.send(9, 0, &media::avc_header());
    let (type_id, _, payload) = watcher.media(1).remove(0);
    assert_eq!((type_id, &payload[..]), (9, &media::avc_header()[..]));
}

#[test]
fn an_answer_for_a_connection_closed_meanwhile_is_dropped() {
    let hook = Hook::start(|body| {
        if body.contains("\"stream\":\"gone\"") {
            (200, Duration::from_millis(500))
        } else {
            (200, Duration::ZERO)
        }
    });
    let mut config = hook_config(&hook);
    config.auth.on_done = String::new();
    config.workers.count = 1;
    let server = TestServer::start(config);
    let mut gone = Client::connect(server.addr, "live");
    gone.session.publish("gone", PublishMode::Live);
    gone.flush();
    let deadline = Instant::now() + WAIT;
    while hook.calls().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the publish never reached the hook"
        );
        gone.pump(Duration::from_millis(20));
    }
    let port = gone.local_port();
    drop(gone);
    assert_eq!(server.closed(port).reason, CloseReason::PeerClosed);
    // A new connection (most likely in the freed slot, another generation) is not answered
    // by the old one's hook answer, and goes on working after it was dropped.
    let (mut publisher, mut player) = start_stream(server.addr, "live", "other");
    common::wait_for_log(&["webhook answer for a closed connection: dropped"]);
    round_trip(&mut publisher, &mut player, 1);
    // Nothing published `gone` on the dead connection's behalf: a new publisher gets it.
    let (_late, code) = try_publish(server.addr, "live", "gone");
    assert_eq!(code, "NetStream.Publish.Start");
}

#[test]
fn a_reload_applies_new_rules_to_later_requests() {
    let server = TestServer::start(Config::default());
    let (mut publisher, code) = try_publish(server.addr, "live", "cam");
    assert_eq!(code, "NetStream.Publish.Start");
    // What the test server runs with, plus the new rule.
    let mut config = Config::default();
    config.rtmp.listen = vec![server.addr];
    config.http.listen = vec![server.http];
    config.workers.count = 1;
    config.workers.pin = false;
    config.auth.deny_play = vec!["127.0.0.0/8".into()];
    server.server().reload(config);
    common::wait_for_log(&["configuration reloaded"]);
    let (c, code) = try_play(server.addr, "live", "cam");
    assert_eq!(code, "NetStream.Play.Failed");
    assert_eq!(denied(&server, &c), (Role::Play, Denial::IpDenied));
    // The publisher, allowed before, goes on.
    publisher.send(9, 0, &media::avc_header());
}
