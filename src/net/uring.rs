//! The io_uring write path (`workers.io = "io_uring"`): every plain socket write of one
//! wake-up goes to the kernel in one submission, one `sendmsg` per socket, instead of one
//! `writev(2)` system call each.
//!
//! Readiness still comes from the worker's mio Poll (epoll): the ring only carries the sends.
//! Each send is non-blocking (`MSG_DONTWAIT`), so the kernel completes it during the
//! submission itself, with what `writev` would have returned (bytes sent, or `EAGAIN` when
//! the socket buffer is full): [`SendRing::send_all`] returns after every send of the batch
//! has completed, so the buffers it points at only need to live for the call, and no send is
//! ever in flight between wake-ups.
//!
//! A ring is not `Send`: a worker makes its own on its thread (the ring is single-issuer) and
//! keeps it there. Where the kernel could still hold entries pointing at a call's buffers and
//! the call cannot wait for them (an io_uring_enter error other than EINTR/EAGAIN/EBUSY, which
//! a correctly sized ring never gets), the process aborts rather than unwind past them.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use io_uring::{opcode, types, IoUring, Probe};

use super::WriteOutcome;
use crate::fanout::OutputQueue;

/// Submission queue entries: sends per submission (a larger batch is submitted in parts).
const RING_ENTRIES: u32 = 1024;
/// Most slices one send hands to the kernel (as `write_queue`'s writev).
const MAX_IOVECS: usize = 256;

/// What one send of a batch did.
#[derive(Debug)]
pub struct Sent {
    /// The bytes the socket took, or the error the send failed with (`WouldBlock` when its
    /// buffer was full).
    pub result: io::Result<usize>,
    /// The bytes offered: all of the queue, unless it held more than one send's slices.
    pub offered: usize,
}

impl Sent {
    /// Consumes from `queue` (the queue this send was made from) what the socket took, and
    /// says how the pass ended, as `write_queue` would have: empty, blocked (a short send or
    /// `WouldBlock`: the kernel marked the socket, a writable event follows), or more queued
    /// than one send offered (come back at once).
    pub fn outcome(self, queue: &mut OutputQueue) -> io::Result<WriteOutcome> {
        match self.result {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            Ok(bytes) => {
                queue.consume(bytes);
                Ok(if queue.is_empty() {
                    WriteOutcome::Flushed { bytes }
                } else if bytes < self.offered {
                    WriteOutcome::Blocked { bytes }
                } else {
                    WriteOutcome::Budget { bytes }
                })
            }
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock => Ok(WriteOutcome::Blocked { bytes: 0 }),
                io::ErrorKind::Interrupted => Ok(WriteOutcome::Budget { bytes: 0 }),
                _ => Err(e),
            },
        }
    }
}

/// An io_uring instance used to send a worker's writes in batches.
pub struct SendRing {
    ring: IoUring,
    /// The slices of the batch being built, every send's in turn.
    iovecs: Vec<libc::iovec>,
    /// Each send's message header (pointing into `iovecs`).
    headers: Vec<libc::msghdr>,
    /// Each send's socket, first slice in `iovecs` and slice count.
    spans: Vec<(RawFd, usize, usize)>,
}

impl SendRing {
    /// A ring, if this kernel lets the process have one that can send (io_uring missing,
    /// disabled by `kernel.io_uring_disabled`, or refused by a container's seccomp filter
    /// all give the error that says so).
    pub fn new() -> io::Result<Self> {
        // Completions are taken only when the worker asks: no interrupt to run them early.
        let ring = IoUring::builder()
            .setup_coop_taskrun()
            .setup_single_issuer()
            .build(RING_ENTRIES)
            .or_else(|_| IoUring::new(RING_ENTRIES))?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        if !probe.is_supported(opcode::SendMsg::CODE) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring on this kernel has no sendmsg",
            ));
        }
        Ok(Self {
            ring,
            iovecs: Vec::new(),
            headers: Vec::new(),
            spans: Vec::new(),
        })
    }

    /// Sends the front of each queue on its socket, every send in one submission (in parts of
    /// [`RING_ENTRIES`]), and puts into `sent` what each did, in the order of `sends`. The
    /// queues are not consumed: the caller does that with each result. The sockets and
    /// queues are borrowed for at least the call (`'a`), which returns only when the kernel
    /// is done with them.
    pub fn send_all<'a>(
        &mut self,
        mut sends: impl Iterator<Item = (BorrowedFd<'a>, &'a OutputQueue)>,
        sent: &mut Vec<Sent>,
    ) {
        sent.clear();
        while self.send_part(sends.by_ref().take(RING_ENTRIES as usize), sent) {}
    }

    /// Sends the next part (at most [`RING_ENTRIES`] sends); false when it was empty.
    /// The crate's `unsafe` on the write path (see the SAFETY comment).
    #[allow(unsafe_code)]
    fn send_part<'a>(
        &mut self,
        part: impl Iterator<Item = (BorrowedFd<'a>, &'a OutputQueue)>,
        sent: &mut Vec<Sent>,
    ) -> bool {
        if !self.ring.submission().is_empty() {
            abort("io_uring submission queue not empty between calls");
        }
        self.iovecs.clear();
        self.headers.clear();
        self.spans.clear();
        let first = sent.len();
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        for (fd, queue) in part {
            let n = queue.fill_slices(&mut slices);
            let start = self.iovecs.len();
            let mut offered = 0;
            for slice in &slices[..n] {
                offered += slice.len();
                self.iovecs.push(libc::iovec {
                    iov_base: slice.as_ptr() as *mut libc::c_void,
                    iov_len: slice.len(),
                });
            }
            self.spans.push((fd.as_raw_fd(), start, n));
            sent.push(Sent {
                result: Ok(0),
                offered,
            });
        }
        let count = self.spans.len();
        if count == 0 {
            return false;
        }
        // Headers are made once `iovecs` has stopped growing (it may have moved while it did).
        for &(_, start, n) in &self.spans {
            self.headers.push(libc::msghdr {
                msg_name: std::ptr::null_mut(),
                msg_namelen: 0,
                msg_iov: self.iovecs[start..].as_mut_ptr(),
                msg_iovlen: n as _,
                msg_control: std::ptr::null_mut(),
                msg_controllen: 0,
                msg_flags: 0,
            });
        }
        for (i, &(fd, _, _)) in self.spans.iter().enumerate() {
            let entry = opcode::SendMsg::new(types::Fd(fd), &self.headers[i])
                .flags((libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as u32)
                .build()
                .user_data(i as u64);
            // SAFETY: the entry points at `headers[i]`, which points at slices of `iovecs`,
            // which point at the bytes of the queues of this part. None of these is touched or
            // dropped before every entry of this part has completed: `headers` and `iovecs`
            // are not changed again in this call, the queues are borrowed for longer than it
            // (`'a`), and the
            // loop below returns only after taking one completion per entry. The ring has
            // room: a part has at most RING_ENTRIES entries and the queue is empty here
            // (every earlier part was completed the same way).
            if unsafe { self.ring.submission().push(&entry) }.is_err() {
                // Earlier entries of this part are queued: no unwinding past them.
                abort("io_uring submission queue full");
            }
        }
        let mut done = 0;
        while done < count {
            match self.ring.submit_and_wait(count - done) {
                Ok(_) => {}
                // Interrupted, or completions to take first: take them, then submit again.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)
                    ) => {}
                // The entries point at memory this call must not give back while the kernel
                // may still use it: no way to return (or unwind) safely.
                Err(e) => abort(&format!("io_uring submission failed: {e}")),
            }
            for cqe in self.ring.completion() {
                let result = cqe.result();
                let Some(slot) = sent.get_mut(first + cqe.user_data() as usize) else {
                    abort("io_uring completion for an entry this call did not make");
                };
                slot.result = if result < 0 {
                    Err(io::Error::from_raw_os_error(-result))
                } else {
                    Ok(result as usize)
                };
                done += 1;
            }
        }
        // No pointer into the callers' buffers is kept past the call.
        self.headers.clear();
        self.iovecs.clear();
        true
    }
}

/// Logs `why` and aborts the process: for the states where returning or unwinding could let
/// the kernel write from memory that is given back.
fn abort(why: &str) -> ! {
    tracing::error!("{why}: aborting");
    eprintln!("rtmp-edge: {why}: aborting");
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn queue_of(parts: &[&'static [u8]]) -> OutputQueue {
        let mut queue = OutputQueue::new(1 << 20);
        for part in parts {
            queue.push_control(Bytes::from_static(part));
        }
        queue
    }

    #[test]
    fn one_submission_sends_every_queue_to_its_own_socket() {
        let Ok(mut ring) = SendRing::new() else {
            panic!("io_uring is unavailable on this machine");
        };
        let pairs: Vec<(UnixStream, UnixStream)> =
            (0..3).map(|_| UnixStream::pair().unwrap()).collect();
        for (a, _) in &pairs {
            a.set_nonblocking(true).unwrap();
        }
        let queues = [
            queue_of(&[b"one ", b"two"]),
            queue_of(&[b"three"]),
            queue_of(&[b"four ", b"five ", b"six"]),
        ];
        let sends: Vec<_> = pairs
            .iter()
            .zip(&queues)
            .map(|((a, _), q)| (a.as_fd(), q))
            .collect();
        let mut sent = Vec::new();
        ring.send_all(sends.iter().copied(), &mut sent);
        let expected: [&[u8]; 3] = [b"one two", b"three", b"four five six"];
        for (i, ((_, b), want)) in pairs.iter().zip(expected).enumerate() {
            assert_eq!(sent[i].result.as_ref().unwrap(), &want.len());
            assert_eq!(sent[i].offered, want.len());
            let mut got = vec![0; want.len()];
            (&*b).read_exact(&mut got).unwrap();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_full_socket_reports_would_block_and_a_closed_one_its_error() {
        let mut ring = SendRing::new().expect("io_uring is unavailable on this machine");
        let (full, _keep) = UnixStream::pair().unwrap();
        full.set_nonblocking(true).unwrap();
        // Fill the socket buffer.
        let block = vec![0u8; 64 * 1024];
        while std::io::Write::write(&mut &full, &block).is_ok() {}
        let (closed, peer) = UnixStream::pair().unwrap();
        closed.set_nonblocking(true).unwrap();
        drop(peer);
        let queue = queue_of(&[b"more"]);
        let mut sent = Vec::new();
        ring.send_all(
            [(full.as_fd(), &queue), (closed.as_fd(), &queue)].into_iter(),
            &mut sent,
        );
        assert_eq!(
            sent[0].result.as_ref().unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert_eq!(
            sent[1].result.as_ref().unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }

    #[test]
    fn a_batch_larger_than_the_ring_is_sent_in_parts_in_order() {
        let mut ring = SendRing::new().expect("io_uring is unavailable on this machine");
        let n = RING_ENTRIES as usize + 5;
        // Eight sockets, taken in turn (each send costs its socket buffer a whole buffer
        // head, so one socket would fill up).
        let pairs: Vec<(UnixStream, UnixStream)> =
            (0..8).map(|_| UnixStream::pair().unwrap()).collect();
        let queues: Vec<OutputQueue> = (0..n)
            .map(|i| {
                let mut queue = OutputQueue::new(1 << 20);
                queue.push_control(Bytes::from(vec![(i / 8 % 251) as u8]));
                queue
            })
            .collect();
        let sends: Vec<_> = (0..n)
            .map(|i| (pairs[i % 8].0.as_fd(), &queues[i]))
            .collect();
        let mut sent = Vec::new();
        ring.send_all(sends.iter().copied(), &mut sent);
        assert_eq!(sent.len(), n);
        for (i, s) in sent.iter().enumerate() {
            assert_eq!(s.result.as_ref().ok(), Some(&1), "send {i}: {:?}", s.result);
        }
        for (p, (_, b)) in pairs.iter().enumerate() {
            let count = (n - p).div_ceil(8);
            let mut got = vec![0u8; count];
            (&*b).read_exact(&mut got).unwrap();
            let want: Vec<u8> = (0..count).map(|j| (j % 251) as u8).collect();
            assert_eq!(got, want, "socket {p}");
        }
    }

    #[test]
    fn a_send_result_becomes_the_outcome_write_queue_would_give() {
        let sent = |result: io::Result<usize>, offered| Sent { result, offered };
        let mut queue = queue_of(&[b"abcdef"]);
        assert_eq!(
            sent(Ok(2), 6).outcome(&mut queue).unwrap(),
            WriteOutcome::Blocked { bytes: 2 },
            "a short send: the socket is full"
        );
        assert_eq!(queue.queued_bytes(), 4, "what the socket took is consumed");
        assert_eq!(
            sent(Ok(4), 4).outcome(&mut queue).unwrap(),
            WriteOutcome::Flushed { bytes: 4 }
        );
        let mut more = queue_of(&[b"abc", b"def"]);
        assert_eq!(
            sent(Ok(3), 3).outcome(&mut more).unwrap(),
            WriteOutcome::Budget { bytes: 3 },
            "all it offered taken, more queued"
        );
        let would_block = io::Error::from(io::ErrorKind::WouldBlock);
        assert_eq!(
            sent(Err(would_block), 3).outcome(&mut more).unwrap(),
            WriteOutcome::Blocked { bytes: 0 }
        );
        assert_eq!(
            sent(Ok(0), 3).outcome(&mut more).unwrap_err().kind(),
            io::ErrorKind::WriteZero
        );
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(sent(Err(reset), 3).outcome(&mut more).is_err());
    }
}
