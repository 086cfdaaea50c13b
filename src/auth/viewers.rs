//! [`Viewers`]: HLS/DASH viewers allowed once, by stream and client address, so their
//! segment and playlist requests are not checked (nor hooked) one by one. Shared by all
//! workers: a viewer's requests may land on any of them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many entries, expired ones are swept at the next allowance.
const SWEEP_AT: usize = 4096;

/// Allowances of HLS/DASH viewers: (app, stream, address) → allowed until.
#[derive(Debug, Default)]
pub struct Viewers {
    until: Mutex<HashMap<(String, String, IpAddr), Instant>>,
}

impl Viewers {
    /// True when `ip` was allowed `app/stream` and has asked within `ttl`; the allowance is
    /// then extended to `now + ttl`.
    pub fn allowed(
        &self,
        app: &str,
        stream: &str,
        ip: IpAddr,
        now: Instant,
        ttl: Duration,
    ) -> bool {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        match until.get_mut(&(app.to_owned(), stream.to_owned(), ip)) {
            Some(at) if *at > now => {
                *at = now + ttl;
                true
            }
            _ => false,
        }
    }

    /// Remembers that `ip` may fetch `app/stream` until `now + ttl`.
    pub fn allow(&self, app: &str, stream: &str, ip: IpAddr, now: Instant, ttl: Duration) {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        if until.len() >= SWEEP_AT {
            until.retain(|_, at| *at > now);
        }
        until.insert((app.to_owned(), stream.to_owned(), ip), now + ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowance_is_per_stream_and_address_and_lapses_without_requests() {
        let viewers = Viewers::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let me: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(!viewers.allowed("live", "a", me, t0, ttl));
        viewers.allow("live", "a", me, t0, ttl);
        assert!(viewers.allowed("live", "a", me, t0 + Duration::from_secs(59), ttl));
        // Extended by that request.
        assert!(viewers.allowed("live", "a", me, t0 + Duration::from_secs(110), ttl));
        assert!(!viewers.allowed("live", "b", me, t0, ttl));
        assert!(!viewers.allowed("live", "a", other, t0, ttl));
        assert!(!viewers.allowed("live", "a", me, t0 + Duration::from_secs(300), ttl));
    }
}
