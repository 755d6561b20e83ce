//! Heads between actix-web's types and an HTTP/2 backend's.
//!
//! The request starts from the head the HTTP/1.1 path writes
//! ([`crate::upstream::h1::codec::write_request_head`]), so both protocols forward exactly the
//! same headers (hop-by-hop ones dropped, `X-Forwarded-*` and `X-Request-Id` added, the same
//! rules for the router's own headers). HTTP/2 then takes `Host` as `:authority` and drops
//! `Transfer-Encoding`, which it forbids (its frames delimit the body); `TE: trailers`, the one
//! `TE` HTTP/2 allows and gRPC requires, is passed on when the client sent it.

use actix_web::http::header::{
    HeaderMap as AxHeaders, HeaderName as AxName, HeaderValue as AxValue,
};
use http::header::{HeaderName, HeaderValue};

use crate::upstream::h1::ExchangeError;

/// The request for an HTTP/2 backend: `h1_head` (a complete HTTP/1.1 request head, as the
/// router writes it) with `body`; `scheme` is `http` or `https` (the backend connection's).
pub fn request<B>(
    h1_head: &[u8],
    scheme: &'static str,
    te_trailers: bool,
    body: B,
) -> Result<http::Request<B>, ExchangeError> {
    let bad = |what: String| ExchangeError::BadRequest(what);
    let lines = h1_head.windows(2).filter(|w| w == b"\r\n").count();
    let mut headers = vec![httparse::EMPTY_HEADER; lines];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(h1_head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(bad("the request head is not valid HTTP".to_string())),
    }
    let (Some(method), Some(path)) = (parsed.method, parsed.path) else {
        return Err(bad("the request has no method or target".to_string()));
    };
    let mut authority = None;
    let mut out = http::HeaderMap::with_capacity(parsed.headers.len() + 1);
    for h in parsed.headers.iter() {
        if h.name.eq_ignore_ascii_case("host") {
            authority = Some(h.value);
            continue;
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            continue;
        }
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| bad(format!("header name {:?} is not valid", h.name)))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| bad(format!("the value of header {:?} is not valid", h.name)))?;
        out.append(name, value);
    }
    if te_trailers {
        out.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    let authority = authority.unwrap_or_default();
    let uri = http::Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|err| {
            bad(format!(
                "{:?} and {path:?} make no valid URI: {err}",
                String::from_utf8_lossy(authority)
            ))
        })?;
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| bad(format!("method {method:?} is not valid")))?;
    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = http::Version::HTTP_2;
    *request.headers_mut() = out;
    Ok(request)
}

/// True when the client's `TE` header lists `trailers` (a gRPC client's always does).
pub fn wants_trailers(headers: &AxHeaders) -> bool {
    headers.get_all("te").any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
    })
}

/// A backend's header map in actix-web's types (the same bytes, the older `http` types).
/// Connection-specific headers cannot be in an HTTP/2 answer (h2 refuses them), so nothing is
/// filtered here.
pub fn headers(from: &http::HeaderMap) -> AxHeaders {
    let mut out = AxHeaders::with_capacity(from.len());
    for (name, value) in from {
        // Both sides hold validated bytes of the same grammar: these conversions cannot fail.
        if let (Ok(name), Ok(value)) = (
            AxName::from_bytes(name.as_str().as_bytes()),
            AxValue::from_bytes(value.as_bytes()),
        ) {
            out.append(name, value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::h2::body::RequestBody;

    #[test]
    fn the_h1_head_becomes_pseudo_headers_and_loses_its_framing() {
        let head = b"POST /pkg.Svc/Call?x=1 HTTP/1.1\r\nhost: api.test:8443\r\ncontent-type: application/grpc\r\nx-forwarded-for: 10.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n";
        let req = request(head, "https", true, RequestBody::Empty).unwrap();
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(
            req.uri().to_string(),
            "https://api.test:8443/pkg.Svc/Call?x=1"
        );
        assert_eq!(req.headers()["content-type"], "application/grpc");
        assert_eq!(req.headers()["x-forwarded-for"], "10.0.0.1");
        assert_eq!(req.headers()["te"], "trailers");
        assert!(!req.headers().contains_key("host"));
        assert!(!req.headers().contains_key("transfer-encoding"));
    }

    #[test]
    fn an_authority_that_is_not_one_is_the_clients_error() {
        let head = b"GET / HTTP/1.1\r\nhost: a b\r\n\r\n";
        match request(head, "http", false, RequestBody::Empty) {
            Err(ExchangeError::BadRequest(why)) => assert!(why.contains("a b"), "{why}"),
            Err(err) => panic!("not the client's error: {err:?}"),
            Ok(_) => panic!("an invalid authority was accepted"),
        }
    }

    #[test]
    fn te_trailers_is_found_among_other_codings() {
        let mut h = AxHeaders::new();
        h.insert(
            AxName::from_static("te"),
            AxValue::from_static("gzip, Trailers"),
        );
        assert!(wants_trailers(&h));
        assert!(!wants_trailers(&AxHeaders::new()));
    }
}
