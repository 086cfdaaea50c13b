//! A bound on repeated warnings: a flood of bad clients must not fill the disk.
//!
//! Each warning or error call site may log at most `max` lines per [`WINDOW`]; the rest are
//! counted, and [`report_suppressed`] (called by worker 0 once a second) logs one line per
//! site with how many were dropped. Info and debug lines are not limited (the per-connection
//! close line is info and is already one per connection).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata};
use tracing_subscriber::layer::{Context, Filter};

/// How long a site's allowance lasts.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Per call site: lines allowed in the current window, and lines dropped not yet reported.
#[derive(Debug)]
struct Site {
    name: String,
    target: String,
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

/// The shared state of the limit (one per process).
#[derive(Debug)]
pub struct RepeatLimit {
    max: u32,
    sites: Mutex<HashMap<Identifier, Site>>,
}

/// The process's limit, once logging is set up ([`install`]).
static LIMIT: OnceLock<Arc<RepeatLimit>> = OnceLock::new();

impl RepeatLimit {
    /// At most `max` warning/error lines per call site per [`WINDOW`] (0: no limit).
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(Self {
            max,
            sites: Mutex::new(HashMap::new()),
        })
    }

    /// Whether one more line from `meta`'s site may be logged at `now`.
    pub fn allow(&self, meta: &Metadata<'_>, now: Instant) -> bool {
        if self.max == 0 || !limited(meta) {
            return true;
        }
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        let site = sites.entry(meta.callsite()).or_insert_with(|| Site {
            name: meta.name().to_owned(),
            target: meta.target().to_owned(),
            window_start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.duration_since(site.window_start) >= WINDOW {
            site.window_start = now;
            site.logged = 0;
        }
        if site.logged < self.max {
            site.logged += 1;
            true
        } else {
            site.suppressed += 1;
            false
        }
    }

    /// The sites that dropped lines since the last call, with how many (the counts reset).
    pub fn take_suppressed(&self) -> Vec<(String, String, u64)> {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        sites
            .values_mut()
            .filter(|s| s.suppressed > 0)
            .map(|s| {
                (
                    s.target.clone(),
                    s.name.clone(),
                    std::mem::take(&mut s.suppressed),
                )
            })
            .collect()
    }
}

/// Warnings and errors are limited; everything else passes.
fn limited(meta: &Metadata<'_>) -> bool {
    meta.is_event() && *meta.level() <= Level::WARN
}

/// The per-layer filter of the log output that applies a [`RepeatLimit`].
#[derive(Debug, Clone)]
pub struct RepeatFilter(pub Arc<RepeatLimit>);

impl<S> Filter<S> for RepeatFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        self.0.allow(meta, Instant::now())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.0.max > 0 && limited(meta) {
            Interest::sometimes() // decided line by line
        } else {
            Interest::always()
        }
    }
}

/// Makes `limit` the process's, for [`report_suppressed`].
pub fn install(limit: Arc<RepeatLimit>) {
    let _ = LIMIT.set(limit);
}

/// Logs one warning per call site that dropped lines since the last report (nothing when
/// logging has no limit installed, e.g. in tests).
pub fn report_suppressed() {
    let Some(limit) = LIMIT.get() else {
        return;
    };
    for (target, site, suppressed) in limit.take_suppressed() {
        tracing::warn!(suppressed, %site, %target, "repeated log lines suppressed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// Captures formatted lines in memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_flood_of_one_warning_is_cut_to_the_limit_and_counted_while_info_passes() {
        let lines = Lines::default();
        let limit = RepeatLimit::new(3);
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || writer.clone());
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::Layer::with_filter(layer, RepeatFilter(limit.clone())),
        );
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..100 {
                tracing::warn!(i, "bad client");
                tracing::info!(i, "closed");
            }
            tracing::error!("another site");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches("bad client").count(), 3, "{text}");
        assert_eq!(text.matches("closed").count(), 100, "info is not limited");
        assert_eq!(
            text.matches("another site").count(),
            1,
            "limits are per site"
        );
        let suppressed = limit.take_suppressed();
        assert_eq!(suppressed.len(), 1);
        assert_eq!(suppressed[0].2, 97);
        assert!(
            limit.take_suppressed().is_empty(),
            "counts reset once reported"
        );
    }

    #[test]
    fn a_site_gets_its_allowance_back_after_the_window() {
        let limit = RepeatLimit::new(2);
        let meta = tracing::Metadata::new(
            "event",
            "t",
            Level::WARN,
            None,
            None,
            None,
            tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&CALLSITE)),
            tracing::metadata::Kind::EVENT,
        );
        let t0 = Instant::now();
        assert!(limit.allow(&meta, t0));
        assert!(limit.allow(&meta, t0));
        assert!(!limit.allow(&meta, t0 + Duration::from_secs(1)));
        assert!(limit.allow(&meta, t0 + WINDOW));
        assert_eq!(limit.take_suppressed()[0].2, 1);
    }

    struct Callsite;
    static CALLSITE: Callsite = Callsite;
    impl tracing::callsite::Callsite for Callsite {
        fn set_interest(&self, _: Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unimplemented!("not registered")
        }
    }
}
