//! Health of the configured origins: each is up, or down until a time set by exponential
//! backoff over its consecutive failures; and the choice of the origin a stream tries next.
//!
//! One [`Origins`] per worker, shared by all its pulls (each pull passes it into the inputs
//! that can fail over). Health is what this worker has seen; workers do not share it.

use std::time::{Duration, Instant};

use super::rendezvous::rendezvous_order;
use super::url::OriginUrl;

/// Why an attempt at an origin (or a push target) failed. Every kind counts the same for
/// backoff; the kind is kept for logs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// TCP/TLS connect, handshake or `connect` failed, or all of it took longer than the
    /// origin timeout.
    ConnectFailed,
    /// The origin refused `play` (e.g. NetStream.Play.StreamNotFound), or the push target
    /// refused `publish`.
    Refused,
    /// Connected, but no media arrived within the origin timeout.
    NoMedia,
    /// Media stopped for the origin timeout in the middle of the stream, or the connection
    /// was lost.
    Stall,
    /// The origin redirected us (NetConnection.Connect.Rejected with `ex.redirect`) more
    /// than once, or to a URL we cannot use.
    Redirect,
    /// The origin asked us to reconnect elsewhere (E-RTMP ReconnectRequest without a
    /// `tcUrl`: it drains): it is not chosen again until its backoff ends.
    Draining,
}

/// Exponential backoff: `min` after the first consecutive failure, doubling, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after one failure (1 s by default).
    pub min: Duration,
    /// Longest delay (30 s by default).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// How long to stay away after `failures` consecutive failures (`failures >= 1`):
    /// `min * 2^(failures - 1)`, at most `max`.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.min
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// What this worker knows of one origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OriginHealth {
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Down (not to be tried) until then; `None` or a past time: up.
    pub down_until: Option<Instant>,
    /// The last failure, for logs.
    pub last_failure: Option<FailureKind>,
}

impl OriginHealth {
    /// Whether the origin may be tried at `now`.
    pub fn is_up(&self, now: Instant) -> bool {
        !matches!(self.down_until, Some(t) if t > now)
    }
}

/// The origin a stream should use next ([`Origins::next_origin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextOrigin {
    /// Connect to this origin (an index into [`Origins::urls`]) now.
    Now(usize),
    /// Every origin is down; this one's backoff ends first, at the given time.
    At(usize, Instant),
}

/// Most origins learned from the cluster directory on top of the configured ones (a
/// directory full of junk cannot grow a worker's list without bound).
pub const MAX_LEARNED_ORIGINS: usize = 64;

/// The configured origins, then those learned from the cluster directory, and their health.
#[derive(Debug, Clone)]
pub struct Origins {
    urls: Vec<OriginUrl>,
    health: Vec<OriginHealth>,
    backoff: Backoff,
    /// `urls[..configured]` came from the configuration; the rest were learned.
    configured: usize,
}

impl Origins {
    /// All origins up. Build once per worker from the configuration.
    pub fn new(urls: Vec<OriginUrl>, backoff: Backoff) -> Self {
        let health = vec![OriginHealth::default(); urls.len()];
        Self {
            configured: urls.len(),
            urls,
            health,
            backoff,
        }
    }

    /// The index of `url`, an origin the cluster directory named for a stream: a known one's,
    /// or a new index (the origin up) for one not known yet, tried only when the directory
    /// names it (it does not join the rendezvous order). `None` past [`MAX_LEARNED_ORIGINS`].
    pub fn learn(&mut self, url: OriginUrl) -> Option<usize> {
        if let Some(at) = self.urls.iter().position(|u| *u == url) {
            return Some(at);
        }
        if self.urls.len() - self.configured >= MAX_LEARNED_ORIGINS {
            return None;
        }
        self.urls.push(url);
        self.health.push(OriginHealth::default());
        Some(self.urls.len() - 1)
    }

    /// The origins, configured ones first in configuration order, then learned ones
    /// (indices used everywhere here).
    pub fn urls(&self) -> &[OriginUrl] {
        &self.urls
    }

    /// Health of origin `index`.
    pub fn health(&self, index: usize) -> &OriginHealth {
        &self.health[index]
    }

    /// No origins: this server never pulls.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The origin the stream `key` ([`super::stream_key`]) should try next: the first
    /// configured origin in its rendezvous order that is up at `now`; when all are down, the one whose backoff ends
    /// first (the earlier in rendezvous order on a tie) and when. `None` with no origins.
    /// Call when a pull starts or has just failed.
    #[must_use]
    pub fn next_origin(&self, key: &str, now: Instant) -> Option<NextOrigin> {
        // Learned origins are tried only when the directory names them (`Pull::prefer`), so
        // every edge, whatever it has learned, orders a stream's origins the same way.
        let order = rendezvous_order(key, &self.urls[..self.configured]);
        if let Some(&up) = order.iter().find(|&&i| self.health[i].is_up(now)) {
            return Some(NextOrigin::Now(up));
        }
        order
            .iter()
            .filter_map(|&i| self.health[i].down_until.map(|t| (t, i)))
            .min_by_key(|&(t, _)| t)
            .map(|(t, i)| NextOrigin::At(i, t))
    }

    /// Origin `index` failed at `now`: it is down for the backoff of its consecutive
    /// failures. Returns when it comes back up. Call once per failed attempt.
    pub fn failed(&mut self, index: usize, kind: FailureKind, now: Instant) -> Instant {
        let h = &mut self.health[index];
        h.consecutive_failures = h.consecutive_failures.saturating_add(1);
        h.last_failure = Some(kind);
        let until = now + self.backoff.delay(h.consecutive_failures);
        h.down_until = Some(until);
        until
    }

    /// The configured origins become `urls` (a reload): an origin kept keeps its health, a
    /// new one is up; learned origins stay (after the configured ones). Returns the new index
    /// of each old origin (`None`: removed), to remap pulls.
    pub fn reconfigure(&mut self, urls: Vec<OriginUrl>) -> Vec<Option<usize>> {
        let configured = urls.len();
        let learned = self.urls[self.configured..]
            .iter()
            .filter(|u| !urls.contains(u))
            .cloned();
        let urls: Vec<OriginUrl> = urls.iter().cloned().chain(learned).collect();
        self.configured = configured;
        let remap: Vec<Option<usize>> = self
            .urls
            .iter()
            .map(|old| urls.iter().position(|u| u == old))
            .collect();
        let health = urls
            .iter()
            .map(|u| {
                self.urls
                    .iter()
                    .position(|old| old == u)
                    .map_or_else(OriginHealth::default, |i| self.health[i])
            })
            .collect();
        self.urls = urls;
        self.health = health;
        remap
    }

    /// Origin `index` delivered media: its backoff starts again from the minimum.
    pub fn succeeded(&mut self, index: usize) {
        self.health[index] = OriginHealth::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn origins(n: usize) -> Origins {
        let urls = (0..n)
            .map(|i| OriginUrl::parse(&format!("rtmp://origin-{i}")).unwrap())
            .collect();
        Origins::new(urls, Backoff::default())
    }

    #[test]
    fn backoff_doubles_from_one_second_and_stops_at_thirty() {
        let b = Backoff::default();
        let delays: Vec<u64> = (1..=8).map(|f| b.delay(f).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(b.delay(u32::MAX), 30 * S);
    }

    #[test]
    fn consecutive_failures_grow_the_backoff_and_success_resets_it() {
        let t0 = Instant::now();
        let mut o = origins(1);
        assert_eq!(o.failed(0, FailureKind::ConnectFailed, t0), t0 + S);
        assert_eq!(o.failed(0, FailureKind::NoMedia, t0 + S), t0 + 3 * S);
        assert_eq!(o.failed(0, FailureKind::Stall, t0 + 3 * S), t0 + 7 * S);
        assert_eq!(o.health(0).consecutive_failures, 3);
        assert_eq!(o.health(0).last_failure, Some(FailureKind::Stall));
        o.succeeded(0);
        assert!(o.health(0).is_up(t0 + 7 * S));
        assert_eq!(o.failed(0, FailureKind::Refused, t0 + 9 * S), t0 + 10 * S);
    }

    #[test]
    fn next_origin_is_the_first_up_origin_in_rendezvous_order() {
        let t0 = Instant::now();
        let mut o = origins(3);
        let order = rendezvous_order("live/demo", o.urls());
        assert_eq!(
            o.next_origin("live/demo", t0),
            Some(NextOrigin::Now(order[0]))
        );
        o.failed(order[0], FailureKind::ConnectFailed, t0);
        assert_eq!(
            o.next_origin("live/demo", t0),
            Some(NextOrigin::Now(order[1]))
        );
        // Back up once its backoff has passed.
        assert_eq!(
            o.next_origin("live/demo", t0 + S),
            Some(NextOrigin::Now(order[0]))
        );
    }

    #[test]
    fn when_all_are_down_next_origin_names_the_earliest_to_come_back() {
        let t0 = Instant::now();
        let mut o = origins(3);
        let order = rendezvous_order("live/demo", o.urls());
        o.failed(order[0], FailureKind::ConnectFailed, t0);
        o.failed(order[0], FailureKind::ConnectFailed, t0); // 2 s
        o.failed(order[1], FailureKind::ConnectFailed, t0 + S / 2); // until 1.5 s
        o.failed(order[2], FailureKind::ConnectFailed, t0 + S); // until 2 s
        assert_eq!(
            o.next_origin("live/demo", t0 + S),
            Some(NextOrigin::At(order[1], t0 + S + S / 2))
        );
    }

    #[test]
    fn no_origins_means_no_next_origin() {
        assert_eq!(origins(0).next_origin("live/demo", Instant::now()), None);
    }

    proptest::proptest! {
        #[test]
        fn backoff_stays_between_min_and_max_and_never_shrinks(
            min_ms in 1u64..5_000, extra_ms in 0u64..120_000, failures in 1u32..100,
        ) {
            let b = Backoff {
                min: Duration::from_millis(min_ms),
                max: Duration::from_millis(min_ms + extra_ms),
            };
            let d = b.delay(failures);
            proptest::prop_assert!(d >= b.min && d <= b.max);
            proptest::prop_assert!(b.delay(failures + 1) >= d);
        }
    }
}
