//! NetConnection/NetStream commands (AMF0 type 20, AMF3 type 17) and the onStatus/_result
//! builders the sessions send.
//!
//! A command is `name, transaction id, command object, args...`. Type 17 carries one leading
//! format byte (0x00) and then AMF0 values, any of which may switch to AMF3 with the AVM+
//! marker; [`Command::decode`] turns such AMF3 values into their AMF0 equivalents so the
//! sessions only ever look at [`Amf0Value`]s. Answers are always sent as AMF0 (type 20), as
//! nginx-rtmp and FMS do.
//!
//! ```
//! use bytes::BytesMut;
//! use rtmp_edge::rtmp::command::{self, Command};
//!
//! let status = command::on_status("status", "NetStream.Publish.Start", "live/key is now published");
//! assert_eq!(status.name, "onStatus");
//! assert_eq!(status.transaction_id, 0.0);
//! ```

use bytes::BytesMut;

use super::amf0::{self, Amf0Value, AmfError};
use super::amf3::Amf3Value;
use super::message::type_id;

/// `fmsVer` announced in the connect `_result` (what ffmpeg/librtmp/OBS expect to see).
pub const FMS_VERSION: &str = "FMS/3,0,1,123";
/// `capabilities` announced in the connect `_result`.
pub const FMS_CAPABILITIES: f64 = 31.0;
/// E-RTMP v2 `capsEx` bit: the client can reconnect when asked
/// (`NetConnection.Connect.ReconnectRequest`).
pub const CAPS_EX_RECONNECT: u32 = 0x01;
/// The onStatus code asking an E-RTMP client to reconnect.
pub const RECONNECT_REQUEST: &str = "NetConnection.Connect.ReconnectRequest";

/// Why a command message could not be understood. Connection-fatal: the peer sent bytes no
/// RTMP implementation produces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("command payload is not valid AMF: {0}")]
    Amf(#[from] AmfError),
    #[error("command message is empty")]
    Empty,
    #[error("command name is not a string")]
    NameNotString,
    #[error("message type {0} is not a command (17 or 20)")]
    NotCommand(u8),
}

/// One NetConnection or NetStream command, decoded or about to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// `connect`, `createStream`, `publish`, `_result`, `onStatus`, ...
    pub name: String,
    /// 0 for calls that expect no answer.
    pub transaction_id: f64,
    /// The command object (`Null` when the peer sent none).
    pub object: Amf0Value,
    /// Optional arguments after the command object.
    pub args: Vec<Amf0Value>,
}

impl Command {
    /// A command with the given parts.
    pub fn new(name: &str, transaction_id: f64, object: Amf0Value, args: Vec<Amf0Value>) -> Self {
        Self {
            name: name.to_owned(),
            transaction_id,
            object,
            args,
        }
    }

    /// Decodes the payload of a command message of type 20 (AMF0) or 17 (AMF3: one format
    /// byte, then AMF0 values that may switch to AMF3). Nesting is bounded by `max_depth`.
    pub fn decode(type_id: u8, payload: &[u8], max_depth: usize) -> Result<Self, CommandError> {
        let body = match type_id {
            type_id::COMMAND_AMF0 => payload,
            type_id::COMMAND_AMF3 => payload.get(1..).unwrap_or(&[]),
            other => return Err(CommandError::NotCommand(other)),
        };
        let mut values = decode_values(body, max_depth)?.into_iter();
        let name = match values.next() {
            None => return Err(CommandError::Empty),
            Some(Amf0Value::String(s)) | Some(Amf0Value::LongString(s)) => s,
            Some(_) => return Err(CommandError::NameNotString),
        };
        let transaction_id = match values.next() {
            Some(Amf0Value::Number(n)) if n.is_finite() => n,
            _ => 0.0,
        };
        let object = values.next().unwrap_or(Amf0Value::Null);
        Ok(Self {
            name,
            transaction_id,
            object,
            args: values.collect(),
        })
    }

    /// Appends the AMF0 encoding (a type 20 payload) to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        amf0::encode(&Amf0Value::String(self.name.clone()), out);
        amf0::encode(&Amf0Value::Number(self.transaction_id), out);
        amf0::encode(&self.object, out);
        for arg in &self.args {
            amf0::encode(arg, out);
        }
    }

    /// Argument `index` (after the command object), if present.
    pub fn arg(&self, index: usize) -> Option<&Amf0Value> {
        self.args.get(index)
    }

    /// Argument `index` as a string, if it is one.
    pub fn arg_str(&self, index: usize) -> Option<&str> {
        self.args.get(index)?.as_str()
    }

    /// Argument `index` as a number, if it is one.
    pub fn arg_f64(&self, index: usize) -> Option<f64> {
        self.args.get(index)?.as_f64()
    }

    /// Argument `index` as a boolean (numbers count: non-zero is true), if it is one.
    pub fn arg_bool(&self, index: usize) -> Option<bool> {
        match self.args.get(index)? {
            Amf0Value::Boolean(b) => Some(*b),
            Amf0Value::Number(n) => Some(*n != 0.0),
            _ => None,
        }
    }

    /// The first argument that is an object, for `_result`/`_error`/`onStatus` info objects.
    pub fn info(&self) -> Option<&Amf0Value> {
        self.args.iter().find(|v| v.properties().is_some())
    }
}

/// Decodes a sequence of AMF0 values (with AVM+ switches turned into AMF0) until `buf` ends.
pub fn decode_values(mut buf: &[u8], max_depth: usize) -> Result<Vec<Amf0Value>, AmfError> {
    let mut values = Vec::new();
    while !buf.is_empty() {
        // A command has a handful of values; cap the count so a peer cannot make us build a
        // huge vector out of one-byte nulls.
        if values.len() >= MAX_VALUES {
            return Err(AmfError::TooLarge {
                what: "command argument count",
            });
        }
        let value = amf0::decode(&mut buf, max_depth)?;
        values.push(from_amf3_switch(value));
    }
    Ok(values)
}

/// Most top-level values accepted in one command or data message.
pub const MAX_VALUES: usize = 64;

/// Property `key` of an object-like value, as a string ([`Amf0Value::get`] + `as_str`).
pub fn property_str<'a>(value: &'a Amf0Value, key: &str) -> Option<&'a str> {
    value.get(key)?.as_str()
}

/// Property `key` of an object-like value, as a number.
pub fn property_f64(value: &Amf0Value, key: &str) -> Option<f64> {
    value.get(key)?.as_f64()
}

/// Replaces an AVM+ switch by the equivalent AMF0 value (recursively).
fn from_amf3_switch(value: Amf0Value) -> Amf0Value {
    match value {
        Amf0Value::Avmplus(v) => amf3_to_amf0(v),
        Amf0Value::Object(p) => Amf0Value::Object(map_props(p)),
        Amf0Value::EcmaArray(p) => Amf0Value::EcmaArray(map_props(p)),
        Amf0Value::StrictArray(items) => {
            Amf0Value::StrictArray(items.into_iter().map(from_amf3_switch).collect())
        }
        Amf0Value::TypedObject {
            class_name,
            properties,
        } => Amf0Value::TypedObject {
            class_name,
            properties: map_props(properties),
        },
        other => other,
    }
}

fn map_props(props: Vec<(String, Amf0Value)>) -> Vec<(String, Amf0Value)> {
    props
        .into_iter()
        .map(|(k, v)| (k, from_amf3_switch(v)))
        .collect()
}

/// The AMF0 value closest to an AMF3 value (objects keep sealed then dynamic members).
pub fn amf3_to_amf0(value: Amf3Value) -> Amf0Value {
    match value {
        Amf3Value::Undefined => Amf0Value::Undefined,
        Amf3Value::Null => Amf0Value::Null,
        Amf3Value::Boolean(b) => Amf0Value::Boolean(b),
        Amf3Value::Integer(i) => Amf0Value::Number(f64::from(i)),
        Amf3Value::Double(d) => Amf0Value::Number(d),
        Amf3Value::String(s) => Amf0Value::String(s),
        Amf3Value::XmlDocument(s) | Amf3Value::Xml(s) => Amf0Value::XmlDocument(s),
        Amf3Value::Date(millis) => Amf0Value::Date {
            millis,
            timezone: 0,
        },
        Amf3Value::Array { associative, dense } => {
            if associative.is_empty() {
                Amf0Value::StrictArray(dense.into_iter().map(amf3_to_amf0).collect())
            } else {
                Amf0Value::EcmaArray(
                    associative
                        .into_iter()
                        .map(|(k, v)| (k, amf3_to_amf0(v)))
                        .collect(),
                )
            }
        }
        Amf3Value::Object {
            sealed, dynamic, ..
        } => Amf0Value::Object(
            sealed
                .into_iter()
                .chain(dynamic)
                .map(|(k, v)| (k, amf3_to_amf0(v)))
                .collect(),
        ),
        Amf3Value::ByteArray(_) => Amf0Value::Unsupported,
    }
}

/// The `{level, code, description}` object of onStatus, `_result` and `_error`.
pub fn status_object(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
        ("description", Amf0Value::string(description)),
    ])
}

/// `onStatus(0, null, {level, code, description})`, sent on a NetStream.
pub fn on_status(level: &str, code: &str, description: &str) -> Command {
    Command::new(
        "onStatus",
        0.0,
        Amf0Value::Null,
        vec![status_object(level, code, description)],
    )
}

/// `_result(transaction_id, object, args...)`.
pub fn result(transaction_id: f64, object: Amf0Value, args: Vec<Amf0Value>) -> Command {
    Command::new("_result", transaction_id, object, args)
}

/// `_error(transaction_id, null, {level: error, code, description})`.
pub fn error(transaction_id: f64, code: &str, description: &str) -> Command {
    Command::new(
        "_error",
        transaction_id,
        Amf0Value::Null,
        vec![status_object("error", code, description)],
    )
}

/// The `_result` of an accepted `connect`: properties `{fmsVer, capabilities}`, information
/// `{level: status, code: NetConnection.Connect.Success, description, objectEncoding}`.
pub fn connect_success(transaction_id: f64, object_encoding: f64) -> Command {
    result(
        transaction_id,
        Amf0Value::object([
            ("fmsVer", Amf0Value::string(FMS_VERSION)),
            ("capabilities", Amf0Value::Number(FMS_CAPABILITIES)),
        ]),
        vec![Amf0Value::object([
            ("level", Amf0Value::string("status")),
            ("code", Amf0Value::string("NetConnection.Connect.Success")),
            ("description", Amf0Value::string("Connection succeeded.")),
            ("objectEncoding", Amf0Value::Number(object_encoding)),
        ])],
    )
}

/// The `_error` of a rejected `connect` (NetConnection.Connect.Rejected).
pub fn connect_rejected(transaction_id: f64, description: &str) -> Command {
    error(
        transaction_id,
        "NetConnection.Connect.Rejected",
        description,
    )
}

/// E-RTMP v2 `onStatus(0, null, {level: status, code: NetConnection.Connect.ReconnectRequest,
/// description, tcUrl?})`, sent on message stream 0: asks the client to reconnect, to `tc_url`
/// when given (else to where it is connected).
pub fn reconnect_request(description: &str, tc_url: Option<&str>) -> Command {
    let mut info = vec![
        ("level".to_owned(), Amf0Value::string("status")),
        ("code".to_owned(), Amf0Value::string(RECONNECT_REQUEST)),
        ("description".to_owned(), Amf0Value::string(description)),
    ];
    if let Some(url) = tc_url {
        info.push(("tcUrl".to_owned(), Amf0Value::string(url)));
    }
    Command::new(
        "onStatus",
        0.0,
        Amf0Value::Null,
        vec![Amf0Value::Object(info)],
    )
}

/// The `_error` of a `connect` sent elsewhere, as SRS and Wowza answer it:
/// NetConnection.Connect.Rejected with `ex: {code: 302, redirect: target}`.
pub fn connect_redirected(transaction_id: f64, target: &str) -> Command {
    Command::new(
        "_error",
        transaction_id,
        Amf0Value::Null,
        vec![Amf0Value::object([
            ("level", Amf0Value::string("error")),
            ("code", Amf0Value::string("NetConnection.Connect.Rejected")),
            ("description", Amf0Value::string("redirected")),
            (
                "ex",
                Amf0Value::object([
                    ("code", Amf0Value::Number(302.0)),
                    ("redirect", Amf0Value::string(target)),
                ]),
            ),
        ])],
    )
}

/// The `_error` answering a call we do not implement (NetConnection.Call.Failed).
pub fn call_failed(transaction_id: f64, name: &str) -> Command {
    error(
        transaction_id,
        "NetConnection.Call.Failed",
        &format!("unknown command {name:?}"),
    )
}

/// `onFCPublish`/`onFCUnpublish(0, null, {code, description})`, as nginx-rtmp sends them.
pub fn on_fc(name: &str, code: &str, description: &str) -> Command {
    Command::new(
        name,
        0.0,
        Amf0Value::Null,
        vec![Amf0Value::object([
            ("code", Amf0Value::string(code)),
            ("description", Amf0Value::string(description)),
        ])],
    )
}

/// Appends AMF0 `values` (a type 18 data message payload) to `out`.
pub fn encode_data(values: &[Amf0Value], out: &mut BytesMut) {
    for value in values {
        amf0::encode(value, out);
    }
}

/// `|RtmpSampleAccess(true, true)`: lets Flash players read raw audio/video samples.
pub fn sample_access() -> [Amf0Value; 3] {
    [
        Amf0Value::string("|RtmpSampleAccess"),
        Amf0Value::Boolean(true),
        Amf0Value::Boolean(true),
    ]
}

/// `onStatus({code: NetStream.Data.Start})` as a data message, sent when play starts.
pub fn data_start() -> [Amf0Value; 2] {
    [
        Amf0Value::string("onStatus"),
        Amf0Value::object([("code", Amf0Value::string("NetStream.Data.Start"))]),
    ]
}

/// The connect command a client sends (objectEncoding 0, the capabilities ffmpeg announces,
/// and the E-RTMP `capsEx` with the Reconnect bit: servers that do not know it ignore an extra
/// property, as nginx-rtmp and SRS do).
pub fn connect(transaction_id: f64, app: &str, flash_ver: &str, tc_url: &str) -> Command {
    connect_with_caps(transaction_id, app, flash_ver, tc_url, CAPS_EX_RECONNECT)
}

/// [`connect`] announcing `caps_ex` as the E-RTMP `capsEx` (no property at all when 0, as a
/// client from before E-RTMP sends it).
pub fn connect_with_caps(
    transaction_id: f64,
    app: &str,
    flash_ver: &str,
    tc_url: &str,
    caps_ex: u32,
) -> Command {
    let mut command = Command::new(
        "connect",
        transaction_id,
        Amf0Value::object([
            ("app", Amf0Value::string(app)),
            ("flashVer", Amf0Value::string(flash_ver)),
            ("tcUrl", Amf0Value::string(tc_url)),
            ("fpad", Amf0Value::Boolean(false)),
            ("capabilities", Amf0Value::Number(15.0)),
            ("audioCodecs", Amf0Value::Number(4071.0)),
            ("videoCodecs", Amf0Value::Number(252.0)),
            ("videoFunction", Amf0Value::Number(1.0)),
            ("objectEncoding", Amf0Value::Number(0.0)),
        ]),
        Vec::new(),
    );
    if let (Amf0Value::Object(properties), true) = (&mut command.object, caps_ex != 0) {
        properties.push(("capsEx".to_owned(), Amf0Value::Number(f64::from(caps_ex))));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amf3_objects_become_amf0_objects_with_sealed_then_dynamic_members() {
        let v = amf3_to_amf0(Amf3Value::Object {
            class_name: None,
            sealed: vec![("app".into(), Amf3Value::String("live".into()))],
            dynamic: vec![("objectEncoding".into(), Amf3Value::Integer(3))],
        });
        assert_eq!(property_str(&v, "app"), Some("live"));
        assert_eq!(property_f64(&v, "objectEncoding"), Some(3.0));
    }

    #[test]
    fn rejects_a_message_type_that_is_not_a_command() {
        assert_eq!(
            Command::decode(18, &[], 8),
            Err(CommandError::NotCommand(18))
        );
    }

    #[test]
    fn rejects_an_empty_amf3_command() {
        assert_eq!(
            Command::decode(type_id::COMMAND_AMF3, &[0], 8),
            Err(CommandError::Empty)
        );
    }

    #[test]
    fn rejects_a_command_whose_name_is_not_a_string() {
        // AMF0 number 1.0
        let payload = [0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            Command::decode(type_id::COMMAND_AMF0, &payload, 8),
            Err(CommandError::NameNotString)
        );
    }

    #[test]
    fn round_trips_a_command_through_amf0() {
        let cmd = connect_success(1.0, 3.0);
        let mut out = BytesMut::new();
        cmd.encode(&mut out);
        let back = Command::decode(type_id::COMMAND_AMF0, &out, 8).expect("decodes");
        assert_eq!(back, cmd);
        let info = back.info().expect("info object");
        assert_eq!(
            property_str(info, "code"),
            Some("NetConnection.Connect.Success")
        );
        assert_eq!(property_f64(info, "objectEncoding"), Some(3.0));
        assert_eq!(property_str(&back.object, "fmsVer"), Some(FMS_VERSION));
    }

    #[test]
    fn decodes_an_amf3_command_with_a_leading_format_byte() {
        let mut payload = BytesMut::from(&[0u8][..]);
        Command::new("createStream", 2.0, Amf0Value::Null, vec![]).encode(&mut payload);
        let cmd = Command::decode(type_id::COMMAND_AMF3, &payload, 8).expect("decodes");
        assert_eq!(cmd.name, "createStream");
        assert_eq!(cmd.transaction_id, 2.0);
        assert_eq!(cmd.object, Amf0Value::Null);
    }
}
