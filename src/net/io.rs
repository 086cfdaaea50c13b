//! Reading into a connection's buffer and writing its queue, both bounded by a budget.

use std::io::{self, IoSlice, Read, Write};

use bytes::BytesMut;

use crate::fanout::PlayerQueue;

/// Most slices handed to one writev (Linux IOV_MAX is 1024).
const MAX_IOVECS: usize = 256;

/// How a read pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Drained the socket (WouldBlock): wait for the next readiness event.
    Drained { bytes: usize },
    /// Budget spent with data possibly left: come back without waiting for an event.
    Budget { bytes: usize },
    /// The peer closed its side.
    Closed { bytes: usize },
}

/// Reads until WouldBlock, EOF or `budget` bytes, through the worker's `scratch` buffer,
/// appending what arrived to the connection's `buf`. Reading through one shared scratch
/// buffer means an idle connection holds no read buffer of its own: a player that only sends
/// a few acknowledgements costs a few bytes, not a 16 KiB buffer.
pub fn read_some(
    stream: &mut impl Read,
    scratch: &mut [u8],
    buf: &mut BytesMut,
    budget: usize,
) -> io::Result<ReadOutcome> {
    let mut total = 0;
    loop {
        if total >= budget {
            return Ok(ReadOutcome::Budget { bytes: total });
        }
        match stream.read(scratch) {
            Ok(0) => return Ok(ReadOutcome::Closed { bytes: total }),
            Ok(n) => {
                buf.extend_from_slice(&scratch[..n]);
                total += n;
                if n < scratch.len() {
                    // A short read almost always means the socket is drained; the next
                    // readiness event will say if more arrives (saves a WouldBlock syscall).
                    return Ok(ReadOutcome::Drained { bytes: total });
                }
            }
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Drained { bytes: total }),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(e),
            },
        }
    }
}

/// How a write pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The queue is empty.
    Flushed { bytes: usize },
    /// The socket is full (WouldBlock): wait for writability.
    Blocked { bytes: usize },
    /// Budget spent with the socket still writable: come back without waiting for an event.
    Budget { bytes: usize },
}

/// Writes the queue with vectored writes until empty, WouldBlock or `budget` bytes.
/// Every queued message of the socket goes out in as few writev calls as the budget allows.
pub fn write_queue(
    stream: &mut impl Write,
    queue: &mut PlayerQueue,
    budget: usize,
) -> io::Result<WriteOutcome> {
    let mut total = 0;
    loop {
        if queue.is_empty() {
            return Ok(WriteOutcome::Flushed { bytes: total });
        }
        if total >= budget {
            return Ok(WriteOutcome::Budget { bytes: total });
        }
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let n = queue.fill_slices(&mut slices);
        let result = stream.write_vectored(&slices[..n]);
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                queue.consume(n);
                total += n;
            }
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock => return Ok(WriteOutcome::Blocked { bytes: total }),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(e),
            },
        }
    }
}
