//! Addresses as written, parsed without touching the network: a backend's `ip:port`,
//! `[v6]:port` or `host:port`, and a region's `http://host:port` URLs. Host names are
//! resolved by the load step.

use std::net::{Ipv4Addr, SocketAddr};

use crate::config::BackendAddress;

/// Parses `ip:port` or `host:port`. A name's `resolved` is the unspecified address until the
/// load step resolves it.
pub fn backend_address(text: &str) -> Result<BackendAddress, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(BackendAddress {
            host: addr.ip().to_string(),
            port: addr.port(),
            is_name: false,
            resolved: addr,
        });
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{text:?} has no port; expected \"host:port\""));
    };
    let port: u16 = match port.parse() {
        Ok(port) if port > 0 => port,
        _ => {
            return Err(format!(
                "{text:?}: port {port:?} is not a number in 1..=65535"
            ));
        }
    };
    let valid_name = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_');
    if !valid_name {
        return Err(format!(
            "{text:?}: {host:?} is neither an IP address nor a host name"
        ));
    }
    Ok(BackendAddress {
        host: host.to_string(),
        port,
        is_name: true,
        resolved: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
    })
}

/// A public endpoint: `http://` or `https://`, a host, no path; returned without a trailing `/`.
pub(super) fn public_url(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{text:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(format!(
            "{text:?} must be a scheme and a host[:port], no path"
        ));
    }
    Ok(url.to_string())
}

/// `http://host[:port][/]` (what routers use between regions) → the normalised URL and its
/// address (port 80 when none is written), not yet resolved.
pub fn internal_url(text: &str) -> Result<(String, BackendAddress), String> {
    let url = text.trim().trim_end_matches('/');
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!(
            "{text:?} must be an http:// URL (probes and forwarded requests speak plain HTTP between routers; set `internal` for an https endpoint)"
        ));
    };
    if rest.contains('/') {
        return Err(format!("{text:?} must have no path"));
    }
    let has_port = match rest.rfind(']') {
        Some(close) => rest[close..].contains(':'),
        None => rest.contains(':'),
    };
    let with_port = match has_port {
        true => rest.to_string(),
        false => format!("{rest}:80"),
    };
    let address = backend_address(&with_port).map_err(|reason| format!("{text:?}: {reason}"))?;
    Ok((url.to_string(), address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_without_a_lookup() {
        let a = backend_address("127.0.0.1:8080").unwrap();
        assert!(!a.is_name);
        let a = backend_address("no-such-host.invalid:8080").unwrap();
        assert!(a.is_name);
        assert_eq!(a.resolved.port(), 8080);
        assert!(
            backend_address("localhost")
                .unwrap_err()
                .contains("no port")
        );
        assert!(backend_address("localhost:0").unwrap_err().contains("port"));
        assert!(
            backend_address("bad host:80")
                .unwrap_err()
                .contains("neither")
        );
    }

    #[test]
    fn internal_urls_default_to_port_80() {
        let (url, address) = internal_url("http://eu.example.net/").unwrap();
        assert_eq!(url, "http://eu.example.net");
        assert_eq!(address.port, 80);
        assert!(internal_url("https://eu.example.net").is_err());
    }
}
