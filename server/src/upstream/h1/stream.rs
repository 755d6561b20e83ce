//! The one stream type of backend connections: plain TCP, or TLS over it for a pool with
//! `tls` (see [`crate::upstream::tls`]). HTTP exchanges, WebSocket sessions and health checks
//! all hold a [`BackendStream`], so they share one connect path.
//!
//! An enum rather than a boxed trait object: the plain variant costs no allocation and its
//! reads take the same non-blocking fast path as before TLS existed; only the TLS variant is
//! boxed (it carries rustls's buffers), once per connection.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A connection to a backend.
pub enum BackendStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl BackendStream {
    /// True when the backend has neither closed the connection nor sent anything unasked;
    /// never blocks. Any byte read here is lost, so a `false` connection must be dropped.
    ///
    /// For TLS the probe goes through rustls: a TLS 1.3 server sends session tickets after
    /// the handshake, which rustls consumes without yielding data; a raw socket read would
    /// take them for an unasked answer (and corrupt the record stream).
    pub fn still_open(&mut self) -> bool {
        match self {
            BackendStream::Plain(tcp) => {
                let mut probe = [0u8; 1];
                matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            BackendStream::Tls(tls) => {
                let mut probe = [0u8; 1];
                let mut buf = ReadBuf::new(&mut probe);
                let mut cx = Context::from_waker(std::task::Waker::noop());
                Pin::new(tls.as_mut())
                    .poll_read(&mut cx, &mut buf)
                    .is_pending()
            }
        }
    }

    /// Writes what the socket takes now, without waiting; 0 when it takes nothing now. Plain
    /// TCP only: a TLS stream returns 0, and its writer takes the waiting path (which also
    /// flushes rustls).
    pub fn try_write_now(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            BackendStream::Plain(tcp) => match tcp.try_write(data) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(0),
                written => written,
            },
            BackendStream::Tls(_) => Ok(0),
        }
    }

    /// Reads what is available into `buf`'s spare room; `Ready(Ok(0))` is end of stream.
    /// `Pending` registers `cx` for the next data (for bodies polled outside an `async fn`).
    pub fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        match self {
            BackendStream::Plain(tcp) => loop {
                match tcp.try_read_buf(buf) {
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                        if tcp.poll_read_ready(cx)?.is_pending() {
                            return Poll::Pending;
                        }
                    }
                    done => return Poll::Ready(done),
                }
            },
            // `read_buf` fills the spare capacity without zeroing it first, and only touches
            // `buf` when it completes, so dropping it on `Pending` loses nothing.
            BackendStream::Tls(tls) => std::pin::pin!(tls.read_buf(buf)).as_mut().poll(cx),
        }
    }
}

impl AsyncRead for BackendStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            BackendStream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            BackendStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            BackendStream::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            BackendStream::Plain(tcp) => tcp.is_write_vectored(),
            BackendStream::Tls(tls) => tls.is_write_vectored(),
        }
    }

    /// TLS buffers records inside rustls when the socket is full: writers must flush before
    /// waiting for an answer (a no-op for plain TCP).
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            BackendStream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            BackendStream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
