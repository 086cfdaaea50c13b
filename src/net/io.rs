//! Reading into a connection's buffer and writing its queue, both bounded by a budget.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsFd;

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
        let read = stream.read(scratch);
        if let Ok(n) = read {
            buf.extend_from_slice(&scratch[..n]);
        }
        if let Some(outcome) = after_read(read, scratch.len(), &mut total, peer_closed) {
            return outcome;
        }
    }
}

/// What one read of at most `room` bytes means for a pass that has read `total` so far:
/// `None` to read on, else the pass's outcome. A short read almost always means the socket is
/// drained; the next readiness event will say if more arrives (saves a WouldBlock syscall),
/// unless the peer already closed (no readiness edge will come: read on to the EOF).
fn after_read(
    read: io::Result<usize>,
    room: usize,
    total: &mut usize,
    peer_closed: bool,
) -> Option<io::Result<ReadOutcome>> {
    match read {
        Ok(0) => Some(Ok(ReadOutcome::Closed { bytes: *total })),
        Ok(n) => {
            *total += n;
            (n < room && !peer_closed).then_some(Ok(ReadOutcome::Drained { bytes: *total }))
        }
        Err(e) => match e.kind() {
            io::ErrorKind::WouldBlock => Some(Ok(ReadOutcome::Drained { bytes: *total })),
            io::ErrorKind::Interrupted => None,
            _ => Some(Err(e)),
        },
    }
}

/// Free space [`read_direct`] makes sure the buffer has before each read.
pub const DIRECT_READ_SPARE: usize = 16 * 1024;

/// Like [`read_some`], but reads straight into the spare capacity of `buf` (through
/// [`recv_into_spare`]): no copy through a scratch buffer, the session decodes from `buf`
/// itself. Each read first makes sure `buf` has [`DIRECT_READ_SPARE`] free bytes: meant for
/// a buffer that is drained on every pass and reused in place while nothing else holds a
/// slice of it (the worker's media buffer; see `ChunkDecoder`'s pooled blocks). A pass that holds [`DIRECT_READ_SPARE`] unconsumed
/// bytes and would have to grow `buf` to read on ends as [`ReadOutcome::Budget`] instead (the
/// caller consumes, then comes back), so `buf` stays about two reads' size.
pub fn read_direct(
    socket: &impl AsFd,
    buf: &mut BytesMut,
    budget: usize,
    peer_closed: bool,
) -> io::Result<ReadOutcome> {
    let mut total = 0;
    loop {
        if total >= budget {
            return Ok(ReadOutcome::Budget { bytes: total });
        }
        // Reclaims the consumed front in place (moving an unfinished chunk's few bytes)
        // while `buf` is the only owner of its allocation: no allocation in steady state.
        // When that is not enough and this pass already holds a read's worth, the pass ends
        // so the session consumes it first: the buffer stays near one read's size instead
        // of growing to hold a whole backlog.
        if buf.capacity() - buf.len() < DIRECT_READ_SPARE && !buf.try_reclaim(DIRECT_READ_SPARE) {
            if total > 0 && buf.len() >= DIRECT_READ_SPARE {
                return Ok(ReadOutcome::Budget { bytes: total });
            }
            buf.reserve(DIRECT_READ_SPARE);
        }
        let room = buf.capacity() - buf.len();
        let read = recv_into_spare(socket, buf);
        if let Some(outcome) = after_read(read, room, &mut total, peer_closed) {
            return outcome;
        }
    }
}

/// One `recv(2)` from `socket` into the spare capacity of `buf` (its bytes past `len`, up to
/// `capacity`); on success `buf` grows by the bytes received and their count is returned
/// (0: the peer closed). A `buf` with no spare capacity is an `InvalidInput` error (nothing
/// read). The read path's only `unsafe` (the write path's is in `net/uring.rs`); see the
/// SAFETY comment.
#[allow(unsafe_code)]
pub fn recv_into_spare(socket: &impl AsFd, buf: &mut BytesMut) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    if spare.is_empty() {
        // Not 0: that would read as the peer's EOF.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no spare capacity to read into",
        ));
    }
    let room = spare.len();
    let n = socket2::SockRef::from(socket).recv(spare)?;
    // recv(2) never reports more than it was given room for; checked, not assumed.
    assert!(
        n <= room,
        "recv reported {n} bytes for a {room}-byte buffer"
    );
    // SAFETY: `set_len(len + n)` requires the bytes `len..len + n` to be initialised and
    // `len + n <= capacity`.
    // * `spare` is exactly `buf`'s bytes `len..capacity` (`spare_capacity_mut`), and `buf` is
    //   not touched between taking `spare` and `set_len`.
    // * `Socket::recv` passes `spare` as-is to recv(2), which writes the bytes it received to
    //   the start of the buffer and returns their count `n`; socket2 documents that it never
    //   writes uninitialised bytes into `buf` and that the first `n` bytes are initialised on
    //   success. On error nothing is assumed written and `set_len` is not reached (`?`).
    // * `n <= room = capacity - len` is asserted above, so `len + n <= capacity`.
    // `u8` has no invalid bit patterns, so initialised is all `set_len` needs.
    unsafe {
        buf.set_len(buf.len() + n);
    }
    Ok(n)
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

impl WriteOutcome {
    /// The bytes the pass wrote, however it ended.
    pub fn bytes(self) -> usize {
        match self {
            WriteOutcome::Flushed { bytes }
            | WriteOutcome::Blocked { bytes }
            | WriteOutcome::Budget { bytes }
            | WriteOutcome::Waiting { bytes } => bytes,
        }
    }
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

    /// A connected pair of Unix stream sockets (no network), the reading end non-blocking.
    fn socket_pair() -> (
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    ) {
        let (reader, writer) = std::os::unix::net::UnixStream::pair().unwrap();
        reader.set_nonblocking(true).unwrap();
        (reader, writer)
    }

    #[test]
    fn recv_into_spare_appends_what_arrived_after_the_bytes_already_there() {
        let (reader, mut writer) = socket_pair();
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b"head:");
        writer.write_all(b"0123456789").unwrap();
        let n = recv_into_spare(&reader, &mut buf).unwrap();
        assert_eq!(n, 10);
        assert_eq!(&buf[..], b"head:0123456789");
    }

    #[test]
    fn recv_into_spare_never_reads_past_the_capacity() {
        let (reader, mut writer) = socket_pair();
        let mut buf = BytesMut::with_capacity(8);
        let cap = buf.capacity();
        let data: Vec<u8> = (0..=255).collect();
        writer.write_all(&data).unwrap();
        buf.extend_from_slice(&data[..3]);
        let n = recv_into_spare(&reader, &mut buf).unwrap();
        assert_eq!(n, cap - 3, "filled exactly the spare capacity");
        assert_eq!(buf.len(), cap);
        assert_eq!(&buf[3..], &data[..cap - 3]);
        let err = recv_into_spare(&reader, &mut buf).unwrap_err();
        assert_eq!(
            err.kind(),
            io::ErrorKind::InvalidInput,
            "a full buffer reads nothing"
        );
        assert_eq!(buf.len(), cap);
    }

    #[test]
    fn recv_into_spare_reports_would_block_and_eof_without_touching_the_buffer() {
        let (reader, writer) = socket_pair();
        let mut buf = BytesMut::with_capacity(32);
        buf.extend_from_slice(b"kept");
        let err = recv_into_spare(&reader, &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(writer);
        assert_eq!(recv_into_spare(&reader, &mut buf).unwrap(), 0);
        assert_eq!(&buf[..], b"kept");
    }

    #[test]
    fn read_direct_reads_everything_sent_through_its_own_buffer() {
        let (reader, mut writer) = socket_pair();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let sender = std::thread::spawn(move || {
            writer.write_all(&data).unwrap();
            data
        });
        let mut buf = BytesMut::new();
        let mut received = Vec::new();
        loop {
            match read_direct(&reader, &mut buf, 1 << 20, false).unwrap() {
                ReadOutcome::Closed { .. } => break,
                ReadOutcome::Drained { bytes: 0 } => std::thread::yield_now(),
                _ => {}
            }
            // A decoder consumes what it parsed; the rest stays for the next pass.
            let take = buf.len() - buf.len() % 7;
            received.extend_from_slice(&buf.split_to(take));
        }
        received.extend_from_slice(&buf);
        assert_eq!(received, sender.join().unwrap());
    }

    #[test]
    fn read_direct_reuses_a_drained_buffer_in_place() {
        let (reader, mut writer) = socket_pair();
        let mut buf = BytesMut::new();
        writer.write_all(&[1; 1000]).unwrap();
        read_direct(&reader, &mut buf, 1 << 20, false).unwrap();
        let allocation = buf.as_ptr();
        for _ in 0..10 {
            buf.clear();
            writer.write_all(&[2; 1000]).unwrap();
            let outcome = read_direct(&reader, &mut buf, 1 << 20, false).unwrap();
            assert_eq!(outcome, ReadOutcome::Drained { bytes: 1000 });
            assert_eq!(buf.as_ptr(), allocation, "no new allocation");
        }
    }

    #[test]
    fn read_direct_after_the_peer_closed_reads_on_to_the_eof() {
        let (reader, mut writer) = socket_pair();
        writer.write_all(b"bye").unwrap();
        drop(writer);
        let mut buf = BytesMut::new();
        let outcome = read_direct(&reader, &mut buf, 1 << 20, true).unwrap();
        assert_eq!(outcome, ReadOutcome::Closed { bytes: 3 });
        assert_eq!(&buf[..], b"bye");
    }

    #[test]
    fn read_direct_ends_the_pass_rather_than_grow_a_buffer_it_has_filled() {
        let (reader, mut writer) = socket_pair();
        writer.write_all(&[7; 3 * DIRECT_READ_SPARE]).unwrap();
        let mut buf = BytesMut::new();
        let outcome = read_direct(&reader, &mut buf, 1 << 20, false).unwrap();
        let ReadOutcome::Budget { bytes } = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(bytes, buf.len());
        assert!(buf.capacity() < 2 * DIRECT_READ_SPARE, "{}", buf.capacity());
        // Once the session consumed it, the next pass reads on in the same allocation.
        let allocation = buf.as_ptr();
        let mut total = bytes;
        while total < 3 * DIRECT_READ_SPARE {
            buf.clear();
            match read_direct(&reader, &mut buf, 1 << 20, false).unwrap() {
                ReadOutcome::Budget { bytes } | ReadOutcome::Drained { bytes } => total += bytes,
                other => panic!("{other:?}"),
            }
            assert_eq!(buf.as_ptr(), allocation);
        }
        assert_eq!(total, 3 * DIRECT_READ_SPARE);
    }
}
