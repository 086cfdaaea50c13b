//! RTMPS for rtmp-load: a `rtmps://` URL makes its connections speak TLS (rustls, ring).
//! The server's certificate is NOT verified: this is a benchmark client for servers on
//! loopback with self-signed certificates, never a client to trust with anything.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use mio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

/// Accepts any certificate (benchmarks only: see the module doc).
#[derive(Debug)]
struct AcceptAny(Vec<SignatureScheme>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

/// The one client config of a run (rustls shares session state through it).
// ring: the provider the server uses too (see src/net/tls.rs for why not aws-lc-rs).
#[allow(deprecated)]
pub fn insecure_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(schemes)))
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS client connection to `host` (the SNI name, or an IP address).
pub fn connect(config: &Arc<ClientConfig>, host: &str) -> Result<ClientConnection, String> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("tls name: {e}"))?;
    ClientConnection::new(config.clone(), name).map_err(|e| format!("tls: {e}"))
}

/// How one TLS read went.
pub enum TlsRead {
    /// Plaintext bytes appended (possibly 0: handshake records only).
    Data(usize),
    WouldBlock,
    /// The server closed (TCP EOF or close_notify).
    Closed,
}

/// Reads once from the socket into rustls, decrypts, and appends every plaintext byte to
/// `rbuf`.
pub fn read(
    sock: &mut TcpStream,
    tls: &mut ClientConnection,
    scratch: &mut [u8],
    rbuf: &mut BytesMut,
) -> Result<TlsRead, String> {
    match tls.read_tls(sock) {
        Ok(0) => return Ok(TlsRead::Closed),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(TlsRead::WouldBlock),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(TlsRead::Data(0)),
        Err(e) => return Err(format!("read: {e}")),
    }
    tls.process_new_packets().map_err(|e| format!("tls: {e}"))?;
    let mut total = 0;
    loop {
        match tls.reader().read(scratch) {
            Ok(0) => return Ok(TlsRead::Closed),
            Ok(n) => {
                rbuf.extend_from_slice(&scratch[..n]);
                total += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(TlsRead::Data(total)),
            Err(e) => return Err(format!("tls read: {e}")),
        }
    }
}

/// Writes rustls's records, then encrypts more of `wq` (from offset `woff` of its front)
/// while the socket takes them; returns the plaintext bytes taken from `wq`.
pub fn write(
    sock: &mut TcpStream,
    tls: &mut ClientConnection,
    wq: &mut std::collections::VecDeque<Bytes>,
    woff: &mut usize,
    max_iovecs: usize,
) -> Result<usize, String> {
    let mut taken = 0;
    loop {
        while tls.wants_write() {
            match tls.write_tls(sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(taken),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        if wq.is_empty() {
            return Ok(taken);
        }
        let iov: Vec<IoSlice> = wq
            .iter()
            .take(max_iovecs)
            .enumerate()
            .map(|(i, b)| IoSlice::new(if i == 0 { &b[*woff..] } else { &b[..] }))
            .collect();
        let mut n = tls
            .writer()
            .write_vectored(&iov)
            .map_err(|e| format!("tls write: {e}"))?;
        if n == 0 {
            return Ok(taken); // handshaking: rustls takes more once it is done
        }
        taken += n;
        while n > 0 {
            let front_left = wq[0].len() - *woff;
            if n >= front_left {
                n -= front_left;
                wq.pop_front();
                *woff = 0;
            } else {
                *woff += n;
                n = 0;
            }
        }
    }
}
