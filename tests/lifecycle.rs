//! The real binary's signals: SIGHUP reloads the config file (a live change takes effect and
//! connected players keep playing; an invalid file is logged with the `--check-config` message
//! and changes nothing), SIGTERM drains and a second SIGTERM stops at once. Signals go only to
//! the process each test started.

mod common;

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::{media, Client, WAIT};

const VIDEO: u8 = 9;

/// The binary running on loopback ports with a config file; its stderr lines on a channel.
struct Edge {
    child: Child,
    lines: Receiver<String>,
    /// Every line read so far.
    seen: Vec<String>,
    port: u16,
    config: PathBuf,
}

impl Edge {
    fn start(test: &str, config_text: &str) -> Self {
        Self::start_with(test, config_text, |_| {})
    }

    /// [`start`](Self::start), with `prepare` adding to the command first.
    fn start_with(test: &str, config_text: &str, prepare: impl FnOnce(&mut Command)) -> Self {
        let config = std::env::temp_dir().join(format!(
            "rtmp-edge-lifecycle-{}-{test}.toml",
            std::process::id()
        ));
        std::fs::write(&config, config_text).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_rtmp-edge"));
        command
            .args(["--config", config.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(["--workers", "1"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        prepare(&mut command);
        let mut child = command.spawn().expect("rtmp-edge starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("edge: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut edge = Self {
            child,
            lines,
            seen: Vec::new(),
            port: 0,
            config,
        };
        let line = edge.wait_line(&["listening for RTMP"]);
        let addr = line.split("addr=").nth(1).unwrap();
        let addr: String = addr.chars().take_while(|c| !c.is_whitespace()).collect();
        edge.port = addr.rsplit(':').next().unwrap().parse().unwrap();
        edge
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// Waits (bounded by WAIT) for a line containing every needle.
    fn wait_line(&mut self, needles: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if needles.iter().all(|n| line.contains(n)) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no line with {needles:?}"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("rtmp-edge exited before a line with {needles:?}")
                }
            }
        }
    }

    /// The admin listener's address, from its log line.
    fn admin_addr(&mut self) -> std::net::SocketAddr {
        let line = self.wait_line(&["listening for admin requests"]);
        let addr = line.split("addr=").nth(1).unwrap();
        addr.chars()
            .take_while(|c| !c.is_whitespace())
            .collect::<String>()
            .parse()
            .unwrap()
    }

    fn seen_with(&self, needles: &[&str]) -> bool {
        self.seen
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on the PID of the child this test spawned (and has not reaped).
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {signal}");
    }

    fn rewrite(&self, text: &str) {
        std::fs::write(&self.config, text).unwrap();
    }

    /// Waits (bounded) for the process to exit; its status.
    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "rtmp-edge did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.config);
    }
}

/// A publisher and a player of `live/cam` that has received the headers and a keyframe.
fn playing(addr: std::net::SocketAddr) -> (Client, Client) {
    let mut publisher = Client::publish(addr, "live", "cam");
    publisher.send(VIDEO, 0, &media::avc_header());
    publisher.send(VIDEO, 0, &media::avc_frame(true, 0, 2000));
    let mut player = Client::play(addr, "live", "cam");
    player.media(2);
    (publisher, player)
}

fn still_playing(publisher: &mut Client, player: &mut Client, seq: u32) {
    let frame = media::avc_frame(false, seq, 2000);
    publisher.send(VIDEO, seq * 40, &frame);
    assert_eq!(player.media(1)[0].2.as_ref(), frame.as_slice());
}

/// Opens and closes one RTMP connection; returns its local port once the server logged its
/// close (an info line, so it shows at any level used here).
fn one_connection(edge: &mut Edge) -> u16 {
    let c = Client::play(edge.addr(), "live", "other");
    let port = c.local_port();
    drop(c);
    edge.wait_line(&["connection closed", &format!(":{port} ")]);
    port
}

#[test]
fn sighup_applies_a_new_log_level_and_players_keep_playing() {
    let mut edge = Edge::start("hup", "[log]\nlevel = \"info\"\n");
    let (mut publisher, mut player) = playing(edge.addr());
    let before = one_connection(&mut edge);
    assert!(
        !edge.seen_with(&["connection accepted", &format!(":{before} ")]),
        "no debug lines at info"
    );
    edge.rewrite("[log]\nlevel = \"debug\"\n");
    edge.signal(libc::SIGHUP);
    edge.wait_line(&["configuration reloaded", "worker=0"]);
    let after = one_connection(&mut edge);
    assert!(
        edge.seen_with(&["connection accepted", &format!(":{after} ")]),
        "debug lines after the reload"
    );
    still_playing(&mut publisher, &mut player, 1);
    assert!(
        !edge.seen_with(&["need a restart"]),
        "nothing needing a restart changed"
    );
}

#[test]
fn sighup_with_an_invalid_file_logs_the_check_config_error_and_changes_nothing() {
    let mut edge = Edge::start("bad-hup", "[log]\nlevel = \"info\"\n");
    let (mut publisher, mut player) = playing(edge.addr());
    edge.rewrite("[log]\nlevel = \"debug\"\n[timeouts]\ndrain_ms = 0\n");
    let check = Command::new(env!("CARGO_BIN_EXE_rtmp-edge"))
        .args(["--check-config", edge.config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    let message = String::from_utf8(check.stderr).unwrap();
    let message = message
        .trim()
        .strip_prefix("rtmp-edge: ")
        .unwrap()
        .to_string();
    assert!(message.contains("(line 4)"), "{message}");
    edge.signal(libc::SIGHUP);
    let line = edge.wait_line(&["reload refused"]);
    assert!(line.contains("ERROR"), "{line}");
    // The log formatter quotes values with spaces: compare the words.
    let unquoted = line.replace('\\', "");
    assert!(unquoted.contains(&message), "{line}\nvs {message}");
    // Still at info: a new connection logs no debug line.
    let port = one_connection(&mut edge);
    assert!(!edge.seen_with(&["connection accepted", &format!(":{port} ")]));
    still_playing(&mut publisher, &mut player, 1);
}

#[test]
fn a_second_sigterm_during_a_drain_stops_at_once() {
    let mut edge = Edge::start("term-term", "[timeouts]\ndrain_ms = 60000\n");
    // A client from before E-RTMP: nobody can ask it to leave, so the drain would last.
    let _legacy = Client::play_with_caps(edge.addr(), "live", "cam", 0);
    let started = Instant::now();
    edge.signal(libc::SIGTERM);
    edge.wait_line(&["drain started"]);
    edge.signal(libc::SIGTERM);
    let status = edge.wait_exit(WAIT);
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "long before drain_ms"
    );
    assert!(edge.seen_with(&["drain started"]));
}

/// `POST /api/v1/reload` on the admin listener of the real binary: the same as SIGHUP (a new
/// log level applies, players keep playing), behind the bearer token.
#[test]
fn the_api_reload_rereads_the_config_file_like_sighup() {
    let admin_config = "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t0k\"\n";
    let mut edge = Edge::start(
        "api-reload",
        &format!("[log]\nlevel = \"info\"\n{admin_config}"),
    );
    let admin = edge.admin_addr();
    let (mut publisher, mut player) = playing(edge.addr());
    let post = |token: Option<&str>| {
        use std::io::Write;
        let mut c = std::net::TcpStream::connect(admin).unwrap();
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        write!(
            c,
            "POST /api/v1/reload HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n"
        )
        .unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        common::read_response(&mut c).0
    };
    edge.rewrite(&format!("[log]\nlevel = \"debug\"\n{admin_config}"));
    let refused = post(None);
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let port = one_connection(&mut edge);
    assert!(
        !edge.seen_with(&["connection accepted", &format!(":{port} ")]),
        "no reload without the token"
    );
    let accepted = post(Some("t0k"));
    assert!(accepted.starts_with("HTTP/1.1 202"), "{accepted}");
    edge.wait_line(&["configuration reloaded", "worker=0"]);
    let after = one_connection(&mut edge);
    assert!(
        edge.seen_with(&["connection accepted", &format!(":{after} ")]),
        "debug lines after the reload"
    );
    still_playing(&mut publisher, &mut player, 1);
}

/// `rtmp_edge_io_uring_submissions_total` of worker 0, from the admin listener.
fn uring_submissions(admin: std::net::SocketAddr) -> f64 {
    let (head, body) = common::get(admin, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = String::from_utf8(body).unwrap();
    let line = body
        .lines()
        .find(|l| l.starts_with("rtmp_edge_io_uring_submissions_total{worker=\"0\"}"))
        .unwrap_or_else(|| panic!("no submissions counter in\n{body}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

const IO_URING_CONFIG: &str = "[workers]\nio = \"io_uring\"\n[admin]\nlisten = \"127.0.0.1:0\"\n";

/// `workers.io = "io_uring"`: the worker's writes go through its ring (the submissions
/// counter moves with every frame) and players get every byte.
#[test]
fn with_io_uring_the_workers_writes_go_through_the_ring() {
    let mut edge = Edge::start_with("io-uring", IO_URING_CONFIG, |c| {
        c.env_remove("RTMP_EDGE_IO");
    });
    // Told before the listeners' lines.
    let admin = edge.admin_addr();
    assert!(edge.seen_with(&["INFO", "workers write with io_uring"]));
    let (mut publisher, mut player) = playing(edge.addr());
    let before = uring_submissions(admin);
    assert!(
        before > 0.0,
        "the handshake and play replies went through the ring"
    );
    for seq in 1..=20 {
        still_playing(&mut publisher, &mut player, seq);
    }
    let after = uring_submissions(admin);
    assert!(
        after >= before + 20.0,
        "one submission at least per frame delivered: {before} -> {after}"
    );
}

/// Where io_uring is refused (here by a seccomp filter, as in a locked-down container), a
/// server configured for it says so in one line and serves with epoll.
#[test]
fn where_io_uring_is_refused_the_workers_use_epoll_and_say_so_once() {
    let mut edge = Edge::start_with("io-uring-refused", IO_URING_CONFIG, |c| {
        c.env_remove("RTMP_EDGE_IO");
        refuse_io_uring(c);
    });
    let admin = edge.admin_addr();
    assert!(edge.seen_with(&["WARN", "io_uring unavailable: the workers use epoll"]));
    let (mut publisher, mut player) = playing(edge.addr());
    for seq in 1..=20 {
        still_playing(&mut publisher, &mut player, seq);
    }
    assert_eq!(uring_submissions(admin), 0.0);
    let told = edge
        .seen
        .iter()
        .filter(|l| l.contains("io_uring unavailable"))
        .count();
    assert_eq!(told, 1, "one line, not one per worker or per write");
}

/// Makes the child's io_uring_setup(2) fail with ENOSYS (a seccomp filter installed between
/// fork and exec), as a container runtime's default profile may.
fn refuse_io_uring(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    // offsetof(struct seccomp_data, nr)
    const NR: u32 = 0;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let filter = [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, NR),
        jump(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            libc::SYS_io_uring_setup as u32,
            0,
            1,
        ),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, SECCOMP_RET_ALLOW),
    ];
    // SAFETY: runs in the child between fork and exec; it only calls prctl(2), which is
    // async-signal-safe, with a filter that lives in this closure (copied into the child).
    unsafe {
        command.pre_exec(move || {
            let program = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
