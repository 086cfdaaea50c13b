//! Admission by rate: new connections per client IP per second (`workers.
//! max_new_connections_per_ip_per_s`), one limiter per worker, fed the worker's `now`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The window each IP's count covers.
const WINDOW: Duration = Duration::from_secs(1);

/// Counts the connections admitted from each IP in fixed one-second windows.
///
/// Call [`admit`](Self::admit) for each accepted connection before keeping it, and
/// [`prune`](Self::prune) from the worker's tick so IPs that stopped connecting are forgotten
/// (the map holds at most the IPs seen in the last second).
#[derive(Debug, Default)]
pub struct RateLimit {
    /// Per IP: when its window started, and how many it admitted in it.
    windows: HashMap<IpAddr, (Instant, u32)>,
    /// Refusals since the last warning, and when that warning was logged.
    refused: u64,
    warned: Option<Instant>,
}

/// What [`RateLimit::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// Refused; `warn` carries how many were refused (this one included) since the last
    /// warning when one is due (at most one a second), else `None`.
    Refuse {
        warn: Option<u64>,
    },
}

impl RateLimit {
    /// Admits a connection from `ip` at `now` unless `limit` (> 0) were already admitted from
    /// it in its current window; `limit` 0 admits everything.
    pub fn admit(&mut self, ip: IpAddr, limit: u32, now: Instant) -> Admission {
        if limit == 0 {
            return Admission::Admit;
        }
        let (start, count) = self.windows.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        if *count < limit {
            *count += 1;
            return Admission::Admit;
        }
        self.refused += 1;
        let due = self
            .warned
            .map_or(true, |at| now.saturating_duration_since(at) >= WINDOW);
        if !due {
            return Admission::Refuse { warn: None };
        }
        self.warned = Some(now);
        let refused = std::mem::take(&mut self.refused);
        Admission::Refuse {
            warn: Some(refused),
        }
    }

    /// Forgets IPs whose window ended.
    pub fn prune(&mut self, now: Instant) {
        self.windows
            .retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
    }

    /// IPs remembered (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.windows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);

    #[test]
    fn admits_up_to_the_limit_per_ip_per_second_then_again_in_the_next_second() {
        let mut r = RateLimit::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.admit(A, 3, t0), Admission::Admit);
        }
        assert!(matches!(r.admit(A, 3, t0), Admission::Refuse { .. }));
        // Another IP has its own count.
        assert_eq!(r.admit(B, 3, t0), Admission::Admit);
        let t1 = t0 + Duration::from_millis(999);
        assert!(matches!(r.admit(A, 3, t1), Admission::Refuse { .. }));
        let t2 = t0 + Duration::from_secs(1);
        assert_eq!(r.admit(A, 3, t2), Admission::Admit);
    }

    #[test]
    fn a_limit_of_zero_admits_everything_and_remembers_nothing() {
        let mut r = RateLimit::default();
        let now = Instant::now();
        for _ in 0..1000 {
            assert_eq!(r.admit(A, 0, now), Admission::Admit);
        }
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn warns_at_most_once_a_second_with_the_count_refused_since_the_last_warning() {
        let mut r = RateLimit::default();
        let t0 = Instant::now();
        assert_eq!(r.admit(A, 1, t0), Admission::Admit);
        assert_eq!(r.admit(A, 1, t0), Admission::Refuse { warn: Some(1) });
        for _ in 0..9 {
            assert_eq!(r.admit(A, 1, t0), Admission::Refuse { warn: None });
        }
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(r.admit(A, 1, t1), Admission::Admit);
        assert_eq!(r.admit(A, 1, t1), Admission::Refuse { warn: Some(10) });
    }

    #[test]
    fn prune_forgets_ips_whose_window_ended() {
        let mut r = RateLimit::default();
        let t0 = Instant::now();
        r.admit(A, 5, t0);
        r.admit(B, 5, t0 + Duration::from_millis(500));
        r.prune(t0 + Duration::from_millis(1200));
        assert_eq!(r.len(), 1);
        r.prune(t0 + Duration::from_millis(1600));
        assert_eq!(r.len(), 0);
    }
}
