//! Giving memory back to the OS once a peak is over.
//!
//! Queues, reassembly buffers and GOP caches are freed when their connections and streams go,
//! but glibc keeps freed heap pages in its arenas: after a peak (stuck players with full
//! queues, a burst of publishers) a worker's RSS stays near the peak although the memory is
//! free. [`Trim`] asks the allocator to hand free pages back, at most once per interval and
//! only after connections have closed, so a steady server never pays for it.

use std::time::{Duration, Instant};

/// The least time between two trims of one worker.
const TRIM_INTERVAL: Duration = Duration::from_secs(2);

/// When a worker last trimmed, and whether it has freed anything since.
#[derive(Debug)]
pub struct Trim {
    last: Instant,
    freed: bool,
}

impl Trim {
    pub fn new(now: Instant) -> Self {
        Self {
            last: now,
            freed: false,
        }
    }

    /// A connection closed (its buffers and maybe a stream went with it).
    pub fn freed(&mut self) {
        self.freed = true;
    }

    /// Trims if something was freed since the last trim and the interval has passed; true
    /// when it did.
    pub fn on_tick(&mut self, now: Instant) -> bool {
        if !self.freed || now.saturating_duration_since(self.last) < TRIM_INTERVAL {
            return false;
        }
        self.freed = false;
        self.last = now;
        release_free_heap();
        true
    }
}

/// Hands the allocator's free pages back to the OS.
#[allow(unsafe_code)]
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only reorganises glibc's own free lists, under its arena locks, and
    // returns free pages with madvise; it reads or writes no memory the program owns and
    // takes no pointer. Its argument is the padding to leave at the heap top. glibc provides
    // it on every Linux target this cfg selects.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_after_something_was_freed_and_at_most_once_per_interval() {
        let start = Instant::now();
        let mut trim = Trim::new(start);
        assert!(!trim.on_tick(start + TRIM_INTERVAL), "nothing freed yet");
        trim.freed();
        assert!(!trim.on_tick(start + TRIM_INTERVAL / 2), "too soon");
        assert!(trim.on_tick(start + TRIM_INTERVAL));
        trim.freed();
        assert!(!trim.on_tick(start + TRIM_INTERVAL + TRIM_INTERVAL / 2));
        assert!(trim.on_tick(start + 2 * TRIM_INTERVAL));
        assert!(
            !trim.on_tick(start + 10 * TRIM_INTERVAL),
            "nothing freed since"
        );
    }
}
