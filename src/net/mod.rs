//! The only code that calls bind/accept/read/write: SO_REUSEPORT listeners and socket IO
//! with budgets and vectored writes, and TLS (RTMPS) between the two for connections that
//! have it.

mod io;
mod listener;
pub mod tls;
mod uring;

pub use io::{read_direct, read_some, recv_into_spare, write_queue, ReadOutcome, WriteOutcome};
pub use listener::{bind_all, bind_reuseport, SocketOptions};
pub(crate) use uring::{SendRing, Sent};
