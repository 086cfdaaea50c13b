//! The pull of one stream from the origins, as a sans-IO state machine.
//!
//! ```text
//! new ─► Connecting ─first media─► Playing ─0 players─► Lingering ─pull_idle─► Closed
//!         ▲  │  ▲                    │  ▲                  │
//!         │  │  └── failed / stall ──┘  └── player back ───┘
//!         │  ▼ failed, every origin down
//!         Wanted ── backoff ended
//! ```
//!
//! The full diagram (a failure moving to the next origin, redirects, `GiveUp`, players
//! leaving before the first frame) is in `docs/LIFECYCLE-relay.md`.
//!
//! # Call order
//!
//! 1. [`Pull::new`] when a player asks for a stream nobody publishes here and this worker
//!    is the one to pull it; then drain [`Pull::poll_action`] and apply each action in order.
//! 2. Report what the upstream connection does: [`connected`](Pull::connected),
//!    [`playing`](Pull::playing), [`media`](Pull::media) (every media message),
//!    [`failed`](Pull::failed), [`redirect`](Pull::redirect); report the stream's player
//!    count with [`players_changed`](Pull::players_changed). Drain `poll_action` after each.
//! 3. Arm a timer for [`poll_timeout`](Pull::poll_timeout) (ask again after every input) and
//!    call [`handle_timeout`](Pull::handle_timeout) when it fires; drain `poll_action`.
//! 4. Drop the pull once [`is_closed`](Pull::is_closed).
//!
//! After a [`PullAction::Disconnect`], report nothing more about the connection it closed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::health::{FailureKind, NextOrigin, Origins};
use super::rendezvous::stream_key;
use super::url::StreamUrl;

/// The durations that drive a pull (from [`super::RelaySettings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullTimeouts {
    /// Connect + play + first media, or a gap in the media, longer than this: fail over.
    pub origin_timeout: Duration,
    /// A pull with no players for this long is closed.
    pub pull_idle: Duration,
    /// Players without media for this long (every origin failing) are given up on.
    pub player_wait: Duration,
}

/// How far an attempt at an origin got (in order); decides the failure kind of a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Progress {
    /// Connecting, handshaking, or waiting for `connect`'s answer.
    Dialing,
    /// `connect` accepted; `play` sent.
    Connected,
    /// NetStream.Play.Start received; no media yet.
    PlayStarted,
}

/// Where a pull is. Each state holds only what is valid in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullState {
    /// Players wait; every origin is down. Try again at `retry_at`.
    Wanted { retry_at: Instant },
    /// An attempt at `origin` (index into [`Origins::urls`]) via `url`, started `since`.
    Connecting {
        origin: usize,
        url: StreamUrl,
        since: Instant,
        progress: Progress,
        /// A redirect was followed in this attempt (a second one fails it).
        redirected: bool,
    },
    /// Media flows from `origin`.
    Playing { origin: usize, last_media: Instant },
    /// No players since `since`; media still flows, so a returning player starts at once.
    Lingering {
        origin: usize,
        since: Instant,
        last_media: Instant,
    },
    /// Done: no connection; drop the pull.
    Closed,
}

/// What the worker must do for a pull, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullAction {
    /// Open an upstream connection to `url` and play its stream (origin `origin`).
    Connect { origin: usize, url: StreamUrl },
    /// Close the upstream connection, if one is open.
    Disconnect,
    /// The players waited past `player_wait` with no media: answer the waiting ones
    /// NetStream.Play.StreamNotFound and stop the others as on unpublish.
    GiveUp,
}

/// The pull of one stream; see the module doc for the call order.
#[derive(Debug)]
pub struct Pull {
    key: String,
    app: String,
    stream: String,
    timeouts: PullTimeouts,
    state: PullState,
    players: usize,
    /// Since when the players have had no media (start of the pull, or the last media
    /// before a failure); bounds the wait with `player_wait`.
    starved_since: Instant,
    /// The origin the cluster directory names for the stream: tried first while it is up.
    preferred: Option<usize>,
    actions: VecDeque<PullAction>,
}

impl Pull {
    /// Starts pulling `app/stream` (as the player gave them: their queries are passed to the
    /// origin) for `players` players: connects to the first origin up in the stream's
    /// rendezvous order, or waits for the earliest backoff. Call when the hub finds a player
    /// for a stream no one publishes and the directory makes this worker the puller. With no
    /// players left by then it is born closed: it dials nothing. `preferred`: the origin the
    /// cluster directory named (an index into `origins`), tried first while it is up.
    pub fn new(
        app: &str,
        stream: &str,
        players: usize,
        timeouts: PullTimeouts,
        origins: &Origins,
        preferred: Option<usize>,
        now: Instant,
    ) -> Self {
        let mut pull = Self {
            key: stream_key(app, stream),
            app: app.to_owned(),
            stream: stream.to_owned(),
            timeouts,
            state: PullState::Wanted { retry_at: now },
            players,
            starved_since: now,
            preferred,
            actions: VecDeque::new(),
        };
        if players == 0 {
            pull.state = PullState::Closed;
        } else {
            pull.attempt(origins, now);
        }
        pull
    }

    /// The stream's key (`app/stream` without queries), which orders its origins.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The current state.
    pub fn state(&self) -> &PullState {
        &self.state
    }

    /// Players last reported.
    pub fn players(&self) -> usize {
        self.players
    }

    /// The origin in use (connecting, playing or lingering), if any.
    pub fn origin(&self) -> Option<usize> {
        match self.state {
            PullState::Connecting { origin, .. }
            | PullState::Playing { origin, .. }
            | PullState::Lingering { origin, .. } => Some(origin),
            PullState::Wanted { .. } | PullState::Closed => None,
        }
    }

    /// Finished: drop it.
    pub fn is_closed(&self) -> bool {
        self.state == PullState::Closed
    }

    /// The next action to apply; call until `None` after every input.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<PullAction> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next (`None`: no timer).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = self.timeouts;
        let give_up = self.starved_since + t.player_wait;
        match self.state {
            PullState::Wanted { retry_at } => Some(retry_at.min(give_up)),
            PullState::Connecting { since, .. } => Some((since + t.origin_timeout).min(give_up)),
            PullState::Playing { last_media, .. } => Some(last_media + t.origin_timeout),
            PullState::Lingering {
                since, last_media, ..
            } => Some((since + t.pull_idle).min(last_media + t.origin_timeout)),
            PullState::Closed => None,
        }
    }

    /// The stream now has `count` players (all workers' players, as the hub counts them).
    /// At zero a playing pull lingers for `pull_idle`, and one not yet playing closes (it has
    /// nothing cached to keep warm); a player returning while it lingers cancels the close.
    pub fn players_changed(&mut self, count: usize, now: Instant) {
        self.players = count;
        self.state = match std::mem::replace(&mut self.state, PullState::Closed) {
            PullState::Playing { origin, last_media } if count == 0 => PullState::Lingering {
                origin,
                since: now,
                last_media,
            },
            PullState::Lingering {
                origin, last_media, ..
            } if count > 0 => PullState::Playing { origin, last_media },
            PullState::Wanted { .. } if count == 0 => PullState::Closed,
            PullState::Connecting { .. } if count == 0 => {
                self.actions.push_back(PullAction::Disconnect);
                PullState::Closed
            }
            state => state,
        };
    }

    /// The upstream connection's `connect` was accepted (`play` is sent next).
    pub fn connected(&mut self, now: Instant) {
        self.advance(Progress::Connected, now);
    }

    /// The origin answered NetStream.Play.Start.
    pub fn playing(&mut self, now: Instant) {
        self.advance(Progress::PlayStarted, now);
    }

    fn advance(&mut self, to: Progress, now: Instant) {
        if let PullState::Connecting {
            progress, since, ..
        } = &mut self.state
        {
            debug_assert!(now >= *since, "time went backwards");
            *progress = (*progress).max(to);
        }
    }

    /// A media message arrived from the origin. The first one marks the origin healthy and
    /// the pull playing; every one holds off stall detection.
    pub fn media(&mut self, origins: &mut Origins, now: Instant) {
        match &mut self.state {
            PullState::Connecting { origin, .. } => {
                let origin = *origin;
                origins.succeeded(origin);
                self.state = PullState::Playing {
                    origin,
                    last_media: now,
                };
            }
            PullState::Playing { last_media, .. } | PullState::Lingering { last_media, .. } => {
                *last_media = now;
            }
            PullState::Wanted { .. } | PullState::Closed => {}
        }
    }

    /// The upstream connection failed for `kind` (the worker saw it: connect error, refused
    /// play, the origin's unpublish, the connection lost (`Stall`)). The origin is marked
    /// down and the next one tried at once, or the pull waits for the earliest backoff; a
    /// lingering pull just closes.
    pub fn failed(&mut self, kind: FailureKind, origins: &mut Origins, now: Instant) {
        let (origin, starved) = match self.state {
            PullState::Connecting { origin, .. } => (origin, None),
            PullState::Playing { origin, last_media } => (origin, Some(last_media)),
            PullState::Lingering { origin, .. } => {
                origins.failed(origin, kind, now);
                self.actions.push_back(PullAction::Disconnect);
                self.state = PullState::Closed;
                return;
            }
            PullState::Wanted { .. } | PullState::Closed => return,
        };
        origins.failed(origin, kind, now);
        self.actions.push_back(PullAction::Disconnect);
        if let Some(last_media) = starved {
            self.starved_since = last_media;
        }
        self.attempt(origins, now);
    }

    /// The origin rejected `connect` with a redirect to `target` (`ex.redirect`). The first
    /// redirect of an attempt is followed (same app and stream, the target's host); a second
    /// one, or an unusable URL, fails the attempt with [`FailureKind::Redirect`].
    pub fn redirect(&mut self, target: &str, origins: &mut Origins, now: Instant) {
        let PullState::Connecting {
            origin,
            url,
            redirected,
            ..
        } = &self.state
        else {
            return;
        };
        match url.redirected(target) {
            Ok(url) if !*redirected => {
                let origin = *origin;
                self.actions.push_back(PullAction::Disconnect);
                self.connect(origin, url, true, now);
            }
            _ => self.failed(FailureKind::Redirect, origins, now),
        }
    }

    /// The origin asked this pull to reconnect (E-RTMP ReconnectRequest, as a draining
    /// server sends), to `tc_url` when it named one. While media flows the current
    /// connection stays: the answer is where to open a standby connection (make before
    /// break), whose first media is reported with [`handed_over`](Self::handed_over). With
    /// `tc_url` the same stream is asked of that host (charged to the same origin); without,
    /// the origin is marked down ([`FailureKind::Draining`]) and the next origin up is used;
    /// `None` when there is none (the current connection is kept until it ends). A pull not
    /// yet delivering just moves on, as on a refusal.
    pub fn reconnect(
        &mut self,
        tc_url: Option<&str>,
        origins: &mut Origins,
        now: Instant,
    ) -> Option<(usize, StreamUrl)> {
        let origin = match self.state {
            PullState::Playing { origin, .. } | PullState::Lingering { origin, .. } => origin,
            PullState::Connecting { .. } => {
                self.failed(FailureKind::Draining, origins, now);
                return None;
            }
            PullState::Wanted { .. } | PullState::Closed => return None,
        };
        let current = origins.urls()[origin].pull_url(&self.app, &self.stream);
        if let Some(target) = tc_url {
            if let Ok(url) = current.redirected(target) {
                return Some((origin, url));
            }
        }
        origins.failed(origin, FailureKind::Draining, now);
        match origins.next_origin(&self.key, now)? {
            NextOrigin::Now(next) if next != origin => {
                let url = origins.urls()[next].pull_url(&self.app, &self.stream);
                Some((next, url))
            }
            _ => None,
        }
    }

    /// The standby connection [`reconnect`](Self::reconnect) asked for, to `origin`,
    /// delivered its first media: it is the pull's connection from now on (the worker closes
    /// the old one).
    pub fn handed_over(&mut self, origin: usize, origins: &mut Origins, now: Instant) {
        origins.succeeded(origin);
        self.state = match self.state {
            PullState::Lingering { since, .. } => PullState::Lingering {
                origin,
                since,
                last_media: now,
            },
            _ => PullState::Playing {
                origin,
                last_media: now,
            },
        };
    }

    /// The origins were reconfigured ([`Origins::reconfigure`] returned `remap`). A pull on
    /// an origin still listed goes on with its new index; one whose origin was removed goes
    /// on while media flows, and the answer is where to open a standby connection (as for
    /// [`reconnect`](Self::reconnect)); one connecting to a removed origin, or with no other
    /// origin up, moves on at once.
    pub fn reconfigured(
        &mut self,
        remap: &[Option<usize>],
        origins: &mut Origins,
        now: Instant,
    ) -> Option<(usize, StreamUrl)> {
        let moved = |i: usize| remap.get(i).copied().flatten();
        self.preferred = self.preferred.and_then(moved);
        match &mut self.state {
            PullState::Connecting { origin, .. } => match moved(*origin) {
                Some(new) => *origin = new,
                None => {
                    self.actions.push_back(PullAction::Disconnect);
                    self.attempt(origins, now);
                }
            },
            PullState::Playing { origin, .. } | PullState::Lingering { origin, .. } => {
                match moved(*origin) {
                    Some(new) => *origin = new,
                    None => match origins.next_origin(&self.key, now) {
                        Some(NextOrigin::Now(next)) => {
                            // Failures from here on are the new origin's.
                            *origin = next;
                            let url = origins.urls()[next].pull_url(&self.app, &self.stream);
                            return Some((next, url));
                        }
                        _ => {
                            self.actions.push_back(PullAction::Disconnect);
                            self.attempt(origins, now);
                        }
                    },
                }
            }
            PullState::Wanted { .. } | PullState::Closed => {}
        }
        None
    }

    /// A timer armed from [`poll_timeout`](Self::poll_timeout) fired (early calls do
    /// nothing): fail over a silent origin, retry after a backoff, close an idle pull, or
    /// give up on players that waited too long.
    pub fn handle_timeout(&mut self, origins: &mut Origins, now: Instant) {
        let t = self.timeouts;
        match self.state {
            PullState::Wanted { retry_at } if now >= retry_at => self.attempt(origins, now),
            PullState::Connecting {
                since, progress, ..
            } if now >= since + t.origin_timeout => {
                let kind = match progress {
                    Progress::Dialing => FailureKind::ConnectFailed,
                    Progress::Connected | Progress::PlayStarted => FailureKind::NoMedia,
                };
                self.failed(kind, origins, now);
            }
            PullState::Playing { last_media, .. } if now >= last_media + t.origin_timeout => {
                self.failed(FailureKind::Stall, origins, now);
            }
            PullState::Lingering { since, .. } if now >= since + t.pull_idle => {
                self.actions.push_back(PullAction::Disconnect);
                self.state = PullState::Closed;
            }
            PullState::Lingering { last_media, .. } if now >= last_media + t.origin_timeout => {
                self.failed(FailureKind::Stall, origins, now);
            }
            _ => {}
        }
        let waiting = matches!(
            self.state,
            PullState::Wanted { .. } | PullState::Connecting { .. }
        );
        if waiting && now >= self.starved_since + t.player_wait {
            if matches!(self.state, PullState::Connecting { .. }) {
                self.actions.push_back(PullAction::Disconnect);
            }
            self.give_up();
        }
    }

    /// Connects to the next origin up, or waits for the first to come back.
    /// The cluster directory names `origin` for the stream (asked again after a failure, and
    /// while a connection delivers nothing): it is tried first from now on while it is up,
    /// at once if the pull is waiting for a backoff or connecting elsewhere without media
    /// yet. A pull playing carries on where it is.
    pub fn prefer(&mut self, origin: usize, origins: &Origins, now: Instant) {
        self.preferred = Some(origin);
        if !origins.health(origin).is_up(now) {
            return;
        }
        match self.state {
            PullState::Wanted { .. } => self.attempt(origins, now),
            // Not delivering yet, from another origin (one that may be holding the play
            // until a publisher comes): move to the origin that has the stream.
            PullState::Connecting {
                origin: current, ..
            } if current != origin => {
                self.actions.push_back(PullAction::Disconnect);
                self.attempt(origins, now);
            }
            _ => {}
        }
    }

    fn attempt(&mut self, origins: &Origins, now: Instant) {
        if let Some(origin) = self.preferred {
            if origin < origins.urls().len() && origins.health(origin).is_up(now) {
                let url = origins.urls()[origin].pull_url(&self.app, &self.stream);
                self.connect(origin, url, false, now);
                return;
            }
        }
        match origins.next_origin(&self.key, now) {
            None => self.give_up(),
            Some(NextOrigin::Now(origin)) => {
                let url = origins.urls()[origin].pull_url(&self.app, &self.stream);
                self.connect(origin, url, false, now);
            }
            Some(NextOrigin::At(_, retry_at)) => self.state = PullState::Wanted { retry_at },
        }
    }

    /// Dials `url` of `origin` (`redirected`: it came from a redirect, which is followed once).
    fn connect(&mut self, origin: usize, url: StreamUrl, redirected: bool, now: Instant) {
        self.actions.push_back(PullAction::Connect {
            origin,
            url: url.clone(),
        });
        self.state = PullState::Connecting {
            origin,
            url,
            since: now,
            progress: Progress::Dialing,
            redirected,
        };
    }

    fn give_up(&mut self) {
        self.actions.push_back(PullAction::GiveUp);
        self.state = PullState::Closed;
    }
}
