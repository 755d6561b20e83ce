//! Header names and rules of the request path: which headers are hop-by-hop, and request ids.
//! Writing and parsing heads lives in [`crate::upstream::h1::codec`].

use actix_web::http::header::{self as ax, HeaderValue};

/// `X-Request-Id`: kept when the client sent a sane one, else generated.
pub const REQUEST_ID: &str = "x-request-id";
pub const FORWARDED_FOR: &str = "x-forwarded-for";
pub const FORWARDED_PROTO: &str = "x-forwarded-proto";
/// Names the kind of a router-made error response.
pub const SWITCHYARD_ERROR: &str = "x-switchyard-error";
/// Header that carries a session token both ways.
pub const SESSION_HEADER: &str = "x-switchyard-session";
/// Header carried by a request one region forwarded to another: a request that has it is
/// never forwarded again (one hop at most, so two regions without backends cannot ping-pong).
pub const HOP_HEADER: &str = "x-switchyard-hop";
/// Marks a request the router mirrored to a route's shadow pool (`proxy::shadow`); taken off
/// any request a client sends.
pub const SHADOW_HEADER: &str = "x-switchyard-shadow";
/// Longest client-supplied request id that is kept; longer ones are replaced.
pub const MAX_REQUEST_ID_BYTES: usize = 200;

/// The names above as `HeaderName`s, built at compile time: a lookup by `&str` parses the
/// name and, for names outside the standard set, allocates it — on every request.
pub const REQUEST_ID_NAME: ax::HeaderName = ax::HeaderName::from_static(REQUEST_ID);
pub const SWITCHYARD_ERROR_NAME: ax::HeaderName = ax::HeaderName::from_static(SWITCHYARD_ERROR);
pub const FORWARDED_FOR_NAME: ax::HeaderName = ax::HeaderName::from_static(FORWARDED_FOR);

/// The value of cookie `name` in the request's `Cookie` headers (surrounding quotes removed),
/// borrowed from them: `a=1; name=value` gives `value`; `namex=…` and `name =…` do not match.
pub fn cookie<'h>(headers: &'h ax::HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers
        .get_all(ax::COOKIE)
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let value = pair
                .trim_ascii_start()
                .strip_prefix(name.as_bytes())?
                .strip_prefix(b"=")?
                .trim_ascii();
            let unquoted = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""));
            Some(unquoted.unwrap_or(value))
        })
}

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus `expect`, which the
/// router has already answered itself, and `content-length`/`transfer-encoding` on responses,
/// which the client side recomputes from the body.
pub fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The client's request id if it is usable, else a new uuid.
pub fn request_id(incoming: &ax::HeaderMap) -> HeaderValue {
    if let Some(v) = incoming.get(&REQUEST_ID_NAME) {
        let bytes = v.as_bytes();
        if !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_BYTES
            && bytes.iter().all(|b| b.is_ascii_graphic())
            && let Ok(v) = HeaderValue::from_bytes(bytes)
        {
            return v;
        }
    }
    new_request_id()
}

/// A fresh version 4 uuid. Its random bits come from the worker's `fastrand` generator rather
/// than the cryptographic one `Uuid::new_v4` uses: a request id names a request in logs and
/// must not repeat, but it guards nothing, and the cryptographic generator cost more than the
/// rest of the id's handling.
fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    let mut buf = uuid::Uuid::encode_buffer();
    let id = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(id).expect("a uuid is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others_and_not_by_a_prefix_of_its_name() {
        let mut headers = ax::HeaderMap::new();
        headers.append(
            ax::COOKIE,
            ax::HeaderValue::from_static("uidx=no; uid = no; uid=viewer-7"),
        );
        assert_eq!(cookie(&headers, "uid"), Some(&b"viewer-7"[..]));
        assert_eq!(cookie(&headers, "other"), None);
        headers.append(ax::COOKIE, ax::HeaderValue::from_static("q=\"quoted\""));
        assert_eq!(cookie(&headers, "q"), Some(&b"quoted"[..]));
    }

    fn incoming(pairs: &[(&str, &str)]) -> ax::HeaderMap {
        let mut map = ax::HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                ax::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                ax::HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn request_ids_are_kept_when_sane() {
        assert_eq!(request_id(&incoming(&[("x-request-id", "abc-1")])), "abc-1");
        let long = "a".repeat(MAX_REQUEST_ID_BYTES + 1);
        let fresh = request_id(&incoming(&[("x-request-id", &long)]));
        assert_eq!(fresh.len(), 36);
        assert_eq!(request_id(&incoming(&[])).len(), 36);
    }

    #[test]
    fn fresh_request_ids_are_distinct_v4_uuids() {
        let a = request_id(&incoming(&[]));
        let b = request_id(&incoming(&[]));
        assert_ne!(a, b);
        let id = uuid::Uuid::parse_str(a.to_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 4);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
    }
}

/// The viewer's address: `peer`, unless `peer` is a trusted proxy — then the rightmost
/// `X-Forwarded-For` entry that is not a trusted proxy (the leftmost if all are). Entries that
/// are not addresses end the walk: what is left of them was written by someone untrusted.
/// `is_trusted` says whether an address is a trusted proxy (`node.trusted_proxies`).
pub fn client_ip(
    peer: Option<std::net::IpAddr>,
    headers: &ax::HeaderMap,
    is_trusted: impl Fn(std::net::IpAddr) -> bool,
) -> Option<std::net::IpAddr> {
    let peer = peer?;
    if !is_trusted(peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = headers
        .get_all(&FORWARDED_FOR_NAME)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = forwarded_ip(hop) else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

/// An `X-Forwarded-For` entry: an address, maybe with a port (`203.0.113.9:5123`,
/// `[2001:db8::1]:443`).
fn forwarded_ip(hop: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<std::net::SocketAddr>() {
        return Some(addr.ip());
    }
    hop.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

#[cfg(test)]
mod client_ip_tests {
    use super::*;
    use crate::config::Cidr;

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let range = Cidr::parse("10.0.0.0/8").unwrap();
        let trusted = |ip| range.contains(ip);
        let mut headers = ax::HeaderMap::new();
        headers.insert(
            ax::HeaderName::from_static(FORWARDED_FOR),
            ax::HeaderValue::from_static("198.51.100.1, 203.0.113.9, 10.0.0.7"),
        );
        let ip = |s: &str| Some(s.parse().unwrap());
        assert_eq!(
            client_ip(ip("10.0.0.2"), &headers, trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("192.0.2.50"), &headers, trusted),
            ip("192.0.2.50"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &ax::HeaderMap::new(), trusted),
            ip("10.0.0.2")
        );
    }
}
