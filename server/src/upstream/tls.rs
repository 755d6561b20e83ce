//! TLS from the router to a pool's backends (a pool's `tls = { ca, server_name }`), the
//! settings side: the CA file read and the rustls client config built once per pool when the
//! config loads (or reloads), never per request or per connection.
//!
//! The CA file is the only trust root (no public roots): backends are the operator's own, and
//! a public CA vouching for an internal name would be a mistake, not a feature. Both TLS 1.2
//! and 1.3 are spoken; ALPN offers `http/1.1` only, since the router's backend client speaks
//! HTTP/1.1 (WebSocket handshakes included). The connection itself is made in
//! [`crate::upstream::h1::stream`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::config::BackendAddress;

/// A pool's backend TLS settings, validated: its CA certificates and the one client config
/// every connection of the pool shares (so TLS session resumption works across them).
#[derive(Debug)]
pub struct PoolTls {
    /// The CA file, as written.
    pub ca: PathBuf,
    /// `tls.server_name`; `None`: each backend's host from its address.
    pub server_name: Option<ServerName<'static>>,
    /// What was in the CA file: compared on reload, so an unchanged pool keeps its
    /// connections and a changed CA (same path, new content) is picked up.
    roots: Vec<CertificateDer<'static>>,
    config: Arc<ClientConfig>,
}

/// Equal when a reload would change nothing: same file, same name, same certificates.
impl PartialEq for PoolTls {
    fn eq(&self, other: &PoolTls) -> bool {
        self.ca == other.ca && self.server_name == other.server_name && self.roots == other.roots
    }
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
    pub fn load(ca: &Path, server_name: Option<&str>) -> Result<PoolTls, TlsIssue> {
        let server_name = server_name
            .map(|name| {
                ServerName::try_from(name.to_string()).map_err(|err| TlsIssue {
                    key: "server_name",
                    message: format!("{name:?} is not a DNS name or an IP address: {err}"),
                })
            })
            .transpose()?;
        let ca_issue = |message: String| TlsIssue {
            key: "ca",
            message: format!("{}: {message}", ca.display()),
        };
        let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
            .map_err(|err| ca_issue(format!("cannot read: {err}")))?
            .collect::<Result<_, _>>()
            .map_err(|err| ca_issue(format!("not a PEM file of certificates: {err}")))?;
        if roots.is_empty() {
            return Err(ca_issue("no certificate in it".to_string()));
        }
        let mut store = rustls::RootCertStore::empty();
        let (added, unusable) = store.add_parsable_certificates(roots.iter().cloned());
        if added == 0 {
            return Err(ca_issue(format!(
                "none of its {unusable} certificate(s) is a usable CA certificate"
            )));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|err| ca_issue(format!("cannot build a TLS client: {err}")))?
            .with_root_certificates(store)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(PoolTls {
            ca: ca.to_path_buf(),
            server_name,
            roots,
            config: Arc::new(config),
        })
    }

    /// The name a backend at `address` is asked for (SNI) and checked against: `server_name`,
    /// else the host of its address — a name as written, or the IP (matched against the
    /// certificate's IP SANs). `Err` when the host name is not usable as a TLS name.
    pub fn name_for(&self, address: &BackendAddress) -> Result<ServerName<'static>, String> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        if !address.is_name {
            return Ok(ServerName::IpAddress(address.resolved.ip().into()));
        }
        ServerName::try_from(address.host.clone()).map_err(|err| {
            format!(
                "{:?} is not usable as a TLS server name ({err}); set the pool's tls.server_name",
                address.host
            )
        })
    }

    /// What a backend's connections use. A host name that cannot be a TLS name (refused at
    /// load; possible only for a backend added through the admin API) falls back to the IP.
    pub fn for_backend(&self, address: &BackendAddress) -> Arc<BackendTls> {
        let server_name = self.name_for(address).unwrap_or_else(|reason| {
            tracing::warn!(address = %address.host, %reason, "backend TLS checks its IP address instead");
            ip_name(address.resolved.ip())
        });
        Arc::new(BackendTls {
            config: self.config.clone(),
            server_name,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(ca_text: Option<&str>, name: Option<&str>) -> TlsIssue {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        if let Some(text) = ca_text {
            std::fs::write(&path, text).unwrap();
        }
        PoolTls::load(&path, name).unwrap_err()
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
    fn a_bad_server_name_is_refused() {
        let bad = issue(None, Some("not a name!"));
        assert_eq!(bad.key, "server_name");
    }
}
