//! AMF3 values, as sent by clients using objectEncoding 3: U29 integers, doubles, strings,
//! objects with traits, arrays, with string/object/trait reference tables.

use bytes::BytesMut;

use super::amf0::AmfError;

/// An AMF3 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf3Value {
    Undefined,
    Null,
    Boolean(bool),
    Integer(i32),
    Double(f64),
    String(String),
    XmlDocument(String),
    Date(f64),
    Array {
        associative: Vec<(String, Amf3Value)>,
        dense: Vec<Amf3Value>,
    },
    Object {
        class_name: Option<String>,
        sealed: Vec<(String, Amf3Value)>,
        dynamic: Vec<(String, Amf3Value)>,
    },
    Xml(String),
    ByteArray(Vec<u8>),
}

/// Decodes AMF3 values, keeping the reference tables of one AMF3 stream.
pub struct Amf3Decoder {
    _private: (),
}

impl Amf3Decoder {
    /// A decoder with empty reference tables.
    pub fn new(max_depth: usize) -> Self {
        let _ = max_depth;
        todo!()
    }

    /// Decodes one value from the front of `buf`, advancing it.
    pub fn decode(&mut self, buf: &mut &[u8]) -> Result<Amf3Value, AmfError> {
        let _ = buf;
        todo!()
    }
}

/// Appends the encoding of `value` to `out` (no references emitted).
pub fn encode(value: &Amf3Value, out: &mut BytesMut) {
    let _ = (value, out);
    todo!()
}
