//! Why a connection was closed: one variant per rule, rendered as the close line's `reason`.

use std::fmt;
use std::io;

use crate::fanout::{Close, IngestError};
use crate::http::{HttpError, PathError};
use crate::rtmp::session::SessionError;

/// Why a worker closed a connection. Tests match the variant; logs show its text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CloseReason {
    /// The peer sent FIN (or the read side ended).
    #[error("peer closed the connection")]
    PeerClosed,
    #[error("read error: {0}")]
    ReadFailed(IoFailure),
    #[error("write error: {0}")]
    WriteFailed(IoFailure),
    /// The peer broke TLS on an RTMPS connection, or never spoke it (a plain RTMP client on
    /// the TLS port), or an upstream's certificate failed verification.
    #[error("TLS failed: {0}")]
    TlsFailed(rustls::Error),
    /// The RTMP session broke a rule (handshake, chunking, AMF, commands, limits).
    #[error("protocol error: {0}")]
    Protocol(SessionError),
    /// The publisher sent something the stream refuses (an oversized header).
    #[error("publisher refused: {0}")]
    PublisherRefused(IngestError),
    /// The stream hub closed it (taken over, stream ended).
    #[error("{0}")]
    Hub(Close),
    #[error("bad HTTP request: {0}")]
    BadHttpRequest(HttpError),
    #[error("bad HTTP request path {path:?}: {error}")]
    BadHttpPath { path: String, error: PathError },
    /// A request without keep-alive was answered.
    #[error("HTTP {method} {path:?} answered")]
    HttpAnswered { method: String, path: String },
    /// A held HLS/DASH request without keep-alive was answered.
    #[error("HTTP response sent")]
    HttpResponseSent,
    #[error("handshake not completed within {ms} ms")]
    HandshakeTimeout { ms: u64 },
    /// An RTMP connection neither published nor played within `timeouts.setup_ms` of accept.
    #[error("setup not completed: neither publishing nor playing within {ms} ms of accept")]
    SetupTimeout { ms: u64 },
    /// An RTMP message the peer started was not complete within `timeouts.message_ms`.
    #[error("message not completed within {ms} ms of its first bytes")]
    MessageTimeout { ms: u64 },
    #[error("HTTP connection idle: no request within {ms} ms")]
    HttpIdle { ms: u64 },
    #[error("HTTP request head not completed within {ms} ms")]
    HttpHeadTimeout { ms: u64 },
    #[error("idle: nothing received for {ms} ms")]
    Idle { ms: u64 },
    #[error(
        "slow player: not keeping up for {ms} ms ({queued} bytes queued, {dropped} frames dropped)"
    )]
    SlowPlayer {
        ms: u64,
        queued: usize,
        dropped: u64,
    },
    /// An RTMP peer's own answers (command results, pings) piled up past the cap: it sends
    /// requests and does not read the replies.
    #[error(
        "output queue of {queued} bytes over its cap of {cap}: the peer does not read its replies"
    )]
    OutputOverflow { queued: usize, cap: usize },
    /// Authorisation refused a publish or play (`[auth]`): the client was answered
    /// (`NetStream.Publish.BadName`, `NetStream.Play.Failed`, HTTP 401/403) first.
    #[error("{role} denied by {}: {reason}", reason.stage())]
    Denied {
        role: crate::auth::Role,
        reason: crate::auth::Denial,
    },
    /// The edge relay closed one of its own upstream connections.
    #[error("relay: {0}")]
    Relay(RelayEnd),
    /// The cluster directory gave the publisher's stream to another origin.
    #[error("cluster: {0}")]
    Cluster(ClusterEnd),
    /// An operator closed it through the admin API.
    #[error("kicked by the admin API")]
    Kicked,
    #[error("server shutting down")]
    ShuttingDown,
    /// Still connected when a drain's time (`timeouts.drain_ms`) ran out: shut down.
    #[error("server drained: still connected after {ms} ms")]
    DrainDeadline { ms: u64 },
    #[error("server shut down (flush deadline passed)")]
    ShutdownDeadline,
}

impl CloseReason {
    /// The reason as a bounded metrics label (`admin::metrics::CLOSE_KINDS`).
    pub fn kind(&self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::ReadFailed(_) | CloseReason::WriteFailed(_) => "io_error",
            CloseReason::Protocol(_) => "protocol",
            CloseReason::PublisherRefused(_) => "publisher_refused",
            CloseReason::Hub(_) => "hub",
            CloseReason::BadHttpRequest(_)
            | CloseReason::BadHttpPath { .. }
            | CloseReason::HttpAnswered { .. }
            | CloseReason::HttpResponseSent => "http",
            CloseReason::HandshakeTimeout { .. }
            | CloseReason::SetupTimeout { .. }
            | CloseReason::MessageTimeout { .. }
            | CloseReason::HttpIdle { .. }
            | CloseReason::HttpHeadTimeout { .. }
            | CloseReason::Idle { .. } => "timeout",
            CloseReason::SlowPlayer { .. } => "slow_player",
            CloseReason::OutputOverflow { .. } => "output_overflow",
            CloseReason::Relay(_) => "relay",
            CloseReason::Cluster(_) => "cluster",
            CloseReason::ShuttingDown | CloseReason::ShutdownDeadline => "shutdown",
            CloseReason::Kicked => "kicked",
            CloseReason::TlsFailed(_) => "tls",
            CloseReason::Denied { .. } => "denied",
            CloseReason::DrainDeadline { .. } => "drain",
        }
    }
}

/// Why the relay closed an upstream connection (a pull's or a push target's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayEnd {
    /// The pulled stream had no players for `relay.pull_idle_ms`.
    #[error("pull closed: no players")]
    Idle,
    /// The origin or target failed (refused, stalled, silent): the relay moves on.
    #[error("upstream failed: moving on")]
    FailedOver,
    /// A publisher here took the pulled stream over.
    #[error("pull replaced by a local publisher")]
    Replaced,
    /// The pushed stream's publisher left.
    #[error("push stopped: the publisher left")]
    PushStopped,
    /// A reload removed the push target.
    #[error("push stopped: the target was removed from the configuration")]
    PushRemoved,
    /// A new connection (make-before-break, after a ReconnectRequest or a reload) took over.
    #[error("handed over to a new connection")]
    HandedOver,
}

/// Why a connection was closed for the cluster's sake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterEnd {
    /// This edge is busy (`cluster.redirect_when_busy`): the client was sent to `to`.
    #[error("busy: redirected to {to}")]
    Redirected { to: String },
    /// Another origin holds the stream's lease and `streams.publish_takeover` is off.
    #[error("stream already published on another origin")]
    PublishedElsewhere,
    /// Another origin took the stream's lease over (a publisher there with takeover on).
    #[error("stream taken over on another origin")]
    TakenOverElsewhere,
}

/// An IO error as a close reason: its kind to match on, its text for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoFailure {
    pub kind: io::ErrorKind,
    pub text: String,
}

impl From<io::Error> for IoFailure {
    fn from(e: io::Error) -> Self {
        Self {
            kind: e.kind(),
            text: e.to_string(),
        }
    }
}

impl fmt::Display for IoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Close {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Close::TakenOver => "publisher taken over by a new publisher",
            Close::TakenOverElsewhere => "publisher taken over on another worker",
            Close::StreamEnded => "stream ended",
            Close::NoOrigin => "no origin delivered the stream",
        })
    }
}
