//! One connection as a worker holds it: socket, session, buffers, role and timers.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use mio::net::TcpStream;

use super::close::CloseReason;
use super::relay::Upstream;
use crate::fanout::{ConnKey, FlvBody, OutputQueue, StreamKey};
use crate::rtmp::session::ServerSession;

/// What a connection does (the hub keeps which stream and how; this is for the worker's
/// timers, buffers and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Handshaking, connecting, or connected without a stream.
    Pending,
    Publisher,
    /// A player; HTTP-FLV viewers have their body kind.
    Player {
        flv: Option<FlvBody>,
    },
}

/// The protocol a connection speaks.
pub enum Proto {
    Rtmp(Box<ServerSession>),
    Http(HttpPhase),
    /// An outbound connection of the edge relay (a pull from an origin, or a push).
    Upstream(Box<Upstream>),
}

/// Where an HTTP connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpPhase {
    /// Waiting for (the rest of) a request head.
    Request,
    /// Streaming a live response until either side closes.
    Streaming,
    /// A blocking playlist request is held until its part arrives; later requests wait.
    Held,
}

/// A connection in a worker's slab.
pub struct Conn {
    /// Unique within its worker (logs always name the worker too).
    pub id: u64,
    /// Its slot and generation: how streams, lists and held requests refer to it.
    pub key: ConnKey,
    pub peer: SocketAddr,
    pub socket: TcpStream,
    /// RTMPS: the TLS session between the socket and `read_buf`/`out` (None: plain).
    pub tls: Option<Box<rustls::Connection>>,
    pub proto: Proto,
    pub read_buf: BytesMut,
    pub out: OutputQueue,
    pub role: Role,
    pub opened: Instant,
    pub last_read: Instant,
    /// A publisher's media clock against the wall clock: the smallest (arrival Unix ms −
    /// timestamp) since the last video keyframe, i.e. the offset of its least delayed
    /// message; dates the GOP cache when HLS packaging starts on demand.
    pub media_offset: Option<MediaOffset>,
    /// What the peer left unfinished, and when it was first seen so: an RTMP message (its
    /// ordinal, from `ServerSession::unfinished_message`; bounded by `timeouts.message_ms`),
    /// or an HTTP request head (the stream offset it starts at; bounded by
    /// `timeouts.handshake_ms`, see [`Conn::note_http_head`]).
    pub unfinished: Option<(u64, Instant)>,
    /// When the socket last took bytes: held media waits at most the write delay from here.
    pub last_write: Instant,
    /// The socket has refused bytes since then without the queue draining.
    pub stalled_since: Option<Instant>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Set when the connection is on its way out: no more reads, flush then close.
    pub closing: Option<CloseReason>,
    /// The last stream this connection published or played (its role is in `role` and,
    /// for logs, in `span`).
    pub last_stream: Option<StreamKey>,
    /// HTTP: `hls` or `dash` once the connection asked for a playlist or manifest.
    pub http_served: Option<&'static str>,
    /// Already on the worker's write list.
    pub write_listed: bool,
    /// On the worker's media list: media queued and held (see `batching`).
    pub media_held: bool,
    /// The socket said WouldBlock: don't write again before a writable event.
    pub write_blocked: bool,
    /// The poller reported the peer's FIN or RST: reads go on to the EOF (no edge will come).
    pub peer_closed: bool,
    /// A publisher of an unwatched stream, read by the clock (see `unwatched`).
    pub polled: bool,
    /// The next read goes on to WouldBlock or the EOF (a polled publisher had an event).
    pub read_to_end: bool,
    /// Media was written to it: from then on media waits for the write budget (`batching`);
    /// the first (a joining player's fast start) is written at once.
    pub media_started: bool,
    /// The log envelope: every line about this connection is logged inside it, so each
    /// carries `peer worker conn` and, once known, `stream role`.
    pub span: tracing::Span,
}

/// See [`Conn::media_offset`].
#[derive(Debug, Clone, Copy)]
pub struct MediaOffset {
    /// Unix ms minus timestamp, the smallest seen since `since`.
    pub ms: i64,
    pub since: Instant,
}

impl MediaOffset {
    /// Folds in a message with `timestamp` that arrived at `wall_ms`; a video keyframe (or
    /// ten seconds) starts a new minimum, so the offset follows clock drift and republishes.
    pub fn observe(
        this: &mut Option<Self>,
        timestamp: u32,
        wall_ms: u64,
        restart: bool,
        now: Instant,
    ) {
        let ms = wall_ms as i64 - i64::from(timestamp);
        match this {
            Some(o) if !restart && now.saturating_duration_since(o.since).as_secs() < 10 => {
                o.ms = o.ms.min(ms);
            }
            _ => *this = Some(MediaOffset { ms, since: now }),
        }
    }
}

impl Conn {
    /// A connection just accepted, speaking `proto`, writing through `out`, logging in `span`.
    // Every argument is a distinct piece of a new connection; a struct of them would only be
    // this function's argument list again.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        key: ConnKey,
        peer: SocketAddr,
        socket: TcpStream,
        proto: Proto,
        out: OutputQueue,
        now: Instant,
        span: tracing::Span,
    ) -> Self {
        Self {
            id,
            key,
            peer,
            socket,
            tls: None,
            proto,
            read_buf: BytesMut::new(),
            out,
            role: Role::Pending,
            opened: now,
            last_read: now,
            last_write: now,
            media_offset: None,
            unfinished: None,
            stalled_since: None,
            bytes_in: 0,
            bytes_out: 0,
            closing: None,
            last_stream: None,
            http_served: None,
            write_listed: false,
            media_held: false,
            write_blocked: false,
            peer_closed: false,
            polled: false,
            read_to_end: false,
            media_started: false,
            span,
        }
    }

    /// The RTMP session, for RTMP connections.
    pub fn rtmp(&mut self) -> Option<&mut ServerSession> {
        match &mut self.proto {
            Proto::Rtmp(session) => Some(session),
            Proto::Http(_) | Proto::Upstream(_) => None,
        }
    }

    /// Past the handshake (RTMP) or the request head (HTTP: streaming, or held for a blocking
    /// playlist reload).
    pub fn is_established(&self) -> bool {
        match &self.proto {
            Proto::Rtmp(session) => session.is_established(),
            Proto::Http(phase) => *phase != HttpPhase::Request,
            // Its pull or push bounds its setup (`relay.origin_timeout_ms`).
            Proto::Upstream(_) => true,
        }
    }

    /// After an HTTP read: notes when the request head waiting in `read_buf` began (the
    /// stream offset it starts at stays the same until a request is parsed off it).
    pub fn note_http_head(&mut self, now: Instant) {
        self.unfinished = match self.head_offset() {
            None => None,
            Some(offset) => match self.unfinished {
                Some((same, since)) if same == offset => Some((same, since)),
                _ => Some((offset, now)),
            },
        };
    }

    /// When the HTTP request head now in `read_buf` began arriving, if one is partly here
    /// and was noted by [`note_http_head`](Self::note_http_head).
    pub fn http_head_since(&self) -> Option<Instant> {
        let offset = self.head_offset()?;
        self.unfinished
            .and_then(|(at, since)| (at == offset).then_some(since))
    }

    /// The stream offset of the partial request head in `read_buf` (HTTP, between requests).
    fn head_offset(&self) -> Option<u64> {
        let waiting = matches!(self.proto, Proto::Http(HttpPhase::Request));
        (waiting && !self.read_buf.is_empty()).then(|| self.bytes_in - self.read_buf.len() as u64)
    }

    /// Puts the connection on `write_list` if it has output (queued, or TLS records of its
    /// own: a handshake message, an alert) and the socket can take it.
    pub fn schedule_write(&mut self, write_list: &mut impl Extend<ConnKey>) {
        let output = !self.out.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write());
        if !self.write_listed && !self.write_blocked && output {
            self.write_listed = true;
            write_list.extend([self.key]);
        }
    }

    /// Lists the connection on the worker's media list, unless it is already there or on the
    /// write list (which sends its media too).
    pub fn schedule_media(&mut self, media_list: &mut Vec<ConnKey>) {
        if !self.write_listed && !self.media_held && !self.write_blocked && !self.out.is_empty() {
            self.media_held = true;
            media_list.push(self.key);
        }
    }

    /// Its `(proto, role)` labels in metrics and the API.
    pub fn labels(&self) -> (&'static str, &'static str) {
        crate::admin::metrics::OPEN_LABELS[self.label_index()]
    }

    /// The index of its labels in [`crate::admin::metrics::OPEN_LABELS`].
    pub fn label_index(&self) -> usize {
        let role = |role| match role {
            Role::Pending => 0,
            Role::Publisher => 1,
            Role::Player { .. } => 2,
        };
        match (&self.proto, self.role) {
            (Proto::Rtmp(_), r) if self.tls.is_none() => role(r),
            (Proto::Rtmp(_), r) => 3 + role(r),
            (Proto::Http(_), Role::Player { flv: Some(_) }) => 6,
            (Proto::Http(_), _) => match self.http_served {
                Some("hls") => 7,
                Some(_) => 8,
                None => 9,
            },
            (Proto::Upstream(up), _) => match up.job {
                super::relay::Job::Pull => 10,
                super::relay::Job::Push { .. } => 11,
            },
        }
    }

    /// Takes a role in stream `key`, recording both in the log envelope.
    pub fn set_role(&mut self, role: Role, key: StreamKey) {
        let name = match role {
            Role::Publisher => "publisher",
            Role::Player { flv: Some(_) } => "http-flv",
            Role::Player { flv: None } => "player",
            Role::Pending => "pending",
        };
        self.span.record("stream", tracing::field::display(&key));
        // An upstream connection keeps the role it was opened with (pull, push).
        if !matches!(self.proto, Proto::Upstream(_)) {
            self.span.record("role", name);
        }
        self.last_stream = Some(key);
        self.role = role;
    }

    /// Moves the RTMP session's pending bytes into the output queue.
    pub fn pump_session(&mut self) {
        match &mut self.proto {
            Proto::Rtmp(session) => {
                while let Some(bytes) = session.poll_transmit() {
                    self.out.push_control(bytes);
                }
            }
            Proto::Upstream(up) => {
                while let Some(bytes) = up.session.poll_transmit() {
                    self.out.push_control(bytes);
                }
            }
            Proto::Http(_) => {}
        }
    }

    /// A publisher, or an upstream connection pulling from an origin: it reads media all the
    /// time, so it reads straight into the worker's media buffer and decodes from there
    /// (`net::read_direct`, `Worker::read`), keeping only an unfinished chunk in `read_buf`.
    pub fn reads_media(&self) -> bool {
        match &self.proto {
            Proto::Upstream(up) => matches!(up.job, super::relay::Job::Pull),
            Proto::Rtmp(_) => self.role == Role::Publisher,
            Proto::Http(_) => false,
        }
    }

    /// Whether the peer waits on answers to get going: an RTMP connection that neither
    /// publishes nor plays yet (handshake, `connect`, `createStream`, `play`), or an HTTP
    /// connection before its first answer (a viewer's first playlist or manifest; the
    /// requests of a keep-alive connection after it, an HLS player's polling, are not).
    /// Relay connections to origins are not counted.
    pub fn sets_up(&self) -> bool {
        match self.proto {
            Proto::Rtmp(_) => self.role == Role::Pending,
            Proto::Http(_) => self.role == Role::Pending && self.bytes_out == 0,
            Proto::Upstream(_) => false,
        }
    }

    /// The stream this connection publishes now, if it is a publisher.
    pub fn published(&self) -> Option<StreamKey> {
        match self.role {
            Role::Publisher => self.last_stream.clone(),
            _ => None,
        }
    }
}
