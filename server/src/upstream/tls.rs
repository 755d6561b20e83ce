//! TLS from the router to a pool's backends (a pool's `tls = { ca, server_name }`), the
//! settings side: the CA file read and the rustls client config built when the config loads
//! (or reloads), and shared by every backend of the pool, never built per request or per
//! connection. Takes plain values (paths, names, certificates): it knows nothing of the
//! config types, which the config's load step turns into these calls.
//!
//! The CA file is the only trust root (no public roots): backends are the operator's own, and
//! a public CA vouching for an internal name would be a mistake, not a feature. Both TLS 1.2
//! and 1.3 are spoken; ALPN offers `http/1.1` (the router's HTTP/1.1 client, WebSocket
//! handshakes included), or `h2` alone for a pool with `protocol = "h2"`. The connection itself is made in
//! [`crate::upstream::h1::stream`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A pool's backend TLS settings, validated: its CA certificates and the one client config
/// every connection of the pool shares (so TLS session resumption works across them).
#[derive(Debug)]
pub struct PoolTls {
    /// The CA file, as written.
    pub ca: PathBuf,
    /// `tls.server_name`; `None`: each backend's host from its address.
    pub server_name: Option<ServerName<'static>>,
    /// What was in the CA file.
    roots: Vec<CertificateDer<'static>>,
    config: Arc<ClientConfig>,
}

/// Why a pool's `tls` table cannot be used: which key, and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsIssue {
    /// `ca` or `server_name`.
    pub key: &'static str,
    pub message: String,
}

impl PoolTls {
    /// Reads the CA file and builds the client config.
    pub fn load(ca: &Path, server_name: Option<&str>, h2: bool) -> Result<PoolTls, TlsIssue> {
        let server_name = parse_server_name(server_name)?;
        let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
            .map_err(|err| ca_issue(ca, format!("cannot read: {err}")))?
            .collect::<Result<_, _>>()
            .map_err(|err| ca_issue(ca, format!("not a PEM file of certificates: {err}")))?;
        if roots.is_empty() {
            return Err(ca_issue(ca, "no certificate in it".to_string()));
        }
        PoolTls::build(ca, roots, server_name, h2)
    }

    /// Settings for these CA certificates (read from `ca` earlier) and name whose client
    /// config is the one every other caller asking for the same gets, while any backend's
    /// connections still use it: a pool's backends share one (and its session cache).
    pub fn shared(
        ca: &Path,
        roots: Vec<CertificateDer<'static>>,
        server_name: Option<&str>,
        h2: bool,
    ) -> Result<PoolTls, TlsIssue> {
        let server_name = parse_server_name(server_name)?;
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        shared.retain(|s| s.config.strong_count() > 0);
        let in_use = shared
            .iter()
            .filter(|s| {
                s.ca == ca && s.server_name == server_name && s.roots == roots && s.h2 == h2
            })
            .find_map(|s| s.config.upgrade());
        if let Some(config) = in_use {
            return Ok(PoolTls {
                ca: ca.to_path_buf(),
                server_name,
                roots,
                config,
            });
        }
        let built = PoolTls::build(ca, roots, server_name, h2)?;
        shared.push(SharedConfig {
            ca: built.ca.clone(),
            server_name: built.server_name.clone(),
            roots: built.roots.clone(),
            h2,
            config: Arc::downgrade(&built.config),
        });
        Ok(built)
    }

    /// The CA certificates the client config trusts, as read from the file.
    pub fn ca_certificates(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    fn build(
        ca: &Path,
        roots: Vec<CertificateDer<'static>>,
        server_name: Option<ServerName<'static>>,
        h2: bool,
    ) -> Result<PoolTls, TlsIssue> {
        let mut store = rustls::RootCertStore::empty();
        let (added, unusable) = store.add_parsable_certificates(roots.iter().cloned());
        if added == 0 {
            return Err(ca_issue(
                ca,
                format!("none of its {unusable} certificate(s) is a usable CA certificate"),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|err| ca_issue(ca, format!("cannot build a TLS client: {err}")))?
            .with_root_certificates(store)
            .with_no_client_auth();
        config.alpn_protocols = vec![if h2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        Ok(PoolTls {
            ca: ca.to_path_buf(),
            server_name,
            roots,
            config: Arc::new(config),
        })
    }

    /// The name a backend at `host` (a name when `is_name`, else the text of `ip`) is asked
    /// for (SNI) and checked against: `server_name`, else its host — a name as written, or
    /// the IP (matched against the certificate's IP SANs). `Err` when the host name is not
    /// usable as a TLS name.
    pub fn name_for(
        &self,
        host: &str,
        is_name: bool,
        ip: IpAddr,
    ) -> Result<ServerName<'static>, ServerNameError> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        if !is_name {
            return Ok(ip_name(ip));
        }
        ServerName::try_from(host.to_string()).map_err(|source| ServerNameError {
            host: host.to_string(),
            source,
        })
    }

    /// What a backend's connections use. A host name that cannot be a TLS name (refused at
    /// load; possible only for a backend added through the admin API) falls back to the IP.
    pub fn for_backend(&self, host: &str, is_name: bool, ip: IpAddr) -> Arc<BackendTls> {
        let server_name = self.name_for(host, is_name, ip).unwrap_or_else(|reason| {
            tracing::warn!(address = %host, %reason, "backend TLS checks its IP address instead");
            ip_name(ip)
        });
        Arc::new(BackendTls {
            config: self.config.clone(),
            server_name,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }
}

/// A client config in use, and what it was built from.
struct SharedConfig {
    ca: PathBuf,
    server_name: Option<ServerName<'static>>,
    roots: Vec<CertificateDer<'static>>,
    h2: bool,
    config: Weak<ClientConfig>,
}

/// The client configs in use, so that every backend of a pool shares one.
static SHARED: Mutex<Vec<SharedConfig>> = Mutex::new(Vec::new());

fn parse_server_name(name: Option<&str>) -> Result<Option<ServerName<'static>>, TlsIssue> {
    name.map(|name| {
        ServerName::try_from(name.to_string()).map_err(|err| TlsIssue {
            key: "server_name",
            message: format!("{name:?} is not a DNS name or an IP address: {err}"),
        })
    })
    .transpose()
}

fn ca_issue(ca: &Path, message: String) -> TlsIssue {
    TlsIssue {
        key: "ca",
        message: format!("{}: {message}", ca.display()),
    }
}

fn ip_name(ip: IpAddr) -> ServerName<'static> {
    ServerName::IpAddress(ip.into())
}

/// Identities of [`BackendTls`] values; 0 is kept for plain connections.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How the router connects to one backend of a TLS pool.
#[derive(Debug)]
pub struct BackendTls {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    /// Unique per value (never 0): part of the keep-alive pool's key, so a connection made
    /// under some settings (a name, a CA) is never reused under others, e.g. after a reload.
    pub id: u64,
}

/// A backend's host name that cannot be a TLS server name.
#[derive(Debug, thiserror::Error)]
#[error("{host:?} is not usable as a TLS server name ({source}); set the pool's tls.server_name")]
pub struct ServerNameError {
    pub host: String,
    #[source]
    pub source: rustls::pki_types::InvalidDnsNameError,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(ca_text: Option<&str>, name: Option<&str>) -> TlsIssue {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        if let Some(text) = ca_text {
            std::fs::write(&path, text).unwrap();
        }
        PoolTls::load(&path, name, false).unwrap_err()
    }

    #[test]
    fn an_unusable_ca_file_says_which_file_and_why() {
        let missing = issue(None, None);
        assert_eq!(missing.key, "ca");
        assert!(
            missing.message.contains("ca.pem: cannot read"),
            "{missing:?}"
        );
        let empty = issue(Some("not a certificate\n"), None);
        assert!(empty.message.contains("no certificate in it"), "{empty:?}");
        let garbage = issue(
            Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            None,
        );
        assert!(
            garbage.message.contains("usable CA certificate"),
            "{garbage:?}"
        );
    }

    #[test]
    fn backends_with_the_same_settings_share_one_client_config() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".to_string()]).unwrap();
        let roots = || vec![ca.cert.der().clone()];
        let ip = IpAddr::from([127, 0, 0, 1]);
        let path = Path::new("ca.pem");
        let first = PoolTls::shared(path, roots(), None, false)
            .unwrap()
            .for_backend("a.test", true, ip);
        let second = PoolTls::shared(path, roots(), None, false)
            .unwrap()
            .for_backend("b.test", true, ip);
        assert!(Arc::ptr_eq(&first.config, &second.config));
        assert_ne!(first.id, second.id);
        let other_name = PoolTls::shared(path, roots(), Some("pool.test"), false)
            .unwrap()
            .for_backend("a.test", true, ip);
        assert!(!Arc::ptr_eq(&first.config, &other_name.config));
    }

    #[test]
    fn a_bad_server_name_is_refused() {
        let bad = issue(None, Some("not a name!"));
        assert_eq!(bad.key, "server_name");
    }
}
