//! Unit tests for AMF0 decoding and encoding: every marker, references, caps and errors,
//! round trips.

use super::*;
use proptest::prelude::*;

fn enc(v: &Amf0Value) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(v, &mut out);
    out.to_vec()
}

fn dec(bytes: &[u8]) -> Result<Amf0Value, AmfError> {
    let mut input = bytes;
    let v = decode(&mut input, 32)?;
    assert!(input.is_empty(), "trailing bytes after {v:?}");
    Ok(v)
}

/// `connect` as ffmpeg sends it, assembled byte by byte from the AMF0 specification.
fn ffmpeg_connect_bytes() -> Vec<u8> {
    let mut b = Vec::new();
    // "connect"
    b.extend_from_slice(&[0x02, 0x00, 0x07]);
    b.extend_from_slice(b"connect");
    // transaction id 1.0
    b.extend_from_slice(&[0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
    // command object
    b.push(0x03);
    let prop_str = |b: &mut Vec<u8>, k: &str, v: &str| {
        b.extend_from_slice(&(k.len() as u16).to_be_bytes());
        b.extend_from_slice(k.as_bytes());
        b.push(0x02);
        b.extend_from_slice(&(v.len() as u16).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
    };
    prop_str(&mut b, "app", "live");
    prop_str(&mut b, "type", "nonprivate");
    prop_str(&mut b, "flashVer", "FMLE/3.0 (compatible; Lavf61.7.100)");
    prop_str(&mut b, "tcUrl", "rtmp://127.0.0.1:1935/live");
    b.extend_from_slice(&[0x00, 0x00, 0x09]);
    b
}

#[test]
fn decodes_an_ffmpeg_connect_command_assembled_from_the_spec() {
    let values = decode_all(&ffmpeg_connect_bytes(), 32).unwrap();
    assert_eq!(
        values,
        vec![
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([
                ("app", Amf0Value::string("live")),
                ("type", Amf0Value::string("nonprivate")),
                (
                    "flashVer",
                    Amf0Value::string("FMLE/3.0 (compatible; Lavf61.7.100)")
                ),
                ("tcUrl", Amf0Value::string("rtmp://127.0.0.1:1935/live")),
            ]),
        ]
    );
    assert_eq!(
        values[2].get("app").and_then(Amf0Value::as_str),
        Some("live")
    );
    assert_eq!(values[1].as_f64(), Some(1.0));
}

#[test]
fn encodes_the_ffmpeg_connect_command_to_the_same_bytes() {
    let values = decode_all(&ffmpeg_connect_bytes(), 32).unwrap();
    let mut out = BytesMut::new();
    for v in &values {
        encode(v, &mut out);
    }
    assert_eq!(&out[..], &ffmpeg_connect_bytes()[..]);
}

#[test]
fn decodes_every_scalar_marker_from_known_bytes() {
    let cases: Vec<(Vec<u8>, Amf0Value)> = vec![
        (
            vec![0x00, 0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18],
            Amf0Value::Number(std::f64::consts::PI),
        ),
        (vec![0x01, 0x00], Amf0Value::Boolean(false)),
        (vec![0x01, 0x01], Amf0Value::Boolean(true)),
        (vec![0x02, 0x00, 0x02, b'h', b'i'], Amf0Value::string("hi")),
        (vec![0x05], Amf0Value::Null),
        (vec![0x06], Amf0Value::Undefined),
        (vec![0x07, 0x01, 0x02], Amf0Value::Reference(0x0102)),
        (
            vec![
                0x0B, 0x42, 0x77, 0x48, 0x76, 0xE8, 0x00, 0x00, 0x00, 0xFF, 0xC4,
            ],
            Amf0Value::Date {
                millis: 1_600_000_000_000.0,
                timezone: -60,
            },
        ),
        (
            vec![0x0C, 0x00, 0x00, 0x00, 0x03, b'a', b'b', b'c'],
            Amf0Value::LongString("abc".into()),
        ),
        (vec![0x0D], Amf0Value::Unsupported),
        (
            vec![0x0F, 0x00, 0x00, 0x00, 0x04, b'<', b'a', b'/', b'>'],
            Amf0Value::XmlDocument("<a/>".into()),
        ),
        (
            vec![0x11, 0x04, 0x7F],
            Amf0Value::Avmplus(Amf3Value::Integer(127)),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(dec(&bytes), Ok(expected.clone()), "{bytes:02x?}");
        assert_eq!(enc(&expected), bytes, "{expected:?}");
    }
}

#[test]
fn decodes_containers_from_known_bytes() {
    let cases: Vec<(Vec<u8>, Amf0Value)> = vec![
        (
            vec![0x03, 0x00, 0x01, b'a', 0x05, 0x00, 0x00, 0x09],
            Amf0Value::object([("a", Amf0Value::Null)]),
        ),
        (
            vec![
                0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, b'd', 0x01, 0x01, 0x00, 0x00, 0x09,
            ],
            Amf0Value::ecma_array([("d", Amf0Value::Boolean(true))]),
        ),
        (
            vec![0x0A, 0x00, 0x00, 0x00, 0x02, 0x05, 0x06],
            Amf0Value::StrictArray(vec![Amf0Value::Null, Amf0Value::Undefined]),
        ),
        (
            vec![
                0x10, 0x00, 0x01, b'C', 0x00, 0x01, b'x', 0x06, 0x00, 0x00, 0x09,
            ],
            Amf0Value::TypedObject {
                class_name: "C".into(),
                properties: vec![("x".into(), Amf0Value::Undefined)],
            },
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(dec(&bytes), Ok(expected.clone()), "{bytes:02x?}");
        assert_eq!(enc(&expected), bytes, "{expected:?}");
    }
}

#[test]
fn ignores_a_wrong_ecma_array_count() {
    // Count says 0 (as some encoders write), but two properties follow.
    let bytes = [
        0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, b'a', 0x05, 0x00, 0x01, b'b', 0x06, 0x00, 0x00,
        0x09,
    ];
    assert_eq!(
        dec(&bytes),
        Ok(Amf0Value::ecma_array([
            ("a", Amf0Value::Null),
            ("b", Amf0Value::Undefined)
        ]))
    );
    // Count says 7, only one follows.
    let bytes = [
        0x08, 0x00, 0x00, 0x00, 0x07, 0x00, 0x01, b'a', 0x05, 0x00, 0x00, 0x09,
    ];
    assert_eq!(
        dec(&bytes),
        Ok(Amf0Value::ecma_array([("a", Amf0Value::Null)]))
    );
}

#[test]
fn reads_an_empty_key_before_a_value_as_a_property_named_empty() {
    let bytes = [0x03, 0x00, 0x00, 0x05, 0x00, 0x00, 0x09];
    assert_eq!(dec(&bytes), Ok(Amf0Value::object([("", Amf0Value::Null)])));
}

#[test]
fn rejects_an_object_without_its_end_marker() {
    let bytes = [0x03, 0x00, 0x01, b'a', 0x05];
    assert_eq!(dec(&bytes), Err(AmfError::Truncated));
}

#[test]
fn rejects_reserved_and_unknown_markers() {
    for m in [0x04u8, 0x09, 0x0E, 0x12, 0xFF] {
        assert_eq!(
            dec(&[m]),
            Err(AmfError::UnknownMarker {
                version: 0,
                marker: m
            })
        );
    }
}

#[test]
fn decodes_invalid_utf8_lossily() {
    let bytes = [0x02, 0x00, 0x03, b'a', 0xFF, b'b'];
    assert_eq!(dec(&bytes), Ok(Amf0Value::string("a\u{FFFD}b")));
    let key = [0x03, 0x00, 0x01, 0xC3, 0x05, 0x00, 0x00, 0x09];
    assert_eq!(
        dec(&key),
        Ok(Amf0Value::object([("\u{FFFD}", Amf0Value::Null)]))
    );
}

#[test]
fn encodes_a_string_over_65535_bytes_as_a_long_string() {
    let long = "x".repeat(70_000);
    let bytes = enc(&Amf0Value::String(long.clone()));
    assert_eq!(bytes[0], 0x0C);
    assert_eq!(&bytes[1..5], &70_000u32.to_be_bytes());
    assert_eq!(dec(&bytes), Ok(Amf0Value::LongString(long)));
    // Exactly 65535 still fits a short string.
    let edge = "y".repeat(65_535);
    assert_eq!(enc(&Amf0Value::String(edge.clone()))[0], 0x02);
    assert_eq!(
        dec(&enc(&Amf0Value::String(edge.clone()))),
        Ok(Amf0Value::String(edge))
    );
}

#[test]
fn cuts_an_overlong_key_at_a_character_boundary() {
    let key = "é".repeat(40_000); // 80000 bytes
    let bytes = enc(&Amf0Value::object([(key.as_str(), Amf0Value::Null)]));
    let back = dec(&bytes).unwrap();
    let (k, _) = &back.properties().unwrap()[0];
    assert_eq!(k.len(), 65_534);
    assert!(key.starts_with(k.as_str()));
}

fn nested_objects(levels: usize) -> Amf0Value {
    let mut v = Amf0Value::Null;
    for _ in 0..levels {
        v = Amf0Value::object([("a", v)]);
    }
    v
}

#[test]
fn accepts_nesting_up_to_the_limit_and_rejects_one_more() {
    let bytes = enc(&nested_objects(5));
    assert!(decode(&mut &bytes[..], 5).is_ok());
    assert_eq!(
        decode(&mut &bytes[..], 4),
        Err(AmfError::TooDeep { limit: 4 })
    );
    assert_eq!(
        decode(&mut &enc(&Amf0Value::StrictArray(vec![]))[..], 0),
        Err(AmfError::TooDeep { limit: 0 })
    );
    assert_eq!(
        decode(&mut &enc(&Amf0Value::Null)[..], 0),
        Ok(Amf0Value::Null)
    );
}

#[test]
fn counts_amf3_nesting_behind_a_switch_against_the_same_limit() {
    let amf3 = Amf3Value::Array {
        associative: vec![],
        dense: vec![Amf3Value::Array {
            associative: vec![],
            dense: vec![],
        }],
    };
    // Two AMF0 levels + two AMF3 levels.
    let v = Amf0Value::object([("a", Amf0Value::StrictArray(vec![Amf0Value::Avmplus(amf3)]))]);
    let bytes = enc(&v);
    assert_eq!(decode(&mut &bytes[..], 4), Ok(v));
    assert_eq!(
        decode(&mut &bytes[..], 3),
        Err(AmfError::TooDeep { limit: 3 })
    );
}

#[test]
fn survives_a_deeply_nested_hostile_input_without_recursing_past_the_limit() {
    // 100k nested strict arrays of one element each.
    let mut bytes = Vec::new();
    for _ in 0..100_000 {
        bytes.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
    }
    bytes.push(0x05);
    assert_eq!(
        decode(&mut &bytes[..], 32),
        Err(AmfError::TooDeep { limit: 32 })
    );
}

#[test]
fn shares_one_amf3_budget_across_every_switch_in_a_value() {
    // One AVM+ value: [ [null x 1000], [ref 1 x 50] ], megabytes decoded from 1.1 KB.
    let mut amf3 = vec![0x11, 0x09, 0x05, 0x01, 0x09, 0x8F, 0x51, 0x01];
    amf3.extend(std::iter::repeat(0x01).take(1000));
    amf3.extend_from_slice(&[0x09, 0x65, 0x01]);
    for _ in 0..50 {
        amf3.extend_from_slice(&[0x09, 0x02]);
    }
    assert!(dec(&amf3).is_ok(), "one switch fits the budget");
    let mut bytes = vec![0x0A, 0, 0, 0, 5];
    for _ in 0..5 {
        bytes.extend_from_slice(&amf3);
    }
    assert_eq!(
        dec(&bytes),
        Err(AmfError::TooLarge {
            what: "AMF3 decoded size budget"
        })
    );
}

#[test]
fn stops_a_huge_array_of_one_byte_values_with_too_large() {
    // 4M nulls: 4 MB on the wire, hundreds of MB as values.
    let count = 4 << 20;
    let mut bytes = vec![0x0A];
    bytes.extend_from_slice(&(count as u32).to_be_bytes());
    bytes.resize(5 + count, 0x05);
    assert_eq!(
        dec(&bytes),
        Err(AmfError::TooLarge {
            what: "AMF0 decoded size budget"
        })
    );
}

#[test]
fn rejects_a_strict_array_count_larger_than_the_input_without_allocating_it() {
    let bytes = [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05];
    assert_eq!(dec(&bytes), Err(AmfError::Truncated));
}

fn complex_value() -> Amf0Value {
    Amf0Value::object([
        ("s", Amf0Value::string("héllo")),
        ("n", Amf0Value::Number(-2.5)),
        (
            "e",
            Amf0Value::ecma_array([
                ("b", Amf0Value::Boolean(true)),
                (
                    "arr",
                    Amf0Value::StrictArray(vec![
                        Amf0Value::LongString("long".into()),
                        Amf0Value::Date {
                            millis: 1.0,
                            timezone: 0,
                        },
                        Amf0Value::Reference(3),
                    ]),
                ),
            ]),
        ),
        (
            "t",
            Amf0Value::TypedObject {
                class_name: "Cls".into(),
                properties: vec![("x".into(), Amf0Value::XmlDocument("<x/>".into()))],
            },
        ),
        (
            "amf3",
            Amf0Value::Avmplus(Amf3Value::Object {
                class_name: None,
                sealed: vec![],
                dynamic: vec![("k".into(), Amf3Value::String("v".into()))],
            }),
        ),
    ])
}

#[test]
fn reports_truncated_at_every_cut_of_a_complex_value_and_leaves_the_input_alone() {
    let bytes = enc(&complex_value());
    assert_eq!(dec(&bytes), Ok(complex_value()));
    for cut in 0..bytes.len() {
        let mut input = &bytes[..cut];
        assert_eq!(
            decode(&mut input, 32),
            Err(AmfError::Truncated),
            "cut {cut}"
        );
        assert_eq!(input.len(), cut, "input advanced on error at cut {cut}");
    }
}

#[test]
fn decode_advances_past_exactly_one_value() {
    let mut bytes = enc(&Amf0Value::Number(3.0));
    bytes.extend_from_slice(&enc(&Amf0Value::Null));
    let mut input = &bytes[..];
    assert_eq!(decode(&mut input, 1), Ok(Amf0Value::Number(3.0)));
    assert_eq!(input, &[0x05]);
}

#[test]
fn accessors_see_through_an_avmplus_switch() {
    assert_eq!(
        Amf0Value::Avmplus(Amf3Value::Integer(7)).as_f64(),
        Some(7.0)
    );
    assert_eq!(
        Amf0Value::Avmplus(Amf3Value::String("s".into())).as_str(),
        Some("s")
    );
    assert_eq!(
        Amf0Value::Avmplus(Amf3Value::Boolean(true)).as_bool(),
        Some(true)
    );
    assert!(Amf0Value::Avmplus(Amf3Value::Null).is_null_or_undefined());
    assert_eq!(Amf0Value::Null.as_str(), None);
    assert_eq!(Amf0Value::Number(1.0).get("x"), None);
}

// ---- property tests ----

fn finite_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("not NaN", |f| !f.is_nan()),
        Just(0.0),
        Just(f64::INFINITY),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-zA-Z0-9_]{1,8}", ".{0,6}"]
}

fn props(
    inner: impl Strategy<Value = Amf0Value> + Clone,
) -> impl Strategy<Value = Vec<(String, Amf0Value)>> {
    prop::collection::vec((key(), inner), 0..5)
}

pub(crate) fn arb_amf0() -> impl Strategy<Value = Amf0Value> {
    let leaf = prop_oneof![
        finite_f64().prop_map(Amf0Value::Number),
        any::<bool>().prop_map(Amf0Value::Boolean),
        ".{0,12}".prop_map(Amf0Value::String),
        Just(Amf0Value::Null),
        Just(Amf0Value::Undefined),
        any::<u16>().prop_map(Amf0Value::Reference),
        (finite_f64(), any::<i16>())
            .prop_map(|(millis, timezone)| Amf0Value::Date { millis, timezone }),
        ".{0,12}".prop_map(Amf0Value::LongString),
        Just(Amf0Value::Unsupported),
        ".{0,12}".prop_map(Amf0Value::XmlDocument),
        crate::rtmp::amf3::tests::arb_amf3().prop_map(Amf0Value::Avmplus),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            props(inner.clone()).prop_map(Amf0Value::Object),
            props(inner.clone()).prop_map(Amf0Value::EcmaArray),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Amf0Value::StrictArray),
            (".{0,8}", props(inner)).prop_map(|(class_name, properties)| {
                Amf0Value::TypedObject {
                    class_name,
                    properties,
                }
            }),
        ]
    })
}

proptest! {
    #[test]
    fn round_trips_arbitrary_values(v in arb_amf0()) {
        let bytes = enc(&v);
        let mut input = &bytes[..];
        let back = decode(&mut input, 64);
        prop_assert_eq!(back, Ok(v));
        prop_assert!(input.is_empty());
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut input = &bytes[..];
        if decode(&mut input, 8).is_ok() {
            prop_assert!(input.len() < bytes.len());
        }
    }
}
