//! `[[listeners]]`: extra public listeners, plain or TLS. Certificate files are read by the
//! load step; here only their shape is checked.

use super::{Ids, Issues, cidrs, socket_addr};
use crate::config::raw::{RawListener, RawTls};
use crate::config::{CertificateConfig, ListenerConfig, TlsConfig};

pub(super) fn listeners(
    raw: &[RawListener],
    ids: &mut Ids,
    issues: &mut Issues,
) -> Vec<ListenerConfig> {
    raw.iter()
        .enumerate()
        .map(|(i, l)| listener(i, l, ids, issues))
        .collect()
}

fn listener(i: usize, l: &RawListener, ids: &mut Ids, issues: &mut Issues) -> ListenerConfig {
    let key = |k: &str| format!("listeners[{i}].{k}");
    ids.claim(issues, "listener", key("id"), &l.id);
    let tls = l.tls.as_ref().map(|t| tls(i, t, issues));
    if tls.is_some() && l.redirect_https {
        issues.push(
            key("redirect_https"),
            "only for plain listeners (this one terminates TLS)",
        );
    }
    if l.max_connections == Some(0) {
        issues.push(
            key("max_connections"),
            "must be at least 1 (leave it out for no limit of its own)",
        );
    }
    let proxy_protocol_from = cidrs(issues, &key("proxy_protocol_from"), &l.proxy_protocol_from);
    if !l.proxy_protocol && !l.proxy_protocol_from.is_empty() {
        issues.push(
            key("proxy_protocol_from"),
            "only with proxy_protocol = true",
        );
    }
    ListenerConfig {
        id: l.id.clone(),
        address: socket_addr(issues, &key("address"), &l.address),
        tls,
        redirect_https: l.redirect_https,
        proxy_protocol: l.proxy_protocol,
        proxy_protocol_from,
        max_connections: l.max_connections,
    }
}

fn tls(i: usize, t: &RawTls, issues: &mut Issues) -> TlsConfig {
    if t.certificates.is_empty() {
        issues.push(
            format!("listeners[{i}].tls.certificates"),
            "list at least one certificate",
        );
    }
    let certificates = t
        .certificates
        .iter()
        .map(|c| CertificateConfig {
            names: c
                .names
                .iter()
                .map(|n| n.trim().to_ascii_lowercase())
                .collect(),
            cert: c.cert.clone().into(),
            key: c.key.clone().into(),
        })
        .collect();
    TlsConfig { certificates }
}
