//! Decodes arbitrary bytes as a sequence of AMF0 values.
//!
//! Properties: never panics; every successful decode consumes at least one byte and no
//! more than it was given; a decoded value re-encodes to bytes that decode completely to a
//! value with the same encoding (compared as bytes, so NaN payloads are handled).
#![no_main]

use bytes::BytesMut;
use rtmp_edge::rtmp::amf0::{self, AmfError};

const MAX_DEPTH: usize = 32;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = data;
    while !input.is_empty() {
        let before = input.len();
        let value = match amf0::decode(&mut input, MAX_DEPTH) {
            Ok(value) => value,
            Err(_) => {
                assert_eq!(input.len(), before, "input advanced on error");
                break;
            }
        };
        assert!(input.len() < before, "decode consumed nothing");

        let mut first = BytesMut::new();
        amf0::encode(&value, &mut first);
        let mut again = &first[..];
        match amf0::decode(&mut again, MAX_DEPTH) {
            Ok(value2) => {
                assert!(again.is_empty(), "re-encoded value has trailing bytes");
                let mut second = BytesMut::new();
                amf0::encode(&value2, &mut second);
                assert_eq!(first, second, "re-encoding is not stable for {value:?}");
            }
            // AMF3 references decoded by cloning are re-encoded inline, which costs the
            // AVM+ decoder's size budget more on the second pass.
            Err(AmfError::TooLarge { .. }) => {}
            Err(e) => panic!("re-encoded {value:?} does not decode: {e}"),
        }
    }
});
