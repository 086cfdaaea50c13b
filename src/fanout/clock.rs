//! Monotonic timestamps for players, whatever the publisher does.

/// Largest forward step between two publisher timestamps taken as continuous (ms).
const MAX_FORWARD_MS: i64 = 10_000;
/// Largest backward step taken as audio/video interleaving rather than a restart (ms).
const MAX_BACKWARD_MS: i64 = 2_000;
/// The step inserted at a discontinuity (publisher restart, jump, republish), in ms.
const DISCONTINUITY_STEP_MS: u64 = 20;

/// Maps publisher timestamps (32-bit, wrapping, may jump or restart) onto one monotonic
/// timeline that starts at 0 and survives republishing.
///
/// Small backward steps (audio slightly behind video) are kept as they are; a 32-bit wrap
/// is unwrapped; a jump or restart continues the timeline just after the latest timestamp.
#[derive(Debug, Default, Clone)]
pub struct Rebaser {
    /// Last input, unwrapped to 64 bits, with its raw 32-bit value.
    last_in: Option<(i64, u32)>,
    /// Output = unwrapped input + offset.
    offset: i64,
    /// Highest output so far.
    high: u64,
}

impl Rebaser {
    /// Rebases one audio/video timestamp.
    pub fn rebase(&mut self, ts: u32) -> u32 {
        let unwrapped = match self.last_in {
            None => {
                let start = if self.high == 0 {
                    0
                } else {
                    self.high + DISCONTINUITY_STEP_MS
                };
                self.offset = start as i64 - ts as i64;
                ts as i64
            }
            Some((prev64, prev32)) => {
                let delta = ts.wrapping_sub(prev32) as i32 as i64;
                let now = prev64 + delta;
                if !(-MAX_BACKWARD_MS..=MAX_FORWARD_MS).contains(&delta) {
                    self.offset = (self.high + DISCONTINUITY_STEP_MS) as i64 - now;
                }
                now
            }
        };
        self.last_in = Some((unwrapped, ts));
        let out = (unwrapped + self.offset).max(0) as u64;
        self.high = self.high.max(out);
        out as u32
    }

    /// The latest timestamp handed out (for data messages, which carry no clock of their own).
    pub fn current(&self) -> u32 {
        self.high as u32
    }

    /// The publisher left: the next timestamp starts a new segment after the current one.
    pub fn restart(&mut self) {
        self.last_in = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_zero_and_keeps_spacing() {
        let mut r = Rebaser::default();
        assert_eq!(r.rebase(5000), 0);
        assert_eq!(r.rebase(5040), 40);
        assert_eq!(
            r.rebase(5023),
            23,
            "audio slightly behind video keeps its own time"
        );
        assert_eq!(r.rebase(5080), 80);
    }

    #[test]
    fn unwraps_32_bit_rollover() {
        let mut r = Rebaser::default();
        assert_eq!(r.rebase(u32::MAX - 10), 0);
        assert_eq!(r.rebase(20), 31);
        assert_eq!(r.rebase(60), 71);
    }

    #[test]
    fn continues_after_encoder_restart() {
        let mut r = Rebaser::default();
        r.rebase(100_000);
        assert_eq!(r.rebase(100_500), 500);
        let after = r.rebase(0);
        assert_eq!(
            after, 520,
            "a restart continues just after the latest timestamp"
        );
        assert_eq!(r.rebase(40), 560);
    }

    #[test]
    fn continues_after_a_forward_jump() {
        let mut r = Rebaser::default();
        r.rebase(0);
        r.rebase(1000);
        assert_eq!(r.rebase(1_000_000), 1020);
    }

    #[test]
    fn a_jump_of_half_the_u32_range_continues_just_after_the_latest_timestamp() {
        // The signed distance of a +2^31 jump is -2^31: a jump either way, never continuous.
        let mut r = Rebaser::default();
        r.rebase(0);
        r.rebase(1000);
        assert_eq!(r.rebase(1000 + (1 << 31)), 1020);
        assert_eq!(r.rebase(1040 + (1 << 31)), 1060);
    }

    #[test]
    fn republish_continues_the_timeline() {
        let mut r = Rebaser::default();
        r.rebase(0);
        r.rebase(3000);
        r.restart();
        assert_eq!(r.rebase(0), 3020);
        assert_eq!(r.rebase(33), 3053);
    }

    #[test]
    fn output_never_goes_backwards_across_discontinuities() {
        let mut r = Rebaser::default();
        let mut high = 0;
        for ts in [
            0u32,
            40,
            80,
            4_000_000_000,
            10,
            5,
            90_000,
            90_040,
            0,
            u32::MAX,
            3,
        ] {
            let out = r.rebase(ts);
            assert!(out + MAX_BACKWARD_MS as u32 >= high, "{out} after {high}");
            high = high.max(out);
        }
    }
}
