//! Latency-aware batching of player media (`workers.max_write_delay_ms`).
//!
//! Every write costs a syscall and a trip through the TCP stack whatever its size, so a busy
//! worker saves CPU by sending each player fewer, larger writes. Holding media costs latency,
//! so it is held only where that buys something:
//!
//! * a loop that was busy less than [`LIGHT_LOAD`] of the last tick writes at once (there is
//!   little CPU to save, and the players should not wait for it);
//! * a player not written to for the whole budget is written at once (its first message after
//!   a pause leaves without delay);
//! * otherwise its media waits until the budget has passed since its last write, or until
//!   [`FULL_BATCH`] bytes are queued (a keyframe, or a long budget filling up), whichever
//!   comes first.
//!
//! So a player's media is never held longer than the budget, and the delay only appears where
//! messages arrive faster than the budget on a busy worker: that is where batching pays.
//!
//! A budget shorter than the spacing of a stream's messages (10–20 ms for 25–30 fps video with
//! AAC) merges nothing, so the default few ms only merge bursts. A heavily loaded worker (busy
//! [`HEAVY_LOAD`] of a tick, until it falls under [`HEAVY_EXIT`]) uses the longer
//! `workers.max_write_delay_busy_ms` instead: there each message already waits for write
//! passes of several ms, a player's media leaves at most every that many ms, and each write
//! carries two or three messages (measured in BENCHMARKS.md, issue 13, fourth session).

use std::time::{Duration, Instant};

/// Below this share of the last tick spent working, the loop counts as lightly loaded.
pub const LIGHT_LOAD: f64 = 0.10;

/// At or above this share of a tick spent working, the loop counts as heavily loaded...
pub const HEAVY_LOAD: f64 = 0.50;
/// ...until a tick's share falls below this one (so the longer budget, which lowers the load,
/// does not switch itself off).
pub const HEAVY_EXIT: f64 = 0.25;

/// Queued bytes that make a batch worth sending at once: one large writev, whatever the
/// budget left.
pub const FULL_BATCH: usize = 64 * 1024;

/// When a player's queued media must leave: `None` now, `Some(t)` at `t`.
///
/// `last_write` is when its socket last took bytes, `queued` what waits in its queue,
/// `budget` the configured most delay, `light` whether the loop is lightly loaded.
pub fn release_at(
    last_write: Instant,
    queued: usize,
    budget: Duration,
    light: bool,
    now: Instant,
) -> Option<Instant> {
    if budget.is_zero() || light || queued >= FULL_BATCH {
        return None;
    }
    let due = last_write + budget;
    (due > now).then_some(due)
}

/// The worker loop's busy share, measured over each tick.
#[derive(Debug)]
pub struct LoopLoad {
    since: Instant,
    busy_then: u64,
    share: f64,
    heavy: bool,
}

impl LoopLoad {
    pub fn new(now: Instant) -> Self {
        Self {
            since: now,
            busy_then: 0,
            share: 0.0,
            heavy: false,
        }
    }

    /// Takes the loop's cumulative busy nanoseconds at a tick.
    pub fn tick(&mut self, now: Instant, busy_ns: u64) {
        let wall = now.duration_since(self.since).as_nanos() as f64;
        if wall > 0.0 {
            self.share = busy_ns.saturating_sub(self.busy_then) as f64 / wall;
        }
        self.since = now;
        self.busy_then = busy_ns;
        if self.share >= HEAVY_LOAD {
            self.heavy = true;
        } else if self.share < HEAVY_EXIT {
            self.heavy = false;
        }
    }

    /// The share of the last tick the loop spent working (0 to about 1).
    #[cfg(test)]
    pub fn share(&self) -> f64 {
        self.share
    }

    pub fn is_light(&self) -> bool {
        self.share < LIGHT_LOAD
    }

    /// Heavily loaded: busy [`HEAVY_LOAD`] of a tick, and not under [`HEAVY_EXIT`] since.
    pub fn is_heavy(&self) -> bool {
        self.heavy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_zero_budget_or_a_light_loop_writes_at_once() {
        let now = Instant::now();
        assert_eq!(release_at(now, 100, Duration::ZERO, false, now), None);
        assert_eq!(release_at(now, 100, 20 * MS, true, now), None);
    }

    #[test]
    fn media_waits_for_the_budget_since_the_last_write() {
        let last = Instant::now();
        let now = last + 5 * MS;
        assert_eq!(
            release_at(last, 1_000, 20 * MS, false, now),
            Some(last + 20 * MS)
        );
    }

    #[test]
    fn a_player_idle_for_the_whole_budget_is_written_at_once() {
        let last = Instant::now();
        assert_eq!(
            release_at(last, 1_000, 20 * MS, false, last + 20 * MS),
            None
        );
        assert_eq!(
            release_at(last, 1_000, 20 * MS, false, last + 300 * MS),
            None
        );
    }

    #[test]
    fn a_full_batch_leaves_before_the_budget() {
        let last = Instant::now();
        let now = last + MS;
        assert_eq!(
            release_at(last, FULL_BATCH - 1, 350 * MS, false, now),
            Some(last + 350 * MS)
        );
        assert_eq!(release_at(last, FULL_BATCH, 350 * MS, false, now), None);
    }

    #[test]
    fn the_load_is_the_busy_share_of_the_last_tick() {
        let start = Instant::now();
        let mut load = LoopLoad::new(start);
        assert!(load.is_light());
        load.tick(start + 100 * MS, 50_000_000);
        assert!((load.share() - 0.5).abs() < 1e-9);
        assert!(!load.is_light());
        load.tick(start + 200 * MS, 55_000_000);
        assert!((load.share() - 0.05).abs() < 1e-9);
        assert!(load.is_light());
    }

    #[test]
    fn a_loop_is_heavy_from_half_busy_until_under_a_quarter() {
        let start = Instant::now();
        let mut load = LoopLoad::new(start);
        let mut busy = 0;
        let mut tick = |n: u64, share_pct: u64, load: &mut LoopLoad| {
            busy += share_pct * 1_000_000;
            load.tick(start + (n as u32) * 100 * MS, busy);
            load.is_heavy()
        };
        assert!(!tick(1, 49, &mut load), "under half: not heavy");
        assert!(tick(2, 50, &mut load), "half: heavy");
        assert!(tick(3, 30, &mut load), "stays heavy while above a quarter");
        assert!(tick(4, 25, &mut load));
        assert!(!tick(5, 24, &mut load), "under a quarter: not heavy");
        assert!(!tick(6, 40, &mut load), "and not again until half");
    }
}
