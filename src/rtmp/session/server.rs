//! The server role: answers connect/createStream/publish/play and friends the way ffmpeg,
//! librtmp, GStreamer and OBS expect, and reports requests as events for the runtime to
//! accept or reject.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::link::Link;
use super::payload::{self, SubMessage};
use super::{split_query, PublishMode, Sensitive, SessionError};
use crate::rtmp::amf0::Amf0Value;
use crate::rtmp::chunk::RawMessage;
use crate::rtmp::command::{self, Command};
use crate::rtmp::handshake::{ServerHandshake, RANDOM_LEN};
use crate::rtmp::message::{type_id, ControlMessage, UserControl};
use crate::rtmp::Limits;

/// What the server sends at connect and how it bounds the peer.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub limits: Limits,
    /// Outbound chunk size, announced with Set Chunk Size right after connect.
    pub chunk_size: u32,
    /// Window Acknowledgement Size announced to the client (and used for our acks).
    pub window_ack_size: u32,
    /// Set Peer Bandwidth value (limit type dynamic).
    pub peer_bandwidth: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
        }
    }
}

/// What the client asked for or did. Requests wait for `accept_*`/`reject_*`.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// `connect`: answer with `accept_connect` or `reject_connect`. `app` is without its
    /// query string (`live` for `live?token=abc`, so stream names do not depend on it);
    /// `query` is that query, or the tcUrl's when the app has none (empty when neither has
    /// one). Never log `query`; `tc_url` logs redacted.
    ConnectRequested {
        app: String,
        query: String,
        tc_url: Sensitive,
    },
    /// `publish`: answer with `accept_publish` or `reject_publish`. `name` is the stream key
    /// without its query string (`demo` for `demo?sig=..`), `query` that query (never log it).
    PublishRequested {
        stream_id: u32,
        name: String,
        query: String,
        mode: PublishMode,
    },
    /// `play`/`play2`: answer with `accept_play` or `reject_play`. `name` and `query` as for
    /// `PublishRequested`.
    PlayRequested {
        stream_id: u32,
        name: String,
        query: String,
        start: f64,
        duration: f64,
        reset: bool,
    },
    /// Audio (8), video (9) or data (18) from an accepted publisher. For data, a leading
    /// `@setDataFrame` is already stripped, so the payload is e.g. `onMetaData` + object,
    /// byte-for-byte as the publisher encoded it.
    Media {
        stream_id: u32,
        type_id: u8,
        timestamp: u32,
        payload: Bytes,
    },
    /// The publisher stopped (FCUnpublish, closeStream or deleteStream).
    Unpublished { stream_id: u32 },
    /// A player stopped (closeStream or deleteStream).
    PlayStopped { stream_id: u32 },
    /// `pause` from a player.
    Paused { stream_id: u32, paused: bool },
    /// `receiveAudio`/`receiveVideo` from a player.
    ReceiveChanged {
        stream_id: u32,
        audio: Option<bool>,
        video: Option<bool>,
    },
}

/// Most NetStreams (createStream) one connection may hold at once.
pub const MAX_STREAMS: usize = 16;
/// Most bytes of messages held back while a request waits for its answer (each message
/// counts its payload plus [`BACKLOG_MESSAGE_OVERHEAD`]). More is a protocol violation.
pub const MAX_BACKLOG_BYTES: usize = 4 * 1024 * 1024;
/// What one held-back message costs beyond its payload, so empty messages are bounded too.
pub const BACKLOG_MESSAGE_OVERHEAD: usize = 64;

/// Connection phase, states as types: each variant holds only what is valid in it.
enum Phase {
    /// Reading C0 C1 / C2.
    Handshaking(ServerHandshake),
    /// Handshake done; the first command must be `connect`.
    ExpectConnect,
    /// `connect` reported; waiting for `accept_connect`/`reject_connect`.
    ConnectPending {
        transaction_id: f64,
        object_encoding: f64,
    },
    /// `connect` accepted: NetConnection and NetStream commands are served.
    Connected,
    /// `connect` rejected: everything but protocol control is ignored until the runtime
    /// closes the connection.
    Rejected,
}

/// One NetStream created by `createStream`.
#[derive(Debug)]
enum NetStream {
    Created,
    /// `publish` reported; waiting for `accept_publish`/`reject_publish`.
    PublishRequested {
        name: String,
    },
    Publishing {
        name: String,
    },
    PlayRequested {
        name: String,
        reset: bool,
        /// What the stream was playing when this play/play2 (a switch) came; restored when
        /// the request is rejected, so the runtime's player and the session stay in step.
        previous: Option<String>,
    },
    Playing {
        name: String,
    },
}

/// Server role state machine.
///
/// Call order: [`handle_input`](Self::handle_input) with bytes from the socket, then drain
/// [`poll_event`](Self::poll_event) (answering requests with `accept_*`/`reject_*`), then
/// drain [`poll_transmit`](Self::poll_transmit) and write those bytes before any media for
/// this peer. After `handle_input` returns an error the connection must be closed.
///
/// While a request (connect, publish, play) waits for its answer, commands and media that
/// follow it are held back in order (bounded by [`MAX_BACKLOG_BYTES`]) and processed as soon
/// as it is answered, inside `accept_*`/`reject_*`: drain `poll_event` again after answering.
/// Protocol control is always applied at once.
///
/// ```
/// use bytes::BytesMut;
/// use rtmp_edge::rtmp::session::*;
/// use rtmp_edge::rtmp::Limits;
///
/// let mut server = ServerSession::new(ServerConfig::default(), &[1; 1528], 0);
/// let config = ClientConfig {
///     app: "live".into(),
///     tc_url: "rtmp://127.0.0.1/live".into(),
///     flash_ver: "FMLE/3.0".into(),
///     limits: Limits::default(),
///     chunk_size: 4096,
///     digest_handshake: false,
/// };
/// let mut client = ClientSession::new(config, &[2; 1528], 0);
/// client.publish("key", PublishMode::Live);
/// let (mut c2s, mut s2c) = (BytesMut::new(), BytesMut::new());
/// let mut published = false;
/// for _ in 0..10 {
///     while let Some(t) = client.poll_transmit() { c2s.extend_from_slice(&t); }
///     server.handle_input(&mut c2s)?;
///     while let Some(event) = server.poll_event() {
///         match event {
///             ServerEvent::ConnectRequested { .. } => server.accept_connect(),
///             ServerEvent::PublishRequested { stream_id, .. } => server.accept_publish(stream_id),
///             _ => {}
///         }
///     }
///     while let Some(t) = server.poll_transmit() { s2c.extend_from_slice(&t); }
///     client.handle_input(&mut s2c)?;
///     while let Some(event) = client.poll_event() {
///         published |= matches!(event, ClientEvent::Publishing { .. });
///     }
/// }
/// assert!(published);
/// # Ok::<(), SessionError>(())
/// ```
///
/// The session writes only on csids 2, 3 and 5 ([`super::csid`]); media for players is
/// encoded once by the fan-out on csids 6, 7 and 8 at
/// [`outbound_chunk_size`](Self::outbound_chunk_size).
pub struct ServerSession {
    config: ServerConfig,
    phase: Phase,
    link: Link,
    events: VecDeque<ServerEvent>,
    app: Option<String>,
    /// The query string that came with the app (or the tcUrl): for auth, never for naming.
    app_query: String,
    streams: Vec<(u32, NetStream)>,
    next_stream_id: u32,
    /// The client sent FCPublish: answer onFCPublish when publishing starts.
    fc_publish: bool,
    /// Messages that arrived while a request was pending, in order.
    backlog: VecDeque<RawMessage>,
    backlog_bytes: usize,
    /// An error found while processing the backlog inside `accept_*`/`reject_*`, returned by
    /// the next `handle_input`.
    failed: Option<SessionError>,
    /// Reused by aggregate splitting.
    subs: Vec<SubMessage>,
    /// The E-RTMP `capsEx` bits of the client's `connect` (0 when it sent none).
    caps_ex: u32,
}

impl ServerSession {
    /// `random` fills S1; `epoch` is S1's time field.
    pub fn new(config: ServerConfig, random: &[u8; RANDOM_LEN], epoch: u32) -> Self {
        let link = Link::new(config.limits.clone(), config.window_ack_size);
        Self {
            phase: Phase::Handshaking(ServerHandshake::new(random, epoch)),
            link,
            config,
            events: VecDeque::new(),
            app: None,
            app_query: String::new(),
            streams: Vec::new(),
            next_stream_id: 1,
            fc_publish: false,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            failed: None,
            subs: Vec::new(),
            caps_ex: 0,
        }
    }

    /// Feeds bytes read from the peer; consumes what it used (a partial chunk stays in `buf`).
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), SessionError> {
        if let Some(err) = self.failed.take() {
            return Err(err);
        }
        if let Phase::Handshaking(hs) = &mut self.phase {
            let before = buf.len();
            hs.handle_input(buf)?;
            let consumed = before - buf.len();
            while let Some(t) = hs.poll_transmit() {
                self.link.queue_raw(&t);
            }
            self.link.count_handshake(consumed);
            if !hs.is_done() {
                return Ok(());
            }
            self.phase = Phase::ExpectConnect;
        }
        while let Some(msg) = self.link.decode(buf)? {
            self.handle_message(msg)?;
        }
        Ok(())
    }

    /// Next event, in the order they happened.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Bytes to write, in order (handshake, control, command answers).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.link.take_transmit()
    }

    /// True once the handshake is complete.
    pub fn is_established(&self) -> bool {
        !matches!(self.phase, Phase::Handshaking(_))
    }

    /// The message the peer started and has not finished, as an ordinal that stays the same
    /// until that message completes: the oldest message partly assembled in the chunk decoder,
    /// else, when `unread` bytes of a chunk are left in the caller's buffer after
    /// [`handle_input`](Self::handle_input), the message that chunk begins. `None` during the
    /// handshake (bounded on its own) and when nothing is pending.
    ///
    /// Call it after `handle_input` with what is left in the buffer. The session reads no
    /// clock: the caller notes when it first saw an ordinal and closes the connection when the
    /// same ordinal outlives its bound (the worker's `timeouts.message_ms`).
    pub fn unfinished_message(&self, unread: usize) -> Option<u64> {
        if !self.is_established() {
            return None;
        }
        let decoder = &self.link.decoder;
        decoder
            .oldest_partial()
            .or_else(|| (unread > 0).then(|| decoder.messages_started()))
    }

    /// The app from `connect`, once requested, without its query string or a trailing `/`:
    /// streams are named `app/name` from it.
    pub fn app(&self) -> Option<&str> {
        self.app.as_deref()
    }

    /// The query string that came with `connect` (from the app, else from the tcUrl), for the
    /// accept/reject decision; empty when there was none. Never log it.
    pub fn app_query(&self) -> &str {
        &self.app_query
    }

    /// The E-RTMP `capsEx` bits the client's `connect` carried (0 when none, or before it).
    pub fn caps_ex(&self) -> u32 {
        self.caps_ex
    }

    /// True when the client's `connect` advertised the E-RTMP Reconnect capability, so it may
    /// be sent [`request_reconnect`](Self::request_reconnect).
    pub fn can_reconnect(&self) -> bool {
        self.caps_ex & command::CAPS_EX_RECONNECT != 0
    }

    /// Asks the client to reconnect (E-RTMP `NetConnection.Connect.ReconnectRequest` on
    /// stream 0), to `tc_url` when given. Call it on a connected session whose client
    /// [`can_reconnect`](Self::can_reconnect) (e.g. when the server drains); otherwise it does
    /// nothing and returns false. The session keeps serving the client until it leaves.
    pub fn request_reconnect(&mut self, tc_url: Option<&str>) -> bool {
        if !self.can_reconnect() || !matches!(self.phase, Phase::Connected) {
            return false;
        }
        self.link.send_command(
            0,
            &command::reconnect_request("The server is going away: please reconnect.", tc_url),
        );
        true
    }

    /// The outbound chunk size in force (media must be encoded at this size).
    pub fn outbound_chunk_size(&self) -> u32 {
        self.link.encoder.chunk_size()
    }

    /// Bytes received from the peer so far (handshake included).
    pub fn bytes_received(&self) -> u64 {
        self.link.bytes_received()
    }

    /// Accepts `connect`: Window Ack Size, Set Peer Bandwidth, Set Chunk Size, StreamBegin 0,
    /// then `_result` (fmsVer, capabilities, NetConnection.Connect.Success, objectEncoding).
    /// Call it after a [`ServerEvent::ConnectRequested`]; otherwise it does nothing.
    pub fn accept_connect(&mut self) {
        let (transaction_id, object_encoding) =
            match std::mem::replace(&mut self.phase, Phase::Connected) {
                Phase::ConnectPending {
                    transaction_id,
                    object_encoding,
                } => (transaction_id, object_encoding),
                other => {
                    tracing::debug!("accept_connect without a pending connect");
                    self.phase = other;
                    return;
                }
            };
        let link = &mut self.link;
        link.send_control(&ControlMessage::WindowAckSize(self.config.window_ack_size));
        link.send_control(&ControlMessage::SetPeerBandwidth {
            size: self.config.peer_bandwidth,
            limit_type: 2,
        });
        link.set_outbound_chunk_size(self.config.chunk_size);
        link.send_control(&ControlMessage::UserControl(UserControl::StreamBegin(0)));
        link.send_command(
            0,
            &command::connect_success(transaction_id, object_encoding),
        );
        self.resume();
    }

    /// Rejects `connect` with `_error` NetConnection.Connect.Rejected. Close the connection
    /// once the transmits are written.
    pub fn reject_connect(&mut self, description: &str) {
        self.refuse_connect(|tx| command::connect_rejected(tx, description));
    }

    /// Rejects the pending `connect` with a redirect to `target` (`ex.redirect`, the form SRS
    /// sends and clients such as ours follow).
    pub fn redirect_connect(&mut self, target: &str) {
        self.refuse_connect(|tx| command::connect_redirected(tx, target));
    }

    fn refuse_connect(&mut self, answer: impl FnOnce(f64) -> command::Command) {
        match std::mem::replace(&mut self.phase, Phase::Rejected) {
            Phase::ConnectPending { transaction_id, .. } => {
                self.link.send_command(0, &answer(transaction_id));
                self.backlog.clear();
                self.backlog_bytes = 0;
            }
            other => {
                tracing::debug!("reject_connect without a pending connect");
                self.phase = other;
            }
        }
    }

    /// Accepts `publish`: StreamBegin, onFCPublish (when the client sent FCPublish), then
    /// NetStream.Publish.Start. Messages held back behind the request are processed next.
    pub fn accept_publish(&mut self, stream_id: u32) {
        let Some(state) = self.stream_mut(stream_id) else {
            return;
        };
        let name = match std::mem::replace(state, NetStream::Created) {
            NetStream::PublishRequested { name } => name,
            other => {
                *state = other;
                tracing::debug!(stream_id, "accept_publish without a pending publish");
                return;
            }
        };
        let description = format!("{name} is now published.");
        *state = NetStream::Publishing { name };
        self.stream_begin(stream_id);
        if self.fc_publish {
            self.link.send_command(
                0,
                &command::on_fc("onFCPublish", "NetStream.Publish.Start", &description),
            );
        }
        self.link.send_command(
            stream_id,
            &command::on_status("status", "NetStream.Publish.Start", &description),
        );
        self.resume();
    }

    /// Rejects `publish` with an onStatus error `code` such as NetStream.Publish.BadName.
    pub fn reject_publish(&mut self, stream_id: u32, code: &str, description: &str) {
        let Some(state) = self.stream_mut(stream_id) else {
            return;
        };
        if !matches!(state, NetStream::PublishRequested { .. }) {
            tracing::debug!(stream_id, "reject_publish without a pending publish");
            return;
        }
        *state = NetStream::Created;
        self.link
            .send_command(stream_id, &command::on_status("error", code, description));
        self.resume();
    }

    /// Accepts `play`: StreamBegin (+ StreamIsRecorded never), NetStream.Play.Reset when asked,
    /// NetStream.Play.Start, |RtmpSampleAccess, NetStream.Data.Start.
    pub fn accept_play(&mut self, stream_id: u32) {
        let Some(state) = self.stream_mut(stream_id) else {
            return;
        };
        let (name, reset) = match std::mem::replace(state, NetStream::Created) {
            NetStream::PlayRequested { name, reset, .. } => (name, reset),
            other => {
                *state = other;
                tracing::debug!(stream_id, "accept_play without a pending play");
                return;
            }
        };
        let reset_text = format!("Playing and resetting {name}.");
        let start_text = format!("Started playing {name}.");
        *state = NetStream::Playing { name };
        self.stream_begin(stream_id);
        if reset {
            self.link.send_command(
                stream_id,
                &command::on_status("status", "NetStream.Play.Reset", &reset_text),
            );
        }
        self.link.send_command(
            stream_id,
            &command::on_status("status", "NetStream.Play.Start", &start_text),
        );
        self.link.send_data(stream_id, &command::sample_access());
        self.link.send_data(stream_id, &command::data_start());
        self.resume();
    }

    /// Rejects `play` with an onStatus error `code` such as NetStream.Play.StreamNotFound.
    /// A `play`/`play2` that came on a stream already playing (a switch) leaves it playing
    /// what it played before.
    pub fn reject_play(&mut self, stream_id: u32, code: &str, description: &str) {
        let Some(state) = self.stream_mut(stream_id) else {
            return;
        };
        let previous = match std::mem::replace(state, NetStream::Created) {
            NetStream::PlayRequested { previous, .. } => previous,
            other => {
                *state = other;
                tracing::debug!(stream_id, "reject_play without a pending play");
                return;
            }
        };
        if let Some(name) = previous {
            *state = NetStream::Playing { name };
        }
        self.link
            .send_command(stream_id, &command::on_status("error", code, description));
        self.resume();
    }

    /// Tells a player its stream's publisher left: StreamEOF, NetStream.Play.UnpublishNotify.
    pub fn notify_unpublished(&mut self, stream_id: u32) {
        if let Some(name) = self.playing_name(stream_id) {
            self.stream_eof(stream_id);
            let text = format!("{name} is now unpublished.");
            self.link.send_command(
                stream_id,
                &command::on_status("status", "NetStream.Play.UnpublishNotify", &text),
            );
        }
    }

    /// Tells a waiting player the stream is back: StreamBegin, NetStream.Play.PublishNotify.
    pub fn notify_republished(&mut self, stream_id: u32) {
        if let Some(name) = self.playing_name(stream_id) {
            self.stream_begin(stream_id);
            let text = format!("{name} is now published.");
            self.link.send_command(
                stream_id,
                &command::on_status("status", "NetStream.Play.PublishNotify", &text),
            );
        }
    }

    /// Tells a player the stream ended for good (shutdown): StreamEOF, NetStream.Play.Stop.
    pub fn notify_stopped(&mut self, stream_id: u32) {
        if let Some(name) = self.playing_name(stream_id) {
            self.stream_eof(stream_id);
            let text = format!("Stopped playing {name}.");
            self.link.send_command(
                stream_id,
                &command::on_status("status", "NetStream.Play.Stop", &text),
            );
            if let Some(state) = self.stream_mut(stream_id) {
                *state = NetStream::Created;
            }
        }
    }

    // ---- inbound ----

    fn handle_message(&mut self, msg: RawMessage) -> Result<(), SessionError> {
        match msg.type_id {
            type_id::SET_CHUNK_SIZE
            | type_id::ABORT
            | type_id::ACKNOWLEDGEMENT
            | type_id::USER_CONTROL
            | type_id::WINDOW_ACK_SIZE
            | type_id::SET_PEER_BANDWIDTH => {
                if let Some(event) = self.link.apply_control(&msg)? {
                    tracing::debug!(?event, "user control from client");
                }
                Ok(())
            }
            _ => {
                if matches!(self.phase, Phase::Handshaking(_) | Phase::Rejected) {
                    return Ok(());
                }
                if self.is_waiting() || !self.backlog.is_empty() {
                    self.backlog_bytes += msg.payload.len() + BACKLOG_MESSAGE_OVERHEAD;
                    if self.backlog_bytes > MAX_BACKLOG_BYTES {
                        return Err(SessionError::BacklogTooLarge {
                            limit: MAX_BACKLOG_BYTES,
                        });
                    }
                    self.backlog.push_back(msg);
                    return Ok(());
                }
                self.dispatch(msg)
            }
        }
    }

    /// True while a request waits for `accept_*`/`reject_*`.
    fn is_waiting(&self) -> bool {
        matches!(self.phase, Phase::ConnectPending { .. })
            || self.streams.iter().any(|(_, s)| {
                matches!(
                    s,
                    NetStream::PublishRequested { .. } | NetStream::PlayRequested { .. }
                )
            })
    }

    /// Processes held-back messages until the next request (or the end of the backlog).
    fn resume(&mut self) {
        while self.failed.is_none() && !self.is_waiting() {
            let Some(msg) = self.backlog.pop_front() else {
                break;
            };
            self.backlog_bytes -= msg.payload.len() + BACKLOG_MESSAGE_OVERHEAD;
            if matches!(self.phase, Phase::Rejected) {
                continue;
            }
            if let Err(err) = self.dispatch(msg) {
                self.failed = Some(err);
            }
        }
    }

    fn dispatch(&mut self, msg: RawMessage) -> Result<(), SessionError> {
        match msg.type_id {
            type_id::COMMAND_AMF0 | type_id::COMMAND_AMF3 => {
                let cmd =
                    Command::decode(msg.type_id, &msg.payload, self.config.limits.max_amf_depth)
                        .map_err(SessionError::from)?;
                self.command(msg.stream_id, cmd)
            }
            type_id::AUDIO
            | type_id::VIDEO
            | type_id::DATA_AMF0
            | type_id::DATA_AMF3
            | type_id::AGGREGATE => {
                self.media(msg);
                Ok(())
            }
            other => {
                tracing::debug!(type_id = other, "ignoring message type");
                Ok(())
            }
        }
    }

    fn command(&mut self, stream_id: u32, cmd: Command) -> Result<(), SessionError> {
        let tx = cmd.transaction_id;
        if matches!(self.phase, Phase::ExpectConnect) {
            if cmd.name == "connect" {
                self.connect(cmd);
            } else if tx > 0.0 {
                self.link
                    .send_command(0, &command::call_failed(tx, &cmd.name));
            }
            return Ok(());
        }
        match cmd.name.as_str() {
            "connect" => {
                return Err(SessionError::ConnectTwice);
            }
            "releaseStream" | "FCSubscribe" => self.empty_result(tx),
            "FCPublish" => {
                self.fc_publish = true;
                self.empty_result(tx);
            }
            "FCUnpublish" => self.fc_unpublish(&cmd),
            "createStream" => self.create_stream(tx)?,
            "deleteStream" => {
                if let Some(id) = cmd.arg_f64(0).filter(|id| *id >= 0.0) {
                    let id = id as u32;
                    self.end_stream(id);
                    self.streams.retain(|(sid, _)| *sid != id);
                }
            }
            "closeStream" => self.end_stream(stream_id),
            "getStreamLength" => {
                self.link.send_command(
                    0,
                    &command::result(tx, Amf0Value::Null, vec![Amf0Value::Number(0.0)]),
                );
            }
            "_checkbw" => self.empty_result(tx),
            "publish" => self.publish(stream_id, &cmd)?,
            "play" => {
                let name = cmd.arg_str(0).unwrap_or_default().to_owned();
                let start = cmd.arg_f64(1).unwrap_or(-2.0);
                let duration = cmd.arg_f64(2).unwrap_or(-1.0);
                let reset = cmd.arg_bool(3).unwrap_or(true);
                self.play(stream_id, name, start, duration, reset)?;
            }
            "play2" => {
                let params = cmd.arg(0).cloned().unwrap_or(Amf0Value::Null);
                let name = command::property_str(&params, "streamName")
                    .unwrap_or_default()
                    .to_owned();
                let start = command::property_f64(&params, "start").unwrap_or(-2.0);
                let duration = command::property_f64(&params, "len").unwrap_or(-1.0);
                self.play(stream_id, name, start, duration, true)?;
            }
            "pause" => self.pause(stream_id, cmd.arg_bool(0).unwrap_or(true)),
            "receiveAudio" | "receiveVideo" => {
                if self.playing_name(stream_id).is_some() {
                    let flag = cmd.arg_bool(0);
                    let (audio, video) = if cmd.name == "receiveAudio" {
                        (flag, None)
                    } else {
                        (None, flag)
                    };
                    self.events.push_back(ServerEvent::ReceiveChanged {
                        stream_id,
                        audio,
                        video,
                    });
                }
            }
            // Answers and notifications from the client: nothing to do.
            "_result" | "_error" | "onStatus" | "onBWDone" | "_onbwcheck" | "_onbwdone" => {}
            other => {
                tracing::debug!(command = other, "unknown command");
                if tx > 0.0 {
                    self.link.send_command(0, &command::call_failed(tx, other));
                }
            }
        }
        Ok(())
    }

    fn connect(&mut self, cmd: Command) {
        // OBS and ffmpeg put a token on the server URL (`rtmp://host/live?token=abc`): the app
        // arrives as `live?token=abc` and the tcUrl ends with the same query. Some clients send
        // it on the tcUrl only.
        let raw_app = command::property_str(&cmd.object, "app").unwrap_or_default();
        let tc_url = command::property_str(&cmd.object, "tcUrl").unwrap_or_default();
        let (app, app_query) = split_query(raw_app);
        let query = if app_query.is_empty() {
            split_query(tc_url).1
        } else {
            app_query
        };
        let app = app.trim_end_matches('/').to_owned();
        let query = query.to_owned();
        let tc_url = Sensitive::from(tc_url);
        let object_encoding = command::property_f64(&cmd.object, "objectEncoding").unwrap_or(0.0);
        // A bit mask sent as an AMF number; anything else (negative, fractional, huge) is
        // taken as no capability rather than guessed at.
        self.caps_ex = command::property_f64(&cmd.object, "capsEx")
            .filter(|n| n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(n))
            .map_or(0, |n| n as u32);
        self.app = Some(app.clone());
        self.app_query = query.clone();
        self.phase = Phase::ConnectPending {
            transaction_id: cmd.transaction_id,
            object_encoding,
        };
        self.events
            .push_back(ServerEvent::ConnectRequested { app, query, tc_url });
    }

    fn empty_result(&mut self, tx: f64) {
        if tx > 0.0 {
            self.link.send_command(
                0,
                &command::result(tx, Amf0Value::Null, vec![Amf0Value::Undefined]),
            );
        }
    }

    fn create_stream(&mut self, tx: f64) -> Result<(), SessionError> {
        if self.streams.len() >= MAX_STREAMS {
            return Err(SessionError::TooManyStreams { limit: MAX_STREAMS });
        }
        let id = self.next_stream_id;
        self.next_stream_id = self.next_stream_id.wrapping_add(1).max(1);
        self.streams.push((id, NetStream::Created));
        self.link.send_command(
            0,
            &command::result(tx, Amf0Value::Null, vec![Amf0Value::Number(f64::from(id))]),
        );
        Ok(())
    }

    /// The stream a NetStream command arrived on. Clients that skip createStream (a few
    /// hardware encoders) get one created implicitly, within the same cap.
    fn stream_for_command(
        &mut self,
        stream_id: u32,
    ) -> Result<Option<&mut NetStream>, SessionError> {
        if stream_id == 0 {
            return Ok(None);
        }
        if self.streams.iter().all(|(id, _)| *id != stream_id) {
            if self.streams.len() >= MAX_STREAMS {
                return Err(SessionError::TooManyStreams { limit: MAX_STREAMS });
            }
            self.streams.push((stream_id, NetStream::Created));
        }
        Ok(self.stream_mut(stream_id))
    }

    fn publish(&mut self, stream_id: u32, cmd: &Command) -> Result<(), SessionError> {
        let raw = cmd.arg_str(0).unwrap_or_default();
        let (name, query) = split_query(raw);
        let (name, query) = (name.to_owned(), query.to_owned());
        let mode = match cmd.arg_str(1) {
            Some("record") => PublishMode::Record,
            Some("append") => PublishMode::Append,
            _ => PublishMode::Live,
        };
        let Some(state) = self.stream_for_command(stream_id)? else {
            self.link.send_command(
                0,
                &command::on_status("error", "NetStream.Publish.BadName", "publish on stream 0"),
            );
            return Ok(());
        };
        if !matches!(state, NetStream::Created) || name.is_empty() {
            let code = if name.is_empty() {
                "NetStream.Publish.BadName"
            } else {
                "NetStream.Publish.BadConnection"
            };
            self.link.send_command(
                stream_id,
                &command::on_status("error", code, "stream busy or name empty"),
            );
            return Ok(());
        }
        *state = NetStream::PublishRequested { name: name.clone() };
        self.events.push_back(ServerEvent::PublishRequested {
            stream_id,
            name,
            query,
            mode,
        });
        Ok(())
    }

    fn play(
        &mut self,
        stream_id: u32,
        raw: String,
        start: f64,
        duration: f64,
        reset: bool,
    ) -> Result<(), SessionError> {
        let (name, query) = split_query(&raw);
        let (name, query) = (name.to_owned(), query.to_owned());
        let Some(state) = self.stream_for_command(stream_id)? else {
            self.link.send_command(
                0,
                &command::on_status("error", "NetStream.Play.Failed", "play on stream 0"),
            );
            return Ok(());
        };
        if matches!(
            state,
            NetStream::PublishRequested { .. } | NetStream::Publishing { .. }
        ) || name.is_empty()
        {
            let code = if name.is_empty() {
                "NetStream.Play.StreamNotFound"
            } else {
                "NetStream.Play.Failed"
            };
            self.link.send_command(
                stream_id,
                &command::on_status("error", code, "stream busy or name empty"),
            );
            return Ok(());
        }
        let previous = match state {
            NetStream::Playing { name } => Some(std::mem::take(name)),
            _ => None,
        };
        *state = NetStream::PlayRequested {
            name: name.clone(),
            reset,
            previous,
        };
        self.events.push_back(ServerEvent::PlayRequested {
            stream_id,
            name,
            query,
            start,
            duration,
            reset,
        });
        Ok(())
    }

    fn pause(&mut self, stream_id: u32, paused: bool) {
        let Some(name) = self.playing_name(stream_id) else {
            return;
        };
        self.events
            .push_back(ServerEvent::Paused { stream_id, paused });
        let (code, text) = if paused {
            ("NetStream.Pause.Notify", format!("Paused {name}."))
        } else {
            ("NetStream.Unpause.Notify", format!("Unpaused {name}."))
        };
        if !paused {
            self.stream_begin(stream_id);
        }
        self.link
            .send_command(stream_id, &command::on_status("status", code, &text));
    }

    fn fc_unpublish(&mut self, cmd: &Command) {
        let (name, _) = split_query(cmd.arg_str(0).unwrap_or_default());
        let name = name.to_owned();
        let ids: Vec<u32> =
            self.streams
                .iter()
                .filter(|(_, s)| match s {
                    NetStream::Publishing { name: n }
                    | NetStream::PublishRequested { name: n, .. } => *n == name,
                    _ => false,
                })
                .map(|(id, _)| *id)
                .collect();
        for id in ids {
            self.end_stream(id);
        }
        self.link.send_command(
            0,
            &command::on_fc("onFCUnpublish", "NetStream.Unpublish.Success", &name),
        );
        self.empty_result(cmd.transaction_id);
    }

    /// Ends whatever `stream_id` was doing (closeStream/deleteStream/FCUnpublish), reporting
    /// it, and leaves it `Created`.
    fn end_stream(&mut self, stream_id: u32) {
        let Some(state) = self.stream_mut(stream_id) else {
            return;
        };
        let event = match std::mem::replace(state, NetStream::Created) {
            NetStream::PublishRequested { .. } | NetStream::Publishing { .. } => {
                Some(ServerEvent::Unpublished { stream_id })
            }
            NetStream::PlayRequested { .. } | NetStream::Playing { .. } => {
                Some(ServerEvent::PlayStopped { stream_id })
            }
            NetStream::Created => None,
        };
        self.events.extend(event);
    }

    fn media(&mut self, msg: RawMessage) {
        let stream_id = msg.stream_id;
        let Some(state) = self.stream_mut(stream_id) else {
            tracing::debug!(
                stream_id,
                type_id = msg.type_id,
                "media on unknown stream dropped"
            );
            return;
        };
        match state {
            NetStream::Publishing { .. } => {}
            _ => {
                tracing::debug!(
                    stream_id,
                    type_id = msg.type_id,
                    "media on non-publishing stream dropped"
                );
                return;
            }
        }
        if msg.type_id == type_id::AGGREGATE {
            let mut subs = std::mem::take(&mut self.subs);
            if payload::split_aggregate(msg.timestamp, &msg.payload, &mut subs).is_err() {
                tracing::debug!(stream_id, "malformed aggregate: rest dropped");
            }
            for sub in subs.drain(..) {
                self.push_media(stream_id, sub.type_id, sub.timestamp, sub.payload);
            }
            self.subs = subs;
        } else {
            self.push_media(stream_id, msg.type_id, msg.timestamp, msg.payload);
        }
    }

    fn push_media(&mut self, stream_id: u32, type_id: u8, timestamp: u32, payload: Bytes) {
        if let Some((type_id, payload)) = payload::normalise(type_id, payload) {
            self.events.push_back(ServerEvent::Media {
                stream_id,
                type_id,
                timestamp,
                payload,
            });
        }
    }

    // ---- helpers ----

    fn stream_mut(&mut self, stream_id: u32) -> Option<&mut NetStream> {
        self.streams
            .iter_mut()
            .find(|(id, _)| *id == stream_id)
            .map(|(_, s)| s)
    }

    fn playing_name(&self, stream_id: u32) -> Option<String> {
        self.streams.iter().find_map(|(id, s)| match s {
            NetStream::Playing { name } if *id == stream_id => Some(name.clone()),
            _ => None,
        })
    }

    fn stream_begin(&mut self, stream_id: u32) {
        self.link
            .send_control(&ControlMessage::UserControl(UserControl::StreamBegin(
                stream_id,
            )));
    }

    fn stream_eof(&mut self, stream_id: u32) {
        self.link
            .send_control(&ControlMessage::UserControl(UserControl::StreamEof(
                stream_id,
            )));
    }
}
