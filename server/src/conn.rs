//! Client connections before HTTP: the PROXY header on listeners that take one, the count of
//! connections per client address, and [`ClientIo`], the socket wrapper that carries both for
//! as long as the connection lives — under TLS, through HTTP/1.1 or HTTP/2, and inside a
//! WebSocket session's actor — so the per-address count is right whatever the connection
//! becomes. Requests read the connection's facts ([`Conn`]) from actix's connection data.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use actix_web::rt::net::{ActixStream, Ready, TcpStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::Cidr;

const SHARDS: usize = 16;

/// Open connections per client address, shared by every listener and worker of a node.
#[derive(Debug)]
pub struct PerAddress {
    /// 0: no limit (nothing is counted).
    max: u32,
    /// Proxies in front (`node.trusted_proxies`) carry many viewers: not limited.
    exempt: Arc<Vec<Cidr>>,
    shards: Vec<Mutex<HashMap<IpAddr, u32>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl PerAddress {
    pub fn new(max: u32, exempt: Arc<Vec<Cidr>>) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            max,
            exempt,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        })
    }

    /// Counts a new connection from `ip`; `None` when `ip` already has `max` open. A trusted
    /// proxy is not counted — unless its address came from a PROXY header, which anyone who
    /// reaches the listener could write.
    fn open(self: &Arc<Self>, ip: IpAddr, from_header: bool) -> Option<Slot> {
        if self.max == 0 || (!from_header && self.exempt.iter().any(|cidr| cidr.contains(ip))) {
            return Some(Slot(None));
        }
        let ip = client_key(ip);
        let mut shard = self.shard(ip);
        let open = shard.entry(ip).or_insert(0);
        if *open >= self.max {
            return None;
        }
        *open += 1;
        Some(Slot(Some((self.clone(), ip))))
    }

    fn shard(&self, ip: IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        let shard = &self.shards[(self.hasher.hash_one(ip) as usize) % SHARDS];
        shard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections open from `ip`.
    #[cfg(test)]
    fn open_from(&self, ip: IpAddr) -> u32 {
        let ip = client_key(ip);
        self.shard(ip).get(&ip).copied().unwrap_or(0)
    }
}

/// The address a client is limited by: IPv4 as it is (IPv4-mapped IPv6 too), IPv6 by its /64 —
/// one host usually holds a whole /64 and could otherwise take a fresh address per connection.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// One counted connection; uncounted when dropped.
#[derive(Debug)]
struct Slot(Option<(Arc<PerAddress>, IpAddr)>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((table, ip)) = self.0.take() {
            let mut shard = table.shard(ip);
            if let Some(open) = shard.get_mut(&ip) {
                *open -= 1;
                if *open == 0 {
                    shard.remove(&ip);
                }
            }
        }
    }
}

/// What a connection's requests may know about it.
#[derive(Debug)]
pub struct Conn {
    /// The client: the socket's peer, or the PROXY header's source.
    pub peer: SocketAddr,
    /// Over `max_connections_per_ip`: its first request gets 429 and the connection closes.
    pub over_limit: bool,
    /// [`SEEN_REQUEST`], [`SEEN_BYTES`], [`REFUSED`].
    flags: AtomicU8,
}

const SEEN_BYTES: u8 = 1;
const SEEN_REQUEST: u8 = 2;
/// Refused and counted already (a parse error, a failed handshake).
const REFUSED: u8 = 4;
/// In its TLS handshake: a failure is counted as one.
const HANDSHAKING: u8 = 8;

impl Conn {
    /// A request (or an upgrade) reached the router on this connection.
    pub fn saw_request(&self) {
        if self.flags.load(Ordering::Relaxed) & SEEN_REQUEST == 0 {
            self.flags.fetch_or(SEEN_REQUEST, Ordering::Relaxed);
        }
    }

    pub(crate) fn refused(&self) {
        self.flags.fetch_or(REFUSED, Ordering::Relaxed);
    }
}

/// A client socket with its connection facts and its place in the per-address count.
#[derive(Debug)]
pub struct ClientIo<S> {
    io: S,
    conn: Arc<Conn>,
    _slot: Option<Slot>,
    /// Its place among the listener's `max_connections`.
    _listener: Option<tokio::sync::OwnedSemaphorePermit>,
    write: WriteDeadline,
}

/// `[limits] write_timeout`: armed when a write to the client blocks, disarmed by any byte the
/// client takes; when it fires the write fails, which ends the connection (and with it the
/// exchange or WebSocket session on it). A timer exists only while a write is blocked.
#[derive(Debug)]
struct WriteDeadline {
    after: std::time::Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Fired: every later write fails at once (the flush before closing included).
    expired: bool,
}

impl WriteDeadline {
    /// What a write to the client came to: progress disarms, a block arms (and is polled, so
    /// the task wakes when it fires), a fired timer turns the block into an error.
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if self.expired {
            return Poll::Ready(Err(self.error()));
        }
        match polled {
            Poll::Pending => {
                let after = self.after;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
                match timer.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        self.timer = None;
                        self.expired = true;
                        metrics::counter!("switchyard_client_write_timeouts_total").increment(1);
                        Poll::Ready(Err(self.error()))
                    }
                }
            }
            ready => {
                self.timer = None;
                ready
            }
        }
    }

    fn error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "client took no bytes for {:?} (limits.write_timeout)",
                self.after
            ),
        )
    }
}

/// An HTTP/2 stream reset because its client kept its flow-control window shut for
/// `write_timeout` (the zero-window stall): counted as the HTTP/1.1 write timeouts are, and as
/// a refusal of kind `http2_stalled_stream`.
pub fn count_h2_send_timeout() {
    metrics::counter!("switchyard_client_write_timeouts_total").increment(1);
    count_refused("http2_stalled_stream");
}

/// Counts a connection-level refusal in the same family as the request-level ones.
pub fn count_refused(kind: &'static str) {
    metrics::counter!("switchyard_router_errors_total", "kind" => kind).increment(1);
}

/// What the HTTP layer runs over: the plain socket or TLS on it.
pub trait HasConn {
    fn conn(&self) -> &Arc<Conn>;
}

impl<S> HasConn for ClientIo<S> {
    fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }
}

/// A client connection under TLS.
pub type TlsIo = tokio_rustls::server::TlsStream<ClientIo<TcpStream>>;

impl HasConn for TlsIo {
    fn conn(&self) -> &Arc<Conn> {
        &self.get_ref().0.conn
    }
}

/// Most TLS handshakes a worker runs at once (as actix-tls did); more wait their turn, within
/// their handshake time.
pub const HANDSHAKES_PER_WORKER: usize = 256;

/// The TLS handshake of an admitted connection, within `timeout` (waiting for one of the
/// worker's `permits` included); what HTTP needs next: the stream, the protocol ALPN chose,
/// the client.
pub async fn handshake(
    io: ClientIo<TcpStream>,
    config: Arc<rustls::ServerConfig>,
    permits: Arc<tokio::sync::Semaphore>,
    timeout: std::time::Duration,
) -> Result<(TlsIo, actix_http::Protocol, Option<SocketAddr>), actix_http::error::DispatchError> {
    let conn = io.conn.clone();
    conn.flags.fetch_or(HANDSHAKING, Ordering::Relaxed);
    let accept = async move {
        let _permit = permits.acquire().await.map_err(io::Error::other)?;
        tokio_rustls::TlsAcceptor::from(config).accept(io).await
    };
    let failed = |err: io::Error| {
        // A connection that closes without a byte (a balancer's TCP check) is no refusal.
        if conn.flags.load(Ordering::Relaxed) & SEEN_BYTES != 0 {
            count_refused("tls_handshake");
        }
        conn.refused();
        actix_http::error::DispatchError::Io(err)
    };
    let tls = match tokio::time::timeout(timeout, accept).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => return Err(failed(err)),
        Err(_) => {
            return Err(failed(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )));
        }
    };
    conn.flags.fetch_and(!HANDSHAKING, Ordering::Relaxed);
    let protocol = match tls.get_ref().1.alpn_protocol() {
        Some(b"h2") => actix_http::Protocol::Http2,
        _ => actix_http::Protocol::Http1,
    };
    Ok((tls, protocol, Some(conn.peer)))
}

/// What every HTTP/2 connection starts with (RFC 9113 §3.4).
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol of an admitted connection on a plain listener: HTTP/2 when the client opens
/// with the HTTP/2 preface (prior knowledge, "h2c": how gRPC clients speak without TLS),
/// else HTTP/1.1, as HAProxy and Envoy's `AUTO` codec tell them apart. The first bytes are
/// peeked, not read; a client silent for `wait` is handed to HTTP/1.1, whose own timeouts
/// apply.
pub async fn sniff_h2c(
    io: ClientIo<TcpStream>,
    wait: std::time::Duration,
) -> (
    ClientIo<TcpStream>,
    actix_http::Protocol,
    Option<SocketAddr>,
) {
    let peer = Some(io.conn.peer);
    let mut first = [0u8; 24];
    let sniffed = tokio::time::timeout(wait, async {
        loop {
            let n = io.io.peek(&mut first).await?;
            if n == 0 || first[..n] != H2_PREFACE[..n] {
                return Ok::<_, io::Error>(false);
            }
            if n == H2_PREFACE.len() {
                return Ok(true);
            }
            // Part of the preface so far: wait for the rest (peek returns at once while any
            // byte is buffered).
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    })
    .await;
    let protocol = match sniffed {
        Ok(Ok(true)) => actix_http::Protocol::Http2,
        _ => actix_http::Protocol::Http1,
    };
    (io, protocol, peer)
}

/// Accepts a new connection: reads the PROXY header first when the listener takes one, then
/// counts the client. Errors are counted and close the connection. A connection over the
/// per-address limit is answered `429` on a plain listener; on a TLS listener it is closed
/// before the handshake (answering would cost a handshake and an HTTP/2 connection could not
/// be closed by the answer), as HAProxy and Envoy do.
pub async fn admit(
    mut io: TcpStream,
    listener: &Listener,
    per_address: Arc<PerAddress>,
) -> io::Result<ClientIo<TcpStream>> {
    let Listener {
        proxy_protocol,
        tls,
        ..
    } = *listener;
    // A listener at its own `max_connections` makes a new connection wait for a place, as
    // the backlog would, but no longer than a client has to send its request head.
    let place = match &listener.places {
        None => None,
        Some(places) => {
            let place = tokio::time::timeout(listener.wait, places.clone().acquire_owned()).await;
            match place {
                Ok(Ok(place)) => Some(place),
                _ => {
                    count_refused("listener_limit");
                    return Err(io::Error::other("listener at max_connections"));
                }
            }
        }
    };
    let _ = io.set_nodelay(true);
    if proxy_protocol && !listener.proxy_from.is_empty() {
        let balancer = io.peer_addr()?.ip().to_canonical();
        if !listener
            .proxy_from
            .iter()
            .any(|cidr| cidr.contains(balancer))
        {
            metrics::counter!("switchyard_proxy_protocol_refused_total").increment(1);
            count_refused("proxy_protocol");
            return Err(io::Error::other(format!(
                "{balancer} may not send a PROXY header (not in proxy_protocol_from)"
            )));
        }
    }
    let peer = match proxy_protocol {
        true => crate::proxy_protocol::accept(&mut io)
            .await
            .inspect_err(|_| {
                metrics::counter!("switchyard_proxy_protocol_refused_total").increment(1);
                count_refused("proxy_protocol");
            })?,
        false => io.peer_addr()?,
    };
    let slot = per_address.open(peer.ip(), proxy_protocol);
    if slot.is_none() {
        count_refused("connection_limit");
        if tls {
            return Err(io::Error::other("over max_connections_per_ip"));
        }
    }
    Ok(ClientIo {
        io,
        conn: Arc::new(Conn {
            peer,
            over_limit: slot.is_none(),
            // An over-limit connection is counted as refused already.
            flags: AtomicU8::new(if slot.is_none() { REFUSED } else { 0 }),
        }),
        _slot: slot,
        _listener: place,
        write: WriteDeadline {
            after: listener.write_timeout,
            timer: None,
            expired: false,
        },
    })
}

/// What admission needs to know about a listener.
#[derive(Debug, Clone)]
pub struct Listener {
    pub proxy_protocol: bool,
    /// Who may send the PROXY header (empty: anyone).
    pub proxy_from: Vec<Cidr>,
    pub tls: bool,
    /// Its own `max_connections`, as permits.
    pub places: Option<Arc<tokio::sync::Semaphore>>,
    /// How long a connection waits for a place.
    pub wait: std::time::Duration,
    /// How long a write to the client may stay blocked (`[limits] write_timeout`).
    pub write_timeout: std::time::Duration,
}

/// Counts how a connection's HTTP service ended, when it ended in a refusal: an error the
/// HTTP layer answered on its own (a malformed head, 431, an HTTP/2 protocol error), or —
/// bytes came but never a whole request head, and nothing else said why — a client that
/// stopped mid-head (slowloris, cut at `header_timeout` with 408) or went away.
pub fn count_end(conn: &Conn, outcome: &Result<(), actix_http::error::DispatchError>) {
    use actix_http::error::{DispatchError, ParseError};
    let kind = match outcome {
        Err(DispatchError::Parse(ParseError::TooLarge)) => Some("headers_too_large"),
        Err(DispatchError::Parse(ParseError::UriTooLong)) => Some("uri_too_long"),
        Err(DispatchError::Parse(ParseError::Io(_))) => None,
        Err(DispatchError::Parse(_)) => Some("malformed_request"),
        // The h2 layer ended the connection (RFC 9113 error codes): a flood (rapid reset,
        // CONTINUATION) is ENHANCE_YOUR_CALM (11), an undecodable header block a
        // COMPRESSION_ERROR (9).
        Err(DispatchError::H2(err)) if !err.is_io() => Some(match err.reason().map(u32::from) {
            Some(11) => "http2_flood",
            Some(9) => "http2_compression",
            _ => "http2_protocol",
        }),
        _ => None,
    };
    match kind {
        Some(kind) => {
            count_refused(kind);
            conn.refused();
        }
        None if conn.flags.load(Ordering::Relaxed) == SEEN_BYTES => {
            count_refused("incomplete_request");
        }
        None => {}
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before && self.conn.flags.load(Ordering::Relaxed) == 0 {
            self.conn.flags.fetch_or(SEEN_BYTES, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.write.check(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.write.check(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.write.check(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<S: ActixStream> ActixStream for ClientIo<S> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        S::poll_read_ready(&self.io, cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        S::poll_write_ready(&self.io, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_max_connections_and_a_closed_one_frees_its_place() {
        let table = PerAddress::new(2, Arc::new(Vec::new()));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = table.open(ip, false).expect("first");
        let _second = table.open(ip, false).expect("second");
        assert!(table.open(ip, false).is_none(), "a third is over the limit");
        assert!(
            table.open("192.0.2.2".parse().unwrap(), false).is_some(),
            "another address has its own count"
        );
        drop(first);
        assert_eq!(table.open_from(ip), 1);
        assert!(table.open(ip, false).is_some(), "room again after a close");
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let table = PerAddress::new(1, Arc::new(Vec::new()));
        let _held = table
            .open("2001:db8:1:2::1".parse().unwrap(), false)
            .unwrap();
        assert!(
            table
                .open("2001:db8:1:2::ffff".parse().unwrap(), false)
                .is_none(),
            "the same /64"
        );
        assert!(
            table
                .open("2001:db8:1:3::1".parse().unwrap(), false)
                .is_some()
        );
        let _v4 = table.open("192.0.2.9".parse().unwrap(), false).unwrap();
        assert!(
            table
                .open("::ffff:192.0.2.9".parse().unwrap(), false)
                .is_none()
        );
    }

    #[test]
    fn trusted_proxies_and_a_zero_limit_are_not_counted() {
        let proxy = Cidr::parse("10.0.0.0/8").unwrap();
        let table = PerAddress::new(1, Arc::new(vec![proxy]));
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let _held: Vec<_> = (0..3)
            .map(|_| table.open(ip, false).expect("exempt"))
            .collect();
        assert_eq!(table.open_from(ip), 0);
        let _counted = table.open(ip, true).expect("counted");
        assert!(
            table.open(ip, true).is_none(),
            "a PROXY header naming a trusted proxy does not make it one"
        );
        let off = PerAddress::new(0, Arc::new(Vec::new()));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let _held: Vec<_> = (0..3)
            .map(|_| off.open(ip, false).expect("no limit"))
            .collect();
    }
}
