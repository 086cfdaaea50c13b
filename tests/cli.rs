//! The `rtmp-edge` command line: config printing, checking, and exit codes. These tests run the
//! built binary and never start the server.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_rtmp-edge");

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("rtmp-edge-cli-{}-{n}-{test}", std::process::id()));
        std::fs::create_dir_all(&path).expect("temp dir can be created");
        TempDir(path)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("temp file can be written");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rtmp_edge(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the rtmp-edge binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

/// Every `key = value` line of a printed config, as `section.key`.
fn printed_keys(text: &str) -> Vec<String> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, _)) = line.split_once(" = ") {
            if !line.starts_with('#') {
                keys.push(format!("{section}.{key}"));
            }
        }
    }
    keys
}

#[test]
fn print_config_exits_0_and_prints_toml_that_parses_to_the_defaults() {
    let output = rtmp_edge(&["--print-config"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let config = rtmp_edge::config::Config::from_toml_str(&text).expect("printed config parses");
    assert_eq!(config, rtmp_edge::config::Config::default());
    assert!(text.contains("[workers]\n"), "{text}");
}

#[test]
fn print_config_with_a_file_and_flags_prints_the_effective_values() {
    let dir = TempDir::new("print-effective");
    let path = dir.file("edge.toml", "[workers]\nmax_connections = 100\n");
    let output = rtmp_edge(&[
        "--config",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:19350",
        "--workers",
        "1",
        "--print-config",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let config = rtmp_edge::config::Config::from_toml_str(&stdout(&output)).unwrap();
    assert_eq!(config.workers.max_connections, 100);
    assert_eq!(config.workers.count, 1);
    assert_eq!(
        config.rtmp.listen,
        vec!["127.0.0.1:19350".parse::<std::net::SocketAddr>().unwrap()]
    );
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = TempDir::new("check-good");
    let path = dir.file(
        "good.toml",
        "[rtmp]\nchunk_size = 8192\n[timeouts]\nidle_ms = 5000\n",
    );
    let output = rtmp_edge(&["--check-config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("ok: {}\n", path.display()));
}

#[test]
fn check_config_accepts_what_print_config_printed() {
    let dir = TempDir::new("check-printed");
    let printed = stdout(&rtmp_edge(&["--print-config"]));
    let path = dir.file("printed.toml", &printed);
    let output = rtmp_edge(&["--check-config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn check_config_rejects_an_unknown_key_with_exit_2_naming_it_and_its_line() {
    let dir = TempDir::new("check-unknown");
    let path = dir.file("bad.toml", "[workers]\ncount = 1\nmax_conections = 9\n");
    let output = rtmp_edge(&["--check-config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("`workers.max_conections`"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(stdout(&output).is_empty());
}

#[test]
fn check_config_rejects_a_bad_value_with_exit_2_naming_the_key_and_its_line() {
    let dir = TempDir::new("check-bad-value");
    let path = dir.file("bad.toml", "[rtmp]\n\nchunk_size = 64\n");
    let output = rtmp_edge(&["--check-config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("`rtmp.chunk_size`"), "{err}");
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn check_config_rejects_a_wrong_type_with_exit_2_naming_the_key() {
    let dir = TempDir::new("check-bad-type");
    let path = dir.file("bad.toml", "[timeouts]\nidle_ms = \"soon\"\n");
    let output = rtmp_edge(&["--check-config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("`timeouts.idle_ms`"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_missing_config_file_exits_2_naming_the_file() {
    let dir = TempDir::new("missing");
    let path = dir.0.join("missing.toml");
    let output = rtmp_edge(&["--config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("cannot read config file"), "{err}");
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn a_bad_workers_flag_exits_2_naming_the_flag_and_key() {
    let output = rtmp_edge(&["--workers", "100000", "--print-config"]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("--workers"), "{err}");
    assert!(err.contains("`workers.count`"), "{err}");
}

#[test]
fn more_workers_than_the_server_runs_exit_2_naming_the_key() {
    let output = rtmp_edge(&["--workers", "100", "--print-config"]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let err = stderr(&output);
    assert!(
        err.contains("--workers") && err.contains("`workers.count`"),
        "{err}"
    );

    let dir = TempDir::new("too-many-workers");
    let path = dir.file("many.toml", "[workers]\ncount = 100\n");
    let output = rtmp_edge(&["--check-config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("`workers.count`"),
        "{}",
        stderr(&output)
    );

    let cores = vec!["0"; 65].join(", ");
    let path = dir.file("cores.toml", &format!("[workers]\ncores = [{cores}]\n"));
    let output = rtmp_edge(&["--check-config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let err = stderr(&output);
    assert!(
        err.contains("`workers.cores`") && err.contains("65"),
        "{err}"
    );
}

#[test]
fn a_malformed_listen_flag_exits_2() {
    let output = rtmp_edge(&["--listen", "nowhere", "--print-config"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--listen"), "{}", stderr(&output));
}

#[test]
fn an_unknown_flag_exits_2() {
    let output = rtmp_edge(&["--no-such-flag"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn every_printed_key_is_documented_in_config_md() {
    let printed = stdout(&rtmp_edge(&["--print-config"]));
    let keys = printed_keys(&printed);
    assert!(keys.len() > 20, "found the keys: {keys:?}");
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/CONFIG.md"))
        .expect("docs/CONFIG.md exists");
    for key in keys {
        assert!(
            doc.contains(&format!("`{key}`")),
            "docs/CONFIG.md documents {key}"
        );
    }
}

/// Starts the real binary on an ephemeral loopback port, with `extra` arguments; returns it
/// with the bound port.
fn start_server(
    extra: &[&str],
) -> (
    std::process::Child,
    u16,
    std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rtmp-edge"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--workers",
            "2",
        ])
        .args(extra)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("server starts");
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        // Logs into a pipe are plain text: no colour escapes.
        assert!(
            !line.contains('\u{1b}'),
            "ANSI escapes in piped logs: {line:?}"
        );
        if line.contains("listening for RTMP") {
            let addr = line.split("addr=").nth(1).unwrap();
            let addr: String = addr.chars().take_while(|c| !c.is_whitespace()).collect();
            break addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        }
    };
    (child, port, lines)
}

fn stop_with(signal: &str, extra: &[&str]) {
    use std::io::{Read, Write};
    let (mut child, port, lines) = start_server(extra);
    // A connected client is told goodbye and disconnected, not left hanging.
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(&[3]).unwrap();
    client.write_all(&[0u8; 1536]).unwrap();
    let mut s0s1s2 = [0u8; 3073];
    client.read_exact(&mut s0s1s2).unwrap();
    assert_eq!(s0s1s2[0], 3, "the server answers the handshake");
    let started = std::time::Instant::now();
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
        drop(lines);
    });
    let Ok(exit) = rx.recv_timeout(std::time::Duration::from_secs(10)) else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("server did not stop within 10 s of {signal}");
    };
    let exit = exit.unwrap();
    assert!(exit.success(), "clean exit on {signal}: {exit:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
}

#[test]
fn sigint_stops_the_server_cleanly() {
    stop_with("-INT", &[]);
}

#[test]
fn sigterm_drains_then_stops_the_server_cleanly() {
    // The client never leaves on its own: it is shut down at the end of the drain.
    let dir = TempDir::new("sigterm");
    let config = dir.file("edge.toml", "[timeouts]\ndrain_ms = 500\n");
    stop_with("-TERM", &["--config", config.to_str().unwrap()]);
}

/// `log.format = "json"`: every line is one JSON object, connection lines carry the envelope;
/// `log.repeat_limit`: a flood of one warning (connections over the per-IP cap) is cut to the
/// limit and reported as one "suppressed" line with the count.
#[test]
fn json_logs_are_one_object_per_line_and_a_warning_flood_is_cut_to_the_repeat_limit() {
    use std::io::BufRead;
    let dir = TempDir::new("json-logs");
    let config = dir.file(
        "edge.toml",
        "[log]\nformat = \"json\"\nrepeat_limit = 3\n\n[workers]\nmax_connections_per_ip = 1\n",
    );
    let mut child = Command::new(BIN)
        .args(["--config", config.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--no-http", "--workers", "1"])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("server starts");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait = std::time::Duration::from_secs(10);
    let mut seen: Vec<serde_json::Value> = Vec::new();
    let next = |seen: &mut Vec<serde_json::Value>| {
        let line = rx.recv_timeout(wait).expect("a log line");
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        seen.push(value.clone());
        value
    };
    let port = loop {
        let v = next(&mut seen);
        if v["fields"]["message"] == "listening for RTMP" {
            let addr = v["fields"]["addr"].as_str().unwrap().to_string();
            break addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        }
    };
    // One connection is allowed; the next 30 are refused, each with the same warning.
    let kept = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let refused: Vec<_> = (0..30)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let summary = loop {
        let v = next(&mut seen);
        if v["fields"]["message"] == "repeated log lines suppressed" {
            break v;
        }
    };
    let logged = seen
        .iter()
        .filter(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("max_connections_per_ip"))
        })
        .count();
    assert_eq!(logged, 3, "cut to the limit: {seen:#?}");
    assert_eq!(summary["level"], "WARN");
    assert_eq!(summary["fields"]["suppressed"], 27, "{summary}");
    // A connection's close line carries its envelope.
    drop(kept);
    let closed = loop {
        let v = next(&mut seen);
        if v["fields"]["message"] == "connection closed" {
            break v;
        }
    };
    assert!(closed["span"]["peer"].is_string(), "{closed}");
    assert_eq!(closed["span"]["worker"], 0, "{closed}");
    drop(refused);
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn a_second_server_on_ports_already_served_exits_1_naming_the_address() {
    let (mut first, port, lines) = start_server(&[]);
    let addr = format!("127.0.0.1:{port}");
    let second = rtmp_edge(&[
        "--listen",
        &addr,
        "--http-listen",
        "127.0.0.1:0",
        "--workers",
        "1",
    ]);
    let _ = Command::new("kill")
        .args(["-INT", &first.id().to_string()])
        .status();
    let _ = first.wait();
    drop(lines);
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    let err = stderr(&second);
    assert!(
        err.contains(&addr) && err.contains("already in use"),
        "{err}"
    );
}
