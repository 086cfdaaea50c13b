//! The `rtmp-edge` binary: command line → [`Config`] → [`rtmp_edge::shard::run`]. Nothing else.
//!
//! Exit codes: 0 clean shutdown (or `--print-config` / `--check-config` success); 1 the server
//! could not run (e.g. a port in use); 2 bad flags or a bad configuration.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use rtmp_edge::config::{self, Config, ConfigError};
use tracing_subscriber::EnvFilter;

/// A per-core RTMP server: ingest, zero-copy fan-out to RTMP, HTTP-FLV, HLS and DASH players.
///
/// Configuration comes from the embedded defaults, then the --config file, then the flags
/// below; docs/CONFIG.md describes every key.
#[derive(Debug, Parser)]
#[command(name = "rtmp-edge", version, about)]
struct Cli {
    /// Read the configuration from this TOML file (default: the embedded defaults).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Print the effective configuration as commented TOML and exit.
    #[arg(long)]
    print_config: bool,

    /// Validate FILE (with any --listen/--workers applied), print "ok: FILE" and exit 0;
    /// or print the error and exit 2.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["config", "print_config"])]
    check_config: Option<PathBuf>,

    /// Listen on ADDR instead of rtmp.listen; repeat for several addresses.
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,

    /// Serve HTTP on ADDR instead of http.listen; repeat for several addresses.
    #[arg(long, value_name = "ADDR")]
    http_listen: Vec<SocketAddr>,

    /// Turn HTTP delivery off (http.enabled = false).
    #[arg(long)]
    no_http: bool,

    /// Run N workers instead of workers.count (0: one per available core; at most 64).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
}

/// Why the process stops with a failure, and so which exit code it returns.
enum Failure {
    /// Bad configuration or environment: exit 2.
    Config(String),
    /// The server could not run: exit 1.
    Run(anyhow::Error),
}

fn main() -> ExitCode {
    // Bad flags: clap prints the usage error and exits with 2.
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(message)) => {
            eprintln!("rtmp-edge: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Run(error)) => {
            eprintln!("rtmp-edge: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let file = cli.check_config.as_deref().or(cli.config.as_deref());
    let config = effective_config(cli, file)?;

    if let Some(path) = &cli.check_config {
        println!("ok: {}", path.display());
        return Ok(());
    }
    if cli.print_config {
        return print(&config.to_commented_toml());
    }

    init_logging(&config)?;
    rtmp_edge::shard::run(config)
        .context("the server stopped with an error")
        .map_err(Failure::Run)
}

/// Defaults, then `file`, then the flags; validated.
fn effective_config(cli: &Cli, file: Option<&Path>) -> Result<Config, Failure> {
    let (mut config, text) = match file {
        None => (Config::default(), None),
        Some(path) => match Config::load(path) {
            Ok((config, text)) => (config, Some(text)),
            Err(e @ ConfigError::Unreadable { .. }) => return Err(Failure::Config(e.to_string())),
            Err(e) => {
                return Err(Failure::Config(format!(
                    "invalid config file {}: {e}",
                    path.display()
                )))
            }
        },
    };

    if !cli.listen.is_empty() {
        config.rtmp.listen = cli.listen.clone();
    }
    if let Some(workers) = cli.workers {
        config.workers.count = workers;
    }
    if !cli.http_listen.is_empty() {
        config.http.listen = cli.http_listen.clone();
    }
    if cli.no_http {
        config.http.enabled = false;
    }

    config.validate().map_err(|error| {
        let key = error.key().unwrap_or_default();
        let from_flag = match key {
            "rtmp.listen" if !cli.listen.is_empty() => Some("--listen"),
            "workers.count" if cli.workers.is_some() => Some("--workers"),
            "http.listen" if !cli.http_listen.is_empty() => Some("--http-listen"),
            _ => None,
        };
        let message = match (from_flag, file, &text) {
            (Some(flag), _, _) => format!("invalid {flag}: {error}"),
            (None, Some(path), Some(text)) => match config::key_position(text, key) {
                Some((line, _)) => {
                    format!(
                        "invalid config file {} (line {line}): {error}",
                        path.display()
                    )
                }
                None => format!("invalid config file {}: {error}", path.display()),
            },
            _ => format!("invalid configuration: {error}"),
        };
        Failure::Config(message)
    })?;
    Ok(config)
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn print(text: &str) -> Result<(), Failure> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Run(
            anyhow::Error::new(error).context("cannot write to stdout"),
        )),
        _ => Ok(()),
    }
}

/// tracing to stderr, filtered by RUST_LOG when set, else by `log.level`.
fn init_logging(config: &Config) -> Result<(), Failure> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => EnvFilter::try_new(&value)
            .map_err(|error| Failure::Config(format!("invalid RUST_LOG {value:?}: {error}")))?,
        _ => EnvFilter::try_new(&config.log.level).map_err(|error| {
            Failure::Config(format!(
                "invalid `log.level` {:?}: {error}",
                config.log.level
            ))
        })?,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(rtmp_edge::logging::EscapedFields)
        // Colour for a person at a terminal; plain text for files, pipes and collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|error| Failure::Run(anyhow::anyhow!("cannot start logging: {error}")))
}
