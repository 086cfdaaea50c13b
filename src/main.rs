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
use rtmp_edge::config::{Config, ConfigSource};
use tracing_subscriber::EnvFilter;

/// A per-core RTMP server: ingest, zero-copy fan-out to RTMP, HTTP-FLV, HLS and DASH players.
///
/// Configuration comes from the embedded defaults, then the --config file, then the flags
/// below; docs/CONFIG.md describes every key.
#[derive(Debug, Parser)]
#[command(name = "rtmp-edge", version, about)]
struct Cli {
    /// Read the configuration from this TOML file (default: the embedded defaults).
    #[arg(long, value_name = "FILE", global = true)]
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

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print a signed URL for `[auth]` (secret from `[auth.keys]` of --config) and exit.
    Sign(SignArgs),
}

/// `rtmp-edge sign --role play --app live --stream cam --ttl 3600 [--kid k] --config FILE`
#[derive(Debug, clap::Args)]
struct SignArgs {
    /// What the URL allows: `publish` or `play`.
    #[arg(long, value_parser = ["publish", "play"])]
    role: String,
    /// The app (without a query string).
    #[arg(long)]
    app: String,
    /// The stream name (without a query string).
    #[arg(long)]
    stream: String,
    /// Seconds from now until the URL expires.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// Sign with this key of `[auth.keys]` (and name it in the URL); default: `default`.
    #[arg(long)]
    kid: Option<String>,
    /// What goes before `/{app}/{stream}`, e.g. `rtmp://edge.example` or
    /// `http://edge.example:8080` (HTTP bases get app and stream percent-encoded).
    #[arg(long, default_value = "rtmp://127.0.0.1:1935")]
    base: String,
    /// Appended to the stream in the URL, e.g. `.flv`, `.m3u8` or `.mpd`.
    #[arg(long, default_value = "")]
    suffix: String,
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
    let source = ConfigSource {
        file: cli
            .check_config
            .as_deref()
            .or(cli.config.as_deref())
            .map(Path::to_path_buf),
        listen: cli.listen.clone(),
        http_listen: cli.http_listen.clone(),
        no_http: cli.no_http,
        workers: cli.workers,
    };
    let config = source.load().map_err(Failure::Config)?;

    if let Some(Command::Sign(args)) = &cli.command {
        return print(&sign(&config, args)?);
    }
    if let Some(path) = &cli.check_config {
        println!("ok: {}", path.display());
        return Ok(());
    }
    if cli.print_config {
        return print(&config.to_commented_toml());
    }

    let set_log_level = init_logging(&config)?;
    rtmp_edge::shard::run(config, source, set_log_level)
        .context("the server stopped with an error")
        .map_err(Failure::Run)
}

/// A signed URL (and a newline) for `rtmp-edge sign`.
fn sign(config: &Config, args: &SignArgs) -> Result<String, Failure> {
    use rtmp_edge::auth::{sign, Role};
    let role = if args.role == "publish" {
        Role::Publish
    } else {
        Role::Play
    };
    let kid = args.kid.as_deref();
    let kid_name = kid.unwrap_or(sign::DEFAULT_KID);
    let secret = config.auth.keys.get(kid_name).ok_or_else(|| {
        Failure::Config(format!(
            "no key {kid_name:?} in `auth.keys` (give --config FILE with an [auth.keys] table)"
        ))
    })?;
    let exp = rtmp_edge::auth::unix_now().saturating_add(args.ttl);
    let query = sign::signed_query(secret.as_bytes(), kid, role, &args.app, &args.stream, exp);
    let (app, stream) = if args.base.starts_with("http") {
        (
            rtmp_edge::http::encode_segment(&args.app),
            rtmp_edge::http::encode_segment(&args.stream),
        )
    } else {
        (args.app.clone(), args.stream.clone())
    };
    let base = args.base.trim_end_matches('/');
    Ok(format!("{base}/{app}/{stream}{}?{query}\n", args.suffix))
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

/// Applies a new `log.level` to the running subscriber (SIGHUP).
type SetLogLevel = Box<dyn Fn(&str) -> Result<(), String> + Send>;

/// tracing to stderr, filtered by RUST_LOG when set, else by `log.level`. Returns how to
/// change that level later (a reload); with RUST_LOG set, RUST_LOG keeps deciding.
fn init_logging(config: &Config) -> Result<SetLogLevel, Failure> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let from_env = matches!(std::env::var("RUST_LOG"), Ok(value) if !value.trim().is_empty());
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if from_env => EnvFilter::try_new(&value)
            .map_err(|error| Failure::Config(format!("invalid RUST_LOG {value:?}: {error}")))?,
        _ => EnvFilter::try_new(&config.log.level).map_err(|error| {
            Failure::Config(format!(
                "invalid `log.level` {:?}: {error}",
                config.log.level
            ))
        })?,
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let output = match config.log.format.as_str() {
        // One JSON object per line; the connection envelope's fields under "span".
        "json" => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        _ => tracing_subscriber::fmt::layer()
            .fmt_fields(rtmp_edge::logging::EscapedFields)
            // Colour for a person at a terminal; plain text for files, pipes and collectors.
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let limit = rtmp_edge::logging::RepeatLimit::new(config.log.repeat_limit);
    rtmp_edge::logging::install(limit.clone());
    tracing_subscriber::registry()
        .with(filter)
        .with(output.with_filter(rtmp_edge::logging::RepeatFilter(limit)))
        .try_init()
        .map_err(|error| Failure::Run(anyhow::anyhow!("cannot start logging: {error}")))?;
    Ok(Box::new(move |level: &str| {
        if from_env {
            return Ok(());
        }
        let filter = EnvFilter::try_new(level).map_err(|error| error.to_string())?;
        handle.reload(filter).map_err(|error| error.to_string())
    }))
}
