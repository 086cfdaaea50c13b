//! AMF0 values: decode from a byte slice (bounded nesting), encode into a `BytesMut`.
//! Values are owned: commands and metadata are the cold path; media payloads never go
//! through AMF.

use bytes::BytesMut;

use super::amf3::Amf3Value;

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

impl Amf0Value {
    /// Property `key` of an object, ECMA array or typed object.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        let _ = key;
        todo!()
    }

    /// The string of a String or LongString (or AMF3 string behind a switch).
    pub fn as_str(&self) -> Option<&str> {
        todo!()
    }

    /// The number of a Number (or AMF3 integer/double behind a switch).
    pub fn as_f64(&self) -> Option<f64> {
        todo!()
    }
}

/// Decodes one value from the front of `buf`, advancing it past what was read.
pub fn decode(buf: &mut &[u8], max_depth: usize) -> Result<Amf0Value, AmfError> {
    let _ = (buf, max_depth);
    todo!()
}

/// Decodes values until `buf` is empty.
pub fn decode_all(buf: &[u8], max_depth: usize) -> Result<Vec<Amf0Value>, AmfError> {
    let _ = (buf, max_depth);
    todo!()
}

/// Appends the encoding of `value` to `out`.
pub fn encode(value: &Amf0Value, out: &mut BytesMut) {
    let _ = (value, out);
    todo!()
}
