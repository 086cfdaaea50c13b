//! Loopback interop: a real ffmpeg publishes to / plays from a `ServerSession` driven over a
//! plain blocking TCP socket (test-only IO). Skipped when ffmpeg is not installed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rtmp_edge::rtmp::chunk::EncodedMessage;
use rtmp_edge::rtmp::handshake::RANDOM_LEN;
use rtmp_edge::rtmp::message::type_id;
use rtmp_edge::rtmp::session::{csid, ServerConfig, ServerEvent, ServerSession};

const FFMPEG_PUBLISH: &[u8] = include_bytes!("fixtures/sessions/ffmpeg_publish.bin");

fn have_ffmpeg() -> bool {
    Process::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn flush(server: &mut ServerSession, sock: &mut TcpStream) {
    while let Some(t) = server.poll_transmit() {
        sock.write_all(&t).expect("write");
    }
}

/// Serves one connection until the peer closes; `media` is written to any accepted player.
fn serve(listener: TcpListener, media: Vec<(u8, u32, Bytes)>) -> Vec<ServerEvent> {
    let (mut sock, _) = listener.accept().expect("accept");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut server = ServerSession::new(ServerConfig::default(), &[3; RANDOM_LEN], 0);
    let mut events = Vec::new();
    let mut buf = BytesMut::new();
    let mut tmp = vec![0u8; 64 * 1024];
    loop {
        let n = match sock.read(&mut tmp) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&tmp[..n]);
        server
            .handle_input(&mut buf)
            .expect("ffmpeg speaks valid RTMP");
        while let Some(ev) = server.poll_event() {
            match &ev {
                ServerEvent::ConnectRequested { .. } => server.accept_connect(),
                ServerEvent::PublishRequested { stream_id, .. } => {
                    server.accept_publish(*stream_id)
                }
                ServerEvent::PlayRequested { stream_id, .. } => {
                    server.accept_play(*stream_id);
                    flush(&mut server, &mut sock);
                    let size = server.outbound_chunk_size();
                    let mut out = BytesMut::new();
                    for (t, ts, payload) in &media {
                        let cs = match *t {
                            type_id::AUDIO => csid::AUDIO,
                            type_id::VIDEO => csid::VIDEO,
                            _ => csid::DATA,
                        };
                        EncodedMessage::new(cs, *ts, *t, *stream_id, payload.clone(), size)
                            .write_to(&mut out);
                    }
                    sock.write_all(&out).expect("media");
                    server.notify_stopped(*stream_id);
                }
                _ => {}
            }
            events.push(ev);
        }
        flush(&mut server, &mut sock);
    }
    events
}

/// The media of the captured ffmpeg publish, as the server reports it.
fn captured_media() -> Vec<(u8, u32, Bytes)> {
    let mut server = ServerSession::new(ServerConfig::default(), &[3; RANDOM_LEN], 0);
    let mut buf = BytesMut::from(FFMPEG_PUBLISH);
    server.handle_input(&mut buf).expect("valid");
    let mut media = Vec::new();
    while let Some(ev) = server.poll_event() {
        match ev {
            ServerEvent::ConnectRequested { .. } => server.accept_connect(),
            ServerEvent::PublishRequested { stream_id, .. } => server.accept_publish(stream_id),
            ServerEvent::Media {
                type_id,
                timestamp,
                payload,
                ..
            } => media.push((type_id, timestamp, payload)),
            _ => {}
        }
    }
    media
}

#[test]
fn real_ffmpeg_publishes_to_a_server_session_and_exits_cleanly() {
    if !have_ffmpeg() {
        eprintln!("ffmpeg not installed: skipped");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || serve(listener, Vec::new()));
    let status = Process::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc=rate=25:size=160x120")
        .args([
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-f",
            "flv",
        ])
        .arg(format!("rtmp://127.0.0.1:{port}/live/key"))
        .status()
        .expect("run ffmpeg");
    let events = server.join().expect("server thread");
    assert!(status.success(), "ffmpeg exited with {status}");
    assert!(matches!(
        &events[1],
        ServerEvent::PublishRequested { name, .. } if name == "key"
    ));
    let video = events
        .iter()
        .filter(|e| matches!(e, ServerEvent::Media { type_id: 9, .. }))
        .count();
    assert!(video >= 25, "{video} video messages");
    assert_eq!(
        events.last(),
        Some(&ServerEvent::Unpublished { stream_id: 1 })
    );
}

#[test]
fn real_ffmpeg_plays_encode_once_media_from_a_server_session() {
    if !have_ffmpeg() {
        eprintln!("ffmpeg not installed: skipped");
        return;
    }
    let media = captured_media();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || serve(listener, media));
    let out = Process::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/key"))
        .args(["-f", "framemd5", "-"])
        .output()
        .expect("run ffmpeg");
    let events = server.join().expect("server thread");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, ServerEvent::PlayRequested { name, .. } if name == "key")));
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    assert!(frames >= 20, "ffmpeg decoded {frames} frames");
}
