//! Unwatched publishers are read by the clock (`workers.unwatched_read_ms`).
//!
//! A publisher is read as its bytes arrive, so its players get them at once. That costs, per
//! message, a wake-up, a `recv` and the TCP ACK the drained read sends back (on loopback the
//! ACK is also received on this core). A stream that nobody watches (no player on any worker,
//! no push target, no HLS/DASH packaging) has nobody waiting for its bytes: its publisher is
//! taken off read readiness (its socket stays registered for writability and hang-ups) and
//! every publisher so polled is read at the same tick, once per interval. Each read then takes
//! what arrived over the whole interval.
//!
//! What it costs, and where it stops:
//!
//! * the GOP cache and recording of an unwatched stream lag by up to the interval; a player
//!   that joins gets the cache at once (its first frame is not delayed) and the live edge at
//!   the next tick, which finds the stream watched and reads it on arrival from then on;
//! * a publisher that sends its messages in pieces with Nagle on its socket (a small write
//!   waits for the ACK of the one before, and with the publisher unread the kernel delays
//!   that ACK by up to 40 ms) would be slowed to a piece per tick: such a publisher shows as
//!   polls that end inside a message, and after [`SPLIT_POLLS`] of them in a row it is read on
//!   arrival for good (a publisher that sends whole messages ends a poll mid-message only
//!   when the tick falls inside a large one).
//!
//! A tick's polls follow each other in one pass, so polling adds no wake-ups of its own.

use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::close::CloseReason;
use super::conn::Proto;
use super::worker::Worker;
use crate::fanout::{ConnKey, StreamKey};

/// Polls in a row that end inside a message before a publisher is read on arrival for good.
pub const SPLIT_POLLS: u8 = 2;

/// How a publisher's socket is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reading {
    /// On readiness, as bytes arrive (every connection starts so).
    #[default]
    OnArrival,
    /// By the clock while its stream is unwatched; `split` counts the polls in a row that
    /// ended inside a message.
    Polled { split: u8 },
    /// On arrival for good: its polls kept ending inside messages.
    Pinned,
}

impl Reading {
    /// After a poll: `unfinished` says whether it ended inside a message. The new state;
    /// anything but `Polled` puts the publisher back on readiness.
    pub fn after_poll(self, unfinished: bool) -> Reading {
        match self {
            Reading::Polled { split } if unfinished => match split + 1 {
                n if n >= SPLIT_POLLS => Reading::Pinned,
                n => Reading::Polled { split: n },
            },
            Reading::Polled { .. } => Reading::Polled { split: 0 },
            other => other,
        }
    }

    /// Whether a publisher read this way may be polled while its stream is unwatched.
    pub fn may_poll(self) -> bool {
        self == Reading::OnArrival
    }
}

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
        Duration::from_millis(self.config.workers.unwatched_read_ms)
    }

    /// Whether anyone waits for `stream`'s bytes: a player here or on another worker, a push
    /// target, or HLS/DASH packaging.
    fn watched(&self, stream: &StreamKey) -> bool {
        self.hub.audience(stream) > 0 || self.packaging.is_active(stream)
    }

    /// How many publishers are read by the clock now.
    pub(super) fn polled_publishers(&self) -> usize {
        let polled = |key: &&ConnKey| {
            self.conns
                .get(**key)
                .is_some_and(|c| matches!(c.reading, Reading::Polled { .. }))
        };
        self.polled.iter().filter(polled).count()
    }

    /// Once a worker tick: the publishers read on arrival whose streams are unwatched go over
    /// to polling.
    pub(super) fn poll_unwatched(&mut self) {
        if self.unwatched_interval().is_zero() {
            return;
        }
        let start: Vec<ConnKey> = self
            .hub
            .published_here()
            .filter(|stream| !self.watched(stream))
            .filter_map(|stream| self.hub.publisher(stream))
            .filter(|key| {
                self.conns.get(*key).is_some_and(|c| {
                    c.reading.may_poll() && c.closing.is_none() && matches!(c.proto, Proto::Rtmp(_))
                })
            })
            .collect();
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
            conn.reading = Reading::Polled { split: 0 };
            tracing::debug!(parent: &conn.span, "stream unwatched: publisher read by the clock");
            self.polled.push(key);
        }
    }

    /// Each interval: every polled publisher is read (added to `readable`); those whose
    /// stream is watched now (or that stopped publishing) go back to readiness first.
    pub(super) fn poll_tick(&mut self, now: Instant, readable: &mut Vec<ConnKey>) {
        if self.polled.is_empty() {
            return;
        }
        let interval = self.unwatched_interval();
        if !self.poll_clock.due(now, interval) {
            return;
        }
        let mut polled = std::mem::take(&mut self.polled);
        polled.retain(|&key| {
            let Some(conn) = self.conns.get(key) else {
                return false;
            };
            if !matches!(conn.reading, Reading::Polled { .. }) {
                return false;
            }
            readable.push(key);
            let keep = !interval.is_zero()
                && conn.closing.is_none()
                && conn.published().is_some_and(|stream| !self.watched(&stream));
            if !keep {
                if interval.is_zero() {
                    tracing::debug!(parent: &conn.span, "unwatched_read_ms is 0: publisher read on arrival");
                } else if conn.published().is_some() {
                    tracing::debug!(parent: &conn.span, "stream watched: publisher read on arrival");
                }
                self.read_on_arrival(key, Reading::OnArrival);
            }
            keep
        });
        self.polled = polled;
    }

    /// After a read of a polled publisher that drained its socket: one that keeps ending
    /// polls inside messages is read on arrival for good.
    pub(super) fn polled_read(&mut self, key: ConnKey) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let next = conn.reading.after_poll(conn.unfinished.is_some());
        conn.reading = next;
        if next == Reading::Pinned {
            tracing::debug!(parent: &conn.span, "publisher sends messages in pieces: read on arrival");
            self.read_on_arrival(key, Reading::Pinned);
        }
    }

    /// Puts a polled publisher back on read readiness, read `how` from now on.
    fn read_on_arrival(&mut self, key: ConnKey, how: Reading) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.reading = how;
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
    fn polls_ending_inside_messages_pin_a_publisher_after_two_in_a_row() {
        let polled = Reading::Polled { split: 0 };
        let once = polled.after_poll(true);
        assert_eq!(once, Reading::Polled { split: 1 });
        assert_eq!(once.after_poll(true), Reading::Pinned);
        // A whole poll in between starts the count again.
        assert_eq!(
            once.after_poll(false).after_poll(true),
            Reading::Polled { split: 1 }
        );
        assert_eq!(Reading::Pinned.after_poll(false), Reading::Pinned);
        assert_eq!(Reading::OnArrival.after_poll(true), Reading::OnArrival);
    }

    #[test]
    fn only_a_publisher_read_on_arrival_and_not_pinned_may_be_polled() {
        assert!(Reading::OnArrival.may_poll());
        assert!(!Reading::Pinned.may_poll());
        assert!(!Reading::Polled { split: 0 }.may_poll());
    }

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
