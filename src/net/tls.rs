//! RTMPS: TLS (rustls, ring provider) between a connection's socket and its RTMP bytes.
//!
//! The plain path stays as it is: a connection either has a [`rustls::Connection`] or not,
//! and the worker branches on that once per read or write pass, never per message.
//!
//! - Reads: ciphertext goes from the socket into rustls (`read_tls`), is decrypted
//!   (`process_new_packets`) and the plaintext is appended to the connection's read buffer,
//!   which the RTMP session reads as from a plain socket.
//! - Writes: the output queue's shared `Bytes` are handed to rustls as slices
//!   (`writer().write_vectored`: the one copy, encrypting into TLS records), and the records
//!   go out with `write_tls` (itself vectored). Backpressure is kept: the queue is only
//!   drawn from once rustls has written every record it holds, so at most one buffer limit
//!   of ciphertext waits beyond a blocked socket and the rest stays in the `OutputQueue`,
//!   where the slow-player policy drops and times it out as for plain RTMP.

use std::fs;
use std::io::{self, IoSlice, Read, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::io::{ReadOutcome, WriteOutcome};
use crate::fanout::OutputQueue;

/// Most slices handed to rustls at once (as for a plain writev).
const MAX_IOVECS: usize = 256;
/// Most ciphertext (and pre-handshake plaintext) rustls holds for one connection: it takes
/// no more from the output queue until this has gone to the socket.
const TLS_BUFFER_LIMIT: usize = 64 * 1024;

/// Why a certificate, key or CA file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: no PEM {what} found")]
    NoPem { path: String, what: &'static str },
    #[error("{path}: invalid PEM: {reason}")]
    BadPem { path: String, reason: String },
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("certificate {cert} with key {key}: {reason}")]
    Refused {
        cert: String,
        key: String,
        reason: String,
    },
}

/// Why a TLS read pass failed.
#[derive(Debug)]
pub enum TlsReadError {
    /// The socket failed.
    Io(io::Error),
    /// The peer broke TLS (or is not speaking it, like a plain RTMP client on the TLS port).
    Tls(rustls::Error),
}

/// The crypto provider every config is built with: ring (Rust + asm, builds with no system
/// packages). rustls deprecates it for lacking post-quantum key exchange; aws-lc-rs has it
/// but needs cmake and a C toolchain to build. RTMP ingest has no such requirement yet.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_file(path: &str) -> Result<Vec<u8>, TlsFileError> {
    fs::read(Path::new(path)).map_err(|source| TlsFileError::Unreadable {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in the PEM file `path` (at least one).
pub fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsFileError::BadPem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsFileError::NoPem {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// The private key in the PEM file `path` (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let pem = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsFileError::NoPem {
            path: path.to_owned(),
            what: "private key",
        },
        e => TlsFileError::BadPem {
            path: path.to_owned(),
            reason: e.to_string(),
        },
    })
}

/// The server side of `[rtmps]`: the certificate chain in `cert` with the key in `key`.
pub fn server_config(cert: &str, key: &str) -> Result<Arc<rustls::ServerConfig>, TlsFileError> {
    let chain = load_certs(cert)?;
    let private = load_key(key)?;
    let refused = |reason: String| TlsFileError::Refused {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| refused(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The client side (relay upstreams): certificates are verified against the CA
/// certificates in `ca_file` when set, else against the system roots (the Mozilla set
/// compiled in by webpki-roots, so no OS certificate store is needed).
pub fn client_config(ca_file: &str) -> Result<Arc<rustls::ClientConfig>, TlsFileError> {
    let mut roots = rustls::RootCertStore::empty();
    if ca_file.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        for cert in load_certs(ca_file)? {
            roots.add(cert).map_err(|e| TlsFileError::BadPem {
                path: ca_file.to_owned(),
                reason: e.to_string(),
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFileError::BadPem {
            path: ca_file.to_owned(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A server-side TLS connection for an accepted socket.
pub fn accept(config: &Arc<rustls::ServerConfig>) -> Result<rustls::Connection, rustls::Error> {
    let mut conn = rustls::ServerConnection::new(config.clone())?;
    conn.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
    Ok(rustls::Connection::Server(conn))
}

/// A client-side TLS connection to `host` (its SNI name and the name its certificate must
/// carry; an IP literal is checked against the certificate's IP addresses).
pub fn connect(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
) -> Result<rustls::Connection, rustls::Error> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| rustls::Error::General(format!("bad server name {host:?}: {e}")))?;
    let mut conn = rustls::ClientConnection::new(config.clone(), name)?;
    conn.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
    Ok(rustls::Connection::Client(conn))
}

/// [`read_some`](super::read_some) through TLS: reads ciphertext until WouldBlock, EOF or
/// `budget` bytes (of ciphertext), decrypting as it goes and appending the plaintext to `buf`.
/// A peer's close_notify or EOF ends the pass as `Closed`. On a TLS error, whatever alert
/// rustls queued is sent (once, best effort) before the error is returned.
pub fn read_tls_some(
    stream: &mut (impl Read + Write),
    tls: &mut rustls::Connection,
    scratch: &mut [u8],
    buf: &mut BytesMut,
    budget: usize,
) -> Result<ReadOutcome, TlsReadError> {
    let mut total = 0;
    loop {
        if total >= budget {
            return Ok(ReadOutcome::Budget { bytes: total });
        }
        let eof = match tls.read_tls(stream) {
            Ok(0) => true,
            Ok(n) => {
                total += n;
                false
            }
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Drained { bytes: total }),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(TlsReadError::Io(e)),
            },
        };
        let state = match tls.process_new_packets() {
            Ok(state) => state,
            Err(e) => {
                let _ = tls.write_tls(stream); // the alert, if rustls queued one
                return Err(TlsReadError::Tls(e));
            }
        };
        let mut closed = eof || state.peer_has_closed();
        // Everything decrypted goes to the session now, so rustls's plaintext buffer never
        // fills (it refuses to read more once it holds 16 KiB).
        loop {
            match tls.reader().read(scratch) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => buf.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // A TCP EOF without close_notify: the peer is gone all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    closed = true;
                    break;
                }
                Err(e) => return Err(TlsReadError::Io(e)),
            }
        }
        if closed {
            return Ok(ReadOutcome::Closed { bytes: total });
        }
    }
}

/// [`write_queue`](super::write_queue) through TLS: writes rustls's pending records, then
/// encrypts more of the queue, until the queue is empty, the socket would block, or
/// `budget` bytes of the queue were taken. The queue is drawn from only while rustls holds
/// no unwritten records, so a blocked socket leaves the media in the queue (bounded, with
/// its drop policy), not in rustls. `bytes` counts plaintext taken from the queue.
///
/// `Waiting` means the handshake is not done and rustls will take no more plaintext until
/// it is: the next read that moves the handshake on schedules the connection again.
pub fn write_tls_queue(
    stream: &mut impl Write,
    tls: &mut rustls::Connection,
    queue: &mut OutputQueue,
    budget: usize,
) -> io::Result<WriteOutcome> {
    let mut total = 0;
    loop {
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => return Ok(WriteOutcome::Blocked { bytes: total }),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(e),
                },
            }
        }
        if queue.is_empty() {
            return Ok(WriteOutcome::Flushed { bytes: total });
        }
        if total >= budget {
            return Ok(WriteOutcome::Budget { bytes: total });
        }
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let n = queue.fill_slices(&mut slices);
        let taken = tls.writer().write_vectored(&slices[..n])?;
        if taken == 0 {
            return Ok(WriteOutcome::Waiting { bytes: total });
        }
        queue.consume(taken);
        total += taken;
    }
}

/// Sends close_notify and whatever records are pending, once, without waiting: a clean end
/// for a peer still reading, nothing more for one that is gone.
pub fn close_notify(stream: &mut impl Write, tls: &mut rustls::Connection) {
    tls.send_close_notify();
    while tls.wants_write() {
        if tls.write_tls(stream).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_certificate_file_is_named_in_the_error() {
        let err = server_config("/nonexistent/cert.pem", "/nonexistent/key.pem").unwrap_err();
        assert!(
            matches!(err, TlsFileError::Unreadable { ref path, .. } if path == "/nonexistent/cert.pem")
        );
    }

    #[test]
    fn a_file_without_pem_blocks_is_refused() {
        let dir = std::env::temp_dir().join(format!("rtmp-edge-tls-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.pem");
        fs::write(&path, "not a certificate\n").unwrap();
        let path = path.to_str().unwrap();
        assert!(matches!(
            load_certs(path),
            Err(TlsFileError::NoPem {
                what: "certificate",
                ..
            })
        ));
        assert!(matches!(
            load_key(path),
            Err(TlsFileError::NoPem {
                what: "private key",
                ..
            })
        ));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_client_config_trusts_the_system_roots_without_a_ca_file() {
        assert!(client_config("").is_ok());
    }
}
