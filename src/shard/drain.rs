//! Graceful drain (SIGTERM, [`Server::drain`](super::Server::drain)): a worker stops accepting
//! RTMP, answers `/healthz` with 503, asks every E-RTMP client that can reconnect to do so
//! (`NetConnection.Connect.ReconnectRequest`, to `drain.redirect_url` when set), spread
//! evenly over the first half of `timeouts.drain_ms` so they do not all reconnect in the same
//! millisecond, players before publishers, and goes on serving everyone until they leave. At `drain_ms` whatever is left
//! goes through the shutdown (`Worker::begin_shutdown`); a worker whose clients have all
//! left ends at once. States: docs/LIFECYCLE-drain.md.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::close::CloseReason;
use super::conn::{Proto, Role};
use super::worker::{Listener, Worker};
use crate::fanout::ConnKey;

/// A worker's drain in progress.
#[derive(Debug)]
pub struct Drain {
    started: Instant,
    /// The drain deadline: what is left then is shut down.
    deadline: Instant,
    /// Reconnect requests are spread over `started..started + spread`.
    spread: Duration,
    /// Clients already asked (a key is never asked twice; stale keys are harmless).
    asked: HashSet<ConnKey>,
    /// Capable clients seen so far (asked or waiting): the spread's denominator.
    capable: usize,
}

/// How many of `total` clients should have been asked `elapsed` into a spread of `spread`:
/// evenly, rounded up (the first is asked at once), all of them once it is over.
pub(super) fn due_by(total: usize, elapsed: Duration, spread: Duration) -> usize {
    if elapsed >= spread || spread.is_zero() {
        return total;
    }
    let due = (total as u128 * elapsed.as_nanos()).div_ceil(spread.as_nanos());
    (due as usize).clamp(total.min(1), total)
}

impl Worker {
    /// Starts draining: closes the RTMP listeners (new RTMP connections are refused; HTTP
    /// stays up so load balancers see `/healthz` answer 503) and arms the deadline.
    pub(super) fn begin_drain(&mut self, now: Instant) {
        let drain_ms = self.config.timeouts.drain_ms;
        let registry = self.poll.registry();
        self.listeners.retain_mut(|(listener, kind)| {
            let http = *kind == Listener::Http;
            if !http {
                let _ = registry.deregister(listener);
            }
            http
        });
        self.drain = Some(Drain {
            started: now,
            deadline: now + Duration::from_millis(drain_ms),
            spread: Duration::from_millis(drain_ms / 2),
            asked: HashSet::new(),
            capable: 0,
        });
        tracing::info!(
            worker = self.index,
            connections = self.conns.len(),
            drain_ms,
            redirect_url = %self.config.drain.redirect_url,
            "drain started: RTMP listeners closed, asking clients to reconnect"
        );
    }

    /// Drives a drain each tick: sends the reconnect requests due by now, and at the deadline
    /// hands what is left to the shutdown. Returns true when the worker is done (every
    /// client left before the deadline, and no upstream connection is left to close).
    pub(super) fn drain_tick(&mut self, now: Instant) -> bool {
        let Some(drain) = self.drain.as_mut() else {
            return false;
        };
        // Upstream connections (relay pulls lingering without players) are not clients.
        let clients_left = self
            .conns
            .iter()
            .all(|(_, c)| matches!(c.proto, Proto::Upstream(_)));
        if clients_left {
            tracing::info!(
                worker = self.index,
                elapsed_ms = now.duration_since(drain.started).as_millis() as u64,
                "drain ended: every client left"
            );
            self.drain = None;
            // What is left (upstreams) goes through the shutdown, which ends at once when
            // nothing is.
            self.begin_shutdown(now, CloseReason::ShuttingDown);
            return self.conns.is_empty();
        }
        if now >= drain.deadline {
            let ms = self.config.timeouts.drain_ms;
            tracing::info!(
                worker = self.index,
                left = self.conns.len(),
                "drain ended: deadline passed, shutting down who is left"
            );
            self.drain = None;
            self.begin_shutdown(now, CloseReason::DrainDeadline { ms });
            return false;
        }
        // Clients that are connected, can reconnect and were not asked yet (a connection
        // still handshaking now is found on a later tick). Publishers last: players that follow the request first wait for their stream where
        // they went (served here until then), so when its publisher arrives there they get
        // its first keyframe and everything after, with nothing missed in between.
        let mut waiting: Vec<(bool, ConnKey)> = self
            .conns
            .iter()
            .filter(|(key, conn)| {
                !drain.asked.contains(key)
                    && conn.closing.is_none()
                    && matches!(&conn.proto, Proto::Rtmp(s) if s.can_reconnect())
            })
            .map(|(key, conn)| (conn.role == Role::Publisher, key))
            .collect();
        waiting.sort_by_key(|&(publisher, _)| publisher);
        drain.capable = drain.capable.max(drain.asked.len() + waiting.len());
        let due = due_by(
            drain.capable,
            now.duration_since(drain.started),
            drain.spread,
        );
        let ask = due.saturating_sub(drain.asked.len()).min(waiting.len());
        let redirect = &self.config.drain.redirect_url;
        let tc_url = (!redirect.is_empty()).then_some(redirect.as_str());
        let mut sent = Vec::with_capacity(ask);
        for (_, key) in waiting.into_iter().take(ask) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let Some(session) = conn.rtmp() else {
                continue;
            };
            // A connect not answered yet is asked on a later tick.
            if session.request_reconnect(tc_url) {
                let _envelope = conn.span.enter();
                tracing::debug!(tc_url = tc_url.unwrap_or_default(), "asked to reconnect");
                drain.asked.insert(key);
                sent.push(key);
            }
        }
        for key in sent {
            self.pump(key);
        }
        false
    }

    /// True while draining (`/healthz` answers 503).
    pub(super) fn is_draining(&self) -> bool {
        self.drain.is_some() || self.shutdown_deadline.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn requests_are_spread_evenly_over_the_spread_and_all_sent_by_its_end() {
        assert_eq!(due_by(1000, ms(0), ms(15_000)), 1, "the first at once");
        assert_eq!(due_by(1000, ms(1500), ms(15_000)), 100);
        assert_eq!(due_by(1000, ms(7500), ms(15_000)), 500);
        assert_eq!(due_by(1000, ms(14_999), ms(15_000)), 1000);
        assert_eq!(due_by(1000, ms(15_000), ms(15_000)), 1000);
        assert_eq!(due_by(1000, ms(60_000), ms(15_000)), 1000);
    }

    #[test]
    fn few_clients_are_asked_one_by_one_and_none_is_never_due() {
        assert_eq!(due_by(3, ms(0), ms(900)), 1);
        assert_eq!(due_by(3, ms(300), ms(900)), 1);
        assert_eq!(due_by(3, ms(301), ms(900)), 2);
        assert_eq!(due_by(3, ms(601), ms(900)), 3);
        assert_eq!(due_by(0, ms(100), ms(900)), 0);
        assert_eq!(due_by(5, ms(1), Duration::ZERO), 5);
    }
}
