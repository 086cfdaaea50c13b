//! RTMP sessions as sans-IO state machines, server and client roles.
//!
//! Call order, for both roles:
//! 1. `handle_input(&mut buf)` with the bytes read from the socket (it consumes what it used);
//! 2. drain `poll_event()` and act on each event (answer requests with `accept_*`/`reject_*`);
//! 3. drain `poll_transmit()` and write those bytes, in order, before any media for this peer.
//!
//! Chunk stream ids are split between the session and the fan-out so that encode-once media
//! (always fmt 0) never breaks the session's header compression: see [`csid`].

pub mod client;
mod link;
pub mod payload;
pub mod server;

pub use client::{ClientConfig, ClientEvent, ClientSession};
pub use server::{ServerConfig, ServerEvent, ServerSession};

use std::borrow::Cow;
use std::fmt;

use crate::rtmp::amf0::AmfError;
use crate::rtmp::chunk::ChunkError;
use crate::rtmp::command::CommandError;
use crate::rtmp::handshake::HandshakeError;
use crate::rtmp::message::MessageError;

/// Chunk stream ids by owner.
pub mod csid {
    /// Protocol control and user control (session).
    pub const CONTROL: u32 = 2;
    /// Commands and their answers (session).
    pub const COMMAND: u32 = 3;
    /// Session-generated data messages such as |RtmpSampleAccess (session).
    pub const SESSION_DATA: u32 = 5;
    /// Shared media, encoded once per stream with fmt 0 headers only (fan-out).
    pub const VIDEO: u32 = 6;
    pub const AUDIO: u32 = 7;
    pub const DATA: u32 = 8;
}

/// How a publisher asked to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishMode {
    Live,
    Record,
    Append,
}

/// Why a session ended. Every variant is fatal for the connection and is logged as the
/// close reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("control message: {0}")]
    Message(#[from] MessageError),
    #[error("AMF: {0}")]
    Amf(#[from] AmfError),
    #[error("command: {0}")]
    Command(CommandError),
    #[error("protocol violation: more than {limit} bytes sent while a request was pending")]
    BacklogTooLarge { limit: usize },
    #[error("protocol violation: connect sent twice")]
    ConnectTwice,
    #[error("protocol violation: more than {limit} streams created")]
    TooManyStreams { limit: usize },
}

impl From<CommandError> for SessionError {
    /// AMF errors inside a command are AMF errors; the rest are command errors.
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Amf(e) => SessionError::Amf(e),
            other => SessionError::Command(other),
        }
    }
}

/// Splits `name?query` into `("name", "query")`; the query is empty when there is none.
/// Used for publish/play names, apps such as `live?token=x` and tcUrls.
pub fn split_query(name: &str) -> (&str, &str) {
    match name.split_once('?') {
        Some((n, q)) => (n, q),
        None => (name, ""),
    }
}

/// `name?query` with every query value replaced by `***` (`live?token=***&x=***`), for logs:
/// query strings carry tokens and signatures. Without a query, `name` as it is.
pub fn redact_query(name: &str) -> Cow<'_, str> {
    let (base, query) = split_query(name);
    if !name.contains('?') {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    out.push_str(base);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((key, _)) => {
                out.push_str(key);
                out.push_str("=***");
            }
            None if pair.is_empty() => {}
            None => out.push_str("***"),
        }
    }
    Cow::Owned(out)
}

/// A string from a client that may carry a secret in its query, such as the tcUrl
/// `rtmp://host/live?token=abc`. `Display` and `Debug` show it through [`redact_query`], so it
/// can be logged as it is; [`as_str`](Self::as_str) gives it in clear, for the accept/reject
/// decision only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    /// The value in clear: never log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for Sensitive {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Sensitive {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Display for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_query(&self.0))
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*redact_query(&self.0), f)
    }
}

#[cfg(test)]
mod tests {
    use super::{redact_query, split_query, Sensitive};

    #[test]
    fn splits_a_name_from_its_query() {
        assert_eq!(split_query("key?token=1&x=2"), ("key", "token=1&x=2"));
        assert_eq!(split_query("key"), ("key", ""));
        assert_eq!(split_query("?a"), ("", "a"));
    }

    #[test]
    fn redacts_every_query_value_and_keeps_the_rest() {
        assert_eq!(
            redact_query("rtmp://h:1935/live?token=abc&sig=x%3D&flag"),
            "rtmp://h:1935/live?token=***&sig=***&***"
        );
        assert_eq!(redact_query("rtmp://h/live?"), "rtmp://h/live?");
        assert_eq!(redact_query("rtmp://h/live"), "rtmp://h/live");
    }

    #[test]
    fn a_sensitive_value_prints_redacted_and_reads_in_clear() {
        let url = Sensitive::from("rtmp://h/live?token=s3cret");
        assert_eq!(url.to_string(), "rtmp://h/live?token=***");
        assert_eq!(format!("{url:?}"), "\"rtmp://h/live?token=***\"");
        assert_eq!(url.as_str(), "rtmp://h/live?token=s3cret");
    }
}
