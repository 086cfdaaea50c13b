//! Authorisation of publishers and players, in three stages, none of them blocking a worker:
//!
//! ```text
//!  publish/play request ──▶ IP rules ──▶ signed URL ──▶ webhook? ──▶ allowed
//!   (RTMP, HTTP-FLV,          (in the loop: Policy::check)   │  cached answer: at once
//!    HLS/DASH playlist)                                      │  else: held; a pool thread
//!                                                            ▼  POSTs, the answer comes back
//!                                                   denied (typed Denial)  over the bus
//! ```
//!
//! - [`cidr`]: CIDR blocks and matching (IPv4, IPv6, IPv4-mapped clients).
//! - [`sign`]: signed URLs (`?exp=…&sig=…[&kid=…]`, HMAC-SHA256, constant-time compare).
//! - [`Policy`]: the `[auth]` configuration compiled per worker; sans-IO (the Unix time comes
//!   in as an argument).
//! - [`webhook`]: the hook pool (threads, blocking HTTP/1.1 over std::net), its answer cache
//!   and the sharing of identical requests in flight; [`Viewers`]: HLS/DASH allowances.
//!
//! The worker side (holding a session while its hook is asked, answering clients) is
//! `shard/auth.rs`. Secrets, signatures and query strings never reach a log line: a
//! [`Denial`] names the rule broken, never the token.

pub mod cidr;
mod policy;
pub mod sign;
mod viewers;
pub mod webhook;

pub use cidr::Cidr;
pub use policy::Policy;
pub use viewers::Viewers;

use std::fmt;

/// What a client asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Publish,
    Play,
}

impl Role {
    /// `publish` or `play`: the word signed and sent to hooks.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Publish => "publish",
            Role::Play => "play",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which stage refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Ip,
    Signature,
    Webhook,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Ip => "ip rules",
            Stage::Signature => "signed url",
            Stage::Webhook => "webhook",
        })
    }
}

/// Why a publish or play was refused: the rule broken, never the secret or the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("client address matches a deny rule")]
    IpDenied,
    #[error("client address matches no allow rule")]
    IpNotAllowed,
    #[error("no signature (exp and sig) in the query")]
    SignatureMissing,
    #[error("exp or sig is malformed")]
    SignatureMalformed,
    #[error("unknown signing key {kid:?}")]
    UnknownKey { kid: String },
    #[error("signature does not match")]
    SignatureInvalid,
    #[error("signature expired at {exp}")]
    SignatureExpired { exp: u64 },
    #[error("webhook answered {status}")]
    HookRefused { status: u16 },
    #[error("webhook not answered within {ms} ms")]
    HookTimeout { ms: u64 },
    #[error("webhook failed: {error}")]
    HookFailed { error: String },
}

impl Denial {
    /// The stage that refused.
    pub fn stage(&self) -> Stage {
        match self {
            Denial::IpDenied | Denial::IpNotAllowed => Stage::Ip,
            Denial::SignatureMissing
            | Denial::SignatureMalformed
            | Denial::UnknownKey { .. }
            | Denial::SignatureInvalid
            | Denial::SignatureExpired { .. } => Stage::Signature,
            Denial::HookRefused { .. } | Denial::HookTimeout { .. } | Denial::HookFailed { .. } => {
                Stage::Webhook
            }
        }
    }

    /// The HTTP answer: 401 when a (valid, current) signature would let the client in, 403
    /// when it is refused whatever it presents.
    pub fn http_status(&self) -> (u16, &'static str) {
        match self.stage() {
            Stage::Signature => (401, "Unauthorized"),
            Stage::Ip | Stage::Webhook => (403, "Forbidden"),
        }
    }
}

/// The Unix time in seconds (signed URL expiry), read by the worker, never inside `auth`'s
/// checks.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
