//! Header rules of the request path: hop-by-hop removal, forwarding headers, request ids, and
//! the conversion between actix-web's `http` 0.2 types and hyper's `http` 1 types.

use actix_web::http::header as ax;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `X-Request-Id`: kept when the client sent a sane one, else generated.
pub const REQUEST_ID: &str = "x-request-id";
pub const FORWARDED_FOR: &str = "x-forwarded-for";
pub const FORWARDED_PROTO: &str = "x-forwarded-proto";
/// Names the kind of a router-made error response.
pub const SWITCHYARD_ERROR: &str = "x-switchyard-error";
/// Longest client-supplied request id that is kept; longer ones are replaced.
pub const MAX_REQUEST_ID_BYTES: usize = 200;

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

/// Header names a `Connection` header lists: hop-by-hop for this message too.
fn connection_tokens(values: impl Iterator<Item = impl AsRef<[u8]>>) -> Vec<String> {
    let mut tokens = Vec::new();
    for value in values {
        if let Ok(text) = std::str::from_utf8(value.as_ref()) {
            for token in text.split(',') {
                let token = token.trim().to_ascii_lowercase();
                if !token.is_empty() && token != "close" && token != "keep-alive" {
                    tokens.push(token);
                }
            }
        }
    }
    tokens
}

/// Copies a client request's headers for the backend: hop-by-hop ones and `Expect` dropped,
/// `X-Forwarded-For` extended with the peer, `X-Forwarded-Proto` set, `X-Request-Id` set.
pub fn upstream_request_headers(
    incoming: &ax::HeaderMap,
    peer_ip: Option<std::net::IpAddr>,
    proto: &'static str,
    request_id: &HeaderValue,
) -> HeaderMap {
    let listed = match incoming.get(ax::CONNECTION) {
        Some(_) => connection_tokens(incoming.get_all(ax::CONNECTION).map(|v| v.as_bytes())),
        None => Vec::new(),
    };
    let mut out = HeaderMap::with_capacity(incoming.len() + 3);
    let mut forwarded_for: Option<Vec<u8>> = None;
    for (name, value) in incoming.iter() {
        let n = name.as_str();
        if is_hop_by_hop(n)
            || n == "expect"
            || n == FORWARDED_PROTO
            || n == REQUEST_ID
            || listed.iter().any(|t| t == n)
        {
            continue;
        }
        if n == FORWARDED_FOR {
            let buf = forwarded_for.get_or_insert_with(Vec::new);
            if !buf.is_empty() {
                buf.extend_from_slice(b", ");
            }
            buf.extend_from_slice(value.as_bytes());
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(name, value);
        }
    }
    if let Some(ip) = peer_ip {
        let buf = forwarded_for.get_or_insert_with(Vec::new);
        if !buf.is_empty() {
            buf.extend_from_slice(b", ");
        }
        buf.extend_from_slice(ip.to_string().as_bytes());
    }
    if let Some(value) = forwarded_for.and_then(|v| HeaderValue::from_bytes(&v).ok()) {
        out.insert(HeaderName::from_static(FORWARDED_FOR), value);
    }
    out.insert(
        HeaderName::from_static(FORWARDED_PROTO),
        HeaderValue::from_static(proto),
    );
    out.insert(HeaderName::from_static(REQUEST_ID), request_id.clone());
    out
}

/// Copies a backend response's headers for the client, without hop-by-hop headers and
/// without the framing headers the client side sets itself. `keep_length` keeps the backend's
/// `Content-Length` (responses without a body: HEAD, 204, 304).
pub fn client_response_headers(incoming: &HeaderMap, keep_length: bool, out: &mut ax::HeaderMap) {
    let listed = match incoming.get(header::CONNECTION) {
        Some(_) => connection_tokens(incoming.get_all(header::CONNECTION).iter()),
        None => Vec::new(),
    };
    for (name, value) in incoming.iter() {
        let n = name.as_str();
        if is_hop_by_hop(n)
            || (n == "content-length" && !keep_length)
            || listed.iter().any(|t| t == n)
        {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            ax::HeaderName::from_bytes(n.as_bytes()),
            ax::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(name, value);
        }
    }
}

/// The client's request id if it is usable, else a new uuid.
pub fn request_id(incoming: &ax::HeaderMap) -> HeaderValue {
    if let Some(v) = incoming.get(REQUEST_ID) {
        let bytes = v.as_bytes();
        if !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_BYTES
            && bytes.iter().all(|b| b.is_ascii_graphic())
            && let Ok(v) = HeaderValue::from_bytes(bytes)
        {
            return v;
        }
    }
    let mut buf = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(id).expect("a uuid is a valid header value")
}

pub fn method(m: &actix_web::http::Method) -> http::Method {
    match *m {
        actix_web::http::Method::GET => http::Method::GET,
        actix_web::http::Method::POST => http::Method::POST,
        actix_web::http::Method::PUT => http::Method::PUT,
        actix_web::http::Method::DELETE => http::Method::DELETE,
        actix_web::http::Method::HEAD => http::Method::HEAD,
        actix_web::http::Method::OPTIONS => http::Method::OPTIONS,
        actix_web::http::Method::PATCH => http::Method::PATCH,
        _ => http::Method::from_bytes(m.as_str().as_bytes()).unwrap_or(http::Method::GET),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn hop_by_hop_and_connection_listed_headers_are_dropped() {
        let h = incoming(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "h2c"),
            ("te", "trailers"),
            ("accept", "*/*"),
            ("host", "tv.example.net"),
        ]);
        let rid = HeaderValue::from_static("r1");
        let out = upstream_request_headers(&h, None, "http", &rid);
        for gone in ["connection", "x-secret", "keep-alive", "upgrade", "te"] {
            assert!(!out.contains_key(gone), "{gone} forwarded");
        }
        assert_eq!(out["accept"], "*/*");
        assert_eq!(out["host"], "tv.example.net");
    }

    #[test]
    fn forwarding_headers_are_added() {
        let h = incoming(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        let rid = HeaderValue::from_static("r1");
        let out = upstream_request_headers(&h, Some("10.1.2.3".parse().unwrap()), "http", &rid);
        assert_eq!(out["x-forwarded-for"], "203.0.113.9, 10.1.2.3");
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-request-id"], "r1");
    }

    #[test]
    fn request_ids_are_kept_when_sane() {
        assert_eq!(request_id(&incoming(&[("x-request-id", "abc-1")])), "abc-1");
        let long = "a".repeat(MAX_REQUEST_ID_BYTES + 1);
        let fresh = request_id(&incoming(&[("x-request-id", &long)]));
        assert_eq!(fresh.len(), 36);
        assert_eq!(request_id(&incoming(&[])).len(), 36);
    }
}
