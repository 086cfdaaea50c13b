//! The edge relay's policy, sans-IO: which origin a stream is pulled from, how origins fail
//! and come back, the life of a pull, and push targets. Nothing here opens a socket, reads
//! the clock or draws random numbers: every input takes `now`, and the worker (which owns
//! the sockets, in `shard/relay.rs`) applies the actions.
//!
//! # Pieces
//!
//! - [`OriginUrl`], [`PushUrl`], [`StreamUrl`]: parsed once from the configuration; an error
//!   ([`UrlError`]) names the rule broken.
//! - [`rendezvous_order`]: the origins of a stream in the order it tries them, by
//!   highest-random-weight hashing of its [`stream_key`] with a fixed hash, so every edge
//!   pulls a stream from the same origin.
//! - [`Origins`]: the origins with their health (up, or down until a backoff ends);
//!   [`Origins::next_origin`] picks the origin a stream tries next. One per worker.
//! - [`Pull`]: one stream's pull (`docs/LIFECYCLE-relay.md`): connect, fail over, linger
//!   when the last player leaves, give up on players that waited too long.
//! - [`PushTarget`]: one stream pushed to one target, reconnecting with backoff. (Its media
//!   queue is the connection's `fanout::OutputQueue`: the target is a player of the stream,
//!   so a slow one drops to the next keyframe like any slow player.)
//!
//! # Call order
//!
//! 1. From the configuration: [`RelaySettings`], then one [`Origins`] per worker.
//! 2. A player wants a stream nobody publishes: [`Pull::new`] with the worker's `Origins`.
//! 3. Feed the upstream connection's events and the stream's player count into the pull
//!    (`connected`, `playing`, `media`, `failed`, `redirect`, `players_changed`), and
//!    `handle_timeout` at its `poll_timeout`; after each input, apply every `poll_action`
//!    in order ([`PullAction::Connect`], [`PullAction::Disconnect`], [`PullAction::GiveUp`]).
//! 4. Drop the pull when `is_closed`.
//! 5. A stream is published on an app with push targets: a [`PushTarget`] per target,
//!    `start`, then the same feed/timeout/poll loop; once it publishes, its connection is
//!    attached to the stream as a player.

mod health;
mod pull;
#[cfg(test)]
mod pull_tests;
mod push;
mod rendezvous;
mod url;

use std::time::Duration;

pub use health::{Backoff, FailureKind, NextOrigin, OriginHealth, Origins, MAX_LEARNED_ORIGINS};
pub use pull::{Progress, Pull, PullAction, PullState, PullTimeouts};
pub use push::{PushAction, PushState, PushTarget, PUBLISH_STABLE};
pub use rendezvous::{rendezvous_order, stream_key, weight};

pub use url::{Endpoint, OriginUrl, PushUrl, Scheme, StreamUrl, UrlError};

/// A `[[relay.push]]` `url` meaning "one of the origins": the least-loaded live origin of
/// the cluster directory, else `relay.origins` in the stream's rendezvous order, moving to
/// the next when one fails.
pub const PUSH_TO_ORIGINS: &str = "origins";

/// The relay's settings (from `[relay]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Origins to pull from; empty: never pull.
    pub origins: Vec<OriginUrl>,
    /// Connect + play + first media, or a gap in a stream's media, longer than this fails
    /// the origin over (3 s).
    pub origin_timeout: Duration,
    /// A pulled stream with no players for this long is closed (10 s).
    pub pull_idle: Duration,
    /// Players of a pull that has had no media for this long (every origin failing) are
    /// answered StreamNotFound (10 s).
    pub player_wait: Duration,
    /// Backoff of a failed origin or push target (1 s doubling to 30 s).
    pub backoff: Backoff,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            origins: Vec::new(),
            origin_timeout: Duration::from_secs(3),
            pull_idle: Duration::from_secs(10),
            player_wait: Duration::from_secs(10),
            backoff: Backoff::default(),
        }
    }
}

impl RelaySettings {
    /// From the `[relay]` configuration (validated: every URL parses).
    pub fn from_config(config: &crate::config::RelayConfig) -> Self {
        Self {
            origins: config
                .origins
                .iter()
                .filter_map(|o| OriginUrl::parse(o).ok())
                .collect(),
            origin_timeout: Duration::from_millis(config.origin_timeout_ms),
            pull_idle: Duration::from_millis(config.pull_idle_ms),
            player_wait: Duration::from_millis(config.player_wait_ms),
            backoff: Backoff::default(),
        }
    }

    /// The timeouts each pull runs with.
    pub fn pull_timeouts(&self) -> PullTimeouts {
        PullTimeouts {
            origin_timeout: self.origin_timeout,
            pull_idle: self.pull_idle,
            player_wait: self.player_wait,
        }
    }

    /// A fresh [`Origins`] (all up) for one worker.
    pub fn origins(&self) -> Origins {
        Origins::new(self.origins.clone(), self.backoff)
    }
}
