//! Request smuggling (RFC 9112 §6.3): a request the router could frame differently from a
//! backend — both `Content-Length` and `Transfer-Encoding`, a `Transfer-Encoding` that does not
//! end in `chunked`, differing `Content-Length`s, obsolete line folding — is refused with 400
//! and the connection closed; nothing reaches the backend.

mod support;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends raw bytes; returns everything the router answered before closing (bounded wait).
async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(REQUEST_DEADLINE, stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the router neither answered nor closed: {request:?}"
    );
    String::from_utf8_lossy(&answer).into_owned()
}

const VECTORS: &[(&str, &str)] = &[
    (
        "CL.TE",
        "POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    ),
    (
        "TE.CL",
        "POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
    ),
    (
        "TE not ending in chunked",
        "POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE with another coding first",
        "POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "unknown TE",
        "POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "differing Content-Lengths",
        "POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ),
    (
        "obsolete line folding",
        "GET /api/x HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
    ),
];

#[tokio::test]
async fn each_smuggling_vector_is_refused_and_nothing_reaches_the_backend() {
    let bs = backends(&["b1"]).await;
    let r = api_router(&bs, "round_robin", "");
    for (name, request) in VECTORS {
        let answer = raw(r.addr(), request).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{name}: expected 400, got {answer:?}"
        );
        assert_eq!(bs[0].requests_served(), 0, "{name} reached the backend");
    }
    // A well-framed request on a fresh connection still goes through.
    assert_eq!(Client::new(r.addr()).get("/api/x").await.status, 200);
}

/// Chunked bodies the router cannot frame: each is answered 400 (not a bare close) and the
/// connection closes; the backend, which may have seen the head, never sees a whole request.
const BAD_CHUNKED: &[(&str, &str)] = &[
    (
        "chunk size not hex",
        "POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    ),
    (
        "chunk size overflowing 64 bits",
        "POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    ),
    (
        "chunk data not followed by CRLF",
        "POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
    ),
    (
        "bare LF after the chunk size",
        "POST /api/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
    ),
];

#[tokio::test]
async fn a_malformed_chunked_body_is_answered_400_and_the_connection_closed() {
    let bs = backends(&["b1"]).await;
    let r = api_router(&bs, "round_robin", "");
    for (name, request) in BAD_CHUNKED {
        let answer = raw(r.addr(), request).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{name}: expected 400, got {answer:?}"
        );
        assert_eq!(
            answer.matches("HTTP/1.1").count(),
            1,
            "{name}: one answer only: {answer:?}"
        );
    }
}
