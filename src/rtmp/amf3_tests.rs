//! Unit tests for AMF3 decoding and encoding: every marker, the reference tables, caps and
//! errors, round trips.

use super::*;
use proptest::prelude::*;

fn enc(v: &Amf3Value) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(v, &mut out);
    out.to_vec()
}

fn dec(bytes: &[u8]) -> Result<Amf3Value, AmfError> {
    let mut input = bytes;
    let v = Amf3Decoder::new(32).decode(&mut input)?;
    assert!(input.is_empty(), "trailing bytes after {v:?}");
    Ok(v)
}

fn s(x: &str) -> Amf3Value {
    Amf3Value::String(x.into())
}

fn dense(items: Vec<Amf3Value>) -> Amf3Value {
    Amf3Value::Array {
        associative: vec![],
        dense: items,
    }
}

#[test]
fn reads_and_writes_u29_at_every_length_boundary() {
    let cases: [(u32, &[u8]); 8] = [
        (0, &[0x00]),
        (0x7F, &[0x7F]),
        (0x80, &[0x81, 0x00]),
        (0x3FFF, &[0xFF, 0x7F]),
        (0x4000, &[0x81, 0x80, 0x00]),
        (0x1F_FFFF, &[0xFF, 0xFF, 0x7F]),
        (0x20_0000, &[0x80, 0xC0, 0x80, 0x00]),
        (0x1FFF_FFFF, &[0xFF, 0xFF, 0xFF, 0xFF]),
    ];
    for (v, bytes) in cases {
        let mut out = BytesMut::new();
        put_u29(&mut out, v);
        assert_eq!(&out[..], bytes, "{v:#x}");
        let mut input = bytes;
        assert_eq!(read_u29(&mut input), Ok(v));
        assert!(input.is_empty());
    }
}

#[test]
fn sign_extends_29_bit_integers() {
    assert_eq!(
        dec(&[0x04, 0xFF, 0xFF, 0xFF, 0xFF]),
        Ok(Amf3Value::Integer(-1))
    );
    assert_eq!(
        dec(&[0x04, 0xC0, 0x80, 0x80, 0x00]),
        Ok(Amf3Value::Integer(INTEGER_MIN))
    );
    assert_eq!(
        dec(&[0x04, 0xBF, 0xFF, 0xFF, 0xFF]),
        Ok(Amf3Value::Integer(INTEGER_MAX))
    );
    assert_eq!(enc(&Amf3Value::Integer(-1)), [0x04, 0xFF, 0xFF, 0xFF, 0xFF]);
}

#[test]
fn writes_an_integer_outside_29_bits_as_a_double() {
    let bytes = enc(&Amf3Value::Integer(INTEGER_MAX + 1));
    assert_eq!(bytes[0], 0x05);
    assert_eq!(
        dec(&bytes),
        Ok(Amf3Value::Double(f64::from(INTEGER_MAX + 1)))
    );
}

#[test]
fn decodes_every_supported_marker_from_known_bytes() {
    let cases: Vec<(Vec<u8>, Amf3Value)> = vec![
        (vec![0x00], Amf3Value::Undefined),
        (vec![0x01], Amf3Value::Null),
        (vec![0x02], Amf3Value::Boolean(false)),
        (vec![0x03], Amf3Value::Boolean(true)),
        (vec![0x04, 0x81, 0x00], Amf3Value::Integer(128)),
        (
            vec![0x05, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0],
            Amf3Value::Double(1.5),
        ),
        (vec![0x06, 0x05, b'h', b'i'], s("hi")),
        (vec![0x06, 0x01], s("")),
        (
            vec![0x07, 0x09, b'<', b'a', b'/', b'>'],
            Amf3Value::XmlDocument("<a/>".into()),
        ),
        (
            vec![0x08, 0x01, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0],
            Amf3Value::Date(1.0),
        ),
        (
            vec![0x0B, 0x09, b'<', b'b', b'/', b'>'],
            Amf3Value::Xml("<b/>".into()),
        ),
        (
            vec![0x0C, 0x07, 1, 2, 3],
            Amf3Value::ByteArray(vec![1, 2, 3]),
        ),
        (
            vec![0x09, 0x03, 0x03, b'k', 0x01, 0x01, 0x03],
            Amf3Value::Array {
                associative: vec![("k".into(), Amf3Value::Null)],
                dense: vec![Amf3Value::Boolean(true)],
            },
        ),
        (
            // Anonymous dynamic object {a: 1}.
            vec![0x0A, 0x0B, 0x01, 0x03, b'a', 0x04, 0x01, 0x01],
            Amf3Value::Object {
                class_name: None,
                sealed: vec![],
                dynamic: vec![("a".into(), Amf3Value::Integer(1))],
            },
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(dec(&bytes), Ok(expected.clone()), "{bytes:02x?}");
        assert_eq!(enc(&expected), bytes, "{expected:?}");
    }
}

#[test]
fn rejects_vectors_dictionaries_and_unknown_markers() {
    for m in [0x0Du8, 0x0E, 0x0F, 0x10, 0x11, 0x12, 0xFF] {
        assert_eq!(
            dec(&[m]),
            Err(AmfError::UnknownMarker {
                version: 3,
                marker: m
            })
        );
    }
}

#[test]
fn resolves_string_references_and_never_references_the_empty_string() {
    // ["abc", ref 0]
    let bytes = [0x09, 0x05, 0x01, 0x06, 0x07, b'a', b'b', b'c', 0x06, 0x00];
    assert_eq!(dec(&bytes), Ok(dense(vec![s("abc"), s("abc")])));
    // ["", "a", ref 0]: the empty string took no table slot, so ref 0 is "a".
    let bytes = [0x09, 0x07, 0x01, 0x06, 0x01, 0x06, 0x03, b'a', 0x06, 0x00];
    assert_eq!(dec(&bytes), Ok(dense(vec![s(""), s("a"), s("a")])));
    // Keys share the table with values: key "k" then value ref 0.
    let bytes = [0x09, 0x01, 0x03, b'k', 0x06, 0x00, 0x01];
    assert_eq!(
        dec(&bytes),
        Ok(Amf3Value::Array {
            associative: vec![("k".into(), s("k"))],
            dense: vec![],
        })
    );
}

#[test]
fn resolves_object_references_counting_the_enclosing_array_first() {
    // [ {k: 1}, ref 1 ]: the outer array is object 0, the inner object 1.
    let bytes = [
        0x09, 0x05, 0x01, 0x0A, 0x0B, 0x01, 0x03, b'k', 0x04, 0x01, 0x01, 0x0A, 0x02,
    ];
    let obj = Amf3Value::Object {
        class_name: None,
        sealed: vec![],
        dynamic: vec![("k".into(), Amf3Value::Integer(1))],
    };
    assert_eq!(dec(&bytes), Ok(dense(vec![obj.clone(), obj])));
    // Dates, XML and byte arrays share the object table.
    let bytes = [
        0x09, 0x07, 0x01, 0x0C, 0x03, 0xAA, 0x08, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x0C, 0x02,
    ];
    assert_eq!(
        dec(&bytes),
        Ok(dense(vec![
            Amf3Value::ByteArray(vec![0xAA]),
            Amf3Value::Date(0.0),
            Amf3Value::ByteArray(vec![0xAA]),
        ]))
    );
}

#[test]
fn resolves_trait_references_with_sealed_members() {
    // [ Pt{x: 1}, Pt{x: 2} with traits ref 0 ]
    let bytes = [
        0x09, 0x05, 0x01, // array, 2 dense, no associative
        0x0A, 0x13, 0x05, b'P', b't', 0x03, b'x', 0x04, 0x01, // inline traits
        0x0A, 0x01, 0x04, 0x02, // traits reference 0
    ];
    let pt = |x| Amf3Value::Object {
        class_name: Some("Pt".into()),
        sealed: vec![("x".into(), Amf3Value::Integer(x))],
        dynamic: vec![],
    };
    let v = dec(&bytes).unwrap();
    assert_eq!(v, dense(vec![pt(1), pt(2)]));
    if let Amf3Value::Array { dense, .. } = &v {
        assert_eq!(dense[1].get("x").and_then(Amf3Value::as_f64), Some(2.0));
    }
}

#[test]
fn keeps_reference_tables_across_values_of_one_stream() {
    let mut decoder = Amf3Decoder::new(8);
    let mut input: &[u8] = &[0x06, 0x05, b'h', b'i', 0x06, 0x00];
    assert_eq!(decoder.decode(&mut input), Ok(s("hi")));
    assert_eq!(decoder.decode(&mut input), Ok(s("hi")));
    assert!(input.is_empty());
}

#[test]
fn rejects_references_to_nothing_and_to_unfinished_objects() {
    assert_eq!(dec(&[0x06, 0x02]), Err(AmfError::BadReference { index: 1 }));
    assert_eq!(dec(&[0x0A, 0x00]), Err(AmfError::BadReference { index: 0 }));
    assert_eq!(dec(&[0x0A, 0x05]), Err(AmfError::BadReference { index: 1 }));
    // An array whose element refers to the array itself (a cycle).
    assert_eq!(
        dec(&[0x09, 0x03, 0x01, 0x09, 0x00]),
        Err(AmfError::BadReference { index: 0 })
    );
}

#[test]
fn reports_an_externalizable_object_by_class_name() {
    let bytes = [0x0A, 0x07, 0x05, b'A', b'C', 0x01];
    assert_eq!(
        dec(&bytes),
        Err(AmfError::Externalizable {
            class_name: "AC".into()
        })
    );
}

#[test]
fn decodes_invalid_utf8_lossily() {
    assert_eq!(dec(&[0x06, 0x05, 0xFF, b'x']), Ok(s("\u{FFFD}x")));
}

#[test]
fn stops_exponential_reference_amplification_with_too_large() {
    // [ [null x 1000], [ref 1 x 1000] ]: 2 KB on the wire, a million values decoded.
    let mut bytes = vec![0x09, 0x05, 0x01];
    bytes.extend_from_slice(&[0x09, 0x8F, 0x51, 0x01]); // 1000 dense
    bytes.extend(std::iter::repeat(0x01).take(1000));
    bytes.extend_from_slice(&[0x09, 0x8F, 0x51, 0x01]);
    for _ in 0..1000 {
        bytes.extend_from_slice(&[0x09, 0x02]);
    }
    assert_eq!(
        dec(&bytes),
        Err(AmfError::TooLarge {
            what: "AMF3 decoded size budget"
        })
    );
    // The same shape with 10 elements fits.
    let mut small = vec![0x09, 0x05, 0x01, 0x09, 0x15, 0x01];
    small.extend(std::iter::repeat(0x01).take(10));
    small.extend_from_slice(&[0x09, 0x15, 0x01]);
    for _ in 0..10 {
        small.extend_from_slice(&[0x09, 0x02]);
    }
    assert!(dec(&small).is_ok());
}

#[test]
fn stops_repeated_references_to_a_long_string_with_too_large() {
    let mut bytes = vec![0x09, 0x80, 0xC0, 0x80, 0x01, 0x01]; // 2^20 dense
    bytes.extend_from_slice(&[0x06, 0x81, 0x80, 0x01]); // 8192-byte string
    bytes.extend(std::iter::repeat(b'z').take(8192));
    for _ in 0..(1 << 20) - 1 {
        bytes.extend_from_slice(&[0x06, 0x00]);
    }
    assert_eq!(
        dec(&bytes),
        Err(AmfError::TooLarge {
            what: "AMF3 decoded size budget"
        })
    );
}

#[test]
fn rejects_a_reference_that_would_nest_deeper_than_the_limit() {
    // [ [null], [ ref 1 ] ]: inline values nest 2 deep, but the reference sits at
    // depth 2 and has height 1, so the tree handed back nests 3 deep.
    let bytes = [
        0x09, 0x05, 0x01, 0x09, 0x03, 0x01, 0x01, 0x09, 0x03, 0x01, 0x09, 0x02,
    ];
    let inner = dense(vec![Amf3Value::Null]);
    let mut input = &bytes[..];
    assert_eq!(
        Amf3Decoder::new(3).decode(&mut input),
        Ok(dense(vec![inner.clone(), dense(vec![inner])]))
    );
    let mut input = &bytes[..];
    assert_eq!(
        Amf3Decoder::new(2).decode(&mut input),
        Err(AmfError::TooDeep { limit: 2 })
    );
    // A chain of references where each level wraps the previous one.
    let mut chain = vec![0x09, 0x80 | 0x01, 0x49, 0x01]; // 100 dense
    chain.extend_from_slice(&[0x09, 0x01, 0x01]); // object 1: []
    for i in 1..100u32 {
        chain.extend_from_slice(&[0x09, 0x03, 0x01]); // [ ref i ]
        let mut out = BytesMut::new();
        put_u29(&mut out, i << 1);
        chain.push(0x09);
        chain.extend_from_slice(&out);
    }
    assert_eq!(dec(&chain), Err(AmfError::TooDeep { limit: 32 }));
}

fn nested_arrays(levels: usize) -> Amf3Value {
    let mut v = Amf3Value::Null;
    for _ in 0..levels {
        v = dense(vec![v]);
    }
    v
}

#[test]
fn accepts_nesting_up_to_the_limit_and_rejects_one_more() {
    let bytes = enc(&nested_arrays(6));
    assert!(Amf3Decoder::new(6).decode(&mut &bytes[..]).is_ok());
    assert_eq!(
        Amf3Decoder::new(5).decode(&mut &bytes[..]),
        Err(AmfError::TooDeep { limit: 5 })
    );
}

fn complex_value() -> Amf3Value {
    Amf3Value::Array {
        associative: vec![("n".into(), Amf3Value::Double(0.5))],
        dense: vec![
            s("héllo"),
            Amf3Value::Integer(-300_000),
            Amf3Value::Object {
                class_name: Some("C".into()),
                sealed: vec![("a".into(), Amf3Value::Date(3.0))],
                dynamic: vec![("d".into(), Amf3Value::ByteArray(vec![9, 9]))],
            },
            Amf3Value::Xml("<x/>".into()),
            Amf3Value::XmlDocument("<y/>".into()),
        ],
    }
}

#[test]
fn reports_truncated_at_every_cut_of_a_complex_value_and_leaves_the_input_alone() {
    let bytes = enc(&complex_value());
    assert_eq!(dec(&bytes), Ok(complex_value()));
    for cut in 0..bytes.len() {
        let mut input = &bytes[..cut];
        assert_eq!(
            Amf3Decoder::new(32).decode(&mut input),
            Err(AmfError::Truncated),
            "cut {cut}"
        );
        assert_eq!(input.len(), cut);
    }
}

#[test]
fn rejects_counts_larger_than_the_input_without_allocating_them() {
    // Dense count 2^28 - 1 with nothing after it.
    assert_eq!(
        dec(&[0x09, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
        Err(AmfError::Truncated)
    );
    // Sealed member count 2^25 - 1.
    assert_eq!(
        dec(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFB, 0x01]),
        Err(AmfError::Truncated)
    );
    // String length 2^28 - 1.
    assert_eq!(
        dec(&[0x06, 0xFF, 0xFF, 0xFF, 0xFF]),
        Err(AmfError::Truncated)
    );
}

#[test]
fn skips_members_the_format_cannot_name() {
    let v = Amf3Value::Object {
        class_name: Some(String::new()),
        sealed: vec![],
        dynamic: vec![
            (String::new(), Amf3Value::Null),
            ("k".into(), Amf3Value::Null),
        ],
    };
    assert_eq!(
        dec(&enc(&v)),
        Ok(Amf3Value::Object {
            class_name: None,
            sealed: vec![],
            dynamic: vec![("k".into(), Amf3Value::Null)],
        })
    );
}

// ---- property tests ----

fn finite_f64() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("not NaN", |f| !f.is_nan())
}

fn name() -> impl Strategy<Value = String> + Clone {
    prop_oneof!["[a-z]{1,6}", ".{1,4}"]
}

pub(crate) fn arb_amf3() -> impl Strategy<Value = Amf3Value> {
    let leaf = prop_oneof![
        Just(Amf3Value::Undefined),
        Just(Amf3Value::Null),
        any::<bool>().prop_map(Amf3Value::Boolean),
        (INTEGER_MIN..=INTEGER_MAX).prop_map(Amf3Value::Integer),
        finite_f64().prop_map(Amf3Value::Double),
        ".{0,10}".prop_map(Amf3Value::String),
        ".{0,10}".prop_map(Amf3Value::XmlDocument),
        finite_f64().prop_map(Amf3Value::Date),
        ".{0,10}".prop_map(Amf3Value::Xml),
        prop::collection::vec(any::<u8>(), 0..10).prop_map(Amf3Value::ByteArray),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        let members = prop::collection::vec((name(), inner.clone()), 0..4);
        prop_oneof![
            (members.clone(), prop::collection::vec(inner.clone(), 0..5))
                .prop_map(|(associative, dense)| Amf3Value::Array { associative, dense }),
            (
                prop::option::of(name()),
                prop::collection::vec((".{0,4}", inner), 0..4),
                members,
            )
                .prop_map(|(class_name, sealed, dynamic)| Amf3Value::Object {
                    class_name,
                    sealed,
                    dynamic,
                }),
        ]
    })
}

proptest! {
    #[test]
    fn round_trips_arbitrary_values(v in arb_amf3()) {
        let bytes = enc(&v);
        let mut input = &bytes[..];
        prop_assert_eq!(Amf3Decoder::new(64).decode(&mut input), Ok(v));
        prop_assert!(input.is_empty());
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut input = &bytes[..];
        if Amf3Decoder::new(8).decode(&mut input).is_ok() {
            prop_assert!(input.len() < bytes.len());
        }
    }
}
