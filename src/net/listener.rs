//! Listening sockets shared across workers with SO_REUSEPORT.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Options applied to every accepted socket.
#[derive(Debug, Clone, Copy)]
pub struct SocketOptions {
    pub nodelay: bool,
    /// 0 keeps the kernel default.
    pub recv_buffer: usize,
    /// 0 keeps the kernel default.
    pub send_buffer: usize,
}

impl SocketOptions {
    /// Applies the options to an accepted stream.
    pub fn apply(&self, stream: &mio::net::TcpStream) -> io::Result<()> {
        stream.set_nodelay(self.nodelay)?;
        let sock = socket2::SockRef::from(stream);
        if self.recv_buffer > 0 {
            sock.set_recv_buffer_size(self.recv_buffer)?;
        }
        if self.send_buffer > 0 {
            sock.set_send_buffer_size(self.send_buffer)?;
        }
        Ok(())
    }
}

/// A non-blocking listener on `addr` with SO_REUSEPORT, so each worker can have its own and
/// the kernel spreads connections across them. IPv6 listeners are IPv6-only, so `0.0.0.0`
/// and `[::]` can both be bound on one port.
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Fails with `AddrInUse`, naming `addr`, when another socket already listens on it.
///
/// SO_REUSEPORT lets any socket of the same user with the option bind a port already served,
/// so a second rtmp-edge started on the same ports would bind in silence and the kernel would
/// split clients between the two processes (players missing publishers). A plain bind (no
/// SO_REUSEPORT; SO_REUSEADDR, so connections in TIME_WAIT from a previous run do not count)
/// fails while any socket listens there; it is released at once. A port of 0 (ephemeral) is
/// never taken. Other bind errors are left for the real bind to report.
pub fn ensure_not_served(addr: SocketAddr) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    match socket.bind(&addr.into()) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "{addr} is already in use: another rtmp-edge (or another program) listens on it; \
                 stop it or listen elsewhere"
            ),
        )),
        _ => Ok(()),
    }
}

/// Binds `workers` listeners on each address. A port of 0 is resolved by the first bind and
/// reused for the rest. An address that cannot be bound at all (e.g. IPv6 disabled) is
/// skipped with a warning as long as another one works; one that another socket already
/// listens on fails the whole bind ([`ensure_not_served`]).
pub fn bind_all(
    addrs: &[SocketAddr],
    workers: usize,
) -> io::Result<Vec<Vec<mio::net::TcpListener>>> {
    let mut per_worker: Vec<Vec<mio::net::TcpListener>> =
        (0..workers).map(|_| Vec::new()).collect();
    let mut last_err = None;
    for &addr in addrs {
        ensure_not_served(addr)?;
        let first = match bind_reuseport(addr) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot listen");
                last_err = Some(e);
                continue;
            }
        };
        let bound = first.local_addr()?;
        per_worker[0].push(first);
        for listeners in per_worker.iter_mut().skip(1) {
            listeners.push(bind_reuseport(bound)?);
        }
    }
    if per_worker[0].is_empty() {
        return Err(last_err.unwrap_or_else(|| io::Error::other("no listen address configured")));
    }
    Ok(per_worker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_another_listener_serves_is_refused_naming_it() {
        let taken = bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind_all(&[addr], 2).expect_err("refused");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
        drop(taken);
        // Free again: the probe held nothing.
        let listeners = bind_all(&[addr], 2).unwrap();
        assert_eq!(listeners.len(), 2);
    }

    #[test]
    fn ephemeral_ports_are_never_refused() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let a = bind_all(&[addr], 2).unwrap();
        let b = bind_all(&[addr], 2).unwrap();
        assert_ne!(a[0][0].local_addr().unwrap(), b[0][0].local_addr().unwrap());
    }
}
