//! Origin order per stream by rendezvous (highest-random-weight) hashing.
//!
//! Every origin gets a weight for a stream key; the stream is pulled from the heaviest one,
//! failing over in order of decreasing weight. The hash is fixed and written down here, so
//! every edge process, on any machine and in any run, orders the origins of a stream the same
//! way and pulls it from the same origin without talking to the others. Removing an origin
//! moves only the streams whose first choice it was; adding one takes about `1/n` of the
//! streams, all to itself. The order of origins in the configuration does not matter.
//!
//! The weight is FNV-1a (64-bit) over the stream key's bytes, one `0xff` byte (never found in
//! UTF-8, so `("ab", "c")` and `("a", "bc")` differ), and the origin's canonical URL
//! ([`OriginUrl`]'s `Display`), passed through MurmurHash3's 64-bit finalizer (`fmix64`) so
//! that names differing in one character get unrelated weights. Changing any of this remaps
//! streams between origins across a fleet running mixed versions: the test
//! `weights_are_fixed_across_builds` pins it.

use super::url::OriginUrl;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The key a stream is hashed by: `app/stream` with the query of each removed (a token must
/// not move a stream to another origin). The same name the hub keys its streams by.
pub fn stream_key(app: &str, stream: &str) -> String {
    let strip = |s: &str| s.split_once('?').map_or(s, |(name, _)| name).to_owned();
    format!("{}/{}", strip(app), strip(stream))
}

/// The weight of `origin` for the stream `key` ([`stream_key`]); the heaviest origin is the
/// stream's first choice.
pub fn weight(key: &str, origin: &OriginUrl) -> u64 {
    let hash = fnv1a(FNV_OFFSET, key.as_bytes());
    let hash = fnv1a(hash, &[0xff]);
    fmix64(fnv1a(hash, origin.to_string().as_bytes()))
}

/// The indices of `origins` in the order the stream `key` tries them: by decreasing weight
/// (ties, which need a 64-bit collision, by canonical URL). Call when a pull starts; the
/// order changes only when the origin list does.
pub fn rendezvous_order(key: &str, origins: &[OriginUrl]) -> Vec<usize> {
    let mut ranked: Vec<(u64, String, usize)> = origins
        .iter()
        .enumerate()
        .map(|(i, o)| (weight(key, o), o.to_string(), i))
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    ranked.into_iter().map(|(_, _, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(names: &[&str]) -> Vec<OriginUrl> {
        names
            .iter()
            .map(|n| OriginUrl::parse(&format!("rtmp://{n}:1935")).unwrap())
            .collect()
    }

    fn first_choice(key: &str, list: &[OriginUrl]) -> String {
        list[rendezvous_order(key, list)[0]].to_string()
    }

    const NAMES: usize = 10_000;

    fn names() -> impl Iterator<Item = String> {
        (0..NAMES).map(|i| format!("live/stream-{i}"))
    }

    #[test]
    fn weights_are_fixed_across_builds() {
        // Computed independently (Python) from the algorithm in the module doc.
        let o = &origins(&["origin-a"])[0];
        assert_eq!(weight("live/demo", o), 0xc327_7e69_69cc_6194);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn stream_key_drops_the_queries_of_app_and_stream() {
        assert_eq!(stream_key("live?token=1", "demo?sig=2"), "live/demo");
        assert_eq!(stream_key("live", "demo"), "live/demo");
    }

    #[test]
    fn order_does_not_depend_on_the_configured_order() {
        let a = origins(&["a", "b", "c", "d"]);
        let d = origins(&["d", "c", "b", "a"]);
        for key in names().take(500) {
            let ra: Vec<String> = rendezvous_order(&key, &a)
                .iter()
                .map(|&i| a[i].to_string())
                .collect();
            let rd: Vec<String> = rendezvous_order(&key, &d)
                .iter()
                .map(|&i| d[i].to_string())
                .collect();
            assert_eq!(ra, rd);
        }
    }

    #[test]
    fn streams_spread_evenly_over_four_origins() {
        let list = origins(&["a", "b", "c", "d"]);
        let mut counts = [0usize; 4];
        for key in names() {
            counts[rendezvous_order(&key, &list)[0]] += 1;
        }
        for c in counts {
            assert!((2_200..=2_800).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn removing_one_origin_of_four_moves_only_its_streams() {
        let four = origins(&["a", "b", "c", "d"]);
        let three = origins(&["a", "b", "d"]);
        let mut moved = 0;
        for key in names() {
            let before = first_choice(&key, &four);
            let after = first_choice(&key, &three);
            if before != after {
                assert_eq!(before, four[2].to_string(), "{key} moved off a live origin");
                moved += 1;
            }
        }
        assert!((2_200..=2_800).contains(&moved), "{moved} of {NAMES} moved");
    }

    #[test]
    fn adding_a_fifth_origin_takes_a_fifth_of_the_streams_for_itself() {
        let four = origins(&["a", "b", "c", "d"]);
        let five = origins(&["a", "b", "c", "d", "e"]);
        let mut moved = 0;
        for key in names() {
            let before = first_choice(&key, &four);
            let after = first_choice(&key, &five);
            if before != after {
                assert_eq!(
                    after,
                    five[4].to_string(),
                    "{key} moved between old origins"
                );
                moved += 1;
            }
        }
        assert!((1_750..=2_250).contains(&moved), "{moved} of {NAMES} moved");
    }

    #[test]
    fn failover_order_after_the_first_is_also_stable_under_removal() {
        // With the first choice gone, the second choice takes over: the rest of the order
        // is the same order without it.
        let four = origins(&["a", "b", "c", "d"]);
        for key in names().take(1_000) {
            let full: Vec<String> = rendezvous_order(&key, &four)
                .iter()
                .map(|&i| four[i].to_string())
                .collect();
            let rest: Vec<OriginUrl> = four
                .iter()
                .filter(|o| o.to_string() != full[0])
                .cloned()
                .collect();
            let again: Vec<String> = rendezvous_order(&key, &rest)
                .iter()
                .map(|&i| rest[i].to_string())
                .collect();
            assert_eq!(&full[1..], &again[..]);
        }
    }
}
