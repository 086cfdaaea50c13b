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
