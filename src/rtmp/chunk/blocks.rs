//! Pooled assembly buffers for media payloads: each message's bytes are carved out of a
//! shared block, so reassembly allocates per block, not per message, and reuses a block once
//! every payload cut from it is gone.
//!
//! # How it works
//! * [`BlockPool::take`] hands out an empty `BytesMut` with room for exactly `len` bytes,
//!   split off the front of the current block (`split_off`: a refcount increment). The
//!   decoder fills it chunk by chunk and freezes it: the payload is a `Bytes` view of the
//!   block, cloned by refcount from then on.
//! * When the current block has less room than a message needs, the pool keeps a handle on
//!   it (oldest first) and moves on to the oldest kept block that nobody else refers to any
//!   more (`try_reclaim`: every payload cut from it was dropped, e.g. when the GOP cache let
//!   go of the GOP), or allocates a new one. Any other free block is freed then: blocks
//!   freed in bulk (a GOP at a keyframe) go back to the allocator for the worker's other
//!   connections instead of waiting for this one, so a publisher holds about its average
//!   GOP, not its largest, as with one allocation per message.
//! * At most [`MAX_KEPT`] used blocks are kept. Past that the oldest handle is let go: its
//!   memory is freed by whoever drops its last payload, so what the pool holds on its own
//!   is bounded whatever the consumers keep.
//! * Only payloads up to [`MAX_POOLED`] come from blocks; larger ones get their own
//!   allocation (the decoder's growth policy), so a block wastes at most half of itself.

use std::collections::VecDeque;

use bytes::BytesMut;

/// Size of one block.
pub const BLOCK_SIZE: usize = 64 * 1024;

/// Largest payload carved from a block.
pub const MAX_POOLED: usize = BLOCK_SIZE / 2;

/// Most used blocks the pool keeps handles on, waiting to reuse them.
pub const MAX_KEPT: usize = 32;

/// Blocks that media payloads are carved from (see the module doc). Holds no memory until
/// the first [`take`](Self::take).
#[derive(Debug, Default)]
pub struct BlockPool {
    /// The rest of the block payloads are carved from now (its front is the next payload).
    current: BytesMut,
    /// `current` is part of a block (false until the first block is allocated).
    started: bool,
    /// Handles on used blocks, oldest first, for reuse once nothing else refers to them.
    kept: VecDeque<BytesMut>,
}

impl BlockPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty buffer with capacity for exactly `len` bytes, part of a shared block.
    /// `len` must be at most [`MAX_POOLED`] (debug-asserted; a larger one gets its own block).
    pub fn take(&mut self, len: usize) -> BytesMut {
        debug_assert!(len <= MAX_POOLED, "pooled payload of {len} bytes");
        if self.current.capacity() < len {
            self.next_block(len);
        }
        let rest = self.current.split_off(len);
        std::mem::replace(&mut self.current, rest)
    }

    /// Bytes the pool holds on its own: the unused rest of the current block plus the blocks
    /// kept for reuse (those still referred to elsewhere are counted too: an upper bound).
    pub fn held_bytes(&self) -> usize {
        self.current.capacity() + self.kept.len() * BLOCK_SIZE
    }

    /// Number of blocks kept for reuse (for tests).
    pub fn kept_blocks(&self) -> usize {
        self.kept.len()
    }

    /// Moves on to a block with room for `len` bytes: the oldest kept block if it is free,
    /// else a new one.
    #[cold]
    fn next_block(&mut self, len: usize) {
        let used = std::mem::take(&mut self.current);
        // Even an exhausted view (capacity 0) refers to its block and can reclaim it.
        if self.started {
            self.kept.push_back(used);
        }
        self.started = true;
        // Reuse the oldest free block (`try_reclaim` is true only when no payload of it is
        // alive: the whole block is ours again, its empty view reset to the start without
        // copying). Other free blocks go back to the allocator now rather than wait here for
        // this connection's next messages: a GOP cache frees a whole GOP of blocks at once,
        // and the other connections of the worker can use them meanwhile, so a publisher
        // costs its average GOP, not its largest.
        let mut reused = None;
        self.kept.retain_mut(|block| {
            if !block.try_reclaim(BLOCK_SIZE) {
                return true;
            }
            if reused.is_none() {
                reused = Some(std::mem::take(block));
            }
            false
        });
        if let Some(free) = reused {
            self.current = free;
            debug_assert!(self.current.capacity() >= len);
            return;
        }
        if self.kept.len() > MAX_KEPT {
            self.kept.pop_front();
        }
        self.current = BytesMut::with_capacity(BLOCK_SIZE.max(len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(pool: &mut BlockPool, len: usize, fill: u8) -> bytes::Bytes {
        let mut b = pool.take(len);
        assert_eq!(b.capacity(), len);
        b.extend_from_slice(&vec![fill; len]);
        b.freeze()
    }

    #[test]
    fn payloads_are_carved_one_after_another_from_one_block() {
        let mut pool = BlockPool::new();
        assert_eq!(
            pool.held_bytes(),
            0,
            "nothing allocated before the first take"
        );
        let a = payload(&mut pool, 1000, 1);
        let b = payload(&mut pool, 3000, 2);
        assert_eq!(b.as_ptr() as usize, a.as_ptr() as usize + 1000);
        assert!(a.iter().all(|&x| x == 1) && b.iter().all(|&x| x == 2));
        assert_eq!(pool.held_bytes(), BLOCK_SIZE - 4000);
    }

    #[test]
    fn a_block_is_reused_once_every_payload_from_it_is_dropped() {
        let mut pool = BlockPool::new();
        let first: Vec<_> = (0..4)
            .map(|i| payload(&mut pool, MAX_POOLED / 2, i))
            .collect();
        let start = first[0].as_ptr();
        // The block is full: the next payload starts a second block while the first is alive.
        let second = payload(&mut pool, MAX_POOLED, 9);
        assert_ne!(second.as_ptr(), start);
        drop(first);
        let _fill = payload(&mut pool, MAX_POOLED, 8);
        // Third take: the second block is full, the first is free again and is reused.
        let again = payload(&mut pool, 100, 7);
        assert_eq!(again.as_ptr(), start, "the first block came back");
        assert!(again.iter().all(|&x| x == 7));
    }

    #[test]
    fn a_block_still_referred_to_is_not_reused() {
        let mut pool = BlockPool::new();
        let kept = payload(&mut pool, 10, 1);
        let _rest = payload(&mut pool, MAX_POOLED, 2);
        let _fill = payload(&mut pool, MAX_POOLED - 10, 2);
        let next = payload(&mut pool, 10, 3);
        assert!(
            !(kept.as_ptr()..kept.as_ptr().wrapping_add(BLOCK_SIZE)).contains(&next.as_ptr()),
            "a payload of the first block is alive"
        );
        assert_eq!(&kept[..], &[1; 10]);
    }

    #[test]
    fn the_pool_keeps_a_bounded_number_of_blocks_whatever_consumers_hold() {
        let mut pool = BlockPool::new();
        let mut alive = Vec::new();
        for i in 0..(MAX_KEPT * 4) {
            alive.push(payload(&mut pool, MAX_POOLED, i as u8));
            assert!(pool.kept_blocks() <= MAX_KEPT + 1);
        }
        for (i, p) in alive.iter().enumerate() {
            assert!(p.iter().all(|&x| x == i as u8), "payload {i} intact");
        }
    }

    #[test]
    fn free_blocks_beyond_the_one_reused_go_back_to_the_allocator() {
        let mut pool = BlockPool::new();
        let gop: Vec<_> = (0..8).map(|i| payload(&mut pool, MAX_POOLED, i)).collect();
        assert_eq!(
            pool.kept_blocks(),
            3,
            "three full blocks kept, the fourth is current"
        );
        drop(gop);
        let _next = payload(&mut pool, MAX_POOLED, 9);
        let _after = payload(&mut pool, MAX_POOLED, 9);
        // The current block filled up: one free block is reused, the other two are freed.
        let _more = payload(&mut pool, MAX_POOLED, 9);
        assert_eq!(pool.kept_blocks(), 1, "only the block still in use is kept");
    }
}
