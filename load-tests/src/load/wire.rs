//! A minimal HTTP/1.1 client connection for load generation: writes prebuilt request heads and
//! reads answers with `httparse`, discarding bodies (length-delimited, chunked, or until close)
//! without copying them out. One task per connection and no per-request allocation, so the
//! generator costs the machine as little as possible and measures the server, not itself.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most response headers parsed; more is an error (no test server sends that many).
const MAX_HEADERS: usize = 64;
/// Read buffer size: bodies are read through it and discarded.
const READ_CHUNK: usize = 16 * 1024;

pub struct WireConn {
    stream: TcpStream,
    buf: BytesMut,
    closed: bool,
}

/// How a response body ends.
enum Framing {
    Length(u64),
    Chunked,
    Close,
    None,
}

impl WireConn {
    pub async fn connect(addr: std::net::SocketAddr) -> io::Result<WireConn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(WireConn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            closed: false,
        })
    }

    /// False once the server said `Connection: close` or the connection failed.
    pub fn reusable(&self) -> bool {
        !self.closed
    }

    /// Sends one request head (no body) and reads the whole answer; returns its status.
    pub async fn exchange(&mut self, request: &[u8], head_request: bool) -> io::Result<u16> {
        self.stream.write_all(request).await?;
        let (status, framing) = loop {
            if let Some(parsed) = self.parse_head(head_request)? {
                break parsed;
            }
            self.fill().await?;
        };
        match framing {
            Framing::None => {}
            Framing::Length(n) => self.discard(n).await?,
            Framing::Chunked => self.discard_chunked().await?,
            Framing::Close => {
                self.buf.clear();
                while self.fill_or_eof().await? > 0 {
                    self.buf.clear();
                }
                self.closed = true;
            }
        }
        Ok(status)
    }

    fn parse_head(&mut self, head_request: bool) -> io::Result<Option<(u16, Framing)>> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(err) => return Err(io::Error::new(io::ErrorKind::InvalidData, err)),
        };
        let status = resp.code.unwrap_or(0);
        let mut length = None;
        let mut chunked = false;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = h
                    .value
                    .windows(7)
                    .any(|w| w.eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("connection")
                && h.value.windows(5).any(|w| w.eq_ignore_ascii_case(b"close"))
            {
                self.closed = true;
            }
        }
        self.buf.advance(n);
        if (100..200).contains(&status) {
            // An interim answer: the real one follows.
            return self.parse_head(head_request);
        }
        let framing = if head_request || status == 204 || status == 304 {
            Framing::None
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::Close
        };
        Ok(Some((status, framing)))
    }

    async fn fill_or_eof(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.fill_or_eof().await? == 0 {
            self.closed = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-answer",
            ));
        }
        Ok(())
    }

    async fn discard(&mut self, mut n: u64) -> io::Result<()> {
        loop {
            let take = (self.buf.len() as u64).min(n) as usize;
            self.buf.advance(take);
            n -= take as u64;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    async fn line(&mut self) -> io::Result<usize> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                return Ok(i);
            }
            self.fill().await?;
        }
    }

    async fn discard_chunked(&mut self) -> io::Result<()> {
        loop {
            let end = self.line().await?;
            let size_text = std::str::from_utf8(&self.buf[..end])
                .ok()
                .map(|l| l.split(';').next().unwrap_or("").trim().to_string());
            let size = size_text
                .and_then(|s| u64::from_str_radix(&s, 16).ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            self.buf.advance(end + 2);
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let end = self.line().await?;
                    self.buf.advance(end + 2);
                    if end == 0 {
                        return Ok(());
                    }
                }
            }
            self.discard(size + 2).await?;
        }
    }
}
