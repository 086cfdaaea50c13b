//! In-memory client↔server pairs driving whole RTMP sessions, plus raw-byte peers for the
//! paths our own client never takes (bad chunk sizes, AMF3 connect, unknown commands).

use bytes::{Buf, Bytes, BytesMut};
use rtmp_edge::rtmp::amf0::Amf0Value;
use rtmp_edge::rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkError, EncodedMessage, RawMessage};
use rtmp_edge::rtmp::command::{self, Command};
use rtmp_edge::rtmp::handshake::{ClientHandshake, RANDOM_LEN};
use rtmp_edge::rtmp::message::{type_id, ControlMessage, UserControl};
use rtmp_edge::rtmp::session::{
    csid, ClientConfig, ClientEvent, ClientSession, PublishMode, ServerConfig, ServerEvent,
    ServerSession, SessionError,
};
use rtmp_edge::rtmp::Limits;

const RANDOM: [u8; RANDOM_LEN] = [7; RANDOM_LEN];

fn client_config() -> ClientConfig {
    ClientConfig {
        app: "live".into(),
        tc_url: "rtmp://127.0.0.1/live".into(),
        flash_ver: "FMLE/3.0 (compatible; rtmp-edge)".into(),
        limits: Limits::default(),
        chunk_size: 4096,
        digest_handshake: false,
    }
}

/// What the test server answers to requests.
#[derive(Default, Clone)]
struct Policy {
    reject_connect: bool,
    reject_publish: Option<&'static str>,
}

/// A client and a server joined by two in-memory pipes.
struct Pair {
    client: ClientSession,
    server: ServerSession,
    c2s: BytesMut,
    s2c: BytesMut,
    /// Every byte the client ever sent, for replays.
    c2s_log: BytesMut,
    /// Every byte the server ever sent.
    s2c_log: BytesMut,
    server_events: Vec<ServerEvent>,
    client_events: Vec<ClientEvent>,
    policy: Policy,
}

impl Pair {
    fn new(server_config: ServerConfig, policy: Policy) -> Self {
        Self {
            client: ClientSession::new(client_config(), &RANDOM, 0),
            server: ServerSession::new(server_config, &RANDOM, 0),
            c2s: BytesMut::new(),
            s2c: BytesMut::new(),
            c2s_log: BytesMut::new(),
            s2c_log: BytesMut::new(),
            server_events: Vec::new(),
            client_events: Vec::new(),
            policy,
        }
    }

    /// Moves bytes both ways until neither side has anything to say.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit() {
                self.c2s_log.extend_from_slice(&t);
                self.c2s.extend_from_slice(&t);
                moved = true;
            }
            self.server
                .handle_input(&mut self.c2s)
                .expect("server accepts client bytes");
            while let Some(ev) = self.server.poll_event() {
                answer(&mut self.server, &ev, &self.policy);
                self.server_events.push(ev);
            }
            while let Some(t) = self.server.poll_transmit() {
                self.s2c_log.extend_from_slice(&t);
                self.s2c.extend_from_slice(&t);
                moved = true;
            }
            self.client
                .handle_input(&mut self.s2c)
                .expect("client accepts server bytes");
            while let Some(ev) = self.client.poll_event() {
                self.client_events.push(ev);
            }
            if !moved {
                return;
            }
        }
        panic!("pair never went quiet");
    }
}

/// The runtime's side: accept or reject what the server session reports.
fn answer(server: &mut ServerSession, ev: &ServerEvent, policy: &Policy) {
    match ev {
        ServerEvent::ConnectRequested { .. } if policy.reject_connect => {
            server.reject_connect("not allowed")
        }
        ServerEvent::ConnectRequested { .. } => server.accept_connect(),
        ServerEvent::PublishRequested { stream_id, .. } => match policy.reject_publish {
            Some(code) => server.reject_publish(*stream_id, code, "rejected by test"),
            None => server.accept_publish(*stream_id),
        },
        ServerEvent::PlayRequested { stream_id, .. } => server.accept_play(*stream_id),
        _ => {}
    }
}

fn metadata_body() -> Vec<u8> {
    let mut out = BytesMut::new();
    command::encode_data(
        &[
            Amf0Value::String("onMetaData".into()),
            Amf0Value::EcmaArray(vec![
                ("width".into(), Amf0Value::Number(1280.0)),
                ("height".into(), Amf0Value::Number(720.0)),
                ("encoder".into(), Amf0Value::String("test".into())),
            ]),
        ],
        &mut out,
    );
    out.to_vec()
}

fn set_data_frame(body: &[u8]) -> Vec<u8> {
    let mut v = b"\x02\x00\x0d@setDataFrame".to_vec();
    v.extend_from_slice(body);
    v
}

fn statuses(events: &[ClientEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Status { code, .. } => Some(code.as_str()),
            _ => None,
        })
        .collect()
}

/// Runs a whole publish session and returns the pair.
fn publish_session() -> Pair {
    let mut pair = Pair::new(ServerConfig::default(), Policy::default());
    pair.client.publish("key?token=abc", PublishMode::Live);
    pair.pump();
    let video: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    pair.client
        .send_media(type_id::DATA_AMF0, 0, &set_data_frame(&metadata_body()));
    pair.client.send_media(type_id::VIDEO, 0, &video);
    pair.client.send_media(type_id::AUDIO, 23, b"\xaf\x01audio");
    pair.pump();
    pair.client.stop();
    pair.pump();
    pair
}

#[test]
fn a_publish_session_reports_connect_publish_media_and_unpublish_in_order() {
    let pair = publish_session();
    let video: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    assert_eq!(
        pair.server_events,
        vec![
            ServerEvent::ConnectRequested {
                app: "live".into(),
                query: String::new(),
                tc_url: "rtmp://127.0.0.1/live".into()
            },
            ServerEvent::PublishRequested {
                stream_id: 1,
                name: "key".into(),
                query: "token=abc".into(),
                mode: PublishMode::Live
            },
            ServerEvent::Media {
                stream_id: 1,
                type_id: type_id::DATA_AMF0,
                timestamp: 0,
                payload: Bytes::from(metadata_body()),
            },
            ServerEvent::Media {
                stream_id: 1,
                type_id: type_id::VIDEO,
                timestamp: 0,
                payload: Bytes::from(video),
            },
            ServerEvent::Media {
                stream_id: 1,
                type_id: type_id::AUDIO,
                timestamp: 23,
                payload: Bytes::from_static(b"\xaf\x01audio"),
            },
            ServerEvent::Unpublished { stream_id: 1 },
        ]
    );
    let position = |ev: &ClientEvent| pair.client_events.iter().position(|e| e == ev);
    assert_eq!(
        pair.client_events[0],
        ClientEvent::StreamBegin { stream_id: 0 },
        "StreamBegin 0 precedes the connect _result"
    );
    let connected = position(&ClientEvent::Connected).expect("connected");
    let publishing = position(&ClientEvent::Publishing { stream_id: 1 }).expect("publishing");
    assert!(connected < publishing);
    assert_eq!(
        statuses(&pair.client_events),
        vec!["NetStream.Publish.Start"]
    );
    assert_eq!(pair.server.app(), Some("live"));
    assert_eq!(pair.server.outbound_chunk_size(), 4096);
}

#[test]
fn a_client_to_server_stream_fed_one_byte_at_a_time_yields_the_same_events() {
    let whole = publish_session();
    let mut server = ServerSession::new(ServerConfig::default(), &RANDOM, 0);
    let mut events = Vec::new();
    let mut buf = BytesMut::new();
    for byte in whole.c2s_log.iter() {
        buf.extend_from_slice(&[*byte]);
        server.handle_input(&mut buf).expect("valid stream");
        while let Some(ev) = server.poll_event() {
            answer(&mut server, &ev, &Policy::default());
            events.push(ev);
        }
        while server.poll_transmit().is_some() {}
    }
    assert!(buf.is_empty(), "everything consumed");
    assert_eq!(events, whole.server_events);
}

#[test]
fn a_player_receives_encode_once_media_interleaved_with_session_transmits_in_order() {
    let mut pair = Pair::new(ServerConfig::default(), Policy::default());
    pair.client.play("key");
    pair.pump();
    let play = pair
        .server_events
        .iter()
        .find_map(|e| match e {
            ServerEvent::PlayRequested {
                stream_id,
                name,
                reset,
                ..
            } => Some((*stream_id, name.clone(), *reset)),
            _ => None,
        })
        .expect("play requested");
    assert_eq!(play, (1, "key".to_string(), true));
    assert!(pair
        .client_events
        .contains(&ClientEvent::Playing { stream_id: 1 }));
    assert!(pair
        .client_events
        .contains(&ClientEvent::StreamBegin { stream_id: 1 }));
    assert_eq!(
        statuses(&pair.client_events),
        vec!["NetStream.Play.Reset", "NetStream.Play.Start"]
    );
    pair.client_events.clear();

    // The fan-out writes shared media on csids 6/7/8 between the session's own transmits.
    let chunk_size = pair.server.outbound_chunk_size();
    let big: Vec<u8> = (0..9000u32).map(|i| (i * 7) as u8).collect();
    let media: Vec<(u32, u8, u32, Bytes)> = vec![
        (
            csid::DATA,
            type_id::DATA_AMF0,
            0,
            Bytes::from(metadata_body()),
        ),
        (csid::VIDEO, type_id::VIDEO, 0, Bytes::from(big)),
        (
            csid::AUDIO,
            type_id::AUDIO,
            10,
            Bytes::from_static(b"\xaf\x01a1"),
        ),
        (
            csid::VIDEO,
            type_id::VIDEO,
            40,
            Bytes::from_static(b"\x27\x01v2"),
        ),
    ];
    for (i, (cs, t, ts, payload)) in media.iter().enumerate() {
        EncodedMessage::new(*cs, *ts, *t, 1, payload.clone(), chunk_size).write_to(&mut pair.s2c);
        if i == 1 {
            pair.server.notify_unpublished(1);
            pair.server.notify_republished(1);
            while let Some(t) = pair.server.poll_transmit() {
                pair.s2c.extend_from_slice(&t);
            }
        }
    }
    pair.client.handle_input(&mut pair.s2c).expect("valid");
    let mut events = Vec::new();
    while let Some(ev) = pair.client.poll_event() {
        events.push(ev);
    }
    let got: Vec<(u8, u32, Bytes)> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Media {
                type_id,
                timestamp,
                payload,
            } => Some((*type_id, *timestamp, payload.clone())),
            _ => None,
        })
        .collect();
    let want: Vec<(u8, u32, Bytes)> = media.into_iter().map(|(_, t, ts, p)| (t, ts, p)).collect();
    assert_eq!(got, want);
    assert_eq!(
        statuses(&events),
        vec![
            "NetStream.Play.UnpublishNotify",
            "NetStream.Play.PublishNotify"
        ]
    );
    assert!(events.contains(&ClientEvent::StreamEof { stream_id: 1 }));

    pair.client.stop();
    pair.pump();
    assert_eq!(
        pair.server_events.last(),
        Some(&ServerEvent::PlayStopped { stream_id: 1 })
    );
}

#[test]
fn a_rejected_publish_reaches_the_client_as_bad_name_and_media_is_dropped() {
    let mut pair = Pair::new(
        ServerConfig::default(),
        Policy {
            reject_publish: Some("NetStream.Publish.BadName"),
            ..Policy::default()
        },
    );
    pair.client.publish("taken", PublishMode::Live);
    pair.pump();
    assert_eq!(
        statuses(&pair.client_events),
        vec!["NetStream.Publish.BadName"]
    );
    assert!(!pair
        .client_events
        .iter()
        .any(|e| matches!(e, ClientEvent::Publishing { .. })));
}

#[test]
fn a_rejected_connect_reaches_the_client_as_connect_rejected() {
    let mut pair = Pair::new(
        ServerConfig::default(),
        Policy {
            reject_connect: true,
            ..Policy::default()
        },
    );
    pair.client.publish("key", PublishMode::Live);
    pair.pump();
    assert_eq!(
        statuses(&pair.client_events),
        vec!["NetConnection.Connect.Rejected"]
    );
    assert!(!pair.client_events.contains(&ClientEvent::Connected));
    assert_eq!(
        pair.server_events.len(),
        1,
        "nothing after the rejected connect"
    );
}

#[test]
fn the_server_acknowledges_every_window_of_received_bytes() {
    let config = ServerConfig {
        window_ack_size: 4096,
        ..ServerConfig::default()
    };
    let mut pair = Pair::new(config, Policy::default());
    pair.client.publish("key", PublishMode::Live);
    pair.pump();
    for i in 0..10u32 {
        pair.client
            .send_media(type_id::VIDEO, i * 40, &[0x17; 3000]);
    }
    pair.pump();
    // Skip S0 S1 S2, then decode everything the server said.
    let mut out = pair.s2c_log.split_off(1 + 2 * 1536);
    let acks: Vec<u32> = RawPeer::default()
        .read(&mut out)
        .into_iter()
        .filter_map(|m| match ControlMessage::decode(m.type_id, &m.payload) {
            Ok(ControlMessage::Acknowledgement { sequence }) => Some(sequence),
            _ => None,
        })
        .collect();
    let received = pair.server.bytes_received();
    // 30 KB of media at a 4 KB window; each ack lands within one ~3 KB message of the window.
    assert!(acks.len() >= 5, "got {acks:?}");
    assert!(
        acks.windows(2)
            .all(|w| (4096..4096 + 3100).contains(&(w[1] - w[0]))),
        "{acks:?}"
    );
    assert!(u64::from(*acks.last().unwrap()) <= received);
    assert!(received - u64::from(*acks.last().unwrap()) < 4096);
}

// ---- raw peers ----

/// Decodes server output the way a client would (follows Set Chunk Size).
#[derive(Default)]
struct RawPeer {
    decoder: Option<ChunkDecoder>,
}

impl RawPeer {
    fn read(&mut self, buf: &mut BytesMut) -> Vec<RawMessage> {
        let decoder = self
            .decoder
            .get_or_insert_with(|| ChunkDecoder::new(&Limits::default()));
        let mut out = Vec::new();
        while let Some(m) = decoder.decode(buf).expect("server output decodes") {
            if m.type_id == type_id::SET_CHUNK_SIZE {
                let size = (&m.payload[..]).get_u32();
                decoder.set_chunk_size(size).expect("valid");
            }
            out.push(m);
        }
        out
    }
}

/// A server that completed the handshake with a hand-driven client, plus that client's
/// encoder and a decoder for the server's answers.
struct Raw {
    server: ServerSession,
    enc: ChunkEncoder,
    peer: RawPeer,
}

impl Raw {
    fn new() -> Self {
        let mut server = ServerSession::new(ServerConfig::default(), &RANDOM, 0);
        let mut hs = ClientHandshake::new(&RANDOM, 0, false);
        let mut c2s = BytesMut::new();
        let mut s2c = BytesMut::new();
        for _ in 0..10 {
            while let Some(t) = hs.poll_transmit() {
                c2s.extend_from_slice(&t);
            }
            server.handle_input(&mut c2s).expect("handshake");
            while let Some(t) = server.poll_transmit() {
                s2c.extend_from_slice(&t);
            }
            hs.handle_input(&mut s2c).expect("handshake");
            if hs.is_done() && server.is_established() {
                break;
            }
        }
        while let Some(t) = hs.poll_transmit() {
            c2s.extend_from_slice(&t);
        }
        server.handle_input(&mut c2s).expect("C2");
        assert!(server.is_established());
        Self {
            server,
            enc: ChunkEncoder::new(),
            peer: RawPeer::default(),
        }
    }

    fn send(&mut self, type_id: u8, stream_id: u32, payload: &[u8]) -> Result<(), SessionError> {
        let mut buf = BytesMut::new();
        self.enc.encode(3, 0, type_id, stream_id, payload, &mut buf);
        self.server.handle_input(&mut buf)
    }

    fn command(&mut self, stream_id: u32, cmd: &Command) -> Result<(), SessionError> {
        let mut payload = BytesMut::new();
        cmd.encode(&mut payload);
        self.send(type_id::COMMAND_AMF0, stream_id, &payload)
    }

    fn control(&mut self, msg: &ControlMessage) -> Result<(), SessionError> {
        let mut payload = BytesMut::new();
        msg.encode_payload(&mut payload);
        self.send(msg.type_id(), 0, &payload)
    }

    fn answers(&mut self) -> Vec<RawMessage> {
        let mut out = BytesMut::new();
        while let Some(t) = self.server.poll_transmit() {
            out.extend_from_slice(&t);
        }
        self.peer.read(&mut out)
    }

    fn connect(&mut self) {
        self.command(
            0,
            &command::connect(1.0, "live", "FMLE/3.0", "rtmp://h/live"),
        )
        .expect("connect");
        assert!(matches!(
            self.server.poll_event(),
            Some(ServerEvent::ConnectRequested { .. })
        ));
        self.server.accept_connect();
        self.answers();
    }
}

fn commands(msgs: &[RawMessage]) -> Vec<Command> {
    msgs.iter()
        .filter(|m| m.type_id == type_id::COMMAND_AMF0)
        .map(|m| Command::decode(m.type_id, &m.payload, 16).expect("server commands decode"))
        .collect()
}

#[test]
fn an_unknown_command_gets_call_failed_and_the_session_continues() {
    let mut raw = Raw::new();
    raw.connect();
    raw.command(
        0,
        &Command::new("launchMissiles", 5.0, Amf0Value::Null, vec![]),
    )
    .expect("not fatal");
    let answers = commands(&raw.answers());
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].name, "_error");
    assert_eq!(answers[0].transaction_id, 5.0);
    let code = command::property_str(answers[0].info().expect("info"), "code");
    assert_eq!(code, Some("NetConnection.Call.Failed"));

    raw.command(
        0,
        &Command::new("createStream", 6.0, Amf0Value::Null, vec![]),
    )
    .expect("still served");
    let answers = commands(&raw.answers());
    assert_eq!(answers[0].name, "_result");
    assert_eq!(answers[0].arg_f64(0), Some(1.0));
}

#[test]
fn an_unknown_command_without_transaction_id_is_ignored() {
    let mut raw = Raw::new();
    raw.connect();
    raw.command(0, &Command::new("someNotify", 0.0, Amf0Value::Null, vec![]))
        .expect("not fatal");
    assert!(raw.answers().is_empty());
}

#[test]
fn a_set_chunk_size_of_zero_closes_the_connection() {
    let mut raw = Raw::new();
    let err = raw
        .control(&ControlMessage::SetChunkSize(0))
        .expect_err("fatal");
    assert!(matches!(
        err,
        SessionError::Chunk(ChunkError::InvalidChunkSize { size: 0, .. })
    ));
}

#[test]
fn a_set_chunk_size_with_the_top_bit_set_closes_the_connection() {
    let mut raw = Raw::new();
    let err = raw
        .control(&ControlMessage::SetChunkSize(0x8000_0000))
        .expect_err("fatal");
    assert!(matches!(
        err,
        SessionError::Chunk(ChunkError::InvalidChunkSize {
            size: 0x8000_0000,
            ..
        })
    ));
}

#[test]
fn a_ping_request_is_answered_with_a_ping_response() {
    let mut raw = Raw::new();
    raw.control(&ControlMessage::UserControl(UserControl::PingRequest(
        0xdead_beef,
    )))
    .expect("ping");
    let answers = raw.answers();
    assert_eq!(answers.len(), 1);
    assert_eq!(
        ControlMessage::decode(answers[0].type_id, &answers[0].payload),
        Ok(ControlMessage::UserControl(UserControl::PingResponse(
            0xdead_beef
        )))
    );
    assert_eq!(answers[0].csid, csid::CONTROL);
}

#[test]
fn an_amf3_connect_is_understood_and_its_object_encoding_echoed() {
    let mut raw = Raw::new();
    // Type 17: format byte, AMF0 "connect", AMF0 1.0, AVM+ switch, AMF3 dynamic object.
    let mut p = vec![0x00];
    p.extend_from_slice(b"\x02\x00\x07connect");
    p.push(0x00);
    p.extend_from_slice(&1.0f64.to_be_bytes());
    p.push(0x11); // switch to AMF3
    p.extend_from_slice(&[0x0a, 0x0b, 0x01]); // object, dynamic traits, anonymous
    p.extend_from_slice(b"\x07app\x06\x0blive/"); // app: "live/"
    p.extend_from_slice(b"\x0btcUrl\x06\x2brtmp://127.0.0.1/live"); // 21 chars
    p.extend_from_slice(b"\x1dobjectEncoding\x04\x03");
    p.push(0x01); // end of dynamic members
    raw.send(type_id::COMMAND_AMF3, 0, &p)
        .expect("AMF3 connect");
    assert_eq!(
        raw.server.poll_event(),
        Some(ServerEvent::ConnectRequested {
            app: "live".into(),
            query: String::new(),
            tc_url: "rtmp://127.0.0.1/live".into()
        })
    );
    raw.server.accept_connect();
    let answers = raw.answers();
    let types: Vec<u8> = answers.iter().map(|m| m.type_id).collect();
    assert_eq!(
        types,
        vec![
            type_id::WINDOW_ACK_SIZE,
            type_id::SET_PEER_BANDWIDTH,
            type_id::SET_CHUNK_SIZE,
            type_id::USER_CONTROL,
            type_id::COMMAND_AMF0
        ]
    );
    let result = &commands(&answers)[0];
    assert_eq!(result.name, "_result");
    assert_eq!(result.transaction_id, 1.0);
    let info = result.info().expect("info");
    assert_eq!(
        command::property_str(info, "code"),
        Some("NetConnection.Connect.Success")
    );
    assert_eq!(command::property_f64(info, "objectEncoding"), Some(3.0));
    assert_eq!(
        command::property_str(&result.object, "fmsVer"),
        Some("FMS/3,0,1,123")
    );
}

#[test]
fn too_many_create_streams_close_the_connection() {
    let mut raw = Raw::new();
    raw.connect();
    for tx in 0..16 {
        raw.command(
            0,
            &Command::new("createStream", 2.0 + f64::from(tx), Amf0Value::Null, vec![]),
        )
        .expect("within the cap");
    }
    let err = raw
        .command(
            0,
            &Command::new("createStream", 99.0, Amf0Value::Null, vec![]),
        )
        .expect_err("over the cap");
    assert_eq!(err, SessionError::TooManyStreams { limit: 16 });
}

#[test]
fn media_on_a_stream_that_is_not_publishing_is_dropped() {
    let mut raw = Raw::new();
    raw.connect();
    raw.command(
        0,
        &Command::new("createStream", 2.0, Amf0Value::Null, vec![]),
    )
    .expect("createStream");
    raw.send(type_id::VIDEO, 1, b"\x17\x00frame")
        .expect("not fatal");
    raw.send(type_id::AUDIO, 7, b"\xaf\x01a")
        .expect("not fatal");
    assert_eq!(raw.server.poll_event(), None);
}

#[test]
fn an_aggregate_message_is_split_into_rebased_media_events() {
    let mut raw = Raw::new();
    raw.connect();
    raw.command(
        0,
        &Command::new("createStream", 2.0, Amf0Value::Null, vec![]),
    )
    .expect("createStream");
    raw.command(
        1,
        &Command::new(
            "publish",
            3.0,
            Amf0Value::Null,
            vec![
                Amf0Value::String("k".into()),
                Amf0Value::String("live".into()),
            ],
        ),
    )
    .expect("publish");
    assert!(matches!(
        raw.server.poll_event(),
        Some(ServerEvent::PublishRequested { stream_id: 1, .. })
    ));
    raw.server.accept_publish(1);
    let mut agg = Vec::new();
    for (t, ts, body) in [(9u8, 100u32, &b"vid"[..]), (8, 120, &b"au"[..])] {
        agg.push(t);
        agg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        agg.extend_from_slice(&ts.to_be_bytes()[1..]);
        agg.push(0);
        agg.extend_from_slice(&[0, 0, 0]);
        agg.extend_from_slice(body);
        agg.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
    }
    let mut buf = BytesMut::new();
    raw.enc
        .encode(4, 5000, type_id::AGGREGATE, 1, &agg, &mut buf);
    raw.server.handle_input(&mut buf).expect("aggregate");
    let media: Vec<(u8, u32, Vec<u8>)> = std::iter::from_fn(|| raw.server.poll_event())
        .filter_map(|e| match e {
            ServerEvent::Media {
                type_id,
                timestamp,
                payload,
                ..
            } => Some((type_id, timestamp, payload.to_vec())),
            _ => None,
        })
        .collect();
    assert_eq!(
        media,
        vec![(9, 5000, b"vid".to_vec()), (8, 5020, b"au".to_vec())]
    );
}

// ---- known answer: a real ffmpeg publisher ----

/// Client→server bytes of `ffmpeg -re -f lavfi -i testsrc -t 1 -c:v libx264 -f flv
/// rtmp://…/live/key`, captured by tools/fixtures/capture_publish.sh.
const FFMPEG_PUBLISH: &[u8] = include_bytes!("fixtures/sessions/ffmpeg_publish.bin");

fn feed_ffmpeg_publish(piece: usize) -> Vec<ServerEvent> {
    let mut server = ServerSession::new(ServerConfig::default(), &RANDOM, 0);
    let mut events = Vec::new();
    let mut buf = BytesMut::new();
    for chunk in FFMPEG_PUBLISH.chunks(piece) {
        buf.extend_from_slice(chunk);
        server
            .handle_input(&mut buf)
            .expect("ffmpeg's bytes are valid");
        while let Some(ev) = server.poll_event() {
            answer(&mut server, &ev, &Policy::default());
            events.push(ev);
        }
        while server.poll_transmit().is_some() {}
    }
    assert!(buf.is_empty(), "every byte consumed");
    events
}

#[test]
fn a_real_ffmpeg_publish_yields_connect_publish_metadata_and_sequence_header() {
    let events = feed_ffmpeg_publish(FFMPEG_PUBLISH.len());
    match &events[0] {
        ServerEvent::ConnectRequested { app, query, tc_url } => {
            assert_eq!(app, "live");
            assert_eq!(query, "");
            let tc_url = tc_url.as_str();
            assert!(tc_url.starts_with("rtmp://127.0.0.1:") && tc_url.ends_with("/live"));
        }
        other => panic!("first event {other:?}"),
    }
    assert_eq!(
        events[1],
        ServerEvent::PublishRequested {
            stream_id: 1,
            name: "key".into(),
            query: String::new(),
            mode: PublishMode::Live
        }
    );
    let media: Vec<(u8, Bytes)> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Media {
                stream_id: 1,
                type_id,
                payload,
                ..
            } => Some((*type_id, payload.clone())),
            _ => None,
        })
        .collect();
    let (t, metadata) = &media[0];
    assert_eq!(*t, type_id::DATA_AMF0);
    assert!(
        metadata.starts_with(b"\x02\x00\x0aonMetaData"),
        "{metadata:?}"
    );
    let (t, seq_header) = &media[1];
    assert_eq!(*t, type_id::VIDEO);
    assert_eq!(
        &seq_header[..2],
        &[0x17, 0x00],
        "AVC keyframe, sequence header"
    );
    let frames = media.iter().filter(|(t, _)| *t == type_id::VIDEO).count();
    assert!(
        frames >= 25,
        "one second at 25 fps: {frames} video messages"
    );
    assert_eq!(
        events.last(),
        Some(&ServerEvent::Unpublished { stream_id: 1 })
    );
}

#[test]
fn a_real_ffmpeg_publish_cut_into_odd_pieces_yields_the_same_events() {
    let whole = feed_ffmpeg_publish(FFMPEG_PUBLISH.len());
    for piece in [1, 7, 1000] {
        assert_eq!(feed_ffmpeg_publish(piece), whole, "piece size {piece}");
    }
}

#[test]
fn a_publisher_flooding_before_its_publish_is_answered_is_disconnected() {
    let mut raw = Raw::new();
    raw.connect();
    raw.command(
        0,
        &Command::new("createStream", 2.0, Amf0Value::Null, vec![]),
    )
    .expect("createStream");
    let publish = Command::new(
        "publish",
        3.0,
        Amf0Value::Null,
        vec![Amf0Value::String("k".into())],
    );
    raw.command(1, &publish).expect("publish");
    // The runtime has not answered yet: media is held back, bounded.
    let frame = vec![0x17u8; 64 * 1024];
    let mut result = Ok(());
    for _ in 0..100 {
        result = raw.send(type_id::VIDEO, 1, &frame);
        if result.is_err() {
            break;
        }
    }
    assert!(
        matches!(result, Err(SessionError::BacklogTooLarge { .. })),
        "{result:?}"
    );
}

#[test]
fn media_held_back_behind_a_pending_publish_is_reported_after_accept_in_order() {
    let mut raw = Raw::new();
    raw.connect();
    raw.command(
        0,
        &Command::new("createStream", 2.0, Amf0Value::Null, vec![]),
    )
    .expect("createStream");
    let publish = Command::new(
        "publish",
        3.0,
        Amf0Value::Null,
        vec![Amf0Value::String("k".into())],
    );
    raw.command(1, &publish).expect("publish");
    raw.send(type_id::VIDEO, 1, b"first").expect("held");
    raw.send(type_id::AUDIO, 1, b"second").expect("held");
    assert!(matches!(
        raw.server.poll_event(),
        Some(ServerEvent::PublishRequested { stream_id: 1, .. })
    ));
    assert_eq!(raw.server.poll_event(), None, "nothing before the answer");
    raw.server.accept_publish(1);
    let payloads: Vec<Bytes> = std::iter::from_fn(|| raw.server.poll_event())
        .filter_map(|e| match e {
            ServerEvent::Media { payload, .. } => Some(payload),
            _ => None,
        })
        .collect();
    assert_eq!(
        payloads,
        vec![Bytes::from_static(b"first"), Bytes::from_static(b"second")]
    );
}

#[test]
fn a_client_using_the_digest_handshake_publishes_like_any_other() {
    let mut pair = Pair::new(ServerConfig::default(), Policy::default());
    pair.client = ClientSession::new(
        ClientConfig {
            digest_handshake: true,
            ..client_config()
        },
        &RANDOM,
        0,
    );
    pair.client.publish("key", PublishMode::Live);
    pair.pump();
    assert!(pair
        .client_events
        .contains(&ClientEvent::Publishing { stream_id: 1 }));
}

#[test]
fn an_app_query_is_split_off_the_app_and_kept_for_the_decision() {
    let mut raw = Raw::new();
    raw.command(
        0,
        &command::connect(
            1.0,
            "live/?token=s3cret",
            "FMLE/3.0",
            "rtmp://h/live/?token=s3cret",
        ),
    )
    .expect("connect");
    assert_eq!(
        raw.server.poll_event(),
        Some(ServerEvent::ConnectRequested {
            app: "live".into(),
            query: "token=s3cret".into(),
            tc_url: "rtmp://h/live/?token=s3cret".into()
        })
    );
    assert_eq!(raw.server.app(), Some("live"));
    assert_eq!(raw.server.app_query(), "token=s3cret");
}

#[test]
fn a_query_on_the_tc_url_only_is_the_app_query() {
    let mut raw = Raw::new();
    raw.command(
        0,
        &command::connect(1.0, "live", "FMLE/3.0", "rtmp://h/live?sig=abc&exp=9"),
    )
    .expect("connect");
    match raw.server.poll_event() {
        Some(ServerEvent::ConnectRequested { app, query, tc_url }) => {
            assert_eq!(app, "live");
            assert_eq!(query, "sig=abc&exp=9");
            assert_eq!(tc_url.as_str(), "rtmp://h/live?sig=abc&exp=9");
            assert_eq!(
                format!("{tc_url} {tc_url:?}"),
                "rtmp://h/live?sig=***&exp=*** \"rtmp://h/live?sig=***&exp=***\"",
                "the tcUrl logs redacted"
            );
        }
        other => panic!("expected ConnectRequested, got {other:?}"),
    }
    assert_eq!(raw.server.app(), Some("live"));
    assert_eq!(raw.server.app_query(), "sig=abc&exp=9");
}

// ---- every NetConnection/NetStream command, byte-shaped the way real clients send it ----

/// One message the server sent, decoded for exact comparison.
#[derive(Debug, Clone, PartialEq)]
enum Said {
    Control(ControlMessage),
    Command {
        stream_id: u32,
        cmd: Command,
    },
    Data {
        stream_id: u32,
        values: Vec<Amf0Value>,
    },
}

fn said(msgs: &[RawMessage]) -> Vec<Said> {
    msgs.iter()
        .map(|m| match m.type_id {
            type_id::COMMAND_AMF0 => Said::Command {
                stream_id: m.stream_id,
                cmd: Command::decode(m.type_id, &m.payload, 16).expect("command decodes"),
            },
            type_id::DATA_AMF0 => Said::Data {
                stream_id: m.stream_id,
                values: command::decode_values(&m.payload, 16).expect("data decodes"),
            },
            t => Said::Control(ControlMessage::decode(t, &m.payload).expect("control decodes")),
        })
        .collect()
}

fn cmd_on(stream_id: u32, cmd: Command) -> Said {
    Said::Command { stream_id, cmd }
}

fn stream_begin(stream_id: u32) -> Said {
    Said::Control(ControlMessage::UserControl(UserControl::StreamBegin(
        stream_id,
    )))
}

fn str_arg(s: &str) -> Amf0Value {
    Amf0Value::String(s.into())
}

/// `_result(tx, null, undefined)`: the answer to releaseStream, FCPublish, _checkbw...
fn empty_result(tx: f64) -> Said {
    cmd_on(
        0,
        command::result(tx, Amf0Value::Null, vec![Amf0Value::Undefined]),
    )
}

impl Raw {
    /// connect (accepted) then createStream; returns the new stream id.
    fn connected_with_stream() -> (Self, u32) {
        let mut raw = Self::new();
        raw.connect();
        raw.command(
            0,
            &Command::new("createStream", 2.0, Amf0Value::Null, vec![]),
        )
        .expect("createStream");
        let answers = commands(&raw.answers());
        let id = answers[0].arg_f64(0).expect("a stream id") as u32;
        (raw, id)
    }

    /// `name(tx, null, args...)` on `stream_id`, expecting no error.
    fn call(&mut self, stream_id: u32, name: &str, tx: f64, args: Vec<Amf0Value>) {
        self.command(stream_id, &Command::new(name, tx, Amf0Value::Null, args))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    fn events(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }

    /// A publisher on `stream_id`, accepted, answers drained.
    fn publishing(&mut self, stream_id: u32, name: &str) {
        self.call(
            stream_id,
            "publish",
            5.0,
            vec![str_arg(name), str_arg("live")],
        );
        assert!(matches!(
            self.server.poll_event(),
            Some(ServerEvent::PublishRequested { .. })
        ));
        self.server.accept_publish(stream_id);
        self.answers();
    }

    /// A player on `stream_id`, accepted, answers drained.
    fn playing(&mut self, stream_id: u32, name: &str) {
        self.call(
            stream_id,
            "play",
            5.0,
            vec![str_arg(name), Amf0Value::Number(-2000.0)],
        );
        assert!(matches!(
            self.server.poll_event(),
            Some(ServerEvent::PlayRequested { .. })
        ));
        self.server.accept_play(stream_id);
        self.answers();
    }
}

#[test]
fn release_stream_and_fc_publish_are_answered_and_on_fc_publish_precedes_publish_start() {
    // ffmpeg's order: releaseStream(2), FCPublish(3), createStream(4), publish(5) on stream 1.
    let mut raw = Raw::new();
    raw.connect();
    raw.call(0, "releaseStream", 2.0, vec![str_arg("key")]);
    raw.call(0, "FCPublish", 3.0, vec![str_arg("key")]);
    raw.call(0, "createStream", 4.0, vec![]);
    assert_eq!(
        said(&raw.answers()),
        vec![
            empty_result(2.0),
            empty_result(3.0),
            cmd_on(
                0,
                command::result(4.0, Amf0Value::Null, vec![Amf0Value::Number(1.0)])
            ),
        ]
    );
    raw.call(1, "publish", 5.0, vec![str_arg("key"), str_arg("live")]);
    assert!(
        raw.answers().is_empty(),
        "nothing before the runtime answers"
    );
    raw.server.accept_publish(1);
    assert_eq!(
        said(&raw.answers()),
        vec![
            stream_begin(1),
            cmd_on(
                0,
                command::on_fc(
                    "onFCPublish",
                    "NetStream.Publish.Start",
                    "key is now published."
                )
            ),
            cmd_on(
                1,
                command::on_status("status", "NetStream.Publish.Start", "key is now published.")
            ),
        ]
    );
}

#[test]
fn publish_without_fc_publish_gets_no_on_fc_publish() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.call(id, "publish", 3.0, vec![str_arg("key")]);
    raw.server.accept_publish(id);
    let names: Vec<String> = commands(&raw.answers())
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["onStatus"]);
}

#[test]
fn publish_modes_live_record_and_append_are_reported_as_sent() {
    for (sent, mode) in [
        (Some("live"), PublishMode::Live),
        (Some("record"), PublishMode::Record),
        (Some("append"), PublishMode::Append),
        (None, PublishMode::Live),
    ] {
        let (mut raw, id) = Raw::connected_with_stream();
        let mut args = vec![str_arg("cam?k=v")];
        args.extend(sent.map(str_arg));
        raw.call(id, "publish", 3.0, args);
        assert_eq!(
            raw.events(),
            vec![ServerEvent::PublishRequested {
                stream_id: id,
                name: "cam".into(),
                query: "k=v".into(),
                mode
            }],
            "publish type {sent:?}"
        );
    }
}

#[test]
fn publish_with_an_empty_name_is_answered_with_bad_name_and_not_reported() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.call(id, "publish", 3.0, vec![str_arg(""), str_arg("live")]);
    assert!(raw.events().is_empty());
    let answers = commands(&raw.answers());
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].name, "onStatus");
    let info = answers[0].info().expect("info");
    assert_eq!(command::property_str(info, "level"), Some("error"));
    assert_eq!(
        command::property_str(info, "code"),
        Some("NetStream.Publish.BadName")
    );
}

#[test]
fn a_rejected_publish_sends_the_given_code_on_the_stream() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.call(id, "publish", 3.0, vec![str_arg("taken"), str_arg("live")]);
    raw.server.reject_publish(
        id,
        "NetStream.Publish.BadName",
        "taken is already published",
    );
    assert_eq!(
        said(&raw.answers()),
        vec![cmd_on(
            id,
            command::on_status(
                "error",
                "NetStream.Publish.BadName",
                "taken is already published"
            )
        )]
    );
}

#[test]
fn fc_unpublish_answers_on_fc_unpublish_and_result_and_reports_unpublished() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.publishing(id, "key");
    // ffmpeg: FCUnpublish(tx, null, playpath) on stream 0, then deleteStream.
    raw.call(0, "FCUnpublish", 6.0, vec![str_arg("key")]);
    assert_eq!(
        raw.events(),
        vec![ServerEvent::Unpublished { stream_id: id }]
    );
    assert_eq!(
        said(&raw.answers()),
        vec![
            cmd_on(
                0,
                command::on_fc("onFCUnpublish", "NetStream.Unpublish.Success", "key")
            ),
            empty_result(6.0),
        ]
    );
    // The deleteStream that follows finds nothing left to stop.
    raw.call(
        0,
        "deleteStream",
        7.0,
        vec![Amf0Value::Number(f64::from(id))],
    );
    assert!(raw.events().is_empty());
}

#[test]
fn fc_unpublish_of_another_name_leaves_the_publisher_alone() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.publishing(id, "key");
    raw.call(0, "FCUnpublish", 6.0, vec![str_arg("other")]);
    assert!(raw.events().is_empty());
    raw.send(type_id::VIDEO, id, b"\x17\x01frame")
        .expect("media");
    assert!(matches!(
        raw.events().as_slice(),
        [ServerEvent::Media { .. }]
    ));
}

#[test]
fn delete_stream_stops_a_publisher_and_then_its_media_is_dropped() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.publishing(id, "key");
    raw.call(
        0,
        "deleteStream",
        6.0,
        vec![Amf0Value::Number(f64::from(id))],
    );
    assert_eq!(
        raw.events(),
        vec![ServerEvent::Unpublished { stream_id: id }]
    );
    raw.send(type_id::VIDEO, id, b"\x17\x01late")
        .expect("not fatal");
    assert!(
        raw.events().is_empty(),
        "media after deleteStream is dropped"
    );
}

#[test]
fn delete_stream_stops_a_player() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.playing(id, "key");
    raw.call(
        0,
        "deleteStream",
        6.0,
        vec![Amf0Value::Number(f64::from(id))],
    );
    assert_eq!(
        raw.events(),
        vec![ServerEvent::PlayStopped { stream_id: id }]
    );
}

#[test]
fn close_stream_on_the_stream_stops_a_publisher_and_the_stream_can_publish_again() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.publishing(id, "key");
    // NetStream.close(): closeStream(0, null) on the stream itself.
    raw.call(id, "closeStream", 0.0, vec![]);
    assert_eq!(
        raw.events(),
        vec![ServerEvent::Unpublished { stream_id: id }]
    );
    raw.call(id, "publish", 7.0, vec![str_arg("key2"), str_arg("live")]);
    assert!(matches!(
        raw.events().as_slice(),
        [ServerEvent::PublishRequested { name, .. }] if name == "key2"
    ));
}

#[test]
fn close_stream_on_the_stream_stops_a_player() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.playing(id, "key");
    raw.call(id, "closeStream", 0.0, vec![]);
    assert_eq!(
        raw.events(),
        vec![ServerEvent::PlayStopped { stream_id: id }]
    );
    assert!(raw.answers().is_empty(), "closeStream has no answer");
}

#[test]
fn get_stream_length_is_answered_with_a_result_carrying_a_number() {
    let (mut raw, id) = Raw::connected_with_stream();
    // librtmp: getStreamLength(tx, null, playpath) on the play stream, before play.
    raw.call(id, "getStreamLength", 3.0, vec![str_arg("key")]);
    assert_eq!(
        said(&raw.answers()),
        vec![cmd_on(
            0,
            command::result(3.0, Amf0Value::Null, vec![Amf0Value::Number(0.0)])
        )]
    );
    assert!(raw.events().is_empty());
}

#[test]
fn checkbw_is_answered_with_an_empty_result() {
    let mut raw = Raw::new();
    raw.connect();
    // librtmp's SendCheckBW: _checkbw(tx, null) on stream 0.
    raw.call(0, "_checkbw", 2.0, vec![]);
    assert_eq!(said(&raw.answers()), vec![empty_result(2.0)]);
}

#[test]
fn accept_play_sends_stream_begin_reset_start_sample_access_and_data_start_on_the_stream() {
    let (mut raw, id) = Raw::connected_with_stream();
    assert_eq!(id, 1);
    // ffmpeg: play(tx, null, playpath, -2000) on the created stream.
    raw.call(
        id,
        "play",
        3.0,
        vec![str_arg("key"), Amf0Value::Number(-2000.0)],
    );
    assert_eq!(
        raw.events(),
        vec![ServerEvent::PlayRequested {
            stream_id: id,
            name: "key".into(),
            query: String::new(),
            start: -2000.0,
            duration: -1.0,
            reset: true,
        }]
    );
    raw.server.accept_play(id);
    assert_eq!(
        said(&raw.answers()),
        vec![
            stream_begin(id),
            cmd_on(
                id,
                command::on_status(
                    "status",
                    "NetStream.Play.Reset",
                    "Playing and resetting key."
                )
            ),
            cmd_on(
                id,
                command::on_status("status", "NetStream.Play.Start", "Started playing key.")
            ),
            Said::Data {
                stream_id: id,
                values: command::sample_access().to_vec()
            },
            Said::Data {
                stream_id: id,
                values: command::data_start().to_vec()
            },
        ]
    );
}

#[test]
fn stream_begin_names_the_stream_that_plays_not_stream_one() {
    let mut raw = Raw::new();
    raw.connect();
    for tx in 2..5 {
        raw.call(0, "createStream", f64::from(tx), vec![]);
    }
    raw.answers();
    raw.call(3, "play", 5.0, vec![str_arg("key")]);
    raw.server.accept_play(3);
    let answers = said(&raw.answers());
    assert_eq!(answers[0], stream_begin(3));
    assert!(answers[1..].iter().all(|s| match s {
        Said::Command { stream_id, .. } | Said::Data { stream_id, .. } => *stream_id == 3,
        Said::Control(_) => false,
    }));
}

#[test]
fn play_start_duration_and_reset_arguments_are_reported_and_reset_false_sends_no_play_reset() {
    let (mut raw, id) = Raw::connected_with_stream();
    // Flash NetStream.play("key?t=1", -1, 5000, false): live only, 5 s, no reset.
    raw.call(
        id,
        "play",
        0.0,
        vec![
            str_arg("key?t=1"),
            Amf0Value::Number(-1000.0),
            Amf0Value::Number(5000.0),
            Amf0Value::Boolean(false),
        ],
    );
    assert_eq!(
        raw.events(),
        vec![ServerEvent::PlayRequested {
            stream_id: id,
            name: "key".into(),
            query: "t=1".into(),
            start: -1000.0,
            duration: 5000.0,
            reset: false,
        }]
    );
    raw.server.accept_play(id);
    let codes: Vec<String> = commands(&raw.answers())
        .iter()
        .filter_map(|c| c.info().and_then(|i| command::property_str(i, "code")))
        .map(str::to_owned)
        .collect();
    assert_eq!(codes, vec!["NetStream.Play.Start"]);
}

#[test]
fn play_with_a_numeric_reset_flag_is_understood() {
    // Some clients (old FMLE builds, rtmpdump scripts) send reset as a number.
    let (mut raw, id) = Raw::connected_with_stream();
    raw.call(
        id,
        "play",
        0.0,
        vec![
            str_arg("key"),
            Amf0Value::Number(0.0),
            Amf0Value::Number(-1.0),
            Amf0Value::Number(0.0),
        ],
    );
    assert!(matches!(
        raw.events().as_slice(),
        [ServerEvent::PlayRequested { reset: false, start, .. }] if *start == 0.0
    ));
}

fn play2_object(name: &str, start: f64, len: f64, transition: &str) -> Amf0Value {
    Amf0Value::Object(vec![
        ("streamName".into(), str_arg(name)),
        ("oldStreamName".into(), str_arg("")),
        ("start".into(), Amf0Value::Number(start)),
        ("len".into(), Amf0Value::Number(len)),
        ("offset".into(), Amf0Value::Number(-1.0)),
        ("transition".into(), str_arg(transition)),
    ])
}

#[test]
fn play2_carries_its_parameters_in_an_object_and_is_reported_like_play() {
    let (mut raw, id) = Raw::connected_with_stream();
    // NetStream.play2(NetStreamPlayOptions): play2(0, null, {streamName, oldStreamName, start,
    // len, offset, transition}) on the stream.
    raw.call(
        id,
        "play2",
        0.0,
        vec![play2_object("key?t=2", -2.0, -1.0, "reset")],
    );
    assert_eq!(
        raw.events(),
        vec![ServerEvent::PlayRequested {
            stream_id: id,
            name: "key".into(),
            query: "t=2".into(),
            start: -2.0,
            duration: -1.0,
            reset: true,
        }]
    );
    raw.server.accept_play(id);
    let answers = said(&raw.answers());
    assert_eq!(answers[0], stream_begin(id));
    assert!(answers.contains(&cmd_on(
        id,
        command::on_status("status", "NetStream.Play.Start", "Started playing key.")
    )));
}

#[test]
fn play2_switching_a_playing_stream_that_the_runtime_refuses_keeps_the_player_playing() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.playing(id, "low");
    raw.call(
        id,
        "play2",
        0.0,
        vec![play2_object("high", 0.0, -1.0, "switch")],
    );
    assert!(matches!(
        raw.events().as_slice(),
        [ServerEvent::PlayRequested { name, .. }] if name == "high"
    ));
    raw.server
        .reject_play(id, "NetStream.Play.Failed", "switching is not supported");
    raw.answers();
    // Still a player of "low": pause is served and closing reports PlayStopped.
    raw.call(
        id,
        "pause",
        0.0,
        vec![Amf0Value::Boolean(true), Amf0Value::Number(0.0)],
    );
    assert_eq!(
        raw.events(),
        vec![ServerEvent::Paused {
            stream_id: id,
            paused: true
        }]
    );
    raw.call(id, "closeStream", 0.0, vec![]);
    assert_eq!(
        raw.events(),
        vec![ServerEvent::PlayStopped { stream_id: id }]
    );
}

#[test]
fn pause_and_unpause_are_reported_and_answered_with_notify_statuses() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.playing(id, "key");
    // librtmp RTMP_SendPause: pause(0, null, true, position ms) on the stream.
    raw.call(
        id,
        "pause",
        0.0,
        vec![Amf0Value::Boolean(true), Amf0Value::Number(1234.0)],
    );
    assert_eq!(
        raw.events(),
        vec![ServerEvent::Paused {
            stream_id: id,
            paused: true
        }]
    );
    assert_eq!(
        said(&raw.answers()),
        vec![cmd_on(
            id,
            command::on_status("status", "NetStream.Pause.Notify", "Paused key.")
        )]
    );
    raw.call(
        id,
        "pause",
        0.0,
        vec![Amf0Value::Boolean(false), Amf0Value::Number(1234.0)],
    );
    assert_eq!(
        raw.events(),
        vec![ServerEvent::Paused {
            stream_id: id,
            paused: false
        }]
    );
    assert_eq!(
        said(&raw.answers()),
        vec![
            stream_begin(id),
            cmd_on(
                id,
                command::on_status("status", "NetStream.Unpause.Notify", "Unpaused key.")
            )
        ]
    );
}

#[test]
fn pause_on_a_stream_that_is_not_playing_is_ignored() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.call(
        id,
        "pause",
        0.0,
        vec![Amf0Value::Boolean(true), Amf0Value::Number(0.0)],
    );
    assert!(raw.events().is_empty());
    assert!(raw.answers().is_empty());
}

#[test]
fn receive_audio_and_receive_video_are_reported_per_kind() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.playing(id, "key");
    // NetStream.receiveVideo(false): receiveVideo(0, null, false) on the stream.
    raw.call(id, "receiveVideo", 0.0, vec![Amf0Value::Boolean(false)]);
    raw.call(id, "receiveAudio", 0.0, vec![Amf0Value::Boolean(false)]);
    raw.call(id, "receiveVideo", 0.0, vec![Amf0Value::Boolean(true)]);
    assert_eq!(
        raw.events(),
        vec![
            ServerEvent::ReceiveChanged {
                stream_id: id,
                audio: None,
                video: Some(false)
            },
            ServerEvent::ReceiveChanged {
                stream_id: id,
                audio: Some(false),
                video: None
            },
            ServerEvent::ReceiveChanged {
                stream_id: id,
                audio: None,
                video: Some(true)
            },
        ]
    );
    assert!(raw.answers().is_empty(), "no answer, as FMS");
}

#[test]
fn receive_video_from_a_stream_that_is_not_playing_is_ignored() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.publishing(id, "key");
    raw.call(id, "receiveVideo", 0.0, vec![Amf0Value::Boolean(false)]);
    assert!(raw.events().is_empty());
}

#[test]
fn an_unknown_command_on_a_net_stream_gets_call_failed_on_stream_zero() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.call(id, "seekToTheMoon", 4.0, vec![]);
    assert_eq!(
        said(&raw.answers()),
        vec![cmd_on(0, command::call_failed(4.0, "seekToTheMoon"))]
    );
}

#[test]
fn set_data_frame_metadata_is_reported_as_on_metadata_without_the_prefix() {
    let (mut raw, id) = Raw::connected_with_stream();
    raw.publishing(id, "key");
    raw.send(type_id::DATA_AMF0, id, &set_data_frame(&metadata_body()))
        .expect("metadata");
    assert_eq!(
        raw.events(),
        vec![ServerEvent::Media {
            stream_id: id,
            type_id: type_id::DATA_AMF0,
            timestamp: 0,
            payload: Bytes::from(metadata_body()),
        }]
    );
}

// ---- E-RTMP reconnect ----

/// A connected pair whose server already answered `connect`.
fn connected_pair() -> Pair {
    let mut pair = Pair::new(ServerConfig::default(), Policy::default());
    pair.client.play("cam");
    pair.pump();
    assert!(pair.client.is_connected());
    pair
}

#[test]
fn our_client_advertises_the_reconnect_bit_and_the_server_records_it() {
    let pair = connected_pair();
    assert_eq!(pair.server.caps_ex(), command::CAPS_EX_RECONNECT);
    assert!(pair.server.can_reconnect());
}

#[test]
fn a_connect_without_caps_ex_cannot_be_asked_to_reconnect() {
    let mut raw = Raw::new();
    let connect = command::connect_with_caps(1.0, "live", "FMLE/3.0", "rtmp://h/live", 0);
    assert_eq!(connect.object.get("capsEx"), None);
    raw.command(0, &connect).expect("connect");
    assert!(matches!(
        raw.server.poll_event(),
        Some(ServerEvent::ConnectRequested { .. })
    ));
    raw.server.accept_connect();
    raw.answers();
    assert_eq!(raw.server.caps_ex(), 0);
    assert!(!raw.server.can_reconnect());
    assert!(!raw.server.request_reconnect(Some("rtmp://b/live")));
    assert!(
        raw.answers().is_empty(),
        "nothing is sent to a client without the bit"
    );
}

#[test]
fn a_client_told_to_announce_no_caps_ex_is_not_asked_to_reconnect() {
    let mut pair = Pair::new(ServerConfig::default(), Policy::default());
    pair.client.set_caps_ex(0);
    pair.client.play("cam");
    pair.pump();
    assert!(pair.client.is_connected());
    assert!(!pair.server.can_reconnect());
}

#[test]
fn caps_ex_that_is_not_a_whole_number_counts_as_no_capability() {
    for bad in [
        Amf0Value::Number(1.5),
        Amf0Value::Number(-1.0),
        Amf0Value::string("1"),
    ] {
        let mut raw = Raw::new();
        let mut connect = command::connect(1.0, "live", "FMLE/3.0", "rtmp://h/live");
        if let Amf0Value::Object(props) = &mut connect.object {
            for (k, v) in props.iter_mut() {
                if k == "capsEx" {
                    *v = bad.clone();
                }
            }
        }
        raw.command(0, &connect).expect("connect");
        assert!(!raw.server.can_reconnect(), "{bad:?}");
    }
}

#[test]
fn a_reconnect_request_is_an_on_status_on_stream_zero_with_every_field() {
    let mut raw = Raw::new();
    raw.connect();
    assert!(raw.server.can_reconnect());
    assert!(raw
        .server
        .request_reconnect(Some("rtmp://edge-b:1935/live")));
    let msgs = raw.answers();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].stream_id, 0, "message stream 0");
    assert_eq!(msgs[0].type_id, type_id::COMMAND_AMF0);
    let cmd = &commands(&msgs)[0];
    assert_eq!(cmd.name, "onStatus");
    assert_eq!(cmd.transaction_id, 0.0);
    assert_eq!(cmd.object, Amf0Value::Null);
    let info = cmd.info().expect("info object");
    assert_eq!(command::property_str(info, "level"), Some("status"));
    assert_eq!(
        command::property_str(info, "code"),
        Some("NetConnection.Connect.ReconnectRequest")
    );
    assert!(command::property_str(info, "description").is_some_and(|d| !d.is_empty()));
    assert_eq!(
        command::property_str(info, "tcUrl"),
        Some("rtmp://edge-b:1935/live")
    );

    // Without a redirect URL there is no tcUrl property at all.
    assert!(raw.server.request_reconnect(None));
    let cmd = &commands(&raw.answers())[0];
    assert_eq!(cmd.info().and_then(|i| i.get("tcUrl")), None);
}

#[test]
fn a_reconnect_request_before_connect_is_answered_is_not_sent() {
    let mut raw = Raw::new();
    raw.command(
        0,
        &command::connect(1.0, "live", "FMLE/3.0", "rtmp://h/live"),
    )
    .expect("connect");
    assert!(raw.server.can_reconnect());
    assert!(!raw.server.request_reconnect(None), "connect still pending");
}

#[test]
fn the_client_reports_a_reconnect_request_with_its_tc_url_after_the_status() {
    let mut pair = connected_pair();
    pair.client_events.clear();
    assert!(pair.server.request_reconnect(Some("rtmp://edge-b/live")));
    pair.pump();
    let at = pair
        .client_events
        .iter()
        .position(|e| matches!(e, ClientEvent::ReconnectRequest { .. }))
        .expect("reconnect event");
    assert!(matches!(
        &pair.client_events[at - 1],
        ClientEvent::Status { level, code, redirect: None, .. }
            if level == "status" && code == "NetConnection.Connect.ReconnectRequest"
    ));
    match &pair.client_events[at] {
        ClientEvent::ReconnectRequest {
            tc_url,
            description,
        } => {
            assert_eq!(tc_url.as_deref(), Some("rtmp://edge-b/live"));
            assert!(!description.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // The session goes on: the play still works.
    assert!(pair.client.stream_id().is_some());

    pair.client_events.clear();
    assert!(pair.server.request_reconnect(None));
    pair.pump();
    assert!(pair
        .client_events
        .iter()
        .any(|e| matches!(e, ClientEvent::ReconnectRequest { tc_url: None, .. })));
}

#[test]
fn the_client_reports_the_redirect_of_a_status_from_its_ex_object() {
    let mut pair = connected_pair();
    pair.client_events.clear();
    // What SRS sends to move a client: `_error` NetConnection.Connect.Rejected with
    // `ex: {code: 302, redirect}`.
    let rejected = Command::new(
        "onStatus",
        0.0,
        Amf0Value::Null,
        vec![Amf0Value::object([
            ("level", Amf0Value::string("error")),
            ("code", Amf0Value::string("NetConnection.Connect.Rejected")),
            ("description", Amf0Value::string("RTMP 302 Redirect")),
            (
                "ex",
                Amf0Value::object([
                    ("code", Amf0Value::Number(302.0)),
                    ("redirect", Amf0Value::string("rtmp://origin-2/live")),
                ]),
            ),
        ])],
    );
    let mut payload = BytesMut::new();
    rejected.encode(&mut payload);
    let mut wire = BytesMut::new();
    let mut enc = ChunkEncoder::new();
    enc.set_chunk_size(ServerConfig::default().chunk_size);
    enc.encode(3, 0, type_id::COMMAND_AMF0, 0, &payload, &mut wire);
    pair.client.handle_input(&mut wire).expect("decodes");
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert_eq!(
        events,
        vec![ClientEvent::Status {
            level: "error".into(),
            code: "NetConnection.Connect.Rejected".into(),
            description: "RTMP 302 Redirect".into(),
            redirect: Some("rtmp://origin-2/live".into()),
        }]
    );
}
