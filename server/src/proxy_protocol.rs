//! The PROXY protocol (HAProxy's, v1 text and v2 binary) on listeners behind an L4 balancer
//! that sends it (`proxy_protocol = true`, opt-in like HAProxy's `accept-proxy`): the header
//! names the viewer's address, which then counts as the connection's peer — for rate limits,
//! hashing, geo and `X-Forwarded-For`. A connection on such a listener without a valid header
//! within [`HEADER_TIMEOUT`] is closed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Time to receive the whole header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 line is at most 107 bytes; a v2 header with TCP6 addresses 52 (TLVs may follow).
const MAX_HEADER: usize = 536;

/// What a header says: the source address (`None` for v2 LOCAL, health checks of the
/// balancer itself, or v1 UNKNOWN) and how many bytes it took.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    pub source: Option<SocketAddr>,
    pub len: usize,
}

/// Why the bytes a connection opened with are not a PROXY header the router takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("not a PROXY protocol header")]
    NotProxy,
    #[error("PROXY v1 line longer than 107 bytes")]
    V1TooLong,
    #[error("PROXY v1 line is not text")]
    V1NotText,
    #[error("PROXY v1: bad source {0:?}")]
    V1Source(String),
    #[error("PROXY v1: {addr} is not {proto}")]
    V1Family { addr: String, proto: String },
    #[error("PROXY v1: bad port {0:?}")]
    V1Port(String),
    #[error("PROXY v1: malformed line {0:?}")]
    V1Malformed(String),
    #[error("PROXY v2: unknown version")]
    V2Version,
    #[error("PROXY v2: header too long")]
    V2TooLong,
    #[error("PROXY v2: unknown command")]
    V2Command,
}

/// Parses a header at the start of `buf`: `Ok(None)` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<Header>, HeaderError> {
    if buf.len() >= 12 && &buf[..12] == V2_SIGNATURE {
        return parse_v2(buf);
    }
    if buf.len() < 12 && V2_SIGNATURE.starts_with(buf) {
        return Ok(None); // the start of a v2 header, split across segments
    }
    if buf.len() < 6 {
        return if b"PROXY "[..buf.len()] == *buf || V2_SIGNATURE.starts_with(buf) {
            Ok(None)
        } else {
            Err(HeaderError::NotProxy)
        };
    }
    if &buf[..6] != b"PROXY " {
        return Err(HeaderError::NotProxy);
    }
    let end = buf.windows(2).position(|w| w == b"\r\n");
    if end.is_some_and(|end| end > 105) {
        return Err(HeaderError::V1TooLong);
    }
    let Some(end) = end else {
        return match buf.len() >= 107 {
            true => Err(HeaderError::V1TooLong),
            false => Ok(None),
        };
    };
    let line = std::str::from_utf8(&buf[6..end]).map_err(|_| HeaderError::V1NotText)?;
    let parts: Vec<&str> = line.split(' ').collect();
    let source = match parts.as_slice() {
        ["UNKNOWN", ..] => None,
        [proto @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: IpAddr = src
                .parse()
                .map_err(|_| HeaderError::V1Source(src.to_string()))?;
            if (*proto == "TCP4") != ip.is_ipv4() {
                return Err(HeaderError::V1Family {
                    addr: src.to_string(),
                    proto: proto.to_string(),
                });
            }
            let port: u16 = sport
                .parse()
                .map_err(|_| HeaderError::V1Port(sport.to_string()))?;
            Some(SocketAddr::new(ip, port))
        }
        _ => return Err(HeaderError::V1Malformed(line.to_string())),
    };
    Ok(Some(Header {
        source,
        len: end + 2,
    }))
}

fn parse_v2(buf: &[u8]) -> Result<Option<Header>, HeaderError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let (version_command, family) = (buf[12], buf[13]);
    if version_command >> 4 != 2 {
        return Err(HeaderError::V2Version);
    }
    let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > MAX_HEADER {
        return Err(HeaderError::V2TooLong);
    }
    if buf.len() < len {
        return Ok(None);
    }
    let body = &buf[16..len];
    let source = match (version_command & 0x0f, family) {
        (0x0, _) => None, // LOCAL
        (0x1, 0x11) if body.len() >= 12 => Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(body[0], body[1], body[2], body[3])),
            u16::from_be_bytes([body[8], body[9]]),
        )),
        (0x1, 0x21) if body.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                u16::from_be_bytes([body[32], body[33]]),
            ))
        }
        (0x1, _) => None, // UNSPEC or a socket family the router does not route
        _ => return Err(HeaderError::V2Command),
    };
    Ok(Some(Header { source, len }))
}

/// Reads the header off a new connection; the peer to use (the socket's own for LOCAL).
///
/// Bytes are peeked, so what follows the header stays in the socket for HTTP or TLS. While the
/// header is incomplete every byte seen belongs to it, so those are taken off the socket: the
/// next peek then waits for new bytes instead of returning the same ones again.
pub async fn accept(io: &mut TcpStream) -> std::io::Result<SocketAddr> {
    let read = async {
        let mut header = Vec::with_capacity(64);
        let mut buf = vec![0u8; MAX_HEADER];
        loop {
            let room = MAX_HEADER - header.len();
            let seen = io.peek(&mut buf[..room]).await?;
            if seen == 0 {
                return Err(std::io::Error::other("closed before the PROXY header"));
            }
            header.extend_from_slice(&buf[..seen]);
            let known = header.len() - seen;
            match parse(&header) {
                Ok(Some(parsed)) => {
                    io.read_exact(&mut buf[..parsed.len - known]).await?;
                    return match parsed.source {
                        Some(source) => Ok(source),
                        None => io.peer_addr(),
                    };
                }
                Ok(None) if header.len() < MAX_HEADER => {
                    io.read_exact(&mut buf[..seen]).await?;
                }
                Ok(None) => return Err(std::io::Error::other("PROXY header too long")),
                Err(reason) => return Err(std::io::Error::other(reason)),
            }
        }
    };
    match tokio::time::timeout(HEADER_TIMEOUT, read).await {
        Ok(outcome) => outcome,
        Err(_) => Err(std::io::Error::other("no PROXY header in time")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines_give_the_source_and_their_length() {
        let line = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\nGET / HTTP/1.1\r\n";
        let header = parse(line).unwrap().unwrap();
        assert_eq!(header.source, Some("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(&line[header.len..header.len + 3], b"GET");
        let v6 = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(v6.source, Some("[2001:db8::1]:4000".parse().unwrap()));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().source, None);
        assert_eq!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2").unwrap(),
            None,
            "incomplete"
        );
        assert_eq!(parse(b"PRO").unwrap(), None);
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 nonsense\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn v2_headers_give_the_source_and_their_length() {
        let mut header = V2_SIGNATURE.to_vec();
        header.extend_from_slice(&[0x21, 0x11, 0x00, 0x0c]);
        header.extend_from_slice(&[198, 51, 100, 9, 10, 0, 0, 1, 0xc3, 0x50, 0x01, 0xbb]);
        header.extend_from_slice(b"GET");
        let parsed = parse(&header).unwrap().unwrap();
        assert_eq!(parsed.source, Some("198.51.100.9:50000".parse().unwrap()));
        assert_eq!(parsed.len, 28);
        assert_eq!(parse(&header[..20]).unwrap(), None, "incomplete");
        assert_eq!(
            parse(&header[..7]).unwrap(),
            None,
            "a signature split across segments"
        );
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(parse(&local).unwrap().unwrap().source, None);
    }
}
