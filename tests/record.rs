//! Recording (`[record]`) end to end: real publishers over loopback, files checked on disk.
//! ffmpeg publishes and decodes (`-f framemd5`); a missing ffmpeg is a failure, never a skip
//! (`tools/test.sh` installs it). The project's own client publishes what ffmpeg cannot
//! (names with control characters, exact timestamps).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::BytesMut;
use common::procs::{run_ok, Proc};
use common::tools::{tool, Dir};
use common::{media, wait_for_log_count, Client, TestServer, WAIT};
use rtmp_edge::config::Config;
use rtmp_edge::media::flv::{FlvReader, FlvTag, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use rtmp_edge::record::RecordFormat;
use rtmp_edge::rtmp::message::type_id;
use rtmp_edge::rtmp::session::ClientEvent;

const FPS: usize = 25;
const SECONDS: usize = 3;
const PUBLISH_LIMIT: Duration = Duration::from_secs(60);

/// A deterministic H.264 + AAC FLV, one keyframe a second.
fn h264_aac_source(dir: &Dir) -> PathBuf {
    let out = dir.path("source.flv");
    run_ok(
        "ffmpeg encode",
        Command::new(tool("ffmpeg"))
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc=size=320x240:rate={FPS}"))
            .args(["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100"])
            .args(["-t", &SECONDS.to_string()])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .args([
                "-bf",
                "0",
                "-x264-params",
                "keyint=25:min-keyint=25:scenecut=0",
            ])
            .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
            .arg(&out),
    );
    out
}

/// MD5 of every decoded frame of the first stream of `kind` (`v` or `a`), in order.
fn frame_md5s(file: &Path, kind: &str) -> Vec<String> {
    let text = run_ok(
        "framemd5",
        Command::new(tool("ffmpeg"))
            .args(["-v", "error", "-i"])
            .arg(file)
            .args(["-map", &format!("0:{kind}:0"), "-f", "framemd5", "-"]),
    );
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
        .collect()
}

fn ffmpeg_publish(dir: &Dir, source: &Path, server: &TestServer, stream: &str, name: &str) -> Proc {
    let url = format!("rtmp://127.0.0.1:{}/live/{stream}", server.addr.port());
    Proc::spawn(
        name,
        dir,
        Command::new(tool("ffmpeg"))
            .args(["-v", "warning", "-nostats", "-re", "-i"])
            .arg(source)
            .args(["-c", "copy", "-f", "flv"])
            .arg(url),
    )
}

fn recording_server(dir: &Path, format: RecordFormat) -> TestServer {
    let mut config = Config::default();
    config.record.dir = dir.to_string_lossy().into_owned();
    config.record.format = format;
    TestServer::start(config)
}

/// Every file under `root`, relative to it, sorted.
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

/// Waits (bounded) until `n` recordings of `stream` are closed; their files.
fn closed_recordings(dir: &Path, stream: &str, n: usize) -> Vec<PathBuf> {
    let lines = wait_for_log_count(
        &["recording closed", &format!("stream=live/{stream} ")],
        n,
        WAIT,
    );
    let mut files: Vec<PathBuf> = lines
        .iter()
        .map(|l| {
            let path = l.split("path=").nth(1).unwrap().split(' ').next().unwrap();
            PathBuf::from(path.trim_matches('"'))
        })
        .collect();
    files.sort();
    for f in &files {
        assert!(f.starts_with(dir), "{f:?} is inside {dir:?}");
    }
    files
}

fn flv_tags(path: &Path) -> Vec<FlvTag> {
    let mut buf = BytesMut::from(&std::fs::read(path).unwrap()[..]);
    let mut reader = FlvReader::new();
    let mut tags = Vec::new();
    while let Some(tag) = reader.next_tag(&mut buf).unwrap() {
        tags.push(tag);
    }
    assert_eq!(reader.previous_size_mismatches(), 0, "{path:?}");
    assert_eq!(buf.len(), 4, "{path:?} ends with the last PreviousTagSize");
    tags
}

#[test]
fn ffmpeg_publishes_and_the_flv_and_mp4_recordings_decode_to_the_same_frames() {
    let dir = Dir::new("record-ffmpeg");
    let source = h264_aac_source(&dir);
    let (flv_dir, mp4_dir) = (dir.path("flv"), dir.path("mp4"));
    let flv = recording_server(&flv_dir, RecordFormat::Flv);
    let mp4 = recording_server(&mp4_dir, RecordFormat::Mp4);
    let mut publishers = [
        ffmpeg_publish(&dir, &source, &flv, "cam", "publish-flv"),
        ffmpeg_publish(&dir, &source, &mp4, "cam", "publish-mp4"),
    ];
    for p in &mut publishers {
        p.wait_ok(PUBLISH_LIMIT);
    }
    let files = closed_recordings(&dir.path(""), "cam", 2);
    let flv_file = files.iter().find(|f| f.starts_with(&flv_dir)).unwrap();
    let mp4_file = files.iter().find(|f| f.starts_with(&mp4_dir)).unwrap();
    let name = |f: &Path| f.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name(flv_file).starts_with("cam-") && name(flv_file).ends_with("Z.flv"));
    assert!(name(mp4_file).starts_with("cam-") && name(mp4_file).ends_with("Z.mp4"));
    assert_eq!(tree(&flv_dir), [format!("live/{}", name(flv_file))]);
    assert_eq!(tree(&mp4_dir), [format!("live/{}", name(mp4_file))]);

    let video = frame_md5s(&source, "v");
    let audio = frame_md5s(&source, "a");
    assert_eq!(video.len(), FPS * SECONDS);
    for file in [flv_file, mp4_file] {
        assert_eq!(frame_md5s(file, "v"), video, "{file:?}: video frames");
        assert_eq!(frame_md5s(file, "a"), audio, "{file:?}: audio frames");
    }

    // The FLV is the published tags, byte for byte and at the same times: metadata first
    // (without @setDataFrame), then the sequence headers and every frame.
    let tags = flv_tags(flv_file);
    assert_eq!(tags[0].tag_type, TAG_SCRIPT);
    assert_eq!(&tags[0].data[..13], b"\x02\x00\x0aonMetaData");
    let media = |tags: &[FlvTag]| -> Vec<(u8, u32, bytes::Bytes)> {
        tags.iter()
            .filter(|t| t.tag_type != TAG_SCRIPT)
            .map(|t| (t.tag_type, t.timestamp, t.data.clone()))
            .collect()
    };
    let published = flv_tags(&source);
    assert_eq!(media(&tags), media(&published));
    // ffprobe reads the MP4 whole.
    let probe = run_ok(
        "ffprobe",
        Command::new(tool("ffprobe"))
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
            ])
            .arg(mp4_file),
    );
    let mut codecs: Vec<&str> = probe.lines().collect();
    codecs.sort();
    assert_eq!(codecs, ["aac", "h264"]);
    flv.shutdown();
    mp4.shutdown();
}

/// Publishes `frames` video frames (a keyframe every 10) after the headers with `client`.
fn send_gop(client: &mut Client, start_ms: u32, frames: u32) {
    client.send(type_id::DATA_AMF0, start_ms, &media::set_data_frame());
    client.send(type_id::VIDEO, start_ms, &media::avc_header());
    client.send(type_id::AUDIO, start_ms, &media::aac_header());
    for i in 0..frames {
        let t = start_ms + i * 40;
        client.send(type_id::VIDEO, t, &media::avc_frame(i % 10 == 0, i, 300));
        client.send(type_id::AUDIO, t, &media::aac_frame(i));
    }
}

#[test]
fn a_republish_starts_a_second_file_whose_timestamps_start_at_zero() {
    let dir = Dir::new("record-republish");
    let root = dir.path("rec");
    let server = recording_server(&root, RecordFormat::Flv);
    for round in 0..2 {
        let mut publisher = Client::publish(server.addr, "live", "again");
        // The second publish goes on from the first's timestamps at the hub; its file does not.
        send_gop(&mut publisher, 0, 20);
        publisher.session.stop();
        publisher.flush();
        closed_recordings(&root, "again", round + 1);
    }
    let files = closed_recordings(&root, "again", 2);
    assert_eq!(tree(&root).len(), 2, "{:?}", tree(&root));
    assert_ne!(files[0], files[1]);
    let sent: Vec<Vec<u8>> = (0..20)
        .map(|i| media::avc_frame(i % 10 == 0, i, 300))
        .collect();
    for file in &files {
        let tags = flv_tags(file);
        let video: Vec<&FlvTag> = tags
            .iter()
            .filter(|t| t.tag_type == TAG_VIDEO && t.data[1] == 1)
            .collect();
        assert_eq!(video.len(), 20, "{file:?}: every frame");
        for (i, tag) in video.iter().enumerate() {
            assert_eq!(tag.timestamp, i as u32 * 40, "{file:?}: frame {i}");
            assert_eq!(
                &tag.data[..],
                &sent[i][..],
                "{file:?}: frame {i} byte for byte"
            );
        }
    }
    server.shutdown();
}

#[test]
fn hostile_stream_names_write_nothing_outside_the_record_dir() {
    let dir = Dir::new("record-hostile");
    let root = dir.path("rec");
    let server = recording_server(&root, RecordFormat::Flv);
    let refused = [
        "../../etc/x",
        "..",
        "a/b",
        "x\ny",
        ".hidden",
        "..\\..\\x",
        "/abs",
    ];
    let accepted = "%2e%2e";
    for name in refused.iter().chain([&accepted]) {
        let mut publisher = Client::publish(server.addr, "live", name);
        send_gop(&mut publisher, 0, 10);
        publisher.session.stop();
        publisher.flush();
    }
    // ffmpeg too: the URL's path after the app is the stream name, `../../escape`.
    let ffmpeg_dir = Dir::new("record-hostile-ffmpeg");
    let source = h264_aac_source(&ffmpeg_dir);
    ffmpeg_publish(
        &ffmpeg_dir,
        &source,
        &server,
        "../../escape",
        "publish-escape",
    )
    .wait_ok(PUBLISH_LIMIT);
    let warnings = wait_for_log_count(&["not recorded"], refused.len() + 1, WAIT);
    assert!(
        warnings.iter().any(|w| w.contains("escape")),
        "ffmpeg's name was refused: {warnings:?}"
    );
    wait_for_log_count(&["unpublished"], refused.len() + 2, WAIT);
    closed_recordings(&root, accepted, 1);
    let files = tree(&root);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with("live/%2e%2e-") && files[0].ends_with("Z.flv"));
    // Nothing beside the record dir in the scratch dir, nor where `../..` would lead.
    let beside: Vec<_> = std::fs::read_dir(dir.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(beside, ["rec"]);
    for (parent, prefix) in [(std::env::temp_dir(), "escape-"), ("/etc".into(), "x-")] {
        let escaped: Vec<_> = std::fs::read_dir(&parent)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(prefix) && n.ends_with(".flv"))
            .collect();
        assert!(escaped.is_empty(), "{parent:?}: {escaped:?}");
    }
    server.shutdown();
}

#[test]
fn shutdown_closes_the_recordings_still_open() {
    let dir = Dir::new("record-shutdown");
    let root = dir.path("rec");
    let server = recording_server(&root, RecordFormat::Flv);
    let mut publisher = Client::publish(server.addr, "live", "open");
    // The worker hands each packet to the recording before it writes that packet to a
    // player: once the player has the last frame, every frame is queued for the writer.
    let mut player = Client::play(server.addr, "live", "open");
    send_gop(&mut publisher, 0, 30);
    let mut audio_frames = 0;
    player.wait_for("the last audio frame", |e| {
        if let ClientEvent::Media {
            type_id, payload, ..
        } = e
        {
            if *type_id == type_id::AUDIO && payload[1] == 1 {
                audio_frames += 1;
            }
        }
        audio_frames == 30
    });
    // The publisher is still on: the shutdown closes its recording. `shutdown` joins the
    // writer thread, so the file is complete and closed from here on.
    server.shutdown();
    let files = closed_recordings(&root, "open", 1);
    assert_eq!(tree(&root).len(), 1, "{:?}", tree(&root));
    let tags = flv_tags(&files[0]);
    let video: Vec<&FlvTag> = tags
        .iter()
        .filter(|t| t.tag_type == TAG_VIDEO && t.data[1] == 1)
        .collect();
    assert_eq!(
        video.len(),
        30,
        "every video frame sent before the shutdown"
    );
    for (i, tag) in video.iter().enumerate() {
        assert_eq!(tag.timestamp, i as u32 * 40, "frame {i}");
        assert_eq!(
            &tag.data[..],
            &media::avc_frame(i % 10 == 0, i as u32, 300)[..],
            "frame {i} byte for byte"
        );
    }
    let audio = tags
        .iter()
        .filter(|t| t.tag_type == TAG_AUDIO && t.data[1] == 1)
        .count();
    assert_eq!(audio, 30, "every audio frame sent before the shutdown");
}
