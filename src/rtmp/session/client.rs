//! The client role: connect, createStream, publish or play. Used by the load generator and the
//! tests (no relay to an origin is built yet).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::link::Link;
use super::payload::{self, SubMessage};
use super::{PublishMode, SessionError};
use crate::rtmp::amf0::Amf0Value;
use crate::rtmp::chunk::RawMessage;
use crate::rtmp::command::{self, Command};
use crate::rtmp::handshake::{ClientHandshake, RANDOM_LEN};
use crate::rtmp::message::{type_id, ControlMessage, UserControl};
use crate::rtmp::Limits;

/// Where and how the client connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The application, e.g. `live`.
    pub app: String,
    /// `rtmp://host:port/app`.
    pub tc_url: String,
    /// `flashVer` sent in connect, e.g. `FMLE/3.0 (compatible; rtmp-edge)`.
    pub flash_ver: String,
    /// Caps on what the server can make us hold.
    pub limits: Limits,
    /// Outbound chunk size announced after connect (publishers).
    pub chunk_size: u32,
    /// Use the complex (digest) handshake.
    pub digest_handshake: bool,
}

/// What the server said or sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// A stream is ready: `publish` or `play` was accepted (NetStream.Publish.Start or
    /// NetStream.Play.Start arrived).
    Publishing {
        stream_id: u32,
    },
    Playing {
        stream_id: u32,
    },
    /// Any onStatus (or _error) from the server, including the ones above and failures.
    /// `redirect` is the info object's `ex.redirect` (SRS sends it with
    /// NetConnection.Connect.Rejected to send a client elsewhere).
    Status {
        level: String,
        code: String,
        description: String,
        redirect: Option<String>,
    },
    /// The server asked us to reconnect (E-RTMP `NetConnection.Connect.ReconnectRequest`),
    /// to `tc_url` when it named one, else to where we are connected. Reported after the
    /// `Status` event of the same onStatus. Only servers told our `capsEx` send it.
    ReconnectRequest {
        tc_url: Option<String>,
        description: String,
    },
    /// A User Control event such as StreamBegin/StreamEOF.
    StreamEof {
        stream_id: u32,
    },
    StreamBegin {
        stream_id: u32,
    },
    /// Audio (8), video (9) or data (18) for a playing stream.
    Media {
        type_id: u8,
        timestamp: u32,
        payload: Bytes,
    },
}

/// Chunk stream ids the client sends media on (it is the only writer on its connection).
pub mod media_csid {
    pub const AUDIO: u32 = 4;
    pub const DATA: u32 = 5;
    pub const VIDEO: u32 = 6;
}

/// Buffer length announced to the server before `play`, in milliseconds.
pub const PLAY_BUFFER_MS: u32 = 3000;

/// Connection phase, states as types.
enum Phase {
    /// C0C1 sent; reading S0 S1 S2.
    Handshaking(ClientHandshake),
    /// `connect` sent with this transaction id.
    Connecting { transaction_id: f64 },
    /// `connect` answered with `_result`.
    Connected,
    /// `connect` answered with `_error`: nothing more will be sent.
    Refused,
}

/// What the user asked this client to do with its one NetStream.
#[derive(Debug, Clone)]
enum Intent {
    Publish { name: String, mode: PublishMode },
    Play { name: String },
}

/// The NetStream's progress.
enum Stream {
    Idle,
    /// Asked for before `connect` succeeded.
    Queued(Intent),
    /// `createStream` sent with this transaction id.
    Creating {
        intent: Intent,
        transaction_id: f64,
    },
    /// `publish`/`play` sent on `stream_id`; waiting for the Start status.
    Starting {
        intent: Intent,
        stream_id: u32,
    },
    /// NetStream.Publish.Start / NetStream.Play.Start received.
    Active {
        intent: Intent,
        stream_id: u32,
    },
    /// `stop()` came while `createStream` was in flight: delete the stream when it arrives.
    Abandoned {
        transaction_id: f64,
    },
}

/// Client role state machine.
///
/// Call order: create it (C0C1 is queued), then loop: write
/// [`poll_transmit`](Self::poll_transmit), feed what the server sent to
/// [`handle_input`](Self::handle_input), drain [`poll_event`](Self::poll_event).
/// [`publish`](Self::publish)/[`play`](Self::play) may be called at any time; they start once
/// connected.
pub struct ClientSession {
    config: ClientConfig,
    phase: Phase,
    link: Link,
    events: VecDeque<ClientEvent>,
    stream: Stream,
    next_transaction_id: f64,
    subs: Vec<SubMessage>,
    /// The E-RTMP `capsEx` announced in `connect`.
    caps_ex: u32,
}

impl ClientSession {
    /// Queues C0C1 at once; sends `connect` when the handshake completes.
    pub fn new(config: ClientConfig, random: &[u8; RANDOM_LEN], epoch: u32) -> Self {
        let mut hs = ClientHandshake::new(random, epoch, config.digest_handshake);
        // Servers announce their window after connect; until then ack like librtmp does.
        let mut link = Link::new(config.limits.clone(), 2_500_000);
        while let Some(t) = hs.poll_transmit() {
            link.queue_raw(&t);
        }
        Self {
            config,
            phase: Phase::Handshaking(hs),
            link,
            events: VecDeque::new(),
            stream: Stream::Idle,
            next_transaction_id: 1.0,
            subs: Vec::new(),
            caps_ex: command::CAPS_EX_RECONNECT,
        }
    }

    /// Feeds bytes read from the server; consumes what it used.
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), SessionError> {
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
            let transaction_id = self.transaction_id();
            self.link.send_command(
                0,
                &command::connect_with_caps(
                    transaction_id,
                    &self.config.app,
                    &self.config.flash_ver,
                    &self.config.tc_url,
                    self.caps_ex,
                ),
            );
            self.phase = Phase::Connecting { transaction_id };
        }
        while let Some(msg) = self.link.decode(buf)? {
            self.handle_message(msg)?;
        }
        Ok(())
    }

    /// Sets the E-RTMP `capsEx` bits `connect` announces (default: Reconnect,
    /// [`command::CAPS_EX_RECONNECT`]; 0 sends none, like a client from before E-RTMP). Call
    /// it before the handshake completes.
    pub fn set_caps_ex(&mut self, caps_ex: u32) {
        self.caps_ex = caps_ex;
    }

    /// Next event, in order.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Bytes to write, in order.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.link.take_transmit()
    }

    /// Asks to publish `name` (may be called before `Connected`; sent once connected):
    /// releaseStream, FCPublish, createStream, publish.
    pub fn publish(&mut self, name: &str, mode: PublishMode) {
        self.request(Intent::Publish {
            name: name.to_owned(),
            mode,
        });
    }

    /// Asks to play `name` (may be called before `Connected`): createStream, play, buffer length.
    pub fn play(&mut self, name: &str) {
        self.request(Intent::Play {
            name: name.to_owned(),
        });
    }

    /// Sends audio (8), video (9) or data (18) on the publishing stream. Data payloads are sent
    /// as given (prefix `@setDataFrame` yourself for metadata). Dropped (logged at debug)
    /// unless publishing has started.
    pub fn send_media(&mut self, type_id: u8, timestamp: u32, payload: &[u8]) {
        let stream_id = match &self.stream {
            Stream::Active {
                intent: Intent::Publish { .. },
                stream_id,
            } => *stream_id,
            _ => {
                tracing::debug!(type_id, "send_media before publishing started: dropped");
                return;
            }
        };
        let csid = match type_id {
            type_id::AUDIO => media_csid::AUDIO,
            type_id::VIDEO => media_csid::VIDEO,
            _ => media_csid::DATA,
        };
        self.link
            .send_message(csid, timestamp, type_id, stream_id, payload);
    }

    /// Stops publishing or playing: FCUnpublish (publishers) and deleteStream.
    pub fn stop(&mut self) {
        let (intent, stream_id) = match std::mem::replace(&mut self.stream, Stream::Idle) {
            Stream::Starting { intent, stream_id } | Stream::Active { intent, stream_id } => {
                (intent, stream_id)
            }
            Stream::Creating { transaction_id, .. } => {
                self.stream = Stream::Abandoned { transaction_id };
                return;
            }
            _ => return,
        };
        if let Intent::Publish { name, .. } = &intent {
            let tx = self.transaction_id();
            self.link.send_command(
                0,
                &Command::new(
                    "FCUnpublish",
                    tx,
                    Amf0Value::Null,
                    vec![Amf0Value::string(name)],
                ),
            );
        }
        self.delete_stream(stream_id);
    }

    /// Pauses (`true`) or resumes (`false`) the playing stream: `pause(0, null, paused,
    /// position_ms)`, as librtmp's RTMP_SendPause. Ignored (logged) unless playing.
    pub fn pause(&mut self, paused: bool, position_ms: f64) {
        self.play_command(
            "pause",
            vec![Amf0Value::Boolean(paused), Amf0Value::Number(position_ms)],
        );
    }

    /// Asks the server to send (`true`) or stop sending (`false`) audio: `receiveAudio(0,
    /// null, flag)`. Ignored (logged) unless playing.
    pub fn receive_audio(&mut self, flag: bool) {
        self.play_command("receiveAudio", vec![Amf0Value::Boolean(flag)]);
    }

    /// Asks the server to send (`true`) or stop sending (`false`) video: `receiveVideo(0,
    /// null, flag)`. Ignored (logged) unless playing.
    pub fn receive_video(&mut self, flag: bool) {
        self.play_command("receiveVideo", vec![Amf0Value::Boolean(flag)]);
    }

    /// True once `connect` succeeded.
    pub fn is_connected(&self) -> bool {
        matches!(self.phase, Phase::Connected)
    }

    /// The message stream id of the active publish or play, once started.
    pub fn stream_id(&self) -> Option<u32> {
        match &self.stream {
            Stream::Active { stream_id, .. } => Some(*stream_id),
            _ => None,
        }
    }

    // ---- internals ----

    fn transaction_id(&mut self) -> f64 {
        let tx = self.next_transaction_id;
        self.next_transaction_id += 1.0;
        tx
    }

    fn request(&mut self, intent: Intent) {
        if !matches!(
            self.stream,
            Stream::Idle | Stream::Queued(_) | Stream::Abandoned { .. }
        ) {
            tracing::debug!("client already has a stream; stop() it first");
            return;
        }
        if matches!(self.phase, Phase::Connected) {
            self.start(intent);
        } else {
            self.stream = Stream::Queued(intent);
        }
    }

    fn start(&mut self, intent: Intent) {
        if let Intent::Publish { name, .. } = &intent {
            self.link.set_outbound_chunk_size(self.config.chunk_size);
            for cmd in ["releaseStream", "FCPublish"] {
                let tx = self.transaction_id();
                self.link.send_command(
                    0,
                    &Command::new(cmd, tx, Amf0Value::Null, vec![Amf0Value::string(name)]),
                );
            }
        }
        let transaction_id = self.transaction_id();
        self.link.send_command(
            0,
            &Command::new("createStream", transaction_id, Amf0Value::Null, vec![]),
        );
        self.stream = Stream::Creating {
            intent,
            transaction_id,
        };
    }

    /// A NetStream command without answer (transaction id 0) on the playing stream.
    fn play_command(&mut self, name: &str, args: Vec<Amf0Value>) {
        let Stream::Active {
            intent: Intent::Play { .. },
            stream_id,
        } = self.stream
        else {
            tracing::debug!(command = name, "not playing: command not sent");
            return;
        };
        self.link
            .send_command(stream_id, &Command::new(name, 0.0, Amf0Value::Null, args));
    }

    fn delete_stream(&mut self, stream_id: u32) {
        let tx = self.transaction_id();
        self.link.send_command(
            0,
            &Command::new(
                "deleteStream",
                tx,
                Amf0Value::Null,
                vec![Amf0Value::Number(f64::from(stream_id))],
            ),
        );
    }

    fn handle_message(&mut self, msg: RawMessage) -> Result<(), SessionError> {
        match msg.type_id {
            type_id::SET_CHUNK_SIZE
            | type_id::ABORT
            | type_id::ACKNOWLEDGEMENT
            | type_id::USER_CONTROL
            | type_id::WINDOW_ACK_SIZE
            | type_id::SET_PEER_BANDWIDTH => {
                match self.link.apply_control(&msg)? {
                    Some(UserControl::StreamBegin(stream_id)) => {
                        self.events
                            .push_back(ClientEvent::StreamBegin { stream_id });
                    }
                    Some(UserControl::StreamEof(stream_id)) => {
                        self.events.push_back(ClientEvent::StreamEof { stream_id });
                    }
                    Some(other) => tracing::debug!(?other, "user control from server"),
                    None => {}
                }
                Ok(())
            }
            type_id::COMMAND_AMF0 | type_id::COMMAND_AMF3 => {
                let cmd =
                    Command::decode(msg.type_id, &msg.payload, self.config.limits.max_amf_depth)
                        .map_err(SessionError::from)?;
                self.command(cmd);
                Ok(())
            }
            type_id::AGGREGATE => {
                let mut subs = std::mem::take(&mut self.subs);
                if payload::split_aggregate(msg.timestamp, &msg.payload, &mut subs).is_err() {
                    tracing::debug!("malformed aggregate from server: rest dropped");
                }
                for sub in subs.drain(..) {
                    self.media(sub.type_id, sub.timestamp, sub.payload);
                }
                self.subs = subs;
                Ok(())
            }
            type_id::AUDIO | type_id::VIDEO | type_id::DATA_AMF0 | type_id::DATA_AMF3 => {
                self.media(msg.type_id, msg.timestamp, msg.payload);
                Ok(())
            }
            other => {
                tracing::debug!(type_id = other, "ignoring message type from server");
                Ok(())
            }
        }
    }

    fn media(&mut self, type_id: u8, timestamp: u32, payload: Bytes) {
        let Some((type_id, payload)) = payload::normalise(type_id, payload) else {
            return;
        };
        if type_id == type_id::DATA_AMF0 {
            // Session-level data messages, not stream content.
            if let Some(b"|RtmpSampleAccess" | b"onStatus") = payload::data_name(&payload) {
                return;
            }
        }
        self.events.push_back(ClientEvent::Media {
            type_id,
            timestamp,
            payload,
        });
    }

    fn command(&mut self, cmd: Command) {
        match cmd.name.as_str() {
            "_result" => self.result(&cmd),
            "_error" => {
                self.status(&cmd);
                if let Phase::Connecting { transaction_id } = self.phase {
                    if transaction_id == cmd.transaction_id {
                        self.phase = Phase::Refused;
                    }
                }
            }
            "onStatus" => {
                let code = cmd
                    .info()
                    .and_then(|i| command::property_str(i, "code"))
                    .unwrap_or_default()
                    .to_owned();
                self.status(&cmd);
                if let Stream::Starting { intent, stream_id } = &self.stream {
                    let stream_id = *stream_id;
                    let event = match (intent, code.as_str()) {
                        (Intent::Publish { .. }, "NetStream.Publish.Start") => {
                            Some(ClientEvent::Publishing { stream_id })
                        }
                        (Intent::Play { .. }, "NetStream.Play.Start") => {
                            Some(ClientEvent::Playing { stream_id })
                        }
                        _ => None,
                    };
                    if let Some(event) = event {
                        if let Stream::Starting { intent, stream_id } =
                            std::mem::replace(&mut self.stream, Stream::Idle)
                        {
                            self.stream = Stream::Active { intent, stream_id };
                        }
                        self.events.push_back(event);
                    }
                }
            }
            other => tracing::debug!(command = other, "command from server ignored"),
        }
    }

    fn result(&mut self, cmd: &Command) {
        if let Phase::Connecting { transaction_id } = self.phase {
            if transaction_id == cmd.transaction_id {
                self.phase = Phase::Connected;
                self.events.push_back(ClientEvent::Connected);
                if let Stream::Queued(intent) = std::mem::replace(&mut self.stream, Stream::Idle) {
                    self.start(intent);
                }
            }
            return;
        }
        let transaction_id = match &self.stream {
            Stream::Creating { transaction_id, .. } | Stream::Abandoned { transaction_id } => {
                *transaction_id
            }
            _ => return,
        };
        if transaction_id != cmd.transaction_id {
            return; // releaseStream/FCPublish answers
        }
        let Some(id) = cmd
            .args
            .iter()
            .find_map(|v| match v {
                Amf0Value::Number(n) => Some(*n),
                _ => None,
            })
            .filter(|n| *n >= 1.0 && *n <= f64::from(u32::MAX))
        else {
            tracing::debug!("createStream answered without a stream id");
            return;
        };
        let stream_id = id as u32;
        let Stream::Creating { intent, .. } = std::mem::replace(&mut self.stream, Stream::Idle)
        else {
            self.delete_stream(stream_id);
            return;
        };
        let tx = self.transaction_id();
        match &intent {
            Intent::Publish { name, mode } => {
                let mode = match mode {
                    PublishMode::Live => "live",
                    PublishMode::Record => "record",
                    PublishMode::Append => "append",
                };
                self.link.send_command(
                    stream_id,
                    &Command::new(
                        "publish",
                        tx,
                        Amf0Value::Null,
                        vec![Amf0Value::string(name), Amf0Value::string(mode)],
                    ),
                );
            }
            Intent::Play { name } => {
                self.link.send_control(&ControlMessage::UserControl(
                    UserControl::SetBufferLength {
                        stream_id,
                        buffer_ms: PLAY_BUFFER_MS,
                    },
                ));
                // -2000: live if it exists, else recorded (what ffmpeg sends by default).
                self.link.send_command(
                    stream_id,
                    &Command::new(
                        "play",
                        tx,
                        Amf0Value::Null,
                        vec![Amf0Value::string(name), Amf0Value::Number(-2000.0)],
                    ),
                );
            }
        }
        self.stream = Stream::Starting { intent, stream_id };
    }

    fn status(&mut self, cmd: &Command) {
        let info = cmd.info();
        let get = |key: &str| {
            info.and_then(|i| command::property_str(i, key))
                .unwrap_or_default()
                .to_owned()
        };
        let redirect = info
            .and_then(|i| i.get("ex"))
            .and_then(|ex| command::property_str(ex, "redirect"))
            .map(str::to_owned);
        let code = get("code");
        let description = get("description");
        let reconnect =
            (code == command::RECONNECT_REQUEST).then(|| ClientEvent::ReconnectRequest {
                tc_url: info
                    .and_then(|i| command::property_str(i, "tcUrl"))
                    .map(str::to_owned),
                description: description.clone(),
            });
        self.events.push_back(ClientEvent::Status {
            level: get("level"),
            code,
            description,
            redirect,
        });
        self.events.extend(reconnect);
    }
}
