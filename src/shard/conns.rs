//! A worker's connections: a slab preallocated to `workers.max_connections`, addressed by
//! [`ConnKey`] so that a key kept after its connection closed never reaches the connection
//! that reuses the slot.

use slab::Slab;

use super::conn::Conn;
use crate::fanout::ConnKey;

/// The connection table; see the module doc.
pub struct Conns {
    slab: Slab<Conn>,
}

impl Conns {
    /// An empty table with room for `capacity` connections allocated up front.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            slab: Slab::with_capacity(capacity),
        }
    }

    /// The slot the next [`insert`](Self::insert) takes (the new connection's mio token).
    pub fn next_index(&self) -> usize {
        self.slab.vacant_key()
    }

    /// Adds a connection whose `key` names the slot [`next_index`](Self::next_index) gave.
    pub fn insert(&mut self, conn: Conn) -> ConnKey {
        let key = conn.key;
        let index = self.slab.insert(conn);
        debug_assert_eq!(index, key.index as usize, "inserted where next_index said");
        key
    }

    /// The connection `key` names, unless it has gone (or its slot holds another one).
    pub fn get(&self, key: ConnKey) -> Option<&Conn> {
        self.slab
            .get(key.index as usize)
            .filter(|c| c.key.generation == key.generation)
    }

    /// The connection `key` names, unless it has gone (or its slot holds another one).
    pub fn get_mut(&mut self, key: ConnKey) -> Option<&mut Conn> {
        self.slab
            .get_mut(key.index as usize)
            .filter(|c| c.key.generation == key.generation)
    }

    /// The key of the connection in slot `index` now (a readiness event names only the slot).
    pub fn key_at(&self, index: usize) -> Option<ConnKey> {
        self.slab.get(index).map(|c| c.key)
    }

    /// Takes the connection `key` names out of the table.
    pub fn remove(&mut self, key: ConnKey) -> Option<Conn> {
        self.get(key)?;
        self.slab.try_remove(key.index as usize)
    }

    /// Every connection with its key.
    pub fn iter(&self) -> impl Iterator<Item = (ConnKey, &Conn)> {
        self.slab.iter().map(|(_, c)| (c.key, c))
    }

    /// Every key, collected (for passes that close connections as they go).
    pub fn keys(&self) -> Vec<ConnKey> {
        self.slab.iter().map(|(_, c)| c.key).collect()
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Instant;

    use super::*;
    use crate::fanout::OutputQueue;
    use crate::shard::conn::{HttpPhase, Proto};

    /// A connection on a real loopback socket, with connection id `id`, in slot `index`.
    pub(in crate::shard) fn conn(listener: &std::net::TcpListener, index: usize, id: u64) -> Conn {
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let peer = client.local_addr().unwrap();
        let key = ConnKey {
            index: index as u32,
            generation: id as u32,
        };
        let socket = mio::net::TcpStream::from_std(client);
        let proto = Proto::Http(HttpPhase::Request);
        Conn::new(
            id,
            key,
            peer,
            socket,
            proto,
            OutputQueue::new(1 << 16),
            Instant::now(),
            tracing::Span::none(),
        )
    }

    #[test]
    fn a_key_kept_after_its_connection_closed_is_ignored_by_the_next_in_its_slot() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut conns = Conns::with_capacity(4);
        let first = conns.insert(conn(&listener, conns.next_index(), 1));
        assert!(conns.remove(first).is_some());
        let second = conns.insert(conn(&listener, conns.next_index(), 2));
        assert_eq!(first.index, second.index, "the slot is reused");
        assert!(conns.get(first).is_none(), "the stale key finds nobody");
        assert!(conns.get_mut(first).is_none());
        assert!(
            conns.remove(first).is_none(),
            "nor can it close the newcomer"
        );
        assert_eq!(conns.get(second).map(|c| c.id), Some(2));
        assert_eq!(conns.key_at(second.index as usize), Some(second));
        assert_eq!(conns.len(), 1);
    }
}
