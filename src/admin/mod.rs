//! The admin listener: operators' HTTP endpoint beside the media listeners, on its own thread
//! (it never runs on a worker). It serves `/metrics` (Prometheus text exposition of the
//! workers' counters, [`metrics`]) and the JSON control API ([`api`]): `GET /api/v1/streams`,
//! `GET /api/v1/streams/{app}/{stream}`, `GET /api/v1/clients?stream=`, `DELETE
//! /api/v1/clients/{id}`, `POST /api/v1/drain`, `POST /api/v1/reload`; and at `/` a live
//! status page (`status.html`, shipped in the binary) polling them. The workers answer
//! over their mailboxes ([`api::Control`]); a scrape or a query never stops them.
//!
//! `[admin] listen` (default `127.0.0.1:9090`, so it is not public; empty: off). A listener
//! that cannot be bound is logged as an error and the server runs without it: media first.

pub mod api;
pub mod metrics;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

pub use metrics::{Registry, WorkerStats};

const LISTENER: Token = Token(0);
const STOP: Token = Token(1);
/// A request must arrive (and its answer leave) within this.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// How the admin listener answers.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Requests need `Authorization: Bearer TOKEN` when set.
    pub token: String,
    /// Per-stream series for at most this many streams (most players first); 0: none.
    pub stream_metrics: usize,
    /// The cluster directory's counters, when it runs.
    pub directory: Option<Arc<crate::cluster::DirectoryStats>>,
}

/// A running admin listener.
pub struct AdminServer {
    addr: SocketAddr,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Binds `addr` and serves `registry` from a thread.
    pub fn start(
        addr: SocketAddr,
        registry: Registry,
        control: Arc<dyn api::Control>,
        options: Options,
    ) -> io::Result<Self> {
        let mut listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), STOP)?);
        let thread = std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || serve(poll, listener, &registry, &*control, &options))?;
        tracing::info!(%addr, "listening for admin requests (/metrics, /api/v1)");
        Ok(Self {
            addr,
            waker,
            thread: Some(thread),
        })
    }

    /// The address bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        let _ = self.waker.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    mut poll: Poll,
    listener: TcpListener,
    registry: &Registry,
    control: &dyn api::Control,
    options: &Options,
) {
    let mut events = Events::with_capacity(16);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(error = %e, "admin listener stopped");
            return;
        }
        for event in events.iter() {
            if event.token() == STOP {
                return;
            }
        }
        loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    if let Err(e) = answer(stream, registry, control, options) {
                        tracing::debug!(%peer, error = %e, "admin request failed");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    break;
                }
            }
        }
    }
}

/// Reads one request and answers it (then closes: scrapers reconnect, cheaply, on loopback).
fn answer(
    stream: mio::net::TcpStream,
    registry: &Registry,
    control: &dyn api::Control,
    options: &Options,
) -> io::Result<()> {
    let token = options.token.as_str();
    let mut stream = std::net::TcpStream::from(stream);
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let (method, path, authorised) = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                let authorised = token.is_empty()
                    || request.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("authorization")
                            && h.value == format!("Bearer {token}").as_bytes()
                    });
                break (
                    request.method.unwrap_or("").to_owned(),
                    request.path.unwrap_or("").to_owned(),
                    authorised,
                );
            }
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => {}
            _ => return respond(&mut stream, 400, "text/plain", b"bad request\n"),
        }
    };
    let (path, query) = path.split_once('?').unwrap_or((&path, ""));
    // The status page holds no data (its script asks the API, with `?token=` as bearer).
    if !authorised && path != "/" {
        return respond(&mut stream, 401, "text/plain", b"unauthorised\n");
    }
    let wait = Duration::from_secs(1);
    let json = |value: &dyn erased::Json| value.to_json();
    match (method.as_str(), path) {
        ("GET", "/") => respond(&mut stream, 200, "text/html; charset=utf-8", STATUS_PAGE),
        ("GET", "/metrics") => {
            let mut body = metrics::render(registry);
            if let Some(directory) = &options.directory {
                metrics::render_directory(&mut body, directory);
            }
            if options.stream_metrics > 0 {
                let streams = api::streams(&control.snapshot(Duration::from_secs(1)));
                metrics::render_streams(&mut body, streams, options.stream_metrics);
            }
            respond(
                &mut stream,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
            )
        }
        ("GET", "/api/v1/streams") => {
            let all = api::streams(&control.snapshot(wait));
            respond(&mut stream, 200, JSON, json(&all).as_bytes())
        }
        ("GET", p) if p.starts_with("/api/v1/streams/") => {
            let key = crate::http::decode_path(&p["/api/v1/streams/".len()..]).ok();
            let all = api::streams(&control.snapshot(wait));
            match all
                .iter()
                .find(|s| key.as_deref() == Some(&format!("{}/{}", s.app, s.stream)))
            {
                Some(found) => respond(&mut stream, 200, JSON, json(found).as_bytes()),
                None => respond(&mut stream, 404, JSON, b"{\"error\":\"no such stream\"}"),
            }
        }
        ("GET", "/api/v1/clients") => {
            let wanted = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("stream="))
                .and_then(|s| crate::http::decode_path(s).ok());
            let clients: Vec<api::ClientInfo> = control
                .snapshot(wait)
                .into_iter()
                .flat_map(|s| s.clients)
                .filter(|c| wanted.is_none() || c.stream == wanted)
                .collect();
            respond(&mut stream, 200, JSON, json(&clients).as_bytes())
        }
        ("DELETE", p) if p.starts_with("/api/v1/clients/") => {
            match control.kick(&p["/api/v1/clients/".len()..], wait) {
                api::Kicked::Closed => respond(&mut stream, 200, JSON, b"{\"kicked\":true}"),
                api::Kicked::NotFound => {
                    respond(&mut stream, 404, JSON, b"{\"error\":\"no such client\"}")
                }
            }
        }
        ("POST", "/api/v1/drain") => {
            control.drain();
            respond(&mut stream, 202, JSON, b"{\"draining\":true}")
        }
        ("POST", "/api/v1/reload") => match control.reload() {
            Ok(()) => respond(&mut stream, 202, JSON, b"{\"reloading\":true}"),
            Err(why) => respond(
                &mut stream,
                501,
                JSON,
                json(&serde_json::json!({ "error": why })).as_bytes(),
            ),
        },
        _ => respond(&mut stream, 404, "text/plain", b"not found\n"),
    }
}

const JSON: &str = "application/json";

/// The live status page: plain HTML and a small script polling the API (in the binary; no
/// build step, no CDN).
const STATUS_PAGE: &[u8] = include_bytes!("status.html");

/// Serialises any API value (one place for the error-free JSON rendering).
mod erased {
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).unwrap_or_else(|_| "null".into())
        }
    }
}

fn respond(
    stream: &mut std::net::TcpStream,
    status: u16,
    kind: &str,
    body: &[u8],
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        501 => "Not Implemented",
        _ => "Not Found",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)
}
