//! Which worker owns which stream, shared by all workers. Touched only when a stream is
//! published, unpublished, or first played on a worker: never per message.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::fanout::StreamKey;

/// Outcome of a publisher's claim on a stream name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The stream is ours. `waiters` are workers whose players wait for it.
    Granted { waiters: u64 },
    /// Another worker's publisher has it.
    InUse { owner: usize },
    /// We took it over from `previous` (takeover configured).
    TakenOver { previous: usize, waiters: u64 },
}

#[derive(Debug, Default)]
struct Entry {
    owner: Option<usize>,
    /// Workers with players waiting for a publisher, as a bit set.
    waiters: u64,
}

/// Stream name → owning worker, plus who waits for unpublished names.
#[derive(Debug, Default)]
pub struct Directory {
    entries: Mutex<HashMap<StreamKey, Entry>>,
}

fn bit(worker: usize) -> u64 {
    1u64 << worker
}

impl Directory {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<StreamKey, Entry>) -> R) -> R {
        let mut guard = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// A publisher on `worker` wants `key`.
    pub fn claim(&self, key: &StreamKey, worker: usize, takeover: bool) -> Claim {
        self.with(|map| {
            let entry = map.entry(key.clone()).or_default();
            let waiters = entry.waiters & !bit(worker);
            match entry.owner {
                Some(owner) if owner != worker && !takeover => Claim::InUse { owner },
                Some(owner) if owner != worker => {
                    entry.owner = Some(worker);
                    entry.waiters = 0;
                    Claim::TakenOver {
                        previous: owner,
                        waiters,
                    }
                }
                _ => {
                    entry.owner = Some(worker);
                    entry.waiters = 0;
                    Claim::Granted { waiters }
                }
            }
        })
    }

    /// The publisher on `worker` left. A no-op if another worker owns `key` by now.
    pub fn release(&self, key: &StreamKey, worker: usize) {
        self.with(|map| {
            if let Some(entry) = map.get_mut(key) {
                if entry.owner == Some(worker) {
                    entry.owner = None;
                }
                if entry.owner.is_none() && entry.waiters == 0 {
                    map.remove(key);
                }
            }
        })
    }

    /// `worker` has players for `key`: the owner to subscribe to, or `None` after recording
    /// that `worker` waits (it will be told when a publisher claims the name).
    pub fn subscribe(&self, key: &StreamKey, worker: usize) -> Option<usize> {
        self.with(|map| {
            let entry = map.entry(key.clone()).or_default();
            match entry.owner {
                Some(owner) => Some(owner),
                None => {
                    entry.waiters |= bit(worker);
                    None
                }
            }
        })
    }

    /// The worker publishing `key`, if any.
    pub fn owner(&self, key: &StreamKey) -> Option<usize> {
        self.with(|map| map.get(key).and_then(|e| e.owner))
    }

    /// `worker` no longer waits for `key`.
    pub fn unsubscribe(&self, key: &StreamKey, worker: usize) {
        self.with(|map| {
            if let Some(entry) = map.get_mut(key) {
                entry.waiters &= !bit(worker);
                if entry.owner.is_none() && entry.waiters == 0 {
                    map.remove(key);
                }
            }
        })
    }

    /// Number of names known (published or waited for).
    pub fn len(&self) -> usize {
        self.with(|map| map.len())
    }

    /// True when no stream is published or waited for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_publisher_is_refused_unless_takeover() {
        let d = Directory::default();
        let k = StreamKey::new("live", "a");
        assert_eq!(d.claim(&k, 0, false), Claim::Granted { waiters: 0 });
        assert_eq!(d.claim(&k, 1, false), Claim::InUse { owner: 0 });
        assert_eq!(
            d.claim(&k, 1, true),
            Claim::TakenOver {
                previous: 0,
                waiters: 0
            }
        );
        d.release(&k, 0);
        assert_eq!(
            d.subscribe(&k, 2),
            Some(1),
            "a stale release does not drop the new owner"
        );
    }

    #[test]
    fn waiting_workers_are_handed_to_the_next_publisher() {
        let d = Directory::default();
        let k = StreamKey::new("live", "a");
        assert_eq!(d.subscribe(&k, 1), None);
        assert_eq!(d.subscribe(&k, 3), None);
        assert_eq!(d.claim(&k, 3, false), Claim::Granted { waiters: 0b10 });
        d.release(&k, 3);
        assert!(d.is_empty());
    }

    #[test]
    fn unsubscribed_names_are_forgotten() {
        let d = Directory::default();
        let k = StreamKey::new("live", "a");
        d.subscribe(&k, 1);
        d.unsubscribe(&k, 1);
        assert!(d.is_empty());
    }
}
