//! One push target of one published stream, as a sans-IO state machine:
//!
//! ```text
//!  Idle ──start──► Connecting ──publishing──► Publishing
//!   ▲                 │   ▲                       │
//!   │ stop (any       │   │ backoff ended         │ failed
//!   │ state)          ▼   │                       ▼
//!   └───────────── Backoff(until) ◄───────────────┘
//!                   (failed / no Publish.Start within the connect timeout)
//! ```
//!
//! # Call order
//!
//! [`PushTarget::new`] when a stream is published on an app the target matches, then
//! [`start`](PushTarget::start); report [`publishing`](PushTarget::publishing) (the target
//! answered NetStream.Publish.Start) and [`failed`](PushTarget::failed); call
//! [`stop`](PushTarget::stop) when the publisher leaves (and `start` again on republish).
//! Arm a timer for [`poll_timeout`](PushTarget::poll_timeout) and call
//! [`handle_timeout`](PushTarget::handle_timeout) when it fires. After every input drain
//! [`poll_action`](PushTarget::poll_action) and apply the actions in order. Media for the
//! target goes through its own bounded queue (its connection's, as a player of the stream,
//! with the slow-player drop policy), so a slow or dead target never slows the publisher.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::health::{Backoff, FailureKind};
use super::url::{PushUrl, StreamUrl};

/// A target that published this long before failing counts as having worked: its backoff
/// starts again from the minimum.
pub const PUBLISH_STABLE: Duration = Duration::from_secs(10);

/// Where a push target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushState {
    /// Not pushing (created, or the publisher left).
    Idle,
    /// Connecting and asking to publish since then.
    Connecting { since: Instant },
    /// The target accepted `publish`; media flows.
    Publishing { since: Instant },
    /// The last attempt failed; the next starts at `until`.
    Backoff { until: Instant },
}

/// What the worker must do for a push target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushAction {
    /// Open a connection to `url` and publish its stream; start the target's queue at the
    /// next keyframe, after the stream's sequence headers.
    Connect { url: StreamUrl },
    /// Close the target's connection, if one is open, and empty its queue.
    Disconnect,
}

/// One push target for one stream; see the module doc for the call order. A target may
/// have several candidate URLs (a push to the cluster's origins): a failure moves to the
/// next candidate at once, and only a whole round of failures backs off.
#[derive(Debug)]
pub struct PushTarget {
    /// The target as configured (its identity across reloads, and its metrics label).
    target: String,
    /// Where it may publish, best first; never empty.
    urls: Vec<StreamUrl>,
    /// The candidate in use.
    at: usize,
    backoff: Backoff,
    connect_timeout: Duration,
    state: PushState,
    consecutive_failures: u32,
    last_failure: Option<FailureKind>,
    actions: VecDeque<PushAction>,
}

impl PushTarget {
    /// An idle target that will publish `stream` (as published here, query kept) to
    /// `target`. `connect_timeout` bounds connect + `publish` (the origin timeout).
    pub fn new(
        target: &PushUrl,
        stream: &str,
        backoff: Backoff,
        connect_timeout: Duration,
    ) -> Self {
        Self::to_any(
            target.to_string(),
            vec![target.stream_url(stream)],
            backoff,
            connect_timeout,
        )
    }

    /// An idle target named `target` that publishes to one of `urls` (best first), moving to
    /// the next when one fails. Panics if `urls` is empty.
    pub fn to_any(
        target: String,
        urls: Vec<StreamUrl>,
        backoff: Backoff,
        connect_timeout: Duration,
    ) -> Self {
        assert!(!urls.is_empty(), "a push target needs a URL");
        Self {
            target,
            urls,
            at: 0,
            backoff,
            connect_timeout,
            state: PushState::Idle,
            consecutive_failures: 0,
            last_failure: None,
            actions: VecDeque::new(),
        }
    }

    /// The URL published to (or tried next).
    pub fn url(&self) -> &StreamUrl {
        &self.urls[self.at]
    }

    /// The target as configured: a push URL, or `origins`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The current state.
    pub fn state(&self) -> PushState {
        self.state
    }

    /// Failures since the last successful publish, and the last one's kind.
    pub fn failures(&self) -> (u32, Option<FailureKind>) {
        (self.consecutive_failures, self.last_failure)
    }

    /// The next action to apply; call until `None` after every input.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<PushAction> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next (`None`: no timer).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            PushState::Connecting { since } => Some(since + self.connect_timeout),
            PushState::Backoff { until } => Some(until),
            PushState::Idle | PushState::Publishing { .. } => None,
        }
    }

    /// The stream is published here: connect now. Does nothing unless idle (a target in
    /// backoff keeps its backoff).
    pub fn start(&mut self, now: Instant) {
        if self.state == PushState::Idle {
            self.connect(now);
        }
    }

    /// The target answered NetStream.Publish.Start. Its backoff starts again from the
    /// minimum once it has published for [`PUBLISH_STABLE`]: a target that accepts and then
    /// closes at once (an origin refusing the stream's lease) keeps backing off.
    pub fn publishing(&mut self, now: Instant) {
        if let PushState::Connecting { .. } = self.state {
            self.state = PushState::Publishing { since: now };
        }
    }

    /// The target's connection failed (connect error, refused `publish`, lost): disconnect,
    /// and connect to the next candidate at once, or, after a whole round of candidates
    /// failed, retry from the first after the backoff of the rounds failed in a row.
    pub fn failed(&mut self, kind: FailureKind, now: Instant) {
        if matches!(
            self.state,
            PushState::Connecting { .. } | PushState::Publishing { .. }
        ) {
            if let PushState::Publishing { since } = self.state {
                if now.saturating_duration_since(since) >= PUBLISH_STABLE {
                    self.consecutive_failures = 0;
                }
            }
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            self.last_failure = Some(kind);
            self.actions.push_back(PushAction::Disconnect);
            let n = u32::try_from(self.urls.len()).unwrap_or(u32::MAX);
            if self.consecutive_failures % n != 0 {
                self.at = (self.at + 1) % self.urls.len();
                self.connect(now);
                return;
            }
            self.at = 0;
            let rounds = self.consecutive_failures / n;
            let until = now + self.backoff.delay(rounds);
            self.state = PushState::Backoff { until };
        }
    }

    /// The publisher left: close the target's connection and go idle.
    pub fn stop(&mut self) {
        if matches!(
            self.state,
            PushState::Connecting { .. } | PushState::Publishing { .. }
        ) {
            self.actions.push_back(PushAction::Disconnect);
        }
        self.state = PushState::Idle;
    }

    /// A timer armed from [`poll_timeout`](Self::poll_timeout) fired (early calls do
    /// nothing): retry after a backoff, or fail an attempt that took too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            PushState::Backoff { until } if now >= until => self.connect(now),
            PushState::Connecting { since } if now >= since + self.connect_timeout => {
                self.failed(FailureKind::ConnectFailed, now);
            }
            _ => {}
        }
    }

    fn connect(&mut self, now: Instant) {
        self.actions.push_back(PushAction::Connect {
            url: self.urls[self.at].clone(),
        });
        self.state = PushState::Connecting { since: now };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn target() -> PushTarget {
        let url = PushUrl::parse("rtmp://origin-a:1935/live").unwrap();
        PushTarget::new(&url, "demo?k=1", Backoff::default(), 3 * S)
    }

    fn actions(t: &mut PushTarget) -> Vec<PushAction> {
        std::iter::from_fn(|| t.poll_action()).collect()
    }

    #[test]
    fn start_connects_to_the_target_with_the_stream_appended() {
        let t0 = Instant::now();
        let mut t = target();
        assert_eq!(t.state(), PushState::Idle);
        assert_eq!(t.poll_timeout(), None);
        t.start(t0);
        let url = t.url().clone();
        assert_eq!(url.to_string(), "rtmp://origin-a:1935/live/demo?k=1");
        assert_eq!(actions(&mut t), [PushAction::Connect { url }]);
        t.publishing(t0 + S);
        assert_eq!(t.state(), PushState::Publishing { since: t0 + S });
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn failures_back_off_doubling_to_thirty_seconds_and_publishing_resets() {
        let t0 = Instant::now();
        let mut t = target();
        t.start(t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..7 {
            t.failed(FailureKind::ConnectFailed, now);
            let PushState::Backoff { until } = t.state() else {
                panic!("not backing off: {:?}", t.state());
            };
            waits.push((until - now).as_secs());
            now = until;
            t.handle_timeout(now);
            assert_eq!(t.state(), PushState::Connecting { since: now });
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        // Accepted, then closed at once: still backing off the most.
        t.publishing(now);
        t.failed(FailureKind::Stall, now + S);
        assert_eq!(
            t.state(),
            PushState::Backoff {
                until: now + 31 * S
            }
        );
        now += 31 * S;
        t.handle_timeout(now);
        // Published long enough: the backoff starts again from the minimum.
        t.publishing(now);
        let later = now + PUBLISH_STABLE;
        t.failed(FailureKind::Stall, later);
        assert_eq!(t.failures(), (1, Some(FailureKind::Stall)));
        assert_eq!(t.state(), PushState::Backoff { until: later + S });
    }

    #[test]
    fn a_target_silent_past_the_connect_timeout_fails_and_backs_off() {
        let t0 = Instant::now();
        let mut t = target();
        t.start(t0);
        let _ = actions(&mut t);
        t.handle_timeout(t0 + 2 * S);
        assert!(actions(&mut t).is_empty(), "early timer does nothing");
        assert_eq!(t.poll_timeout(), Some(t0 + 3 * S));
        t.handle_timeout(t0 + 3 * S);
        assert_eq!(actions(&mut t), [PushAction::Disconnect]);
        assert_eq!(t.state(), PushState::Backoff { until: t0 + 4 * S });
        assert_eq!(t.failures(), (1, Some(FailureKind::ConnectFailed)));
    }

    #[test]
    fn stop_disconnects_and_a_republish_starts_again() {
        let t0 = Instant::now();
        let mut t = target();
        t.start(t0);
        t.publishing(t0);
        let _ = actions(&mut t);
        t.stop();
        assert_eq!(actions(&mut t), [PushAction::Disconnect]);
        assert_eq!(t.state(), PushState::Idle);
        t.start(t0 + S);
        assert!(matches!(actions(&mut t)[..], [PushAction::Connect { .. }]));
    }

    #[test]
    fn a_push_to_several_candidates_moves_on_at_once_and_backs_off_per_round() {
        let t0 = Instant::now();
        let urls: Vec<StreamUrl> = ["rtmp://a/live", "rtmp://b/live"]
            .iter()
            .map(|u| PushUrl::parse(u).unwrap().stream_url("s"))
            .collect();
        let mut t = PushTarget::to_any("origins".into(), urls.clone(), Backoff::default(), 3 * S);
        t.start(t0);
        t.publishing(t0);
        assert_eq!(
            actions(&mut t),
            [PushAction::Connect {
                url: urls[0].clone()
            }]
        );
        // A dies while publishing: B at once.
        t.failed(FailureKind::Stall, t0 + S);
        assert_eq!(
            actions(&mut t),
            [
                PushAction::Disconnect,
                PushAction::Connect {
                    url: urls[1].clone()
                }
            ]
        );
        // B refuses too: a whole round failed, back off 1 s, then A first again.
        t.failed(FailureKind::Refused, t0 + S);
        assert_eq!(actions(&mut t), [PushAction::Disconnect]);
        assert_eq!(t.state(), PushState::Backoff { until: t0 + 2 * S });
        t.handle_timeout(t0 + 2 * S);
        assert_eq!(
            actions(&mut t),
            [PushAction::Connect {
                url: urls[0].clone()
            }]
        );
        assert_eq!(t.target(), "origins");
    }

    #[test]
    fn stop_during_backoff_cancels_the_retry() {
        let t0 = Instant::now();
        let mut t = target();
        t.start(t0);
        t.failed(FailureKind::Refused, t0);
        let _ = actions(&mut t);
        t.stop();
        assert!(actions(&mut t).is_empty(), "nothing open to close");
        t.handle_timeout(t0 + 60 * S);
        assert!(actions(&mut t).is_empty());
        assert_eq!(t.poll_timeout(), None);
    }
}
