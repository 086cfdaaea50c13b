//! Real processes for the interop tests: child processes killed by PID (never by name), the
//! `rtmp-edge` binary started with a config file, ffmpeg publishing and playing, and frame
//! comparison by `-f framemd5`. A missing tool fails the test (`tools::tool`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rtmp_edge::rtmp::session::ClientEvent;

use super::tools::{tool, Dir};
use super::Client;

/// Frame rate of the generated sources; a keyframe every `FPS` frames.
pub const FPS: usize = 25;

/// A child process we started, killed by PID if still running when dropped. Its stdout and
/// stderr go to `NAME.log` in the test's directory.
pub struct Proc {
    name: String,
    pid: u32,
    done: mpsc::Receiver<ExitStatus>,
    status: Option<ExitStatus>,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, dir: &Dir, cmd: &mut Command) -> Self {
        let log = dir.path(&format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut child: Child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let pid = child.id();
        let (tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = tx.send(status);
            }
        });
        Self {
            name: name.to_string(),
            pid,
            done,
            status: None,
            log,
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its exit status if it has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.done.try_recv().ok();
        }
        self.status
    }

    /// Output lines so far that contain every one of `needles`.
    pub fn output_lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.output()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
            .collect()
    }

    /// Polls its output (bounded by `timeout`) until `n` lines contain all `needles`; fails
    /// with the output if it exits first or the time runs out.
    pub fn wait_for_output(
        &mut self,
        needles: &[&str],
        n: usize,
        timeout: Duration,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.output_lines_with(needles);
            if lines.len() >= n {
                return lines;
            }
            if let Some(status) = self.exited() {
                panic!(
                    "{} exited ({status}) before writing {n} lines with {needles:?}:\n{}",
                    self.name,
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: fewer than {n} lines with {needles:?} within {timeout:?}:\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for exit; kills it (by PID) and fails if it takes longer than `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        match self.done.recv_timeout(timeout) {
            Ok(status) => {
                self.status = Some(status);
                status
            }
            Err(_) => {
                self.kill();
                panic!(
                    "{} did not finish within {timeout:?}:\n{}",
                    self.name,
                    self.output()
                );
            }
        }
    }

    /// [`wait`](Self::wait)s for an exit that must be a success (its output is shown if not).
    pub fn wait_ok(&mut self, timeout: Duration) {
        let status = self.wait(timeout);
        assert!(status.success(), "{} failed:\n{}", self.name, self.output());
    }

    /// Waits for exit up to `timeout`, then stops it with `signal`; returns once it is gone.
    pub fn stop_after(&mut self, timeout: Duration, signal: i32) {
        if self.status.is_some() {
            return;
        }
        if let Ok(status) = self.done.recv_timeout(timeout) {
            self.status = Some(status);
            return;
        }
        signal_pid(self.pid, signal);
        match self.done.recv_timeout(Duration::from_secs(10)) {
            Ok(status) => self.status = Some(status),
            Err(_) => self.kill(),
        }
    }

    /// SIGKILL (by PID), then waits for it to be gone.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            signal_pid(self.pid, libc::SIGKILL);
            self.status = self.done.recv_timeout(Duration::from_secs(10)).ok();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` to `pid`: only processes this test started, by PID.
pub fn signal_pid(pid: u32, signal: i32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
    let _ = status;
}

pub fn run_ok(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A deterministic H.264 + AAC FLV of `seconds` at 320x240: `pattern` is an ffmpeg lavfi
/// video source; a keyframe every `FPS` frames, no B-frames.
pub fn h264_source(dir: &Dir, name: &str, pattern: &str, seconds: usize) -> PathBuf {
    let out = dir.path(name);
    run_ok(
        "ffmpeg encode",
        Command::new(tool("ffmpeg"))
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("{pattern}=size=320x240:rate={FPS}"))
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=1000:sample_rate=44100",
                "-t",
            ])
            .arg(seconds.to_string())
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-bf",
                "0",
            ])
            .args([
                "-x264-params",
                "keyint=25:min-keyint=25:scenecut=0",
                "-c:a",
                "aac",
                "-b:a",
                "64k",
                "-f",
                "flv",
            ])
            .arg(&out),
    );
    out
}

/// MD5 of every decoded video frame, in order.
pub fn frame_md5s(ffmpeg: &Path, file: &Path) -> Vec<String> {
    let text = run_ok(
        "framemd5",
        Command::new(ffmpeg)
            .args(["-v", "error", "-i"])
            .arg(file)
            .args(["-map", "0:v:0", "-f", "framemd5", "-"]),
    );
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
        .collect()
}

/// `got` is a run of `source` that starts on a keyframe (every FPS frames); returns the
/// index of its first frame in `source`.
pub fn assert_run_of(who: &str, source: &[String], got: &[String]) -> usize {
    assert!(!got.is_empty(), "{who}: no frames decoded");
    let start = source
        .iter()
        .position(|m| *m == got[0])
        .unwrap_or_else(|| panic!("{who}: first frame is not from the source"));
    assert_eq!(
        start % FPS,
        0,
        "{who}: starts at frame {start}, not on a keyframe"
    );
    let n = got.len().min(source.len() - start);
    assert_eq!(
        &got[..n],
        &source[start..start + n],
        "{who}: frames differ from the source"
    );
    start
}

/// `got` is a run of `source` from a keyframe to its last frame, and holds at least
/// `at_least` frames.
pub fn assert_tail_of(who: &str, source: &[String], got: &[String], at_least: usize) {
    let start = assert_run_of(who, source, got);
    assert_eq!(
        got.len(),
        source.len() - start,
        "{who}: from frame {start}, got {} frames of the {} to the end",
        got.len(),
        source.len() - start
    );
    assert!(
        got.len() >= at_least,
        "{who}: {} frames, fewer than {at_least}",
        got.len()
    );
}

/// `got` is a run of `source` that starts on a keyframe and, unless `late`, is the whole of it.
pub fn assert_same_frames(who: &str, source: &[String], got: &[String], late: bool) {
    let start = assert_run_of(who, source, got);
    if late {
        assert!(
            start > 0,
            "{who}: a late joiner should start after the first GOP"
        );
    } else {
        assert_eq!(start, 0, "{who}: missed the first frames");
        assert_eq!(
            got.len(),
            source.len(),
            "{who}: got {} of {} frames",
            got.len(),
            source.len()
        );
    }
}

/// ffmpeg publishing `source` in real time (`-re`) to `url`.
pub fn ffmpeg_publish(dir: &Dir, ffmpeg: &Path, source: &Path, url: &str, name: &str) -> Proc {
    Proc::spawn(
        name,
        dir,
        Command::new(ffmpeg)
            .args(["-v", "warning", "-nostats", "-re", "-i"])
            .arg(source)
            .args(["-c", "copy", "-f", "flv", url]),
    )
}

/// ffmpeg playing `url` into the FLV file `out`, stream copy.
pub fn ffmpeg_play(dir: &Dir, ffmpeg: &Path, url: &str, out: &Path, name: &str) -> Proc {
    Proc::spawn(
        name,
        dir,
        Command::new(ffmpeg)
            .args([
                "-v", "warning", "-nostats", "-i", url, "-c", "copy", "-f", "flv", "-y",
            ])
            .arg(out),
    )
}

/// The `rtmp-edge` binary, started with `--config` on ephemeral loopback ports and two
/// workers; its log (`info`) is `NAME.log` in the test's directory.
pub struct ServerProc {
    proc: Proc,
    /// The RTMP listener.
    pub rtmp: SocketAddr,
    /// The HTTP listener.
    pub http: SocketAddr,
}

impl ServerProc {
    /// Starts it with the TOML `config` (written to `NAME.toml`); returns once it listens.
    pub fn start(dir: &Dir, name: &str, config: &str) -> Self {
        Self::start_on(dir, name, config, 0, 0)
    }

    /// [`start`](Self::start) with RTMP on `127.0.0.1:rtmp_port` and HTTP on
    /// `127.0.0.1:http_port` (0: any free port), for a server that must know its addresses
    /// before it starts (a cluster node advertises them).
    pub fn start_on(dir: &Dir, name: &str, config: &str, rtmp_port: u16, http_port: u16) -> Self {
        let path = dir.path(&format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let listen = format!("127.0.0.1:{rtmp_port}");
        let http_listen = format!("127.0.0.1:{http_port}");
        let proc = Proc::spawn(
            name,
            dir,
            Command::new(env!("CARGO_BIN_EXE_rtmp-edge"))
                .arg("--config")
                .arg(&path)
                .args(["--listen", &listen, "--http-listen", &http_listen])
                .args(["--workers", "2"])
                .env("RUST_LOG", "info"),
        );
        let mut server = Self {
            proc,
            rtmp: SocketAddr::from(([0, 0, 0, 0], 0)),
            http: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let addr = |server: &mut Self, what: &str| -> SocketAddr {
            let line = server.wait_for_log(&[what], 1, Duration::from_secs(10));
            let addr = line[0].split("addr=").nth(1).unwrap();
            let addr: String = addr.chars().take_while(|c| !c.is_whitespace()).collect();
            addr.parse().unwrap()
        };
        server.rtmp = addr(&mut server, "listening for RTMP");
        server.http = addr(&mut server, "listening for HTTP");
        server
    }

    /// `rtmp://127.0.0.1:PORT`, as an origin or push target.
    pub fn base_url(&self) -> String {
        format!("rtmp://{}", self.rtmp)
    }

    /// `rtmp://127.0.0.1:PORT/live/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/live/{name}", self.base_url())
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.proc.output()
    }

    /// Log lines so far that contain every one of `needles`.
    pub fn log_lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.proc.output_lines_with(needles)
    }

    /// Polls its log (bounded by `timeout`) until `n` lines contain all `needles`; fails
    /// with the log if it exits first or the time runs out.
    pub fn wait_for_log(&mut self, needles: &[&str], n: usize, timeout: Duration) -> Vec<String> {
        self.proc.wait_for_output(needles, n, timeout)
    }

    /// SIGKILL: the process dies at once, its sockets reset by the kernel.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// SIGTERM, and waits (bounded) for its clean exit.
    pub fn stop(&mut self) {
        signal_pid(self.proc.pid, libc::SIGTERM);
        let status = self.proc.wait(Duration::from_secs(10));
        assert!(status.success(), "{} exit: {status}", self.proc.name);
    }
}

/// A stream name of app `live` that an edge with `origins` pulls from `origins[first]` before
/// the others (by the relay's rendezvous order).
pub fn name_pulled_first_from(first: usize, origins: &[String]) -> String {
    let urls: Vec<_> = origins
        .iter()
        .map(|o| rtmp_edge::relay::OriginUrl::parse(o).unwrap())
        .collect();
    (0..)
        .map(|i| format!("s{i}"))
        .find(|name| {
            let key = rtmp_edge::relay::stream_key("live", name);
            rtmp_edge::relay::rendezvous_order(&key, &urls)[0] == first
        })
        .unwrap()
}

/// Video frames (not sequence headers) a player gets: `type_id` 9, AVC packet type 1.
pub fn is_video_frame(event: &ClientEvent) -> Option<(u32, bool)> {
    match event {
        ClientEvent::Media {
            type_id: 9,
            timestamp,
            payload,
        } if payload.get(1) == Some(&1) => Some((*timestamp, payload[0] >> 4 == 1)),
        _ => None,
    }
}

/// An in-repo client playing `live/NAME` on `edge` for at most `limit`: each video frame's
/// arrival time and timestamp, sent as it comes (the channel ends with the play).
pub fn watch(edge: SocketAddr, name: &str, limit: Duration) -> mpsc::Receiver<(Instant, u32)> {
    let (tx, frames) = mpsc::channel();
    let name = name.to_string();
    std::thread::spawn(move || {
        let mut player = Client::play(edge, "live", &name);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline && player.pump(Duration::from_millis(100)) {
            while let Some(event) = player.events.pop_front() {
                if let Some((timestamp, _)) = is_video_frame(&event) {
                    let _ = tx.send((Instant::now(), timestamp));
                }
            }
        }
    });
    frames
}

/// `url=URL ` as an edge logs the stream URL it pulls from.
pub fn pull_from(url: &str) -> String {
    format!("url={url} ")
}
