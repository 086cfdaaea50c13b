//! Known-answer tests from real sessions: ffmpeg, rtmpdump and GStreamer talking RTMP to
//! rtmp-edge, both directions of each TCP connection recorded byte for byte, decoded here with
//! the project's own code.
//!
//! Client → server bytes are fed to a [`ServerSession`] that accepts every request; the exact
//! event sequence is asserted and every byte must be consumed. Server → client bytes are fed
//! (after S0 S1 S2) to a [`ChunkDecoder`]; they must form whole messages with nothing left
//! over, and the message types, commands and status codes are asserted.
//!
//! The captures are regenerated (against a release build of this server, through a recording
//! relay) with
//!
//!     tools/fixtures/capture_sessions.sh
//!
//! which rewrites tests/fixtures/sessions/*.c2s.bin, *.s2c.bin and VERSIONS.txt (the client
//! versions used). The figures below then need updating from the failures this file prints.

use std::collections::BTreeMap;

use bytes::BytesMut;
use rtmp_edge::rtmp::amf0::Amf0Value;
use rtmp_edge::rtmp::chunk::ChunkDecoder;
use rtmp_edge::rtmp::command::{self, Command};
use rtmp_edge::rtmp::handshake::{PACKET_LEN, RANDOM_LEN, RTMP_VERSION};
use rtmp_edge::rtmp::message::{type_id, ControlMessage, UserControl};
use rtmp_edge::rtmp::session::{ServerConfig, ServerEvent, ServerSession};
use rtmp_edge::rtmp::Limits;

/// C0/S0 plus C1/S1 plus C2/S2.
const HANDSHAKE_LEN: usize = 1 + 2 * PACKET_LEN;

macro_rules! session {
    ($name:literal) => {
        (
            include_bytes!(concat!("fixtures/sessions/", $name, ".c2s.bin")) as &[u8],
            include_bytes!(concat!("fixtures/sessions/", $name, ".s2c.bin")) as &[u8],
        )
    };
}

/// What a server saw from a client, summarised.
#[derive(Debug, PartialEq)]
struct Served {
    /// Non-media events in order; runs of media collapse into one `media a=.. v=.. d=..` line.
    events: Vec<String>,
    /// AVC keyframes (frame type 1, AVC NALU packets; sequence headers not counted).
    keyframes: usize,
    /// The first video message is an AVC sequence header (0x17 0x00).
    first_video_is_avc_sequence_header: bool,
    /// The first audio message is an AAC sequence header (sound format 10, packet type 0).
    first_audio_is_aac_sequence_header: bool,
    /// Data messages by name (`onMetaData`, ...).
    data: BTreeMap<String, usize>,
}

/// An AVC NALU packet of a keyframe: frame type 1, codec 7, packet type 1.
fn is_avc_keyframe(payload: &[u8]) -> bool {
    payload.len() >= 2 && payload[0] == 0x17 && payload[1] == 1
}

/// The name (and status code, if any) of an AMF0 command or data message.
fn name_and_code(name: &str, info: Option<&Amf0Value>) -> String {
    match info.and_then(|info| command::property_str(info, "code")) {
        Some(code) => format!("{name} {code}"),
        None => name.to_string(),
    }
}

/// The name of an AMF0 data message and the first object after it.
fn data_message(payload: &[u8]) -> (String, Option<Amf0Value>) {
    let values = command::decode_values(payload, 32).expect("valid data message");
    let mut values = values.into_iter();
    match values.next() {
        Some(Amf0Value::String(name)) => (
            name,
            values.find(|v| matches!(v, Amf0Value::Object(_) | Amf0Value::EcmaArray(_))),
        ),
        other => panic!("data message starting with {other:?}"),
    }
}

fn media_line(audio: usize, video: usize, data: usize) -> String {
    format!("media a={audio} v={video} d={data}")
}

fn describe(event: &ServerEvent) -> String {
    match event {
        ServerEvent::ConnectRequested { app, tc_url, .. } => format!("connect app={app} tcUrl={tc_url}"),
        ServerEvent::PublishRequested {
            stream_id,
            name,
            query,
            mode,
        } => format!("publish {stream_id} name={name} query={query} mode={mode:?}"),
        ServerEvent::PlayRequested {
            stream_id,
            name,
            query,
            start,
            duration,
            reset,
        } => format!(
            "play {stream_id} name={name} query={query} start={start} duration={duration} reset={reset}"
        ),
        ServerEvent::Unpublished { stream_id } => format!("unpublished {stream_id}"),
        ServerEvent::PlayStopped { stream_id } => format!("play stopped {stream_id}"),
        other => format!("{other:?}"),
    }
}

/// Feeds a client's bytes to a server session that accepts everything, `piece` bytes at a time.
fn serve(c2s: &[u8], piece: usize) -> Served {
    let mut server = ServerSession::new(ServerConfig::default(), &[7; RANDOM_LEN], 0);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let (mut audio, mut video, mut data) = (0, 0, 0);
    let mut keyframes = 0;
    let mut first_video = None;
    let mut first_audio = None;
    let mut data_names = BTreeMap::new();
    for bytes in c2s.chunks(piece) {
        buf.extend_from_slice(bytes);
        server
            .handle_input(&mut buf)
            .expect("a real client speaks valid RTMP");
        // Accepting a request replays what was held back behind it: drain again after each.
        while let Some(event) = server.poll_event() {
            match &event {
                ServerEvent::ConnectRequested { .. } => server.accept_connect(),
                ServerEvent::PublishRequested { stream_id, .. } => {
                    server.accept_publish(*stream_id)
                }
                ServerEvent::PlayRequested { stream_id, .. } => server.accept_play(*stream_id),
                _ => {}
            }
            if let ServerEvent::Media {
                type_id, payload, ..
            } = &event
            {
                match *type_id {
                    type_id::AUDIO => {
                        audio += 1;
                        first_audio.get_or_insert(payload.clone());
                    }
                    type_id::VIDEO => {
                        video += 1;
                        keyframes += usize::from(is_avc_keyframe(payload));
                        first_video.get_or_insert(payload.clone());
                    }
                    _ => {
                        data += 1;
                        *data_names.entry(data_message(payload).0).or_insert(0) += 1;
                    }
                }
                continue;
            }
            if audio + video + data > 0 {
                events.push(media_line(audio, video, data));
                (audio, video, data) = (0, 0, 0);
            }
            events.push(describe(&event));
        }
        while server.poll_transmit().is_some() {}
    }
    if audio + video + data > 0 {
        events.push(media_line(audio, video, data));
    }
    assert!(buf.is_empty(), "{} bytes not consumed", buf.len());
    assert_eq!(server.bytes_received(), c2s.len() as u64);
    Served {
        events,
        keyframes,
        first_video_is_avc_sequence_header: first_video.is_some_and(|p| is_avc_sequence_header(&p)),
        first_audio_is_aac_sequence_header: first_audio.is_some_and(|p| is_aac_sequence_header(&p)),
        data: data_names,
    }
}

/// What a client received from the server, summarised.
#[derive(Debug, PartialEq)]
struct Received {
    /// Messages per type id.
    types: BTreeMap<u8, usize>,
    /// Commands and data messages in order: the name, then the status code when there is one.
    commands: Vec<String>,
    /// User control events in order.
    user_control: Vec<String>,
    /// Chunk size in force at the end.
    chunk_size: u32,
    /// AVC keyframes (sequence headers not counted).
    keyframes: usize,
    first_video_is_avc_sequence_header: bool,
    first_audio_is_aac_sequence_header: bool,
}

fn is_avc_sequence_header(payload: &[u8]) -> bool {
    payload.len() >= 2 && payload[0] == 0x17 && payload[1] == 0
}

fn is_aac_sequence_header(payload: &[u8]) -> bool {
    payload.len() >= 2 && payload[0] >> 4 == 10 && payload[1] == 0
}

/// Decodes a server's bytes as a client would, after the handshake, `piece` bytes at a time.
fn receive(s2c: &[u8], piece: usize) -> Received {
    assert!(s2c.len() >= HANDSHAKE_LEN, "no complete handshake");
    assert_eq!(s2c[0], RTMP_VERSION, "S0");
    let mut decoder = ChunkDecoder::new(&Limits::default());
    let mut buf = BytesMut::new();
    let mut types = BTreeMap::new();
    let mut commands = Vec::new();
    let mut user_control = Vec::new();
    let mut keyframes = 0;
    let mut first_video = None;
    let mut first_audio = None;
    for bytes in s2c[HANDSHAKE_LEN..].chunks(piece) {
        buf.extend_from_slice(bytes);
        while let Some(msg) = decoder
            .decode(&mut buf)
            .expect("the server sends valid chunks")
        {
            *types.entry(msg.type_id).or_insert(0) += 1;
            match msg.type_id {
                type_id::SET_CHUNK_SIZE..=type_id::SET_PEER_BANDWIDTH => {
                    let control =
                        ControlMessage::decode(msg.type_id, &msg.payload).expect("valid control");
                    match control {
                        ControlMessage::SetChunkSize(size) => {
                            decoder.set_chunk_size(size).expect("legal chunk size")
                        }
                        ControlMessage::UserControl(event) => user_control.push(match event {
                            UserControl::StreamBegin(id) => format!("StreamBegin {id}"),
                            UserControl::StreamEof(id) => format!("StreamEOF {id}"),
                            UserControl::StreamIsRecorded(id) => format!("StreamIsRecorded {id}"),
                            UserControl::PingRequest(_) => "PingRequest".to_string(),
                            other => format!("{other:?}"),
                        }),
                        _ => {}
                    }
                }
                type_id::COMMAND_AMF0 => {
                    let cmd =
                        Command::decode(msg.type_id, &msg.payload, 32).expect("valid command");
                    commands.push(name_and_code(&cmd.name, cmd.info()));
                }
                type_id::DATA_AMF0 => {
                    let (name, info) = data_message(&msg.payload);
                    commands.push(name_and_code(&name, info.as_ref()));
                }
                type_id::VIDEO => {
                    keyframes += usize::from(is_avc_keyframe(&msg.payload));
                    first_video.get_or_insert(msg.payload.clone());
                }
                type_id::AUDIO => {
                    first_audio.get_or_insert(msg.payload.clone());
                }
                _ => {}
            }
        }
    }
    assert!(buf.is_empty(), "{} bytes left: a partial chunk", buf.len());
    assert_eq!(decoder.buffered_bytes(), 0, "a message was cut off mid-way");
    assert_eq!(decoder.bytes_received(), (s2c.len() - HANDSHAKE_LEN) as u64);
    Received {
        types,
        commands,
        user_control,
        chunk_size: decoder.chunk_size(),
        keyframes,
        first_video_is_avc_sequence_header: first_video.is_some_and(|p| is_avc_sequence_header(&p)),
        first_audio_is_aac_sequence_header: first_audio.is_some_and(|p| is_aac_sequence_header(&p)),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn type_counts(items: &[(u8, usize)]) -> BTreeMap<u8, usize> {
    items.iter().copied().collect()
}

/// What the server answers a publisher that connects, publishes and unpublishes.
fn publisher_received(commands: &[&str]) -> Received {
    Received {
        types: type_counts(&[
            (type_id::SET_CHUNK_SIZE, 1),
            (type_id::USER_CONTROL, 2),
            (type_id::WINDOW_ACK_SIZE, 1),
            (type_id::SET_PEER_BANDWIDTH, 1),
            (type_id::COMMAND_AMF0, commands.len()),
        ]),
        commands: strings(commands),
        user_control: strings(&["StreamBegin 0", "StreamBegin 1"]),
        chunk_size: 4096,
        keyframes: 0,
        first_video_is_avc_sequence_header: false,
        first_audio_is_aac_sequence_header: false,
    }
}

/// What the server sends a player: answers, then the stream's headers and media.
fn player_received(results: usize, audio: usize, video: usize, keyframes: usize) -> Received {
    let mut commands = vec!["_result NetConnection.Connect.Success"];
    commands.extend(std::iter::repeat("_result").take(results));
    commands.extend([
        "onStatus NetStream.Play.Reset",
        "onStatus NetStream.Play.Start",
        "|RtmpSampleAccess",
        "onStatus NetStream.Data.Start",
        "onMetaData",
    ]);
    Received {
        types: type_counts(&[
            (type_id::SET_CHUNK_SIZE, 1),
            (type_id::USER_CONTROL, 2),
            (type_id::WINDOW_ACK_SIZE, 1),
            (type_id::SET_PEER_BANDWIDTH, 1),
            (type_id::AUDIO, audio),
            (type_id::VIDEO, video),
            (type_id::DATA_AMF0, 3),
            (type_id::COMMAND_AMF0, 3 + results),
        ]),
        commands: strings(&commands),
        user_control: strings(&["StreamBegin 0", "StreamBegin 1"]),
        chunk_size: 4096,
        keyframes,
        first_video_is_avc_sequence_header: true,
        first_audio_is_aac_sequence_header: true,
    }
}

/// What the server sees from a player (nothing but requests).
fn player_served(events: &[&str]) -> Served {
    Served {
        events: strings(events),
        keyframes: 0,
        first_video_is_avc_sequence_header: false,
        first_audio_is_aac_sequence_header: false,
        data: BTreeMap::new(),
    }
}

#[test]
fn ffmpeg_publish_is_connect_publish_one_second_of_media_then_unpublish() {
    let (c2s, s2c) = session!("ffmpeg_publish");
    assert_eq!(
        serve(c2s, c2s.len()),
        Served {
            events: strings(&[
                "connect app=live tcUrl=rtmp://127.0.0.1:55921/live",
                "publish 1 name=ffmpeg query= mode=Live",
                "media a=46 v=27 d=1",
                "unpublished 1",
            ]),
            keyframes: 1,
            first_video_is_avc_sequence_header: true,
            first_audio_is_aac_sequence_header: true,
            data: [("onMetaData".to_string(), 1)].into(),
        }
    );
    // releaseStream, FCPublish and createStream are answered; deleteStream too.
    assert_eq!(
        receive(s2c, s2c.len()),
        publisher_received(&[
            "_result NetConnection.Connect.Success",
            "_result",
            "_result",
            "_result",
            "onFCPublish NetStream.Publish.Start",
            "onStatus NetStream.Publish.Start",
            "onFCUnpublish NetStream.Unpublish.Success",
            "_result",
        ])
    );
}

#[test]
fn gstreamer_publish_is_connect_publish_media_with_repeated_metadata_then_unpublish() {
    let (c2s, s2c) = session!("gst_publish");
    assert_eq!(
        serve(c2s, c2s.len()),
        Served {
            events: strings(&[
                "connect app=live tcUrl=rtmp://127.0.0.1:54799/live",
                "publish 1 name=gst query= mode=Live",
                "media a=46 v=27 d=14",
                "unpublished 1",
            ]),
            keyframes: 1,
            first_video_is_avc_sequence_header: true,
            first_audio_is_aac_sequence_header: true,
            data: [("onMetaData".to_string(), 14)].into(),
        }
    );
    // rtmp2sink sends releaseStream and FCPublish without transaction ids: only createStream
    // gets a _result.
    assert_eq!(
        receive(s2c, s2c.len()),
        publisher_received(&[
            "_result NetConnection.Connect.Success",
            "_result",
            "onFCPublish NetStream.Publish.Start",
            "onStatus NetStream.Publish.Start",
            "onFCUnpublish NetStream.Unpublish.Success",
        ])
    );
}

#[test]
fn ffmpeg_play_gets_play_start_then_headers_and_two_keyframes() {
    let (c2s, s2c) = session!("ffmpeg_play");
    assert_eq!(
        serve(c2s, c2s.len()),
        player_served(&[
            "connect app=live tcUrl=rtmp://127.0.0.1:45741/live",
            "play 1 name=x query= start=-2000 duration=-1 reset=true",
            "play stopped 1",
        ])
    );
    assert_eq!(receive(s2c, s2c.len()), player_received(2, 72, 42, 2));
}

#[test]
fn rtmpdump_play_gets_play_start_then_media_until_it_is_interrupted() {
    let (c2s, s2c) = session!("rtmpdump_play");
    assert_eq!(
        serve(c2s, c2s.len()),
        player_served(&[
            "connect app=live tcUrl=rtmp://127.0.0.1:39381/live",
            "play 1 name=x query= start=-1000 duration=-1 reset=true",
            "play stopped 1",
        ])
    );
    assert_eq!(receive(s2c, s2c.len()), player_received(2, 104, 59, 3));
}

#[test]
fn gstreamer_play_gets_play_start_then_sixty_buffers_of_media() {
    let (c2s, s2c) = session!("gst_play");
    // rtmp2src stops by closing the socket, without closeStream or deleteStream.
    assert_eq!(
        serve(c2s, c2s.len()),
        player_served(&[
            "connect app=live tcUrl=rtmp://127.0.0.1:59131/live",
            "play 1 name=x query= start=-2 duration=-1 reset=true",
        ])
    );
    assert_eq!(receive(s2c, s2c.len()), player_received(1, 36, 22, 1));
}

/// Client -> server and server -> client bytes of one connection.
type Capture = (&'static [u8], &'static [u8]);

const ALL: [(&str, Capture); 5] = [
    ("ffmpeg_publish", session!("ffmpeg_publish")),
    ("gst_publish", session!("gst_publish")),
    ("ffmpeg_play", session!("ffmpeg_play")),
    ("rtmpdump_play", session!("rtmpdump_play")),
    ("gst_play", session!("gst_play")),
];

#[test]
fn every_capture_decodes_the_same_when_read_in_small_pieces() {
    for (name, (c2s, s2c)) in ALL {
        for piece in [1, 7, 1000] {
            assert_eq!(
                serve(c2s, piece),
                serve(c2s, c2s.len()),
                "{name} client->server in {piece}-byte pieces"
            );
            assert_eq!(
                receive(s2c, piece),
                receive(s2c, s2c.len()),
                "{name} server->client in {piece}-byte pieces"
            );
        }
    }
}

#[test]
fn every_capture_is_small() {
    for (name, (c2s, s2c)) in ALL {
        assert!(c2s.len() < 100_000, "{name}.c2s.bin is {} bytes", c2s.len());
        assert!(s2c.len() < 100_000, "{name}.s2c.bin is {} bytes", s2c.len());
    }
}
