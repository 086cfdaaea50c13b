//! A real browser: headless Chromium plays the HLS stream with hls.js, the HTTP-FLV stream with
//! mpegts.js and the DASH stream with dash.js, from a page the test serves; the video's currentTime must advance with no
//! player error. Screenshots are kept in target/browser/. Fails (never skips) without
//! Chromium, Node.js or tools/browser/node_modules: `tools/test.sh` installs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{Client, TestServer};
use rtmp_edge::rtmp::session::ClientEvent;

fn need(cond: bool, what: &str) {
    assert!(
        cond,
        "{what} is missing: run tools/test.sh as root to install the browser test tools"
    );
}

/// A child process killed by its PID when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/browser")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Serves tools/browser/ (the page and its player libraries) on a loopback port.
fn page_server() -> (Guard, String) {
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
            "--directory",
        ])
        .arg(browser_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    // Wait (bounded) for the port to accept.
    let deadline = std::time::Instant::now() + common::WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "page server did not start"
        );
        // Poll the port (no event to wait on from another process), without spinning a core.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (Guard(child), format!("http://127.0.0.1:{port}/"))
}

/// ffmpeg publishing a 40 s test pattern in real time.
fn publish(server: &TestServer, name: &str) -> Guard {
    let url = format!("rtmp://{}/live/{name}", server.addr);
    let child = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=25",
            "-f",
            "lavfi",
            "-i",
        ])
        .args([
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "40",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args([
            "-tune",
            "zerolatency",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "25",
            "-c:a",
            "aac",
            "-f",
            "flv",
            &url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg");
    Guard(child)
}

/// Plays `media_url` with the `kind` player (hls, dash, flv); the screenshot is `{shot}.png`.
fn play_in_browser(kind: &str, shot: &str, media_url: &str, page: &str) {
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(format!("{shot}.png"));
    let out = Command::new("timeout")
        .arg("90")
        .arg("node")
        .arg(browser_dir().join("play.mjs"))
        .args([kind, media_url, page])
        .arg(&shot)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{kind} did not play in Chromium: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{kind}: {stdout}");
    assert!(stdout.contains("\"playerError\":null"), "{stdout}");
    assert!(shot.exists(), "screenshot written");
}

/// Fails the test when Chromium, node, the npm player libraries or ffmpeg are missing.
fn need_tools() {
    need(Path::new("/usr/bin/chromium").exists(), "chromium");
    need(
        Command::new("node").arg("--version").output().is_ok(),
        "node",
    );
    need(
        browser_dir().join("node_modules/playwright-core").exists(),
        "tools/browser/node_modules",
    );
    need(
        Command::new("ffmpeg").arg("-version").output().is_ok(),
        "ffmpeg",
    );
}

/// Waits until `name` flows on `server` (a player there sees 3 s of video), so HLS has
/// segments.
fn wait_for_video(server: &TestServer, name: &str) {
    let mut watcher = Client::play(server.addr, "live", name);
    let mut frames = 0;
    while frames < 75 {
        if let ClientEvent::Media { type_id: 9, .. } =
            watcher.wait_for("media", |e| matches!(e, ClientEvent::Media { .. }))
        {
            frames += 1;
        }
    }
}

#[test]
fn chromium_plays_hls_with_hls_js_http_flv_with_mpegts_js_and_dash_with_dash_js() {
    need_tools();
    let server = TestServer::with_defaults();
    let _publisher = publish(&server, "web");
    wait_for_video(&server, "web");
    let (_page_server, page) = page_server();
    play_in_browser(
        "hls",
        "hls",
        &format!("http://{}/live/web.m3u8", server.http),
        &page,
    );
    play_in_browser(
        "flv",
        "flv",
        &format!("http://{}/live/web.flv", server.http),
        &page,
    );
    play_in_browser(
        "dash",
        "dash",
        &format!("http://{}/live/web.mpd", server.http),
        &page,
    );
}

/// hls.js in Chromium plays a stream from an edge that does not have it: the playlist
/// request makes the edge pull it from its origin.
#[test]
fn chromium_plays_hls_from_an_edge_pulling_the_stream_from_its_origin() {
    need_tools();
    let origin = TestServer::with_defaults();
    let _publisher = publish(&origin, "edgeweb");
    wait_for_video(&origin, "edgeweb");
    let mut config = rtmp_edge::config::Config::default();
    config.relay.origins = vec![format!("rtmp://{}", origin.addr)];
    let edge = TestServer::start(config);
    let (_page_server, page) = page_server();
    play_in_browser(
        "hls",
        "hls-edge",
        &format!("http://{}/live/edgeweb.m3u8", edge.http),
        &page,
    );
    common::wait_for_log(&["pulling from an origin", "edgeweb"]);
}

/// The admin listener's status page in Chromium lists a stream ffmpeg publishes, live, with
/// a non-zero bitrate in; the screenshot is kept under target/browser.
#[test]
fn chromium_shows_a_published_stream_on_the_status_page() {
    need_tools();
    let server = TestServer::with_defaults();
    let _publisher = publish(&server, "statuspage");
    wait_for_video(&server, "statuspage");
    let admin = server.server().admin_addr().expect("admin listener runs");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("status-page.png");
    let out = Command::new("timeout")
        .arg("60")
        .arg("node")
        .arg(browser_dir().join("status.mjs"))
        .arg(format!("http://{admin}/"))
        .arg("live/statuspage")
        .arg(&shot)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the status page did not list the stream live: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("avc1."), "codec shown: {stdout}");
    assert!(shot.exists(), "screenshot written");
}
