//! Unwatched publishers are read by the clock (`workers.unwatched_read_ms`).
//!
//! A publisher is read as its bytes arrive, so its players get them at once. That costs, per
//! message, a wake-up, a `recv` and the TCP ACK the drained read sends back (on loopback the
//! ACK is also received on this core). A stream that nobody watches (no player on any worker,
//! no push target, no HLS/DASH packaging) has nobody waiting for its bytes: its publisher is
//! taken off read readiness (its socket stays registered for writability) and every publisher
//! so polled is read at the same tick, once per interval. Each read then takes
//! what arrived over the whole interval.
//!
//! What it costs, and where it stops:
//!
//! * the GOP cache and recording of an unwatched stream lag by up to the interval; a player
//!   that joins gets the cache at once (its first frame is not delayed) and the live edge at
//!   the next tick, which finds the stream watched and reads it on arrival from then on;
//! * a publisher that writes a message in pieces with Nagle on its socket (libavformat: a
//!   chunk's header and body in separate writes) sends a piece, then waits for its ACK, which
//!   an unread socket delays (the kernel's delayed ACK, or the next poll's read): meanwhile
//!   its other pieces queue up, and Nagle sends them all at once when the ACK comes. It keeps
//!   real time, in bursts (measured in BENCHMARKS.md, issue 13, fourth session).
//!
//! A tick's polls follow each other in one pass: one wake-up per interval for all of them. Off
//! read readiness a socket still reports an error or a reset, but a FIN comes only as a
//! writable event (and none while the socket cannot take more output, until it can): any event
//! of a polled publisher has it read to the end at once.
//!
//! The interval must fit the socket's receive buffer: a small `workers.socket_recv_buffer`
//! (16 KiB, say) would hold a 2.5 Mbit/s publisher back between polls at 50 ms; the kernel's
//! own autotuning (the default) grows the buffer to what is read per interval.

use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::close::CloseReason;
use super::worker::Worker;
use crate::fanout::{ConnKey, StreamKey};

/// The worker's polled publishers' clock: one tick for all of them.
#[derive(Debug)]
pub struct PollClock {
    next: Instant,
}

impl PollClock {
    pub fn new(now: Instant) -> Self {
        Self { next: now }
    }

    /// Whether the tick is due at `now` (then the next is `interval` later).
    pub fn due(&mut self, now: Instant, interval: Duration) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + interval;
        true
    }

    /// When the loop must wake for the next tick.
    pub fn next(&self) -> Instant {
        self.next
    }
}

impl Worker {
    fn unwatched_interval(&self) -> Duration {
        Duration::from_millis(self.config.unwatched_read_ms())
    }

    /// Whether anyone waits for `stream`'s bytes: a player here or on another worker, a push
    /// target, or HLS/DASH packaging.
    fn watched(&self, stream: &StreamKey) -> bool {
        self.hub.audience(stream) > 0 || self.packaging.is_active(stream)
    }

    /// How many publishers are read by the clock now.
    pub(super) fn polled_publishers(&self) -> usize {
        let polled = |key: &&ConnKey| self.conns.get(**key).is_some_and(|c| c.polled);
        self.polled.iter().filter(polled).count()
    }

    /// Once a worker tick: the publishers read on arrival whose streams are unwatched go over
    /// to polling. The switch itself reports the socket writable, which reads it once at once
    /// (see the loop); the first poll comes a whole interval later.
    pub(super) fn poll_unwatched(&mut self, now: Instant) {
        let interval = self.unwatched_interval();
        if interval.is_zero() {
            return;
        }
        // Empty, so allocating nothing, once every such publisher is polled.
        let start: Vec<ConnKey> = self
            .hub
            .published_here()
            .filter(|stream| !self.watched(stream))
            .filter_map(|stream| self.hub.publisher(stream))
            .filter(|key| {
                self.conns
                    .get(*key)
                    .is_some_and(|c| !c.polled && c.closing.is_none())
            })
            .collect();
        if !start.is_empty() && self.polled.is_empty() {
            self.poll_clock = PollClock::new(now + interval);
        }
        for key in start {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let token = Token(key.index as usize);
            if let Err(e) =
                self.poll
                    .registry()
                    .reregister(&mut conn.socket, token, Interest::WRITABLE)
            {
                tracing::warn!(worker = self.index, error = %e, "cannot take a publisher off read readiness");
                continue;
            }
            conn.polled = true;
            tracing::debug!(parent: &conn.span, "stream unwatched: publisher read by the clock");
            // Put back on arrival by an unpublish, it may still be listed (dropped at a tick).
            if !self.polled.contains(&key) {
                self.polled.push(key);
            }
        }
    }

    /// Each interval: every polled publisher is read (added to `readable`); those whose
    /// stream is watched now (or that stopped publishing) go back to readiness first.
    pub(super) fn poll_tick(&mut self, now: Instant, readable: &mut Vec<ConnKey>) {
        if self.polled.is_empty() {
            return;
        }
        let interval = self.unwatched_interval();
        // Set to 0 by a reload: everything back on arrival now, not at the next scheduled poll.
        if !interval.is_zero() && !self.poll_clock.due(now, interval) {
            return;
        }
        let mut polled = std::mem::take(&mut self.polled);
        polled.retain(|&key| {
            let Some(conn) = self.conns.get(key) else {
                return false;
            };
            if !conn.polled {
                return false;
            }
            readable.push(key);
            let stream = conn.published();
            let keep = !interval.is_zero()
                && conn.closing.is_none()
                && stream.as_ref().is_some_and(|s| !self.watched(s));
            if !keep {
                let (span, publishing) = (conn.span.clone(), stream.is_some());
                self.read_on_arrival(key);
                if interval.is_zero() {
                    tracing::debug!(parent: &span, "unwatched_read_ms is 0: publisher read on arrival");
                } else if publishing {
                    tracing::debug!(parent: &span, "stream watched: publisher read on arrival");
                }
            }
            keep
        });
        self.polled = polled;
    }

    /// Puts a polled publisher back on read readiness (nothing for a connection that is not
    /// polled).
    pub(super) fn read_on_arrival(&mut self, key: ConnKey) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.polled {
            return;
        }
        conn.polled = false;
        let token = Token(key.index as usize);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .reregister(&mut conn.socket, token, interest)
        {
            let now = Instant::now();
            self.close(key, CloseReason::ReadFailed(e.into()), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_ticks_once_per_interval() {
        let t0 = Instant::now();
        let every = Duration::from_millis(50);
        let mut clock = PollClock::new(t0);
        assert!(clock.due(t0, every));
        assert!(!clock.due(t0 + Duration::from_millis(49), every));
        assert_eq!(clock.next(), t0 + every);
        assert!(clock.due(t0 + every, every));
        assert!(!clock.due(t0 + every, every));
    }
}
