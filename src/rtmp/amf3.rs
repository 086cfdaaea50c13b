//! AMF3 values, as sent by clients using objectEncoding 3: U29 integers, doubles, strings,
//! objects with traits, arrays, with string/object/trait reference tables.
//!
//! References are resolved by cloning the earlier value, so a hostile peer could ask for an
//! exponentially large tree in a few bytes (an array of two references to an array of two
//! references to ...). Every decoder therefore has a budget of decoded bytes (values,
//! strings and the reference tables themselves, see [`DEFAULT_BUDGET`]); exceeding it is
//! `AmfError::TooLarge`. The nesting limit applies to the tree we hand back, so a
//! reference whose value would nest deeper than the limit is `AmfError::TooDeep`.
//!
//! The encoder writes every value inline, without references, so `decode(encode(v)) == v`
//! for every value the format can represent (see [`encode`] for the few it cannot).
//!
//! ```
//! use bytes::BytesMut;
//! use rtmp_edge::rtmp::amf3::{self, Amf3Decoder, Amf3Value};
//!
//! let v = Amf3Value::Array { associative: vec![], dense: vec![Amf3Value::Integer(-5)] };
//! let mut out = BytesMut::new();
//! amf3::encode(&v, &mut out);
//! let mut input = &out[..];
//! assert_eq!(Amf3Decoder::new(8).decode(&mut input), Ok(v));
//! assert!(input.is_empty());
//! ```

use bytes::{BufMut, BytesMut};

use super::amf0::{read_f64, read_u8, read_utf8, take, truncate_at_char_boundary, AmfError};

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

impl Amf3Value {
    /// Member `key` of an object (sealed, then dynamic) or associative part of an array.
    pub fn get(&self, key: &str) -> Option<&Amf3Value> {
        fn find<'a>(pairs: &'a [(String, Amf3Value)], key: &str) -> Option<&'a Amf3Value> {
            pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
        }
        match self {
            Amf3Value::Object {
                sealed, dynamic, ..
            } => find(sealed, key).or_else(|| find(dynamic, key)),
            Amf3Value::Array { associative, .. } => find(associative, key),
            _ => None,
        }
    }

    /// The string of a String.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf3Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number of an Integer or a Double.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf3Value::Integer(i) => Some(f64::from(*i)),
            Amf3Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    /// The value of a Boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf3Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }
}

/// Default decoded-size budget of one [`Amf3Decoder`], in approximate bytes of memory
/// (values, strings, and the copies held by the reference tables). Commands and metadata
/// are a few kilobytes; this only stops reference amplification.
pub const DEFAULT_BUDGET: usize = 16 * 1024 * 1024;

/// Largest integer an AMF3 Integer can carry (29-bit signed).
pub const INTEGER_MAX: i32 = (1 << 28) - 1;
/// Smallest integer an AMF3 Integer can carry (29-bit signed).
pub const INTEGER_MIN: i32 = -(1 << 28);

/// Largest length/count a U29 header can announce (28 bits after the flag bit).
const U28_MAX: usize = (1 << 28) - 1;

/// Charge for one decoded value, on top of the heap bytes it owns.
const VALUE_COST: usize = std::mem::size_of::<Amf3Value>();

/// AMF3 type markers (AMF3 specification, section 3.1).
mod marker {
    pub const UNDEFINED: u8 = 0x00;
    pub const NULL: u8 = 0x01;
    pub const FALSE: u8 = 0x02;
    pub const TRUE: u8 = 0x03;
    pub const INTEGER: u8 = 0x04;
    pub const DOUBLE: u8 = 0x05;
    pub const STRING: u8 = 0x06;
    pub const XML_DOC: u8 = 0x07;
    pub const DATE: u8 = 0x08;
    pub const ARRAY: u8 = 0x09;
    pub const OBJECT: u8 = 0x0A;
    pub const XML: u8 = 0x0B;
    pub const BYTE_ARRAY: u8 = 0x0C;
}

/// Traits of an object class, as held by the trait reference table.
#[derive(Clone)]
struct Traits {
    class_name: Option<String>,
    sealed: Vec<String>,
    dynamic: bool,
}

/// A completed complex value in the object reference table.
struct Stored {
    value: Amf3Value,
    /// Budget charged when the value was decoded, charged again on every reference.
    weight: usize,
    /// Container nesting inside the value (0 for scalars such as Date).
    height: usize,
}

/// Decodes AMF3 values, keeping the reference tables of one AMF3 stream.
///
/// Call [`decode`](Self::decode) once per value, in stream order: later values may refer to
/// strings, objects and traits of earlier ones. After an error the tables may hold part of
/// the failed value; start a new decoder for a new stream.
pub struct Amf3Decoder {
    /// Nesting limit, as reported in `TooDeep`.
    limit: usize,
    /// Containers already open around the values of this decoder (AMF0 switch).
    base_depth: usize,
    budget: usize,
    /// Budget spent on output values (including clones of references).
    produced: usize,
    /// Budget spent on copies kept in the reference tables.
    retained: usize,
    strings: Vec<String>,
    /// `None` while the object is still being decoded (a reference to it is an error).
    objects: Vec<Option<Stored>>,
    traits: Vec<Traits>,
}

impl Amf3Decoder {
    /// A decoder with empty reference tables.
    ///
    /// `max_depth` is the number of arrays/objects that may enclose each other (`0`
    /// accepts only scalars). The budget is [`DEFAULT_BUDGET`].
    pub fn new(max_depth: usize) -> Self {
        Self::with_budget(max_depth, DEFAULT_BUDGET)
    }

    /// A decoder with empty reference tables and a decoded-size budget of `budget` bytes.
    pub fn with_budget(max_depth: usize, budget: usize) -> Self {
        Amf3Decoder {
            limit: max_depth,
            base_depth: 0,
            budget,
            produced: 0,
            retained: 0,
            strings: Vec::new(),
            objects: Vec::new(),
            traits: Vec::new(),
        }
    }

    /// A fresh decoder for the value after an AMF0 AVM+ switch found inside `depth`
    /// containers, so that both formats count against the same `limit`, with what is left
    /// of the budget of the enclosing AMF0 value.
    pub(super) fn nested(limit: usize, depth: usize, budget: usize) -> Self {
        Amf3Decoder {
            base_depth: depth,
            ..Self::with_budget(limit, budget)
        }
    }

    /// Budget spent so far on decoded values (excluding the reference tables' copies).
    pub(super) fn produced(&self) -> usize {
        self.produced
    }

    /// Decodes one value from the front of `buf`, advancing it.
    ///
    /// On error `buf` is left where it was.
    pub fn decode(&mut self, buf: &mut &[u8]) -> Result<Amf3Value, AmfError> {
        let mut cursor = *buf;
        let (value, _height) = self.value(&mut cursor, self.base_depth)?;
        *buf = cursor;
        Ok(value)
    }

    fn charge_output(&mut self, n: usize) -> Result<(), AmfError> {
        self.produced = self.produced.saturating_add(n);
        self.check_budget()
    }

    fn charge_retained(&mut self, n: usize) -> Result<(), AmfError> {
        self.retained = self.retained.saturating_add(n);
        self.check_budget()
    }

    fn check_budget(&self) -> Result<(), AmfError> {
        if self.produced.saturating_add(self.retained) > self.budget {
            return Err(AmfError::TooLarge {
                what: "AMF3 decoded size budget",
            });
        }
        Ok(())
    }

    /// The depth inside a container opened at `depth`, if the limit allows it.
    fn enter(&self, depth: usize) -> Result<usize, AmfError> {
        if depth >= self.limit {
            return Err(AmfError::TooDeep { limit: self.limit });
        }
        Ok(depth + 1)
    }

    /// Decodes one value inside `depth` containers; returns it with its own nesting height.
    fn value(&mut self, buf: &mut &[u8], depth: usize) -> Result<(Amf3Value, usize), AmfError> {
        self.charge_output(VALUE_COST)?;
        let value = match read_u8(buf)? {
            marker::UNDEFINED => Amf3Value::Undefined,
            marker::NULL => Amf3Value::Null,
            marker::FALSE => Amf3Value::Boolean(false),
            marker::TRUE => Amf3Value::Boolean(true),
            marker::INTEGER => Amf3Value::Integer(i29(read_u29(buf)?)),
            marker::DOUBLE => Amf3Value::Double(read_f64(buf)?),
            marker::STRING => Amf3Value::String(self.string(buf)?),
            marker::XML_DOC => return self.text(buf, depth, Amf3Value::XmlDocument),
            marker::XML => return self.text(buf, depth, Amf3Value::Xml),
            marker::DATE => match self.header(buf, depth)? {
                Header::Reference(v, height) => return Ok((v, height)),
                Header::Inline(_) => {
                    let v = Amf3Value::Date(read_f64(buf)?);
                    return self.store(v, VALUE_COST, 0);
                }
            },
            marker::BYTE_ARRAY => match self.header(buf, depth)? {
                Header::Reference(v, height) => return Ok((v, height)),
                Header::Inline(len) => {
                    let bytes = take(buf, len as usize)?.to_vec();
                    self.charge_output(bytes.len())?;
                    let weight = VALUE_COST + bytes.len();
                    return self.store(Amf3Value::ByteArray(bytes), weight, 0);
                }
            },
            marker::ARRAY => return self.array(buf, depth),
            marker::OBJECT => return self.object(buf, depth),
            // 0x0D..=0x11: vectors and dictionaries are not used by RTMP commands.
            other => {
                return Err(AmfError::UnknownMarker {
                    version: 3,
                    marker: other,
                })
            }
        };
        Ok((value, 0))
    }

    /// Reads a UTF-8-vr: an inline string (added to the string table unless empty) or a
    /// reference to an earlier one.
    fn string(&mut self, buf: &mut &[u8]) -> Result<String, AmfError> {
        let header = read_u29(buf)?;
        if header & 1 == 0 {
            let index = header >> 1;
            let len = match self.strings.get(index as usize) {
                Some(s) => s.len(),
                None => return Err(AmfError::BadReference { index }),
            };
            self.charge_output(len)?;
            return Ok(self.strings[index as usize].clone());
        }
        let len = (header >> 1) as usize;
        let s = read_utf8(buf, len)?;
        self.charge_output(len)?;
        if !s.is_empty() {
            self.charge_retained(len)?;
            self.strings.push(s.clone());
        }
        Ok(s)
    }

    /// Reads the U29 header of a value kept in the object table: an inline value's 28-bit
    /// payload, or the (cloned) earlier value it refers to.
    fn header(&mut self, buf: &mut &[u8], depth: usize) -> Result<Header, AmfError> {
        let header = read_u29(buf)?;
        if header & 1 == 1 {
            return Ok(Header::Inline(header >> 1));
        }
        let index = header >> 1;
        let (weight, height) = match self.objects.get(index as usize) {
            Some(Some(stored)) => (stored.weight, stored.height),
            // Unknown, or still being decoded (a cycle): cloning cannot resolve either.
            _ => return Err(AmfError::BadReference { index }),
        };
        if depth.saturating_add(height) > self.limit {
            return Err(AmfError::TooDeep { limit: self.limit });
        }
        self.charge_output(weight)?;
        match &self.objects[index as usize] {
            Some(stored) => Ok(Header::Reference(stored.value.clone(), height)),
            None => Err(AmfError::BadReference { index }),
        }
    }

    /// Adds a completed value to the object table and hands it back with its height.
    fn store(
        &mut self,
        value: Amf3Value,
        weight: usize,
        height: usize,
    ) -> Result<(Amf3Value, usize), AmfError> {
        let index = self.objects.len();
        self.objects.push(None);
        self.fill(index, value, weight, height)
    }

    /// Completes the object table slot `index` reserved when its value began.
    fn fill(
        &mut self,
        index: usize,
        value: Amf3Value,
        weight: usize,
        height: usize,
    ) -> Result<(Amf3Value, usize), AmfError> {
        self.charge_retained(weight)?;
        if let Some(slot) = self.objects.get_mut(index) {
            *slot = Some(Stored {
                value: value.clone(),
                weight,
                height,
            });
        }
        Ok((value, height))
    }

    /// XmlDocument or Xml: a UTF-8 text kept in the object table.
    fn text(
        &mut self,
        buf: &mut &[u8],
        depth: usize,
        wrap: fn(String) -> Amf3Value,
    ) -> Result<(Amf3Value, usize), AmfError> {
        match self.header(buf, depth)? {
            Header::Reference(v, height) => Ok((v, height)),
            Header::Inline(len) => {
                let s = read_utf8(buf, len as usize)?;
                self.charge_output(s.len())?;
                let weight = VALUE_COST + s.len();
                self.store(wrap(s), weight, 0)
            }
        }
    }

    /// An array: associative part (name/value pairs up to an empty name), then dense part.
    fn array(&mut self, buf: &mut &[u8], depth: usize) -> Result<(Amf3Value, usize), AmfError> {
        let dense_count = match self.header(buf, depth)? {
            Header::Reference(v, height) => return Ok((v, height)),
            Header::Inline(count) => count as usize,
        };
        let inner = self.enter(depth)?;
        let start = self.produced;
        let index = self.objects.len();
        self.objects.push(None);
        let mut height = 0;
        let mut associative = Vec::new();
        loop {
            let key = self.string(buf)?;
            if key.is_empty() {
                break;
            }
            let (value, h) = self.value(buf, inner)?;
            height = height.max(h);
            associative.push((key, value));
        }
        // Every value takes at least one byte: a larger count cannot be satisfied.
        if dense_count > buf.len() {
            return Err(AmfError::Truncated);
        }
        let mut dense = Vec::with_capacity(dense_count);
        for _ in 0..dense_count {
            let (value, h) = self.value(buf, inner)?;
            height = height.max(h);
            dense.push(value);
        }
        let weight = VALUE_COST + (self.produced - start);
        let value = Amf3Value::Array { associative, dense };
        self.fill(index, value, weight, height + 1)
    }

    /// An object: traits (inline or referenced), sealed member values, dynamic members.
    fn object(&mut self, buf: &mut &[u8], depth: usize) -> Result<(Amf3Value, usize), AmfError> {
        let flags = match self.header(buf, depth)? {
            Header::Reference(v, height) => return Ok((v, height)),
            Header::Inline(flags) => flags,
        };
        let inner = self.enter(depth)?;
        let start = self.produced;
        let index = self.objects.len();
        self.objects.push(None);
        let traits = if flags & 1 == 0 {
            let trait_index = flags >> 1;
            match self.traits.get(trait_index as usize) {
                Some(t) => t.clone(),
                None => return Err(AmfError::BadReference { index: trait_index }),
            }
        } else {
            let externalizable = flags & 0b10 != 0;
            let dynamic = flags & 0b100 != 0;
            let sealed_count = (flags >> 3) as usize;
            let class_name = self.string(buf)?;
            if externalizable {
                return Err(AmfError::Externalizable { class_name });
            }
            // Every name takes at least one byte: a larger count cannot be satisfied.
            if sealed_count > buf.len() {
                return Err(AmfError::Truncated);
            }
            let mut sealed = Vec::with_capacity(sealed_count);
            for _ in 0..sealed_count {
                sealed.push(self.string(buf)?);
            }
            let traits = Traits {
                class_name: (!class_name.is_empty()).then_some(class_name),
                sealed,
                dynamic,
            };
            let names: usize = traits.sealed.iter().map(String::len).sum();
            self.charge_retained(names)?;
            self.traits.push(traits.clone());
            traits
        };
        let mut height = 0;
        let mut sealed = Vec::with_capacity(traits.sealed.len().min(buf.len()));
        for name in traits.sealed {
            self.charge_output(name.len())?;
            let (value, h) = self.value(buf, inner)?;
            height = height.max(h);
            sealed.push((name, value));
        }
        let mut dynamic = Vec::new();
        if traits.dynamic {
            loop {
                let key = self.string(buf)?;
                if key.is_empty() {
                    break;
                }
                let (value, h) = self.value(buf, inner)?;
                height = height.max(h);
                dynamic.push((key, value));
            }
        }
        let weight = VALUE_COST + (self.produced - start);
        let value = Amf3Value::Object {
            class_name: traits.class_name,
            sealed,
            dynamic,
        };
        self.fill(index, value, weight, height + 1)
    }
}

/// The U29 header of a value kept in the object table.
enum Header {
    /// An inline value: the header's payload (length, count or trait flags).
    Inline(u32),
    /// A reference, resolved: a clone of the earlier value and its nesting height.
    Reference(Amf3Value, usize),
}

/// Sign-extends a 29-bit integer.
fn i29(v: u32) -> i32 {
    if v & 0x1000_0000 != 0 {
        (v | 0xE000_0000) as i32
    } else {
        v as i32
    }
}

/// Reads a U29: 1 to 4 bytes, 7 bits each with a continuation bit, the 4th byte all 8 bits.
fn read_u29(buf: &mut &[u8]) -> Result<u32, AmfError> {
    let mut value = 0u32;
    for _ in 0..3 {
        let b = read_u8(buf)?;
        if b & 0x80 == 0 {
            return Ok((value << 7) | u32::from(b));
        }
        value = (value << 7) | u32::from(b & 0x7F);
    }
    Ok((value << 8) | u32::from(read_u8(buf)?))
}

/// Appends the encoding of `value` to `out` (no references emitted).
///
/// What AMF3 cannot carry is adapted so the output stays well formed:
/// - an Integer outside [`INTEGER_MIN`]..=[`INTEGER_MAX`] is written as a Double;
/// - `class_name: Some("")` is written as an anonymous object (decodes as `None`);
/// - associative/dynamic members named "" are skipped (an empty name ends the list);
/// - strings, byte arrays and arrays longer than 2^28 - 1 are cut to that length.
pub fn encode(value: &Amf3Value, out: &mut BytesMut) {
    match value {
        Amf3Value::Undefined => out.put_u8(marker::UNDEFINED),
        Amf3Value::Null => out.put_u8(marker::NULL),
        Amf3Value::Boolean(false) => out.put_u8(marker::FALSE),
        Amf3Value::Boolean(true) => out.put_u8(marker::TRUE),
        Amf3Value::Integer(i) if (INTEGER_MIN..=INTEGER_MAX).contains(i) => {
            out.put_u8(marker::INTEGER);
            put_u29(out, (*i as u32) & 0x1FFF_FFFF);
        }
        Amf3Value::Integer(i) => {
            out.put_u8(marker::DOUBLE);
            out.put_f64(f64::from(*i));
        }
        Amf3Value::Double(d) => {
            out.put_u8(marker::DOUBLE);
            out.put_f64(*d);
        }
        Amf3Value::String(s) => {
            out.put_u8(marker::STRING);
            put_str(out, s);
        }
        Amf3Value::XmlDocument(s) => {
            out.put_u8(marker::XML_DOC);
            put_str(out, s);
        }
        Amf3Value::Xml(s) => {
            out.put_u8(marker::XML);
            put_str(out, s);
        }
        Amf3Value::Date(millis) => {
            out.put_u8(marker::DATE);
            put_u29(out, 1);
            out.put_f64(*millis);
        }
        Amf3Value::ByteArray(bytes) => {
            out.put_u8(marker::BYTE_ARRAY);
            let bytes = &bytes[..bytes.len().min(U28_MAX)];
            put_u29(out, ((bytes.len() as u32) << 1) | 1);
            out.put_slice(bytes);
        }
        Amf3Value::Array { associative, dense } => {
            out.put_u8(marker::ARRAY);
            let dense = &dense[..dense.len().min(U28_MAX)];
            put_u29(out, ((dense.len() as u32) << 1) | 1);
            put_members(out, associative);
            for item in dense {
                encode(item, out);
            }
        }
        Amf3Value::Object {
            class_name,
            sealed,
            dynamic,
        } => {
            out.put_u8(marker::OBJECT);
            // Inline object (bit 0), inline traits (bit 1), not externalizable (bit 2).
            let sealed = &sealed[..sealed.len().min(U28_MAX >> 3)];
            let dynamic_flag = if dynamic.is_empty() { 0 } else { 0b1000 };
            put_u29(out, ((sealed.len() as u32) << 4) | dynamic_flag | 0b0011);
            put_str(out, class_name.as_deref().unwrap_or(""));
            for (name, _) in sealed {
                put_str(out, name);
            }
            for (_, value) in sealed {
                encode(value, out);
            }
            if !dynamic.is_empty() {
                put_members(out, dynamic);
            }
        }
    }
}

/// Writes `name value` pairs (skipping empty names) and the closing empty name.
fn put_members(out: &mut BytesMut, members: &[(String, Amf3Value)]) {
    for (name, value) in members.iter().filter(|(name, _)| !name.is_empty()) {
        put_str(out, name);
        encode(value, out);
    }
    put_u29(out, 1);
}

/// Writes an inline UTF-8-vr.
fn put_str(out: &mut BytesMut, s: &str) {
    let s = truncate_at_char_boundary(s, U28_MAX);
    put_u29(out, ((s.len() as u32) << 1) | 1);
    out.put_slice(s.as_bytes());
}

/// Writes a U29 (`v` must fit 29 bits; higher bits are dropped).
fn put_u29(out: &mut BytesMut, v: u32) {
    let v = v & 0x1FFF_FFFF;
    if v < 0x80 {
        out.put_u8(v as u8);
    } else if v < 0x4000 {
        out.put_slice(&[(v >> 7) as u8 | 0x80, (v & 0x7F) as u8]);
    } else if v < 0x20_0000 {
        out.put_slice(&[
            (v >> 14) as u8 | 0x80,
            ((v >> 7) & 0x7F) as u8 | 0x80,
            (v & 0x7F) as u8,
        ]);
    } else {
        out.put_slice(&[
            (v >> 22) as u8 | 0x80,
            ((v >> 15) & 0x7F) as u8 | 0x80,
            ((v >> 8) & 0x7F) as u8 | 0x80,
            (v & 0xFF) as u8,
        ]);
    }
}

#[cfg(test)]
#[path = "amf3_tests.rs"]
pub(crate) mod tests;
