//! Header names and rules of the request path: which headers are hop-by-hop, and request ids.
//! Writing and parsing heads lives in [`super::h1::codec`].

use actix_web::http::header::{self as ax, HeaderValue};

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
    fn request_ids_are_kept_when_sane() {
        assert_eq!(request_id(&incoming(&[("x-request-id", "abc-1")])), "abc-1");
        let long = "a".repeat(MAX_REQUEST_ID_BYTES + 1);
        let fresh = request_id(&incoming(&[("x-request-id", &long)]));
        assert_eq!(fresh.len(), 36);
        assert_eq!(request_id(&incoming(&[])).len(), 36);
    }
}
