//! HTTP/1.1 pipelining (RFC 9112 §9.3): requests sent back to back on one connection, before
//! any answer, are answered in order, each framed by its own request — a HEAD's answer has no
//! body, an HTTP/1.0 request gets an HTTP/1.0 answer that is never chunked, and a request with
//! `Connection: close` is the last one answered (§9.6): the connection closes after it and
//! nothing behind it reaches a backend.

mod support;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One kind of request and how its answer must be framed.
#[derive(Debug, Clone, Copy)]
struct Kind {
    name: &'static str,
    request: &'static str,
    /// `HTTP/1.x` minor version of the answer.
    minor: u8,
    /// Body bytes in the answer (none for HEAD).
    body: usize,
    head: bool,
    /// The connection ends after this answer.
    closes: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        name: "GET",
        request: "GET /api/x?bytes=20 HTTP/1.1\r\nHost: a\r\n\r\n",
        minor: 1,
        body: 20,
        head: false,
        closes: false,
    },
    Kind {
        name: "HEAD",
        request: "HEAD /api/x?bytes=20 HTTP/1.1\r\nHost: a\r\n\r\n",
        minor: 1,
        body: 0,
        head: true,
        closes: false,
    },
    Kind {
        name: "streamed GET",
        request: "GET /api/x?bytes=30&chunk_bytes=10&chunk_ms=20 HTTP/1.1\r\nHost: a\r\n\r\n",
        minor: 1,
        body: 30,
        head: false,
        closes: false,
    },
    Kind {
        name: "POST with a body",
        request: "POST /api/x?bytes=5 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd",
        minor: 1,
        body: 5,
        head: false,
        closes: false,
    },
    Kind {
        name: "POST with a chunked body",
        request: "POST /api/x?bytes=6 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        minor: 1,
        body: 6,
        head: false,
        closes: false,
    },
    Kind {
        name: "HTTP/1.0 keep-alive GET",
        request: "GET /api/x?bytes=20 HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
        minor: 0,
        body: 20,
        head: false,
        closes: false,
    },
    Kind {
        name: "HTTP/1.0 keep-alive streamed GET",
        // An HTTP/1.0 answer cannot be chunked: its body ends when the connection does.
        request: "GET /api/x?bytes=30&chunk_bytes=10&chunk_ms=20 HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
        minor: 0,
        body: 30,
        head: false,
        closes: true,
    },
    Kind {
        name: "GET with Connection: close",
        request: "GET /api/x?bytes=20 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        minor: 1,
        body: 20,
        head: false,
        closes: true,
    },
];

/// The last request of every run: answered unless an earlier one closed the connection.
const LAST: Kind = Kind {
    name: "final GET with Connection: close",
    request: "GET /api/x?bytes=3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    minor: 1,
    body: 3,
    head: false,
    closes: true,
};

/// Writes `requests` in one write and reads until the router closes (bounded wait).
async fn pipeline(addr: std::net::SocketAddr, requests: &[Kind]) -> Vec<u8> {
    let bytes: String = requests.iter().map(|k| k.request).collect();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let names: Vec<_> = requests.iter().map(|k| k.name).collect();
    let read = tokio::time::timeout(REQUEST_DEADLINE, stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "{names:?}: the router neither finished answering nor closed; read so far: {:?}",
        String::from_utf8_lossy(&answer)
    );
    answer
}

/// Checks that `answer` holds, in order, one correctly framed answer per request up to the
/// first that closes the connection, and nothing more. Returns how many were answered.
fn check_answers(requests: &[Kind], answer: &[u8]) -> usize {
    let names: Vec<_> = requests.iter().map(|k| k.name).collect();
    let shown = String::from_utf8_lossy(answer);
    let mut rest = answer;
    let mut answered = 0;
    for kind in requests {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut head = httparse::Response::new(&mut headers);
        let len = match head.parse(rest) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!(
                "{names:?}: no whole answer for {:?} ({other:?}); all answers: {shown:?}",
                kind.name
            ),
        };
        assert_eq!(
            head.code,
            Some(200),
            "{names:?}: {:?}: {shown:?}",
            kind.name
        );
        assert_eq!(
            head.version,
            Some(kind.minor),
            "{names:?}: {:?} answered in the wrong HTTP version: {shown:?}",
            kind.name
        );
        let header = |name: &str| {
            head.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
        };
        let chunked = header("transfer-encoding").is_some_and(|te| te.contains("chunked"));
        let length = header("content-length").map(|v| v.parse::<usize>().unwrap());
        rest = &rest[len..];
        let body_len = if kind.head {
            0
        } else if chunked {
            assert_eq!(
                kind.minor, 1,
                "{names:?}: {:?}: a chunked answer to HTTP/1.0: {shown:?}",
                kind.name
            );
            let (body, used) = dechunk(rest).unwrap_or_else(|| {
                panic!("{names:?}: {:?}: bad chunked body: {shown:?}", kind.name)
            });
            rest = &rest[used..];
            body
        } else if let Some(length) = length {
            assert!(
                rest.len() >= length,
                "{names:?}: {:?}: body shorter than its length: {shown:?}",
                kind.name
            );
            rest = &rest[length..];
            length
        } else {
            assert!(
                kind.closes,
                "{names:?}: {:?}: a body delimited by the close on a connection that stays open: {shown:?}",
                kind.name
            );
            let n = rest.len();
            rest = &[];
            n
        };
        assert_eq!(body_len, kind.body, "{names:?}: {:?}: {shown:?}", kind.name);
        answered += 1;
        if kind.closes {
            break;
        }
    }
    assert!(
        rest.is_empty(),
        "{names:?}: bytes after the last answer: {:?}",
        String::from_utf8_lossy(rest)
    );
    answered
}

/// A chunked body: its length and the bytes it took, or `None` if malformed.
fn dechunk(mut bytes: &[u8]) -> Option<(usize, usize)> {
    let start = bytes.len();
    let mut total = 0;
    loop {
        let line_end = bytes.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&bytes[..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            // no trailers are expected
            if !bytes.starts_with(b"\r\n") {
                return None;
            }
            return Some((total, start - bytes.len() + 2));
        }
        if bytes.len() < size + 2 || &bytes[size..size + 2] != b"\r\n" {
            return None;
        }
        total += size;
        bytes = &bytes[size + 2..];
    }
}

#[tokio::test]
async fn every_pair_of_pipelined_requests_is_answered_in_order_with_its_own_framing() {
    let bs = backends(&["b1"]).await;
    let r = api_router(&bs, "round_robin", "");
    for first in KINDS {
        for second in KINDS {
            let requests = [*first, *second, LAST];
            let served_before = bs[0].requests_served();
            let answer = pipeline(r.addr(), &requests).await;
            let answered = check_answers(&requests, &answer);
            let expected = requests.iter().position(|k| k.closes).unwrap() + 1;
            assert_eq!(
                answered, expected,
                "{:?} then {:?}: answered {answered} requests",
                first.name, second.name
            );
            // Nothing behind a closing request reached the backend.
            eventually(
                "the backend counts what it served",
                REQUEST_DEADLINE,
                || bs[0].requests_served() - served_before == expected as u64,
            )
            .await;
        }
    }
}

#[tokio::test]
async fn fifty_pipelined_requests_in_one_write_are_answered_in_order() {
    let bs = backends(&["b1"]).await;
    let r = api_router(&bs, "round_robin", "");
    let mut bytes = String::new();
    for n in 1..=50 {
        let close = if n == 50 { "Connection: close\r\n" } else { "" };
        bytes += &format!("GET /api/x?bytes={n} HTTP/1.1\r\nHost: a\r\n{close}\r\n");
    }
    let mut stream = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
    stream.write_all(bytes.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(REQUEST_DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("the router answered all fifty and closed")
        .unwrap();
    let mut rest = &answer[..];
    for n in 1..=50usize {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut head = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = head.parse(rest) else {
            panic!("answer {n} missing: {:?}", String::from_utf8_lossy(rest));
        };
        let length: usize = head
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .expect("content-length");
        assert_eq!(length, n, "answer {n} out of order");
        rest = &rest[len + length..];
    }
    assert!(rest.is_empty(), "bytes after the fiftieth answer");
}

#[tokio::test]
async fn a_client_that_half_closes_after_pipelining_still_gets_every_answer() {
    let bs = backends(&["b1"]).await;
    let r = api_router(&bs, "round_robin", "");
    let requests = [KINDS[0], KINDS[1], KINDS[2]];
    let bytes: String = requests.iter().map(|k| k.request).collect();
    let mut stream = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
    stream.write_all(bytes.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(REQUEST_DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("the router answered and closed")
        .unwrap();
    // The answers end with the close; the last one is chunked, so still framed.
    let mut expected = requests.to_vec();
    expected[2].closes = true;
    let answered = check_answers(&expected, &answer);
    assert_eq!(answered, 3);
}
