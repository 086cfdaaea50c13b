//! AMF0 values: decode from a byte slice (bounded nesting), encode into a `BytesMut`.
//! Values are owned: commands and metadata are the cold path; media payloads never go
//! through AMF.
//!
//! Decoding is strict about structure (every object ends with the object-end marker, every
//! length is honoured) and lenient where real encoders are known to be sloppy: the element
//! count of an ECMA array is advisory (we read until the object end), and invalid UTF-8 in
//! strings is replaced rather than rejected, so one bad byte in a `connect` never fails it.
//! What a peer can make us hold is bounded: nesting by `max_depth`, and decoded size by
//! [`DEFAULT_BUDGET`] per [`decode`] call (AMF3 values behind AVM+ switches included).
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

/// Decoded-size budget of one [`decode`] call, in approximate bytes of memory: every
/// value and string, including AMF3 values behind AVM+ switches. A byte on the wire can
/// become a whole [`Amf0Value`] in memory; this keeps a 16 MB message from becoming a
/// gigabyte. Commands and metadata are a few kilobytes.
pub const DEFAULT_BUDGET: usize = amf3::DEFAULT_BUDGET;

/// Charge for one decoded value, on top of the heap bytes it owns.
const VALUE_COST: usize = std::mem::size_of::<Amf0Value>();

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
    let mut decoder = Decoder {
        limit: max_depth,
        budget: DEFAULT_BUDGET,
    };
    let value = decoder.value(&mut cursor, 0)?;
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

/// The AMF0 decoder of one value; the depth travels with the recursion.
struct Decoder {
    limit: usize,
    /// What is left of the decoded-size budget, shared with every AVM+ switch inside the
    /// value (each switch starts fresh reference tables, but must not start a fresh budget).
    budget: usize,
}

impl Decoder {
    /// Decodes one value at nesting `depth` (the number of enclosing containers).
    fn value(&mut self, buf: &mut &[u8], depth: usize) -> Result<Amf0Value, AmfError> {
        self.charge(VALUE_COST)?;
        let m = read_u8(buf)?;
        Ok(match m {
            marker::NUMBER => Amf0Value::Number(read_f64(buf)?),
            marker::BOOLEAN => Amf0Value::Boolean(read_u8(buf)? != 0),
            marker::STRING => {
                let len = read_u16(buf)?;
                Amf0Value::String(self.utf8(buf, usize::from(len))?)
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
                Amf0Value::LongString(self.utf8(buf, len)?)
            }
            marker::UNSUPPORTED => Amf0Value::Unsupported,
            marker::XML_DOCUMENT => {
                let len = read_u32(buf)? as usize;
                Amf0Value::XmlDocument(self.utf8(buf, len)?)
            }
            marker::TYPED_OBJECT => {
                let len = read_u16(buf)?;
                let class_name = self.utf8(buf, usize::from(len))?;
                let properties = self.properties(buf, self.enter(depth)?)?;
                Amf0Value::TypedObject {
                    class_name,
                    properties,
                }
            }
            marker::AVMPLUS => {
                let mut amf3 = Amf3Decoder::nested(self.limit, depth, self.budget);
                let value = amf3.decode(buf)?;
                self.budget = self.budget.saturating_sub(amf3.produced());
                Amf0Value::Avmplus(value)
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

    /// Spends `n` bytes of the decoded-size budget.
    fn charge(&mut self, n: usize) -> Result<(), AmfError> {
        self.budget = self.budget.checked_sub(n).ok_or(AmfError::TooLarge {
            what: "AMF0 decoded size budget",
        })?;
        Ok(())
    }

    /// Reads a string of `len` bytes, charging it to the budget.
    fn utf8(&mut self, buf: &mut &[u8], len: usize) -> Result<String, AmfError> {
        let s = read_utf8(buf, len)?;
        self.charge(s.len())?;
        Ok(s)
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
        &mut self,
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
            let key = self.utf8(buf, usize::from(len))?;
            let value = self.value(buf, depth)?;
            props.push((key, value));
        }
    }
}

#[cfg(test)]
#[path = "amf0_tests.rs"]
mod tests;
