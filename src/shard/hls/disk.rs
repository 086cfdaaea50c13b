//! The optional disk copy of HLS (`http.hls_dir`): one writer thread fed over a bounded channel,
//! so a slow disk never stalls a worker.
//!
//! Layout: each stream gets its own directory, `{hls_dir}/{app}/{stream}/`, holding
//! `index.m3u8` (URIs relative to it) and the segments of the window under the names the edge
//! serves them by (`seg-N.ts`, `init-N.mp4`), so a file server over `hls_dir` serves
//! `/{app}/{stream}/seg-N.ts` as the edge does. App and stream names come from clients: each
//! is one directory name, percent-encoded ([`dir_name`]), so no two streams share a file and
//! no name leads out of `hls_dir`. The directory goes when the publisher leaves, unless
//! `http.hls_dir_keep`.

use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;

use bytes::Bytes;

use super::HlsShelf;
use crate::fanout::StreamKey;
use crate::http;
use crate::package::hls::{self, Resource};
use crate::package::{Container, Segmenter};

/// One file operation for the disk writer thread.
pub enum DiskWrite {
    /// Write `data` to `path` (through a temporary file and a rename).
    Write { path: PathBuf, data: Bytes },
    /// Remove a segment that left the window.
    Remove { path: PathBuf },
    /// Remove a stream's directory and all in it (its publisher left), then its app's
    /// directory if that is left empty.
    RemoveStream { dir: PathBuf },
}

/// Files waiting for the disk writer; past this, writes are dropped with a warning rather than
/// stalling a worker.
const DISK_QUEUE: usize = 256;

/// The playlist's file name in a stream's directory.
pub const PLAYLIST_FILE: &str = "index.m3u8";

/// The longest file name common file systems accept, in bytes.
const MAX_FILE_NAME: usize = 255;

/// Starts the thread that writes HLS files under `dir`; it ends when every sender is gone.
pub fn spawn_disk_writer(dir: &Path) -> std::io::Result<(SyncSender<DiskWrite>, JoinHandle<()>)> {
    std::fs::create_dir_all(dir)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<DiskWrite>(DISK_QUEUE);
    // The writer logs where its spawner logs (a server started with its own dispatcher).
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let handle = std::thread::Builder::new()
        .name("hls-disk".to_string())
        .spawn(move || {
            let _logs = tracing::dispatcher::set_default(&dispatch);
            for (seq, op) in rx.into_iter().enumerate() {
                let (path, result) = match &op {
                    DiskWrite::Write { path, data } => {
                        (path, write_atomically(path, data, seq as u64))
                    }
                    DiskWrite::Remove { path } => (path, remove_file(path)),
                    DiskWrite::RemoveStream { dir } => (dir, remove_stream_dir(dir)),
                };
                match result {
                    Ok(()) => {
                        tracing::debug!(path = %path.display(), "HLS file written or removed")
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "HLS disk write failed")
                    }
                }
            }
        })?;
    Ok((tx, handle))
}

fn remove_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn remove_stream_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    if let Some(app_dir) = dir.parent() {
        let _ = std::fs::remove_dir(app_dir); // only if empty: other streams of the app stay
    }
    Ok(())
}

/// Writes `data` to a temporary file beside `path`, then renames it over `path`. The
/// temporary name is unique to this process and write (`seq`), so a file left behind by a
/// crash or another process never stands in the way; it is removed when the write fails.
fn write_atomically(path: &Path, data: &[u8], seq: u64) -> std::io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::other("not a file path"));
    };
    std::fs::create_dir_all(parent)?;
    let tmp = parent.join(format!(
        ".{}.{}.{seq}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = std::fs::write(&tmp, data).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An app or stream name as one directory name: percent-encoded as a URL path segment is
/// (`http::encode_segment`: all but letters, digits and `-._~`), and a leading `.` as `%2E`
/// too, so the result never holds `/` or NUL and is never `.`, `..` or hidden. Injective,
/// since `%` itself is always encoded. `None` for an empty name or one too long for a file
/// name.
fn dir_name(name: &str) -> Option<String> {
    let encoded = http::encode_segment(name);
    let encoded = match encoded.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => encoded,
    };
    (!encoded.is_empty() && encoded.len() <= MAX_FILE_NAME).then_some(encoded)
}

/// The directory of `key`'s files relative to `hls_dir`: `{app}/{stream}`, the key split at
/// its last `/` as HTTP paths are, each part one [`dir_name`]. Always two levels deep, so a
/// stream's files never sit beside another stream's directory (a `/` inside an app becomes
/// `%2F`). `None` when a part is empty or too long.
fn stream_dir(key: &StreamKey) -> Option<PathBuf> {
    let (app, stream) = key.as_str().rsplit_once('/')?;
    Some(Path::new(&dir_name(app)?).join(dir_name(stream)?))
}

/// The on-disk playlist: the media playlist with URIs relative to it, without LL-HLS parts
/// (only whole segments are written) and without blocking-reload control.
fn disk_playlist(seg: &Segmenter) -> Bytes {
    let text = hls::media_playlist(seg, "");
    let kept: String = text
        .lines()
        .filter(|l| {
            !(l.starts_with("#EXT-X-PART")
                || l.starts_with("#EXT-X-PRELOAD-HINT")
                || l.starts_with("#EXT-X-SERVER-CONTROL"))
        })
        .flat_map(|l| [l, "\n"])
        .collect();
    Bytes::from(kept)
}

impl HlsShelf {
    /// Sends the segments `progress` completed, the playlist, and removals of segments that
    /// left the window, to the disk writer. Never blocks: when the writer is behind, the files
    /// that do not fit its queue are dropped with a warning; returns how many.
    pub(super) fn write_to_disk(
        &self,
        key: &StreamKey,
        seg: &Segmenter,
        new_segments: usize,
    ) -> usize {
        let Some((dir, sender)) = &self.disk else {
            return 0;
        };
        if new_segments == 0 {
            return 0;
        }
        let Some(relative) = stream_dir(key) else {
            tracing::warn!(stream = %key, "app or stream name is empty or too long for a file name: not written to disk");
            return 0;
        };
        let stream_dir = dir.join(relative);
        let container = seg.config().container;
        let mut ops = Vec::new();
        let count = seg.segments().len();
        for s in seg.segments().skip(count.saturating_sub(new_segments)) {
            let name = Resource::Segment(s.msn).uri(container);
            ops.push(DiskWrite::Write {
                path: stream_dir.join(name),
                data: s.data.clone(),
            });
            if let Some(init) = seg.init(s.init_id) {
                let name = Resource::Init(s.init_id).uri(container);
                if container == Container::Fmp4 {
                    ops.push(DiskWrite::Write {
                        path: stream_dir.join(name),
                        data: init.clone(),
                    });
                }
            }
        }
        if let Some(first) = seg.segments().next() {
            for gone in first.msn.saturating_sub(new_segments as u64)..first.msn {
                let name = Resource::Segment(gone).uri(container);
                ops.push(DiskWrite::Remove {
                    path: stream_dir.join(name),
                });
            }
        }
        ops.push(DiskWrite::Write {
            path: stream_dir.join(PLAYLIST_FILE),
            data: disk_playlist(seg),
        });
        let total = ops.len();
        let dropped = ops
            .into_iter()
            .map(|op| sender.try_send(op).is_err())
            .filter(|&failed| failed)
            .count();
        if dropped > 0 {
            tracing::warn!(stream = %key, dropped, total, "HLS disk writer is behind: files not written");
        }
        dropped
    }
}

impl HlsShelf {
    /// Queues the removal of `key`'s directory, when its publisher left and
    /// `http.hls_dir_keep` is off. Never blocks: when the writer is behind, the files stay,
    /// with a warning.
    pub(super) fn remove_from_disk(&self, key: &StreamKey) {
        let (Some((dir, sender)), Some(relative)) = (&self.disk, stream_dir(key)) else {
            return;
        };
        let dir = dir.join(relative);
        if sender.try_send(DiskWrite::RemoveStream { dir }).is_err() {
            tracing::warn!(stream = %key, "HLS disk writer is behind: the stream's files stay on disk");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::{Frame, SegmenterConfig};

    #[test]
    fn a_full_disk_queue_drops_files_instead_of_blocking_the_worker() {
        use crate::media::flv::FlvReader;
        let data = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/media/h264_aac.flv"
        ))
        .unwrap();
        let mut buf = bytes::BytesMut::from(&data[..]);
        let mut reader = FlvReader::new();
        let mut seg = Segmenter::new(SegmenterConfig {
            target_duration_ms: 500,
            ..SegmenterConfig::default()
        });
        let mut segments = 0;
        while let Some(tag) = reader.next_tag(&mut buf).unwrap() {
            let frame = Frame::from_flv_tag(&tag);
            let progress = seg.push(&frame, 1_700_000_000_000 + u64::from(tag.timestamp));
            segments += progress.map_or(0, |p| p.segments);
        }
        segments += seg.flush().segments;
        assert!(segments >= 2, "the fixture cuts several segments");
        // A writer that takes nothing: room for exactly one file.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let shelf = HlsShelf::new(Some((PathBuf::from("/nonexistent"), tx)));
        let key = StreamKey::new("live", "disk");
        let dropped = shelf.write_to_disk(&key, &seg, segments as usize);
        // Each new segment and the playlist were due: all but the first were dropped.
        assert_eq!(dropped, segments as usize);
        assert!(matches!(rx.try_recv(), Ok(DiskWrite::Write { .. })));
        assert!(rx.try_recv().is_err(), "nothing else was queued");
        // With room again, the next call queues its files.
        let dropped = shelf.write_to_disk(&key, &seg, 1);
        assert_eq!(dropped, 1, "one segment + the playlist, one slot");
    }

    #[test]
    fn every_app_and_stream_gets_its_own_directory_two_levels_inside_hls_dir() {
        let dir = |app: &str, stream: &str| stream_dir(&StreamKey::new(app, stream));
        assert_eq!(
            dir("live", "cam-1.hd"),
            Some(PathBuf::from("live/cam-1.hd"))
        );
        assert_eq!(dir("live", ".."), Some(PathBuf::from("live/%2E.")));
        assert_eq!(dir("..", "x"), Some(PathBuf::from("%2E./x")));
        assert_eq!(dir("/etc", "x"), Some(PathBuf::from("%2Fetc/x")));
        assert_eq!(dir("live", "a b"), Some(PathBuf::from("live/a%20b")));
        assert_eq!(dir("live/a", "b"), Some(PathBuf::from("live%2Fa/b")));
        assert_eq!(dir("live", "é\0"), Some(PathBuf::from("live/%C3%A9%00")));
        assert_eq!(dir("live", ""), None);
        assert_eq!(dir("", "x"), None);
        assert_eq!(dir("live", &"x".repeat(256)), None);
        assert!(dir("live", &"x".repeat(255)).is_some());
        // Names that collided or escaped before map to distinct plain directories.
        let names = [
            "cam",
            "cam.hd",
            "cam.m3u8",
            "cam.tmp",
            "cam/x",
            "cam%2Fx",
            "cam%x",
            "cam%25x",
            ".",
            "..",
            "%2E",
            "%2E.",
            ".cam",
            "a b",
            "a+b",
            "café",
            "cafe\u{301}",
            "~",
        ];
        let mut seen = std::collections::HashSet::new();
        for name in names {
            let path = dir("live", name).unwrap();
            let parts: Vec<_> = path.components().collect();
            assert_eq!(parts.len(), 2, "{name:?} → {path:?}");
            assert!(
                parts
                    .iter()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
                "{name:?} → {path:?}"
            );
            assert!(seen.insert(path.clone()), "{name:?} → {path:?} is taken");
        }
    }

    #[test]
    fn stale_temporary_files_never_block_a_write_and_a_failed_write_leaves_none() {
        let dir = std::env::temp_dir().join(format!("rtmp-edge-disk-tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // What a crash or the old naming left: directories where temporary files went.
        for stale in ["index.tmp", ".index.m3u8.tmp"] {
            std::fs::create_dir_all(dir.join(stale).join("x")).unwrap();
        }
        let playlist = dir.join(PLAYLIST_FILE);
        write_atomically(&playlist, b"one", 7).unwrap();
        write_atomically(&playlist, b"two", 7).unwrap();
        assert_eq!(std::fs::read(&playlist).unwrap(), b"two");
        // A write that cannot land (a directory is in the way) fails and cleans up after itself.
        std::fs::create_dir_all(dir.join("seg-1.ts").join("x")).unwrap();
        assert!(write_atomically(&dir.join("seg-1.ts"), b"seg", 8).is_err());
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [".index.m3u8.tmp", "index.m3u8", "index.tmp", "seg-1.ts"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
