//! The load step: what validation leaves out because it touches the world. It reads the
//! files a config names (admin token, cookie key, listener certificates, pool CA files) and
//! resolves host names (backends, region endpoints), filling the results into a validated
//! [`Config`], and reports each failure under the key that named the file or the host.
//!
//! The only place under `config/` that uses the TLS modules ([`crate::tls`],
//! [`crate::upstream::tls`]), which take plain values and know nothing of `Config`. A `Config`
//! holds no live TLS object: a pool's CA certificates are kept as DER bytes, and the rustls
//! client config is built from them where it is needed ([`PoolTlsConfig::backend_tls`]).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use super::validate::{MIN_ADMIN_TOKEN_BYTES, backend_address, internal_url};
use super::{BackendAddress, Config, ConfigIssue, PoolTlsConfig, TlsConfig};
use crate::tls::{CertificateFiles, ListenerCertificates};
use crate::upstream::tls::{BackendTls, PoolTls};

/// Reads and resolves what `config` names; the problems found (none: it is ready to serve).
pub fn load(config: &mut Config) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    let mut issue = |key: String, message: String| issues.push(ConfigIssue { key, message });
    if let Some(path) = &config.node.admin_token_file {
        match std::fs::read_to_string(path) {
            Ok(text) if text.trim().len() >= MIN_ADMIN_TOKEN_BYTES => {
                config.node.admin_token = Some(text.trim().to_string());
            }
            Ok(_) => issue(
                "node.admin_token_file".into(),
                format!("{path:?} holds a token shorter than {MIN_ADMIN_TOKEN_BYTES} bytes"),
            ),
            Err(err) => issue(
                "node.admin_token_file".into(),
                format!("cannot read {path:?}: {err}"),
            ),
        }
    }
    if let Some(path) = &config.sessions.cookie_key_file {
        match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => {
                config.sessions.cookie_key = Some(text.trim().as_bytes().to_vec());
            }
            Ok(_) => issue(
                "sessions.cookie_key_file".into(),
                format!("{path:?} is empty"),
            ),
            Err(err) => issue(
                "sessions.cookie_key_file".into(),
                format!("cannot read {path:?}: {err}"),
            ),
        }
    }
    for (i, listener) in config.listeners.iter().enumerate() {
        let Some(tls) = &listener.tls else { continue };
        for (j, c) in tls.certificates.iter().enumerate() {
            if let Err(reason) = crate::tls::load_certified(&c.cert, &c.key) {
                issue(
                    format!("listeners[{i}].tls.certificates[{j}]"),
                    reason.to_string(),
                );
            }
        }
    }
    for (i, pool) in config.pools.iter_mut().enumerate() {
        for (j, backend) in pool.backends.iter_mut().enumerate() {
            if backend.address.is_name {
                match resolve(&backend.address.host, backend.address.port) {
                    Ok(addr) => backend.address.resolved = addr,
                    Err(reason) => issue(format!("pools[{i}].backends[{j}].address"), reason),
                }
            }
        }
        if let Some(tls) = &mut pool.tls
            && !tls.ca.as_os_str().is_empty()
        {
            // Built once here so a bad CA file is refused at load, not at the first connection.
            match PoolTls::load(&tls.ca, tls.server_name.as_deref(), tls.h2) {
                Ok(loaded) => {
                    tls.ca_certificates = loaded
                        .ca_certificates()
                        .iter()
                        .map(|c| c.as_ref().to_vec())
                        .collect();
                }
                Err(err) => issue(format!("pools[{i}].tls.{}", err.key), err.message),
            }
        }
    }
    for (i, region) in config.regions.iter_mut().enumerate() {
        let Some(url) = &region.internal else {
            continue;
        };
        let written = match region.endpoint.as_ref() == Some(url) {
            true => "endpoint",
            false => "internal",
        };
        let resolved = internal_url(url).and_then(|(_, address)| {
            resolved(address).map_err(|reason| format!("{url:?}: {reason}"))
        });
        match resolved {
            Ok(address) => region.endpoint_addr = Some(address.resolved),
            Err(reason) => issue(format!("regions[{i}].{written}"), reason),
        }
    }
    issues
}

/// Parses `ip:port` or `host:port`, resolving a host name now (the admin API's check of a
/// new backend's address).
pub fn parse_address(text: &str) -> Result<BackendAddress, String> {
    resolved(backend_address(text)?)
}

fn resolved(mut address: BackendAddress) -> Result<BackendAddress, String> {
    if address.is_name {
        address.resolved = resolve(&address.host, address.port)?;
    }
    Ok(address)
}

/// Resolves a host name, preferring IPv4 (most backends listen there first).
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|err| format!("cannot resolve {host:?}: {err}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{host:?} resolved to no address"))
}

impl PoolTlsConfig {
    /// What the connections to one of the pool's backends use. Every backend of a pool with
    /// the same settings shares one rustls client config (and its session cache).
    pub fn backend_tls(&self, address: &BackendAddress) -> Arc<BackendTls> {
        let roots = self
            .ca_certificates
            .iter()
            .map(|der| CertificateDer::from(der.clone()))
            .collect();
        PoolTls::shared(&self.ca, roots, self.server_name.as_deref(), self.h2)
            .expect("the same certificates and name built a client config at load")
            .for_backend(&address.host, address.is_name, address.resolved.ip())
    }
}

/// A listener's `tls`, as the certificate resolver takes it.
impl From<TlsConfig> for ListenerCertificates {
    fn from(config: TlsConfig) -> ListenerCertificates {
        ListenerCertificates {
            certificates: config
                .certificates
                .into_iter()
                .map(|c| CertificateFiles {
                    names: c.names,
                    cert: c.cert,
                    key: c.key,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_reads_no_file_and_resolves_no_name_the_load_step_does() {
        let text = "[node]\nadmin_token_file = \"/no/such/token\"\n\
            [[pools]]\nid = \"p\"\ntls = { ca = \"/no/such/ca.pem\" }\n\
            backends = [{ id = \"b\", address = \"no-such-host.invalid:80\" }]\n";
        let (raw, issues) = crate::config::parse::parse(text);
        assert!(issues.is_empty(), "{issues:?}");
        let (mut config, issues) = crate::config::validate::validate(raw.unwrap());
        assert!(issues.is_empty(), "{issues:?}");
        let keys: Vec<String> = load(&mut config).into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "node.admin_token_file",
                "pools[0].backends[0].address",
                "pools[0].tls.ca"
            ]
        );
    }

    #[test]
    fn addresses_parse_and_names_resolve() {
        let a = parse_address("127.0.0.1:8080").unwrap();
        assert!(!a.is_name);
        let a = parse_address("localhost:8080").unwrap();
        assert!(a.is_name);
        assert_eq!(a.resolved.port(), 8080);
        assert!(parse_address("localhost").unwrap_err().contains("no port"));
        assert!(parse_address("localhost:0").unwrap_err().contains("port"));
        assert!(
            parse_address("bad host:80")
                .unwrap_err()
                .contains("neither")
        );
        assert!(
            parse_address("no-such-host.invalid:80")
                .unwrap_err()
                .contains("cannot resolve")
        );
    }
}
