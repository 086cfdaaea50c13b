//! Reading into a connection's buffer and writing its queue, both bounded by a budget.

use std::io::{self, IoSlice, Read, Write};

use bytes::BytesMut;

use crate::fanout::OutputQueue;

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
/// buffer means `buf` only ever holds bytes that arrived (a partial chunk, say), never a
/// read-sized reservation: a player that only sends a few acknowledgements costs a few bytes.
///
/// A short read is taken as drained (saving a WouldBlock syscall per wake-up) unless
/// `peer_closed`: once the poller has reported the peer's FIN or RST, no further readiness
/// edge will come, so the pass reads on until it sees the EOF (or the error) itself.
pub fn read_some(
    stream: &mut impl Read,
    scratch: &mut [u8],
    buf: &mut BytesMut,
    budget: usize,
    peer_closed: bool,
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
                if n < scratch.len() && !peer_closed {
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
    /// TLS only: the handshake is not done and takes no more plaintext yet; the read that
    /// moves it on schedules the connection again.
    Waiting { bytes: usize },
}

/// Writes the queue with vectored writes until empty, WouldBlock or `budget` bytes.
/// Every queued message of the socket goes out in as few writev calls as the budget allows.
pub fn write_queue(
    stream: &mut impl Write,
    queue: &mut OutputQueue,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One pass over a peer that sent `data` and closed, through a scratch buffer of
    /// `scratch` bytes: how it ended and what it read.
    fn pass(
        data: &[u8],
        scratch: usize,
        budget: usize,
        peer_closed: bool,
    ) -> (ReadOutcome, BytesMut) {
        let mut scratch = vec![0u8; scratch];
        let mut buf = BytesMut::new();
        let mut peer = io::Cursor::new(data.to_vec());
        let outcome = read_some(&mut peer, &mut scratch, &mut buf, budget, peer_closed);
        (outcome.unwrap(), buf)
    }

    #[test]
    fn a_short_read_counts_as_drained_while_the_peer_is_open() {
        let (outcome, buf) = pass(b"hello", 64, 1024, false);
        assert_eq!(outcome, ReadOutcome::Drained { bytes: 5 });
        assert_eq!(&buf[..], b"hello");
    }

    #[test]
    fn after_the_peer_closed_a_short_read_reads_on_to_the_eof() {
        let (outcome, buf) = pass(b"hello", 64, 1024, true);
        assert_eq!(outcome, ReadOutcome::Closed { bytes: 5 });
        assert_eq!(&buf[..], b"hello");
    }

    #[test]
    fn the_budget_stops_a_pass_before_the_eof() {
        let (outcome, _) = pass(b"abcdefgh", 4, 8, true);
        assert_eq!(outcome, ReadOutcome::Budget { bytes: 8 });
    }
}
