//! TLS termination: certificates chosen by SNI (the first certificate of a listener answers
//! clients that send no name or an unknown one), TLS 1.2 and 1.3 only (rustls speaks nothing
//! older), ALPN `h2` and `http/1.1` (set by actix-http). Certificates are reloaded without a
//! restart and without touching open connections: on SIGHUP, `POST /admin/v1/reload`, or when
//! a file changes (checked every [`WATCH_EVERY`]); a new set that does not load keeps the old
//! one, and the reason is logged and counted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A TLS listener's certificate files; the first certificate is the default. (A listener's
/// `tls` config converts into this: the config's load step knows both.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerCertificates {
    pub certificates: Vec<CertificateFiles>,
}

/// One certificate chain and its key (PEM files), and the server names it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// Lower-case; `*.example.com` wildcards allowed.
    pub names: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How often certificate files are checked for changes.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Why a listener's certificates (or its TLS settings) do not load; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The file cannot be read, or is not PEM.
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{}: no certificate in it", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: unusable private key: {source}", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{} and {} do not belong together: {source}", cert.display(), key.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    /// A listener with `tls` but no certificate (validation refuses such a file).
    #[error("no certificate")]
    Empty,
    /// rustls refused the listener's settings.
    #[error("TLS settings: {0}")]
    Settings(#[source] rustls::Error),
}

/// Loads a certificate chain and its private key (PEM).
pub fn load_certified(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, CertError> {
    let read = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CertError::Read { path, source }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(read(cert))?
        .collect::<Result<_, _>>()
        .map_err(read(cert))?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(read(key))?;
    let signing = any_supported_type(&key_der).map_err(|source| CertError::Key {
        path: key.to_path_buf(),
        source,
    })?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|source| CertError::Mismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        })?;
    Ok(Arc::new(certified))
}

/// One listener's certificates, by lower-case server name (`*.example.com` wildcards allowed).
#[derive(Debug)]
struct CertSet {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

fn load_set(config: &ListenerCertificates) -> Result<CertSet, CertError> {
    let mut by_name = HashMap::new();
    let mut default = None;
    for c in &config.certificates {
        let certified = load_certified(&c.cert, &c.key)?;
        for name in &c.names {
            by_name.insert(name.to_ascii_lowercase(), certified.clone());
        }
        default.get_or_insert(certified);
    }
    let default = default.ok_or(CertError::Empty)?;
    Ok(CertSet { by_name, default })
}

/// Picks a certificate by SNI; swapped whole on reload.
#[derive(Debug)]
pub struct SniResolver {
    config: ListenerCertificates,
    set: ArcSwap<CertSet>,
    /// Modification times of the files when last loaded.
    stamps: std::sync::Mutex<Vec<Option<SystemTime>>>,
}

impl SniResolver {
    pub fn new(config: impl Into<ListenerCertificates>) -> Result<SniResolver, CertError> {
        let config = config.into();
        let set = load_set(&config)?;
        let stamps = stamps(&config);
        Ok(SniResolver {
            config,
            set: ArcSwap::from_pointee(set),
            stamps: std::sync::Mutex::new(stamps),
        })
    }

    /// Loads the certificate files again; a set that does not load keeps the old one.
    pub fn reload(&self) -> Result<(), CertError> {
        match load_set(&self.config) {
            Ok(set) => {
                self.set.store(Arc::new(set));
                *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) = stamps(&self.config);
                metrics::counter!("switchyard_tls_reloads_total", "outcome" => "loaded")
                    .increment(1);
                Ok(())
            }
            Err(reason) => {
                metrics::counter!("switchyard_tls_reloads_total", "outcome" => "refused")
                    .increment(1);
                Err(reason)
            }
        }
    }

    /// Reloads when a file changed since the last load.
    pub fn reload_if_changed(&self) -> Option<Result<(), CertError>> {
        let now = stamps(&self.config);
        let changed = *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) != now;
        changed.then(|| {
            let outcome = self.reload();
            // Do not retry a bad file every tick: wait for it to change again.
            *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) = now;
            outcome
        })
    }

    pub fn files(&self) -> Vec<PathBuf> {
        self.config
            .certificates
            .iter()
            .flat_map(|c| [c.cert.clone(), c.key.clone()])
            .collect()
    }
}

fn stamps(config: &ListenerCertificates) -> Vec<Option<SystemTime>> {
    config
        .certificates
        .iter()
        .flat_map(|c| [&c.cert, &c.key])
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.set.load();
        let Some(name) = hello.server_name().map(str::to_ascii_lowercase) else {
            return Some(set.default.clone());
        };
        if let Some(found) = set.by_name.get(&name) {
            return Some(found.clone());
        }
        let wildcard = name.split_once('.').map(|(_, rest)| format!("*.{rest}"));
        Some(
            wildcard
                .and_then(|w| set.by_name.get(&w).cloned())
                .unwrap_or_else(|| set.default.clone()),
        )
    }
}

/// TLS 1.2 sessions a listener remembers for resumption (TLS 1.3 uses stateless tickets).
const SESSION_CACHE: usize = 10_240;

/// The rustls configuration of a TLS listener: TLS 1.3 and 1.2 only, certificates by SNI,
/// ALPN `h2` then `http/1.1`, and session resumption (tickets with keys that rotate every
/// 6 hours, and a session cache), so a player reconnecting after a blip makes an abbreviated
/// handshake instead of a full one.
pub fn server_config(resolver: Arc<SniResolver>) -> Result<rustls::ServerConfig, CertError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(CertError::Settings)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(CertError::Settings)?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok(config)
}
