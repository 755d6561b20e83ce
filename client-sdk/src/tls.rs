//! TLS for `https://` and `wss://` routers: which roots to trust (bundled web roots, the
//! system's, or only the app's own CA), TLS 1.2 and 1.3 with rustls (`ring`), and telling a
//! certificate problem apart from a network one. Never turns verification off.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// Which certificate authorities a client trusts, besides its own CA (`ca_file`, `ca_pem`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Roots {
    /// Mozilla's roots, bundled in the SDK (`webpki-roots`): the same on every device and in
    /// containers without a CA bundle. The default.
    #[default]
    Webpki,
    /// The operating system's trust store, read when the client is built.
    System,
    /// No public roots: only the CA given in `ca_file` / `ca_pem` (a private deployment).
    None,
}

/// TLS settings (`[tls]` in the configuration file, [`ClientBuilder::tls`](crate::ClientBuilder::tls)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Default `webpki`.
    pub roots: Roots,
    /// A PEM file of more CA certificates to trust. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// PEM text of more CA certificates to trust. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

/// ALPN for requests: none set here — hyper-rustls offers `h2` and `http/1.1` itself (HTTP/2
/// when the router offers it, else HTTP/1.1).
pub(crate) const ALPN_HTTP: &[&[u8]] = &[];
/// ALPN for WebSocket sessions: the upgrade is an HTTP/1.1 request.
pub(crate) const ALPN_WEBSOCKET: &[&[u8]] = &[b"http/1.1"];

/// A rustls client configuration trusting what `tls` says, offering `alpn`.
pub(crate) fn client_config(
    tls: &TlsConfig,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, Error> {
    let roots = root_store(tls)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| config_error(format!("tls: {err}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn config_error(message: String) -> Error {
    Error::invalid(ErrorKind::Config(message))
}

fn root_store(tls: &TlsConfig) -> Result<rustls::RootCertStore, Error> {
    let mut store = rustls::RootCertStore::empty();
    match tls.roots {
        Roots::Webpki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(config_error(format!(
                    "tls.roots = \"system\": no trusted certificate found in the system's store{why}"
                )));
            }
        }
        Roots::None => {}
    }
    if let Some(path) = &tls.ca_file {
        let pem = std::fs::read(path).map_err(|err| {
            config_error(format!(
                "tls.ca_file {}: cannot read: {err}",
                path.display()
            ))
        })?;
        add_pem(&mut store, &pem, &format!("tls.ca_file {}", path.display()))?;
    }
    if let Some(pem) = &tls.ca_pem {
        add_pem(&mut store, pem.as_bytes(), "tls.ca_pem")?;
    }
    if store.is_empty() {
        return Err(config_error(
            "tls.roots = \"none\" and no tls.ca_file or tls.ca_pem: nothing would be trusted"
                .into(),
        ));
    }
    Ok(store)
}

fn add_pem(store: &mut rustls::RootCertStore, pem: &[u8], what: &str) -> Result<(), Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|err| config_error(format!("{what}: not PEM certificates: {err}")))?;
    if certs.is_empty() {
        return Err(config_error(format!(
            "{what}: no certificate in it (expected -----BEGIN CERTIFICATE-----)"
        )));
    }
    for cert in certs {
        store
            .add(cert)
            .map_err(|err| config_error(format!("{what}: a certificate rustls refuses: {err}")))?;
    }
    Ok(())
}

/// rustls' reason, if `err` (or an error under it) is a TLS failure rather than a network one.
pub(crate) fn tls_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // io::Error's `source()` skips the error it wraps (which may be another io::Error
        // around rustls' error): step into it instead.
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_trust_settings_are_refused_with_what_was_wrong() {
        let none = TlsConfig {
            roots: Roots::None,
            ..TlsConfig::default()
        };
        let err = client_config(&none, ALPN_HTTP).unwrap_err();
        assert!(
            err.to_string().contains("nothing would be trusted"),
            "{err}"
        );
        let garbage = TlsConfig {
            ca_pem: Some("not a certificate".into()),
            ..TlsConfig::default()
        };
        let err = client_config(&garbage, ALPN_HTTP).unwrap_err();
        assert!(err.to_string().contains("tls.ca_pem"), "{err}");
        let missing = TlsConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsConfig::default()
        };
        let err = client_config(&missing, ALPN_HTTP).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        assert!(client_config(&TlsConfig::default(), ALPN_HTTP).is_ok());
    }

    #[test]
    fn a_tls_error_is_found_under_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let wrapped = std::io::Error::other(io);
        let reason = tls_failure(&wrapped).expect("found");
        assert!(reason.contains("UnknownIssuer"), "{reason}");
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(tls_failure(&plain), None);
    }
}
