//! Decodes arbitrary bytes as a stream of AMF3 values sharing reference tables.
//!
//! Properties: never panics; every successful decode consumes at least one byte and no
//! more than it was given; each decoded value re-encodes (inline, without references) to
//! bytes that a fresh decoder reads completely, to a value with the same encoding.
#![no_main]

use bytes::BytesMut;
use rtmp_edge::rtmp::amf3::{self, Amf3Decoder};

const MAX_DEPTH: usize = 32;
/// Small enough that reference amplification is cut off quickly.
const BUDGET: usize = 1 << 20;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut decoder = Amf3Decoder::with_budget(MAX_DEPTH, BUDGET);
    let mut input = data;
    while !input.is_empty() {
        let before = input.len();
        let value = match decoder.decode(&mut input) {
            Ok(value) => value,
            Err(_) => {
                assert_eq!(input.len(), before, "input advanced on error");
                break;
            }
        };
        assert!(input.len() < before, "decode consumed nothing");

        let mut first = BytesMut::new();
        amf3::encode(&value, &mut first);
        let mut again = &first[..];
        // Inline copies of referenced values cost the tables more than the references did:
        // the re-decode gets no budget (its input is already bounded by BUDGET).
        let value2 = Amf3Decoder::with_budget(MAX_DEPTH, usize::MAX)
            .decode(&mut again)
            .unwrap_or_else(|e| panic!("re-encoded {value:?} does not decode: {e}"));
        assert!(again.is_empty(), "re-encoded value has trailing bytes");
        let mut second = BytesMut::new();
        amf3::encode(&value2, &mut second);
        assert_eq!(first, second, "re-encoding is not stable for {value:?}");
    }
});
