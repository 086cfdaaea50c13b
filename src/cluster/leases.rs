//! The directory's bookkeeping, over any [`Store`]: the leases this server holds, when each
//! is renewed, what a lost or refused lease means, and lookups. No thread and no clock of
//! its own: every call takes `now`, so the tests drive it with an in-memory store.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::fanout::{ConnKey, StreamKey};

/// After the store fails, a lease is retried this much later.
pub const RETRY: Duration = Duration::from_secs(1);

/// The store failed (unreachable, timed out, an error reply); the text is for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key-value store with expiring keys (Redis); every operation is atomic in the store.
pub trait Store {
    /// Sets `key` to `value` for `ttl` if it is absent or already `value` (a claim or a
    /// renewal); returns the value it holds afterwards: `value`, or another server's.
    fn hold(&mut self, key: &str, value: &str, ttl: Duration) -> Result<String, StoreError>;
    /// Sets `key` to `value` for `ttl` whoever held it.
    fn take(&mut self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Deletes `key` if it holds `value`.
    fn release(&mut self, key: &str, value: &str) -> Result<(), StoreError>;
    /// The value of `key`, if any.
    fn get(&mut self, key: &str) -> Result<Option<String>, StoreError>;
}

/// What the worker owning a stream must be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    /// The stream is published on another origin (`holder`) and takeover is off: this
    /// publisher must go.
    Refused {
        worker: usize,
        /// The publisher the lease was for (a newer one of the same stream is left alone).
        publisher: ConnKey,
        key: StreamKey,
        holder: String,
    },
    /// Another origin (`holder`) took the stream over: this publisher must go.
    Lost {
        worker: usize,
        publisher: ConnKey,
        key: StreamKey,
        holder: String,
    },
}

#[derive(Debug)]
struct Held {
    worker: usize,
    publisher: ConnKey,
    key: StreamKey,
    renew_at: Instant,
    /// The lease was held at least once: a holder elsewhere now took it over. Until then a
    /// holder elsewhere is a duplicate publish (refused, or taken over with takeover on),
    /// even when the first try had to wait for the store.
    claimed: bool,
}

/// The leases of the streams published on this server.
#[derive(Debug)]
pub struct Leases {
    prefix: String,
    me: String,
    lease: Duration,
    renew: Duration,
    takeover: bool,
    held: HashMap<String, Held>,
}

impl Leases {
    /// Leases under `prefix` (`rtmp-edge:stream:`) holding `me` (the advertised URL), for
    /// `lease`, renewed every `renew`; a stream held elsewhere is taken over (`takeover`)
    /// or refused.
    pub fn new(prefix: &str, me: &str, lease: Duration, renew: Duration, takeover: bool) -> Self {
        Self {
            prefix: prefix.to_owned(),
            me: me.to_owned(),
            lease,
            renew,
            takeover,
            held: HashMap::new(),
        }
    }

    /// The store key of `key`.
    pub fn store_key(&self, key: &StreamKey) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Streams held (or waiting for the store to come back to be held).
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Holds no lease.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// `key` was published here by `publisher` on `worker`: claim it. An error leaves it to
    /// be claimed at the next [`tick`](Self::tick) after [`RETRY`] (the stream plays
    /// meanwhile).
    pub fn publish(
        &mut self,
        store: &mut dyn Store,
        worker: usize,
        publisher: ConnKey,
        key: StreamKey,
        now: Instant,
    ) -> Result<Option<LeaseEvent>, StoreError> {
        let skey = self.store_key(&key);
        self.held.insert(
            skey.clone(),
            Held {
                worker,
                publisher,
                key,
                renew_at: now + RETRY,
                claimed: false,
            },
        );
        self.claim(store, &skey, now)
    }

    /// `key`'s publisher on `worker` left: let its lease go, unless a publisher on another
    /// worker has taken the stream over since (its Publish can arrive first).
    pub fn unpublish(
        &mut self,
        store: &mut dyn Store,
        worker: usize,
        key: &StreamKey,
    ) -> Result<(), StoreError> {
        let skey = self.store_key(key);
        if self.held.get(&skey).is_some_and(|h| h.worker == worker) {
            self.held.remove(&skey);
            store.release(&skey, &self.me)?;
        }
        Ok(())
    }

    /// When [`tick`](Self::tick) is due next.
    pub fn next_tick(&self) -> Option<Instant> {
        self.held.values().map(|h| h.renew_at).min()
    }

    /// Renews every lease due at `now`. Events for leases lost to another origin; the first
    /// store error stops the round (the rest are retried after [`RETRY`]).
    pub fn tick(
        &mut self,
        store: &mut dyn Store,
        now: Instant,
    ) -> (Vec<LeaseEvent>, Option<StoreError>) {
        let due: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.renew_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut events = Vec::new();
        for skey in due {
            match self.claim(store, &skey, now) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => {}
                Err(error) => {
                    for h in self.held.values_mut().filter(|h| h.renew_at <= now) {
                        h.renew_at = now + RETRY;
                    }
                    return (events, Some(error));
                }
            }
        }
        (events, None)
    }

    /// Lets every lease go (shutdown), best effort.
    pub fn release_all(&mut self, store: &mut dyn Store) {
        for (skey, _) in self.held.drain() {
            if store.release(&skey, &self.me).is_err() {
                return;
            }
        }
    }

    /// Claims or renews `skey`. Not yet claimed: a holder elsewhere is a duplicate publish;
    /// claimed before: a holder elsewhere took it over (or claimed it while the store was
    /// away).
    fn claim(
        &mut self,
        store: &mut dyn Store,
        skey: &str,
        now: Instant,
    ) -> Result<Option<LeaseEvent>, StoreError> {
        let first = self.held.get(skey).is_some_and(|h| !h.claimed);
        let holder = match store.hold(skey, &self.me, self.lease) {
            Ok(holder) => holder,
            Err(error) => {
                if let Some(h) = self.held.get_mut(skey) {
                    h.renew_at = now + RETRY;
                }
                return Err(error);
            }
        };
        if holder == self.me {
            if let Some(h) = self.held.get_mut(skey) {
                h.renew_at = now + self.renew;
                h.claimed = true;
            }
            return Ok(None);
        }
        if first && self.takeover {
            if let Err(error) = store.take(skey, &self.me, self.lease) {
                if let Some(h) = self.held.get_mut(skey) {
                    h.renew_at = now + RETRY;
                }
                return Err(error);
            }
            tracing::info!(key = skey, from = %holder, "directory: stream taken over from another origin");
            if let Some(h) = self.held.get_mut(skey) {
                h.renew_at = now + self.renew;
                h.claimed = true;
            }
            return Ok(None);
        }
        let Some(Held {
            worker,
            publisher,
            key,
            ..
        }) = self.held.remove(skey)
        else {
            return Ok(None);
        };
        Ok(Some(if first {
            LeaseEvent::Refused {
                worker,
                publisher,
                key,
                holder,
            }
        } else {
            LeaseEvent::Lost {
                worker,
                publisher,
                key,
                holder,
            }
        }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An in-memory store with expiry and a switch to make it unreachable.
    #[derive(Default)]
    pub(crate) struct MemStore {
        pub now: Option<Instant>,
        pub down: bool,
        pub keys: HashMap<String, (String, Instant)>,
    }

    impl MemStore {
        pub(crate) fn at(now: Instant) -> Self {
            Self {
                now: Some(now),
                ..Self::default()
            }
        }

        fn live(&mut self, key: &str) -> Option<String> {
            let now = self.now.expect("set the store's clock");
            match self.keys.get(key) {
                Some((v, until)) if *until > now => Some(v.clone()),
                _ => None,
            }
        }

        fn check(&self) -> Result<(), StoreError> {
            if self.down {
                Err(StoreError("connection refused".into()))
            } else {
                Ok(())
            }
        }
    }

    impl Store for MemStore {
        fn hold(&mut self, key: &str, value: &str, ttl: Duration) -> Result<String, StoreError> {
            self.check()?;
            match self.live(key) {
                Some(v) if v != value => Ok(v),
                _ => {
                    let until = self.now.unwrap() + ttl;
                    self.keys.insert(key.into(), (value.into(), until));
                    Ok(value.into())
                }
            }
        }
        fn take(&mut self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
            self.check()?;
            let until = self.now.unwrap() + ttl;
            self.keys.insert(key.into(), (value.into(), until));
            Ok(())
        }
        fn release(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
            self.check()?;
            if self.live(key).as_deref() == Some(value) {
                self.keys.remove(key);
            }
            Ok(())
        }
        fn get(&mut self, key: &str) -> Result<Option<String>, StoreError> {
            self.check()?;
            Ok(self.live(key))
        }
    }

    const S: Duration = Duration::from_secs(1);

    fn origin(me: &str, takeover: bool) -> Leases {
        Leases::new("t:", me, 10 * S, 3 * S, takeover)
    }

    fn key() -> StreamKey {
        StreamKey::new("live", "a")
    }

    fn pubr() -> ConnKey {
        ConnKey {
            index: 1,
            generation: 1,
        }
    }

    /// A takeover on this origin's other worker: its Publish reaches the directory before
    /// the first publisher's Unpublish, which must not drop the new publisher's lease; and
    /// a first claim deferred by a store outage is still a first claim (takeover applies).
    #[test]
    fn an_unpublish_from_another_worker_and_a_deferred_first_claim_keep_the_rules() {
        let t0 = Instant::now();
        let mut store = MemStore::at(t0);
        let mut a = origin("rtmp://a", true);
        a.publish(&mut store, 0, pubr(), key(), t0).unwrap();
        a.publish(&mut store, 1, pubr(), key(), t0).unwrap();
        a.unpublish(&mut store, 0, &key()).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(store.get("t:live/a"), Ok(Some("rtmp://a".into())));

        // B, takeover on, publishes while the store is away; A still holds the stream.
        let mut b = origin("rtmp://b", true);
        store.down = true;
        assert!(b.publish(&mut store, 0, pubr(), key(), t0).is_err());
        store.down = false;
        assert_eq!(b.tick(&mut store, t0 + RETRY), (vec![], None));
        assert_eq!(
            store.get("t:live/a"),
            Ok(Some("rtmp://b".into())),
            "taken over"
        );
    }

    #[test]
    fn a_lease_is_claimed_renewed_before_it_expires_and_released() {
        let t0 = Instant::now();
        let mut store = MemStore::at(t0);
        let mut a = origin("rtmp://a", false);
        assert_eq!(a.publish(&mut store, 1, pubr(), key(), t0), Ok(None));
        assert_eq!(store.get("t:live/a"), Ok(Some("rtmp://a".into())));
        assert_eq!(a.next_tick(), Some(t0 + 3 * S));
        // Renewed every 3 s, it outlives its 10 s lease.
        for i in 1..=6 {
            let now = t0 + 3 * i * S;
            store.now = Some(now);
            assert_eq!(a.tick(&mut store, now), (vec![], None));
        }
        store.now = Some(t0 + 25 * S);
        assert_eq!(store.get("t:live/a"), Ok(Some("rtmp://a".into())));
        a.unpublish(&mut store, 1, &key()).unwrap();
        assert_eq!(store.get("t:live/a"), Ok(None));
        assert!(a.is_empty());
    }

    #[test]
    fn a_duplicate_publish_is_refused_or_takes_over_and_the_loser_is_told_at_its_renewal() {
        let t0 = Instant::now();
        let mut store = MemStore::at(t0);
        let mut a = origin("rtmp://a", false);
        a.publish(&mut store, 0, pubr(), key(), t0).unwrap();
        let mut b = origin("rtmp://b", false);
        assert_eq!(
            b.publish(&mut store, 1, pubr(), key(), t0),
            Ok(Some(LeaseEvent::Refused {
                worker: 1,
                publisher: pubr(),
                key: key(),
                holder: "rtmp://a".into()
            }))
        );
        assert!(b.is_empty());
        // With takeover, B takes it; A learns at its next renewal.
        let mut b = origin("rtmp://b", true);
        assert_eq!(b.publish(&mut store, 1, pubr(), key(), t0), Ok(None));
        assert_eq!(store.get("t:live/a"), Ok(Some("rtmp://b".into())));
        store.now = Some(t0 + 3 * S);
        let (events, error) = a.tick(&mut store, t0 + 3 * S);
        assert_eq!(error, None);
        assert_eq!(
            events,
            [LeaseEvent::Lost {
                worker: 0,
                publisher: pubr(),
                key: key(),
                holder: "rtmp://b".into()
            }]
        );
        // A's release does not delete B's lease.
        a.unpublish(&mut store, 0, &key()).unwrap();
        assert_eq!(store.get("t:live/a"), Ok(Some("rtmp://b".into())));
    }

    #[test]
    fn a_store_outage_keeps_the_lease_wanted_and_it_is_claimed_again_when_the_store_returns() {
        let t0 = Instant::now();
        let mut store = MemStore::at(t0);
        store.down = true;
        let mut a = origin("rtmp://a", false);
        assert!(a.publish(&mut store, 0, pubr(), key(), t0).is_err());
        assert_eq!(a.len(), 1, "still wanted");
        assert_eq!(a.next_tick(), Some(t0 + RETRY));
        let (_, error) = a.tick(&mut store, t0 + RETRY);
        assert!(error.is_some());
        assert_eq!(a.next_tick(), Some(t0 + 2 * RETRY));
        // The store is back (emptied, as after a restart): the lease is claimed again.
        store.down = false;
        store.now = Some(t0 + 2 * RETRY);
        assert_eq!(a.tick(&mut store, t0 + 2 * RETRY), (vec![], None));
        assert_eq!(store.get("t:live/a"), Ok(Some("rtmp://a".into())));
        assert_eq!(a.next_tick(), Some(t0 + 2 * RETRY + 3 * S));
    }

    #[test]
    fn a_dead_origins_lease_expires_and_another_claims_the_stream() {
        let t0 = Instant::now();
        let mut store = MemStore::at(t0);
        let mut a = origin("rtmp://a", false);
        a.publish(&mut store, 0, pubr(), key(), t0).unwrap();
        // A dies (never renews); B is refused until A's lease runs out.
        let mut b = origin("rtmp://b", false);
        store.now = Some(t0 + 9 * S);
        assert!(matches!(
            b.publish(&mut store, 0, pubr(), key(), t0 + 9 * S),
            Ok(Some(LeaseEvent::Refused { .. }))
        ));
        store.now = Some(t0 + 10 * S);
        assert_eq!(
            b.publish(&mut store, 0, pubr(), key(), t0 + 10 * S),
            Ok(None)
        );
        assert_eq!(store.get("t:live/a"), Ok(Some("rtmp://b".into())));
    }
}
