//! The drop policy of a push target's bounded queue: when the target falls behind, whole
//! GOPs are dropped (from the frame that did not fit to the next keyframe), never a sequence
//! header or metadata. The same rule as `fanout::OutputQueue`, for a queue that is fed
//! packets but not owned here: the policy only decides and counts.

use crate::fanout::Packet;

/// What the policy needs to know of one media message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Bytes it takes in the queue.
    pub len: usize,
    /// A decoder can start here ([`Packet::keyframe`]: a video keyframe, or any audio frame
    /// of an audio-only stream).
    pub keyframe: bool,
    /// Sequence header or metadata: never dropped.
    pub header: bool,
}

impl Frame {
    /// The frame of a hub packet.
    pub fn of(packet: &Packet) -> Self {
        Self {
            len: packet.wire_len(),
            keyframe: packet.keyframe,
            header: packet.header,
        }
    }
}

/// Whether to queue a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// Queue it.
    Queue,
    /// Drop it: the target is behind and resumes at a keyframe.
    Drop,
}

/// Byte accounting and the drop decision for one target's queue.
///
/// Invariant: media frames are queued only while the queued bytes (headers included) stay
/// within the limit; after a drop, the next media frame queued is a keyframe.
#[derive(Debug, Clone)]
pub struct GopDropper {
    limit: usize,
    queued: usize,
    skipping: bool,
    dropped_frames: u64,
}

impl GopDropper {
    /// A policy for a queue of at most `limit` bytes of media (headers bypass it).
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            queued: 0,
            skipping: false,
            dropped_frames: 0,
        }
    }

    /// Call for every frame before queueing it; queue it only on [`Verdict::Queue`].
    pub fn offer(&mut self, frame: Frame) -> Verdict {
        if frame.header {
            self.queued += frame.len;
            return Verdict::Queue;
        }
        let fits = self.queued + frame.len <= self.limit;
        if !fits || (self.skipping && !frame.keyframe) {
            self.skipping = true;
            self.dropped_frames += 1;
            return Verdict::Drop;
        }
        self.skipping = false;
        self.queued += frame.len;
        Verdict::Queue
    }

    /// `bytes` of queued frames were written to the target (or discarded with its
    /// connection): call as the queue drains.
    pub fn written(&mut self, bytes: usize) {
        debug_assert!(bytes <= self.queued, "wrote more than was queued");
        self.queued = self.queued.saturating_sub(bytes);
    }

    /// The queue was emptied with its connection: the next frame must be a keyframe.
    pub fn reset(&mut self) {
        self.queued = 0;
        self.skipping = true;
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// Dropping until the next keyframe.
    pub fn is_behind(&self) -> bool {
        self.skipping
    }

    /// Media frames dropped so far.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(len: usize, keyframe: bool) -> Frame {
        Frame {
            len,
            keyframe,
            header: false,
        }
    }

    fn header(len: usize) -> Frame {
        Frame {
            len,
            keyframe: false,
            header: true,
        }
    }

    #[test]
    fn a_target_that_falls_behind_loses_the_rest_of_the_gop_and_resumes_at_a_keyframe() {
        let mut d = GopDropper::new(100);
        assert_eq!(d.offer(frame(40, true)), Verdict::Queue);
        assert_eq!(d.offer(frame(40, false)), Verdict::Queue);
        assert_eq!(d.offer(frame(40, false)), Verdict::Drop, "over the limit");
        d.written(80);
        assert_eq!(
            d.offer(frame(10, false)),
            Verdict::Drop,
            "same GOP, fits, still dropped"
        );
        assert!(d.is_behind());
        assert_eq!(d.offer(frame(10, true)), Verdict::Queue);
        assert_eq!(d.offer(frame(10, false)), Verdict::Queue);
        assert_eq!(d.dropped_frames(), 2);
    }

    #[test]
    fn headers_are_never_dropped_even_while_behind() {
        let mut d = GopDropper::new(10);
        assert_eq!(d.offer(frame(20, true)), Verdict::Drop);
        assert_eq!(d.offer(header(50)), Verdict::Queue);
        assert_eq!(d.queued_bytes(), 50);
        assert_eq!(
            d.offer(frame(5, true)),
            Verdict::Drop,
            "headers fill the queue"
        );
        d.written(50);
        assert_eq!(d.offer(frame(5, true)), Verdict::Queue);
    }

    #[test]
    fn a_reset_queue_starts_again_at_a_keyframe() {
        let mut d = GopDropper::new(100);
        assert_eq!(d.offer(frame(10, true)), Verdict::Queue);
        d.reset();
        assert_eq!(d.queued_bytes(), 0);
        assert_eq!(d.offer(frame(10, false)), Verdict::Drop);
        assert_eq!(d.offer(frame(10, true)), Verdict::Queue);
    }

    proptest! {
        #[test]
        fn drops_whole_gops_and_never_headers(
            limit in 1usize..500,
            steps in proptest::collection::vec((0usize..200, any::<bool>(), 0u8..10), 1..200),
        ) {
            let mut d = GopDropper::new(limit);
            let mut queued = std::collections::VecDeque::new();
            let mut dropped_since_keyframe = false;
            for (len, keyframe, roll) in steps {
                if roll == 0 {
                    // the queue drains a bit
                    if let Some(len) = queued.pop_front() {
                        d.written(len);
                    }
                    continue;
                }
                let f = Frame { len, keyframe, header: roll == 1 };
                match d.offer(f) {
                    Verdict::Queue => {
                        if !f.header {
                            prop_assert!(!dropped_since_keyframe || f.keyframe);
                            prop_assert!(d.queued_bytes() <= limit);
                            dropped_since_keyframe = false;
                        }
                        queued.push_back(len);
                    }
                    Verdict::Drop => {
                        prop_assert!(!f.header);
                        dropped_since_keyframe = true;
                    }
                }
                prop_assert_eq!(d.queued_bytes(), queued.iter().sum::<usize>());
            }
        }
    }
}
