//! Certificates for the HTTPS listener: read from the `kubernetes.io/tls`
//! Secrets the Ingresses name (opened through the store, as the agent reads
//! Secrets for volumes), chosen per connection by SNI. A Secret is parsed
//! again only when its resourceVersion changes, and the resolver reads the
//! live table on every handshake, so a renewed certificate is served as
//! soon as the table is rebuilt (within the build loop's coalescing delay).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;
use tracing::warn;

use super::Live;
use super::routes::RouteTable;
use crate::resource::{Kind, ObjectKey};
use crate::store::Store;

/// Certificates by host (`*.example.com` for a wildcard).
#[derive(Clone, Default)]
pub struct Certs {
    by_host: HashMap<String, Arc<CertifiedKey>>,
}

impl fmt::Debug for Certs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certs")
            .field("hosts", &self.by_host.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Certs {
    /// The certificate for an SNI name: the exact host's, else its wildcard's.
    pub fn get(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        let sni = sni.to_ascii_lowercase();
        if let Some(c) = self.by_host.get(&sni) {
            return Some(c.clone());
        }
        let (_, parent) = sni.split_once('.')?;
        self.by_host.get(&format!("*.{parent}")).cloned()
    }

    /// Certificates for the given hosts (`*.example.com` for a wildcard).
    pub fn from_hosts(hosts: impl IntoIterator<Item = (String, Arc<CertifiedKey>)>) -> Certs {
        Certs {
            by_host: hosts.into_iter().collect(),
        }
    }

    /// How many hosts have a certificate.
    pub fn len(&self) -> usize {
        self.by_host.len()
    }

    /// Whether no host has one.
    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }
}

/// Parses a certificate chain and private key in PEM, as in a
/// `kubernetes.io/tls` Secret's `tls.crt` and `tls.key`.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.crt: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt: no PEM certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("tls.key: {e}"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("tls.key: {e}"))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match()
        .map_err(|e| format!("tls.key does not match tls.crt: {e}"))?;
    Ok(ck)
}

/// Parsed Secrets by (namespace, name) with the resourceVersion they were
/// parsed at, so unchanged Secrets are neither opened nor parsed again.
#[derive(Default)]
pub struct CertCache {
    parsed: HashMap<(String, String), Parsed>,
}

/// A Secret's resourceVersion and its certificate (none when unusable).
type Parsed = (u64, Option<Arc<CertifiedKey>>);

impl CertCache {
    /// The certificates the table's TLS hosts need, from the store.
    pub fn refresh(&mut self, routes: &RouteTable, store: &Store) -> Certs {
        let mut wanted: BTreeMap<(String, String), ()> = BTreeMap::new();
        let mut by_host = HashMap::new();
        for (host, src) in &routes.tls {
            let id = (src.namespace.clone(), src.secret.clone());
            wanted.insert(id.clone(), ());
            let key = ObjectKey::new(Kind::Secret, &src.namespace, &src.secret);
            let version = match store.get_sealed(&key) {
                Ok(Some(o)) => o.resource_version(),
                Ok(None) => {
                    self.parsed.remove(&id);
                    continue;
                }
                Err(e) => {
                    warn!(secret = %key, "reading a TLS Secret: {e}");
                    continue;
                }
            };
            let fresh = self.parsed.get(&id).is_some_and(|(v, _)| *v == version);
            if !fresh {
                let ck = match store.secret_data(&src.namespace, &src.secret) {
                    Ok(Some(data)) => match (data.get("tls.crt"), data.get("tls.key")) {
                        (Some(c), Some(k)) => certified_key(c, k)
                            .map_err(|e| warn!(secret = %key, "not served: {e}"))
                            .ok()
                            .map(Arc::new),
                        _ => {
                            warn!(secret = %key, "not served: it lacks tls.crt or tls.key");
                            None
                        }
                    },
                    Ok(None) => None,
                    Err(e) => {
                        warn!(secret = %key, "opening a TLS Secret: {e}");
                        None
                    }
                };
                self.parsed.insert(id.clone(), (version, ck));
            }
            if let Some((_, Some(ck))) = self.parsed.get(&id) {
                by_host.insert(host.clone(), ck.clone());
            }
        }
        self.parsed.retain(|id, _| wanted.contains_key(id));
        Certs { by_host }
    }
}

/// Picks the certificate by SNI from the live table at each handshake.
struct Resolver {
    live: watch::Receiver<Arc<Live>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ingress::tls::Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name()?;
        let live = self.live.borrow().clone();
        live.certs.get(sni)
    }
}

/// The HTTPS listener's configuration: certificates by SNI, ALPN h2 and
/// http/1.1.
pub fn server_config(
    live: watch::Receiver<Arc<Live>>,
) -> Result<Arc<rustls::ServerConfig>, super::IngressError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| super::IngressError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(Resolver { live }));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(hosts: &[&str]) -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(
            hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        )
        .expect("a certificate");
        (ck.cert.pem(), ck.key_pair.serialize_pem())
    }

    #[test]
    fn a_tls_secret_parses_and_a_mismatched_key_is_refused() {
        let (cert, key) = pem(&["a.test"]);
        assert!(certified_key(cert.as_bytes(), key.as_bytes()).is_ok());
        let (_, other_key) = pem(&["a.test"]);
        let e = certified_key(cert.as_bytes(), other_key.as_bytes()).err();
        assert!(e.is_some_and(|e| e.contains("does not match")));
        let e = certified_key(b"not pem", key.as_bytes()).err();
        assert!(
            e.is_some_and(|e| e.contains("tls.crt")),
            "garbage is refused"
        );
        let e = certified_key(cert.as_bytes(), b"").err();
        assert!(e.is_some_and(|e| e.contains("tls.key")));
    }

    #[test]
    fn sni_picks_the_exact_host_then_its_wildcard() {
        let ck = |h: &str| {
            let (c, k) = pem(&[h]);
            Arc::new(certified_key(c.as_bytes(), k.as_bytes()).expect("a key"))
        };
        let (exact, wild) = (ck("www.example.com"), ck("*.example.com"));
        let certs = Certs {
            by_host: HashMap::from([
                ("www.example.com".to_string(), exact.clone()),
                ("*.example.com".to_string(), wild.clone()),
            ]),
        };
        let is = |sni: &str, want: &Arc<CertifiedKey>| {
            certs.get(sni).is_some_and(|c| Arc::ptr_eq(&c, want))
        };
        assert!(is("www.example.com", &exact));
        assert!(is("WWW.example.com", &exact));
        assert!(is("api.example.com", &wild));
        assert!(certs.get("a.b.example.com").is_none());
        assert!(certs.get("example.com").is_none());
        assert_eq!(certs.len(), 2);
    }
}
