//! The viewer's real address behind an L4 balancer: a PROXY protocol header (v1 or v2) on a
//! listener that expects it, or `X-Forwarded-For` from a trusted proxy. Rate limits (and
//! hashing, geo) see that address; headers from untrusted sources are ignored.

mod support;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    exchange_from("127.0.0.1", addr, bytes).await
}

/// Sends `bytes` from the loopback address `source`; the whole answer until the router closes.
async fn exchange_from(source: &str, addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(REQUEST_DEADLINE, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// A router with a PROXY-protocol listener (with more `listener` keys) in front of `bs`;
/// the listener's address.
fn proxy_listener(
    bs: &[TestBackend],
    listener: &str,
) -> (switchyard::RouterHandle, std::net::SocketAddr) {
    let listen: std::net::SocketAddr =
        format!("127.0.0.1:{}", switchyard_load::procs::free_port().unwrap())
            .parse()
            .unwrap();
    let r = router(&format!(
        "[[listeners]]\nid = \"lb\"\naddress = \"{listen}\"\nproxy_protocol = true\n{listener}\n{}{}",
        route("all", "/", "all"),
        pool_with("all", "round_robin", bs, "health = { kind = \"none\" }")
    ));
    (r, listen)
}

#[tokio::test]
async fn a_proxy_protocol_listener_takes_the_viewer_address_from_the_header() {
    let bs = backends(&["b1"]).await;
    let (_r, listen) = proxy_listener(&bs, "");
    let request = b"GET /x?echo=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let mut v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\n".to_vec();
    v1.extend_from_slice(request);
    let answer = exchange(listen, &v1).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("203.0.113.7"),
        "the backend sees the viewer: {answer}"
    );

    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[
        0x21, 0x11, 0x00, 0x0c, 198, 51, 100, 9, 10, 0, 0, 1, 0xc3, 0x50, 0, 80,
    ]);
    v2.extend_from_slice(request);
    let answer = exchange(listen, &v2).await;
    assert!(answer.contains("198.51.100.9"), "{answer}");

    // No header: the connection is closed, nothing answered.
    let answer = exchange(listen, request).await;
    assert!(answer.is_empty(), "{answer}");
}

#[tokio::test]
async fn forwarded_for_names_the_viewer_only_from_a_trusted_proxy() {
    let bs = backends(&["b1"]).await;
    let body = format!(
        "[[routes]]\nid = \"all\"\npath_prefix = \"/\"\npool = \"all\"\nrate_limit = {{ per_ip = 1, burst = 1 }}\n{}",
        pool_with("all", "round_robin", &bs, "health = { kind = \"none\" }")
    );
    // The tests' client is 127.0.0.1: trusted here, so each forwarded viewer has its own limit.
    let trusting = router_with("trusted_proxies = [\"127.0.0.0/8\"]", &body);
    let client = Client::new(trusting.addr());
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    assert_eq!(
        client.get_with("/a", &from("198.51.100.1")).await.status,
        200
    );
    assert_eq!(
        client.get_with("/a", &from("198.51.100.1")).await.status,
        429
    );
    let other = client.get_with("/a", &from("198.51.100.2")).await;
    assert_eq!(other.status, 200, "{}", other.text());
    // Not trusted: the header changes nothing, the peer is the client.
    let untrusting = router(&body);
    let client = Client::new(untrusting.addr());
    assert_eq!(
        client.get_with("/a", &from("198.51.100.1")).await.status,
        200
    );
    assert_eq!(
        client.get_with("/a", &from("198.51.100.2")).await.status,
        429
    );
}

#[tokio::test]
async fn a_proxy_header_is_taken_only_from_the_listed_balancers() {
    let bs = backends(&["b1"]).await;
    let (_r, listen) = proxy_listener(&bs, "proxy_protocol_from = [\"127.0.0.2/32\"]");
    let mut bytes = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\n".to_vec();
    bytes.extend_from_slice(b"GET /x?echo=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let answer = exchange_from("127.0.0.2", listen, &bytes).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("203.0.113.7"), "{answer}");
    let answer = exchange_from("127.0.0.1", listen, &bytes).await;
    assert!(answer.is_empty(), "not a listed balancer: {answer}");
}
