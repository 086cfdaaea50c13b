//! The optional disk copy of HLS (`http.hls_dir`): one writer thread fed over a bounded channel,
//! so a slow disk never stalls a worker.

use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;

use bytes::Bytes;

use super::serve::playlist_for;
use super::HlsShelf;
use crate::fanout::StreamKey;
use crate::package::hls::Resource;
use crate::package::{Container, Segmenter};

/// One file operation for the disk writer thread.
pub enum DiskWrite {
    /// Write `data` to `path` (through a temporary file and a rename).
    Write { path: PathBuf, data: Bytes },
    /// Remove a segment that left the window.
    Remove { path: PathBuf },
}

/// Files waiting for the disk writer; past this, writes are dropped with a warning rather than
/// stalling a worker.
const DISK_QUEUE: usize = 256;

/// Starts the thread that writes HLS files under `dir`; it ends when every sender is gone.
pub fn spawn_disk_writer(dir: &Path) -> std::io::Result<(SyncSender<DiskWrite>, JoinHandle<()>)> {
    std::fs::create_dir_all(dir)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<DiskWrite>(DISK_QUEUE);
    let handle = std::thread::Builder::new()
        .name("hls-disk".to_string())
        .spawn(move || {
            for op in rx {
                let result = match &op {
                    DiskWrite::Write { path, data } => write_atomically(path, data),
                    DiskWrite::Remove { path } => std::fs::remove_file(path).or_else(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    }),
                };
                if let Err(e) = result {
                    let path = match &op {
                        DiskWrite::Write { path, .. } | DiskWrite::Remove { path } => path,
                    };
                    tracing::warn!(path = %path.display(), error = %e, "HLS disk write failed");
                }
            }
        })?;
    Ok((tx, handle))
}

fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

/// `app/name` as a relative directory, or `None` when a component could escape the HLS
/// directory or is not a plain name (stream keys come from clients).
fn safe_relative(key: &StreamKey) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in key.as_str().split('/') {
        let plain = !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !plain {
            return None;
        }
        out.push(part);
    }
    Some(out)
}

/// The on-disk playlist: the media playlist without LL-HLS parts (only whole segments are
/// written) and without blocking-reload control.
fn disk_playlist(seg: &Segmenter, stream: &str) -> Bytes {
    let text = playlist_for(seg, stream);
    let text = String::from_utf8_lossy(&text);
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
        let Some(relative) = safe_relative(key) else {
            tracing::warn!(stream = %key, "stream name is not a plain path: not written to disk");
            return 0;
        };
        let stream_dir = dir.join(&relative);
        let stream = relative
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
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
        let playlist_path = stream_dir.with_extension("m3u8");
        ops.push(DiskWrite::Write {
            path: playlist_path,
            data: disk_playlist(seg, &stream),
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
    fn only_plain_stream_names_map_to_disk_paths() {
        assert_eq!(
            safe_relative(&StreamKey::new("live", "cam-1.hd")),
            Some(PathBuf::from("live/cam-1.hd"))
        );
        assert_eq!(safe_relative(&StreamKey::new("live", "..")), None);
        assert_eq!(safe_relative(&StreamKey::new("..", "x")), None);
        assert_eq!(safe_relative(&StreamKey::new("live", "a b")), None);
        assert_eq!(safe_relative(&StreamKey::new("live", "")), None);
    }
}
