//! TLS for the API. The cluster CA is derived from the cluster key, so
//! every node that holds the key computes the same CA, byte for byte,
//! without a store round trip or a key to distribute: whoever holds the
//! cluster key can already join the cluster and read everything, so the CA
//! key is no more exposed than that. Each node makes a fresh serving key at
//! start and signs its certificate (its addresses and names) with the CA;
//! clients trust the CA alone (`shoal ca`, `--ca-file`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("making a certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("the cluster key is not 32 bytes of hex")]
    Key,
}

/// Domain separation: the CA seed is no other use of the cluster key.
const CA_SEED_CONTEXT: &[u8] = b"shoal cluster CA v1\0";
/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410), before the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// TLS handshakes in progress at once; more wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 256;
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The 32 bytes of a cluster key as libp2p holds it.
pub fn psk_bytes(psk: &libp2p::pnet::PreSharedKey) -> Option<[u8; 32]> {
    // The key file's last line is the key in hex; libp2p has no getter.
    let text = psk.to_key_file();
    let hex_line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    hex::decode(hex_line.trim()).ok()?.try_into().ok()
}

/// The cluster CA: its certificate (what clients trust) and key.
pub struct ClusterCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl ClusterCa {
    /// Derives the CA from the cluster key's 32 bytes.
    pub fn derive(cluster_key: &[u8; 32]) -> Result<ClusterCa, TlsError> {
        let mut h = Sha256::new();
        h.update(CA_SEED_CONTEXT);
        h.update(cluster_key);
        let seed = h.finalize();
        let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
        pkcs8.extend_from_slice(&seed);
        let key = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs8),
            &rcgen::PKCS_ED25519,
        )?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "shoal");
        dn.push(DnType::CommonName, "shoal cluster CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // Fixed, so every node derives the same certificate.
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2125, 1, 1);
        params.serial_number = Some(SerialNumber::from_slice(&[1]));
        let cert = params.self_signed(&key)?;
        Ok(ClusterCa { cert, key })
    }

    /// Derives the CA from a cluster key as libp2p holds it.
    pub fn from_psk(psk: &libp2p::pnet::PreSharedKey) -> Result<ClusterCa, TlsError> {
        ClusterCa::derive(&psk_bytes(psk).ok_or(TlsError::Key)?)
    }

    /// The CA certificate in PEM, for clients' `--ca-file`.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A serving certificate for this node, valid for a year from now, for
    /// `names` (DNS names) and `ips`, with a fresh P-256 key.
    pub fn serving_config(
        &self,
        names: &[String],
        ips: &[IpAddr],
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "shoal");
        dn.push(
            DnType::CommonName,
            names.first().map(String::as_str).unwrap_or("shoal node"),
        );
        params.distinguished_name = dn;
        params.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        for n in names {
            if let Ok(n) = n.clone().try_into() {
                params.subject_alt_names.push(SanType::DnsName(n));
            }
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        // An hour of slack for clocks a little behind.
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(365);
        let mut serial = [0u8; 16];
        rand::fill(&mut serial[..]);
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        let chain = vec![cert.der().clone(), self.cert.der().clone()];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// A client configuration that trusts only the CA in `pem` (one or more
/// certificates).
pub fn client_config(pem: &[u8]) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let mut n = 0;
    for cert in rustls_pemfile_certs(pem)? {
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
        n += 1;
    }
    if n == 0 {
        return Err("no PEM certificate in it".into());
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// The certificates of a PEM text.
fn rustls_pemfile_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem)
        .map(|c| c.map_err(|e| format!("bad PEM: {e}")))
        .collect()
}

/// A listener whose connections have finished their TLS handshake.
/// Handshakes run on tasks of their own (at most [`MAX_HANDSHAKES`], each
/// within [`HANDSHAKE_TIMEOUT`]), so a slow client delays no other.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl TlsListener {
    /// Wraps a bound listener.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, rx) = mpsc::channel(64);
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (tcp, addr) = match listener.accept().await {
                    Ok(c) => {
                        // Sessions (exec, port-forward) carry small
                        // writes that must not wait for Nagle.
                        let _ = c.0.set_nodelay(true);
                        c
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: wait, as axum does.
                        tracing::warn!("API accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => {
                            ::metrics::counter!(crate::api::metrics::TLS_HANDSHAKE_FAILURES_TOTAL)
                                .increment(1);
                            tracing::debug!(%addr, "TLS handshake failed: {e}");
                        }
                        Err(_) => {
                            ::metrics::counter!(crate::api::metrics::TLS_HANDSHAKE_FAILURES_TOTAL)
                                .increment(1);
                        }
                    }
                });
            }
        });
        Ok(TlsListener {
            rx,
            local,
            accept_task,
        })
    }
}

/// The plain API listener, its connections without Nagle: sessions (exec,
/// port-forward) carry small writes that must not wait for the peer's
/// delayed ACK.
pub struct NoDelay(pub TcpListener);

impl axum::serve::Listener for NoDelay {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        let _ = io.set_nodelay(true);
        (io, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task ended (the runtime is shutting down): never
            // return, like a listener with no more clients.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_the_same_for_the_same_key_and_differs_otherwise() {
        let a = ClusterCa::derive(&[7; 32]).unwrap();
        let b = ClusterCa::derive(&[7; 32]).unwrap();
        let c = ClusterCa::derive(&[8; 32]).unwrap();
        assert_eq!(a.cert_pem(), b.cert_pem(), "every node derives the same CA");
        assert_ne!(a.cert_pem(), c.cert_pem());
        let psk = libp2p::pnet::PreSharedKey::new([7; 32]);
        assert_eq!(ClusterCa::from_psk(&psk).unwrap().cert_pem(), a.cert_pem());
    }

    #[test]
    fn client_config_needs_a_certificate() {
        assert!(client_config(b"nothing here").is_err());
        let ca = ClusterCa::derive(&[1; 32]).unwrap();
        assert!(client_config(ca.cert_pem().as_bytes()).is_ok());
    }
}
