//! rtmp-load against a real nginx-rtmp started by the test on a free loopback port.
//!
//! These tests FAIL (they do not skip) when nginx or its RTMP module is missing: install them
//! with `apt-get install -y nginx libnginx-mod-rtmp`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{f, free_port, rtmp_load, u};

const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// An nginx-rtmp child process, killed (by its PID, it is our child) on drop.
struct Nginx {
    child: Child,
    port: u16,
    /// nginx http's port when it serves the application's HLS.
    http_port: Option<u16>,
    dir: PathBuf,
}

impl Nginx {
    fn start(tag: &str) -> Nginx {
        Self::start_with(tag, false)
    }

    /// With `hls`, the application also writes HLS (1 s fragments) that nginx http serves at
    /// `http://127.0.0.1:HTTP_PORT/live/STREAM.m3u8`.
    fn start_with(tag: &str, hls: bool) -> Nginx {
        let nginx = [
            "/usr/sbin/nginx",
            "/usr/local/sbin/nginx",
            "/usr/local/nginx/sbin/nginx",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!(
                "nginx is not installed; these tests need it: \
                     apt-get install -y nginx libnginx-mod-rtmp"
            )
        });
        assert!(
            Path::new(RTMP_MODULE).exists(),
            "the nginx RTMP module ({RTMP_MODULE}) is missing: apt-get install -y libnginx-mod-rtmp"
        );
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("rtmp-load-it-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let http_port = hls.then(free_port);
        let (hls_app, http) = match http_port {
            Some(hp) => (
                format!(
                    "hls on; hls_path {d}/hls; hls_fragment 1s; hls_playlist_length 4s;",
                    d = dir.display()
                ),
                format!(
                    "http {{ access_log off; client_body_temp_path {d}/body;\n\
                       server {{ listen 127.0.0.1:{hp}; location /live/ {{ alias {d}/hls/;\n\
                         types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }} }} }} }}\n",
                    d = dir.display()
                ),
            ),
            None => (String::new(), String::new()),
        };
        let conf = format!(
            "load_module {RTMP_MODULE};\n\
             daemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {d}/nginx.pid;\nerror_log {d}/logs/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; record off; {hls_app} }} }} }}\n{http}",
            d = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting nginx");
        let mut n = Nginx {
            child,
            port,
            http_port,
            dir,
        };
        n.wait_listening();
        n
    }

    /// Waits (bounded) until nginx accepts connections; fails with its stderr if it exits.
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                let log =
                    std::fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default();
                panic!("nginx exited ({status}) before listening: {log}");
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{stream}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn players_receive_stamped_frames_from_nginx_without_errors() {
    let nginx = Nginx::start("basic");
    let pid = nginx.child.id().to_string();
    let r = rtmp_load(&[
        "--url",
        &nginx.url("basic"),
        "--players",
        "5",
        "--duration",
        "3",
        "--synthetic",
        "600k",
        "--fps",
        "25",
        "--gop",
        "25",
        "--server-pid",
        &pid,
    ]);
    assert_eq!(u(&r, &["counters", "errors"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "disconnects"]), 0, "{r:#}");
    assert_eq!(u(&r, &["connections", "publishers_up"]), 1);
    assert_eq!(u(&r, &["connections", "players_up"]), 5);
    assert!(
        u(&r, &["counters", "player_video_frames"]) > 5 * 25,
        "{r:#}"
    );
    assert!(
        u(&r, &["latency_ms", "count"]) > 5 * 25,
        "latency was measured: {r:#}"
    );
    assert_eq!(u(&r, &["counters", "frames_without_stamp"]), 0);
    assert!(f(&r, &["latency_ms", "p50"]) > 0.0);
    assert!(
        f(&r, &["latency_ms", "max"]) < 1000.0,
        "loopback latency under 1 s: {r:#}"
    );
    assert_eq!(
        u(&r, &["counters", "first_frame_keyframe"]),
        5,
        "nginx starts players on a keyframe"
    );
    assert!(f(&r, &["window", "throughput_mbit_s"]) > 5.0 * 0.5, "{r:#}");
    // The server was sampled (a lightly loaded nginx may round to zero 10 ms ticks).
    assert!(r["server"]["cpu_seconds"].is_f64(), "{r:#}");
    assert!(r["server"]["rss_end_kb"].as_u64().unwrap() > 0);
}

#[test]
fn looped_flv_from_make_flv_plays_through_nginx_with_churn() {
    let flv = std::env::temp_dir().join(format!("rtmp-load-it-{}.flv", std::process::id()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/media/make_flv.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(&flv)
        .args(["600", "25", "25", "2", "320x240"])
        .stdout(Stdio::null())
        .status()
        .expect("running make_flv.sh (needs ffmpeg: apt-get install -y ffmpeg)");
    assert!(
        status.success(),
        "make_flv.sh failed (is ffmpeg installed?)"
    );
    let nginx = Nginx::start("flv");
    // The 2 s file loops at least once in the 3 s window: timestamps must stay continuous
    // (nginx would drop or reorder otherwise and stalls would show).
    let r = rtmp_load(&[
        "--url",
        &nginx.url("flv"),
        "--flv",
        flv.to_str().unwrap(),
        "--players",
        "10",
        "--churn",
        "4",
        "--duration",
        "3",
    ]);
    let _ = std::fs::remove_file(&flv);
    assert_eq!(u(&r, &["counters", "errors"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "disconnects"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "stalls"]), 0, "{r:#}");
    assert!(u(&r, &["counters", "churn_left"]) >= 8, "{r:#}");
    assert_eq!(
        u(&r, &["counters", "churn_left"]),
        u(&r, &["counters", "churn_joined"])
    );
    assert!(u(&r, &["latency_ms", "count"]) > 100, "{r:#}");
    assert_eq!(u(&r, &["counters", "frames_without_stamp"]), 0);
}

#[test]
fn publish_only_run_reports_ingest_and_no_players() {
    let nginx = Nginx::start("ingest");
    let r = rtmp_load(&[
        "--url",
        &nginx.url("ingest"),
        "--mode",
        "publish-only",
        "--publishers",
        "20",
        "--duration",
        "2",
    ]);
    assert_eq!(u(&r, &["counters", "errors"]), 0, "{r:#}");
    assert_eq!(u(&r, &["connections", "publishers_up"]), 20);
    assert_eq!(u(&r, &["connections", "players_target"]), 0);
    // 20 streams × (25 video + ~43 audio) frames/s × 2 s, minus ramp-up slack.
    assert!(
        u(&r, &["counters", "publisher_messages"]) > 20 * 60 * 2,
        "{r:#}"
    );
}

#[test]
fn hls_pollers_follow_nginx_rtmp_hls_from_before_its_first_fragment() {
    let nginx = Nginx::start_with("hls", true);
    let http_port = nginx.http_port.expect("HLS is on").to_string();
    // The pollers start with the publisher: nginx has no playlist until the first 1 s fragment
    // closes and answers 404 until then.
    let r = rtmp_load(&[
        "--url",
        &nginx.url("hls"),
        "--http-port",
        &http_port,
        "--players",
        "0",
        "--hls-pollers",
        "3",
        "--synthetic",
        "600k",
        "--fps",
        "25",
        "--gop",
        "25",
        "--warmup",
        "2",
        "--duration",
        "4",
    ]);
    assert_eq!(u(&r, &["counters", "errors"]), 0, "{r:#}");
    assert_eq!(u(&r, &["counters", "disconnects"]), 0, "{r:#}");
    assert!(
        u(&r, &["counters", "hls_playlists_not_ready"]) >= 3,
        "each poller first met a 404: {r:#}"
    );
    assert!(
        u(&r, &["window", "hls_segments"]) >= 3 * 2,
        "1 s segments over a 4 s window: {r:#}"
    );
    assert!(u(&r, &["window", "hls_playlists"]) >= 3 * 4, "{r:#}");
    assert!(
        u(&r, &["window", "hls_bytes"]) > 3 * 2 * 50_000,
        "600 kbit/s segments: {r:#}"
    );
    assert!(
        u(&r, &["counters", "hls_without_pdt"]) > 0,
        "nginx-rtmp playlists carry no PROGRAM-DATE-TIME: {r:#}"
    );
    assert!(f(&r, &["hls_segment_ms", "p50"]) > 0.0, "{r:#}");
}
