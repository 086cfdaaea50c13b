//! The writer thread: every worker's recordings, written to files.
//!
//! A recording's file is opened at its first bytes (its first keyframe: a publisher that
//! sends nothing leaves no file) as `{dir}/{app}/{stream}-{UTC start}.{ext}`, or with `-1`,
//! `-2`… when that name is taken (never overwritten: files are created exclusively). Bytes
//! are appended as each packet is handled, so the file is readable while written; it is
//! closed at the recording's stop, or when the last worker is gone (shutdown).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use bytes::BytesMut;

use super::name::{file_name, utc_stamp};
use super::recording::{cost, RecordInbox};
use super::{RecordFormat, RecordMsg, RecordQueue, Recorder, Step};
use crate::fanout::StreamKey;

/// Names tried per recording before giving up (`-1` … `-999`).
const MAX_SUFFIX: u32 = 1000;

/// Starts the writer thread; it ends once every clone of the returned queue is dropped, after
/// closing the recordings still open.
pub fn spawn_writer() -> std::io::Result<(RecordQueue, JoinHandle<()>)> {
    let (queue, inbox) = RecordQueue::new();
    // The writer logs where its spawner logs (a server started with its own dispatcher).
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let handle = std::thread::Builder::new()
        .name("record".to_string())
        .spawn(move || {
            let _logs = tracing::dispatcher::set_default(&dispatch);
            Writer::default().run(inbox);
        })?;
    Ok((queue, handle))
}

/// One recording's file.
#[derive(Debug)]
struct OpenFile {
    file: File,
    path: PathBuf,
    bytes: u64,
}

/// One recording.
#[derive(Debug)]
struct Active {
    key: StreamKey,
    /// `{record.dir}/{app}`.
    dir: PathBuf,
    stream: String,
    stamp: String,
    format: RecordFormat,
    /// The next suffix to try for a file name.
    suffix: u32,
    recorder: Recorder,
    file: Option<OpenFile>,
    /// A file could not be opened or written: the rest of the recording is ignored.
    failed: bool,
}

/// The recordings the writer holds, by id.
#[derive(Debug, Default)]
pub struct Writer {
    active: HashMap<u64, Active>,
    /// The bytes of the current message, reused.
    out: BytesMut,
}

impl Writer {
    /// Handles messages until every sender is gone, then closes what is still open.
    pub fn run(mut self, inbox: RecordInbox) {
        for msg in inbox.rx.iter() {
            let bytes = match &msg {
                RecordMsg::Media { packet, .. } => cost(packet),
                _ => 0,
            };
            self.handle(msg);
            inbox.written(bytes);
        }
        self.close_all();
    }

    /// Handles one message.
    pub fn handle(&mut self, msg: RecordMsg) {
        match msg {
            RecordMsg::Start {
                id,
                key,
                dir,
                name,
                format,
                started_unix_ms,
            } => {
                let active = Active {
                    key,
                    dir: dir.join(&name.app),
                    stream: name.stream,
                    stamp: utc_stamp(started_unix_ms),
                    format,
                    suffix: 0,
                    recorder: Recorder::new(format, started_unix_ms),
                    file: None,
                    failed: false,
                };
                if let Some(old) = self.active.insert(id, active) {
                    self.close(old); // an id is never reused; kept safe all the same
                }
            }
            RecordMsg::Media { id, packet } => {
                let Some(active) = self.active.get_mut(&id).filter(|a| !a.failed) else {
                    return;
                };
                self.out.clear();
                let step = active.recorder.push(&packet, &mut self.out);
                active.write(step, &self.out);
            }
            RecordMsg::Stop { id } => {
                if let Some(active) = self.active.remove(&id) {
                    self.close(active);
                }
            }
        }
    }

    /// Completes and closes every recording (the workers are gone).
    pub fn close_all(&mut self) {
        let ids: Vec<u64> = self.active.keys().copied().collect();
        for id in ids {
            if let Some(active) = self.active.remove(&id) {
                self.close(active);
            }
        }
    }

    fn close(&mut self, mut active: Active) {
        if !active.failed {
            self.out.clear();
            let step = active.recorder.finish(&mut self.out);
            active.write(step, &self.out);
        }
        match active.file.take() {
            Some(file) => tracing::info!(stream = %active.key, path = %file.path.display(),
                bytes = file.bytes, "recording closed"),
            None if !active.failed => tracing::info!(stream = %active.key,
                "recording ended before its first keyframe: no file written"),
            None => {}
        }
    }
}

impl Active {
    /// Writes `out` as `step` says.
    fn write(&mut self, step: Step, out: &[u8]) {
        match step {
            Step::Append => self.append(out),
            Step::NewFile { at } => {
                self.append(&out[..at]);
                if let Some(file) = self.file.take() {
                    tracing::info!(stream = %self.key, path = %file.path.display(), bytes = file.bytes,
                        "recording goes on in a new file (the codec configuration changed)");
                }
                self.append(&out[at..]);
            }
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.failed {
            return;
        }
        if self.file.is_none() {
            match self.create() {
                Ok(file) => {
                    tracing::info!(stream = %self.key, path = %file.path.display(), "recording");
                    self.file = Some(file);
                }
                Err(error) => {
                    tracing::warn!(stream = %self.key, dir = %self.dir.display(), %error,
                        "recording failed: cannot create its file");
                    self.failed = true;
                    return;
                }
            }
        }
        let Some(file) = &mut self.file else { return };
        match file.file.write_all(bytes) {
            Ok(()) => file.bytes += bytes.len() as u64,
            Err(error) => {
                tracing::warn!(stream = %self.key, path = %file.path.display(), %error,
                    "recording failed: cannot write its file");
                self.failed = true;
                self.file = None;
            }
        }
    }

    /// Creates the next free name in the app's directory.
    fn create(&mut self) -> std::io::Result<OpenFile> {
        std::fs::create_dir_all(&self.dir)?;
        while self.suffix < MAX_SUFFIX {
            let name = file_name(&self.stream, &self.stamp, self.suffix, self.format);
            self.suffix += 1;
            let path = self.dir.join(name);
            match create_new(&path) {
                Ok(file) => {
                    return Ok(OpenFile {
                        file,
                        path,
                        bytes: 0,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{MAX_SUFFIX} files of this stream started in the same second"),
        ))
    }
}

/// Creates `path`, failing if anything (a file, a directory, a symlink) is there already.
fn create_new(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}
