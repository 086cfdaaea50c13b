//! The edge relay's policy, sans-IO: which origin a stream is pulled from and how origins
//! fail and come back. Nothing here opens a socket, reads the clock or draws random numbers:
//! every input takes `now`. Not wired into the worker yet.
//!
//! # Pieces
//!
//! - [`OriginUrl`], [`PushUrl`], [`StreamUrl`]: parsed once from the configuration; an error
//!   ([`UrlError`]) names the rule broken.
//! - [`rendezvous_order`]: the origins of a stream in the order it tries them, by
//!   highest-random-weight hashing of its [`stream_key`] with a fixed hash, so every edge
//!   pulls a stream from the same origin.
//! - [`Origins`]: the origins with their health (up, or down until a backoff ends);
//!   [`Origins::next_origin`] picks the origin a stream tries next. One per worker.

mod health;
mod rendezvous;
mod url;

pub use health::{Backoff, FailureKind, NextOrigin, OriginHealth, Origins};
pub use rendezvous::{rendezvous_order, stream_key, weight};
pub use url::{Endpoint, OriginUrl, PushUrl, Scheme, StreamUrl, UrlError};
