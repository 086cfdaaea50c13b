//! How anything outside a worker's connection table refers to a connection.

use std::fmt;

/// A connection's slab slot and the generation of that slot's occupant (h2's `store::Key`).
///
/// Streams list their players and sources by `ConnKey`, held HTTP requests and write lists
/// carry one, so when a connection closes and its slot is reused, a leftover reference finds a
/// different generation and is ignored instead of sending one connection's packets or answers
/// to another.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    /// The slot in the worker's slab (and the connection's mio token).
    pub index: u32,
    /// Which occupant of the slot: unique per worker until 2^32 connections later.
    pub generation: u32,
}

impl fmt::Debug for ConnKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.index, self.generation)
    }
}
