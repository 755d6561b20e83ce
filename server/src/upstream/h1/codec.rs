//! HTTP/1.1 framing for the backend side, as pure functions over buffers: writing a request
//! head from actix-web's request, parsing a response head into actix-web's types (header
//! values are slices of the read buffer, not copies), and decoding chunked bodies.

use std::mem::MaybeUninit;
use std::net::IpAddr;

use actix_web::http::Method;
use actix_web::http::header::{CONNECTION, HeaderMap, HeaderName, HeaderValue};
use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::headers::{
    FORWARDED_FOR, FORWARDED_FOR_NAME, FORWARDED_PROTO, REQUEST_ID, is_hop_by_hop,
};

/// Largest response head accepted from a backend.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most headers in a response head.
pub const MAX_HEADERS: usize = 128;
/// Longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// How the request body is framed towards the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body and no length header (a GET as most clients send it).
    None,
    Length(u64),
    Chunked,
}

/// What the router adds to every forwarded request.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    pub client_ip: Option<IpAddr>,
    pub proto: &'static str,
    pub request_id: &'a [u8],
    /// `Host` to send when the client sent none (an HTTP/1.0 client).
    pub fallback_host: &'a str,
    /// Set when the request goes to another region's router: this region's name, sent as
    /// `X-Switchyard-Hop` so it is never forwarded again.
    pub hop: Option<&'a str>,
}

/// Header names a `Connection` header lists (besides `close` and `keep-alive`).
fn connection_tokens<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<Vec<u8>> {
    let mut tokens = Vec::new();
    for value in values {
        for token in value.split(|b| *b == b',') {
            let token = token.trim_ascii().to_ascii_lowercase();
            if !token.is_empty() && token != b"close" && token != b"keep-alive" {
                tokens.push(token);
            }
        }
    }
    tokens
}

/// Writes a request head for the backend: the client's headers minus hop-by-hop ones (and
/// those its `Connection` header names), minus `Expect` (already answered) and the client's
/// framing headers; plus `X-Forwarded-For` (extended), `X-Forwarded-Proto`, `X-Request-Id`
/// and the framing of the body as it will be sent.
pub fn write_request_head(
    out: &mut BytesMut,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    fwd: &Forwarding<'_>,
    framing: RequestFraming,
) {
    out.reserve(256 + target.len());
    out.put_slice(method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    let listed = if headers.contains_key(CONNECTION) {
        connection_tokens(headers.get_all(CONNECTION).map(|v| v.as_bytes()))
    } else {
        Vec::new()
    };
    let mut has_host = false;
    let mut forwarded_for_seen = false;
    for (name, value) in headers.iter() {
        let n = name.as_str();
        if is_hop_by_hop(n)
            || matches!(
                n,
                "expect" | "content-length" | FORWARDED_PROTO | REQUEST_ID
            )
            || n == FORWARDED_FOR
            // The router's own headers: a hop header is written below by a router that
            // forwards, never passed on from a client; the session token is for routers (kept
            // when forwarding to another region's router, which needs it).
            || n == crate::headers::HOP_HEADER
            // Only the router marks a mirrored request: a client's marker would make a
            // backend take a real request for a shadow one.
            || n == crate::headers::SHADOW_HEADER
            || (n == crate::headers::SESSION_HEADER && fwd.hop.is_none())
            // `Connection: host` cannot take the Host header away.
            || (n != "host"
                && !listed.is_empty()
                && listed.iter().any(|t| t == n.as_bytes()))
        {
            forwarded_for_seen |= n == FORWARDED_FOR;
            continue;
        }
        has_host |= n == "host";
        put_header(out, n.as_bytes(), value.as_bytes());
    }
    if !has_host {
        put_header(out, b"host", fwd.fallback_host.as_bytes());
    }
    // X-Forwarded-For: every earlier hop, then the client as this router saw it.
    out.put_slice(b"x-forwarded-for: ");
    let mut first = true;
    if forwarded_for_seen {
        for value in headers.get_all(&FORWARDED_FOR_NAME) {
            if !first {
                out.put_slice(b", ");
            }
            out.put_slice(value.as_bytes());
            first = false;
        }
    }
    if let Some(ip) = fwd.client_ip {
        if !first {
            out.put_slice(b", ");
        }
        put_ip(out, ip);
    }
    out.put_slice(b"\r\n");
    put_header(out, FORWARDED_PROTO.as_bytes(), fwd.proto.as_bytes());
    put_header(out, REQUEST_ID.as_bytes(), fwd.request_id);
    if let Some(region) = fwd.hop {
        put_header(
            out,
            crate::headers::HOP_HEADER.as_bytes(),
            region.as_bytes(),
        );
    }
    match framing {
        RequestFraming::None => {}
        RequestFraming::Length(n) => {
            out.put_slice(b"content-length: ");
            put_decimal(out, n);
            out.put_slice(b"\r\n");
        }
        RequestFraming::Chunked => put_header(out, b"transfer-encoding", b"chunked"),
    }
    out.put_slice(b"\r\n");
}

fn put_header(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// Writes `n` in decimal: `core::fmt` costs several times more, once per request.
fn put_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[at..]);
}

/// Writes an address as `Display` does; IPv4 (every request on most listeners) without
/// `core::fmt`.
fn put_ip(out: &mut BytesMut, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut text = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                len += 1;
            }
            out.put_slice(&text[..len]);
        }
        IpAddr::V6(_) => {
            let _ = std::fmt::Write::write_fmt(&mut BytesMutWriter(out), format_args!("{ip}"));
        }
    }
}

struct BytesMutWriter<'a>(&'a mut BytesMut);

impl std::fmt::Write for BytesMutWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.put_slice(s.as_bytes());
        Ok(())
    }
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the backend closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    /// Ready for the client: hop-by-hop and framing headers removed (a 304 keeps its length).
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The backend's `Content-Length`, if it sent a valid one.
    pub content_length: Option<u64>,
    /// The connection may carry another request once this body is read.
    pub reusable: bool,
}

/// Why a backend's answer could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("malformed response head: {0}")]
    Head(String),
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("malformed chunked body: {0}")]
    Chunk(&'static str),
}

/// Parses a response head from the front of `buf`, consuming it. `Ok(None)`: need more bytes.
/// Interim 1xx answers are consumed and skipped.
pub fn parse_response_head(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<ResponseHead>, ParseError> {
    loop {
        // The exchange calls this before its first read too: nothing to parse yet.
        if buf.is_empty() {
            return Ok(None);
        }
        // Left uninitialised: filling 128 empty headers first cost more than parsing a head.
        let mut raw = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut resp, buf, &mut raw);
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
                return Err(ParseError::TooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(err) => return Err(ParseError::Head(err.to_string())),
        };
        let status = resp.code.unwrap_or(0);
        if status == 101 {
            return Err(ParseError::Head(
                "the backend switched protocols, which this route does not proxy".to_string(),
            ));
        }
        if (100..200).contains(&status) {
            buf.advance(len);
            continue;
        }
        let http11 = resp.version == Some(1);
        // Offsets of names and values inside the head, so values can be zero-copy slices:
        // on the stack for the usual few headers, in a Vec for a long head.
        let base = buf.as_ptr() as usize;
        let span = |h: &httparse::Header<'_>| {
            let n = h.name.as_ptr() as usize - base;
            let v = h.value.as_ptr() as usize - base;
            (n, h.name.len(), v, h.value.len())
        };
        let mut few = [(0, 0, 0, 0); FEW_HEADERS];
        let many: Vec<Span>;
        let spans: &[Span] = if resp.headers.len() <= FEW_HEADERS {
            for (slot, h) in few.iter_mut().zip(resp.headers.iter()) {
                *slot = span(h);
            }
            &few[..resp.headers.len()]
        } else {
            many = resp.headers.iter().map(span).collect();
            &many
        };
        let head: Bytes = buf.split_to(len).freeze();
        return build_head(&head, spans, status, http11, head_request).map(Some);
    }
}

/// Where a header's name and value lie in a head: name offset and length, value offset and
/// length.
type Span = (usize, usize, usize, usize);

/// Response heads with at most this many headers (most) keep their spans on the stack.
const FEW_HEADERS: usize = 16;

fn build_head(
    head: &Bytes,
    spans: &[Span],
    status: u16,
    http11: bool,
    head_request: bool,
) -> Result<ResponseHead, ParseError> {
    let name_of = |&(n, nl, _, _): &Span| &head[n..n + nl];
    let mut chunked = false;
    let mut other_coding = false;
    let mut content_length: Option<u64> = None;
    let (mut says_close, mut says_keep_alive) = (false, false);
    let mut listed: Vec<Vec<u8>> = Vec::new();
    for span in spans {
        let name = name_of(span);
        let value = &head[span.2..span.2 + span.3];
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Chunked must be the last coding; anything else is read until close.
            let last = value
                .rsplit(|b| *b == b',')
                .next()
                .unwrap_or(b"")
                .trim_ascii();
            chunked = last.eq_ignore_ascii_case(b"chunked");
            other_coding = !chunked;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let digits = value.trim_ascii();
            let parsed =
                (!digits.is_empty() && digits.len() <= 19 && digits.iter().all(u8::is_ascii_digit))
                    .then(|| std::str::from_utf8(digits).ok()?.parse::<u64>().ok())
                    .flatten()
                    .ok_or_else(|| ParseError::Head("invalid content-length".to_string()))?;
            if content_length.is_some_and(|c| c != parsed) {
                return Err(ParseError::Head(
                    "conflicting content-length headers".to_string(),
                ));
            }
            content_length = Some(parsed);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    says_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    says_keep_alive = true;
                } else if !token.is_empty() {
                    listed.push(token.to_ascii_lowercase());
                }
            }
        }
    }
    let has_coding = chunked || other_coding;
    // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless told not to.
    // A Transfer-Encoding next to a Content-Length, or on HTTP/1.0, is a framing conflict
    // (RFC 9112 §6.1, §6.3): the body is read as the coding says, and the connection is closed.
    let close = says_close
        || other_coding
        || (!http11 && !says_keep_alive)
        || (has_coding && (content_length.is_some() || !http11));
    let framing = if head_request || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if other_coding {
        // A coding other than chunked overrides any length: the body runs until close.
        Framing::Close
    } else if let Some(n) = content_length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    let mut headers = HeaderMap::with_capacity(spans.len());
    for span in spans {
        let raw_name = name_of(span);
        let Ok(name) = HeaderName::from_bytes(raw_name) else {
            return Err(ParseError::Head("invalid header name".to_string()));
        };
        let n = name.as_str();
        let keep_length = status == 304 && n == "content-length";
        if is_hop_by_hop(n)
            || (n == "content-length" && !keep_length)
            || listed.iter().any(|t| t == n.as_bytes())
        {
            continue;
        }
        let value = head.slice(span.2..span.2 + span.3);
        match HeaderValue::from_maybe_shared(value) {
            Ok(value) => headers.append(name, value),
            Err(_) => return Err(ParseError::Head(format!("invalid value for header {n}"))),
        }
    }
    Ok(ResponseHead {
        status,
        headers,
        framing,
        content_length,
        reusable: !close && framing != Framing::Close,
    })
}

/// Incremental decoder of a chunked body.
#[derive(Debug, Clone, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// One step of decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Data(Bytes),
    /// Read more from the connection, then call again.
    NeedMore,
    /// The body ended (trailers were consumed and dropped).
    Done,
}

impl ChunkedDecoder {
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ParseError> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(end) = find_crlf(buf) else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(ParseError::Chunk("chunk-size line too long"));
                        }
                        return Ok(Decoded::NeedMore);
                    };
                    let size = parse_chunk_size(&buf[..end + 2])?;
                    buf.advance(end + 2);
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = (buf.len() as u64).min(left) as usize;
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ParseError::Chunk("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(end) = find_crlf(buf) else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(ParseError::Chunk("trailer line too long"));
                        }
                        return Ok(Decoded::NeedMore);
                    };
                    buf.advance(end + 2);
                    if end == 0 {
                        self.state = ChunkState::Done;
                    }
                }
                ChunkState::Done => return Ok(Decoded::Done),
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// The size on a chunk-size line (`line` ends with its CRLF), through httparse's parser
/// (hex digits, optional extensions). A size of 2^60 or more is refused: no backend sends one,
/// and a length that large is an attack on the counter, not a body.
fn parse_chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    match httparse::parse_chunk_size(line) {
        Ok(httparse::Status::Complete((_, size))) if size < 1 << 60 => Ok(size),
        _ => Err(ParseError::Chunk("bad chunk size")),
    }
}

/// Frames one piece of a chunked request body.
pub fn put_chunk(out: &mut BytesMut, data: &[u8]) {
    let _ = std::fmt::Write::write_fmt(
        &mut BytesMutWriter(out),
        format_args!("{:x}\r\n", data.len()),
    );
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// The end of a chunked request body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn fwd() -> Forwarding<'static> {
        Forwarding {
            client_ip: Some("10.1.2.3".parse().unwrap()),
            proto: "http",
            request_id: b"rid-1",
            fallback_host: "10.0.0.1:8080",
            hop: None,
        }
    }

    fn head_text(method: Method, target: &str, h: &HeaderMap, framing: RequestFraming) -> String {
        let mut out = BytesMut::new();
        write_request_head(&mut out, &method, target, h, &fwd(), framing);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn a_request_head_keeps_end_to_end_headers_and_adds_forwarding() {
        let h = headers(&[
            ("host", "tv.example.net"),
            ("accept", "*/*"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("te", "trailers"),
            ("expect", "100-continue"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "client-chosen"),
            ("content-length", "5"),
        ]);
        let text = head_text(Method::POST, "/api/x?y=1", &h, RequestFraming::Length(5));
        assert!(text.starts_with("POST /api/x?y=1 HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("host: tv.example.net\r\n"));
        assert!(text.contains("accept: */*\r\n"));
        for gone in [
            "connection",
            "x-hop",
            "te:",
            "expect",
            "https",
            "client-chosen",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert!(
            text.contains("x-forwarded-for: 203.0.113.9, 10.1.2.3\r\n"),
            "{text}"
        );
        assert!(text.contains("x-forwarded-proto: http\r\n"));
        assert!(text.contains("x-request-id: rid-1\r\n"));
        assert_eq!(text.matches("content-length").count(), 1, "{text}");
        assert!(text.ends_with("content-length: 5\r\n\r\n"), "{text}");
    }

    #[test]
    fn the_routers_own_headers_from_a_client_never_reach_a_backend() {
        let h = headers(&[
            ("host", "tv.example.net"),
            ("connection", "host, keep-alive"),
            ("x-switchyard-hop", "eu-west"),
            ("x-switchyard-session", "a-token"),
        ]);
        let text = head_text(Method::GET, "/", &h, RequestFraming::None);
        // `Connection: host` does not take the Host header away.
        assert!(text.contains("host: tv.example.net\r\n"), "{text}");
        assert_eq!(text.matches("host:").count(), 1, "{text}");
        assert!(!text.contains("x-switchyard-hop"), "{text}");
        assert!(!text.contains("x-switchyard-session"), "{text}");
        // Forwarded to another region's router: this router's own hop, and the session
        // token that router needs.
        let mut out = BytesMut::new();
        let to_region = Forwarding {
            hop: Some("us-east"),
            ..fwd()
        };
        write_request_head(
            &mut out,
            &Method::GET,
            "/",
            &h,
            &to_region,
            RequestFraming::None,
        );
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.contains("x-switchyard-hop: us-east\r\n"), "{text}");
        assert!(!text.contains("eu-west"), "{text}");
        assert!(text.contains("x-switchyard-session: a-token\r\n"), "{text}");
    }

    #[test]
    fn a_request_without_host_gets_the_backends() {
        let text = head_text(Method::GET, "/", &headers(&[]), RequestFraming::None);
        assert!(text.contains("host: 10.0.0.1:8080\r\n"), "{text}");
        assert!(!text.contains("content-length"), "{text}");
    }

    #[test]
    fn chunked_request_bodies_are_framed_as_chunked() {
        let h = headers(&[("host", "x"), ("transfer-encoding", "chunked")]);
        let text = head_text(Method::PUT, "/up", &h, RequestFraming::Chunked);
        assert_eq!(
            text.matches("transfer-encoding: chunked").count(),
            1,
            "{text}"
        );
        let mut out = BytesMut::new();
        put_chunk(&mut out, b"hello world");
        out.put_slice(LAST_CHUNK);
        assert_eq!(&out[..], b"b\r\nhello world\r\n0\r\n\r\n");
    }

    fn parse(text: &str, head_request: bool) -> (ResponseHead, BytesMut) {
        let mut buf = BytesMut::from(text.as_bytes());
        let head = parse_response_head(&mut buf, head_request)
            .unwrap()
            .expect("complete");
        (head, buf)
    }

    #[test]
    fn a_response_head_is_parsed_and_cleaned() {
        let (head, rest) = parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Backend-Id: api-1\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nhello",
            false,
        );
        assert_eq!(head.status, 200);
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.reusable);
        assert_eq!(head.headers.get("x-backend-id").unwrap(), "api-1");
        assert!(head.headers.get("content-length").is_none());
        assert!(head.headers.get("keep-alive").is_none());
        assert_eq!(&rest[..], b"hello");
    }

    #[test]
    fn framing_follows_the_rules() {
        let f = |t: &str, head: bool| parse(t, head).0;
        let chunked = f(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!(
            (chunked.framing, chunked.reusable),
            (Framing::Chunked, true)
        );
        let close = f("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!((close.framing, close.reusable), (Framing::Close, false));
        let asked = f(
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\n",
            false,
        );
        assert_eq!((asked.framing, asked.reusable), (Framing::Length(9), false));
        let old = f("HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\n", false);
        assert!(!old.reusable, "HTTP/1.0 closes unless it says keep-alive");
        let old_ka = f(
            "HTTP/1.0 200 OK\r\nContent-Length: 9\r\nConnection: keep-alive\r\n\r\n",
            false,
        );
        assert!(old_ka.reusable);
        let head = f("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", true);
        assert_eq!(
            (head.framing, head.content_length),
            (Framing::Empty, Some(5000))
        );
        let not_modified = f(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
            false,
        );
        assert_eq!(not_modified.framing, Framing::Empty);
        assert_eq!(not_modified.headers.get("content-length").unwrap(), "7");
        let both = f(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!(both.framing, Framing::Chunked, "chunked wins over a length");
    }

    #[test]
    fn interim_answers_are_skipped_and_partial_heads_wait() {
        let (head, _) = parse(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert_eq!(head.status, 201);
        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Le"[..]);
        assert!(parse_response_head(&mut partial, false).unwrap().is_none());
        assert!(
            parse_response_head(&mut BytesMut::new(), false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn long_heads_keep_every_header() {
        let mut text = String::from("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
        for i in 0..40 {
            text.push_str(&format!("x-h{i}: v{i}\r\n"));
        }
        text.push_str("\r\n");
        let (head, _) = parse(&text, false);
        assert_eq!(head.headers.len(), 40);
        assert_eq!(head.headers.get("x-h39").unwrap(), "v39");
        assert_eq!(head.framing, Framing::Length(0));
    }

    #[test]
    fn addresses_and_lengths_are_written_as_display_writes_them() {
        for ip in [
            "10.1.2.3",
            "0.0.0.0",
            "255.255.255.255",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = BytesMut::new();
            put_ip(&mut out, ip);
            assert_eq!(&out[..], ip.to_string().as_bytes());
        }
        for n in [0, 7, 10, 1234567890, u64::MAX] {
            let mut out = BytesMut::new();
            put_decimal(&mut out, n);
            assert_eq!(&out[..], n.to_string().as_bytes());
        }
    }

    #[test]
    fn bad_heads_are_errors_not_panics() {
        for bad in [
            "SPDY/9 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(bad.as_bytes());
            assert!(parse_response_head(&mut buf, false).is_err(), "{bad:?}");
        }
        let mut huge = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        huge.extend_from_slice(&vec![b'a'; MAX_HEAD_BYTES]);
        assert_eq!(
            parse_response_head(&mut huge, false).unwrap_err(),
            ParseError::TooLarge
        );
    }

    fn decode_all(input: &[u8], step: usize) -> Result<Vec<u8>, ParseError> {
        let mut dec = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match dec.decode(&mut buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::Done => return Ok(out),
                Decoded::NeedMore => {
                    assert!(fed < input.len(), "ran out of input");
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for step in [1, 2, 3, 7, 64] {
            assert_eq!(
                decode_all(body, step).unwrap(),
                b"hello world",
                "step {step}"
            );
        }
    }

    #[test]
    fn bad_chunks_are_errors() {
        assert!(decode_all(b"zz\r\nhello\r\n0\r\n\r\n", 64).is_err());
        assert!(decode_all(b"5\r\nhelloXX0\r\n\r\n", 64).is_err());
        assert!(decode_all(b"ffffffffffffffff\r\n", 64).is_err());
    }
}
