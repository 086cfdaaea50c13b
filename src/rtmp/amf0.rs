//! AMF0 values: decode from a byte slice (bounded nesting), encode into a `BytesMut`.
//! Values are owned: commands and metadata are the cold path; media payloads never go
//! through AMF.
//!
//! Decoding is strict about structure (every object ends with the object-end marker, every
//! length is honoured) and lenient where real encoders are known to be sloppy: the element
//! count of an ECMA array is advisory (we read until the object end), and invalid UTF-8 in
//! strings is replaced rather than rejected, so one bad byte in a `connect` never fails it.
//!
//! ```
//! use bytes::BytesMut;
//! use rtmp_edge::rtmp::amf0::{self, Amf0Value};
//!
//! let cmd = Amf0Value::object([("app", Amf0Value::string("live"))]);
//! let mut out = BytesMut::new();
//! amf0::encode(&cmd, &mut out);
//! let mut input = &out[..];
//! let back = amf0::decode(&mut input, 8).unwrap();
//! assert!(input.is_empty());
//! assert_eq!(back.get("app").and_then(Amf0Value::as_str), Some("live"));
//! ```

use bytes::{BufMut, BytesMut};

use super::amf3::{self, Amf3Decoder, Amf3Value};

/// Why AMF data could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmfError {
    #[error("AMF data ends in the middle of a value")]
    Truncated,
    #[error("unknown AMF{version} type marker 0x{marker:02x}")]
    UnknownMarker { version: u8, marker: u8 },
    #[error("AMF nesting deeper than {limit}")]
    TooDeep { limit: usize },
    #[error("AMF reference {index} points to nothing")]
    BadReference { index: u32 },
    #[error("AMF value too large: {what}")]
    TooLarge { what: &'static str },
    /// An AMF3 object whose traits are externalizable: its body is in a class-specific
    /// format we cannot parse, so nothing after it can be decoded either.
    #[error("AMF3 object of externalizable class {class_name:?} cannot be decoded")]
    Externalizable { class_name: String },
}

/// An AMF0 value. Objects keep their keys in wire order.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    /// Reference to an earlier complex value by index (kept unresolved).
    Reference(u16),
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    Date {
        millis: f64,
        timezone: i16,
    },
    LongString(String),
    Unsupported,
    XmlDocument(String),
    TypedObject {
        class_name: String,
        properties: Vec<(String, Amf0Value)>,
    },
    /// AVM+ switch (marker 0x11): the next value is AMF3.
    Avmplus(Amf3Value),
}

/// AMF0 type markers (AMF0 specification, section 2.1).
mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
    pub const UNSUPPORTED: u8 = 0x0D;
    pub const XML_DOCUMENT: u8 = 0x0F;
    pub const TYPED_OBJECT: u8 = 0x10;
    pub const AVMPLUS: u8 = 0x11;
}

impl Amf0Value {
    /// A String value.
    pub fn string(s: impl Into<String>) -> Self {
        Amf0Value::String(s.into())
    }

    /// An anonymous Object with `properties` in iteration order.
    pub fn object<K: Into<String>>(properties: impl IntoIterator<Item = (K, Amf0Value)>) -> Self {
        Amf0Value::Object(properties.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// An ECMA array (associative array, as in `onMetaData`) with `properties` in order.
    pub fn ecma_array<K: Into<String>>(
        properties: impl IntoIterator<Item = (K, Amf0Value)>,
    ) -> Self {
        Amf0Value::EcmaArray(properties.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The properties of an object, ECMA array or typed object, in wire order.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(p)
            | Amf0Value::EcmaArray(p)
            | Amf0Value::TypedObject { properties: p, .. } => Some(p),
            _ => None,
        }
    }

    /// Property `key` of an object, ECMA array or typed object.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The string of a String or LongString (or AMF3 string behind a switch).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) => Some(s),
            Amf0Value::Avmplus(v) => v.as_str(),
            _ => None,
        }
    }

    /// The number of a Number (or AMF3 integer/double behind a switch).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            Amf0Value::Avmplus(v) => v.as_f64(),
            _ => None,
        }
    }

    /// The value of a Boolean (or AMF3 true/false behind a switch).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            Amf0Value::Avmplus(v) => v.as_bool(),
            _ => None,
        }
    }

    /// Whether this is Null or Undefined (in AMF0 or behind a switch).
    pub fn is_null_or_undefined(&self) -> bool {
        matches!(
            self,
            Amf0Value::Null
                | Amf0Value::Undefined
                | Amf0Value::Avmplus(Amf3Value::Null | Amf3Value::Undefined)
        )
    }
}

impl From<f64> for Amf0Value {
    fn from(n: f64) -> Self {
        Amf0Value::Number(n)
    }
}

impl From<bool> for Amf0Value {
    fn from(b: bool) -> Self {
        Amf0Value::Boolean(b)
    }
}

impl From<&str> for Amf0Value {
    fn from(s: &str) -> Self {
        Amf0Value::String(s.to_owned())
    }
}

impl From<String> for Amf0Value {
    fn from(s: String) -> Self {
        Amf0Value::String(s)
    }
}

/// Decodes one value from the front of `buf`, advancing it past what was read.
///
/// `max_depth` bounds nesting: it is the number of containers (objects, arrays, typed
/// objects, AMF3 arrays and objects behind an AVM+ switch) that may enclose each other, so
/// `0` accepts only scalars. On error `buf` is left where it was. `Truncated` means the
/// input ended inside the value: a caller holding a whole message should treat it as
/// malformed.
pub fn decode(buf: &mut &[u8], max_depth: usize) -> Result<Amf0Value, AmfError> {
    let mut cursor = *buf;
    let value = Decoder { limit: max_depth }.value(&mut cursor, 0)?;
    *buf = cursor;
    Ok(value)
}

/// Decodes values until `buf` is empty.
pub fn decode_all(buf: &[u8], max_depth: usize) -> Result<Vec<Amf0Value>, AmfError> {
    let mut cursor = buf;
    let mut values = Vec::new();
    while !cursor.is_empty() {
        values.push(decode(&mut cursor, max_depth)?);
    }
    Ok(values)
}

/// Appends the encoding of `value` to `out`.
///
/// A String longer than 65535 bytes is written with the long-string marker (so it decodes
/// as a LongString). Object keys and class names longer than 65535 bytes cannot be
/// represented in AMF0 and are cut at the last character boundary within that length.
pub fn encode(value: &Amf0Value, out: &mut BytesMut) {
    match value {
        Amf0Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*n);
        }
        Amf0Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Amf0Value::String(s) if s.len() <= usize::from(u16::MAX) => {
            out.put_u8(marker::STRING);
            put_short_str(s, out);
        }
        Amf0Value::String(s) | Amf0Value::LongString(s) => {
            out.put_u8(marker::LONG_STRING);
            put_long_str(s, out);
        }
        Amf0Value::Object(props) => {
            out.put_u8(marker::OBJECT);
            put_properties(props, out);
        }
        Amf0Value::Null => out.put_u8(marker::NULL),
        Amf0Value::Undefined => out.put_u8(marker::UNDEFINED),
        Amf0Value::Reference(index) => {
            out.put_u8(marker::REFERENCE);
            out.put_u16(*index);
        }
        Amf0Value::EcmaArray(props) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
            put_properties(props, out);
        }
        Amf0Value::StrictArray(items) => {
            out.put_u8(marker::STRICT_ARRAY);
            // A count must match the items that follow: write at most u32::MAX of them.
            let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
            out.put_u32(count);
            for item in items.iter().take(count as usize) {
                encode(item, out);
            }
        }
        Amf0Value::Date { millis, timezone } => {
            out.put_u8(marker::DATE);
            out.put_f64(*millis);
            out.put_i16(*timezone);
        }
        Amf0Value::Unsupported => out.put_u8(marker::UNSUPPORTED),
        Amf0Value::XmlDocument(s) => {
            out.put_u8(marker::XML_DOCUMENT);
            put_long_str(s, out);
        }
        Amf0Value::TypedObject {
            class_name,
            properties,
        } => {
            out.put_u8(marker::TYPED_OBJECT);
            put_short_str(class_name, out);
            put_properties(properties, out);
        }
        Amf0Value::Avmplus(v) => {
            out.put_u8(marker::AVMPLUS);
            amf3::encode(v, out);
        }
    }
}

/// Writes a UTF-8 string with a u16 length, cut to fit.
fn put_short_str(s: &str, out: &mut BytesMut) {
    let s = truncate_at_char_boundary(s, usize::from(u16::MAX));
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

/// Writes a UTF-8 string with a u32 length, cut to fit.
fn put_long_str(s: &str, out: &mut BytesMut) {
    let s = truncate_at_char_boundary(s, u32::MAX as usize);
    out.put_u32(s.len() as u32);
    out.put_slice(s.as_bytes());
}

/// Writes object properties followed by the object end (empty key, 0x09).
fn put_properties(props: &[(String, Amf0Value)], out: &mut BytesMut) {
    for (key, value) in props {
        put_short_str(key, out);
        encode(value, out);
    }
    out.put_u16(0);
    out.put_u8(marker::OBJECT_END);
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(super) fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// ---- byte readers shared with amf3 ----

/// Takes `n` bytes off the front of `buf`.
pub(super) fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], AmfError> {
    if buf.len() < n {
        return Err(AmfError::Truncated);
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

/// Takes a fixed-size array off the front of `buf`.
pub(super) fn take_array<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], AmfError> {
    let bytes = take(buf, N)?;
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    Ok(out)
}

pub(super) fn read_u8(buf: &mut &[u8]) -> Result<u8, AmfError> {
    Ok(take_array::<1>(buf)?[0])
}

pub(super) fn read_f64(buf: &mut &[u8]) -> Result<f64, AmfError> {
    Ok(f64::from_be_bytes(take_array(buf)?))
}

fn read_u16(buf: &mut &[u8]) -> Result<u16, AmfError> {
    Ok(u16::from_be_bytes(take_array(buf)?))
}

fn read_u32(buf: &mut &[u8]) -> Result<u32, AmfError> {
    Ok(u32::from_be_bytes(take_array(buf)?))
}

/// Decodes `len` bytes as UTF-8, replacing invalid sequences with U+FFFD.
pub(super) fn read_utf8(buf: &mut &[u8], len: usize) -> Result<String, AmfError> {
    Ok(String::from_utf8_lossy(take(buf, len)?).into_owned())
}

/// The AMF0 decoder: only the nesting limit is state; the depth travels with the recursion.
struct Decoder {
    limit: usize,
}

impl Decoder {
    /// Decodes one value at nesting `depth` (the number of enclosing containers).
    fn value(&self, buf: &mut &[u8], depth: usize) -> Result<Amf0Value, AmfError> {
        let m = read_u8(buf)?;
        Ok(match m {
            marker::NUMBER => Amf0Value::Number(read_f64(buf)?),
            marker::BOOLEAN => Amf0Value::Boolean(read_u8(buf)? != 0),
            marker::STRING => {
                let len = read_u16(buf)?;
                Amf0Value::String(read_utf8(buf, usize::from(len))?)
            }
            marker::OBJECT => Amf0Value::Object(self.properties(buf, self.enter(depth)?)?),
            marker::NULL => Amf0Value::Null,
            marker::UNDEFINED => Amf0Value::Undefined,
            marker::REFERENCE => Amf0Value::Reference(read_u16(buf)?),
            marker::ECMA_ARRAY => {
                // The count is advisory: encoders are known to write 0 or a wrong number.
                let _count = read_u32(buf)?;
                Amf0Value::EcmaArray(self.properties(buf, self.enter(depth)?)?)
            }
            marker::STRICT_ARRAY => {
                let inner = self.enter(depth)?;
                let count = read_u32(buf)? as usize;
                // Every value takes at least one byte: a larger count cannot be satisfied.
                if count > buf.len() {
                    return Err(AmfError::Truncated);
                }
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(buf, inner)?);
                }
                Amf0Value::StrictArray(items)
            }
            marker::DATE => {
                let millis = read_f64(buf)?;
                let timezone = i16::from_be_bytes(take_array(buf)?);
                Amf0Value::Date { millis, timezone }
            }
            marker::LONG_STRING => {
                let len = read_u32(buf)? as usize;
                Amf0Value::LongString(read_utf8(buf, len)?)
            }
            marker::UNSUPPORTED => Amf0Value::Unsupported,
            marker::XML_DOCUMENT => {
                let len = read_u32(buf)? as usize;
                Amf0Value::XmlDocument(read_utf8(buf, len)?)
            }
            marker::TYPED_OBJECT => {
                let len = read_u16(buf)?;
                let class_name = read_utf8(buf, usize::from(len))?;
                let properties = self.properties(buf, self.enter(depth)?)?;
                Amf0Value::TypedObject {
                    class_name,
                    properties,
                }
            }
            marker::AVMPLUS => {
                let mut amf3 = Amf3Decoder::nested(self.limit, depth);
                Amf0Value::Avmplus(amf3.decode(buf)?)
            }
            // 0x04 MovieClip and 0x0E RecordSet are reserved, 0x09 only ends an object.
            other => {
                return Err(AmfError::UnknownMarker {
                    version: 0,
                    marker: other,
                })
            }
        })
    }

    /// The depth inside a container opened at `depth`, if the limit allows it.
    fn enter(&self, depth: usize) -> Result<usize, AmfError> {
        if depth >= self.limit {
            return Err(AmfError::TooDeep { limit: self.limit });
        }
        Ok(depth + 1)
    }

    /// Reads `key value` pairs up to the object end (an empty key followed by 0x09).
    ///
    /// An empty key followed by any other marker is a property named "" (legal AMF0).
    fn properties(
        &self,
        buf: &mut &[u8],
        depth: usize,
    ) -> Result<Vec<(String, Amf0Value)>, AmfError> {
        let mut props = Vec::new();
        loop {
            let len = read_u16(buf)?;
            if len == 0 && buf.first() == Some(&marker::OBJECT_END) {
                *buf = &buf[1..];
                return Ok(props);
            }
            let key = read_utf8(buf, usize::from(len))?;
            let value = self.value(buf, depth)?;
            props.push((key, value));
        }
    }
}

#[cfg(test)]
mod tests {
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
            0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, b'a', 0x05, 0x00, 0x01, b'b', 0x06, 0x00,
            0x00, 0x09,
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
}
