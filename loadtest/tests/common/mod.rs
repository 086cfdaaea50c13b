//! Helpers shared by the load generator's integration tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::Command;

use serde_json::Value;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs rtmp-load with `args` plus `--json -q`, returns the parsed report.
pub fn rtmp_load(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_rtmp-load"))
        .args(args)
        .args(["--json", "-q"])
        .output()
        .expect("running rtmp-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rtmp-load failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"))
}

pub fn u(v: &Value, path: &[&str]) -> u64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

pub fn f(v: &Value, path: &[&str]) -> f64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}
