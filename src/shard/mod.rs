//! The per-core runtime: one worker thread per core, each with its own mio Poll,
//! SO_REUSEPORT listeners and preallocated Slab of connections.

use crate::config::Config;

/// Starts the workers, serves until SIGINT/SIGTERM, then shuts down cleanly within
/// `timeouts.shutdown_ms`. Returns an error if a listener cannot be bound.
pub fn run(config: Config) -> std::io::Result<()> {
    let _ = config;
    todo!()
}
