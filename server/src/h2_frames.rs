//! A watch on the frames an HTTP/2 client sends, for the floods the h2 layer answers but never
//! ends: control frames (SETTINGS, PING) sent by the thousand, each costing the router an
//! acknowledgement, and frames without payload (empty DATA, HEADERS or CONTINUATION) that cost
//! work and carry nothing (CVE-2019-9512, -9515, -9518). RFC 9113 §10.5 lets a server treat
//! such activity as a connection error; Envoy's `max_consecutive_inbound_frames_with_empty_payload`
//! and control-frame limits are the precedent.
//!
//! [`FrameWatch`] wraps the client's byte stream above TLS and reads only frame headers (9
//! bytes a frame; payloads are skipped, never copied). Over a limit, the connection's next read
//! fails: the HTTP layer ends the connection, and the flood is counted as
//! `switchyard_router_errors_total{kind="http2_flood"}`. HTTP/1.1 connections pass through
//! unwatched.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_rt::net::{ActixStream, Ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::{Conn, H2_PREFACE, HasConn, count_refused};

/// Empty frames in a row (DATA without END_STREAM, HEADERS or CONTINUATION with no payload)
/// that end a connection: a real client sends next to none; Envoy ends one at 2.
pub const MAX_EMPTY_FRAMES_IN_A_ROW: u32 = 10;
/// SETTINGS and PING frames (not acknowledgements) one connection may send per
/// [`CONTROL_WINDOW`]: gRPC keep-alives and flow-control probes stay far below it.
pub const MAX_CONTROL_FRAMES: u32 = 1000;
pub const CONTROL_WINDOW: Duration = Duration::from_secs(10);

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;

/// Where the reader is in the client's frame stream, and what it has counted.
#[derive(Debug)]
pub struct Scanner {
    /// Preface bytes still to pass (the client connection preface, RFC 9113 §3.4, precedes
    /// the first frame).
    preface: usize,
    /// The frame header being read, and how much of it has come.
    head: [u8; 9],
    have: usize,
    /// Payload bytes of the current frame still to pass.
    skip: usize,
    empty_in_a_row: u32,
    control: u32,
    window_started: Instant,
}

impl Default for Scanner {
    fn default() -> Scanner {
        Scanner {
            preface: H2_PREFACE.len(),
            head: [0; 9],
            have: 0,
            skip: 0,
            empty_in_a_row: 0,
            control: 0,
            window_started: Instant::now(),
        }
    }
}

impl Scanner {
    /// Reads `bytes`, the next of the client's stream; `Err` names the flood once a limit is
    /// passed.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), &'static str> {
        while !bytes.is_empty() {
            if self.preface > 0 {
                let n = self.preface.min(bytes.len());
                self.preface -= n;
                bytes = &bytes[n..];
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == 9 {
                self.have = 0;
                self.frame()?;
            }
        }
        Ok(())
    }

    /// One whole frame header.
    fn frame(&mut self) -> Result<(), &'static str> {
        let len = u32::from_be_bytes([0, self.head[0], self.head[1], self.head[2]]) as usize;
        let (kind, flags) = (self.head[3], self.head[4]);
        self.skip = len;
        let empty = match kind {
            DATA => len == 0 && flags & END_STREAM == 0,
            HEADERS | CONTINUATION => len == 0,
            _ => false,
        };
        if empty {
            self.empty_in_a_row += 1;
            if self.empty_in_a_row > MAX_EMPTY_FRAMES_IN_A_ROW {
                return Err("frames without payload");
            }
        } else if matches!(kind, DATA | HEADERS | CONTINUATION) {
            self.empty_in_a_row = 0;
        }
        if matches!(kind, SETTINGS | PING) && flags & ACK == 0 {
            let now = Instant::now();
            if now.duration_since(self.window_started) >= CONTROL_WINDOW {
                self.window_started = now;
                self.control = 0;
            }
            self.control += 1;
            if self.control > MAX_CONTROL_FRAMES {
                return Err("SETTINGS and PING frames");
            }
        }
        Ok(())
    }
}

/// A client connection whose HTTP/2 frames are watched ([`Scanner`]); HTTP/1.1 passes through.
pub struct FrameWatch<S> {
    io: S,
    scanner: Option<Box<Scanner>>,
    /// Set once a limit was passed: every later read fails too.
    flooded: bool,
}

impl<S: HasConn> FrameWatch<S> {
    /// Watches `io` when it speaks HTTP/2.
    pub fn new(io: S, protocol: actix_http::Protocol) -> FrameWatch<S> {
        FrameWatch {
            io,
            scanner: (protocol == actix_http::Protocol::Http2).then(Box::default),
            flooded: false,
        }
    }

    fn flood(&mut self, what: &'static str) -> io::Error {
        if !self.flooded {
            self.flooded = true;
            count_refused("http2_flood");
            self.io.conn().refused();
            tracing::debug!(peer = %self.io.conn().peer, what, "HTTP/2 flood: ending the connection");
        }
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("HTTP/2 flood of {what}"),
        )
    }
}

impl<S> HasConn for FrameWatch<S>
where
    S: HasConn,
{
    fn conn(&self) -> &Arc<Conn> {
        self.io.conn()
    }
}

impl<S: AsyncRead + HasConn + Unpin> AsyncRead for FrameWatch<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.flooded {
            return Poll::Ready(Err(this.flood("frames")));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Some(scanner) = this.scanner.as_mut()
            && let Err(what) = scanner.feed(&buf.filled()[before..])
        {
            return Poll::Ready(Err(this.flood(what)));
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameWatch<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<S: ActixStream + HasConn> ActixStream for FrameWatch<S> {
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

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend([kind, flags, 0, 0, 0, 1]);
        f.extend(payload);
        f
    }

    fn preface() -> Vec<u8> {
        H2_PREFACE.to_vec()
    }

    #[test]
    fn ordinary_traffic_passes_even_one_byte_at_a_time() {
        let mut stream = preface();
        stream.extend(frame(SETTINGS, 0, &[0, 3, 0, 0, 0, 100]));
        stream.extend(frame(SETTINGS, ACK, &[]));
        for _ in 0..50 {
            stream.extend(frame(HEADERS, 0x4, &[0x82, 0x87]));
            stream.extend(frame(DATA, 0, b"body"));
            stream.extend(frame(DATA, END_STREAM, &[]));
            stream.extend(frame(PING, 0, &[0; 8]));
        }
        let mut scanner = Scanner::default();
        for byte in &stream {
            scanner.feed(std::slice::from_ref(byte)).unwrap();
        }
        assert_eq!(scanner.control, 51);
    }

    #[test]
    fn empty_frames_in_a_row_are_a_flood() {
        let mut scanner = Scanner::default();
        scanner.feed(&preface()).unwrap();
        for _ in 0..MAX_EMPTY_FRAMES_IN_A_ROW {
            scanner.feed(&frame(DATA, 0, &[])).unwrap();
        }
        // A frame with payload starts the count again.
        scanner.feed(&frame(DATA, 0, b"x")).unwrap();
        for _ in 0..MAX_EMPTY_FRAMES_IN_A_ROW {
            scanner.feed(&frame(CONTINUATION, 0, &[])).unwrap();
        }
        assert_eq!(
            scanner.feed(&frame(DATA, 0, &[])),
            Err("frames without payload")
        );
    }

    #[test]
    fn control_frames_past_the_limit_are_a_flood_but_acks_are_not_counted() {
        let mut scanner = Scanner::default();
        scanner.feed(&preface()).unwrap();
        for _ in 0..5_000 {
            scanner.feed(&frame(PING, ACK, &[0; 8])).unwrap();
        }
        let mut flood = Vec::new();
        for _ in 0..MAX_CONTROL_FRAMES {
            flood.extend(frame(SETTINGS, 0, &[]));
        }
        scanner.feed(&flood).unwrap();
        assert_eq!(
            scanner.feed(&frame(PING, 0, &[0; 8])),
            Err("SETTINGS and PING frames")
        );
    }
}
