//! Differential: the router's request side (actix-http's HTTP/1 codec, what the listeners run)
//! against `httparse` read by the letter of RFC 9112, on the same bytes.
//!
//! The property: **actix never accepts a request head whose framing the reference reads
//! differently**, so a client cannot make the router and a strict peer disagree on where a
//! request ends. Rules, for each request in the bytes (pipelined, up to 4):
//!
//! 1. actix refusing is always fine: it is deliberately stricter (no `Host` on 1.1, two `Host`
//!    or two `Transfer-Encoding` headers, `Content-Length` with `Transfer-Encoding`,
//!    `Transfer-Encoding: identity`, an HTTP/1.0 POST without a length, a method or URI the
//!    `http` crate refuses...).
//! 2. The reference refusing (httparse error, a bad or conflicting `Content-Length`, a final
//!    coding other than chunked, `Transfer-Encoding` on HTTP/1.0) and actix accepting: failure.
//!    `Content-Length` with `Transfer-Encoding: chunked` is ambiguous (RFC 9112 §6.3: reject or
//!    close after): actix accepting it is a failure too.
//! 3. The reference needing more bytes and actix deciding (or the other way round): failure.
//! 4. Both accepting: method, version and (origin-form) path must be equal (actix drops a
//!    `#fragment`, which RFC 9112 does not allow in a request target), and the body
//!    framing: no body, `Content-Length: n` (0 counts as no body, as actix reads it) or
//!    chunked. Deliberate difference: actix reads a WebSocket upgrade or a CONNECT to the end
//!    of the connection ("stream"): nothing after it can be read as another request, so it
//!    agrees with any framing.
//! 5. After a body of known length, both must stand at the same byte for the next request
//!    (actix's body decoder, driven to its end, against the reference skipping n bytes).
//!    A chunked body ends the comparison (the chunk decoder is not compared here).
#![no_main]

use actix_codec::Decoder;
use actix_http::h1::{Codec, Message, MessageType};
use actix_http::{HttpMessage, Method, ServiceConfig, Version};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

/// Headers per request, as actix-http allows.
const MAX_HEADERS: usize = 96;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (actix only).
    Stream,
}

#[derive(Debug)]
enum Reference {
    Partial,
    #[allow(dead_code)] // read through Debug, in failure messages
    Refused(String),
    /// `Content-Length` next to `Transfer-Encoding: chunked`.
    Ambiguous,
    Head {
        method: String,
        path: String,
        version: u8,
        framing: Framing,
        len: usize,
    },
}

fn reference(buf: &[u8]) -> Reference {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Reference::Partial,
        Err(err) => return Reference::Refused(err.to_string()),
    };
    let version = req.version.unwrap_or(1);
    let mut codings: Vec<String> = Vec::new();
    let mut lengths: Vec<u64> = Vec::new();
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            if h.name.eq_ignore_ascii_case("transfer-encoding")
                || h.name.eq_ignore_ascii_case("content-length")
            {
                return Reference::Refused("framing header not ASCII".into());
            }
            continue;
        };
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            codings.extend(
                value
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .filter(|c| !c.is_empty()),
            );
        } else if h.name.eq_ignore_ascii_case("content-length") {
            // RFC 9110 §8.6: 1*DIGIT; a list of identical values may be read as one.
            for v in value.split(',') {
                let v = v.trim();
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Reference::Refused(format!("content-length {v:?}"));
                }
                match v.parse::<u64>() {
                    Ok(n) => lengths.push(n),
                    Err(_) => return Reference::Refused("content-length overflow".into()),
                }
            }
        }
    }
    let had_te = req
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    let framing = if had_te {
        if version == 0 {
            return Reference::Refused("transfer-encoding on HTTP/1.0".into());
        }
        if codings.last().map(String::as_str) != Some("chunked") {
            return Reference::Refused("final coding is not chunked".into());
        }
        if !lengths.is_empty() {
            return Reference::Ambiguous;
        }
        Framing::Chunked
    } else if let Some(&n) = lengths.first() {
        if lengths.iter().any(|&m| m != n) {
            return Reference::Refused("conflicting content-length".into());
        }
        if n == 0 {
            Framing::None
        } else {
            Framing::Length(n)
        }
    } else {
        Framing::None
    };
    Reference::Head {
        method: req.method.unwrap_or_default().to_string(),
        path: req.path.unwrap_or_default().to_string(),
        version,
        framing,
        len,
    }
}

thread_local! {
    /// actix-http's service config starts its date timer on the actix runtime, so one is made
    /// (and kept beside it); decoding itself needs no runtime.
    static CONFIG: (actix_rt::Runtime, ServiceConfig) = {
        let rt = actix_rt::Runtime::new().unwrap();
        let config = rt.block_on(async { ServiceConfig::default() });
        (rt, config)
    };
}

fuzz_target!(|data: &[u8]| {
    let mut codec = Codec::new(CONFIG.with(|(_, config)| config.clone()));
    let mut buf = BytesMut::from(data);
    for _ in 0..4 {
        let expected = reference(&buf);
        let before = buf.len();
        let got = codec.decode(&mut buf);
        let req = match (got, &expected) {
            (Err(_), _) => return, // rule 1
            (Ok(None), Reference::Partial) => return,
            (Ok(None), other) => panic!("actix needs more, the reference says {other:?}"),
            (Ok(Some(Message::Chunk(_))), _) => panic!("a body chunk before any head"),
            (Ok(Some(Message::Item(req))), _) => req,
        };
        let Reference::Head {
            method,
            path,
            version,
            framing,
            len,
        } = expected
        else {
            panic!(
                "actix accepted {} {} that the reference reads as {expected:?}",
                req.method(),
                req.uri()
            );
        };
        assert_eq!(before - buf.len(), len, "head lengths differ");
        assert_eq!(req.method().as_str(), method);
        let want = if version == 1 {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        };
        assert_eq!(req.version(), want);
        if path.starts_with('/') {
            // The `http` crate drops a fragment (which a request target may not carry).
            let without_fragment = path.split('#').next().unwrap_or_default();
            assert_eq!(req.uri().to_string(), without_fragment);
        }
        let actual = match codec.message_type() {
            MessageType::None => Framing::None,
            MessageType::Stream => Framing::Stream,
            MessageType::Payload if req.headers().contains_key("transfer-encoding") => {
                Framing::Chunked
            }
            MessageType::Payload => {
                let cl = req.headers().get("content-length").expect("a length");
                Framing::Length(cl.to_str().unwrap().trim().parse().unwrap())
            }
        };
        match (actual, framing) {
            (Framing::Stream, _) => {
                // Rule 4's deliberate difference, only where actix means it.
                let upgrade = req.headers().contains_key("upgrade");
                assert!(
                    upgrade || *req.method() == Method::CONNECT,
                    "stream framing"
                );
                return;
            }
            (a, b) => assert_eq!(a, b, "framing of {method} {path}"),
        }
        match framing {
            Framing::None => {}
            Framing::Length(n) => {
                // Rule 5: actix's body decoder must stop where the reference does.
                if (buf.len() as u64) < n {
                    return;
                }
                let mut body = 0u64;
                loop {
                    match codec.decode(&mut buf) {
                        Ok(Some(Message::Chunk(Some(chunk)))) => body += chunk.len() as u64,
                        Ok(Some(Message::Chunk(None))) => break,
                        other => panic!("body of {n} bytes: {other:?} after {body}"),
                    }
                }
                assert_eq!(body, n, "body lengths differ");
            }
            Framing::Chunked | Framing::Stream => return,
        }
    }
});
