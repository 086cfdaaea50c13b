//! The per-core runtime: one worker thread per core, each with its own mio Poll,
//! SO_REUSEPORT listeners and preallocated slab of connections (`Conns`, addressed by
//! `ConnKey`); workers meet only on the bus (bounded mailboxes + mio::Waker) and in the stream
//! directory (publish/unpublish only).
//!
//! A worker owns the IO and drives two owners that touch no socket: the sans-IO
//! [`Hub`](crate::fanout::Hub) (its `Door` and `Action`s are applied in `door.rs`) and the
//! HLS/DASH `Packaging` (`hls/`, its actions applied in `http.rs`).

mod admin;
mod auth;
mod batching;
mod bus;
mod close;
mod conn;
mod conns;
mod door;
mod drain;
mod hls;
mod http;
mod memory;
mod rate;
mod relay;
mod reload;
mod unwatched;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::{Poll, Waker};

pub use bus::{Bus, BusMsg};
pub use close::{CloseReason, IoFailure, RelayEnd};
pub use reload::restart_needed;

use crate::config::{Config, ConfigSource, IoBackend, MAX_WORKERS};
use crate::fanout::StreamKey;
use crate::record::Recording;
use worker::{Listener, Worker, WAKER_TOKEN};

/// A connection a worker closed, as [`Hooks::on_close`] sees it.
#[derive(Debug, Clone)]
pub struct Closed {
    pub worker: usize,
    /// The connection's id within its worker (the `conn` of its log lines).
    pub conn: u64,
    pub peer: SocketAddr,
    /// The stream it last published or played.
    pub stream: Option<StreamKey>,
    pub reason: CloseReason,
}

/// A callback told of every closed connection.
pub type OnClose = Arc<dyn Fn(&Closed) + Send + Sync>;

/// What an embedder observes of a running server: the test harness today, the admin API's
/// counters later.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Called on the worker's thread for every connection it closes.
    pub on_close: Option<OnClose>,
    /// Where the worker threads log (default: the global subscriber). Lets each in-process
    /// test server keep its own log.
    pub dispatch: Option<tracing::Dispatch>,
}

/// A running server: its bound addresses, and a way to stop it.
pub struct Server {
    /// Writes HLS files when `http.hls_dir` is set; ends after the workers (its last senders).
    disk_writer: Option<JoinHandle<()>>,
    /// Writes recordings (`[record]`); ends after the workers (its last senders), closing the
    /// files still open.
    record_writer: JoinHandle<()>,
    /// The admin listener (metrics, API), on its own thread, when `admin.listen` is set.
    admin: Option<crate::admin::AdminServer>,
    /// The admin API's way to the workers.
    control: Arc<admin::ShardControl>,
    addrs: Vec<SocketAddr>,
    rtmps_addrs: Vec<SocketAddr>,
    http_addrs: Vec<SocketAddr>,
    bus: Arc<Bus>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    /// The webhook pool (stopped after the workers) and HLS/DASH viewers' allowances.
    auth: Arc<auth::AuthShared>,
    /// The cluster's stream directory thread (`cluster.directory = "redis"`); it releases
    /// this server's leases and ends after the workers.
    cluster: Option<crate::cluster::Directory>,
}

impl Server {
    /// Binds every listener (a port of 0 is picked once and shared by all workers), then
    /// starts one pinned worker thread per configured core.
    pub fn start(config: Config) -> io::Result<Self> {
        Self::start_with(config, Hooks::default())
    }

    /// [`start`](Self::start), with `hooks` observing the workers.
    pub fn start_with(config: Config, hooks: Hooks) -> io::Result<Self> {
        let cores = config.worker_cores();
        let workers = cores.len().max(1);
        if workers > MAX_WORKERS {
            // `Config::validate` refuses such a config; one that skipped it must not run with
            // fewer workers than it asked for in silence (the bus addresses workers as u64 bits).
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{workers} workers configured (`workers.count`/`workers.cores`): at most {MAX_WORKERS}"),
            ));
        }
        // `[auth]` that does not compile must not run as "allow everyone".
        if let Err((key, value, reason)) = crate::auth::Policy::new(&config.auth) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{key}` entry {value:?} is not usable: {reason}"),
            ));
        }
        let rtmp = crate::net::bind_all(&config.rtmp.listen, workers)?;
        // RTMPS: the certificate is loaded once (a config that skipped validation fails here,
        // naming the file); each worker binds the same SO_REUSEPORT listeners as for RTMP.
        let (tls_server, rtmps) = if config.rtmps.listen.is_empty() {
            (None, None)
        } else {
            let tls = crate::net::tls::server_config(&config.rtmps.cert, &config.rtmps.key)
                .map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("[rtmps]: {e}"))
                })?;
            (
                Some(tls),
                Some(crate::net::bind_all(&config.rtmps.listen, workers)?),
            )
        };
        let rtmps_addrs: Vec<SocketAddr> = rtmps
            .as_ref()
            .map(|l| l[0].iter().filter_map(|l| l.local_addr().ok()).collect())
            .unwrap_or_default();
        let http = if config.http.enabled {
            Some(crate::net::bind_all(&config.http.listen, workers)?)
        } else {
            None
        };
        let http_addrs: Vec<SocketAddr> = http
            .as_ref()
            .map(|h| h[0].iter().filter_map(|l| l.local_addr().ok()).collect())
            .unwrap_or_default();
        let addrs: Vec<SocketAddr> = rtmp[0].iter().filter_map(|l| l.local_addr().ok()).collect();
        let mut polls = Vec::with_capacity(workers);
        let mut wakers = Vec::with_capacity(workers);
        for _ in 0..workers {
            let poll = Poll::new()?;
            wakers.push(Waker::new(poll.registry(), WAKER_TOKEN)?);
            polls.push(poll);
        }
        let bus = Arc::new(Bus::new(wakers));
        let directory = Arc::new(crate::fanout::Directory::default());
        let mut disk_writer = None;
        let disk = if config.http.enabled && config.http.hls && !config.http.hls_dir.is_empty() {
            let dir = std::path::PathBuf::from(&config.http.hls_dir);
            let spawn = || hls::spawn_disk_writer(&dir);
            let (sender, handle) = match &hooks.dispatch {
                Some(dispatch) => tracing::dispatcher::with_default(dispatch, spawn),
                None => spawn(),
            }?;
            disk_writer = Some(handle);
            Some((dir, sender))
        } else {
            None
        };
        let hls = Arc::new(hls::HlsShelf::new(disk));
        // Always running (idle unless `record.dir` is set), so settings swapped in later can
        // turn recording on.
        let (record, record_writer) = match &hooks.dispatch {
            Some(dispatch) => {
                tracing::dispatcher::with_default(dispatch, crate::record::spawn_writer)
            }
            None => crate::record::spawn_writer(),
        }?;
        let auth = {
            let bus = bus.clone();
            let deliver: crate::auth::webhook::Deliver = Box::new(move |waiter, answer| {
                bus.send(
                    waiter.worker,
                    BusMsg::Auth {
                        conn: waiter.conn,
                        answer,
                    },
                );
            });
            let pool = crate::auth::webhook::Webhooks::start(
                config.auth.webhook_threads,
                deliver,
                hooks.dispatch.clone(),
            )?;
            Arc::new(auth::AuthShared {
                hooks: pool,
                viewers: crate::auth::Viewers::default(),
            })
        };
        let io = settle_io(&config, hooks.dispatch.as_ref())?;
        let stats = crate::admin::metrics::registry(workers);
        let cluster = {
            let bus = bus.clone();
            let deliver: crate::cluster::Deliver = Box::new(move |worker, note| {
                bus.send(worker, BusMsg::Cluster(note));
            });
            crate::cluster::Directory::start(
                &config,
                stats.clone(),
                deliver,
                hooks.dispatch.clone(),
            )?
        };
        let config = Arc::new(config);
        let mut threads = Vec::with_capacity(workers);
        let mut http = http.map(|h| h.into_iter());
        let mut rtmps = rtmps.map(|l| l.into_iter());
        for (index, (poll, rtmp_listeners)) in polls.into_iter().zip(rtmp).enumerate() {
            let mut worker_listeners: Vec<_> = rtmp_listeners
                .into_iter()
                .map(|l| (l, Listener::Rtmp))
                .collect();
            if let Some(rtmps) = rtmps.as_mut().and_then(Iterator::next) {
                worker_listeners.extend(rtmps.into_iter().map(|l| (l, Listener::Rtmps)));
            }
            if let Some(http) = http.as_mut().and_then(Iterator::next) {
                worker_listeners.extend(http.into_iter().map(|l| (l, Listener::Http)));
            }
            let core = cores.get(index).copied().flatten();
            let mut worker = Worker::new(
                index,
                poll,
                worker_listeners,
                bus.clone(),
                directory.clone(),
                hls.clone(),
                config.clone(),
            )?;
            worker.on_close = hooks.on_close.clone();
            worker.io = io;
            worker.stats = stats[index].clone();
            worker.gate.set_shared(auth.clone());
            worker.tls_server = tls_server.clone();
            worker.recording = Recording::new(index, (&config.record).into(), record.clone());
            if let Some(cluster) = &cluster {
                worker
                    .relay
                    .join_cluster(cluster.sender(), cluster.registers, cluster.nodes());
            }
            let dispatch = hooks.dispatch.clone();
            let thread = std::thread::Builder::new()
                .name(format!("worker-{index}"))
                .spawn(move || {
                    if let Some(core) = core {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                            tracing::warn!(worker = index, core, "cannot pin worker to core");
                        }
                    }
                    match dispatch {
                        Some(dispatch) => {
                            tracing::dispatcher::with_default(&dispatch, || worker.run())
                        }
                        None => worker.run(),
                    }
                })?;
            threads.push(thread);
        }
        for addr in &addrs {
            tracing::info!(%addr, workers, "listening for RTMP");
        }
        for addr in &rtmps_addrs {
            tracing::info!(%addr, workers, "listening for RTMPS");
        }
        for addr in &http_addrs {
            tracing::info!(%addr, workers, "listening for HTTP");
        }
        drop(hls);
        drop(record);
        let control = Arc::new(admin::ShardControl::new(bus.clone()));
        let admin = match config.admin.listen.parse::<SocketAddr>() {
            Err(_) => None, // empty: off (validated otherwise)
            Ok(addr) => {
                let options = crate::admin::Options {
                    token: config.admin.token.clone(),
                    stream_metrics: if config.admin.stream_metrics {
                        config.admin.stream_metrics_max
                    } else {
                        0
                    },
                    directory: cluster.as_ref().map(crate::cluster::Directory::stats),
                };
                let control: Arc<dyn crate::admin::api::Control> = control.clone();
                let start =
                    || crate::admin::AdminServer::start(addr, stats.clone(), control, options);
                let started = match &hooks.dispatch {
                    Some(dispatch) => tracing::dispatcher::with_default(dispatch, start),
                    None => start(),
                };
                match started {
                    Ok(admin) => Some(admin),
                    Err(error) => {
                        // Media first: the server runs without its admin listener.
                        tracing::error!(%addr, %error, "admin listener not started");
                        None
                    }
                }
            }
        };
        Ok(Self {
            disk_writer,
            record_writer,
            admin,
            control,
            addrs,
            rtmps_addrs,
            http_addrs,
            bus,
            threads,
            auth,
            cluster,
        })
    }

    /// The RTMP addresses actually bound (ports resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The RTMPS addresses actually bound (empty when `[rtmps]` is off).
    pub fn rtmps_addrs(&self) -> &[SocketAddr] {
        &self.rtmps_addrs
    }

    /// The HTTP addresses actually bound (empty when HTTP is off).
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http_addrs
    }

    /// Asks every worker to stop accepting, tell players the stream ended, flush and exit.
    /// During a drain it ends the drain at once.
    pub fn shutdown(&self) {
        self.bus.shutdown();
    }

    /// Asks every worker to drain (what SIGTERM does): stop accepting RTMP, answer `/healthz`
    /// with 503, ask reconnect-capable clients to reconnect (to `drain.redirect_url` when
    /// set), serve everyone until they leave, and shut down what is left at
    /// `timeouts.drain_ms`. The workers end when their clients have all left.
    pub fn drain(&self) {
        self.bus.begin_drain();
    }

    /// Hands every worker a new configuration (what SIGHUP does, after validating the file):
    /// what is live applies at once, keys that need a restart are named in one warning.
    /// `config` must be validated ([`Config::validate`]); `log.level` is the caller's.
    pub fn reload(&self, config: Config) {
        reload(&self.bus, config);
    }

    /// The admin listener's address, when it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(crate::admin::AdminServer::addr)
    }

    /// Waits for every worker to finish.
    pub fn join(self) -> io::Result<()> {
        let mut result = Ok(());
        for thread in self.threads {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(io::Error::other("worker thread panicked")),
            }
        }
        // The admin listener serves until the workers are gone (a drain is watched through it).
        if let Some(admin) = self.admin {
            admin.stop();
        }
        // No worker asks any more: the pool threads end within their calls' timeouts.
        self.auth.hooks.stop();
        if let Some(mut cluster) = self.cluster {
            cluster.stop();
        }
        if let Some(writer) = self.disk_writer {
            if writer.join().is_err() {
                result = Err(io::Error::other("HLS disk writer panicked"));
            }
        }
        if self.record_writer.join().is_err() {
            result = Err(io::Error::other("record writer panicked"));
        }
        result
    }
}

/// The I/O backend the workers use: `workers.io`, or the `RTMP_EDGE_IO` environment variable
/// when set; io_uring only if this process can have a ring (checked once here, told in one
/// log line when it cannot: the workers then use epoll).
fn settle_io(config: &Config, dispatch: Option<&tracing::Dispatch>) -> io::Result<IoBackend> {
    let asked = match std::env::var(IoBackend::ENV) {
        Ok(name) => IoBackend::from_name(&name).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}={name:?}: must be \"epoll\" or \"io_uring\"",
                    IoBackend::ENV
                ),
            )
        })?,
        Err(_) => config.workers.io,
    };
    if asked == IoBackend::Epoll {
        return Ok(asked);
    }
    let log = |backend: IoBackend, error: Option<io::Error>| match error {
        None => tracing::info!(io = backend.as_str(), "workers write with io_uring"),
        Some(e) => tracing::warn!(error = %e, "io_uring unavailable: the workers use epoll"),
    };
    // On a thread of its own: a ring's teardown queues work to the thread that made it,
    // which interrupts that thread's timed socket waits (EINTR); the caller's thread (an
    // embedder's, a test's) should see nothing of it.
    let probe = std::thread::spawn(|| crate::net::SendRing::new().map(drop)).join();
    let (backend, error) = match probe {
        Ok(Ok(())) => (IoBackend::IoUring, None),
        Ok(Err(e)) => (IoBackend::Epoll, Some(e)),
        Err(_) => (
            IoBackend::Epoll,
            Some(io::Error::other("the io_uring probe panicked")),
        ),
    };
    match dispatch {
        Some(dispatch) => tracing::dispatcher::with_default(dispatch, || log(backend, error)),
        None => log(backend, error),
    }
    Ok(backend)
}

/// Sends every worker `config` to apply. The RTMPS certificate and key are read again even
/// when their paths did not change (a certificate renewed in place), once for all workers.
fn reload(bus: &Bus, config: Config) {
    let rtmps = &config.rtmps;
    let tls_server = if rtmps.listen.is_empty() {
        None
    } else {
        Some(crate::net::tls::server_config(&rtmps.cert, &rtmps.key).map_err(|e| e.to_string()))
    };
    let config = Arc::new(config);
    bus.broadcast(|| BusMsg::Reconfigure(config.clone(), tls_server.clone()));
}

/// Starts the workers and serves until they end, driven by signals:
/// - SIGTERM: drain ([`Server::drain`]); a second SIGTERM, or SIGINT, shuts down at once
///   ([`Server::shutdown`], players told, flushed within `timeouts.shutdown_ms`);
/// - SIGHUP: reload: `source` is loaded and validated again exactly as at startup; an invalid
///   one is logged and the running configuration kept; a valid one goes to every worker
///   ([`Server::reload`]) and its `log.level` to `set_log_level`.
///
/// Returns an error if a listener cannot be bound or a worker fails.
pub fn run(
    config: Config,
    source: ConfigSource,
    set_log_level: impl Fn(&str) -> Result<(), String>,
) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let server = Server::start(config)?;
    // SIGHUP is handled from here on: the admin API's reload may raise it.
    server
        .control
        .signals
        .store(true, std::sync::atomic::Ordering::Release);
    let bus = server.bus.clone();
    // The signal loop ends when the workers do (a drain that emptied them, or a shutdown).
    let handle = signals.handle();
    let joiner = std::thread::Builder::new()
        .name("join".into())
        .spawn(move || {
            let result = server.join();
            handle.close();
            result
        })?;
    let mut draining = false;
    for signal in signals.forever() {
        match signal {
            SIGHUP => match source.load() {
                Ok(config) => {
                    if let Err(error) = set_log_level(&config.log.level) {
                        tracing::error!(%error, "cannot apply log.level");
                    }
                    tracing::info!("SIGHUP: configuration file valid, reloading");
                    reload(&bus, config);
                }
                Err(error) => {
                    tracing::error!(%error, "reload refused: keeping the running configuration")
                }
            },
            SIGTERM if !draining => {
                tracing::info!(
                    signal,
                    "SIGTERM: draining (SIGTERM again or SIGINT: stop now)"
                );
                draining = true;
                bus.begin_drain();
            }
            _ => {
                tracing::info!(signal, "signal received: shutting down");
                bus.shutdown();
            }
        }
    }
    joiner
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("join thread panicked")))
}
